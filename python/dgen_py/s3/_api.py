"""write_dataset() and verify_file() given an s3:// URL: their file-system options refused
(as dgen write and dgen verify refuse them), the rest handed to write_objects() and
verify_objects(). The jobs (and numpy, and the client) are imported only once the options
are accepted."""

from __future__ import annotations

from .. import _checks
from ._store import is_url  # noqa: F401 (write.py and verify.py ask it)

# What to use instead, where there is something.
INSTEAD = {"jobs": "objects and their parts go up side by side, `concurrency` at once: "
                   "dgen_py.s3.write_objects(concurrency=) sets it",
           "job": "under MPI, dgen_py.s3._mpi.write_objects shares the objects",
           "pieces": "under MPI, dgen_py.s3._mpi.verify_objects shares the objects"}


def refuse(url: str, **given) -> None:
    """ValueError naming the first option given ({name: (value, its default)}) a value other
    than its default."""
    for name, (value, plain) in given.items():
        if value != plain:
            instead = f"; {INSTEAD[name]}" if name in INSTEAD else ""
            raise ValueError(f"{name}={value!r}: has no meaning for an s3:// target ({url}); "
                             f"it applies to files only{instead} (docs/s3.md)")


def write(url: str, *, direct, fsync, jobs, job, **options) -> dict:
    """write_dataset(url, ...): write_objects()'s manifest, with "manifest" (its URL)."""
    refuse(url, direct=(_checks.flag("direct", direct), False),
           fsync=(_checks.flag("fsync", fsync), False),
           jobs=(_checks.integer("jobs", jobs, 1, _checks.MAX_THREADS), 1), job=(job, None))
    from ._write import write_objects
    return write_objects(url, **options)


def verify(url: str, *, direct, pieces, dataset, **options) -> dict:
    """verify_file(url, ...): verify_objects()'s report."""
    refuse(url, direct=(_checks.flag("direct", direct), False), pieces=(pieces, None),
           _dataset=(dataset, None))
    from ._verify import verify_objects
    return verify_objects(url, **options)
