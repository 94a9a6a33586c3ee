"""npz files: a stored zip of x.npy (dims, samples: the sample axis last, as
np.savez(x=...) in DLIO; its npy header padded so that the payload starts 4 KiB into the
file) and y.npy (samples zeros). x's CRC-32 follows its data (a data descriptor), so the
payload is generated once."""

from __future__ import annotations

import io
import struct
import zlib

from .npy import npy_header
from .parts import Payload
from .spec import ALIGN

_DOS_DATE = 0x21  # 1980-01-01, 00:00


def _local_header(name: bytes, crc, size, flags) -> bytes:
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, _DOS_DATE, crc, size, size,
                       len(name), 0) + name


def _central_entry(name: bytes, crc, size, flags, at) -> bytes:
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, 0, _DOS_DATE, crc,
                       size, size, len(name), 0, 0, 0, 0, 0, at) + name


def parts(spec, f):
    d1, d2 = f["dims"]
    n = f["samples"]
    x_head = _local_header(b"x.npy", 0, 0, 8)
    npy = npy_header((d1, d2, n), len(x_head))
    x_size = len(npy) + f["payload"]
    import numpy as np
    y = io.BytesIO()
    np.lib.format.write_array(y, np.zeros(n, dtype=np.int64), version=(1, 0))
    y = y.getvalue()
    y_at = len(x_head) + x_size + 16
    if y_at + 30 + 5 + len(y) + 2 * 51 + 22 + ALIGN > 0xFFFFFFFF:
        raise ValueError(f"--record-length: npz files over 4 GiB are not supported "
                         f"({f['path']} would hold {x_size} bytes)")
    yield x_head + npy
    payload = Payload(f["payload_offset"], f["payload"], "crc32", zlib.crc32(npy))
    yield payload
    crc = payload.crc
    y_crc = zlib.crc32(y)
    tail = struct.pack("<IIII", 0x08074B50, crc, x_size, x_size) + \
        _local_header(b"y.npy", y_crc, len(y), 0) + y
    central = _central_entry(b"x.npy", crc, x_size, 8, 0) + \
        _central_entry(b"y.npy", y_crc, len(y), 0, y_at)
    at = y_at + 35 + len(y)
    # The zip's comment (zeros) ends the file at a multiple of 4 KiB, so that the next
    # file's payload is 4 KiB-aligned where files are read as one stream.
    comment = bytes(-(at + len(central) + 22) % ALIGN)
    yield tail + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 2, 2, len(central),
                                       at, len(comment)) + comment
