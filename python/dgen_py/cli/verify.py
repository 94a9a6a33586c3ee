"""dgen verify: read a dataset back and report every mismatching range."""

from __future__ import annotations

import contextlib
import errno
import functools
import os

from .. import _locks
from .. import manifest as manifests
from .._report import extra_lines
from .._units import human
from ..verify import verify_file
from . import objects
from .args import add_identity, identity_options, integer, json_flag, mpi_flags, threads
from .report import identity_line, progress, rate, report_checked


def add(command) -> None:
    c = command("verify", "Read a dataset back and report every mismatching range.",
                "examples:\n  dgen verify /mnt/test/file.bin\n"
                "  dgen verify copy.bin --seed 42 --dedup-ratio 2    # no manifest\n"
                "Exit code 1 when any byte differs or is missing.")
    c.add_argument("path", metavar="PATH", help="a file, a dataset directory, one file of "
                   "it (checked against the directory's manifest) or a manifest; or "
                   "s3://BUCKET/PREFIX (docs/s3.md)")
    add_identity(c, new=False)
    threads(c)
    c.add_argument("--files", metavar="N", type=integer(1, 1_000_000),
                   help="without a manifest: the --files the dataset was written with")
    c.add_argument("--direct", action="store_true", help="read with O_DIRECT")
    c.add_argument("--max-ranges", metavar="N", type=integer(0, 2**31), default=20,
                   help="ranges to list (default 20; all are counted)")
    objects.add_verify_options(c)
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=run)


def target(path: str, held) -> tuple[str, tuple[int, int, int] | None, dict | None]:
    """What `dgen verify PATH` checks: (dataset path, None, None), or for one file of a
    dataset directory that has no manifest of its own, (directory, (file index, 0, length),
    the directory's manifest), read under the shared lock that `held` keeps."""
    name = os.path.basename(path)
    named = name == manifests.MANIFEST_NAME or (path.endswith(manifests.MANIFEST_SUFFIX)
                                            and len(name) > len(manifests.MANIFEST_SUFFIX))
    if named and not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, f"no such file or directory: {path}")
    if name == manifests.MANIFEST_NAME:  # a manifest stands for what it describes
        return os.path.dirname(path) or ".", None, None
    if named:
        return path[:-len(manifests.MANIFEST_SUFFIX)], None, None
    directory = os.path.dirname(path) or "."
    if (os.path.isfile(path) and not os.path.lexists(path + manifests.MANIFEST_SUFFIX)
            and os.path.isfile(os.path.join(directory, manifests.MANIFEST_NAME))):
        held.enter_context(_locks.reading(directory))
        record = manifests.read_manifest(directory)
        listed = [i for i, f in enumerate(record["files"]) if f["path"] == name]
        if listed:
            return directory, (listed[0], 0, record["files"][listed[0]]["length"]), record
    return path, None, None


def run(args) -> int:
    overrides = {"seed": args.seed, "size": args.size, "files": args.files,
                 **identity_options(args)}
    objects.refuse(args)
    if objects.is_url(args.path):
        return objects.verify(args, overrides, report)
    with contextlib.ExitStack() as held:
        args.path, piece, record = target(args.path, held)
        if piece:
            return one_file(args, overrides, piece, record)
        return verify_dataset(args, overrides, held)


