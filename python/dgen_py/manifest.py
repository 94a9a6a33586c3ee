"""A dataset's layout, identity and manifest: what write_dataset writes beside the data and
every other command reads back.

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
import os
import re
import stat

from . import _checks, _core
from ._fs import MANIFEST_NAME, Refused, refuse_not_regular, write_atomically
from ._locks import reading
from ._generator import Generator
from ._holds import file_holds, holds
from .identity import FIELDS, NAMES, REQUIRED, Identity
from ._version import __version__

ALIGN = 4096
MANIFEST_SUFFIX = ".dgen.json"  # beside a single data file
IDENTITY = REQUIRED  # what a manifest's identity must list
PART = re.compile(r"part-\d{5,}")
MAX_FILES = 1_000_000  # files of one dataset: each is listed in memory and in the manifest


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


def file_layout(path: str, size: int, files: int) -> tuple[str, list[dict]]:
    """(directory the file paths are relative to, [{path, offset, length}])."""
    if files == 1 and not os.path.isdir(path):
        names, base = [os.path.basename(path)], os.path.dirname(path)
    else:
        names, base = file_names(files), path
    cuts = split_points(size, files)
    return base, [{"path": name, "offset": cuts[i], "length": cuts[i + 1] - cuts[i]}
                  for i, name in enumerate(names)]


def make_identity(**fields) -> dict:
    """The identity's values (keywords named as in identity.FIELDS, and dedup_for),
    checked, as a manifest records them (Identity.record()); those left out take their
    defaults and a seed left out is drawn."""
    return Identity.of(**fields).record()


def make_generator(identity: dict, threads) -> Generator:
    return Generator(**Identity.from_record(identity).keywords(), max_threads=threads)


def manifest_record(identity: dict, layout: list[dict], *, direct=False, fsync=False) -> dict:
    """The manifest of a completely written dataset (see docs/cli.md); each file of
    `layout` ({path, offset, length}) with its holds, where file_holds() gives them. A
    layout that has them (a rewrite's, from the manifest) keeps them: the generation does
    not change which units are copies."""
    if not all("holds" in f for f in layout):
        held = file_holds(identity, layout) or [None] * len(layout)
        layout = [{**f, "holds": h} if h else f for f, h in zip(layout, held)]
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


def write_manifest(path: str, record: dict) -> None:
    """Write `record` (see manifest_record) to `path` atomically."""
    write_atomically(path, json.dumps(record, indent=2) + "\n")


UNREAD = object()  # a private _loaded or _record keyword's default: still to be read


def read_manifest(path, *, _loaded=UNREAD) -> dict | None:
    """The checked manifest of the dataset at `path` (file or directory), or None if it has
    none; ValueError naming the field when it is malformed (see check_manifest). _loaded:
    load_dataset_manifest(path)'s answer, where the caller read it already."""
    record = load_dataset_manifest(path) if _loaded is UNREAD else _loaded
    return None if record is None else check_manifest(record, manifest_path(path))


def load_dataset_manifest(path):
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
            refuse_not_regular(os.lstat(where), where)
        raise
    try:
        st = os.fstat(fd)
        refuse_not_regular(st, where)
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
        if "holds" in f:
            _check_file_holds(f["holds"], f"files[{i}].holds", bad)
        at += length
    if at != identity["size"]:
        bad("files", f"total {at} bytes, but identity.size is {identity['size']}")
    return {**record, "identity": identity}


def _check_file_holds(held, field: str, bad) -> None:
    """A file's holds (what _holds.file_holds records): counts and the ratio between them."""
    if not isinstance(held, dict):
        bad(field, f"must be a JSON object, got {type(held).__name__}")
    units, unique, ratio = (held.get(k) for k in ("units", "unique_units", "dedup_ratio"))
    if not all(type(n) is int and 0 <= n <= _checks.MAX_SIZE for n in (units, unique)) \
            or unique > units or type(ratio) not in (int, float) or ratio < 1:
        bad(field, f"must give integer units >= unique_units >= 0 and a dedup_ratio >= 1, "
            f"got {held!r:.80}")


def resolve_dataset(path, *, files=None, _record=UNREAD, **given) -> dict:
    """What verify_file() will check: {"identity", "base" (directory of the files),
    "files" ([{path, offset, length}]), "manifest" (its path, or None), "sized_by_file"
    (True when the size was taken from the file: truncation cannot be detected), "strict"
    (the files are opened only as regular files in base: a manifest or directory layout
    names them, not the user)}. given: identity values by name (None: not given).

    With a manifest, its file list is what is checked; size and files, when given, must
    agree with it. The other identity values given replace the manifest's. _record:
    read_manifest(path)'s answer, from a caller that read it under reading(path)."""
    path = os.fspath(path)
    record = _record
    if record is UNREAD:
        with reading(path):  # a running writer is named, not taken for a missing manifest
            record = read_manifest(path)
    refuse_replaced_by_directory(path, record)
    if record is None and not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no such file or directory: {path}")
    merged = overridden(record, given)
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
    agrees(record, manifest_path(path), given.get("size"), count)
    sized_by_file = merged["size"] is None
    if sized_by_file:
        if count or directory:
            raise ValueError(f"{path} has no manifest: give the size of the dataset")
        merged["size"] = _size_of(path)
    identity = make_identity(**merged)
    if record:
        base, listed = (path if directory else os.path.dirname(path)), record["files"]
    else:
        base, listed = file_layout(path, identity["size"], count or 1)
    return {"identity": identity, "base": base, "files": listed,
            "manifest": manifest_path(path) if record else None,
            "sized_by_file": sized_by_file, "strict": bool(record) or directory}


def overridden(record, given: dict) -> dict:
    """The identity values a dataset is checked against: the checked manifest `record`'s
    (None: there is none; the table's plain values), each replaced by the one `given`
    (by name) that is not None."""
    known = record["identity"] if record else {}
    unknown = set(given) - set(NAMES)
    if unknown:
        raise TypeError(f"{sorted(unknown)[0]!r} is not an identity field; they are "
                        f"{', '.join(NAMES)}")
    return {f.name: known.get(f.name, f.plain) if given.get(f.name) is None
            else given[f.name] for f in FIELDS}


def agrees(record, where: str, size, files) -> None:
    """ValueError where the size or count of files given differs from the manifest's
    (`record`, read from `where`; None: nothing to agree with)."""
    if record:
        for name, value, recorded in (("size", size, record["identity"]["size"]),
                                      ("files", files, len(record["files"]))):
            if value is not None and value != recorded:
                raise ValueError(f"{name} {value} differs from the {recorded} of the manifest "
                                 f"{where}: leave it out to verify the dataset the manifest "
                                 f"describes")


def _training_layout(path: str) -> bool:
    """Whether directory `path` holds train/ or valid/ (dgen dataset's layout)."""
    return any(os.path.isdir(os.path.join(path, split)) for split in ("train", "valid"))


def refuse_replaced_by_directory(path: str, record) -> None:
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
