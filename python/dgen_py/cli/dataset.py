"""dgen dataset: a training dataset as DLIO and MLPerf Storage read it."""

from __future__ import annotations

from .. import _checks, identity
from .._units import human
from . import objects
from .args import add_identity, integer, json_flag, mpi_flags, size, threads
from .report import held_line, identity_line, progress, rate, report_written, warn_content
from .. import manifest as manifests

# The identity options dgen dataset takes: every one but the size, which the samples make
# (datasets.write_training_dataset's keywords; dedup_for goes as given, for the writer to
# refuse a preset its files cannot honour).
IDENTITY = tuple(f.name for f in identity.options() if f.name != "size")
LAYOUT = ("workload", "files", "eval_files", "samples_per_file", "record_length",
          "record_length_stdev", "subfolders", "file_prefix", "dlio", "hdf5_datasets")


def add(command) -> None:
    c = command("dataset", "Write a training dataset as DLIO and MLPerf Storage read it.",
                "examples:\n  dgen dataset /mnt/test/unet3d --workload unet3d --files 16\n"
                "  dgen dataset /mnt/test/ds --format npy --files 8 --samples-per-file 4 "
                "--record-length 1MiB\n  dgen verify /mnt/test/ds\n"
                "Files under DIR/train and DIR/valid as DLIO names them; the manifest is "
                "written last.")
    c.add_argument("path", metavar="DIR", help="the dataset directory (DLIO's data_folder), "
                   "or s3://BUCKET/PREFIX (docs/s3.md)")
    c.add_argument("--format", metavar="F", type=str.lower, help="npz, npy, hdf5, tfrecord, "
                   "parquet, indexed_binary, jpeg, png or csv, in any case (default: the "
                   "workload's)")
    c.add_argument("--workload", metavar="W", type=str.lower, help="an MLPerf Storage "
                   "preset: unet3d, resnet50 or cosmoflow (the options below override its "
                   "values)")
    # resolve_spec's ranges: a value outside one is refused in the same words either way
    c.add_argument("--files", metavar="N", type=integer(1, manifests.MAX_FILES),
                   help=f"training files (default 1; with --eval-files at most "
                   f"{manifests.MAX_FILES})")
    c.add_argument("--eval-files", metavar="N", type=integer(0, manifests.MAX_FILES),
                   help="eval files (default 0)")
    c.add_argument("--samples-per-file", metavar="N", type=integer(1, 1 << 32),
                   help="samples per file (default 1)")
    c.add_argument("--record-length", metavar="SIZE", type=size,
                   help="bytes per sample, as DLIO's record_length_bytes (default 1MiB); "
                   "a sample is int(sqrt(SIZE))^2 bytes")
    c.add_argument("--record-length-stdev", metavar="SIZE", type=size,
                   help="its standard deviation (default 0)")
    c.add_argument("--subfolders", metavar="S", type=integer(0, 1 << 20), default=0,
                   help="spread files round-robin over S subfolders (default 0: none)")
    c.add_argument("--file-prefix", metavar="P", default="img", help="default img")
    c.add_argument("--dlio", metavar="V", default="2.0",
                   help="2.0 (default, the layout MLPerf Storage v2.0 reads) or head (DLIO "
                   "HEAD: hdf5 records_0..k, tfrecord size in bytes)")
    c.add_argument("--hdf5-datasets", metavar="K", type=integer(1, 1024), default=1,
                   help="with --dlio head: datasets records_0..K-1 per hdf5 file")
    add_identity(c, new=True, names=IDENTITY, helps={"dedup_unit": "default 128KiB"})
    c.add_argument("--force", action="store_true", help="delete files under train/, valid/ "
                   "and index/ that the new dataset does not have (else they are refused)")
    c.add_argument("--jobs", metavar="J", type=integer(1, _checks.MAX_THREADS),
                   help="files written at once (default: one per thread)")
    c.add_argument("--fsync", action="store_true", help="fsync files and directories before "
                   "the manifest")
    c.add_argument("--direct", action="store_true", help="refused: the containers' headers "
                   "and framing sit off the block grid O_DIRECT needs")
    objects.add_write_options(c)
    threads(c)
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=run, keep_dedup_for=True)


def run(args) -> int:
    from .. import datasets
    objects.refuse(args)
    write = datasets.write_training_dataset
    if objects.is_url(args.path):
        write = objects.training_writer(args)
    if args.direct:
        raise ValueError("--direct: dgen dataset cannot write with O_DIRECT: container headers "
                         "and framing sit at offsets that are not multiples of the block size; "
                         "write without it (add --fsync to have the data on the device)")
    layout = {k: getattr(args, k) for k in LAYOUT}
    warn_content({k: getattr(args, k) for k in IDENTITY})
    options = {**layout, **{k: getattr(args, k) for k in (
        *IDENTITY, "threads", "force", "jobs", "fsync")}}
    try:  # the bar's total; bad options are refused by the write (under MPI on every rank)
        total = datasets.plan(datasets.resolve_spec(args.format, **layout))[1]
    except ValueError:
        total = None
    try:
        with progress(args, total, "dataset") as advance:
            m = write(args.path, args.format, **options, progress=advance, comm=args.comm)
    except ValueError as e:  # a preset these files cannot honour: name the option
        if not str(e).startswith("dedup_for: "):
            raise
        raise ValueError(f"--dedup-for{str(e)[len('dedup_for'):]}") from None

    def line(m):
        size = sum(f["length"] for f in m["files"] + m["index_files"])
        index = f" and {len(m['index_files'])} index file(s)" if m["index_files"] else ""
        return (f"wrote {m['dataset']['format']} dataset of {len(m['files'])} file(s){index}, "
                f"{human(size)} ({size} bytes) at {rate(size, m['seconds'])}; "
                f"{identity_line(m['identity'])}{held_line(m['identity'], m['holds'])}")
    return report_written(args, m, line, {k: v for k, v in m.items() if k != "files"})