def verify_dataset(args, overrides, held) -> int:
    """dgen verify PATH: a dataset, its manifest read and checked once."""
    from .. import datasets
    def load():  # under the shared lock, kept until verify is done
        held.enter_context(_locks.reading(args.path))
        return manifests.load_dataset_manifest(args.path)

    # Under MPI every rank reads it, and an error on one rank is raised on all of them.
    loaded = args.mpi_module.agree(args.comm, load, share=False) if args.comm else load()
    if datasets.is_training_dataset(args.path, _loaded=loaded):
        given = [k for k, v in overrides.items() if v is not None]
        if given or args.direct:
            flag = "--" + (given[0] if given else "direct").replace("_", "-")
            raise ValueError(f"{flag}: {args.path} is a training dataset, verified against "
                             f"its manifest alone")
        with progress(args, None, "verify") as advance:
            r = datasets.verify_training_dataset(args.path, max_ranges=args.max_ranges,
                                                 threads=args.threads, progress=advance,
                                                 comm=args.comm, _loaded=loaded)
        return report_checked(args, r, datasets.report)
    if args.comm:  # each rank resolves the dataset itself, collectively
        verify = functools.partial(args.mpi_module.verify, args.comm, _loaded=loaded)
        total = None
    else:
        dataset = manifests.resolve_dataset(
            args.path, **overrides, _record=manifests.read_manifest(args.path, _loaded=loaded))
        verify = functools.partial(verify_file, _dataset=dataset)
        total = dataset["identity"]["size"]
    with progress(args, total, "verify") as advance:
        r = verify(args.path, **overrides, direct=args.direct, threads=args.threads,
                   max_ranges=args.max_ranges, progress=advance)
    return report_checked(args, r, report)


def one_file(args, overrides, piece, record) -> int:
    """dgen verify DIR/FILE: that file alone, against the directory's manifest `record`."""
    if args.comm:
        raise ValueError(f"{args.path}: one file of a dataset is verified in one process: "
                         f"run without mpirun/srun, or verify the directory")
    directory, length = args.path, piece[2]
    dataset = manifests.resolve_dataset(directory, **overrides, _record=record)
    with progress(args, length, "verify") as advance:
        r = verify_file(directory, **overrides, direct=args.direct, threads=args.threads,
                        max_ranges=args.max_ranges, progress=advance, pieces=[piece],
                        _dataset=dataset)
    r.update(path=os.path.join(directory, r["files"][0]["path"]), bytes=length)
    for key in ("gap_bytes", "zeros"):
        r.pop(key, None)
    return report_checked(args, r, report)


def report(r: dict, noun: str = "file") -> str:
    where = f"{r['path']}: {human(r['bytes'])} in {len(r['files'])} {noun}(s)"
    if r["ok"]:
        return (f"OK {r['path']}: {human(r['bytes_read'])} ({r['bytes_read']} bytes) read "
                f"and verified in {len(r['files'])} {noun}(s) at "
                f"{rate(r['bytes_read'], r['seconds'])}; {identity_line(r['identity'])}")
    lines = [f"FAILED {where}, {r['bytes_read']} bytes read: {r['range_count']} "
             f"mismatching range(s), {r['mismatched_bytes']} byte(s) differ or are missing; "
             f"{identity_line(r['identity'])}"]
    if r["verdict"] == "other identity":
        lines.insert(0, "FAILED: nothing here matches this dataset identity (seed, ratios, "
                     "unit, size): written with other settings?")
    absent = {f["path"] for f in r["files"] if f["size_on_disk"] is None}
    width = max(len(noun), *(len(x["file"]) for x in r["ranges"])) if r["ranges"] else len(noun)
    lines.append(f"{noun:<{width}} {noun + ' offset':>14} {'dataset offset':>16} "
                 f"{'length':>12}  what")
    for x in r["ranges"]:
        lines.append(f"{x['file']:<{width}} {x['file_offset']:>14} {x['offset']:>16} "
                     f"{x['length']:>12}  {describe(x, absent, noun)}")
    if r["range_count"] > len(r["ranges"]):
        lines.append(f"... and {r['range_count'] - len(r['ranges'])} more range(s) "
                     f"(--max-ranges lists more)")
    return "\n".join([*lines, *extra_lines(r["path"], r.get("extra_files", []))])


def describe(x: dict, absent=(), noun: str = "file") -> str:
    if x["kind"] == "missing" and x["file"] in absent:
        return f"missing: {noun} absent"
    return {"differs": "differs",
            "zeros": "reads as zeros",
            "stale": f"stale: holds its generation {x.get('stale_generation')} content "
                     f"(a lost write)",
            "moved": f"holds the unit that belongs at file offset "
                     f"{x['belongs_at_file_offset']} (dataset offset {x['belongs_at']})",
            "missing": f"missing: the {noun} ends early",
            "extra": f"extra: the {noun} is longer than the dataset says"}[x["kind"]]
