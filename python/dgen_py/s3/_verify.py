"""verify_objects(): a dataset of S3 objects read back with ranged GETs and compared with
the bytes its identity defines, as verify_file() does on a file system."""

from __future__ import annotations

import errno
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import _checks, _core
from .._fs import Refused
from .._report import VERIFY_CHUNK, Report
from ..identity import NAMES, keywords_in
from ..manifest import (ALIGN, MANIFEST_VERSION, MAX_MANIFEST, PART, agrees, check_manifest,
                        make_generator, make_identity, overridden)
from . import _store
from ._store import MANIFEST_NAME, MANIFEST_SUFFIX, SCHEME
from ._write import CONCURRENCY, PART_SIZE, layout

OVERRIDES = tuple(name for name in NAMES if name != "size")  # size must agree


class Tally(Report):
    """verify_file()'s Report over objects (or parts of them); short: the object ended
    before the part did (it shrank since its HEAD)."""
    short = False


def _missing(e) -> bool:
    import obstore.exceptions  # it raises FileNotFoundError for 404s
    return isinstance(e, (FileNotFoundError, obstore.exceptions.NotFoundError))


def head(store, name):
    """The object's size, or None when there is none."""
    import obstore
    try:
        return obstore.head(store, name)["size"]
    except Exception as e:
        if _missing(e):
            return None
        raise


def load_manifest(store, name: str, where: str):
    """The manifest object `name` as a checked record, or None if there is none."""
    record = load_json(store, name, where)
    if record is None:
        return None
    if isinstance(record, dict) and record.get("dgen_manifest") != MANIFEST_VERSION:
        raise ValueError(f"{where}: dgen_manifest is {record.get('dgen_manifest')!r}: this "
                         f"dgen reads manifest version {MANIFEST_VERSION} only")
    record = check_manifest(record, where)
    if name.endswith(MANIFEST_SUFFIX):
        own = name[:-len(MANIFEST_SUFFIX)].rpartition("/")[2]
        if [f["path"] for f in record["files"]] not in ([own], []):
            raise ValueError(f"{where}: files must list only {own!r}, the object this "
                             f"manifest is beside")
    return record


def load_json(store, name: str, where: str):
    """The JSON value of manifest object `name` (at most MAX_MANIFEST bytes), or None."""
    import obstore
    size = head(store, name)
    if size is None:
        return None
    if size > MAX_MANIFEST:
        raise Refused(errno.EFBIG, f"{where} holds {size} bytes: a manifest may hold at most "
                      f"{MAX_MANIFEST} bytes")
    try:
        record = json.loads(bytes(obstore.get(store, name).bytes()))
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{where}: not a JSON manifest ({e})") from None
    return record


def find_manifest(store, key: str, where: str):
    """(record or None, its key, the keys tried, the dataset's key) of the dataset at
    `key`: key.dgen.json, else key/dgen-manifest.json, or a manifest's own key."""
    last = key.rpartition("/")[2]
    if key.endswith(MANIFEST_SUFFIX):
        tries = [key]
    elif last == MANIFEST_NAME:
        tries, key = [key], key[:-len(MANIFEST_NAME)]
    elif not key or key.endswith("/"):
        tries = [_store.join(key, MANIFEST_NAME)]
    else:
        tries = [key + MANIFEST_SUFFIX, _store.join(key, MANIFEST_NAME)]
    for name in tries:
        record = load_manifest(store, name, where + name)
        if record is not None:
            return record, name, tries, key
    return None, None, tries, key


def resolve(store, url: str, given: dict, size, files) -> dict:
    """{identity, base, objects, manifest (URL or None), prefix, sized_by_object}."""
    bucket, key = _store.parse_url(url)
    where = f"{SCHEME}{bucket}/"
    record, manifest, tries, key = find_manifest(store, key, where)
    count = None if files is None else _checks.integer("files", files, 1, 1_000_000)
    merged = overridden(record, given)
    if merged["seed"] is None:
        raise ValueError(f"{url} has no manifest ({', '.join(where + t for t in tries)}): "
                         f"give the seed and the other identity values it was written with")
    if record:
        agrees(record, where + manifest, size, count)
        identity = make_identity(**merged)
        single = manifest.endswith(MANIFEST_SUFFIX)
        base = manifest.rpartition("/")[0]
        return {"identity": identity, "base": base, "objects": record["files"],
                "manifest": where + manifest, "prefix": not single, "sized_by_object": False}
    sized = size is None
    prefix = bool(count and count > 1) or not key or key.endswith("/")
    if sized:
        if prefix:
            raise ValueError(f"{url} has no manifest: give the size of the dataset")
        size = head(store, key)
        if size is None:
            raise FileNotFoundError(f"no such object: {url}")
        if size == 0:
            raise ValueError(f"{url} is empty: give size=0 (--size 0) to verify an empty "
                             f"dataset")
    identity = make_identity(**{**merged, "size": size})
    base, _, objects = layout(key, identity["size"], count or 1)
    return {"identity": identity, "base": base, "objects": objects, "manifest": None,
            "prefix": prefix, "sized_by_object": sized}


