"""The locks of a dataset: a writer holds an exclusive lock on the dataset (the directory,
or the single data file) for the whole run, and verify a shared one while it reads, so
neither sees the other's half-done work. A path inside a directory dataset being written
is refused (inside), and the files of a directory dataset are probed (probe): a writer or
verify of one meets a writer of the other."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import socket
import stat

from ._fs import MANIFEST_NAME, DatasetTree, Refused


# Locks. A writer holds an exclusive flock on the dataset (the directory, or the single data
# file) for its whole run; verify holds a shared one while it reads, so neither sees the
# other's half-done work: each refuses while the other runs. Where the file system has no
# flock() (Lustre mounted without -o flock answers ENOSYS), a writer holds a lock file
# instead, removed when done, and verify refuses while it is there.
#
# The lock file L is NAME.dgen-lock beside the dataset's real path (symlinks resolved, so
# that every spelling of one dataset gives the same L, as flock() locks the one inode). L
# always has a second name beside it, its owner name dgen-lock-owner.K.H.PID.N, which says
# the process that holds it: K and H are hashes of L's name and of the host's (so the name
# fits wherever L does), N tells apart the locks of one process; L holds "HOST PID" for
# whoever looks. Every decision is taken on names, as each change of a name is atomic:
# - take: write a new owner name, then link() it as L, which fails while L is there (so L
#   never appears empty or without its owner);
# - release: rename the owner name to dgen-lock-going.K.H.PID.N (failing, L was taken
#   over: leave it), unlink L if it is still that name's file, then that name;
# - take over L when its owner name names a process of this host that is gone (H and the
#   host name L holds both this host's: names can share H): rename() the owner name to
#   one's own, then check that L is still that file. One rename() of a name
#   succeeds, so of any number of takers one wins; the others find the name gone and look
#   again (and find the winner alive). L is never removed meanwhile, so no writer can create
#   it either. (Unlinking a stale L and creating it again let a taker that had judged the
#   old file unlink the file the winner had just created: two writers at once.)
# A writer gone at any step leaves either L with the owner name of a dead process, taken
# over as above, or a name without L (one link), which nothing reads and may be removed;
# gone in the middle of its release, L with its going name, removed by hand like L from
# another host or without an owner name.
NO_FLOCK = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK)
OWNER, RELEASE = "dgen-lock-owner.", "dgen-lock-going."  # of equal length


def lock_file(path: str) -> str:
    """The lock file of the dataset at `path`, the same for every spelling of it."""
    real = os.path.realpath(path)
    if os.path.dirname(real) == real:
        raise Refused(errno.EINVAL, f"{os.fspath(path)} is the root directory: without "
                      f"flock() dgen locks a dataset with a lock file beside it, and / has "
                      f"nothing beside it; use a directory below it")
    return real + ".dgen-lock"


def lock(fd: int, path: str):
    """Take the writer's lock on the dataset `path` (open as fd); returns the function that
    releases it (closing fd releases a flock, but not a lock file). Refused while another
    writer or a verify holds it, or a writer holds a dataset around it (see inside)."""
    release = lambda: None  # noqa: E731
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        release = _create_lock_file(path)
    try:
        inside(path)
    except BaseException:
        release()
        raise
    return release


def inside(path: str) -> None:
    """Refused where `path` lies inside a dgen directory dataset that a writer holds: what
    is written or read there that writer writes too. Only directories above that look like
    a dataset (a manifest, a first part file, train/) are asked, and nothing is held, so
    another program's lock on a directory above (`flock DIR cmd`) means nothing to dgen."""
    directory = os.path.dirname(os.path.realpath(path))
    while True:
        if any(os.path.lexists(os.path.join(directory, name))
               for name in (MANIFEST_NAME, "part-00000", "train")):
            _refuse_if_written(directory, path)
        parent = os.path.dirname(directory)
        if parent == directory:
            return
        directory = parent


