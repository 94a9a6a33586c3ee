"""write_objects(): a dataset written as S3 objects, with the names, offsets and manifest
of write_dataset() on a file system.

Each object is streamed from a Generator seeked to its offset: objects up to part_size go
up in one PUT, larger ones as multipart uploads of part_size parts, `concurrency` parts in
flight. Every part is a buffer handed to the client without a copy and dropped once
uploaded; the next part is made as soon as one has gone up, in the memory of one that has,
so at most `concurrency` parts are held at once and no object is ever held whole.
"""

from __future__ import annotations

import errno
import json
import mmap
import threading
import time
import weakref
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np

from .. import _checks, _core
from .._generator import DEFAULT_DEDUP_UNIT
from .._fs import Refused
from ..identity import keywords_in
from ..manifest import (PART, file_names, make_generator, make_identity, manifest_record,
                        split_points)
from . import _store
from ._store import MANIFEST_NAME, MANIFEST_SUFFIX, MAX_PART, MAX_PARTS, MIN_PART, SCHEME

PART_SIZE = 16 << 20
CONCURRENCY = 8
SLOT_WAIT = 600.0  # seconds; past it a part is made anyway (a client that holds parts)


def layout(key: str, size: int, files: int) -> tuple[str, str, list[dict]]:
    """(prefix the object names are under, manifest key, [{path, offset, length}]): one
    object at `key` for files=1 (unless key is a bucket or ends with /), else part-NNNNN
    objects under the prefix `key`, as write_dataset() names files in a directory."""
    if files == 1 and key and not key.endswith("/"):
        base, _, name = key.rpartition("/")
        names, manifest = [name], key + MANIFEST_SUFFIX
    else:
        base, names = key.rstrip("/"), file_names(files)
        manifest = _store.join(base, MANIFEST_NAME)
    cuts = split_points(size, files)
    return base, manifest, [{"path": n, "offset": cuts[i], "length": cuts[i + 1] - cuts[i]}
                            for i, n in enumerate(names)]


def _stale_parts(store, base: str, names: set, where: str) -> list[str]:
    """Keys of part-* objects right under the prefix that the new dataset does not have."""
    import obstore
    try:
        listed = obstore.list_with_delimiter(store, base or None)["objects"]
    except Exception as e:
        raise OSError(f"listing {where}{base}: {_store.described(e)}") from None
    return sorted(o["path"] for o in listed
                  if PART.fullmatch(o["path"].rpartition("/")[2])
                  and o["path"].rpartition("/")[2] not in names)


def write_objects(url, size, *, files=1, dedup_ratio=1.0, compress_ratio=1.0, seed=None,
                  dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=1, dedup_shift=False,
                  dedup_skew="uniform", generation=0, change_rate=1.0,
                  format_version=_core.FORMAT_VERSION, dedup_window=_core.WINDOW_UNITS,
                  dedup_for=None, content="flat", part_size=PART_SIZE,
                  concurrency=CONCURRENCY, threads=None, force=False, progress=None,
                  store=None) -> dict:
    """Write a dataset of `size` bytes as objects at `url` (s3://bucket/key) and return its
    manifest, with "manifest" (its URL) and "seconds" added.

    files=1: the object s3://bucket/key, manifest key.dgen.json (a bucket alone or a key
    ending with / is a prefix: part-00000 in it). files=N: part-00000 ... under the prefix,
    manifest prefix/dgen-manifest.json. Names, offsets and manifest are those of
    write_dataset() (the same identity gives the same bytes, object by object).

    Objects above part_size (5 MiB .. 5 GiB) are multipart uploads of part_size parts;
    `concurrency` parts upload at once (objects go up side by side when there are several:
    each gets concurrency / objects). After each object a HEAD must give the size sent,
    else OSError naming it. An earlier manifest is deleted before any object is written and
    the new one is written last, so none claims data that is not there; on an error or
    KeyboardInterrupt the multipart upload in progress is aborted and the exception names
    the object. Refused when part-* objects the new dataset lacks are under the prefix
    (force=True deletes them). store: an open store of the bucket (see open_store).
    """
    plan = Plan(url, **keywords_in(locals()), files=files, part_size=part_size,
                concurrency=concurrency, threads=threads, force=force, store=store)
    plan.claim()
    seconds = plan.upload(plan.objects, progress)
    return {**plan.finish(), "seconds": seconds}


