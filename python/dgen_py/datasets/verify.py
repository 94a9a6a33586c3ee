"""Verifying a training dataset: every file regenerated from the manifest and compared,
each rank its share."""

from __future__ import annotations

import os
import time

from .. import _checks, _core
from .engine import Checker
from .formats import encoders, parts, side_files
from .manifest import read_manifest
from .ranks import collective
from .spec import INDEX_DIR, SPLITS, require
from .. import _fs
from .._report import extra_lines
from .. import manifest as manifests


def verify_training_dataset(path, *, max_ranges=20, threads=None, progress=None,
                            comm=None, _loaded=manifests.UNREAD, _source=None) -> dict:
    """Regenerate every file of the training dataset in `path` and compare it with what is
    there. Returns a JSON-ready dict: "ok", "path", "manifest", "identity", "dataset",
    "files" (data and index files checked), "bytes_read", "mismatched_bytes",
    "range_count", "ranges" (the first max_ranges: {file, file_offset, length, kind
    ("payload", "container", "encoded": bytes an encoder made, "missing", "extra"),
    offset: the stream offset of a payload range}), "warnings" (encoders of another
    version than the one that wrote the files) and "seconds". With comm, rank r checks
    files r, r + size, ... and every rank returns the same dict. _loaded: as for
    is_training_dataset. _source: (manifest record, open(rel) -> fd to read) of a dataset
    elsewhere than in a directory (on S3)."""
    agree, rank, world, share = collective(comm)

    def check():
        return (_checks.integer("max_ranges", max_ranges, 0, 2**31),
                _checks.threads(threads) or share or _core.available_cpus(),
                read_manifest(path, _loaded=_loaded) if _source is None else _source[0])
    max_ranges, count, record = agree(check, share=False)
    path = os.fspath(path)
    if comm is not None:  # the manifest as read (not what it implies); where, on a
        from ..mpi import same_dataset, sizes_seen  # filesystem, and the files' sizes there
        seen = {k: v for k, v in record.items() if k not in ("manifest", "entries")}
        if _source is None:
            seen = [seen, os.path.abspath(path),
                    sizes_seen(path, record["files"] + record["index_files"])]
        same_dataset(comm, seen, path)
    spec, identity, entries = record["dataset"], record["identity"], record["entries"]
    warnings = []
    now = agree(lambda: require(spec["format"]) and encoders(spec["format"]),
                share=False) or {}
    for name, version in (record.get("encoders") or {}).items():
        if now.get(name) != version:
            warnings.append(f"{name} {now.get(name)} here, {version} wrote the dataset: "
                            f"{spec['format']} container or encoded bytes may differ")
    started = time.perf_counter()
    lengths = {f["path"]: f["length"] for f in record["files"] + record["index_files"]}
    results = agree(lambda: _check_files(path, spec, identity, entries[rank::world], lengths,
                                         count, max_ranges,
                                         progress if rank == 0 else None,
                                         _source and _source[1]))
    ranges = sorted((r for res in results for r in res["ranges"]),
                    key=lambda r: r["file"])[:max_ranges]
    count = sum(r["range_count"] for r in results)
    extra = agree(lambda: _strays(path, lengths) if rank == 0 and _source is None
                  else [])[0]
    return {"ok": count == 0 and not extra, "path": path, "manifest": record["manifest"],
            "identity": identity, "dataset": spec,
            "files": sum(r["files"] for r in results),
            "bytes_read": sum(r["bytes_read"] for r in results),
            "mismatched_bytes": sum(r["mismatched_bytes"] for r in results),
            "range_count": count, "ranges": ranges, "extra_files": extra,
            "warnings": warnings, "seconds": time.perf_counter() - started}


def _strays(root: str, listed) -> list[dict]:
    """[{path, size}] of the files under DIR's train/, valid/ and index/ that the manifest
    does not list (`listed`: its paths): DLIO reads every file of its format there."""
    out = []
    for top in (*SPLITS, INDEX_DIR):
        for folder, dirs, names in os.walk(os.path.join(root, top)):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, root)
                if rel not in listed:
                    out.append({"path": rel, "size": os.lstat(full).st_size})
    return out


def _check_files(root, spec, identity, mine, lengths, threads, max_ranges, progress,
                 opener=None) -> dict:
    """Compare files `mine` with what they should hold; `lengths`: the manifest's, by path.
    opener(rel): an fd to read file `rel` from (FileNotFoundError: missing), else root's."""
    checker = Checker(identity, threads, max_ranges, progress)
    tree = _fs.DatasetTree.at(root) if opener is None else None
    opener = opener or (lambda rel: tree.open(rel, os.O_RDONLY))
    count = 0
    try:
        for f in mine:
            targets = [(f["path"], parts(spec, f), f["payload_offset"] + f["payload"])]
            targets += [(p, content, 0) for p, content in side_files(spec, f)]
            for rel, expected, limit in targets:
                count += 1
                try:
                    fd = opener(rel)
                except FileNotFoundError:
                    checker.add_range(rel, 0, lengths[rel], "missing")
                    continue
                try:
                    checker.check(fd, rel, expected, limit, lengths[rel])
                finally:
                    os.close(fd)
    finally:
        checker.window.close()
        if tree is not None:
            tree.close()
    return {"files": count, "bytes_read": checker.read, "mismatched_bytes": checker.mismatched,
            "range_count": checker.count, "ranges": checker.ranges}


def report(r: dict) -> str:
    """verify_training_dataset's result as the CLI prints it."""
    spec = r["dataset"]
    what = f"{spec['format']} dataset, {r['files']} file(s) (data and index)"
    if r["ok"]:
        return (f"OK {r['path']}: {what}, {r['bytes_read']} bytes read and verified "
                f"(payload and container); seed {r['identity']['seed']}")
    lines = [f"FAILED {r['path']}: {what}: {r['range_count']} mismatching range(s), "
             f"{r['mismatched_bytes']} byte(s) differ or are missing"]
    width = max([4, *(len(x["file"]) for x in r["ranges"])])
    lines.append(f"{'file':<{width}} {'file offset':>14} {'length':>12}  what")
    for x in r["ranges"]:
        where = "" if x["offset"] is None else f" (stream offset {x['offset']})"
        lines.append(f"{x['file']:<{width}} {x['file_offset']:>14} {x['length']:>12}  "
                     f"{x['kind']}{where}")
    if r["range_count"] > len(r["ranges"]):
        lines.append(f"... and {r['range_count'] - len(r['ranges'])} more range(s)")
    return "\n".join([*lines, *extra_lines(r["path"], r.get("extra_files", []))])
