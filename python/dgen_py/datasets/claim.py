"""Claiming a dataset's directory before writing: its lock, the entries in the way and
the files of an older dataset."""

from __future__ import annotations

import errno
import os

from .formats import side_paths
from .spec import INDEX_DIR, SPLITS
from .. import _fs, _locks


def targets(spec, entries) -> tuple[set, set]:
    """(the paths of every data and index file, relative to DIR; every directory they go
    in and every subfolder, as DLIO makes them)."""
    new = {e["path"] for e in entries} | {p for e in entries for p in side_paths(spec, e)}
    new_dirs = {d for p in new for d in _parents(p)}
    sub = spec["subfolders"]
    new_dirs |= {f"{split}/{j:0{len(str(sub))}d}" for split in SPLITS
                 for j in range(sub if sub > 1 else 0)}
    return new, new_dirs


def claim_directory(root: str, manifest: str, new: set, new_dirs: set, force: bool):
    """Claim directory `root` (made if missing) for a new dataset of files `new` and
    directories `new_dirs` (see _locks.claim_dataset): refuse entries in their way, and the
    files under train/, valid/ and index/ that it does not have unless force (then delete
    them), drop the old manifest, make the directories. Returns release(), which unlocks
    and closes root."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise ValueError(f"path must be a directory for a training dataset, got the "
                         f"file {root}")
    _locks.inside(root)  # before a refused write makes the directory
    os.makedirs(root, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    dirs = new_dirs | set(SPLITS)

    def survey():
        existing = _existing(root)
        _refuse_in_the_way(root, existing, new, dirs)
        return _stale(existing, new | dirs | {INDEX_DIR})

    unlock = None
    try:
        unlock = _locks.claim_dataset(fd, root, manifest, survey, force=force)
        # every directory a file goes in, made before the other ranks open them
        tree = _fs.DatasetTree(fd, root)
        try:
            for d in sorted(dirs):
                tree.dir(d, create=True)
        finally:
            tree.close()
    except BaseException:
        if unlock:
            unlock()
        os.close(fd)
        raise

    def release():
        unlock()
        os.close(fd)  # and with it the lock
    return release


def _stale(existing: dict, kept: set) -> tuple[list, list]:
    """(files, directories) of `existing` that are not `kept`: symlinks go as files (never
    followed); directories (an earlier --subfolders: DLIO would take them for subfolders)
    deepest first, so each is empty when it goes."""
    files = sorted(p for p, kind in existing.items() if kind != "dir" and p not in kept)
    dirs = sorted((p for p, kind in existing.items() if kind == "dir" and p not in kept),
                  key=lambda d: -d.count("/"))
    return files, dirs


def _parents(path: str) -> list[str]:
    """The directories path lies in, relative: "a/b/c" -> ["a", "a/b"]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _kind(entry) -> str:
    return "dir" if entry.is_dir(follow_symlinks=False) else \
        "file" if entry.is_file(follow_symlinks=False) else "other"


def _existing(root: str) -> dict[str, str]:
    """Every entry under DIR/train, valid and index, and those three: {path relative to
    DIR: "dir", "file" or "other" (symlinks, FIFOs, devices: never followed)}."""
    out, todo = {}, []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name in (*SPLITS, INDEX_DIR):
                out[entry.name] = _kind(entry)
                todo.append(entry.name)
    while todo:
        rel = todo.pop()
        if out[rel] != "dir":
            continue
        with os.scandir(os.path.join(root, rel)) as entries:
            for entry in entries:
                name = f"{rel}/{entry.name}"
                out[name] = _kind(entry)
                todo.append(name)
    return out


def _refuse_in_the_way(root: str, existing: dict, files: set, dirs: set) -> None:
    """Refused, before anything changes, where an entry that a new file or directory
    needs is of another kind (a directory or symlink where a file goes, a file or
    symlink where a directory goes): the write would fail after the old manifest went."""
    for rel in sorted(dirs):
        if existing.get(rel, "dir") != "dir":
            raise _fs.Refused(errno.EINVAL, f"{os.path.join(root, rel)} is not a "
                                 f"directory: dgen reads and writes only inside real "
                                 f"directories of the dataset")
    for rel in sorted(files):
        if existing.get(rel, "file") != "file":
            full = os.path.join(root, rel)
            _fs.refuse_not_regular(os.lstat(full), full)