def verify_objects(url, *, seed=None, size=None, files=None, dedup_ratio=None,
                   compress_ratio=None, dedup_unit=None, dedup_run=None, dedup_shift=None,
                   dedup_skew=None, generation=None, change_rate=None, format_version=None,
                   dedup_window=None, content=None, threads=None, concurrency=CONCURRENCY,
                   read_size=PART_SIZE, max_ranges=20, progress=None, store=None) -> dict:
    """Read the dataset at `url` (s3://bucket/key, as write_objects() wrote it) back with
    ranged GETs and compare it with the bytes its identity defines.

    The manifest object (key.dgen.json, else key/dgen-manifest.json; or the URL of a
    manifest) gives the identity and objects; the identity keywords override its values,
    size and files must agree with it. Without one they give everything, as for
    verify_file(). Every object's size is taken by HEAD; up to `concurrency` GETs of
    read_size bytes run at once (objects, and 64 MiB windows of one object, side by side),
    each checked where it lands and, from a mismatch on, its window checked whole, so
    moved and stale units are named. `threads` (default: every CPU) are shared by them.

    Returns verify_file()'s report: ok, verdict, warnings, path (the URL), manifest,
    identity, files (each with size_on_store: None when missing), bytes, bytes_read,
    mismatched_bytes, range_count, ranges (kinds differs, zeros, moved, stale, missing:
    the object is short or absent, extra: it is longer), seconds; and extra_objects
    ([{path, size}]: part-* objects under the prefix that the dataset does not have, which
    also make ok false).
    """
    given = keywords_in(locals())
    job = Check(url, given, size, files, threads=threads, concurrency=concurrency,
                read_size=read_size, max_ranges=max_ranges, store=store)
    started = time.perf_counter()
    tally, sizes, extra = job.run(range(len(job.objects)), progress, extra=True)
    return job.report(tally, sizes, extra, time.perf_counter() - started)


