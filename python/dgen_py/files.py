"""Datasets on disk: write_dataset() writes one, verify_file() checks it after the storage.

A dataset of `size` bytes is one logical stream cut into `files` files; file i holds
bytes [split(i), split(i + 1)) with split(i) = (i * size // files) rounded down to 4 KiB
and split(files) = size, so every file starts on a 4 KiB boundary (O_DIRECT works at any
file offset) and file sizes differ by at most 4 KiB. A manifest beside the data records
the dataset identity and the file list; it is written only once all data is written.
"""

from __future__ import annotations

import datetime
import errno
import json
import mmap
import os
import secrets
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from . import _checks, _core
from ._generator import DEFAULT_DEDUP_UNIT, Generator

ALIGN = 4096
WRITE_CHUNK = 32 * 1024 * 1024
VERIFY_CHUNK = 64 * 1024 * 1024
MANIFEST_NAME = "dgen-manifest.json"  # inside a dataset directory
MANIFEST_SUFFIX = ".dgen.json"  # beside a single data file
IDENTITY = ("seed", "size", "dedup_ratio", "compress_ratio", "dedup_unit")


class DirectIOUnsupported(OSError):
    """The filesystem refuses O_DIRECT."""


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


def _identity(size, dedup_ratio, compress_ratio, seed, dedup_unit) -> dict:
    seed = _checks.seed(seed)
    return {"seed": secrets.randbits(64) if seed is None else seed,
            "size": _checks.size(size),
            "dedup_ratio": _checks.ratio("dedup_ratio", dedup_ratio),
            "compress_ratio": _checks.ratio("compress_ratio", compress_ratio),
            "dedup_unit": _checks.dedup_unit(dedup_unit)}


def _generator(identity: dict, threads) -> Generator:
    return Generator(identity["size"], identity["dedup_ratio"], identity["compress_ratio"],
                     seed=identity["seed"], dedup_unit=identity["dedup_unit"],
                     max_threads=threads)


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


def _pwrite_all(fd: int, data: memoryview, at: int) -> None:
    while data:
        try:
            n = os.pwrite(fd, data, at)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror} at offset {at}") from None
        data, at = data[n:], at + n


class _Progress:
    """Calls progress(n) from any worker thread, one call at a time."""

    def __init__(self, progress):
        self._progress, self._lock = progress, threading.Lock()

    def __call__(self, n: int) -> None:
        if self._progress:
            with self._lock:
                self._progress(n)


