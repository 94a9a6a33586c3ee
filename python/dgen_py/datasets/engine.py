"""The stream engine: stream bytes generated a window ahead of their use (Window), the
Writer that writes a file's parts and the Checker that compares a file with them."""

from __future__ import annotations

import mmap
import os
import zlib

from .. import _core
from .formats import parts
from .parts import Payload
from .tfrecord import Records, core_crc32c
from .. import manifest as manifests

WINDOW = 4 << 20  # stream bytes generated at once for payloads that pass through Python
# (small enough that what is written next is still in cache, as in the core's write loop)
FLUSH = 1 << 20  # gathered writes go out at this many bytes ...
IOV_MAX = 512  # ... or this many pieces
DIRECT_WRITE = 1 << 20  # payload extents at least this long are written by the core
COMPARE = 8 << 20  # file bytes verify reads and compares at once


class Window:
    """Stream bytes generated WINDOW at a time, served as views; while the caller writes
    one window, a thread generates the next (two buffers, the Generator's own threads
    releasing the GIL), so generation and writing overlap as in the core's write loop."""

    def __init__(self, identity, threads, before_refill=None):
        from concurrent.futures import ThreadPoolExecutor
        self.gen, self.before_refill = manifests.make_generator(identity, threads), before_refill
        self.views = [memoryview(mmap.mmap(-1, WINDOW)) for _ in range(2)]
        self.start = self.end = 0
        self.sums, self.key = {}, None
        # ahead: the next window being generated, (start, length, checksum, future, end,
        # step), or None
        self.pool, self.ahead = ThreadPoolExecutor(1), None

    def _fill(self, view, offset, n, length, checksum, step):
        """Generate stream bytes [offset, offset + n) into view; with checksum = (function,
        start), the checksum of each piece of `length` (one every `step` bytes) too (so it
        is made here, beside the writes of the other window, not in the caller's thread)."""
        self.gen.seek(offset)
        self.gen.readinto(view[:n])
        if checksum:
            crc, start = checksum
            return {offset + i: crc(view[i:i + length], start)
                    for i in range(0, n - length + 1, step)}
        return {}

    def get(self, offset: int, length: int, limit: int, checksum=None, step=None):
        """(view of bytes [offset, offset + length), their checksum or None); length <=
        WINDOW. A window runs on up to `limit` and holds whole pieces of `length`, one
        every `step` bytes (default length: records of one size follow each other in the
        stream), so that the next window starts where the next piece does; checksum =
        (function, start) asks for the piece's checksum."""
        step = step or length
        if not (self.start <= offset and offset + length <= self.end):
            if self.before_refill:
                self.before_refill()  # nothing refers to the current buffer any more
            ahead, self.ahead = self.ahead, None
            sums = ahead[3].result() if ahead else None
            if ahead and ahead[:3] == (offset, length, checksum) and ahead[5] == step:
                self.views.reverse()
                self.start, self.end, self.sums = offset, ahead[4], sums
            else:
                self.start = offset
                self.end = offset + self._size(offset, length, step, limit)[0]
                self.sums = self._fill(self.views[0], offset, self.end - self.start, length,
                                       checksum, step)
            self.key = (length, checksum, step)
            after = self.start + self._size(self.start, length, step, limit)[1]
            if after + length <= limit:
                n = self._size(after, length, step, limit)[0]
                self.ahead = (after, length, checksum,
                              self.pool.submit(self._fill, self.views[1], after, n, length,
                                               checksum, step), after + n, step)
        view = self.views[0][offset - self.start:offset - self.start + length]
        if not checksum:
            return view, None
        if self.key == (length, checksum, step) and offset in self.sums:
            return view, self.sums[offset]
        return view, checksum[0](view, checksum[1])  # a piece of another kind

    @staticmethod
    def _size(offset, length, step, limit) -> tuple[int, int]:
        """(bytes of a window from offset: whole pieces, up to WINDOW and limit, at least
        one; the offset of the piece after them, relative)."""
        k = max(1, (min(WINDOW, limit - offset) - length) // step + 1)
        return (k - 1) * step + length, k * step

    def close(self):
        if self.ahead:
            self.ahead[3].result()
        self.pool.shutdown()


def chunks(part, window, limit, crc):
    """(stream offset, view) of each piece of a Payload's bytes (each at most WINDOW),
    setting part.crc at the end (crc: the checksum function)."""
    if part.length <= WINDOW:
        view, value = window.get(part.offset, part.length, limit,
                                 (crc, part.start) if part.crc else None, part.step)
        yield part.offset, view
        if part.crc:
            part.crc = value
        return
    value = part.start
    for at in range(part.offset, part.offset + part.length, WINDOW):
        view, _ = window.get(at, min(WINDOW, part.offset + part.length - at), limit)
        if part.crc:
            value = crc(view, value)
        yield at, view
    if part.crc:
        part.crc = value


def crc_function(name):
    if name == "crc32c":
        import crc32c
        return crc32c.crc32c
    return zlib.crc32


class Writer:
    """Writes the parts of one file at a time, gathered into large pwritev calls (long
    payloads and TFRecord records written by the core)."""

    def __init__(self, identity, threads, progress):
        self.gen = manifests.make_generator(identity, threads)
        self.window = Window(identity, threads, self.flush)
        self.progress = progress
        self.pending, self.pending_bytes, self.fd, self.at = [], 0, None, 0

    def flush(self):
        while self.pending:
            n = os.pwritev(self.fd, self.pending, self.at - self.pending_bytes)
            self.pending_bytes -= n
            if self.pending_bytes == 0:
                self.pending = []
                break
            self.pending = [b"".join(bytes(p) for p in self.pending)[n:]]  # a short write

    def add(self, data):
        self.pending.append(data)
        self.pending_bytes += len(data)
        self.at += len(data)
        if self.pending_bytes >= FLUSH or len(self.pending) >= IOV_MAX:
            self.flush()

    def write(self, fd, spec, f) -> int:
        self.fd, self.at = fd, 0
        limit = f["payload_offset"] + f["payload"]
        try:
            for part in expanded(parts(spec, f), core_crc32c()):
                if isinstance(part, Records):
                    self.flush()
                    self.at += self.gen._s.write_tfrecords(
                        fd, part.before, part.head_crc, part.after, part.offset, part.size,
                        part.count, self.at, tick=self._tick, stride=part.stride)
                elif isinstance(part, (bytes, bytearray)):
                    if part:
                        self.add(part)
                elif isinstance(part, Payload) and not part.crc and part.length >= DIRECT_WRITE:
                    self.flush()
                    self.gen._s.write(fd, part.offset, part.length, self.at, False,
                                      tick=self._tick)
                    self.at += part.length
                elif isinstance(part, Payload):
                    for _, view in chunks(part, self.window, limit, crc_function(part.crc)):
                        self.add(view)
                        self._tick(len(view))
                else:  # Encoded: the whole payload at once
                    self.add(part.encode(payload_array(self.gen, part)))
                    self._tick(part.length)
            self.flush()
        finally:
            self.pending, self.pending_bytes = [], 0
        return self.at

    def _tick(self, n):
        if self.progress:
            self.progress(n)


def expanded(parts, keep_records=False):
    """parts with each Records replaced by its own parts (unless keep_records)."""
    for part in parts:
        if isinstance(part, Records) and not keep_records:
            yield from part.parts()
        else:
            yield part


def payload_array(gen, part):
    """A Payload's bytes as a new uint8 numpy array."""
    import numpy as np
    _core.check_memory(part.length)
    values = np.empty(part.length, np.uint8)
    gen.seek(part.offset)
    gen.readinto(memoryview(values))
    return values


class Checker:
    """Compares one file at a time with its parts, recording mismatching ranges."""

    def __init__(self, identity, threads, max_ranges, progress):
        self.gen = manifests.make_generator(identity, threads)
        self.window = Window(identity, threads)
        self.max_ranges, self.progress = max_ranges, progress
        self.ranges, self.count, self.mismatched, self.read = [], 0, 0, 0

    def add_range(self, path, at, length, kind, stream=None):
        """Count `length` bytes of file `path` from `at` that are not what they should be
        (kind: "payload" at stream offset `stream`, "container", "encoded", "missing",
        "extra"), and list them while fewer than max_ranges are listed."""
        self.count += 1
        self.mismatched += length
        if len(self.ranges) < self.max_ranges:
            self.ranges.append({"file": path, "file_offset": at, "length": length,
                                "kind": kind, "offset": stream})

    def _compare(self, fd, path, at, expected, kind, stream=None) -> int:
        """File bytes at `at` against `expected`; the bytes the file had of them. Read and
        compared COMPARE bytes at a time (an encoded row group can be 256 MiB); a damaged
        range that crosses pieces is recorded once."""
        import numpy as np
        expected = memoryview(expected).cast("B")
        done, run = 0, None  # run: the last damaged [start, end); the next piece may go on
        while done < len(expected):
            got = os.pread(fd, min(COMPARE, len(expected) - done), at + done)
            self.read += len(got)
            if not got:
                break
            a = np.frombuffer(expected[done:done + len(got)], np.uint8)
            diff = np.flatnonzero(a != np.frombuffer(got, np.uint8))
            if diff.size:
                breaks = np.flatnonzero(np.diff(diff) > 1)
                starts = (np.concatenate(([diff[0]], diff[breaks + 1])) + done).tolist()
                ends = (np.concatenate((diff[breaks], [diff[-1]])) + done + 1).tolist()
                if run and starts[0] == run[1]:
                    starts[0] = run[0]
                elif run:
                    self._damaged(path, at, run, kind, stream)
                run = [starts[-1], ends[-1]]
                for s, e in zip(starts[:-1], ends[:-1]):
                    self._damaged(path, at, (s, e), kind, stream)
            elif run:
                self._damaged(path, at, run, kind, stream)
                run = None
            done += len(got)
        if run:
            self._damaged(path, at, run, kind, stream)
        return done

    def _damaged(self, path, at, run, kind, stream):
        s, e = run
        self.add_range(path, at + s, e - s, kind, None if stream is None else stream + s)

    def check(self, fd, path, expected_parts, limit=0, size=0) -> None:
        """Compare the file with its parts. Where the file ends early the parts left are
        not made (a manifest that asks for more than is there costs what is there): one
        missing range from there to `size`, the file's length in the manifest. TFRecord
        records are made by the core's writer where it has a CRC32C library (records of a
        few KiB cost three reads and compares each otherwise)."""
        at = 0
        for part in expanded(expected_parts, core_crc32c()):
            if isinstance(part, Records):
                if (at := self._compare_records(fd, path, at, part, size)) is None:
                    return  # the file ended
                continue
            if isinstance(part, (bytes, bytearray)):
                pieces = [(part, "container", None)]
            elif isinstance(part, Payload):
                pieces = ((view, "payload", stream) for stream, view in
                          chunks(part, self.window, limit, crc_function(part.crc)))
            else:
                pieces = [(part.encode(payload_array(self.gen, part)), "encoded", None)]
            for data, kind, stream in pieces:
                got = self._compare(fd, path, at, data, kind, stream)
                if got < len(data):
                    self.add_range(path, at + got, max(0, size - at - got), "missing")
                    return
                at += len(data)
                if self.progress and kind != "container":
                    self.progress(len(data))
        if (extra := os.fstat(fd).st_size - at) > 0:
            self.add_range(path, at, extra, "extra")

    def _compare_records(self, fd, path, at, r, size):
        """TFRecord records (a Records) at `at`, written by the core into memory about
        COMPARE bytes at a time and compared there: the file offset after them, or None
        where the file ends in them. A damaged range is reported per piece, as the parts
        would give it: the framing and head (`before`), the payload, the tail and CRC."""
        import numpy as np
        head, record = len(r.before), len(r.before) + r.size + len(r.after) + 4
        per = max(1, COMPARE // record)
        mem = os.memfd_create("dgen-verify")
        try:
            for first in range(0, r.count, per):
                k = min(per, r.count - first)
                n = self.gen._s.write_tfrecords(mem, r.before, r.head_crc, r.after,
                                                r.offset + first * r.stride, r.size, k, 0,
                                                stride=r.stride)
                want = os.pread(mem, n, 0)
                got = bytearray()
                while len(got) < n and (more := os.pread(fd, n - len(got), at + len(got))):
                    got += more
                self.read += len(got)
                diff = np.flatnonzero(np.frombuffer(want, np.uint8)[:len(got)] !=
                                      np.frombuffer(got, np.uint8))
                if diff.size:
                    rel = diff % record
                    piece = (diff // record) * 3 + (rel >= head) + (rel >= head + r.size)
                    cut = np.flatnonzero((np.diff(diff) > 1) | (np.diff(piece) != 0))
                    starts = np.concatenate(([0], cut + 1)).tolist()
                    ends = np.concatenate((cut, [diff.size - 1])).tolist()
                    for a, b in zip(starts, ends):
                        s, e = int(diff[a]), int(diff[b]) + 1
                        j, p = divmod(int(piece[a]), 3)
                        stream = (r.offset + (first + j) * r.stride + s % record - head
                                  if p == 1 else None)
                        self.add_range(path, at + s, e - s, "payload" if p == 1 else
                                       "container", stream)
                if len(got) < n:
                    self.add_range(path, at + len(got), max(0, size - at - len(got)),
                                   "missing")
                    return None
                if self.progress:
                    self.progress(k * r.size)
                at += n
        finally:
            os.close(mem)
        return at