class Check:
    """verify_objects() in its steps, for one process or the ranks of an MPI job
    (s3/_mpi.py): the dataset resolved (its manifest read), run(indices) checking some of
    its objects, report() of every object's results."""

    def __init__(self, url, given, size, files, *, threads, concurrency, read_size,
                 max_ranges, store):
        bucket, _ = _store.parse_url(url)
        self.url = url
        self.concurrency = _checks.integer("concurrency", concurrency, 1, 1024)
        self.read_size = _checks.integer("read_size", read_size, ALIGN, 1 << 30)
        self.max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)
        self.threads = _checks.threads(threads) or _core.available_cpus()
        self.store = store or _store.open_store(bucket)
        self.where = f"{SCHEME}{bucket}/"
        try:
            self.dataset = resolve(self.store, url, given, size, files)
        except (ValueError, OSError):
            raise
        except Exception as e:  # the client's own errors: one line, naming the URL
            raise OSError(f"reading {url}: {_store.described(e)}") from None
        self.identity = self.dataset["identity"]
        self.objects = self.dataset["objects"]

    def run(self, indices, progress=None, extra=False):
        """(Tally, {index: size on the store or None}, extra objects or []): the objects
        `indices` checked; extra=True lists part-* objects the dataset does not have."""
        store, where, identity, objects = self.store, self.where, self.identity, self.objects
        indices = list(indices)
        names = {i: _store.join(self.dataset["base"], objects[i]["path"]) for i in indices}
        window = max(VERIFY_CHUNK, 4 * identity["dedup_unit"])
        stop = threading.Event()
        lock = threading.Lock()

        def tick(n):
            if progress:
                with lock:
                    progress(n)

        with ThreadPoolExecutor(self.concurrency) as pool:
            try:
                sizes = dict(zip(indices, pool.map(lambda i: _named(head, store, names[i],
                                                                    where), indices)))
                extra = _extra(store, self.dataset["base"], {o["path"] for o in objects},
                               where) if extra and self.dataset["prefix"] else []
                parts = _parts(indices, objects, sizes, self.concurrency, window)
                each = max(1, self.threads // max(1, min(self.concurrency, len(parts))))
                done = list(pool.map(lambda p: _check(
                    store, names[p[0]], objects[p[0]], p[1], p[2], identity, each, window,
                    self.read_size, self.max_ranges, tick, stop, where), parts))
            finally:
                stop.set()
        tally = Tally(self.max_ranges)
        for i in indices:
            o = objects[i]
            mine = [t for p, t in zip(parts, done) if p[0] == i]
            for t in mine:
                tally.merge(t)
            held = sizes[i]
            if held is None:
                tally.add_gap(o, 0, o["length"], "missing")
            elif held < o["length"] and not (mine and mine[-1].short):
                tally.add_gap(o, held, o["length"] - held, "missing")
            elif held > o["length"]:
                tally.add_gap(o, o["length"], held - o["length"], "extra")
        return tally, sizes, extra

    def report(self, tally, sizes: dict, extra: list, seconds: float) -> dict:
        identity, url = self.identity, self.url
        ok = tally.count == 0 and tally.read == identity["size"] and not extra
        verdict = "ok" if ok else "other identity" if tally.other_identity() else "mismatch"
        return {
            "ok": ok, "verdict": verdict, "path": url, "manifest": self.dataset["manifest"],
            "identity": identity,
            "files": [{**o, "size_on_store": sizes.get(i)} for i, o in enumerate(self.objects)],
            "bytes": identity["size"], "bytes_read": tally.read,
            "mismatched_bytes": tally.mismatched, "range_count": tally.count,
            "ranges": tally.ranges, "extra_objects": extra,
            "warnings": [f"{url} has no manifest and no size was given: the size was taken "
                         f"from the object, so a truncated object cannot be detected"]
            if self.dataset["sized_by_object"] else [],
            "seconds": seconds,
        }


def _named(call, store, name, where, *args):
    try:
        return call(store, name, *args)
    except Exception as e:
        raise OSError(f"reading {where}{name}: {_store.described(e)}") from None


def _extra(store, base: str, names: set, where: str) -> list[dict]:
    import obstore
    try:
        listed = obstore.list_with_delimiter(store, base or None)["objects"]
    except Exception as e:
        raise OSError(f"listing {where}{base}: {_store.described(e)}") from None
    return sorted(({"path": o["path"], "size": o["size"]} for o in listed
                   if PART.fullmatch(o["path"].rpartition("/")[2])
                   and o["path"].rpartition("/")[2] not in names), key=lambda o: o["path"])


def _parts(indices, objects, sizes, workers: int, window: int) -> list[tuple[int, int, int]]:
    """(object index, start, end): the bytes of objects `indices` there are to read (up to its
    stored size), cut at dataset offsets that are multiples of the window so that objects
    with fewer than `workers` siblings are read by several workers."""
    each = -(-workers // max(1, len(indices)))
    out = []
    for i in indices:
        o, held = objects[i], sizes[i]
        end = min(o["length"], held or 0)
        a0 = o["offset"]
        cuts = sorted({0, end, *(min(end, max(0, (a0 + j * end // each) // window * window
                                              - a0)) for j in range(1, each))})
        out += [(i, a, b) for a, b in zip(cuts, cuts[1:])]
    return out


def _check(store, name, o, at, end, identity, threads, window, read_size, max_ranges, tick,
           stop, where) -> Tally:
    """Object bytes [at, end) read in read_size GETs and checked, window by window."""
    import obstore
    gen = make_generator(identity, threads)
    verifier = gen.verifier(max_ranges=max(1, max_ranges))
    mine, clean = Tally(max(1, max_ranges)), 0
    try:
        while at < end and not stop.is_set():
            start = o["offset"] + at
            want = min(window - start % window, end - at)
            n, dirty = 0, None
            while n < want:
                k = min(read_size, want - n)
                data = _named(lambda s, p: obstore.get_range(s, p, start=at + n, length=k),
                              store, name, where)
                got = len(data)
                if dirty is None and not gen.verify(data, start + n, max_ranges=0).ok:
                    # from a mismatch on, the window is gathered and checked whole
                    dirty = np.empty(want, np.uint8)
                    gen.seek(start)
                    gen.readinto(dirty[:n])
                if dirty is not None:
                    dirty[n:n + got] = np.frombuffer(data, np.uint8)
                n += got
                if got < k:
                    break
            if dirty is not None:
                verifier.add(dirty[:n], start)
            else:
                clean += n
            tick(n)
            at += n
            if n < want:  # the object shrank since its HEAD
                mine.short = True
                break
        mine.add_file(o, verifier, clean)
        if mine.short:
            mine.add_gap(o, at, o["length"] - at, "missing")
        return mine
    finally:
        gen.close()
