"""What every rank of an MPI job checks together (dgen_py.mpi's protocol): an error on any
rank raised on every rank alike, and that the ranks were given one dataset (the same
settings, the same storage, the same files). No mpi4py here: only the communicator's
methods."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile

from ._fs import DirectIOUnsupported, Refused

_ERRORS = {e.__name__: e for e in (ValueError, TypeError, OverflowError, MemoryError,
                                   Refused, DirectIOUnsupported, OSError)}


def _wire(error: BaseException | None, rank: int):
    if error is None:
        return None
    if isinstance(error, OSError):
        return (rank, type(error).__name__, error.errno, error.strerror or str(error),
                error.filename)
    return rank, type(error).__name__, None, str(error), None


def _raise_first(gathered) -> None:
    """Raise the error of the lowest rank that failed, on every rank alike."""
    for item in gathered:
        if item is None:
            continue
        rank, kind, code, message, filename = item
        cls = _ERRORS.get(kind, RuntimeError if code is None else OSError)
        if rank:
            message = f"rank {rank}: {message}"
        if code is not None or issubclass(cls, OSError):
            raise cls(code or errno.EIO, message, *([filename] if filename else []))
        raise cls(message)


def same_settings(settings: list[dict]) -> None:
    """Raise ValueError (on every rank alike: each has every rank's settings) naming the
    first setting in which a rank differs from rank 0: ranks given other options would
    write or check other bytes than the manifest claims. Ranks may hold other keys
    (dedup_window is listed from format 3 on): rank 0's come first, so that its
    format_version is the one named."""
    for rank, mine in enumerate(settings):
        for key in dict.fromkeys([*settings[0], *mine]):
            value = mine.get(key)
            if value != settings[0].get(key):
                raise ValueError(f"rank {rank}: {key} is {value!r} there but "
                                 f"{settings[0].get(key)!r} on rank 0: give every rank the same "
                                 f"options (the dataset's identity and layout)")


def agree(comm, fn, share=True):
    """fn() on every rank; every rank's value (share=False: this rank's only, for large
    values), or every rank raises the first error."""
    try:
        value, error = fn(), None
    except Exception as e:  # noqa: BLE001 - carried to every rank
        value, error = None, e
    gathered = comm.allgather((value if share else None, _wire(error, comm.rank)))
    _raise_first([e for _, e in gathered])
    return [v for v, _ in gathered] if share else value


def same_storage(comm, directory: str) -> None:
    """Every rank must see the file rank 0 makes in `directory` (the dataset's, or the one
    that holds it), or every rank raises ValueError: ranks given one path on storage of
    their own (a node-local disk) would each hold a part of a dataset that rank 0's
    manifest says is complete. The file is gone when this returns."""
    made = []

    def make():
        if comm.rank:
            return None
        fd, name = tempfile.mkstemp(prefix=".dgen-ranks-", dir=directory)
        os.close(fd)
        made.append(name)
        return name
    try:
        name = agree(comm, make)[0]
        agree(comm, lambda: _sees(name))
    finally:
        for name in made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


def _sees(name: str) -> None:
    if not os.path.exists(name):
        raise ValueError(f"does not see {name}, which rank 0 made: give every rank the same "
                         f"path on a filesystem they share (on storage of each node's own, "
                         f"each would hold a part of the dataset)")


SIZES_SEEN = 64  # files whose sizes ranks compare before a verify


def sizes_seen(base: str, files: list[dict]) -> list:
    """The sizes of up to SIZES_SEEN of `files` (paths relative to directory `base`, taken
    evenly), as this rank finds them (None: not there). Each is opened, as on NFS an open
    fetches the size anew where a stat may give one cached from before another node
    wrote."""
    out = []
    for f in files[::max(1, -(-len(files) // SIZES_SEEN))]:
        try:
            fd = os.open(os.path.join(base, f["path"]), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            out.append(None)
            continue
        try:
            out.append(os.fstat(fd).st_size)
        finally:
            os.close(fd)
    return out


def same_dataset(comm, seen, path) -> None:
    """Every rank must have read the same manifest (one path on a shared filesystem), or
    every rank raises ValueError; `seen`: what this rank read (JSON-ready)."""
    mine = hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).digest()
    lead = comm.bcast(mine)
    agree(comm, lambda: _same(mine, lead, path))


def _same(mine: bytes, lead: bytes, path) -> None:
    if mine != lead:
        raise ValueError(f"sees another dataset at {path} than rank 0 (another manifest, "
                         f"path or file size): give every rank the same path on a shared "
                         f"filesystem")
