"""Datasets on disk: write_dataset() writes one, verify_file() checks it after the storage.

A dataset of `size` bytes is one logical stream cut into `files` files; file i holds
bytes [split(i), split(i + 1)) with split(i) = (i * size // files) rounded down to 4 KiB
and split(files) = size, so every file starts on a 4 KiB boundary (O_DIRECT works at any
file offset) and file sizes differ by at most 4 KiB. A manifest beside the data records
the dataset identity and the file list; it is written only once all data is written.

dgen reads and writes only regular files inside the dataset's directory: every data file
is opened by name from the directory's descriptor with O_NOFOLLOW, and whatever is not a
regular file (a symlink, device or FIFO) is refused. A writer holds an exclusive lock on
the dataset (the directory, or the single data file) for the whole run, and verify a
shared one while it reads (see _lock for file systems without flock()).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import errno
import functools
import json
import mmap
import fcntl
import os
import queue
import re
import socket
import stat
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from . import _checks, _core
from ._generator import DEFAULT_DEDUP_UNIT, Generator
from ._holds import holds
from .identity import REQUIRED, Identity

ALIGN = 4096
VERIFY_CHUNK = 64 * 1024 * 1024
MANIFEST_NAME = "dgen-manifest.json"  # inside a dataset directory
MANIFEST_SUFFIX = ".dgen.json"  # beside a single data file
IDENTITY = REQUIRED  # what a manifest's identity must list
PART = re.compile(r"part-\d{5,}")
MAX_FILES = 1_000_000  # files of one dataset: each is listed in memory and in the manifest


class Refused(OSError):
    """dgen will not touch this dataset as asked (the CLI's usage error, exit 2)."""


class DirectIOUnsupported(Refused):
    """The filesystem refuses O_DIRECT."""


def writer_buffer(threads: int = 1) -> int:
    """Bytes of buffer one writer holds when it has `threads` threads: cache-sized chunks
    (one, or one per producer thread and two more)."""
    return _core.write_memory(threads)


def split_points(size: int, files: int) -> list[int]:
    """Dataset offsets where the files start, and `size` at the end: files + 1 values."""
    return [i * size // files // ALIGN * ALIGN for i in range(files)] + [size]


def file_names(files: int) -> list[str]:
    width = max(5, len(str(files - 1)))
    return [f"part-{i:0{width}d}" for i in range(files)]


def manifest_path(path) -> str:
    """PATH/dgen-manifest.json for a directory, PATH.dgen.json for a file."""
    path = os.fspath(path)
    return (os.path.join(path, MANIFEST_NAME) if os.path.isdir(path)
            else path + MANIFEST_SUFFIX)


def _layout(path: str, size: int, files: int) -> tuple[str, list[dict]]:
    """(directory the file paths are relative to, [{path, offset, length}])."""
    if files == 1 and not os.path.isdir(path):
        names, base = [os.path.basename(path)], os.path.dirname(path)
    else:
        names, base = file_names(files), path
    cuts = split_points(size, files)
    return base, [{"path": name, "offset": cuts[i], "length": cuts[i + 1] - cuts[i]}
                  for i, name in enumerate(names)]


def _identity(size, dedup_ratio, compress_ratio, seed, dedup_unit,
              format_version=_core.FORMAT_VERSION, dedup_run=1, generation=0,
              change_rate=1.0, dedup_shift=False, dedup_skew=0.0,
              dedup_window=_core.WINDOW_UNITS, dedup_for=None, content="flat") -> dict:
    """The identity's values, checked, as a manifest records them (Identity.record())."""
    return Identity.of(**locals()).record()


def _generator(identity: dict, threads) -> Generator:
    return Generator(**Identity.from_record(identity).keywords(), max_threads=threads)


def _check_direct(directory: str) -> None:
    """Raise DirectIOUnsupported before any data file is touched."""
    fd, probe = tempfile.mkstemp(prefix=".dgen-probe-", dir=directory)
    os.close(fd)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_DIRECT))
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        raise DirectIOUnsupported(
            errno.EINVAL, f"the filesystem of {directory} does not support O_DIRECT "
            f"(--direct); write without it or to another filesystem") from None
    finally:
        os.unlink(probe)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_in(directory: int, name: str, flags: int, shown: str, mode: int = 0o644) -> int:
    """Open the regular file `name` in the directory open as `directory`, not following a
    symlink; O_NONBLOCK so that a FIFO cannot hang the open. `shown` names it in errors."""
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=directory)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO without a reader
            _refuse_not_regular(os.stat(name, dir_fd=directory, follow_symlinks=False), shown)
        raise OSError(e.errno, e.strerror, shown) from None
    try:
        _refuse_not_regular(os.fstat(fd), shown)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class DatasetTree:
    """Directories under DIR opened one component at a time, never following a symlink.
    close() closes them, and the root's fd too when the tree opened it (at())."""

    def __init__(self, root_fd: int, root: str):
        self.root, self.fds, self.owns_root = root, {"": root_fd}, False

    @classmethod
    def at(cls, root: str) -> "DatasetTree":
        tree = cls(os.open(root, os.O_RDONLY | os.O_DIRECTORY), root)
        tree.owns_root = True
        return tree

    def dir(self, rel: str, create=False) -> int:
        if rel in self.fds:
            return self.fds[rel]
        parent, name = os.path.split(rel)
        up = self.dir(parent, create)
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=up)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=up)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise Refused(errno.EINVAL, f"{os.path.join(self.root, rel)} is not a "
                                     f"directory: dgen reads and writes only inside "
                                     f"real directories of the dataset") from None
            raise OSError(e.errno, e.strerror, os.path.join(self.root, rel)) from None
        self.fds[rel] = fd
        return fd

    def open(self, rel: str, flags: int) -> int:
        parent, name = os.path.split(rel)
        return open_in(self.dir(parent, create=bool(flags & os.O_CREAT)), name, flags,
                              os.path.join(self.root, rel))

    def close(self):
        for rel, fd in self.fds.items():
            if rel or self.owns_root:
                os.close(fd)


