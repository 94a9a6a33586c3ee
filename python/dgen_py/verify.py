"""verify_file(): a dataset read back and compared with the bytes its identity defines,
reporting the ranges that differ, are zeros, stale, moved, missing or extra."""

from __future__ import annotations

import contextlib
import errno
import functools
import mmap
import os
import queue
import stat
import threading
import time

from . import _checks, _core
from ._fs import DirectIOUnsupported, Refused, kind, open_in, refuse_not_regular
from ._locks import probe, reading
from ._report import VERIFY_CHUNK, Report
from ._workers import Progress, run_all
from .identity import keywords_in
from .manifest import ALIGN, PART, make_generator, resolve_dataset
from .s3 import _api as objects


def _read_locked(verify):
    """verify(path, ...) run under reading(path): no writer changes the dataset while it
    is read, and none runs when it starts."""
    @functools.wraps(verify)
    def locked(path, *args, **kw):
        if objects.is_url(path):  # a store has no locks
            return verify(path, *args, **kw)
        with reading(_checks.path(path)):
            return verify(path, *args, **kw)
    return locked


@_read_locked
def verify_file(path, *, seed=None, size=None, files=None, dedup_ratio=None,
                compress_ratio=None, dedup_unit=None, dedup_run=None, dedup_shift=None,
                dedup_skew=None, generation=None, change_rate=None, format_version=None,
                direct=False, threads=None, max_ranges=20, progress=None, pieces=None,
                dedup_window=None, content=None, _dataset=None) -> dict:
    """Read a dataset (or the objects at an s3:// URL) back and compare it with the bytes
    its identity defines.

    The identity and file list come from the manifest beside `path` (see write_dataset),
    checked by check_manifest; seed and the ratios override its values, size and files
    must agree with it. Without a manifest they give everything (seed required; size
    defaults to the size of the file or block device, which cannot reveal a truncation;
    files=N means the directory layout of write_dataset). Up to `threads` files (or parts
    of files, where there are fewer files than threads) are checked in parallel, each read
    in 64 MiB windows (4 dedup units where that is more) into its worker's buffers
    (O_DIRECT with direct=True) and checked by one Generator.verifier() per part, so
    memory stays constant (a window and a cache-sized piece per worker); the result lists
    ranges in file order all the same.

    Returns a JSON-ready dict: "ok" (every byte of the dataset read and matching),
    "verdict" ("ok", "mismatch", or "other identity": almost nothing matches, so the data
    was most likely written with other identity values), "warnings" (lines), "path",
    "manifest" (its path or None), "identity", "files" ([{path, offset, length,
    size_on_disk (None: missing)}]), "bytes" (expected), "bytes_read",
    "mismatched_bytes" (including missing and extra bytes), "range_count" (every range),
    "ranges" (the first `max_ranges`, in dataset order, each {file,
    file_offset, offset (dataset), length, kind, belongs_at, belongs_at_file_offset,
    stale_generation}), "seconds". kind is "differs", "zeros" (reads as zeros), "stale" (a
    whole dedup unit holding its content of the older generation stale_generation: a lost
    write), "moved" (a whole dedup unit
    holding the unit that belongs at dataset offset belongs_at, found within one 64 MiB
    chunk), "missing" (the file is shorter than it should be, or absent) or "extra" (the
    file is longer). Ranges separated by fewer than 64 matching bytes are one range.

    pieces ([(file index, file offset, length)], in dataset order) checks only those
    bytes, as one of several processes verifying the dataset together (dgen_py.mpi);
    "ok" then covers them, and "gap_bytes" and "zeros" let the results be combined.

    _dataset: resolve_dataset()'s answer for these arguments, from a caller that holds
    reading(path) since it resolved it: the manifest is not read and checked again.

    An s3://bucket/key URL does what dgen_py.s3.verify_objects() does (docs/s3.md): ranged
    GETs, and its report (files with "size_on_store", and "extra_objects"). direct, pieces
    and _dataset have no meaning there: ValueError naming the option.
    """
    path = _checks.path(path)
    if objects.is_url(path):
        return objects.verify(path, direct=direct, pieces=pieces, dataset=_dataset,
                              files=files, threads=threads, max_ranges=max_ranges,
                              progress=progress, **keywords_in(locals()))
    dataset = _dataset or resolve_dataset(path, files=files, **keywords_in(locals()))
    identity, base, layout = dataset["identity"], dataset["base"], dataset["files"]
    max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)

    threads = _checks.threads(threads) or _core.available_cpus()
    chunk = max(VERIFY_CHUNK, 4 * identity["dedup_unit"])
    parts = _verify_parts(layout, threads, chunk) if pieces is None else pieces
    # File parts are checked in parallel, one worker per part up to the threads; a single
    # worker runs on the calling thread (no pool, no hand-off).
    workers = max(1, min(len(parts), threads))
    report = Report(max_ranges)
    # Pieces of one cache-sized chunk per thread: a worker with more threads shares each.
    each = max(1, threads // workers)
    piece = each * _core.write_chunk()
    _core.check_memory(workers * (chunk + piece))
    # Page-aligned, as O_DIRECT needs: one pair per worker, reused from part to part.
    views = queue.SimpleQueue()
    for _ in range(workers):
        views.put((memoryview(mmap.mmap(-1, chunk)), memoryview(mmap.mmap(-1, piece))))
    # Files from a manifest or a directory layout are opened only inside their directory;
    # a file named on its own, without a manifest, may be a device.
    directory = os.open(base or ".", os.O_RDONLY | os.O_DIRECTORY) if dataset["strict"] \
        else None
    stop = threading.Event()
    shared = Progress(progress)

    def one(part):
        i, at, length = part
        # A part lists at least its first range, which may join the last one before it.
        gen, view = make_generator(identity, each), views.get()
        mine = Report(max(1, max_ranges))
        try:
            return _verify_one(directory, base, layout[i], gen, view, direct, mine,
                               shared if progress else None, (at, at + length), stop), mine
        finally:
            views.put(view)
    started = time.perf_counter()
    try:
        if workers == 1:
            done = [one(part) for part in parts]
        else:
            done = run_all(workers, [functools.partial(one, part) for part in parts], stop)
    finally:
        if directory is not None:
            os.close(directory)
    sizes = {}
    for (i, _, _), (size, mine) in zip(parts, done):  # in dataset order, as one pass lists them
        sizes[i] = size
        report.merge(mine)
    extra = stray_parts(path, layout) if pieces is None and dataset["manifest"] else []
    ok = (report.count == 0 and report.read == sum(length for _, _, length in parts)
          and not extra)
    verdict = "ok" if ok else "other identity" if report.other_identity() else "mismatch"
    return {
        "ok": ok,
        "verdict": verdict,
        "path": path,
        "manifest": dataset["manifest"],
        "identity": identity,
        "files": [{**f, "size_on_disk": sizes[i]} for i, f in enumerate(layout) if i in sizes],
        "bytes": identity["size"],
        "bytes_read": report.read,
        "mismatched_bytes": report.mismatched,
        "range_count": report.count,
        "ranges": report.ranges,
        "extra_files": extra,
        "warnings": [f"{path} has no manifest and no size was given: the size was taken "
                     f"from the file, so a truncated file cannot be detected"]
        if dataset["sized_by_file"] else [],
        "seconds": time.perf_counter() - started,
        **({} if pieces is None else {"gap_bytes": report.gaps, "zeros": report.zeros}),
    }


def stray_parts(path: str, layout: list[dict]) -> list[dict]:
    """[{path, size}] of the part files in directory dataset `path` that `layout` does not
    have: a larger dataset's leftovers, which its writer refuses and a reader of the
    directory reads (none for a single-file dataset)."""
    if not os.path.isdir(path):
        return []
    names = {f["path"] for f in layout}
    with os.scandir(path) as entries:
        return sorted(({"path": e.name, "size": e.stat(follow_symlinks=False).st_size}
                       for e in entries if PART.fullmatch(e.name) and e.name not in names),
                      key=lambda f: f["path"])


def _verify_parts(layout: list[dict], threads: int, window: int) -> list[tuple[int, int, int]]:
    """(file index, file offset, length): whole files, or, with fewer files than threads,
    each file cut for the threads at dataset offsets that are multiples of the verify
    window, so that every window is the one a single pass reads."""
    each = -(-threads // max(1, len(layout)))
    out = []
    for i, f in enumerate(layout):
        start, end = f["offset"], f["offset"] + f["length"]
        cuts = sorted({start, end, *(min(end, max(start, (start + j * f["length"] // each)
                                                  // window * window))
                                     for j in range(1, each))})
        out += [(i, a - start, b - a) for a, b in zip(cuts, cuts[1:])] or [(i, 0, 0)]
    return out


def _verify_one(directory, base, f, gen, views, direct, report, progress, part, stop=None) \
        -> int | None:
    """Check file bytes [part[0], part[1]) of one file, reading them into views = (window,
    piece) buffers; returns its size on disk (None when missing)."""
    at, end = part  # file offsets
    view, small = views
    piece = len(small)
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    path = os.path.join(base, f["path"])
    if direct:  # O_DIRECT on a FIFO fails as where the filesystem lacks it (after a wait)
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(path) if directory is None else \
                os.stat(f["path"], dir_fd=directory, follow_symlinks=False)
            if directory is not None:
                if not stat.S_ISLNK(st.st_mode):  # open_in refuses a symlink itself
                    refuse_not_regular(st, path)
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                raise Refused(errno.EINVAL, f"{path} is {kind(st)}, not a regular file or "
                              f"block device: --direct (O_DIRECT) reads only those")
    try:
        fd = os.open(path, flags) if directory is None else \
            open_in(directory, f["path"], flags, path)
    except FileNotFoundError:
        report.add_gap(f, at, end - at, "missing")
        return None
    except OSError as e:
        if direct and e.errno == errno.EINVAL and not isinstance(e, Refused):
            raise DirectIOUnsupported(errno.EINVAL, f"the filesystem of {path} does not "
                                      f"support O_DIRECT (--direct)") from None
        raise
    try:
        if directory is not None:  # a writer of this file alone: refused while verify reads
            probe(fd, path, shared=True)
    except BaseException:
        os.close(fd)
        raise
    try:
        on_disk = os.lseek(fd, 0, os.SEEK_END)  # st_size is 0 for a block device
        verifier = gen.verifier(max_ranges=report.room)
        chunk, clean = len(view), 0
        while at < end:
            # Windows end on dataset offsets that are multiples of the chunk (and so of
            # the dedup unit), so a moved unit lies wholly within one verifier call.
            want = min(chunk - (f["offset"] + at) % chunk, end - at)
            n, dirty = 0, False
            while n < want:
                # Each piece is read into a small buffer that stays in cache and checked
                # there. From a piece with a mismatch on, the window is gathered in `view`
                # (the pieces before it matched: they are regenerated) and goes to the
                # verifier, whole, for its ranges and moved units.
                start = f["offset"] + at + n
                k = min(piece - start % piece, want - n)
                into = view[n:n + _round_up(k)] if dirty else small[:_round_up(k)]
                # O_DIRECT reads whole blocks; the file's end then gives the short count.
                got = min(k, _read_full(fd, into, at + n))
                if not dirty and not gen.verify(small[:got], start, max_ranges=0).ok:
                    dirty = True
                    gen.seek(f["offset"] + at)
                    gen.readinto(view[:n])
                    view[n:n + got] = small[:got]
                n += got
                if got < k:
                    break
            if n:
                if dirty:
                    verifier.add(view[:n], f["offset"] + at)
                else:
                    clean += n  # the verifier is not shown it: a gap, which no range spans
                if progress:
                    progress(n)
            at += n
            if n < want or (stop and stop.is_set()):
                break
        report.add_file(f, verifier, clean)
        if at < end:
            report.add_gap(f, at, end - at, "missing")
        elif end == f["length"] and on_disk > f["length"]:
            report.add_gap(f, f["length"], on_disk - f["length"], "extra")
        return on_disk
    except OSError as e:  # preadv errors do not name the file
        raise OSError(e.errno, f"reading {path} at offset {at}: {e.strerror}") from None
    finally:
        os.close(fd)


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _read_full(fd: int, view: memoryview, at: int) -> int:
    n = 0
    while n < len(view) and (got := os.preadv(fd, [view[n:]], at + n)):
        n += got
        if got % ALIGN:  # the end of the file
            break
    return n
