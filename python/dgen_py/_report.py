"""The report of a verify: the mismatching ranges of a dataset's files (or objects),
collected from the core's Verifiers part by part and merged in dataset order. Shared by
verify_file(), the S3 verify (s3/_verify.py) and the ranks of an MPI verify (mpi.py)."""

from __future__ import annotations

import os

from . import _core
from .manifest import ALIGN

VERIFY_CHUNK = 64 * 1024 * 1024  # bytes read and checked as one window


def joined(a: dict, b: dict) -> dict | None:
    """The one range a single verify pass would have made of ranges a and b, found by two
    passes over adjacent parts, or None: ranges less than VERIFY_GAP (64) matching bytes
    apart are one, except whole units moved or stale."""
    kinds = {a["kind"], b["kind"]}
    if not (a["file"] == b["file"] and a["offset"] + a["length"] + _core.VERIFY_GAP > b["offset"]
            and (kinds <= {"differs", "zeros"} or kinds == {"missing"})):
        return None
    kind = a["kind"] if a["kind"] == b["kind"] and (
        a["kind"] == "missing" or a["offset"] + a["length"] == b["offset"]) else "differs"
    return {**a, "length": b["offset"] + b["length"] - a["offset"], "kind": kind}


class Report:
    """Collects mismatching ranges over the files of a dataset: each file's reads go to one
    core Verifier, which merges a range that runs on across a read boundary."""

    def __init__(self, max_ranges: int):
        self.max_ranges = max_ranges
        self.ranges: list[dict] = []
        self.count = self.mismatched = self.read = self.gaps = 0
        self.zeros = False
        self.last = None  # the last range counted, where known, listed or not

    @property
    def room(self) -> int:
        return self.max_ranges - len(self.ranges)

    def add_file(self, f: dict, verifier, clean: int = 0) -> None:
        """The ranges of one file, from its Verifier once every read was added, and the
        bytes found matching without it."""
        r = verifier.result
        self.read += r.bytes + clean
        self.mismatched += r.mismatched_bytes
        self.count += r.range_count
        listed = [self._range(m, f) for m in r.ranges]  # it was given self.room
        self.ranges += listed
        self.zeros |= any(m.zeros for m in r.ranges)
        if r.range_count:
            self.last = listed[-1] if len(listed) == r.range_count else \
                self._range(verifier.last, f)

    def merge(self, other: Report) -> None:
        """The ranges of the file parts `other` saw, after those seen so far; a range that
        runs on across the cut between them is one."""
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
        self.ranges += own[:self.room]

    def other_identity(self) -> bool:
        """Almost nothing matches: 90% of the bytes read differ (another seed, dedup ratio
        or unit), or nearly every 4 KiB page holds a mismatch of at least 1% of its bytes
        on average (another compress ratio: the pages' random and filler parts end
        elsewhere, tens to thousands of bytes apart), and no range reads as zeros. Damage
        looks otherwise, also a few bytes changed in every page: the pages nearly match."""
        differing, pages = self.mismatched - self.gaps, self.read // ALIGN
        return self.read > 0 and not self.zeros and (
            differing >= 0.9 * self.read or (pages >= 16 and self.count >= 0.99 * pages
                                             and differing >= 0.01 * self.read))

    @staticmethod
    def _range(m, f: dict) -> dict:
        moved, stale = m.belongs_at is not None, m.stale_generation is not None
        return {"file": f["path"], "file_offset": m.offset - f["offset"], "offset": m.offset,
                "length": m.length,
                "kind": ("moved" if moved else "stale" if stale else
                         "zeros" if m.zeros else "differs"),
                "belongs_at": m.belongs_at,
                "belongs_at_file_offset": m.belongs_at - f["offset"] if moved else None,
                "stale_generation": m.stale_generation}

    def add_gap(self, f: dict, at: int, length: int, kind: str) -> None:
        """Bytes missing from (or extra at the end of) a file."""
        self.count += 1
        self.mismatched += length
        self.gaps += length
        self.last = {"file": f["path"], "file_offset": at, "offset": f["offset"] + at,
                     "length": length, "kind": kind, "belongs_at": None,
                     "belongs_at_file_offset": None, "stale_generation": None}
        if self.room > 0:
            self.ranges.append(self.last)


def extra_lines(path: str, extra: list[dict]) -> list[str]:
    """What verify prints of the files a directory dataset holds and its manifest does not
    list ([{path, size}], paths relative to `path`)."""
    return [f"extra file {os.path.join(path, f['path'])} ({f['size']} bytes): not in this "
            f"dataset (delete it, or write with --force)" for f in extra]