def _kind(st: os.stat_result) -> str:
    return ("a regular file" if stat.S_ISREG(st.st_mode) else
            "a symbolic link" if stat.S_ISLNK(st.st_mode) else
            "a directory" if stat.S_ISDIR(st.st_mode) else
            "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket")


def _refuse_not_regular(st: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise Refused(errno.EINVAL, f"{shown} is {_kind(st)}: dgen reads and writes only "
                      f"regular files inside the dataset")


# Locks. A writer holds an exclusive flock on the dataset (the directory, or the single data
# file) for its whole run; verify holds a shared one while it reads, so neither sees the
# other's half-done work: each refuses while the other runs. Where the file system has no
# flock() (Lustre mounted without -o flock answers ENOSYS), a writer creates PATH.dgen-lock
# instead (O_EXCL, holding "host pid"), removes it when done, and verify refuses while it
# is there; a lock file left by a dead process of this host is taken over.
NO_FLOCK = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK)


def lock_file(path: str) -> str:
    return os.fspath(path).rstrip("/") + ".dgen-lock"


def _lock(fd: int, path: str):
    """Take the writer's lock on the dataset `path` (open as fd); returns the function that
    releases it (closing fd releases a flock, but not a lock file)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return lambda: None
    except BlockingIOError:
        try:  # only readers hold it: a verify
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            holder = "verified by dgen (it holds the dataset's shared lock)"
        except BlockingIOError:
            holder = "written by another dgen (it holds the dataset's lock)"
        raise Refused(errno.EBUSY, f"{path} is being {holder}; wait for it to "
                      f"finish") from None
    except OSError as e:
        if e.errno not in NO_FLOCK:
            raise
    return _create_lock_file(path)


def _create_lock_file(path: str):
    where, me = lock_file(path), f"{socket.gethostname()} {os.getpid()}\n"
    for _ in range(2):
        try:
            fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            if not _stale(where):
                raise Refused(errno.EBUSY, f"{path} is being written by another dgen (it "
                              f"holds the lock file {where}; this file system has no "
                              f"flock()); wait for it to finish, or remove {where} if no "
                              f"dgen runs") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)

        def release():
            with contextlib.suppress(FileNotFoundError):  # removed by hand meanwhile
                os.unlink(where)
        return release
    raise Refused(errno.EBUSY, f"{path}: the lock file {where} came back; is another dgen "
                  f"starting?")


def _stale(where: str) -> bool:
    """Whether the lock file was left by a process of this host that is gone."""
    try:
        with open(where) as f:
            host, pid = f.read().split()
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # unreadable, half written, or another user's process
        return False
    return False


@contextlib.contextmanager
def _reading(path: str):
    """Hold the shared lock on the dataset at `path` (a directory or regular file) while
    verify reads it: Refused while a writer holds it."""
    busy = (f"{path} is being written by dgen now (it holds the dataset's lock): verify it "
            f"once that is done")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # absent, or not for us to lock: verify says what it is
        yield
        return
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode) or stat.S_ISREG(os.fstat(fd).st_mode):
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Refused(errno.EBUSY, busy) from None
            except OSError as e:
                if e.errno not in NO_FLOCK:
                    raise
                if os.path.lexists(lock_file(path)):
                    raise Refused(errno.EBUSY, f"{busy} (the lock file "
                                  f"{lock_file(path)} is there)") from None
        yield
    finally:
        os.close(fd)


class _Progress:
    """Calls progress(n) from any worker thread, one call at a time."""

    def __init__(self, progress):
        self._progress, self._lock = progress, threading.Lock()

    def __call__(self, n: int) -> None:
        if self._progress:
            with self._lock:
                self._progress(n)


def write_dataset(path, size, *, files=1, dedup_ratio=1.0, compress_ratio=1.0, seed=None,
                  dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=1, dedup_shift=False,
                  dedup_skew="uniform", generation=0, change_rate=1.0,
                  format_version=_core.FORMAT_VERSION, direct=False, fsync=False, jobs=1,
                  threads=None, force=False, progress=None, job=None,
                  dedup_window=_core.WINDOW_UNITS, dedup_for=None, content="flat") -> dict:
    """Write a dataset of `size` bytes to `path` and return its manifest.

    files=1: `path` is the file, the manifest is `path`.dgen.json. files=N: `path` is a
    directory (created if needed) holding part-00000 ... and dgen-manifest.json. `jobs`
    writers run in parallel, each with its own Generator seeked to its range (the bytes
    depend only on the offset) and its own cache-sized chunks (see writer_buffer), written
    by the core without the GIL; `threads` (default:
    every CPU) are shared among them. direct=True writes with O_DIRECT from page-aligned
    buffers (a final partial 4 KiB block goes through the page cache) and raises
    DirectIOUnsupported where the filesystem refuses it. fsync=True fsyncs every file and
    the directory before the manifest is written.

    Refused (an OSError) is raised, before anything is changed, when another writer holds
    the dataset, when a data file is not a regular file (a symlink, device or FIFO), and
    when the directory holds part-* files the new dataset does not (force=True deletes
    them). Only once every file has been opened is an earlier manifest removed; the new
    one is written atomically after all data, so no manifest ever claims data that is not
    there. progress(n) is called with each count of bytes written, one call at a time.

    job: this process is one of several writing the dataset together (see dgen_py.mpi):
    it writes job.pieces ([(file index, file offset, length)]); only where job.lead is
    the dataset claimed (locked, files created and emptied) and the manifest written.
    job.ready() is called before writing, job.written(seconds) after; either may raise.
    """
    path = _checks.path(path)
    identity = _identity(size, dedup_ratio, compress_ratio, seed, dedup_unit, format_version,
                         dedup_run, generation, change_rate, dedup_shift, dedup_skew,
                         dedup_window, dedup_for, content)
    files = _checks.integer("files", files, 1, 1_000_000)
    direct = _checks.flag("direct", direct)
    fsync = _checks.flag("fsync", fsync)
    jobs = _checks.integer("jobs", jobs, 1, _checks.MAX_THREADS)
    threads = _checks.threads(threads) or _core.available_cpus()
    if files > 1:
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"path must be a directory for files={files}, got the file {path}")
        os.makedirs(path, exist_ok=True)
    base, layout = _layout(path, identity["size"], files)
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
    pieces = _pieces(layout, jobs) if job is None else job.pieces
    writers = min(jobs, max(1, len(pieces)))
    _core.check_memory(writers * writer_buffer(max(1, threads // writers)))
    if direct:
        _check_direct(base or ".")
    single = not os.path.isdir(path)
    flags = os.O_WRONLY | os.O_CREAT
    lead = job is None or job.lead  # claims the dataset and writes the manifest
    held = open_in(directory, layout[0]["path"], flags, shown(layout[0]["path"])) \
        if single and lead else os.dup(directory)
    release = lambda: None  # noqa: E731
    try:
        stale = []
        if lead:
            release = _lock(held, path)
            for f in layout[1:] if single else layout:
                os.close(open_in(directory, f["path"], flags, shown(f["path"])))
            new = {f["path"] for f in layout}
            stale = [] if single else sorted(n for n in os.listdir(directory)
                                             if PART.fullmatch(n) and n not in new)
            if stale and not force:
                raise Refused(errno.EEXIST, f"{path} holds {len(stale)} part file(s) that "
                              f"are not part of the new dataset ({', '.join(stale[:3])}"
                              f"{', ...' if len(stale) > 3 else ''}): remove them, or pass "
                              f"--force (force=True) to delete them")
        manifest = manifest_path(path)
        if lead:
            try:
                os.unlink(manifest)
            except FileNotFoundError:
                pass
        for name in stale:
            os.unlink(name, dir_fd=directory)

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
        report = _Progress(progress)
        with ThreadPoolExecutor(jobs) as pool:
            futures = [pool.submit(_write_piece, directory, shown(layout[i]["path"]),
                                   layout[i]["path"], layout[i]["offset"], at, length,
                                   identity, direct, fsync, per_writer, stop, report)
                       for i, at, length in pieces]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            finally:  # on an error or Ctrl-C the other writers stop at their next chunk
                stop.set()
                pool.shutdown(cancel_futures=True)
        for future in done:
            future.result()
        if fsync:
            _fsync_dir(base or ".")
        seconds = time.perf_counter() - started
        record = manifest_record(identity, layout, direct=direct, fsync=fsync)
        if job:
            job.written(seconds)
        if lead:
            write_manifest(manifest, record)
    finally:
        release()
        os.close(held)
    return {**record, "manifest": manifest, "seconds": seconds}


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
    manifest's) or its generation is not generation - 1, or when a data file is missing
    or has another length. While the data changes the manifest says so ("complete":
    false, "rewrite_generation"): verify refuses the dataset, and the same rewrite can be
    run again to finish it."""
    path = _checks.path(path)
    generation = _checks.integer("generation", generation, 1, _core.MAX_GENERATION)
    shown_manifest = manifest_path(path)
    record = _load_manifest(path)
    _refuse_replaced_by_directory(path, record)
    if record is None:
        raise Refused(errno.ENOENT, f"--changed-only (changed_only=True): {path} has no "
                      f"manifest ({shown_manifest}) to rewrite from; write the dataset first")
    if record.get("complete") is False and record.get("rewrite_generation") == generation:
        record = {**record, "complete": True}  # an earlier run of this rewrite, unfinished
    record = check_manifest(record, shown_manifest)
    old = record["identity"]
    identity = _identity(size, dedup_ratio, compress_ratio, old["seed"] if seed is None
                         else seed, dedup_unit, format_version, dedup_run, generation,
                         change_rate, dedup_shift, dedup_skew, dedup_window, dedup_for, content)
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
    files = _checks.integer("files", files, 1, 1_000_000)
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
            _check_direct(base or ".")
        single = not os.path.isdir(path)
        held = (open_in(directory, layout[0]["path"], os.O_WRONLY, os.path.join(base, layout[0]["path"]))
                if single else os.dup(directory))
        release = lambda: None  # noqa: E731
        try:
            release = _lock(held, path)
            for f in layout:
                fd = open_in(directory, f["path"], os.O_RDONLY, os.path.join(base, f["path"]))
                try:
                    if os.fstat(fd).st_size != f["length"]:
                        raise Refused(errno.EINVAL, f"--changed-only: {os.path.join(base, f['path'])} "
                                      f"holds {os.fstat(fd).st_size} bytes, not the "
                                      f"{f['length']} of the manifest; write it whole")
                finally:
                    os.close(fd)
            write_manifest(shown_manifest, {**record, "complete": False,
                                            "rewrite_generation": generation})
            started = time.perf_counter()
            done = _rewrite(directory, base, layout, identity, generation, direct, fsync,
                            jobs, threads, _Progress(progress))
            if fsync:
                _fsync_dir(base or ".")
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
    stream = _generator(identity, threads)._s
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
            streams[i] = _generator(identity, per_writer)._s

    def tick(n):
        progress(n)
        return stop.is_set()

    def write(i, ranges):
        fd, tail = fds[i]
        with _naming(os.path.join(base, layout[i]["path"])):
            for at, length in ranges:
                if not _write_span(streams[i], fd, tail, at, length, at - starts[i], direct, tick):
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
                with _naming(os.path.join(base, layout[i]["path"])):
                    os.fsync(fd)
    finally:
        stop.set()
        for fd, tail in fds.values():
            if tail != fd:
                os.close(tail)
            os.close(fd)
    return done


