"""dgen write/verify/analyze on s3://bucket/prefix: the dataset as objects (dgen_py.s3,
docs/s3.md), reported as a dataset of files is."""

from __future__ import annotations

import contextlib
import errno

from ..s3._store import SCHEME, is_url, parse_url
from .args import identity_options, integer, size
from .report import print_json, progress, report_checked, report_written, written_line

# Options of a file system that S3 has no use for: (attribute, value when not given).
FILE_ONLY = {"write": (("direct", False), ("fsync", False), ("jobs", None),
                       ("changed_only", False)),
             "verify": (("direct", False),),
             "dataset": (("direct", False), ("fsync", False))}
MISSING = ("NoSuchBucket", "no such object")  # what the store and dgen_py.s3 say
S3_ONLY = (("part_size", "--part-size"), ("concurrency", "--concurrency"))


def add_write_options(c) -> None:
    c.add_argument("--part-size", metavar="SIZE", type=size,
                   help="s3:// only: multipart part size (default 16MiB; 5MiB..5GiB)")
    c.add_argument("--concurrency", metavar="N", type=integer(1, 1024),
                   help="s3:// only: parts uploaded at once (default 8)")


def add_verify_options(c) -> None:
    c.add_argument("--concurrency", metavar="N", type=integer(1, 1024),
                   help="s3:// only: ranged GETs at once (default 8)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def refuse(args) -> None:
    """ValueError naming an option given for the other kind of target (file or s3://)."""
    if is_url(args.path):
        given = [n for n, plain in FILE_ONLY[args.command] if getattr(args, n) != plain]
        if given:
            raise ValueError(f"{_flag(given[0])}: has no meaning for an s3:// target "
                             f"({args.path}); it applies to files only")
    else:
        given = [f for n, f in S3_ONLY if getattr(args, n, None) is not None]
        if given:
            raise ValueError(f"{given[0]}: applies to s3:// targets only, not {args.path}")


@contextlib.contextmanager
def _missing_is_exit_3():
    """A bucket or object that is not there: OSError with ENOENT, which dgen exits 3 on."""
    try:
        yield
    except OSError as e:
        # (under MPI the error comes from another rank, as an OSError naming it)
        if isinstance(e, FileNotFoundError) or any(t in str(e) for t in MISSING):
            e.errno = errno.ENOENT
        raise
    except ImportError as e:  # obstore, the optional client
        raise ValueError(str(e)) from None


def _keywords(args) -> dict:
    return {k: v for k, v in (("concurrency", args.concurrency),
                              ("part_size", getattr(args, "part_size", None)))
            if v is not None}


def write(args) -> int:
    with _missing_is_exit_3():
        from .. import s3
        write_objects = s3.write_objects
        if args.comm:
            from ..s3 import _mpi
            write_objects = _on(args.comm, _mpi.write_objects)
        with progress(args, args.size, "write") as advance:
            m = write_objects(args.path, args.size, files=args.files, **identity_options(args),
                              **_keywords(args), threads=args.threads, force=args.force,
                              progress=advance)
    return report_written(args, m, lambda m: written_line(m, "object(s)"))


def training_writer(args):
    """dgen dataset s3://...: write_training_dataset's stand-in writing objects."""
    def write(path, fmt, *, fsync, **options):
        from ..datasets.objects import write_training_objects
        with _missing_is_exit_3():
            return write_training_objects(path, fmt, **_keywords(args), **options)
    return write


def _training(args, overrides: dict) -> int | None:
    """dgen verify of a training dataset on S3 (its manifest under the prefix); None when
    the URL holds none."""
    from ..datasets import objects, report
    found = objects.training_manifest(args.path, args.comm)
    if found is None:
        return None
    given = [k for k, v in {**overrides, **_keywords(args)}.items() if v is not None]
    if given:
        raise ValueError(f"{_flag(given[0])}: {args.path} is a training dataset, verified "
                         f"against its manifest alone (each object read whole, one at a "
                         f"time)")
    with progress(args, None, "verify") as advance:
        r = objects.verify_training_objects(args.path, max_ranges=args.max_ranges,
                                            threads=args.threads, progress=advance,
                                            comm=args.comm, found=found)
    return report_checked(args, r, report)


def verify(args, overrides: dict, report_files) -> int:
    """report_files: cli.verify.report, which this report extends (passed: no import circle)."""
    with _missing_is_exit_3():
        from .. import s3
        code = _training(args, overrides)
        if code is not None:
            return code
        verify_objects = s3.verify_objects
        if args.comm:
            from ..s3 import _mpi
            verify_objects = _on(args.comm, _mpi.verify_objects)
        with progress(args, None, "verify") as advance:
            r = verify_objects(args.path, **overrides, **_keywords(args),
                               threads=args.threads, max_ranges=args.max_ranges,
                               progress=advance)
    return report_checked(args, r, lambda r: report(r, report_files))


def stream(url: str):
    """(binary stream, its size) of the object or dataset of objects at `url`."""
    with _missing_is_exit_3():
        from ..s3 import open_dataset
        f = open_dataset(url)
    return f, f.raw.size


def bench(args, size: int) -> int:
    """dgen bench --io s3://...: write and verify beside plain puts and ranged GETs."""
    if args.direct:
        raise ValueError(f"--direct: has no meaning for an s3:// target ({args.io})")
    with _missing_is_exit_3():
        from ..bench import s3
        r = s3.measure(args.io, size, rounds=args.rounds)
    print_json(r) if args.json else print(s3.report(r))
    return 0


def _on(comm, fn):
    return lambda *a, **kw: fn(comm, *a, **kw)


def report(r: dict, report_files) -> str:
    text = report_files({**r, "files": [{**f, "size_on_disk": f["size_on_store"]}
                                        for f in r["files"]]}, noun="object")
    bucket = parse_url(r["path"])[0]
    extra = [f"extra object {SCHEME}{bucket}/{o['path']} "
             f"({o['size']} bytes): not in this dataset (delete it, or write with --force)"
             for o in r["extra_objects"]]
    return "\n".join([text, *extra])
