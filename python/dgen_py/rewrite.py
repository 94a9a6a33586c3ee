"""rewrite_changed(): a dataset rewritten in place into its next generation, writing only
the dedup units whose content the generation changed."""

from __future__ import annotations

import bisect
import errno
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from . import _checks, _core
from ._fs import Refused, check_direct, fsync_dir, open_in
from ._locks import lock
from ._generator import DEFAULT_DEDUP_UNIT
from ._workers import Progress
from .identity import keywords_in
from .manifest import (MAX_FILES, check_manifest, load_dataset_manifest, make_generator,
                       make_identity, manifest_path, manifest_record,
                       refuse_replaced_by_directory, write_manifest)
from .s3._store import is_url
from .write import naming, write_span

# Units whose changed ranges are listed at a time: bounds memory, and the listing (about
# 0.13 s for 2^18 units, during which Ctrl-C waits) between batches.
REWRITE_UNITS = 1 << 18


def rewrite_changed(path, size, *, dedup_ratio=1.0, compress_ratio=1.0, seed=None,
                    dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=1, dedup_shift=False,
                    dedup_skew="uniform", generation=1, change_rate=1.0,
                    format_version=_core.FORMAT_VERSION, files=1, direct=False, fsync=False,
                    jobs=1, threads=None, progress=None, dedup_window=_core.WINDOW_UNITS,
                    dedup_for=None, content="flat") -> dict:
    """Rewrite in place the dataset at `path`, written as generation - 1, into `generation`:
    only the units whose content differs between the two are written (at their offsets),
    then the manifest is updated to `generation`. Returns the new manifest with
    "rewritten": {"units", "bytes", "ranges"}.

    Refused (an OSError), before any byte is written, when the dataset has no manifest,
    when the manifest's identity differs from the one given (seed=None takes the
    manifest's) or its generation is not generation - 1, or when a data file has another
    length (FileNotFoundError where one is missing). While the data changes the manifest
    says so ("complete": false, "rewrite_generation"): verify refuses the dataset, and the
    same rewrite can be run again to finish it. An s3:// URL is refused (ValueError):
    objects are not rewritten in place (docs/s3.md)."""
    path = _checks.path(path)
    if is_url(path):
        raise ValueError(f"path {path}: rewrites in place are for file systems; a dataset "
                         f"on S3 is written again whole (write_dataset with its generation)")
    generation = _checks.integer("generation", generation, 1, _core.MAX_GENERATION)
    shown_manifest = manifest_path(path)
    record = load_dataset_manifest(path)
    refuse_replaced_by_directory(path, record)
    if record is None:
        raise Refused(errno.ENOENT, f"--changed-only (changed_only=True): {path} has no "
                      f"manifest ({shown_manifest}) to rewrite from; write the dataset first")
    if record.get("complete") is False and record.get("rewrite_generation") == generation:
        record = {**record, "complete": True}  # an earlier run of this rewrite, unfinished
    record = check_manifest(record, shown_manifest)
    old = record["identity"]
    identity = make_identity(**{**keywords_in(locals()),
                                "seed": old["seed"] if seed is None else seed})
    # content is recorded only when it is not flat: compared with that default.
    for field, value in {**identity, "content": identity.get("content", "flat")}.items():
        expected = generation - 1 if field == "generation" else value
        had = old.get("content", "flat") if field == "content" else old[field]
        if had != expected:
            what = (f"generation {had}, but the rewrite to generation {generation} "
                    f"needs generation {generation - 1}" if field == "generation" else
                    f"{field} {had!r}, not the {value!r} given")
            raise Refused(errno.EINVAL, f"--changed-only: the manifest {shown_manifest} "
                          f"records {what}; give the identity the dataset was written with")
    layout = record["files"]
    files = _checks.integer("files", files, 1, MAX_FILES)
    if files != len(layout) and files != 1:
        raise Refused(errno.EINVAL, f"--changed-only: files {files} differs from the "
                      f"{len(layout)} of the manifest {shown_manifest}")
    direct = _checks.flag("direct", direct)
    fsync = _checks.flag("fsync", fsync)
    jobs = _checks.integer("jobs", jobs, 1, _checks.MAX_THREADS)
    threads = _checks.threads(threads) or _core.available_cpus()
    base = path if os.path.isdir(path) else os.path.dirname(path)
    directory = os.open(base or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        if direct:
            check_direct(base or ".")
        single = not os.path.isdir(path)
        held = (open_in(directory, layout[0]["path"], os.O_WRONLY,
                        os.path.join(base, layout[0]["path"])) if single else os.dup(directory))
        release = lambda: None  # noqa: E731
        try:
            release = lock(held, path)
            for f in layout:
                shown = os.path.join(base, f["path"])
                fd = open_in(directory, f["path"], os.O_RDONLY, shown)
                try:
                    if os.fstat(fd).st_size != f["length"]:
                        raise Refused(errno.EINVAL, f"--changed-only: {shown} "
                                      f"holds {os.fstat(fd).st_size} bytes, not the "
                                      f"{f['length']} of the manifest; write it whole")
                finally:
                    os.close(fd)
            write_manifest(shown_manifest, {**record, "complete": False,
                                            "rewrite_generation": generation})
            started = time.perf_counter()
            done = _rewrite(directory, base, layout, identity, generation, direct, fsync,
                            jobs, threads, Progress(progress))
            if fsync:
                fsync_dir(base or ".")
            seconds = time.perf_counter() - started
            new = manifest_record(identity, layout, direct=direct, fsync=fsync)
            write_manifest(shown_manifest, new)
        finally:
            release()
            os.close(held)
    finally:
        os.close(directory)
    return {**new, "manifest": shown_manifest, "seconds": seconds, "rewritten": done}


def _rewrite(directory, base, layout, identity, generation, direct, fsync, jobs, threads,
             progress) -> dict:
    """Write the units rewrite `generation` changed: REWRITE_UNITS units at a time (so that
    memory stays bounded), the files they span by up to `jobs` writers at once."""
    unit, size = identity["dedup_unit"], identity["size"]
    stream = make_generator(identity, threads)._s
    units = -(-size // unit)
    done = {"units": 0, "bytes": 0, "ranges": 0}
    starts = [f["offset"] for f in layout]  # in dataset order
    stop = threading.Event()
    per_writer = max(1, threads // max(1, min(jobs, len(layout))))
    # file index: (fd, fd for a partial last block), and the stream that writes the file
    fds: dict[int, tuple[int, int]] = {}
    streams: dict[int, object] = {}

    def opened(i):
        if i not in fds:
            name = layout[i]["path"]
            shown = os.path.join(base, name)
            fd = open_in(directory, name, os.O_WRONLY | (os.O_DIRECT if direct else 0), shown)
            fds[i] = (fd, fd)  # closed at the end, also when the next open fails
            if direct:
                fds[i] = (fd, open_in(directory, name, os.O_WRONLY, shown))
            streams[i] = make_generator(identity, per_writer)._s

    def tick(n):
        progress(n)
        return stop.is_set()

    def write(i, ranges):
        fd, tail = fds[i]
        with naming(os.path.join(base, layout[i]["path"])):
            for at, length in ranges:
                if not write_span(streams[i], fd, tail, at, length, at - starts[i], direct, tick):
                    return

    try:
        with ThreadPoolExecutor(jobs) as pool:
            for first in range(0, units, REWRITE_UNITS):
                batch: dict[int, list] = {}  # file index: [(dataset offset, length)]
                for lo, hi in stream.changed_units(first, min(units, first + REWRITE_UNITS),
                                                   generation):
                    a, b = lo * unit, min(size, hi * unit)
                    done["units"] += hi - lo
                    done["bytes"] += b - a
                    done["ranges"] += 1
                    i = bisect.bisect_right(starts, a) - 1  # the files the range spans
                    while i < len(layout) and starts[i] < b:
                        lo_f, hi_f = max(a, starts[i]), min(b, starts[i] + layout[i]["length"])
                        if lo_f < hi_f:
                            batch.setdefault(i, []).append((lo_f, hi_f - lo_f))
                        i += 1
                for i in batch:
                    opened(i)
                futures = [pool.submit(write, i, ranges) for i, ranges in batch.items()]
                try:
                    finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                except BaseException:  # Ctrl-C: the writers stop at their next chunk
                    stop.set()
                    pool.shutdown(cancel_futures=True)
                    raise
                if any(f.exception() for f in finished):
                    stop.set()
                for future in finished:
                    future.result()
        if fsync:
            for i, (fd, _) in fds.items():
                with naming(os.path.join(base, layout[i]["path"])):
                    os.fsync(fd)
    finally:
        stop.set()
        for fd, tail in fds.values():
            if tail != fd:
                os.close(tail)
            os.close(fd)
    return done