def manifest_record(identity: dict, layout: list[dict], *, direct=False, fsync=False) -> dict:
    """The manifest of a completely written dataset (see docs/cli.md)."""
    from ._version import __version__
    return {
        "dgen_manifest": 1,
        "format_version": identity["format_version"],
        "dgen_version": __version__,
        "identity": identity,
        "holds": holds(identity),
        "files": layout,
        "direct": bool(direct),
        "fsync": bool(fsync),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }


def _pieces(layout: list[dict], jobs: int) -> list[tuple[int, int, int]]:
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
def _naming(shown: str):
    """pwrite and fsync errors do not name the file: the OSErrors raised inside do."""
    try:
        yield
    except OSError as e:
        if isinstance(e, Refused):
            raise
        raise OSError(e.errno, f"writing {shown}: {e.strerror}") from None


def _write_span(stream, fd, tail, at, length, pos, direct, tick) -> bool:
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
    stream = _generator(identity, threads)._s

    def tick(n):
        progress(n)
        return stop.is_set()
    fd = open_in(directory, name, os.O_WRONLY | (os.O_DIRECT if direct else 0), shown)
    tail = fd
    try:
        if direct:
            tail = open_in(directory, name, os.O_WRONLY, shown)
        with _naming(shown):
            if _write_span(stream, fd, tail, start + at, length, at, direct, tick) and fsync \
                    and not stop.is_set():
                os.fsync(fd)
    finally:
        if tail != fd:
            os.close(tail)
        os.close(fd)