def write_dataset(path, size, *, files=1, dedup_ratio=1.0, compress_ratio=1.0, seed=None,
                  dedup_unit=DEFAULT_DEDUP_UNIT, direct=False, fsync=False, jobs=1,
                  threads=None, progress=None) -> dict:
    """Write a dataset of `size` bytes to `path` and return its manifest.

    files=1: `path` is the file, the manifest is `path`.dgen.json. files=N: `path` is a
    directory (created if needed) holding part-00000 ... and dgen-manifest.json. `jobs`
    writers run in parallel, each with its own Generator seeked to its range (the bytes
    depend only on the offset); `threads` (default: every CPU) are shared among them.
    direct=True writes with O_DIRECT from page-aligned buffers (a final partial 4 KiB
    block goes through the page cache) and raises DirectIOUnsupported where the
    filesystem refuses it. fsync=True fsyncs every file and the directory before the
    manifest is written. Any earlier manifest is removed first, and the new one is written
    atomically after all data, so an interrupted run never leaves one claiming completion.
    progress(n) is called with each count of bytes written, one call at a time.
    """
    path = _checks.path(path)
    identity = _identity(size, dedup_ratio, compress_ratio, seed, dedup_unit)
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
    if direct:
        _check_direct(base or ".")
    manifest = manifest_path(path)
    try:
        os.unlink(manifest)
    except FileNotFoundError:
        pass

    started = time.perf_counter()
    for f in layout:  # create or empty every file once, before the writers share them
        os.close(os.open(os.path.join(base, f["path"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o644))
    pieces = _pieces(layout, jobs)
    _core.check_memory(min(jobs, len(pieces)) * WRITE_CHUNK)  # one buffer per writer
    per_writer = max(1, threads // min(jobs, max(1, len(pieces))))
    stop = threading.Event()
    report = _Progress(progress)
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(_write_piece, os.path.join(base, layout[i]["path"]),
                               layout[i]["offset"], at, length, identity, direct, fsync,
                               per_writer, stop, report) for i, at, length in pieces]
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

    from . import __version__
    record = {
        "dgen_manifest": 1,
        "format_version": _core.FORMAT_VERSION,
        "dgen_version": __version__,
        "identity": identity,
        "files": layout,
        "direct": bool(direct),
        "fsync": bool(fsync),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }
    _write_atomically(manifest, json.dumps(record, indent=2) + "\n")
    return {**record, "manifest": manifest, "seconds": seconds}


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


def _write_piece(path, start, at, length, identity, direct, fsync, threads, stop, progress):
    """Write file bytes [at, at + length) of the file that starts at dataset offset start."""
    gen = _generator(identity, threads)
    gen.seek(start + at)
    # mmap memory is page-aligned, as O_DIRECT needs; freed with its last view.
    view = memoryview(mmap.mmap(-1, min(WRITE_CHUNK, length)))
    fd = os.open(path, os.O_WRONLY | (os.O_DIRECT if direct else 0))
    try:
        end = at + length
        while at < end and not stop.is_set():
            n = gen.readinto(view[:min(len(view), end - at)])
            aligned = n // ALIGN * ALIGN if direct else n
            _pwrite_all(fd, view[:aligned], at)
            if aligned < n:  # the file's last partial block, which O_DIRECT cannot write
                tail = os.open(path, os.O_WRONLY)
                try:
                    _pwrite_all(tail, view[aligned:n], at + aligned)
                finally:
                    os.close(tail)
            at += n
            progress(n)
        if fsync:
            os.fsync(fd)
    except OSError as e:  # pwrite and fsync errors do not name the file
        raise OSError(e.errno, f"writing {path}: {e.strerror}") from None
    finally:
        os.close(fd)


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
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_dir(directory)


def read_manifest(path) -> dict | None:
    """The manifest of the dataset at `path` (file or directory), or None if it has none."""
    try:
        with open(manifest_path(path)) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    if record.get("format_version") != _core.FORMAT_VERSION or not record.get("complete"):
        raise ValueError(f"{manifest_path(path)}: format_version "
                         f"{record.get('format_version')!r} (complete: "
                         f"{record.get('complete')!r}) cannot be verified by this dgen "
                         f"(format_version {_core.FORMAT_VERSION})")
    return record


def resolve_dataset(path, *, seed=None, size=None, files=None, dedup_ratio=None,
                    compress_ratio=None, dedup_unit=None) -> dict:
    """What verify_file() will check: {"identity", "base" (directory of the files),
    "files" ([{path, offset, length}]), "manifest" (its path, or None)}."""
    path = os.fspath(path)
    record = read_manifest(path)
    if record is None and not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no such file or directory: {path}")
    given = {"seed": seed, "size": size, "dedup_ratio": dedup_ratio,
             "compress_ratio": compress_ratio, "dedup_unit": dedup_unit}
    known = record["identity"] if record else {
        "seed": None, "size": None, "dedup_ratio": 1.0, "compress_ratio": 1.0,
        "dedup_unit": DEFAULT_DEDUP_UNIT}
    merged = {k: known[k] if given[k] is None else given[k] for k in IDENTITY}
    if merged["seed"] is None:
        raise ValueError(f"{path} has no manifest ({manifest_path(path)}): give the seed "
                         f"and the other identity values the data was written with")
    count = None if files is None else _checks.integer("files", files, 1, 1_000_000)
    if merged["size"] is None:
        if count or os.path.isdir(path):
            raise ValueError(f"{path} has no manifest: give the size of the dataset")
        merged["size"] = os.path.getsize(path)
    identity = _identity(**merged)
    if record and size is None and files is None:
        base, layout = (path if os.path.isdir(path) else os.path.dirname(path)), record["files"]
    else:
        base, layout = _layout(path, identity["size"], count or 1)
    return {"identity": identity, "base": base, "files": layout,
            "manifest": manifest_path(path) if record else None}


def verify_file(path, *, seed=None, size=None, files=None, dedup_ratio=None,
                compress_ratio=None, dedup_unit=None, direct=False, threads=None,
                max_ranges=20, progress=None) -> dict:
    """Read a dataset back and compare it with the bytes its identity defines.

    The identity and file list come from the manifest beside `path` (see write_dataset);
    keyword arguments override its fields, or give them all when there is no manifest
    (seed required; size defaults to the size of the file; files=N means the directory
    layout of write_dataset). Files are read in 64 MiB chunks into one buffer (O_DIRECT
    with direct=True) and checked by one Generator.verifier() per file, so memory stays
    constant.

    Returns a JSON-ready dict: "ok", "path", "manifest" (its path or None), "identity",
    "files" ([{path, offset, length, size_on_disk (None: missing)}]), "bytes" (expected),
    "bytes_read", "mismatched_bytes" (including missing and extra bytes), "range_count"
    (every range), "ranges" (the first `max_ranges`, in dataset order, each {file,
    file_offset, offset (dataset), length, kind, belongs_at, belongs_at_file_offset}),
    "seconds". kind is "differs", "zeros" (reads as zeros), "moved" (a whole dedup unit
    holding the unit that belongs at dataset offset belongs_at, found within one 64 MiB
    chunk), "missing" (the file is shorter than it should be, or absent) or "extra" (the
    file is longer). Ranges separated by fewer than 64 matching bytes are one range.
    """
    path = os.fspath(path)
    dataset = resolve_dataset(path, seed=seed, size=size, files=files,
                              dedup_ratio=dedup_ratio, compress_ratio=compress_ratio,
                              dedup_unit=dedup_unit)
    identity, base, layout = dataset["identity"], dataset["base"], dataset["files"]
    max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)

    gen = _generator(identity, threads)
    report = _Report(max_ranges)
    chunk = max(VERIFY_CHUNK, 4 * identity["dedup_unit"])
    _core.check_memory(chunk)
    view = memoryview(mmap.mmap(-1, chunk))  # page-aligned, as O_DIRECT needs
    started = time.perf_counter()
    sizes = [_verify_one(os.path.join(base, f["path"]), f, gen, view, direct, report,
                         progress) for f in layout]
    return {
        "ok": report.count == 0,
        "path": path,
        "manifest": dataset["manifest"],
        "identity": identity,
        "files": [{**f, "size_on_disk": s} for f, s in zip(layout, sizes)],
        "bytes": identity["size"],
        "bytes_read": report.read,
        "mismatched_bytes": report.mismatched,
        "range_count": report.count,
        "ranges": report.ranges,
        "seconds": time.perf_counter() - started,
    }


def _verify_one(path, f, gen, view, direct, report, progress) -> int | None:
    """Check one file; returns its size on disk (None when missing)."""
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        report.add_gap(f, 0, f["length"], "missing")
        return None
    except OSError as e:
        if direct and e.errno == errno.EINVAL:
            raise DirectIOUnsupported(errno.EINVAL, f"the filesystem of {path} does not "
                                      f"support O_DIRECT (--direct)") from None
        raise
    try:
        at = 0  # file offset
        on_disk = os.fstat(fd).st_size
        verifier = gen.verifier(max_ranges=report.room)
        chunk = len(view)
        while at < f["length"]:
            # Reads end on dataset offsets that are multiples of the chunk (and so of the
            # dedup unit), so a moved unit lies wholly within one verify call.
            want = min(chunk - (f["offset"] + at) % chunk, f["length"] - at)
            # O_DIRECT reads whole blocks; the file's end then gives the short count.
            n = min(want, _read_full(fd, view[:_round_up(want)], at))
            if n:
                verifier.add(view[:n], f["offset"] + at)
                if progress:
                    progress(n)
            at += n
            if n < want:
                break
        report.add_file(f, verifier)
        if at < f["length"]:
            report.add_gap(f, at, f["length"] - at, "missing")
        elif on_disk > f["length"]:
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
        self.count = self.mismatched = self.read = 0

    @property
    def room(self) -> int:
        return self.max_ranges - len(self.ranges)

    def add_file(self, f: dict, verifier) -> None:
        """The ranges of one file, from its Verifier once every read was added."""
        r = verifier.result
        self.read += r.bytes
        self.mismatched += r.mismatched_bytes
        self.count += r.range_count
        self.ranges += [self._range(m, f) for m in r.ranges]  # it was given self.room

    @staticmethod
    def _range(m, f: dict) -> dict:
        moved = m.belongs_at is not None
        return {"file": f["path"], "file_offset": m.offset - f["offset"], "offset": m.offset,
                "length": m.length,
                "kind": "moved" if moved else "zeros" if m.zeros else "differs",
                "belongs_at": m.belongs_at,
                "belongs_at_file_offset": m.belongs_at - f["offset"] if moved else None}

    def add_gap(self, f: dict, at: int, length: int, kind: str) -> None:
        """Bytes missing from (or extra at the end of) a file."""
        self.count += 1
        self.mismatched += length
        if self.room > 0:
            self.ranges.append({"file": f["path"], "file_offset": at,
                                "offset": f["offset"] + at, "length": length, "kind": kind,
                                "belongs_at": None, "belongs_at_file_offset": None})


