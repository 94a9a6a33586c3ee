"""dgen write: a dataset of one or many files with its manifest; --changed-only rewrites
one in place as its next generation."""

from __future__ import annotations

import functools

from .. import _checks, _core
from .._units import human
from . import objects
from .args import add_identity, identity_options, integer, json_flag, mpi_flags, threads
from .report import identity_line, progress, rate, report_written, warn_content, written_line
from ..rewrite import rewrite_changed
from ..write import write_dataset, writer_buffer


def add(command) -> None:
    c = command("write", "Write a dataset of one or many files, with a manifest.",
                "examples:\n  dgen write /mnt/test/file.bin --size 10GiB --direct\n"
                "  dgen write /mnt/test/dir --size 1TiB --files 1024 --jobs 16 --fsync\n"
                "The manifest (FILE.dgen.json, or DIR/dgen-manifest.json) is written last.")
    c.add_argument("path", metavar="PATH", help="the file, or the directory for --files > 1; or "
                   "s3://BUCKET/PREFIX for objects (docs/s3.md)")
    add_identity(c, new=True)
    threads(c)
    c.add_argument("--files", metavar="N", type=integer(1, 1_000_000), default=1,
                   help="cut the dataset into N files part-00000 ... in directory PATH")
    c.add_argument("--jobs", metavar="J", type=integer(1, _checks.MAX_THREADS),
                   help=f"parallel writers (default 1); each holds "
                   f"{human(writer_buffer(1))} of buffer when it has one thread "
                   f"(--threads/J), {human(writer_buffer(_checks.MAX_THREADS))} "
                   f"at most with more")
    c.add_argument("--force", action="store_true", help="delete part-* files in PATH that "
                   "the new dataset does not have (else they are refused)")
    c.add_argument("--direct", action="store_true", help="write with O_DIRECT")
    c.add_argument("--fsync", action="store_true", help="fsync files and directory before "
                   "the manifest")
    c.add_argument("--changed-only", action="store_true", help="rewrite in place a dataset "
                   "written as generation G-1: only the units generation G changed")
    objects.add_write_options(c)
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=run)


def _settings(args) -> dict:
    """The keywords write_dataset and rewrite_changed share."""
    return dict(files=args.files, **identity_options(args), direct=args.direct,
                fsync=args.fsync, jobs=args.jobs or 1, threads=args.threads)


def run(args) -> int:
    objects.refuse(args)
    warn_content(identity_options(args))
    if objects.is_url(args.path):
        return objects.write(args)
    if args.changed_only:
        return rewrite(args)
    write = write_dataset
    if args.comm:
        write = functools.partial(args.mpi_module.write, args.comm)
    with progress(args, args.size, "write") as advance:
        m = write(args.path, args.size, **_settings(args), force=args.force,
                  progress=advance)
    return report_written(args, m, lambda m: written_line(m, "file(s)"))


def rewrite(args) -> int:
    if args.comm:
        raise ValueError("--changed-only runs in one process: run it without mpirun/srun "
                         "(or with --no-mpi on one rank)")
    if args.generation == 0:
        raise ValueError(f"--generation must be in [1, {_core.MAX_GENERATION}] with "
                         f"--changed-only, got 0")
    with progress(args, args.size, "rewrite") as advance:
        m = rewrite_changed(args.path, args.size, **_settings(args), progress=advance)

    def line(m):
        r, size, unit = m["rewritten"], m["identity"]["size"], m["identity"]["dedup_unit"]
        return (f"rewrote {r['units']} of {-(-size // unit)} units ({r['bytes']} bytes, "
                f"{r['ranges']} ranges) at {rate(r['bytes'], m['seconds'])}: generation "
                f"{args.generation - 1} -> {args.generation}; {identity_line(m['identity'])}")
    return report_written(args, m, line)
