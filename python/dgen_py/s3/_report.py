"""The mismatching ranges of a dataset of objects, in the shape verify_file() reports."""

from __future__ import annotations

from ..manifest import ALIGN
from ..verify import joined


class Tally:
    """Ranges of the objects (or parts of them) checked so far, in dataset order; a range
    that runs on across the cut between two parts of one object is one."""

    def __init__(self, max_ranges: int):
        self.max_ranges = max_ranges
        self.ranges: list[dict] = []
        self.count = self.mismatched = self.read = self.gaps = 0
        self.zeros = self.short = False
        self.last = None  # the last range counted, listed or not

    @property
    def room(self) -> int:
        return self.max_ranges - len(self.ranges)

    def add_file(self, o: dict, verifier, clean: int) -> None:
        """An object's ranges, from its Verifier, and the bytes that matched without it."""
        r = verifier.result
        self.read += r.bytes + clean
        self.mismatched += r.mismatched_bytes
        self.count += r.range_count
        listed = [_range(m, o) for m in r.ranges][:max(0, self.room)]
        self.ranges += listed
        self.zeros |= any(m.zeros for m in r.ranges)
        if r.range_count:
            self.last = listed[-1] if len(listed) == r.range_count else \
                _range(verifier.last, o)

    def add_gap(self, o: dict, at: int, length: int, kind: str) -> None:
        """Bytes missing from (or extra at the end of) an object."""
        self.count += 1
        self.mismatched += length
        self.gaps += length
        self.last = {"file": o["path"], "file_offset": at, "offset": o["offset"] + at,
                     "length": length, "kind": kind, "belongs_at": None,
                     "belongs_at_file_offset": None, "stale_generation": None}
        if self.room > 0:
            self.ranges.append(self.last)

    def merge(self, other: Tally) -> None:
        own = list(other.ranges)
        last = other.last if other.count else self.last
        if self.last and own and (one := joined(self.last, own[0])):
            if self.ranges and self.ranges[-1] is self.last:
                self.ranges[-1] = one
            last = one if other.count == 1 else other.last
            own.pop(0)
            self.count -= 1
        self.last = last
        self.count += other.count
        self.mismatched += other.mismatched
        self.read += other.read
        self.gaps += other.gaps
        self.zeros |= other.zeros
        self.ranges += own[:max(0, self.room)]

    def other_identity(self) -> bool:
        """Almost nothing matches (as verify_file() judges it): most likely other identity
        values, not damage."""
        differing, pages = self.mismatched - self.gaps, self.read // ALIGN
        return self.read > 0 and not self.zeros and (
            differing >= 0.9 * self.read or (pages >= 16 and self.count >= 0.99 * pages
                                             and differing >= 0.01 * self.read))


def _range(m, o: dict) -> dict:
    moved, stale = m.belongs_at is not None, m.stale_generation is not None
    return {"file": o["path"], "file_offset": m.offset - o["offset"], "offset": m.offset,
            "length": m.length,
            "kind": ("moved" if moved else "stale" if stale else
                     "zeros" if m.zeros else "differs"),
            "belongs_at": m.belongs_at,
            "belongs_at_file_offset": m.belongs_at - o["offset"] if moved else None,
            "stale_generation": m.stale_generation}