class Plan:
    """write_objects() in its steps, for one process or the ranks of an MPI job
    (s3/_mpi.py): the checked settings and layout (no request yet), claim() (the old
    manifest deleted, stale parts refused or deleted), upload(objects), finish() (the
    manifest put, its record returned)."""

    def __init__(self, url, size, *, files, part_size, concurrency, threads, force, store,
                 **identity):
        self.bucket, self.key = _store.parse_url(url)
        self.identity = make_identity(size=size, **identity)
        self.files = _checks.integer("files", files, 1, 1_000_000)
        self.part_size = _checks.integer("part_size", part_size, MIN_PART, MAX_PART)
        self.concurrency = _checks.integer("concurrency", concurrency, 1, 1024)
        self.threads = _checks.threads(threads) or _core.available_cpus()
        self.force = _checks.flag("force", force)
        self.base, self.manifest, self.objects = layout(self.key, self.identity["size"],
                                                        self.files)
        biggest = max(o["length"] for o in self.objects)
        if -(-biggest // self.part_size) > MAX_PARTS:
            raise ValueError(f"part_size {self.part_size} makes {-(-biggest // self.part_size)} "
                             f"parts of an object of {biggest} bytes; S3 allows {MAX_PARTS}: "
                             f"give a part_size of at least {-(-biggest // MAX_PARTS)}")
        self.store = store or _store.open_store(self.bucket)
        self.where = f"{SCHEME}{self.bucket}/"

    def claim(self) -> None:
        import obstore
        key, files, where = self.key, self.files, self.where
        if files > 1 or not key or key.endswith("/"):
            stale = _stale_parts(self.store, self.base, {o["path"] for o in self.objects},
                                 where)
            if stale and not self.force:
                raise Refused(errno.EEXIST, f"{where}{self.base} holds {len(stale)} part "
                              f"object(s) that a dataset of {files} objects does not have "
                              f"({stale[0]} ...); force=True (--force) deletes them")
        else:
            stale = []
        try:  # a manifest left from before must not outlive the data it describes
            obstore.delete(self.store, [self.manifest, *stale])
        except Exception as e:
            raise OSError(f"deleting {where}{self.manifest}: {_store.described(e)}") from None

    def upload(self, objects: list[dict], progress=None) -> float:
        """Put `objects` (of self.objects); the seconds it took."""
        todo = [o for o in objects if o["length"]] + [o for o in objects if not o["length"]]
        workers = max(1, min(self.concurrency, len(todo)))
        each_threads = max(1, self.threads // workers)
        each_parts = max(1, self.concurrency // workers)
        stop = threading.Event()
        lock = threading.Lock()

        def one(o):
            name = _store.join(self.base, o["path"])
            _upload(self.store, name, o, self.identity, self.part_size, each_parts,
                    each_threads, stop, lambda n: progress and _locked(lock, progress, n),
                    self.where)

        started = time.perf_counter()
        try:
            if workers == 1:
                for o in todo:
                    one(o)
            else:
                _side_by_side(one, todo, workers, stop)
        except KeyboardInterrupt:
            stop.set()
            raise KeyboardInterrupt(f"interrupted writing {self.where}{self.key}: uploads in "
                                    f"progress were aborted, no manifest was written") from None
        return time.perf_counter() - started

    def finish(self) -> dict:
        """Put the manifest (every object is there); its record, with "manifest" (its URL)."""
        import obstore
        record = manifest_record(self.identity, self.objects)
        try:
            obstore.put(self.store, self.manifest, json.dumps(record, indent=1).encode(),
                        use_multipart=False)
        except Exception as e:
            raise OSError(f"writing the manifest {self.where}{self.manifest}: "
                          f"{_store.described(e)}") from None
        return {**record, "manifest": self.where + self.manifest}


def _side_by_side(one, todo, workers, stop) -> None:
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(one, o) for o in todo]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # on an error or Ctrl-C the other uploads abort at their next part
            stop.set()
            pool.shutdown(cancel_futures=True)
        errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
        errors = [e for e in errors if e is not None]
        # the first real cause, not the uploads it stopped
        real = [e for e in errors if not isinstance(e, InterruptedError)] or errors
        if real:
            raise real[0]


def _locked(lock, progress, n):
    with lock:
        progress(n)


def _upload(store, name, o, identity, part_size, parts, threads, stop, tick, where):
    """Object `name` holding dataset bytes [o.offset, o.offset + o.length), checked by HEAD."""
    length, shown = o["length"], where + name
    gen = make_generator(identity, threads)
    gen.seek(o["offset"])

    # The client drops each part once uploaded: a part is made only when one of `parts`
    # slots is free, so no more than `parts` are held (all uploading, or the next made).
    # A dropped part's memory is made into a later part: fresh memory would cost a page
    # fault per 4 KiB (0.57x the plain upload of a prebuilt buffer to a fast store).
    slots = threading.Semaphore(parts)
    free = []  # mappings of part_size bytes no part uses (list.append/pop are atomic)

    def dropped(mapping):
        free.append(mapping)
        slots.release()

    def made():
        left = length
        while left:
            waited = 0.0
            while not slots.acquire(timeout=0.1):
                waited += 0.1
                if stop.is_set() or waited > SLOT_WAIT:
                    break
            if stop.is_set():
                raise InterruptedError("stopped: another upload failed or was interrupted")
            # Mappings of their own, not malloc's heap, where freed parts can stay
            # resident beside new ones (glibc raises its mmap threshold).
            mapping = free.pop() if free else mmap.mmap(-1, part_size)
            buf = np.frombuffer(mapping, np.uint8, min(part_size, left))
            weakref.finalize(buf, dropped, mapping)
            gen.readinto(buf)
            left -= len(buf)
            tick(len(buf))
            yield buf
            del buf  # the client holds it now, and frees the slot when it is uploaded

    try:
        put_checked(store, name, made(), length, part_size, parts, shown)
    finally:
        gen.close()


def put_checked(store, name, parts_made, length, part_size, parts, shown) -> None:
    """Put object `name` from the iterator `parts_made` of buffers (one PUT up to
    part_size, else a multipart upload, `parts` at once, aborted on an error) and check by
    HEAD that the store holds `length` bytes; OSError naming `shown` otherwise."""
    import obstore
    try:
        if length <= part_size:  # one PUT
            obstore.put(store, name, next(parts_made, b""), use_multipart=False)
        else:
            obstore.put(store, name, parts_made, chunk_size=part_size, max_concurrency=parts)
        held = obstore.head(store, name)["size"]
    except KeyboardInterrupt:
        raise
    except InterruptedError:
        raise
    except Exception as e:
        raise OSError(f"writing {shown}: {_store.described(e)}; the upload was aborted and "
                      f"no manifest was written") from None
    if held != length:
        raise OSError(f"writing {shown}: the store holds {held} bytes after the upload, but "
                      f"{length} were sent (a short or failed multipart upload); no manifest "
                      f"was written")
