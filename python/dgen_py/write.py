"""write_dataset(): a dataset's files written by parallel writers, then its manifest.

Each writer has its own Generator seeked to its range (the bytes depend only on the
offset) and writes from cache-sized chunks in the core, without the GIL. The dataset is
claimed first (locked, files checked, stale files refused or deleted; see
_locks.claim_dataset), and the manifest is written last, so that no manifest ever claims data
that is not there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time

from . import _checks, _core
from ._fs import Refused, check_direct, fsync_dir, open_in
from ._locks import claim_dataset, inside, probe
from ._generator import DEFAULT_DEDUP_UNIT
from ._workers import Progress, run_all
from .identity import keywords_in
from .manifest import (ALIGN, MAX_FILES, PART, file_layout, make_generator,
                       make_identity, manifest_path, manifest_record, split_points,
                       write_manifest)
from .s3 import _api as objects


def writer_buffer(threads: int = 1) -> int:
    """Bytes of buffer one writer holds when it has `threads` threads: cache-sized chunks
    (one, or one per producer thread and two more)."""
    return _core.write_memory(threads)


def write_dataset(path, size, *, files=1, dedup_ratio=1.0, compress_ratio=1.0, seed=None,
                  dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=1, dedup_shift=False,
                  dedup_skew="uniform", generation=0, change_rate=1.0,
                  format_version=_core.FORMAT_VERSION, direct=False, fsync=False, jobs=1,
                  threads=None, force=False, progress=None, job=None,
                  dedup_window=_core.WINDOW_UNITS, dedup_for=None, content="flat") -> dict:
    """Write a dataset of `size` bytes to `path` (or as objects to an s3:// URL) and return
    its manifest.

    files=1: `path` is the file, the manifest is `path`.dgen.json. files=N: `path` is a
    directory (created if needed) holding part-00000 ... and dgen-manifest.json. `jobs`
    writers run in parallel, each with its own Generator seeked to its range (the bytes
    depend only on the offset) and its own cache-sized chunks (see writer_buffer), written
    by the core without the GIL; `threads` (default: every CPU this process may use) are
    shared among them. direct=True writes with O_DIRECT from page-aligned
    buffers (a final partial 4 KiB block goes through the page cache) and raises
    DirectIOUnsupported where the filesystem refuses it. fsync=True fsyncs every file and
    the directory before the manifest is written.

    Refused (an OSError) is raised, before any existing file changes, when another writer
    holds the dataset, when a data file is not a regular file (a symlink, device or FIFO),
    and when the directory holds part-* files the new dataset does not (force=True deletes
    them). Only once every file has been opened is an earlier manifest removed; the new
    one is written atomically after all data, so no manifest ever claims data that is not
    there. progress(n) is called with each count of bytes written, one call at a time.

    job: this process is one of several writing the dataset together (see dgen_py.mpi):
    it writes job.pieces ([(file index, file offset, length)]); only where job.lead is
    the dataset claimed (locked, files created and emptied) and the manifest made and
    written: elsewhere it returns only "manifest" and "seconds".
    job.ready() is called before writing, job.written(seconds) after; either may raise.

    An s3://bucket/key URL does what dgen_py.s3.write_objects() does (docs/s3.md; "manifest"
    is then its URL): the same names, offsets and manifest as objects. direct, fsync, jobs
    other than 1 and job have no meaning there: ValueError naming the option.
    """
    path = _checks.path(path)
    if objects.is_url(path):
        return objects.write(path, files=files, direct=direct, fsync=fsync, jobs=jobs, job=job,
                             threads=threads, force=force, progress=progress,
                             **keywords_in(locals()))
    identity = make_identity(**keywords_in(locals()))
    files = _checks.integer("files", files, 1, MAX_FILES)
    direct = _checks.flag("direct", direct)
    fsync = _checks.flag("fsync", fsync)
    jobs = _checks.integer("jobs", jobs, 1, _checks.MAX_THREADS)
    threads = _checks.threads(threads) or _core.available_cpus()
    if files > 1:
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"path must be a directory for files={files}, got the file {path}")
        os.makedirs(path, exist_ok=True)
    base, layout = file_layout(path, identity["size"], files)
    directory = os.open(base or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _write(path, base, directory, layout, identity, direct, fsync, jobs,
                      threads, force, progress, job)
    finally:
        os.close(directory)  # and with it the lock


def _write(path, base, directory, layout, identity, direct, fsync, jobs, threads, force,
           progress, job=None) -> dict:
    def shown(name):
        return os.path.join(base, name)

    # Everything that can refuse runs before the first change: the old manifest and data
    # stay valid together until the new data starts.
    pieces = cut_pieces(layout, jobs) if job is None else job.pieces
    writers = min(jobs, max(1, len(pieces)))
    _core.check_memory(writers * writer_buffer(max(1, threads // writers)))
    if direct:
        check_direct(base or ".")
    single = not os.path.isdir(path)
    flags = os.O_WRONLY | os.O_CREAT
    lead = job is None or job.lead  # claims the dataset and writes the manifest
    if lead:
        inside(path)  # before a refused write creates the file
    held = open_in(directory, layout[0]["path"], flags, shown(layout[0]["path"])) \
        if single and lead else os.dup(directory)
    manifest = manifest_path(path)

    def survey():  # opening the new files refuses any that is not a regular file, or that
        for f in layout[1:] if single else layout:  # a writer of that file alone holds
            fd = open_in(directory, f["path"], flags, shown(f["path"]))
            try:
                probe(fd, shown(f["path"]), shared=False)
            finally:
                os.close(fd)
        new = {f["path"] for f in layout}
        return [] if single else sorted(n for n in os.listdir(directory)
                                        if PART.fullmatch(n) and n not in new), []

    release = lambda: None  # noqa: E731
    try:
        if lead:
            release = claim_dataset(directory, path, manifest, survey, force=force,
                                    what="part file(s)", held=held)
        started = time.perf_counter()
        # Cut every file to at most its new length once, before the writers share them:
        # what stays is overwritten in place (as fio does; no blocks freed and allocated
        # again), what is new is appended. Only the lead process of a job does it.
        for f in layout if lead else ():
            fd = open_in(directory, f["path"], os.O_WRONLY, shown(f["path"]))
            try:
                if os.fstat(fd).st_size > f["length"]:
                    os.ftruncate(fd, f["length"])
            finally:
                os.close(fd)
        if job:
            job.ready()
            started = time.perf_counter()
        per_writer = max(1, threads // writers)
        stop = threading.Event()
        report = Progress(progress)
        run_all(jobs, [functools.partial(
            _write_piece, directory, shown(layout[i]["path"]), layout[i]["path"],
            layout[i]["offset"], at, length, identity, direct, fsync, per_writer, stop, report)
            for i, at, length in pieces], stop)
        if fsync:
            fsync_dir(base or ".")
        seconds = time.perf_counter() - started
        # Only the lead writes the manifest: the others skip its per-file holds, a count
        # of every unit of the dataset (up to a second or two each).
        record = manifest_record(identity, layout, direct=direct, fsync=fsync) if lead else {}
        if job:
            job.written(seconds)
        if lead:
            write_manifest(manifest, record)
    finally:
        release()
        os.close(held)
    return {**record, "manifest": manifest, "seconds": seconds}


def cut_pieces(layout: list[dict], jobs: int) -> list[tuple[int, int, int]]:
    """(file index, file offset, length): whole files, or each file cut in 4 KiB-aligned
    parts when there are fewer files than jobs."""
    nonempty = [i for i, f in enumerate(layout) if f["length"]]
    parts = -(-jobs // max(1, len(nonempty)))
    out = []
    for i in nonempty:
        cuts = split_points(layout[i]["length"], parts)
        out += [(i, a, b - a) for a, b in zip(cuts, cuts[1:]) if b > a]
    return out


@contextlib.contextmanager
def naming(shown: str):
    """pwrite and fsync errors do not name the file: the OSErrors raised inside do."""
    try:
        yield
    except OSError as e:
        if isinstance(e, Refused):
            raise
        raise OSError(e.errno, f"writing {shown}: {e.strerror}") from None


def write_span(stream, fd, tail, at, length, pos, direct, tick) -> bool:
    """Write dataset bytes [at, at + length) at offset pos of the file open as fd (O_DIRECT
    with direct: whole 4 KiB blocks only; a final partial one goes through tail, the same
    file open through the cache). False when tick() stopped it."""
    aligned = length // ALIGN * ALIGN if direct else length
    if stream.write(fd, at, aligned, pos, direct, tick=tick) < aligned:
        return False
    if aligned < length:
        stream.write(tail, at + aligned, length - aligned, pos + aligned, tick=tick)
    return True


def _write_piece(directory, shown, name, start, at, length, identity, direct, fsync,
                 threads, stop, progress):
    """Write file bytes [at, at + length) of the file that starts at dataset offset start.
    The loop runs in the core without the GIL (Stream.write), from cache-sized chunks."""
    stream = make_generator(identity, threads)._s

    def tick(n):
        progress(n)
        return stop.is_set()
    fd = open_in(directory, name, os.O_WRONLY | (os.O_DIRECT if direct else 0), shown)
    tail = fd
    try:
        if direct:
            tail = open_in(directory, name, os.O_WRONLY, shown)
        with naming(shown):
            if write_span(stream, fd, tail, start + at, length, at, direct, tick) and fsync \
                    and not stop.is_set():
                os.fsync(fd)
    finally:
        if tail != fd:
            os.close(tail)
        os.close(fd)


