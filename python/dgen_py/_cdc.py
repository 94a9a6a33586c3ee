"""What a content-defined chunking engine stores: FastCDC over a stream (analyze's cdc=)."""

from __future__ import annotations

import numbers

import xxhash

from . import _checks


class Chunker:
    """FastCDC over a stream fed in pieces, cut exactly as over one buffer: a cut point
    depends only on the bytes from its chunk's start, so the last chunk of each piece
    (cut short by the piece's end) is carried into the next and cut again."""

    def __init__(self, average):
        try:
            from pyfastcdc import FastCDC
        except ImportError:  # an optional package, as the dataset formats' are
            raise ValueError("cdc needs the Python package pyfastcdc: pip install '.[cdc]' "
                             "in dgen's source tree") from None
        self.average = average
        self.cut = FastCDC(avg_size=average).cut_buf
        self.carry = b""
        self.stored = {}
        self.chunks = 0

    def feed(self, view):
        data = self.carry + view if self.carry else view
        last = None
        for last in self.cut(data):
            if last.offset + last.length < len(data):
                self._add(last.data)
        self.carry = bytes(last.data) if last is not None else b""

    def finish(self):
        if self.carry:
            self._add(self.carry)
            self.carry = b""

    def _add(self, chunk):
        self.chunks += 1
        self.stored.setdefault(xxhash.xxh3_128_digest(chunk), len(chunk))

    def result(self, total):
        stored = sum(self.stored.values())
        return {"chunks": self.chunks, "unique": len(self.stored), "stored_bytes": stored,
                "ratio": total / stored if stored else None}


def cdc_sizes(value) -> list[int]:
    sizes = sorted({_checks.integer("cdc", v, 256, 2**28)
                    for v in ((value,) if isinstance(value, numbers.Integral) else value)})
    for v in sizes:
        if v & (v - 1):
            raise ValueError(f"cdc average chunk sizes must be powers of two in [256, 2**28], "
                             f"got {v}")
    return sizes