def _refuse_if_written(directory: str, path: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK)
    except OSError:  # not for this user to read
        return
    busy = f"{path} is inside the dataset {directory}, which is being written by another dgen"
    try:  # the shared lock goes with the close
        if _shared(fd, f"{busy} (it holds the dataset's lock); wait for it to finish"):
            return
        where = lock_file(directory) if os.path.dirname(directory) != directory else None
        if where and _held(where):
            raise Refused(errno.EBUSY, f"{busy} (it holds the lock file {where}; this file "
                          f"system has no flock()); wait for it to finish, or remove {where} "
                          f"if no dgen runs")
    finally:
        os.close(fd)


def probe(fd: int, shown: str, shared: bool) -> None:
    """Refused where a writer holds the file open as fd (a single-file dataset inside a
    directory dataset): for a writer of the directory dataset a probe (shared=False, the
    lock let go at once), for verify a shared lock held until fd closes."""
    if _shared(fd, f"{shown} is being written by another dgen (it holds that file's lock); "
                   f"wait for it to finish") and not shared:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _shared(fd: int, busy: str) -> bool:
    """Take a shared flock on fd: Refused(busy) while a writer holds it, False where the
    file system has no flock()."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Refused(errno.EBUSY, busy) from None
    except OSError as e:
        if e.errno not in NO_FLOCK:
            raise
        return False
    return True


def _held(where: str) -> bool:
    """Whether the lock file `where` is there and its owner not a gone process."""
    try:
        held = os.lstat(where)
    except FileNotFoundError:
        return False
    owner = _owner(where, held)
    return owner is None or not _gone(owner)


def _owners(where: str) -> str:
    """The start of the owner names of the lock file `where`: its directory/dgen-lock-owner.K."""
    directory, name = os.path.split(where)
    return os.path.join(directory, f"{OWNER}{_digest(name, 16)}.")


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode(errors="surrogateescape")).hexdigest()[:n]


def _create_lock_file(path: str):
    where = lock_file(path)
    me = f"{socket.gethostname()} {os.getpid()}"
    mine = (f"{_owners(where)}{_digest(socket.gethostname(), 8)}.{os.getpid()}."
            f"{secrets.token_hex(4)}")
    for _ in range(3):
        if _take(where, mine, me) or _take_over(where, mine, me, path):
            return lambda: _release(where, mine)
    raise Refused(errno.EBUSY, f"{path}: the lock file {where} came back; is another dgen "
                  f"starting?")


def _release(where: str, mine: str) -> None:
    """Give up the lock file `where` held through the owner name `mine`, unless a taker that
    judged this process gone (another PID namespace, same host name) took it: the owner name
    goes first, to a name no taker acts on (failing, it was taken)."""
    directory, name = os.path.split(mine)
    leaving = os.path.join(directory, RELEASE + name[len(OWNER):])
    try:
        os.rename(mine, leaving)
    except FileNotFoundError:  # taken over, or removed by hand
        return
    with contextlib.suppress(FileNotFoundError):  # removed by hand meanwhile
        if os.path.samestat(os.lstat(where), os.lstat(leaving)):
            os.unlink(where)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(leaving)


def _take(where: str, mine: str, me: str) -> bool:
    """Create the lock file `where` with its owner name `mine`: False if it is there."""
    fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    linked = False
    try:
        with os.fdopen(fd, "w") as f:
            f.write(me + "\n")
        os.link(mine, where)
        linked = True
    except FileExistsError:  # or made, where a lost reply was sent again (NFS): open(2)
        linked = os.lstat(mine).st_nlink == 2
    finally:
        if not linked:
            os.unlink(mine)
    return linked


def _take_over(where: str, mine: str, me: str, path: str) -> bool:
    """Take over the lock file `where` if its owner is a gone process of this host: False
    where it went, or another took it first (look again); Refused while it is held."""
    try:
        held = os.lstat(where)
    except FileNotFoundError:
        return False
    owner = _owner(where, held)
    if owner is None or not _gone(owner):
        try:
            if not os.path.samestat(os.lstat(where), held):
                return False  # released (and maybe taken again) meanwhile: look again
        except FileNotFoundError:
            return False
        raise Refused(errno.EBUSY, f"{path} is being written by another dgen (it holds "
                      f"the lock file {where}; this file system has no flock()); wait for "
                      f"it to finish, or remove {where} if no dgen runs")
    try:
        os.rename(owner, mine)
    except FileNotFoundError:
        return False
    try:
        if os.path.samestat(os.lstat(where), held):
            with open(mine, "w") as f:
                f.write(me + "\n")
            return True
    except FileNotFoundError:  # L removed by hand meanwhile
        pass
    except BaseException:  # the lock is this process's now: give it up, then the error
        _release(where, mine)
        raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(mine)
    return False


def _owner(where: str, held: os.stat_result) -> str | None:
    """The owner name of the lock file `where` (stat `held`), None if it has none."""
    directory, start = os.path.split(_owners(where))
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(start):
                with contextlib.suppress(FileNotFoundError):
                    if os.path.samestat(entry.stat(follow_symlinks=False), held):
                        return entry.path
    return None


def _gone(owner: str) -> bool:
    """Whether the owner name `owner` (...H.PID.N, H: the host name's digest) is a process of
    this host that is gone. The file holds "HOST PID": the host is judged by its full name
    too (two names can share H)."""
    try:
        host, pid, _ = os.path.basename(owner).split(".")[-3:]
        if host != _digest(socket.gethostname(), 8):
            return False
        fd = os.open(owner, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)  # waits for no FIFO
        with os.fdopen(fd, "rb") as f:  # a taker gone before writing leaves its giver's
            if f.read(4096).split()[:1] != [socket.gethostname().encode()]:
                return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # not an owner name, gone meanwhile, another user's process
        return False
    return False


def claim_dataset(directory: int, path: str, manifest: str, survey, *, force: bool,
                  what: str = "file(s)", held: int | None = None):
    """Claim the dataset `path` for a writer, in the order that keeps the old manifest and
    data valid together until the new data starts. Takes the writer's lock (see lock) on
    `held` (default: `directory`, the dataset's directory open); survey(), run under the
    lock, refuses what is in the way and returns the entries the new dataset does not
    have, relative to `directory`: (files, directories deepest first). Those are refused
    (Refused, EEXIST, naming them as `what`) unless force; then the old manifest is
    removed, and they are deleted. Returns the function that releases the lock; where
    this raises, the lock is released already."""
    release = lock(directory if held is None else held, path)
    try:
        files, dirs = survey()
        stale = [*files, *dirs]
        if stale and not force:
            raise Refused(errno.EEXIST, f"{path} holds {len(stale)} {what} that are not "
                          f"part of the new dataset ({', '.join(stale[:3])}"
                          f"{', ...' if len(stale) > 3 else ''}): remove them, or pass "
                          f"--force (force=True) to delete them")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(manifest)
        tree = DatasetTree(directory, path)
        try:
            for rel in files:
                parent, leaf = os.path.split(rel)
                os.unlink(leaf, dir_fd=tree.dir(parent))
            for rel in dirs:
                parent, leaf = os.path.split(rel)
                os.rmdir(leaf, dir_fd=tree.dir(parent))
        finally:
            tree.close()
    except BaseException:
        release()
        raise
    return release


@contextlib.contextmanager
def reading(path: str):
    """Hold the shared lock on the dataset at `path` (a directory or regular file) while
    verify reads it: Refused while a writer holds it."""
    busy = (f"{path} is being written by dgen now (it holds the dataset's lock): verify it "
            f"once that is done")
    inside(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # absent, or not for us to lock: verify says what it is
        yield
        return
    try:
        if (stat.S_ISDIR(os.fstat(fd).st_mode) or stat.S_ISREG(os.fstat(fd).st_mode)) \
                and not _shared(fd, busy) and os.path.lexists(lock_file(path)):
            raise Refused(errno.EBUSY, f"{busy} (the lock file {lock_file(path)} is there)")
        yield
    finally:
        os.close(fd)
