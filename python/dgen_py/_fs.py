"""Safe file access for datasets: opens that refuse what is not a regular file.

dgen reads and writes only regular files inside the dataset's directory: every data file
is opened by name from the directory's descriptor with O_NOFOLLOW, and whatever is not a
regular file (a symlink, device or FIFO) is refused. The writer's and verify's locks:
_locks.py.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile


MANIFEST_NAME = "dgen-manifest.json"  # inside a dataset directory (manifest.py)

class Refused(OSError):
    """dgen will not touch this dataset as asked (the CLI's usage error, exit 2)."""


class DirectIOUnsupported(Refused):
    """The filesystem refuses O_DIRECT."""


def check_direct(directory: str) -> None:
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


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file renamed over it, both synced."""
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
    fsync_dir(directory)


def open_in(directory: int, name: str, flags: int, shown: str, mode: int = 0o644) -> int:
    """Open the regular file `name` in the directory open as `directory`, not following a
    symlink; O_NONBLOCK so that a FIFO cannot hang the open. `shown` names it in errors."""
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=directory)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO without a reader
            refuse_not_regular(os.stat(name, dir_fd=directory, follow_symlinks=False), shown)
        raise OSError(e.errno, e.strerror, shown) from None
    try:
        refuse_not_regular(os.fstat(fd), shown)
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


def kind(st: os.stat_result) -> str:
    return ("a regular file" if stat.S_ISREG(st.st_mode) else
            "a symbolic link" if stat.S_ISLNK(st.st_mode) else
            "a directory" if stat.S_ISDIR(st.st_mode) else
            "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket")


def refuse_not_regular(st: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise Refused(errno.EINVAL, f"{shown} is {kind(st)}: dgen reads and writes only "
                      f"regular files inside the dataset")
