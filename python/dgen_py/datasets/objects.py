"""Training datasets on S3 (docs/s3.md): the DLIO layout as objects under a prefix, as
DLIO's S3 readers list and read them (PREFIX/train/..., PREFIX/valid/..., PREFIX/index/...),
the manifest PREFIX/dgen-manifest.json put last.

Each file is written by the file system's per-file writer into an anonymous in-memory file
(memfd), so its bytes are those of the same file on a file system, then uploaded as one
object (multipart above part_size) and checked by HEAD. A job holds one file at a time.
Verify reads each object whole into a memfd and runs the training verifier's checker on it.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import threading
import time

from .. import _checks, _core
from .._fs import Refused
from .._generator import DEFAULT_DEDUP_UNIT
from ..manifest import MANIFEST_NAME, MANIFEST_SUFFIX, make_identity
from .claim import targets
from .engine import Writer
from .formats import side_files
from .manifest import check_record, manifest_record
from .presets import refuse_unhonoured
from .ranks import collective
from .spec import INDEX_DIR, SPLITS, plan, require, resolve_spec

LAYOUT = ("workload", "files", "eval_files", "samples_per_file", "record_length",
          "record_length_stdev", "subfolders", "file_prefix", "dlio", "hdf5_datasets",
          "dims_seed")
IDENTITY = {"dedup_ratio": 1.0, "compress_ratio": 1.0, "seed": None,
            "dedup_unit": DEFAULT_DEDUP_UNIT}  # make_identity's keywords without a default


def write_training_objects(url, format=None, *, part_size=None, concurrency=None,
                           threads=None, jobs=None, force=False, progress=None, store=None,
                           comm=None, **options) -> dict:
    """Write a DLIO training dataset as objects under s3://bucket/prefix; returns its
    manifest (as write_training_dataset does), "manifest" its URL.

    options: write_training_dataset's layout and identity keywords. Objects under
    prefix/train/, valid/ and index/ that the new dataset does not have are refused
    (force=True deletes them); the old manifest is deleted first and the new one put after
    every object is there. jobs files go up at once (default: concurrency, at most the
    files), each with concurrency / jobs parts in flight; part_size as write_objects'.
    With comm (mpi4py; collective) file i goes up from rank i % comm.size, rank 0 claims
    the prefix and puts the manifest after every rank succeeded.
    """
    from ..s3 import _store, _write
    agree, rank, world, share = collective(comm)
    planned = {}

    def check():  # on every rank; rank 0's identity (its seed, where none is given) is used
        planned["spec"] = spec = resolve_spec(
            format, **{k: v for k, v in options.items() if k in LAYOUT})
        require(spec["format"])
        planned["entries"], size = plan(spec)
        given = {**IDENTITY, **{k: v for k, v in options.items() if k not in LAYOUT}}
        refuse_unhonoured(given.get("dedup_for"), spec, planned["entries"])
        identity = make_identity(size=size, **given)
        planned["url"] = _store.parse_url(url)
        planned["part_size"] = _checks.integer(
            "part_size", _write.PART_SIZE if part_size is None else part_size,
            _store.MIN_PART, _store.MAX_PART)
        planned["concurrency"] = _checks.integer(
            "concurrency", _write.CONCURRENCY if concurrency is None else concurrency, 1, 1024)
        planned["jobs"] = _checks.integer("jobs", planned["concurrency"] if jobs is None
                                          else jobs, 1, _checks.MAX_THREADS)
        return {**spec, **given, "seed": _checks.seed(given["seed"]), "url": url,
                "force": _checks.flag("force", force)}, identity, \
            _checks.threads(threads) or share or _core.available_cpus()
    checked = agree(check)
    if comm is not None:
        from ..mpi import same_settings
        same_settings([settings for settings, _, _ in checked])
    spec, identity, entries = planned["spec"], checked[0][1], planned["entries"]
    (bucket, key), concurrency = planned["url"], planned["concurrency"]
    base, where = key.rstrip("/"), f"{_store.SCHEME}{bucket}/"
    manifest = _store.join(base, MANIFEST_NAME)
    opened = agree(lambda: store or _store.open_store(bucket), share=False)
    agree(lambda: _claim(opened, base, where, manifest, targets(spec, entries)[0],
                         bool(force)) if rank == 0 else None)
    mine = entries[rank::world]
    scale = identity["size"] / max(1, sum(e["payload"] for e in mine))
    tick = (lambda n: progress(n * scale)) if progress and rank == 0 else None
    target = Target(opened, base, where, planned["part_size"], threading.Event())

    def upload():
        sizes, started = {}, time.perf_counter()
        _upload(target, spec, identity, mine, sizes, checked[rank][2], planned["jobs"],
                concurrency, tick)
        return sizes, time.perf_counter() - started
    done = agree(upload)
    sizes = {path: n for written, _ in done for path, n in written.items()}
    record = manifest_record(spec, identity, entries, sizes)
    agree(lambda: _put_manifest(opened, where, manifest, record) if rank == 0 else None)
    return {**record, "manifest": where + manifest, "seconds": max(s for _, s in done)}


def _put_manifest(store, where, manifest, record) -> None:
    import obstore
    from ..s3 import _store
    try:
        obstore.put(store, manifest, json.dumps(record, indent=2).encode() + b"\n",
                    use_multipart=False)
    except Exception as e:
        raise OSError(f"writing the manifest {where}{manifest}: {_store.described(e)}") \
            from None


class Target:
    """Where the objects go: the store, the prefix, its URL (for errors), the part size;
    stop: set when an upload failed or was interrupted (the others abort at their next part)."""

    def __init__(self, store, base, where, part_size, stop):
        self.store, self.base, self.where, self.part_size = store, base, where, part_size
        self.stop = stop


def _claim(store, base, where, manifest, new: set, force: bool) -> None:
    """Refuse (or with force delete) objects under base/train, valid and index that are not
    in `new`; delete the old manifest."""
    import obstore
    from ..s3 import _store
    stale, prefix = [], _store.join(base, "")
    for top in (*SPLITS, INDEX_DIR):
        under = prefix + top + "/"
        try:
            for batch in obstore.list(store, under):
                stale += [o["path"] for o in batch if o["path"][len(prefix):] not in new]
        except Exception as e:
            raise OSError(f"listing {where}{under}: {_store.described(e)}") from None
    if stale and not force:
        named = sorted(k[len(prefix):] for k in stale)
        raise Refused(errno.EEXIST, f"{where}{base} holds {len(stale)} object(s) under "
                      f"train/, valid/ or index/ that are not part of the new dataset "
                      f"({', '.join(named[:3])}{', ...' if len(stale) > 3 else ''}): "
                      f"delete them, or pass --force (force=True) to delete them")
    try:  # a manifest left from before must not outlive the objects it describes
        obstore.delete(store, [manifest, *stale])
    except Exception as e:
        raise OSError(f"deleting {where}{manifest}: {_store.described(e)}") from None


def _upload(target, spec, identity, entries, sizes, threads, jobs, concurrency, progress):
    """Write and upload every data and index file of `entries`; sizes: {path: bytes}."""
    from ..s3 import _write
    jobs = max(1, min(jobs, len(entries)))
    lock = threading.Lock()
    tick = (lambda n: _write._locked(lock, progress, n)) if progress else None
    stop = target.stop

    def group(mine):
        writer = Writer(identity, max(1, threads // jobs), tick)
        try:
            for f in mine:
                _unless(stop, None)
                _one(target, spec, f, writer, sizes, max(1, concurrency // jobs))
        finally:
            writer.window.close()

    try:
        _write._side_by_side(group, [entries[j::jobs] for j in range(jobs)], jobs, stop)
    except KeyboardInterrupt:
        stop.set()
        raise KeyboardInterrupt(f"interrupted writing {target.where}{target.base}: uploads "
                                f"in progress were aborted, no manifest was written") from None


def _one(target, spec, f, writer, sizes, parts) -> None:
    """Data file f and its index files, each written into a memfd and uploaded."""
    fd = os.memfd_create("dgen-object", os.MFD_CLOEXEC)
    try:
        sizes[f["path"]] = writer.write(fd, spec, f)
        _put(target, f["path"], fd, sizes[f["path"]], parts)
    finally:
        os.close(fd)
    for p, content in side_files(spec, f):
        data = b"".join(content)
        sizes[p] = len(data)
        _put(target, p, None, len(data), parts, data)


def _put(target, rel, fd, length, parts, data=None) -> None:
    """Object base/rel from the first `length` bytes of memfd `fd` (or from `data`)."""
    from ..s3 import _store, _write
    name = _store.join(target.base, rel)
    if data is None and length:
        data = memoryview(mmap.mmap(fd, length, prot=mmap.PROT_READ))
    step = target.part_size
    pieces = (_unless(target.stop, data[at:at + step]) for at in range(0, length, step))
    _write.put_checked(target.store, name, pieces, length, step, parts,
                       target.where + name)


def _unless(stop, piece):
    if stop.is_set():
        raise InterruptedError("stopped: another upload failed or was interrupted")
    return piece


def training_manifest(url, comm=None):
    """(checked training manifest record, store, prefix) of the dataset at `url` (its
    prefix, or its manifest's URL), or None where the manifest there is not a training
    dataset's (or there is none). With comm: read by every rank, an error on any raised
    on all."""
    return collective(comm)[0](lambda: _training_manifest(url), share=False)


def _training_manifest(url):
    from ..s3 import _store, _verify
    bucket, key = _store.parse_url(url)
    if key.endswith(MANIFEST_SUFFIX):  # a single object's manifest
        return None
    named = key.rpartition("/")[2] == MANIFEST_NAME
    base = (key[:-len(MANIFEST_NAME)] if named else key).rstrip("/")
    where, name = f"{_store.SCHEME}{bucket}/", _store.join(base, MANIFEST_NAME)
    store = _store.open_store(bucket)
    record = _verify.load_json(store, name, where + name)
    if not isinstance(record, dict) or "dgen_dataset" not in record:
        return None
    return {**check_record(record, where + name), "manifest": where + name}, store, base


def verify_training_objects(url, *, max_ranges=20, threads=None, progress=None,
                            comm=None, found=None) -> dict:
    """verify_training_dataset() of the training dataset on S3 at `url`: each object read
    whole into a memfd (one at a time) and checked; with comm (collective) rank r checks
    files r, r + size, ... found: training_manifest(url, comm)."""
    from . import verify
    record, store, base = found or training_manifest(url, comm) or (None, None, None)
    if record is None:
        raise FileNotFoundError(errno.ENOENT, f"{url}: no training dataset manifest")
    return verify.verify_training_dataset(
        url, max_ranges=max_ranges, threads=threads, progress=progress, comm=comm,
        _source=(record, lambda rel: _fetched(store, base, rel, url)))


def _fetched(store, base, rel, url) -> int:
    """An fd of a memfd holding object base/rel; FileNotFoundError if there is none."""
    import obstore
    from ..s3 import _store, _verify
    name = _store.join(base, rel)
    fd = os.memfd_create("dgen-object", os.MFD_CLOEXEC)
    try:
        for chunk in obstore.get(store, name):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    except Exception as e:
        os.close(fd)
        if _verify._missing(e):
            raise FileNotFoundError(errno.ENOENT, f"no such object: {name}") from None
        raise OSError(f"reading {_store.SCHEME}{url.split('/')[2]}/{name}: "
                      f"{_store.described(e)}") from None
    return fd