def write_manifest(path: str, record: dict) -> None:
    """Write `record` (see manifest_record) to `path` atomically."""
    _write_atomically(path, json.dumps(record, indent=2) + "\n")


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".dgen-manifest-", dir=directory)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the manifest from other users
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk: name the manifest
            raise OSError(e.errno, f"writing {path}: {e.strerror}") from None
        raise
    _fsync_dir(directory)


def read_manifest(path) -> dict | None:
    """The checked manifest of the dataset at `path` (file or directory), or None if it has
    none; ValueError naming the field when it is malformed (see check_manifest)."""
    record = _load_manifest(path)
    return None if record is None else check_manifest(record, manifest_path(path))


def _load_manifest(path):
    """The JSON value of the manifest of the dataset at `path`, unchecked, or None."""
    return load_manifest(manifest_path(path))


MAX_MANIFEST = 512 << 20  # bytes: MAX_FILES files of a training dataset take about 300 MiB
MANIFEST_VERSION = 1  # dgen_manifest (dgen_dataset for training datasets) this dgen reads


def load_manifest(where: str):
    """The JSON value of the manifest file `where`, or None if there is none. Every command
    reads manifests here, with the same refusals (Refused, ValueError): a symlink, FIFO or
    device in its place (opened O_NOFOLLOW | O_NONBLOCK: nothing can hang or point
    elsewhere), more than MAX_MANIFEST bytes, a version this dgen cannot read, and a
    single file's manifest (FILE.dgen.json) that lists another file than FILE."""
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):
            _refuse_not_regular(os.lstat(where), where)
        raise
    try:
        st = os.fstat(fd)
        _refuse_not_regular(st, where)
        if st.st_size > MAX_MANIFEST:
            raise Refused(errno.EFBIG, f"{where} holds {st.st_size} bytes: a manifest may "
                          f"hold at most {MAX_MANIFEST} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:  # read(n) allocates n bytes at once
            text = f.read(st.st_size + 1)
            while len(text) <= MAX_MANIFEST and (more := f.read(1 << 16)):  # it grew
                text += more
        if len(text) > MAX_MANIFEST:  # grew while read
            raise Refused(errno.EFBIG, f"{where} holds more than {MAX_MANIFEST} bytes: a "
                          f"manifest may hold at most {MAX_MANIFEST} bytes")
        record = json.loads(text)
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, or nested too deep
        raise ValueError(f"{where}: not a JSON manifest ({e})") from None
    finally:
        os.close(fd)
    if isinstance(record, dict):
        _check_versions(record, where)
        if where.endswith(MANIFEST_SUFFIX):
            _check_own_file(record, where)
    return record


def _check_versions(record: dict, where: str) -> None:
    """Refuse a manifest of a layout or data format version this dgen cannot read."""
    for key in ("dgen_manifest", "dgen_dataset"):
        if key in record and (type(record[key]) is not int
                              or record[key] != MANIFEST_VERSION):
            raise ValueError(f"{where}: {key} is {record[key]!r}: this dgen reads manifest "
                             f"version {MANIFEST_VERSION} only (a newer dgen wrote it?)")
    version = record.get("format_version", _core.FORMAT_VERSION)
    if (type(version) is not int
            or not _core.MIN_FORMAT_VERSION <= version <= _core.MAX_FORMAT_VERSION):
        raise ValueError(f"{where}: format_version is {version!r}: this dgen reads format "
                         f"versions {_core.MIN_FORMAT_VERSION} to {_core.MAX_FORMAT_VERSION}")


def _check_own_file(record: dict, where: str) -> None:
    """FILE.dgen.json describes FILE alone: it may not send dgen to another file."""
    own = os.path.basename(where[:-len(MANIFEST_SUFFIX)])
    listed = record.get("files")
    if isinstance(listed, list) and any(
            not isinstance(f, dict) or f.get("path") != own for f in listed):
        names = [f.get("path") if isinstance(f, dict) else f for f in listed]
        raise ValueError(f"{where}: files must list only {own!r}, the file this manifest "
                         f"is beside, got {names!r:.80}")


def check_manifest(record, where: str) -> dict:
    """`record` with its identity checked; ValueError naming the first bad field. The file
    list must cover [0, identity.size) in order, without gap or overlap, and each path
    must be a plain file name (the files lie in the manifest's directory)."""
    def bad(field, problem):
        raise ValueError(f"{where}: {field} {problem}")

    def integer(field, value, lo, hi):
        try:
            return _checks.integer(field, value, lo, hi)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    def fields(value, field, keys):
        if not isinstance(value, dict):
            bad(field, f"must be a JSON object, got {type(value).__name__} {value!r:.40}")
        for key in keys:
            if key not in value:
                bad(f"{field}.{key}" if field != "manifest" else key, "is missing")

    if isinstance(record, dict) and record.get("dgen_dataset") == 1:
        raise ValueError(f"{where} is a training dataset's manifest (dgen dataset): rewrites "
                         f"in place (--changed-only) and identity options apply to datasets "
                         f"written by dgen write; verify it with dgen verify DIR alone "
                         f"(verify_training_dataset)")
    fields(record, "manifest", ("format_version", "complete", "identity", "files"))
    version = record["format_version"]  # in the range read: load_manifest checked it
    if record["complete"] is not True:
        rewrite = record.get("rewrite_generation")
        bad("complete", f"is {record['complete']!r}: the dataset was not completely written"
            + (f" (a --changed-only rewrite to generation {rewrite} runs now, or was "
               f"interrupted: run it again to finish it)" if rewrite is not None else ""))
    fields(record["identity"], "identity", IDENTITY)
    given = record["identity"]
    if given.get("format_version", version) != version:
        bad("identity.format_version", f"is {given['format_version']!r}, but format_version "
            f"is {version!r}")
    if given["seed"] is None:
        bad("identity.seed", "is null")
    try:
        identity = Identity.from_record({**given, "format_version": version}).record()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: identity.{e}") from None
    layout = record["files"]
    if not isinstance(layout, list):
        bad("files", f"must be a list, got {type(layout).__name__}")
    if identity["size"] and not layout:
        bad("files", f"is empty, but identity.size is {identity['size']}")
    at, names = 0, set()
    for i, f in enumerate(layout):
        fields(f, f"files[{i}]", ("path", "offset", "length"))
        name = f["path"]
        if (not isinstance(name, str) or name in ("", ".", "..", MANIFEST_NAME)
                or "/" in name or "\0" in name):
            bad(f"files[{i}].path", f"must be the name of a file in the manifest's "
                f"directory, got {name!r}")
        if name in names:
            bad(f"files[{i}].path", f"{name!r} is listed twice")
        names.add(name)
        offset = integer(f"files[{i}].offset", f["offset"], 0, _checks.MAX_SIZE)
        length = integer(f"files[{i}].length", f["length"], 0, _checks.MAX_SIZE)
        if offset != at:
            bad(f"files[{i}].offset", f"is {offset}: the files must follow each other without "
                f"gap or overlap, so it must be {at}")
        at += length
    if at != identity["size"]:
        bad("files", f"total {at} bytes, but identity.size is {identity['size']}")
    return {**record, "identity": identity}


def resolve_dataset(path, *, seed=None, size=None, files=None, dedup_ratio=None,
                    compress_ratio=None, dedup_unit=None, dedup_run=None, dedup_shift=None,
                    dedup_skew=None, generation=None, change_rate=None,
                    format_version=None, dedup_window=None, content=None) -> dict:
    """What verify_file() will check: {"identity", "base" (directory of the files),
    "files" ([{path, offset, length}]), "manifest" (its path, or None), "sized_by_file"
    (True when the size was taken from the file: truncation cannot be detected), "strict"
    (the files are opened only as regular files in base: a manifest or directory layout
    names them, not the user)}.

    With a manifest, its file list is what is checked; size and files, when given, must
    agree with it. The other identity values given replace the manifest's."""
    path = os.fspath(path)
    with _reading(path):  # a running writer is named, not taken for a missing manifest
        record = read_manifest(path)
    _refuse_replaced_by_directory(path, record)
    if record is None and not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no such file or directory: {path}")
    given = {"seed": seed, "size": size, "dedup_ratio": dedup_ratio,
             "compress_ratio": compress_ratio, "dedup_unit": dedup_unit,
             "dedup_run": dedup_run, "dedup_shift": dedup_shift, "dedup_skew": dedup_skew,
             "generation": generation,
             "change_rate": change_rate,
             "format_version": format_version, "dedup_window": dedup_window,
             "content": content}
    known = record["identity"] if record else {
        "seed": None, "size": None, "dedup_ratio": 1.0, "compress_ratio": 1.0,
        "dedup_unit": DEFAULT_DEDUP_UNIT, "dedup_run": 1, "dedup_shift": False,
        "dedup_skew": 0.0,
        "generation": 0,
        "change_rate": 1.0, "format_version": _core.FORMAT_VERSION}
    known = {"dedup_window": _core.WINDOW_UNITS, "content": "flat", **known}
    merged = {k: known[k] if given[k] is None else given[k] for k in given}
    if merged["seed"] is None and record is None and _training_layout(path):
        raise ValueError(f"{path} has no manifest ({manifest_path(path)}) but holds train/ "
                         f"or valid/ as a training dataset of dgen dataset does; its manifest "
                         f"is written last, so that write did not finish (or the manifest "
                         f"was removed): write the dataset again with dgen dataset")
    if merged["seed"] is None:
        raise ValueError(f"{path} has no manifest ({manifest_path(path)}): give the seed "
                         f"and the other identity values the data was written with")
    count = None if files is None else _checks.integer("files", files, 1, 1_000_000)
    directory = os.path.isdir(path)
    if record:
        for name, value, recorded in (("size", size, known["size"]),
                                      ("files", count, len(record["files"]))):
            if value is not None and value != recorded:
                raise ValueError(f"{name} {value} differs from the {recorded} of the manifest "
                                 f"{manifest_path(path)}: leave it out to verify the dataset "
                                 f"the manifest describes")
    sized_by_file = merged["size"] is None
    if sized_by_file:
        if count or directory:
            raise ValueError(f"{path} has no manifest: give the size of the dataset")
        merged["size"] = _size_of(path)
    identity = _identity(**merged)
    if record:
        base, layout = (path if directory else os.path.dirname(path)), record["files"]
    else:
        base, layout = _layout(path, identity["size"], count or 1)
    return {"identity": identity, "base": base, "files": layout,
            "manifest": manifest_path(path) if record else None,
            "sized_by_file": sized_by_file, "strict": bool(record) or directory}


def _training_layout(path: str) -> bool:
    """Whether directory `path` holds train/ or valid/ (dgen dataset's layout)."""
    return any(os.path.isdir(os.path.join(path, split)) for split in ("train", "valid"))
def _refuse_replaced_by_directory(path: str, record) -> None:
    """A directory without a manifest, beside the manifest of a single file of its name."""
    single = path.rstrip("/") + MANIFEST_SUFFIX
    if record is None and os.path.isdir(path) and os.path.lexists(single):
        raise Refused(errno.EISDIR, f"{path} is a directory, but its manifest {single} "
                      f"describes a single file: the file was replaced by a directory")


def _size_of(path: str) -> int:
    """The size of a file or block device named without a manifest or size: never 0 (an
    empty or unsized source must be stated, or verify would pass over nothing)."""
    st = os.stat(path)
    if stat.S_ISBLK(st.st_mode):  # st_size is 0 for a device: ask the device
        with open(path, "rb") as device:
            size = device.seek(0, os.SEEK_END)
    elif stat.S_ISREG(st.st_mode):
        size = st.st_size
    else:
        raise ValueError(f"{path} is not a regular file or block device, so its size is "
                         f"unknown: give --size (size=)")
    if size == 0:
        raise ValueError(f"{path} is empty: give --size 0 (size=0) to verify an empty "
                         f"dataset")
    return size


def _read_locked(verify):
    """verify(path, ...) run under _reading(path): no writer changes the dataset while it
    is read, and none runs when it starts."""
    @functools.wraps(verify)
    def locked(path, *args, **kw):
        with _reading(_checks.path(path)):
            return verify(path, *args, **kw)
    return locked


@_read_locked
def verify_file(path, *, seed=None, size=None, files=None, dedup_ratio=None,
                compress_ratio=None, dedup_unit=None, dedup_run=None, dedup_shift=None,
                dedup_skew=None, generation=None, change_rate=None, format_version=None,
                direct=False,
                threads=None,
                max_ranges=20, progress=None, pieces=None, dedup_window=None,
                content=None) -> dict:
    """Read a dataset back and compare it with the bytes its identity defines.

    The identity and file list come from the manifest beside `path` (see write_dataset),
    checked by check_manifest; seed and the ratios override its values, size and files
    must agree with it. Without a manifest they give everything (seed required; size
    defaults to the size of the file or block device, which cannot reveal a truncation;
    files=N means the directory layout of write_dataset). Up to `threads` files are
    checked in parallel, each read in 64 MiB chunks into its worker's buffer (O_DIRECT
    with direct=True) and checked by one Generator.verifier() per file, so memory stays
    constant (64 MiB per worker); the result lists ranges in file order all the same.

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
    """
    path = _checks.path(path)
    dataset = resolve_dataset(path, seed=seed, size=size, files=files,
                              dedup_ratio=dedup_ratio, compress_ratio=compress_ratio,
                              dedup_unit=dedup_unit, dedup_run=dedup_run,
                              dedup_shift=dedup_shift, dedup_skew=dedup_skew,
                              generation=generation, change_rate=change_rate,
                              format_version=format_version, dedup_window=dedup_window,
                              content=content)
    identity, base, layout = dataset["identity"], dataset["base"], dataset["files"]
    max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)

    threads = _checks.threads(threads) or _core.available_cpus()
    chunk = max(VERIFY_CHUNK, 4 * identity["dedup_unit"])
    parts = _verify_parts(layout, threads, chunk) if pieces is None else pieces
    # File parts are checked in parallel, one worker per part up to the threads, each alone
    # on its own thread when there are as many parts as threads (no pool, no hand-off).
    workers = max(1, min(len(parts), threads))
    report = _Report(max_ranges)
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
    shared = _Progress(progress)

    def one(part):
        i, at, length = part
        # A part lists at least its first range, which may join the last one before it.
        gen, view, mine = _generator(identity, each), views.get(), _Report(max(1, max_ranges))
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
            with ThreadPoolExecutor(workers) as pool:
                futures = [pool.submit(one, part) for part in parts]
                try:
                    wait(futures, return_when=FIRST_EXCEPTION)
                finally:  # on an error or Ctrl-C the other workers stop at their next chunk
                    stop.set()
                    pool.shutdown(cancel_futures=True)
            done = [future.result() for future in futures]
    finally:
        if directory is not None:
            os.close(directory)
    sizes = {}
    for (i, _, _), (size, mine) in zip(parts, done):  # in dataset order, as one pass lists them
        sizes[i] = size
        report.merge(mine)
    ok = report.count == 0 and report.read == sum(length for _, _, length in parts)
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
        "warnings": [f"{path} has no manifest and no size was given: the size was taken "
                     f"from the file, so a truncated file cannot be detected"]
        if dataset["sized_by_file"] else [],
        "seconds": time.perf_counter() - started,
        **({} if pieces is None else {"gap_bytes": report.gaps, "zeros": report.zeros}),
    }


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
                    _refuse_not_regular(st, path)
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                raise Refused(errno.EINVAL, f"{path} is {_kind(st)}, not a regular file or "
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


class _Report:
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

    def merge(self, other: _Report) -> None:
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


