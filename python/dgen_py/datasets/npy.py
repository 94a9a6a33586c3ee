"""npy and indexed_binary files: the payload raw, after an npy header (npy) or alone
(indexed_binary, whose offsets and sizes go in index files beside it)."""

from __future__ import annotations

import struct

from .parts import Payload
from .spec import ALIGN


def npy_header(shape, starts_at: int, descr="|u1") -> bytes:
    """A version 1.0 npy header for a file that has `starts_at` bytes before it, padded
    with spaces so that the array starts at a 4 KiB boundary of the file (np.load reads
    any header length)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    total = -(-(starts_at + 10 + len(text) + 1) // ALIGN) * ALIGN - starts_at
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + \
        text.encode().ljust(total - 11) + b"\n"


def parts(spec, f):
    d1, d2 = f["dims"]
    yield npy_header((d1, d2, f["samples"]), 0)
    yield Payload(f["payload_offset"], f["payload"])


def indexed_binary_parts(spec, f):
    yield Payload(f["payload_offset"], f["payload"])


def index_contents(f, cuts) -> list:
    """The .off.idx and .sz.idx files of indexed_binary file f: uint64 offset and size of
    each sample, an iterator of bytes per file, one piece per (first, end) of `cuts`."""
    size = f["dims"][0] * f["dims"][1]
    return [(struct.pack(f"<{b - a}Q", *range(a * size, b * size, size)) for a, b in cuts),
            (struct.pack(f"<{b - a}Q", *[size] * (b - a)) for a, b in cuts)]
