"""A training dataset's manifest: made after every file is written, read back and checked
against the plan its dataset section makes."""

from __future__ import annotations

import datetime
import errno
import os

from .. import _checks
from ..identity import NAMES, REQUIRED as LISTED
from .._holds import holds
from .._version import __version__
from .formats import encoders, side_paths
from .spec import PARQUET_ROW_GROUP, parquet_rows, plan, resolve_spec
from .. import manifest as manifests

# The container layout of the files dgen dataset writes. 2 (dgen 0.6.0): npz, hdf5 and
# tfrecord files end at 4 KiB, TFRecord samples of 64 KiB and more start at 4 KiB, and
# parquet samples over 64 KiB go in row groups of fewer than 1024 rows.
LAYOUT = 2
# The identity's fields a manifest must record; an older one may lack the others (read with
# their defaults where absent; dedup_window is listed from format 3 on, content when not flat).
REQUIRED = (*LISTED, "format_version")


def _check_layout(record, where, spec, entries) -> None:
    """ValueError where the files were laid out otherwise than this dgen lays them out:
    verify would call every container byte damage."""
    layout = record.get("layout", 1)
    if type(layout) is not int or not 1 <= layout <= LAYOUT:
        raise ValueError(f"{where}: layout is {layout!r}: this dgen reads layouts 1 to "
                         f"{LAYOUT} (a newer dgen wrote it?)")
    fmt, samples = spec["format"], spec["samples_per_file"]
    changed = fmt in ("npz", "hdf5", "tfrecord") or fmt == "parquet" and any(
        parquet_rows(e["dims"][0] * e["dims"][1]) < min(PARQUET_ROW_GROUP, samples)
        for e in entries)
    if layout < 2 and changed:
        raise ValueError(f"{where}: {fmt} files of container layout {layout} (written by dgen "
                         f"{record.get('dgen_version', 'before 0.6.0')}); this dgen writes "
                         f"layout {LAYOUT}, whose {fmt} files differ: verify with the dgen "
                         f"that wrote it, or write the dataset again")


def manifest_record(spec, identity, entries, sizes) -> dict:
    """The manifest of the dataset written from plan `entries`; sizes: {path: bytes} of
    every data and index file."""
    listed, at = [], 0
    for f in entries:
        listed.append({"path": f["path"], "offset": at, "length": sizes[f["path"]],
                       "payload_offset": f["payload_offset"], "payload": f["payload"],
                       "dims": list(f["dims"])})
        at += sizes[f["path"]]
    index = sorted(p for f in entries for p in side_paths(spec, f))
    return {"dgen_dataset": 1, "dgen_version": __version__, "layout": LAYOUT,
            "format_version": identity["format_version"], "identity": identity,
            "holds": holds(identity), "dataset": spec, "encoders": encoders(spec["format"]),
            "files": listed,
            "index_files": [{"path": p, "length": sizes[p]} for p in index],
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "complete": True}


def is_training_dataset(path, *, _loaded=manifests.UNREAD) -> bool:
    """Whether `path` is a directory whose manifest describes a training dataset. _loaded:
    manifest.load_dataset_manifest(path)'s answer, where the caller read it already."""
    if not os.path.isdir(path):
        return False
    if _loaded is manifests.UNREAD:
        try:  # a manifest the loader refuses is refused again, with its reason, as a plain one
            _loaded = manifests.load_dataset_manifest(path)
        except (ValueError, OSError):
            return False
    return isinstance(_loaded, dict) and "dgen_dataset" in _loaded


def read_manifest(path, *, _loaded=manifests.UNREAD) -> dict:
    """The checked manifest of the training dataset in directory `path` (_loaded: as for
    is_training_dataset)."""
    where = os.path.join(os.fspath(path), manifests.MANIFEST_NAME)
    # loaded as every manifest is: a FIFO or device in its place is refused, not waited on
    record = manifests.load_dataset_manifest(path) if _loaded is manifests.UNREAD else _loaded
    if record is None:
        raise FileNotFoundError(errno.ENOENT, "no manifest", where)
    return check_record(record, where)


def check_record(record, where: str) -> dict:
    """A training dataset's manifest `record` (read from `where`), checked; with the plan's
    "entries" and "manifest" (where) added."""
    if not isinstance(record, dict) or record.get("dgen_dataset") != 1:
        raise ValueError(f"{where}: not a training dataset manifest (dgen_dataset != 1)")
    if record.get("complete") is not True:
        raise ValueError(f"{where}: complete is {record.get('complete')!r}: the dataset was "
                         f"not completely written")
    for key in ("dataset", "identity"):
        if not isinstance(record.get(key), dict):
            raise ValueError(f"{where}: {key} " + ("is missing" if key not in record else
                             f"must be a JSON object, got {type(record[key]).__name__}"))
    ident = record["identity"]
    for name in REQUIRED:
        if ident.get(name) is None:  # a null seed would draw one at random
            raise ValueError(f"{where}: identity.{name} is "
                             f"{'missing' if name not in ident else 'null'}")
    try:
        identity = manifests.make_identity(**{name: ident[name] for name in NAMES
                                              if name in ident})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: identity.{e}") from None
    try:
        spec = resolve_spec(**record["dataset"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: dataset: {e}") from None
    # The lists the dataset section asks for must be there, before plan() makes them: a
    # small manifest cannot ask for millions of files.
    count = spec["files"] + spec["eval_files"]
    listed = {"files": count, "index_files": count * len(side_paths(spec, {"path": "x/y"}))}
    for key, n in listed.items():
        if not isinstance(record.get(key), list):
            raise ValueError(f"{where}: {key} " + ("is missing" if key not in record else
                             f"must be a list, got {type(record[key]).__name__}"))
        if len(record[key]) != n:
            raise ValueError(f"{where}: {key} lists {len(record[key])} file(s), but the "
                             f"dataset section (files + eval_files: {count}) makes {n}")
    entries, size = plan(spec)
    _check_layout(record, where, spec, entries)
    if size != identity["size"]:
        raise ValueError(f"{where}: identity.size is {identity['size']}, but the dataset's "
                         f"samples take {size} bytes of the stream")
    _check_listing(record, where, {
        "files": [e["path"] for e in entries],
        "index_files": sorted(p for e in entries for p in side_paths(spec, e))})
    encoders = record.get("encoders", {})
    if not isinstance(encoders, dict) or not all(
            isinstance(v, str) for v in encoders.values()):
        raise ValueError(f"{where}: encoders must be an object of package: version strings, "
                         f"got {encoders!r:.60}")
    return {**record, "dataset": spec, "identity": identity, "entries": entries,
            "manifest": where}


def _check_listing(record, where, expected: dict) -> None:
    """The manifest's file lists (lists of the right length; expected: {key: the paths the
    dataset section makes, in order}) are {path, length} of exactly those paths;
    ValueError naming the first bad field."""
    def bad(field, problem):
        raise ValueError(f"{where}: {field} {problem}")
    for key, paths in expected.items():
        for i, (f, path) in enumerate(zip(record[key], paths)):
            if not isinstance(f, dict):
                bad(f"{key}[{i}]", f"must be a JSON object, got {type(f).__name__}")
            if f.get("path") != path:
                bad(f"{key}[{i}].path", "is missing" if "path" not in f else
                    f"is {f['path']!r}, but the dataset section makes {path!r}")
            length = f.get("length")
            if isinstance(length, bool) or not isinstance(length, int) or \
                    not 0 <= length <= _checks.MAX_SIZE:
                bad(f"{key}[{i}].length", "is missing" if "length" not in f else
                    f"must be an integer in [0, {_checks.MAX_SIZE}], got {length!r}")
