"""TFRecord files and their DALI index files. A record holds a tf.train.Example {image:
bytes (the sample), size: int64}, framed as uint64 length, masked CRC-32C of it, data,
masked CRC-32C of the data."""

from __future__ import annotations

import functools
import math
import struct

from .. import _core
from .parts import Payload
from .spec import ALIGN, ALIGNED_RECORD, stride


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


def _size_entry(spec, f) -> bytes:
    """The `size` feature: the byte count in DLIO HEAD, the base dimension in 2.0."""
    value = f["dims"][0] * f["dims"][1] if spec["dlio"] == "head" else \
        int(math.sqrt(spec["record_length"]))
    return _field(0x0A, _field(0x0A, b"size") +
                  _field(0x12, _field(0x1A, _field(0x0A, _varint(value)))))


def _example(length, size_entry, front=b"", tail=b"") -> tuple[bytes, bytes]:
    """(the Example's bytes before the image's `length` raw bytes, those after them).
    Example {features = 1: Features {feature = 1: map entries {key = 1, value = 2: Feature
    {bytes_list = 1 | int64_list = 3}}}}: the entries `front` (a padding entry or none),
    image, size (`size_entry`) and `tail` (as front)."""
    bytes_list = 1 + len(_varint(length)) + length
    feature = 1 + len(_varint(bytes_list)) + bytes_list
    entry_body = 7 + 1 + len(_varint(feature)) + feature
    entry = b"\x0a" + _varint(entry_body) + b"\x0a\x05image\x12" + _varint(feature) + \
        b"\x0a" + _varint(bytes_list) + b"\x0a" + _varint(length)
    after = size_entry + tail
    features = len(front) + len(entry) + length + len(after)
    return b"\x0a" + _varint(features) + front + entry, after


def _pad_entry(key: bytes, total: int) -> bytes | None:
    """The map entry {key: bytes_list [n zero bytes]} of exactly `total` bytes, or None
    where no n gives that length (a varint grows by a byte)."""
    for n in range(max(0, total - 16 - len(key)), total):
        entry = _field(0x0A, _field(0x0A, key) +
                       _field(0x12, _field(0x0A, _field(0x0A, bytes(n)))))
        if len(entry) >= total:
            return entry if len(entry) == total else None
    return None


def _aligning(key: bytes, length_with) -> bytes:
    """The shortest padding entry `key` with which length_with(entry) is a multiple of
    4 KiB (length_with(b""): the length without it; an entry changes it by its own length
    and by at most 2 bytes of varints)."""
    need = -length_with(b"") % ALIGN
    for total in sorted(t for t in (need - d + k * ALIGN for d in range(3) for k in range(3))
                        if t >= 17):
        pad = _pad_entry(key, total)
        if pad is not None and length_with(pad) % ALIGN == 0:
            return pad
    raise AssertionError(f"no padding aligns a record of {length_with(b'')} bytes")


def record_runs(spec, f) -> list[tuple[bytes, bytes, int, int]]:
    """[(head, after, first record, count)]: the records of TFRecord data file f, in runs
    of records with the same bytes around their payload. Samples of ALIGNED_RECORD bytes
    and more start at 4 KiB-aligned file offsets and the file ends at one: record 0's
    Example opens with a "padding" bytes feature that ends its head at 4 KiB, the others
    with one that puts their payload 4 KiB-aligned after the one before; the last ends
    with a "padding_end" one that ends the file at a multiple of 4 KiB."""
    return _runs(f["dims"][0] * f["dims"][1], f["samples"], _size_entry(spec, f))


@functools.lru_cache(maxsize=4096)  # files share dims; writing and index ask alike
def _runs(size, n, size_entry):
    if size < ALIGNED_RECORD:
        head, after = _example(size, size_entry)
        return [(head, after, 0, n)]
    pad, end = b"padding", b"padding_end"

    def head_with(tail, lead):  # padded head of a record after `lead` bytes
        return _example(size, size_entry, _aligning(pad, lambda p: lead + 12 + len(
            _example(size, size_entry, p, tail)[0])), tail)[0]
    gap = size + len(size_entry) + 4  # from a payload's start to the next record's start
    tail = _aligning(end, lambda p: size + len(size_entry) + len(p) + 4)
    last_after = size_entry + tail
    if n == 1:
        return [(head_with(tail, 0), last_after, 0, 1)]
    runs = [(head_with(b"", 0), size_entry, 0, 1)]
    if n > 2:
        runs.append((head_with(b"", gap), size_entry, 1, n - 2))
    return runs + [(head_with(tail, gap), last_after, n - 1, 1)]


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class Records:
    """count TFRecord records: `before` (framing and the Example's head), the Payload of
    stream bytes [offset + i * stride, + size), `after` (the Example's tail) and the masked
    CRC-32C of the Example, continued from head_crc. Written by the core where it has a
    CRC32C library (core_crc32c()), else as parts()."""

    __slots__ = ("before", "head_crc", "after", "offset", "size", "count", "stride")

    def __init__(self, before, head_crc, after, offset, size, count, stride):
        self.before, self.head_crc, self.after = before, head_crc, after
        self.offset, self.size, self.count, self.stride = offset, size, count, stride

    def parts(self):
        import crc32c
        for i in range(self.count):
            yield self.before
            payload = Payload(self.offset + i * self.stride, self.size, "crc32c",
                              self.head_crc, self.stride)
            yield payload
            yield self.after + struct.pack("<I", _masked(crc32c.crc32c(self.after,
                                                                       payload.crc)))


def parts(spec, f):
    import crc32c
    size = f["dims"][0] * f["dims"][1]
    step = stride(size)
    for head, after, first, count in record_runs(spec, f):
        frame = struct.pack("<Q", len(head) + size + len(after))
        frame += struct.pack("<I", _masked(crc32c.crc32c(frame)))
        yield Records(frame + head, crc32c.crc32c(head), after,
                      f["payload_offset"] + first * step, size, count, step)


_CORE_CRC32C = []  # [whether the core has a CRC32C function], once asked


def core_crc32c() -> bool:
    """Whether the core can checksum TFRecord payloads itself, while they are in cache:
    with crc32c_extend() of Google's CRC32C library, which the google-crc32c package's
    extension links (its wheels ship the library; the package's pure-Python build has
    none, and the CRCs are then made here with crc32c)."""
    if not _CORE_CRC32C:
        try:
            from google_crc32c import _crc32c
            _core.use_crc32c(_crc32c.__file__)
            _CORE_CRC32C.append(True)
        except (ImportError, OSError):
            _CORE_CRC32C.append(False)
    return _CORE_CRC32C[0]


def index_lines(spec, f, cuts):
    """The DALI index of TFRecord file f ("offset length" of each record, a line each): an
    iterator of bytes, one piece per (first, end) of `cuts`."""
    starts, at = [], 0  # (first record, its file offset, record length) of each run
    size = f["dims"][0] * f["dims"][1]
    for head, after, first, count in record_runs(spec, f):
        starts.append((first, at, 16 + len(head) + size + len(after)))
        at += count * starts[-1][2]

    def line(i):
        first, at, record = next(r for r in reversed(starts) if r[0] <= i)
        return f"{at + (i - first) * record} {record}\n"
    return ("".join(line(i) for i in range(a, b)).encode() for a, b in cuts)
