"""`dgen`: generate, write, verify, analyze and benchmark synthetic data from the shell.

Exit codes: 0 ok; 1 verification found a mismatch, or an I/O error stopped the run;
2 usage error (one line on stderr); 3 a path that is missing or cannot be read or made;
130 interrupted (Ctrl-C); 141 stdout closed early.
See docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import functools
import json
import math
import os
import re
import stat
import sys
import tempfile
import time
import traceback
from fractions import Fraction

from . import _checks, _core, bench, files
from ._generator import DEFAULT_DEDUP_UNIT, Generator
from ._holds import TOLERANCE, holds

SIZE_EXAMPLES = "examples: 4096, 4KiB, 10G, 1.5TiB"
# Like GNU dd: K/M/G/T/P/E and KiB/MiB/... are powers of 1024, KB/MB/... powers of 1000.
UNITS = {"": 1, "b": 1,
         **{p: 1024**i for i, p in enumerate("kmgtpe", 1)},
         **{p + "ib": 1024**i for i, p in enumerate("kmgtpe", 1)},
         **{p + "b": 1000**i for i, p in enumerate("kmgtpe", 1)}}
SIZE = re.compile(r"\s*(\d+\.?\d*|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
PIPE_SIZE = 1 << 20  # what `dgen generate` enlarges a pipe on stdout to

EXAMPLES = """\
examples:
  dgen generate --size 1TiB --dedup-ratio 2 --compress-ratio 3 | ssh host 'cat > /dev/null'
  dgen write /mnt/test/data --size 100GiB --files 64 --jobs 8 --direct --fsync
  dgen dataset /mnt/test/resnet50 --workload resnet50 --files 64   # DLIO's layout
  dgen verify /mnt/test/data            # identity and file list from the manifest
  dgen analyze /mnt/test/data/part-00000 --json
  dgen bench --threads 1,4 --size 32MiB
  dgen info

sizes: 4096, 4KiB (=4K, 1024-based, like dd and fio), 4KB (1000-based), 1.5TiB
exit codes: 0 ok, 1 mismatch or I/O error, 2 usage error, 3 missing or unreadable path,
130 interrupted
"""


def parse_size(text: str) -> int:
    """'4KiB' -> 4096. K/KiB = 1024, KB = 1000 (case-insensitive); fractions are allowed
    when they give a whole number of bytes (1.5K = 1536)."""
    m = SIZE.fullmatch(text)
    if not m or m[2].lower() not in UNITS:
        raise ValueError(f"{text!r} is not a size ({SIZE_EXAMPLES})")
    value = Fraction(m[1]) * UNITS[m[2].lower()]
    if value.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number of bytes ({SIZE_EXAMPLES})")
    if value > _checks.MAX_SIZE:
        raise ValueError(f"{text!r} is larger than the largest size, 2**63-1 bytes")
    return int(value)


def human(n: float) -> str:
    """1536 -> '1.5 KiB', 4096 -> '4 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f}".rstrip("0").rstrip(".") + f" {unit}"
        n /= 1024


# --- argument types: each error names the value and what is accepted ----------------------
def _arg(parse):
    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def _integer(lo: int, hi: int):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise ValueError(f"{text!r} is not an integer in [{lo}, {hi}]")
        return v
    return parse


def _ratio(name: str):
    hi = _checks.MAX_RATIO[name]

    def parse(text):
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and 1 <= v <= hi):
            raise ValueError(f"{text!r} is not a ratio in [1, {hi:g}]")
        return v
    return parse


def _window(text):
    return _checks.dedup_window(_integer(1, 64)(text))


def _content(text):
    return _checks.content(text)


def _dedup_for(text):
    _checks.dedup_for(text)
    return text


def _skew(text):
    if text == "uniform":
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not 'uniform' or a Zipf exponent") from None
    return _checks.dedup_skew(v)


def _change_rate(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 <= v <= 1:
        raise ValueError(f"{text!r} is not a share in [0, 1]")
    return v


def _dedup_unit(text):
    v = parse_size(text)
    if not 4096 <= v <= 64 << 20 or v & (v - 1):
        raise ValueError(f"{text!r} is not a power of two in [4KiB, 64MiB]")
    return v


def _number(lo: float, hi: float, accepted: str):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and lo < v <= hi):
            raise ValueError(f"{text!r} is not {accepted}")
        return v
    return parse


def _buffer_size(text):
    v = parse_size(text)
    if not 4096 <= v <= 1 << 40:
        raise ValueError(f"{text!r} is not a buffer size in [4KiB, 1TiB]")
    return v


def _thread_list(text):
    parse = _integer(1, _checks.MAX_THREADS)
    return [parse(part) for part in text.split(",")]


def _block_sizes(text):
    return [parse_size(part) for part in text.split(",")]


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # No abbreviations: `--format npy` must not be taken for `--format-version npy`.
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):
        """One line, no usage dump: `dgen: error: --size: '10X' is not a size (...)`."""
        self.exit(2, f"dgen: error: {re.sub(r'^argument ', '', message)}\n")


def build_parser() -> Parser:
    p = Parser(prog="dgen", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Synthetic data with exact dedup and compression ratios.",
               epilog=EXAMPLES)
    from ._version import __version__
    p.add_argument("--version", action="version",
                   version=f"dgen {__version__} (format {_core.FORMAT_VERSION})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help, epilog):
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def identity(c, new: bool):
        """The dataset identity flags; verify takes them as overrides of the manifest."""
        def default(value, text):
            return {"default": value, "help": text} if new else {
                "help": "default: from the manifest"}
        c.add_argument("--size", metavar="SIZE", type=_arg(parse_size), required=new,
                       help=f"dataset size in bytes ({SIZE_EXAMPLES})" if new else
                       "default: from the manifest, else the file's size")
        c.add_argument("--dedup-ratio", metavar="R", type=_arg(_ratio("dedup_ratio")),
                       **default(1.0, "default 1 (no duplicates)"))
        c.add_argument("--compress-ratio", metavar="R", type=_arg(_ratio("compress_ratio")),
                       **default(1.0, "default 1 (incompressible)"))
        c.add_argument("--seed", metavar="N", type=_arg(_integer(0, _checks.MAX_SEED)),
                       **default(None, "default: drawn at random"))
        c.add_argument("--dedup-unit", metavar="SIZE", type=_arg(_dedup_unit),
                       **default(DEFAULT_DEDUP_UNIT, "power of two in [4KiB, 64MiB], "
                                 "default 128KiB"))
        c.add_argument("--dedup-run", metavar="N", type=_arg(_integer(1, _core.MAX_DEDUP_RUN)),
                       **default(1, "copies in runs of N units repeating N consecutive unique "
                                 "units, so content-defined chunkers find them (default 1; "
                                 "see docs/data-model.md for the run an engine needs)"))
        c.add_argument("--dedup-shift", action="store_true", default=None if not new else False,
                       help="each copy rotated by a keyed offset that is not a multiple of "
                            "4 KiB: fixed-block dedup finds ~nothing, content-defined "
                            "chunking most of the ratio" + ("" if new else
                                                            "; default: from the manifest"))
        c.add_argument("--dedup-skew", metavar="S", type=_arg(_skew),
                       **default(0.0, "'uniform' (default) or a Zipf exponent: a hot set of "
                                 "units with many copies, most with few (ratio still exact)"))
        c.add_argument("--generation", metavar="G", type=_arg(_integer(0, _core.MAX_GENERATION)),
                       **default(0, "the data after G rewrites (default 0)"))
        c.add_argument("--change-rate", metavar="C", type=_arg(_change_rate),
                       **default(1.0, "share of the unique units each rewrite changes, in "
                                 "[0, 1] (default 1)"))
        c.add_argument("--dedup-window", metavar="N", type=_arg(_window),
                       **default(_core.WINDOW_UNITS, "format 3: runs per window, 1, 4, 16 or "
                                 "64 (default); the ratio is exact at whole windows"))
        c.add_argument("--content", metavar="KIND", type=_arg(_content),
                       **default("flat", "what pages look like to a compressor: flat "
                                 "(default: random bytes then a repeated byte), binary or "
                                 "text (LZ-structured like executables or source; zstd -3 "
                                 "measures --compress-ratio)"))
        c.add_argument("--dedup-for", metavar="ENGINE", type=_arg(_dedup_for),
                       help="format 3 with the dedup unit, run and window an engine sees "
                            "the ratio with: cdc:SIZE (content-defined, average chunk "
                            "SIZE, e.g. cdc:1MiB) or fixed:SIZE (fixed blocks, e.g. "
                            "fixed:4KiB); the values chosen are recorded")
        c.add_argument("--format-version", metavar="V",
                       type=_arg(_integer(_core.MIN_FORMAT_VERSION, _core.MAX_FORMAT_VERSION)),
                       **default(_core.FORMAT_VERSION,
                                 f"data format, default {_core.FORMAT_VERSION}; 1 reproduces "
                                 f"datasets of dgen 0.4.0 and before; 3 sizes windows "
                                 f"(--dedup-window, --dedup-for)"))
        threads(c)

    def threads(c):
        c.add_argument("--threads", metavar="N", type=_arg(_integer(1, _checks.MAX_THREADS)),
                       help="worker threads (default: DGEN_THREADS, else every CPU this "
                       "process may use)")

    def json_flag(c):
        c.add_argument("--json", action="store_true", help="print JSON for machines")

    def mpi_flags(c):
        g = c.add_mutually_exclusive_group()
        g.add_argument("--mpi", dest="mpi", action="store_true", default=None,
                       help="run as one job over the ranks of mpirun/srun (default: when "
                       "a launcher started more than one rank)")
        g.add_argument("--no-mpi", dest="mpi", action="store_false",
                       help="run every rank on its own, as without MPI")

    c = command("generate", "Write a dataset to stdout or a file.",
                "examples:\n  dgen generate --size 10G --dedup-ratio 2 | pv > /dev/null\n"
                "  dgen generate --size 4KiB --seed 7 -o page.bin    # and page.bin.dgen.json\n"
                "  dgen generate --size 1G --manifest x.bin.dgen.json | ssh h 'cat > x.bin'\n"
                "Without --seed the identity, with the seed drawn, is printed on stderr.")
    identity(c, new=True)
    c.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="default: - (stdout); a regular FILE gets the manifest "
                   "FILE.dgen.json. Buffers held: into a pipe "
                   f"{human(_core.write_memory(1, True))} with one thread, "
                   f"{human(_core.write_memory(_checks.MAX_THREADS, True))} at most; else "
                   f"{human(_core.write_memory(1))}, "
                   f"{human(_core.write_memory(_checks.MAX_THREADS))} at most")
    c.add_argument("--manifest", metavar="FILE.dgen.json",
                   help="with stdout: write the manifest of the stream here, once it is "
                   "complete, for the data saved as FILE")
    c.add_argument("--json", action="store_true", help="print JSON for machines when done "
                   "(identity, manifest, bytes, seconds): on stdout with -o FILE, else on "
                   "stderr")
    c.set_defaults(run=cmd_generate)

    c = command("write", "Write a dataset of one or many files, with a manifest.",
                "examples:\n  dgen write /mnt/test/file.bin --size 10GiB --direct\n"
                "  dgen write /mnt/test/dir --size 1TiB --files 1024 --jobs 16 --fsync\n"
                "The manifest (FILE.dgen.json, or DIR/dgen-manifest.json) is written last.")
    c.add_argument("path", metavar="PATH", help="the file, or the directory for --files > 1")
    identity(c, new=True)
    c.add_argument("--files", metavar="N", type=_arg(_integer(1, 1_000_000)), default=1,
                   help="cut the dataset into N files part-00000 ... in directory PATH")
    c.add_argument("--jobs", metavar="J", type=_arg(_integer(1, _checks.MAX_THREADS)), default=1,
                   help=f"parallel writers (default 1); each holds "
                   f"{human(files.writer_buffer(1))} of buffer when it has one thread "
                   f"(--threads/J), {human(files.writer_buffer(_checks.MAX_THREADS))} "
                   f"at most with more")
    c.add_argument("--force", action="store_true", help="delete part-* files in PATH that "
                   "the new dataset does not have (else they are refused)")
    c.add_argument("--direct", action="store_true", help="write with O_DIRECT")
    c.add_argument("--fsync", action="store_true", help="fsync files and directory before "
                   "the manifest")
    c.add_argument("--changed-only", action="store_true", help="rewrite in place a dataset "
                   "written as generation G-1: only the units generation G changed")
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=cmd_write)

    c = command("dataset", "Write a training dataset as DLIO and MLPerf Storage read it.",
                "examples:\n  dgen dataset /mnt/test/unet3d --workload unet3d --files 16\n"
                "  dgen dataset /mnt/test/ds --format npy --files 8 --samples-per-file 4 "
                "--record-length 1MiB\n  dgen verify /mnt/test/ds\n"
                "Files under DIR/train and DIR/valid as DLIO names them; the manifest is "
                "written last.")
    c.add_argument("path", metavar="DIR", help="the dataset directory (DLIO's data_folder)")
    c.add_argument("--format", metavar="F", type=str.lower, help="npz, npy, hdf5, tfrecord, "
                   "parquet, indexed_binary, jpeg, png or csv, in any case (default: the "
                   "workload's)")
    c.add_argument("--workload", metavar="W", type=str.lower, help="an MLPerf Storage "
                   "preset: unet3d, resnet50 or cosmoflow (the options below override its "
                   "values)")
    count = _arg(_integer(0, files.MAX_FILES))  # --files 0: resolve_spec names [1, ...]
    c.add_argument("--files", metavar="N", type=count,
                   help=f"training files (default 1; with --eval-files at most "
                   f"{files.MAX_FILES})")
    c.add_argument("--eval-files", metavar="N", type=count, help="eval files (default 0)")
    c.add_argument("--samples-per-file", metavar="N", type=_arg(_integer(0, 1 << 32)),
                   help="samples per file (default 1)")
    c.add_argument("--record-length", metavar="SIZE", type=_arg(parse_size),
                   help="bytes per sample, as DLIO's record_length_bytes (default 1MiB); "
                   "a sample is int(sqrt(SIZE))^2 bytes")
    c.add_argument("--record-length-stdev", metavar="SIZE", type=_arg(parse_size),
                   help="its standard deviation (default 0)")
    c.add_argument("--subfolders", metavar="S", type=_arg(_integer(0, 1 << 20)), default=0,
                   help="spread files round-robin over S subfolders (default 0: none)")
    c.add_argument("--file-prefix", metavar="P", default="img", help="default img")
    c.add_argument("--dlio", metavar="V", default="2.0",
                   help="2.0 (default, the layout MLPerf Storage v2.0 reads) or head (DLIO "
                   "HEAD: hdf5 records_0..k, tfrecord size in bytes)")
    c.add_argument("--hdf5-datasets", metavar="K", type=_arg(_integer(0, 1024)), default=1,
                   help="with --dlio head: datasets records_0..K-1 per hdf5 file")
    c.add_argument("--dedup-ratio", metavar="R", type=_arg(_ratio("dedup_ratio")),
                   default=1.0, help="default 1 (no duplicates)")
    c.add_argument("--compress-ratio", metavar="R", type=_arg(_ratio("compress_ratio")),
                   default=1.0, help="default 1 (incompressible)")
    c.add_argument("--seed", metavar="N", type=_arg(_integer(0, _checks.MAX_SEED)),
                   help="default: drawn at random")
    c.add_argument("--dedup-unit", metavar="SIZE", type=_arg(_dedup_unit),
                   default=DEFAULT_DEDUP_UNIT, help="default 128KiB")
    c.add_argument("--force", action="store_true", help="delete files under train/, valid/ "
                   "and index/ that the new dataset does not have (else they are refused)")
    c.add_argument("--jobs", metavar="J", type=_arg(_integer(1, _checks.MAX_THREADS)),
                   help="files written at once (default: one per thread)")
    c.add_argument("--fsync", action="store_true", help="fsync files and directories before "
                   "the manifest")
    c.add_argument("--direct", action="store_true", help="refused: the containers' headers "
                   "and framing sit off the block grid O_DIRECT needs")
    threads(c)
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=cmd_dataset)

    c = command("verify", "Read a dataset back and report every mismatching range.",
                "examples:\n  dgen verify /mnt/test/file.bin\n"
                "  dgen verify copy.bin --seed 42 --dedup-ratio 2    # no manifest\n"
                "Exit code 1 when any byte differs or is missing.")
    c.add_argument("path", metavar="PATH", help="a file, a dataset directory, one file of "
                   "it (checked against the directory's manifest) or a manifest")
    identity(c, new=False)
    c.add_argument("--files", metavar="N", type=_arg(_integer(1, 1_000_000)),
                   help="without a manifest: the --files the dataset was written with")
    c.add_argument("--direct", action="store_true", help="read with O_DIRECT")
    c.add_argument("--max-ranges", metavar="N", type=_arg(_integer(0, 2**31)), default=20,
                   help="ranges to list (default 20; all are counted)")
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=cmd_verify)

    c = command("analyze", "Measure dedup, compression, zero pages and entropy of files.",
                "examples:\n  dgen analyze disk.img --sample 0.1\n"
                "  dgen analyze /mnt/test/dir            # a dataset: its files as one\n"
                "  dgen analyze a.bin b.bin --block-sizes 4K,64K --json\n"
                "  dgen analyze /backup/src --cdc 1MiB,2MiB   # what restic/borg would find\n"
                "Without --sample, zstd-1 and lz4 compress every frame, zstd-3 1 frame in 4\n"
                "and zlib-6 1 in 16 (the slow ones); --sample 1: every frame with all four.")
    c.add_argument("paths", nargs="+", metavar="PATH",
                   help="a file, or a dataset directory or manifest (its files in dataset "
                   "order, as one dataset)")
    c.add_argument("--block-sizes", metavar="SIZES", type=_arg(_block_sizes),
                   help="dedup block sizes, comma-separated (default 4KiB..1MiB)")
    c.add_argument("--frame-size", metavar="SIZE", type=_arg(parse_size), default=1 << 20,
                   help="compression frame (default 1MiB)")
    c.add_argument("--cdc", metavar="SIZES", type=_arg(_block_sizes), default=(),
                   help="also measure the dedup a content-defined chunking engine finds "
                   "(FastCDC) at these average chunk sizes, comma-separated powers of two "
                   "in [256, 256MiB]")
    c.add_argument("--sample", metavar="SHARE", type=_arg(_number(0, 1, "a share in (0, 1]")),
                   help="share of frames every compressor compresses, in (0, 1] (default: "
                   "all for zstd-1 and lz4, 1/4 for zstd-3, 1/16 for zlib-6)")
    threads(c)
    json_flag(c)
    c.set_defaults(run=cmd_analyze)

    c = command("bench", "Generation and verification GB/s beside memset of a non-zero byte "
                "and memcmp; with --io DIR, dgen write, generate and verify beside fio and "
                "head -c N /dev/zero | cat.",
                "examples:\n  dgen bench\n  dgen bench --threads 1,2,4 --seconds 2 --json\n"
                "  dgen bench --io /mnt/nvme --size 8GiB --rounds 5 --direct\n"
                "With --io the files go to DIR (4 x --size, 6 x with --direct, must be "
                "free)\nand are removed after, also on Ctrl-C or SIGTERM; without fio on "
                "PATH only dgen's rows\nare printed.")
    c.add_argument("--threads", metavar="N,N", type=_arg(_thread_list),
                   help="thread counts, comma-separated (default: every CPU, and 1)")
    c.add_argument("--size", metavar="SIZE", type=_arg(_buffer_size),
                   help="buffer size (default 2MiB, 32MiB and 256MiB; 32MiB under MPI); with "
                   "--io the dataset size (default 2GiB), twice that through the pipe")
    c.add_argument("--io", metavar="DIR", help="run the I/O jobs (benchmarks/io.py) on "
                   "the directory DIR, e.g. /dev/shm or a mounted device")
    c.add_argument("--rounds", metavar="N", type=_arg(_integer(1, 1000)), default=3,
                   help="with --io: alternating rounds (default 3)")
    c.add_argument("--direct", action="store_true",
                   help="with --io: also O_DIRECT write and verify beside fio --direct=1")
    c.add_argument("--seconds", metavar="S", type=_arg(_number(0, math.inf, "a positive number")),
                   default=1.0, help="time per measurement pair (default 1)")
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=cmd_bench)

    c = command("info", "Topology, SIMD path and version.", "example:\n  dgen info --json")
    json_flag(c)
    c.set_defaults(run=cmd_info)
    return p


# --- output helpers -----------------------------------------------------------------------
def say(message: str) -> None:
    print(f"dgen: {message}", file=sys.stderr)


def print_json(value) -> None:
    print(json.dumps(value, indent=2))


@contextlib.contextmanager
def progress(args, total: int, what: str):
    """A progress bar with rate and ETA on a terminal; None in pipes and with --json."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    class Bar(tqdm):  # sizes and rate in the units of the summaries: 1.5 GiB, 0.55 GB/s
        @property
        def format_dict(self):
            d = super().format_dict
            d["done"] = human(d["n"]) + (f"/{human(d['total'])}" if d["total"] else "")
            d["speed"] = rate(d["n"], d["elapsed"]) if d["elapsed"] else "? GB/s"
            return d
    shape = ("{desc}: {percentage:3.0f}%|{bar}| {done} [{elapsed}<{remaining}, {speed}]"
             if total else "{desc}: {done} [{elapsed}, {speed}]")
    with Bar(total=total, desc=what, bar_format=shape, file=sys.stderr, leave=False,
             dynamic_ncols=True) as bar:
        yield bar.update


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / max(seconds, 1e-9) / 1e9:.2f} GB/s"


# Identity values shown only when they are not their default: (key, default, in a line,
# as a flag).
OPTIONAL = (("dedup_run", 1, "dedup run {}", "--dedup-run {}"),
            ("dedup_shift", False, "shifted copies", "--dedup-shift"),
            ("dedup_skew", 0.0, "skew {:g}", "--dedup-skew {:g}"),
            ("generation", 0, "generation {}", "--generation {}"),
            ("change_rate", 1.0, "change rate {:g}", "--change-rate {:g}"),
            ("dedup_window", _core.WINDOW_UNITS, "dedup window {}", "--dedup-window {}"),
            ("content", "flat", "content {}", "--content {}"))


def _optional(i: dict, column: int) -> list[str]:
    return [row[column].format(i[row[0]]) for row in OPTIONAL
            if i.get(row[0], row[1]) != row[1]]


def identity_line(i: dict) -> str:
    return ", ".join([f"seed {i['seed']}", f"size {i['size']}", f"dedup {i['dedup_ratio']:g}",
                      f"compress {i['compress_ratio']:g}",
                      f"dedup unit {human(i['dedup_unit'])}", *_optional(i, 2),
                      f"format {i['format_version']}"])


def identity_flags(i: dict) -> str:
    return " ".join([f"--seed {i['seed']}", f"--size {i['size']}",
                     f"--dedup-ratio {i['dedup_ratio']:g}",
                     f"--compress-ratio {i['compress_ratio']:g}",
                     f"--dedup-unit {i['dedup_unit']}", *_optional(i, 3),
                     f"--format-version {i['format_version']}"])


def enlarge_pipe(fd: int) -> None:
    """Give a pipe PIPE_SIZE bytes (or the most an unprivileged process may set), so that a
    write of one chunk does not wait for the reader several times; quietly as it is where
    that is refused."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            size = min(PIPE_SIZE, int(f.read()))
    except (OSError, ValueError):
        size = PIPE_SIZE
    with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ: Linux, Python 3.10
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < size:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


# --- commands -----------------------------------------------------------------------------
def cmd_generate(args) -> int:
    to_stdout = args.output == "-"
    if to_stdout and sys.stdout is None:  # started with stdout closed (>&-)
        raise ValueError("stdout is closed: give -o FILE or redirect stdout")
    if to_stdout and sys.stdout.isatty():
        raise ValueError("refusing to write binary data to a terminal; redirect stdout or "
                         "give -o FILE")
    if args.manifest and not to_stdout:
        raise ValueError(f"--manifest is for a stream to stdout; -o {args.output} writes "
                         f"{args.output}{files.MANIFEST_SUFFIX} itself")
    if args.manifest and not args.manifest.endswith(files.MANIFEST_SUFFIX):
        raise ValueError(f"--manifest: {args.manifest!r} must end in "
                         f"{files.MANIFEST_SUFFIX}, after the name of the file that will "
                         f"hold the data, where dgen verify looks for it")
    if args.manifest:  # written after the stream: make sure now that it can be
        check_writable(args.manifest)
    threads = args.threads or _checks.threads(None) or None
    if threads is None and to_stdout and stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
        # The reader of a pipe needs a CPU too: producers on every CPU slow it (on 2 CPUs,
        # 4 GiB through `| cat` took 1.6-3.5 s with two, 1.4 s with one).
        threads = max(1, _core.available_cpus() - 1)
    options = identity_options(args)
    gen = Generator(args.size, **options, max_threads=threads)
    identity = {"seed": gen.seed, "size": args.size,
                **{k: v for k, v in options.items() if k != "seed"
                   and (k != "dedup_window" or options["format_version"] >= 3)
                   and (k != "content" or v != "flat")}}
    if args.seed is None and not args.json:
        say(f"seed {gen.seed} drawn; to reproduce or verify this data: "
            f"{identity_flags(identity)}")
    name = "stdout" if to_stdout else args.output
    fd = sys.stdout.fileno() if to_stdout else \
        os.open(args.output, os.O_WRONLY | os.O_CREAT, 0o644)
    manifest = args.manifest
    # A regular file gets a manifest (not /dev/null, nor a symlink, which verify refuses).
    if not to_stdout and stat.S_ISREG(os.fstat(fd).st_mode):
        if not os.path.islink(args.output):
            manifest = args.output + files.MANIFEST_SUFFIX
        with contextlib.suppress(FileNotFoundError):  # before the data it describes goes
            os.unlink(args.output + files.MANIFEST_SUFFIX)
        os.ftruncate(fd, 0)
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        enlarge_pipe(fd)
    t0 = time.perf_counter()
    try:
        with progress(args, args.size, "generate") as advance:
            def tick(n):
                advance(n)  # returns None: a true result would stop the write

            # The loop runs in the core without the GIL, one cache-sized chunk per write().
            gen._s.write(fd, 0, args.size, tick=tick if advance else None)
    except OSError as e:  # a full disk, /dev/full: name what was being written
        raise OSError(e.errno, f"writing {name}: {e.strerror}") from None
    finally:
        if not to_stdout:
            os.close(fd)
    if manifest:
        data = os.path.basename(manifest[:-len(files.MANIFEST_SUFFIX)])
        record = files.manifest_record(identity, [{"path": data, "offset": 0,
                                                   "length": args.size}])
        files.write_manifest(manifest, record)
    held = record["holds"] if manifest else holds(identity)
    warn_held(identity, held)
    seconds = time.perf_counter() - t0
    if args.json:  # stdout may carry the data itself
        print(json.dumps({"path": args.output, "manifest": manifest, "identity": identity,
                          "holds": held, "bytes": args.size, "seconds": seconds}, indent=2),
              file=sys.stderr if to_stdout else sys.stdout)
    elif advance:  # on a terminal, where the bar goes away when done
        say(f"generated {human(args.size)} at {rate(args.size, seconds)}")
    return 0


def check_writable(manifest: str) -> None:
    """ValueError unless a manifest can be written (atomically, as write_manifest does)
    at `manifest`."""
    try:
        if os.path.isdir(manifest):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        fd, probe = tempfile.mkstemp(prefix=".dgen-manifest-",
                                     dir=os.path.dirname(manifest) or ".")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--manifest: cannot write {manifest}: {e.strerror}") from None


# The options of the dataset identity besides size and files, named as in the API.
IDENTITY_OPTIONS = ("seed", "dedup_ratio", "compress_ratio", "dedup_unit", "dedup_run",
                    "dedup_shift", "dedup_skew", "generation", "change_rate", "format_version",
                    "dedup_window", "content")


def identity_options(args) -> dict:
    return {k: getattr(args, k) for k in IDENTITY_OPTIONS}


def resolve_dedup_for(args) -> None:
    """--dedup-for becomes the values it picks (what every command and manifest then sees);
    --dedup-unit, --dedup-run or --dedup-window given beside it is refused."""
    if getattr(args, "dedup_for", None) is None:
        return
    defaults = {"dedup_unit": DEFAULT_DEDUP_UNIT, "dedup_run": 1,
                "dedup_window": _core.WINDOW_UNITS, "format_version": _core.FORMAT_VERSION}
    given = {k: defaults[k] if getattr(args, k) is None else getattr(args, k) for k in defaults}
    try:
        chosen = _checks.apply_dedup_for(args.dedup_for, **given)
    except ValueError as e:
        flag = next(k for k in defaults if f" {k}" in str(e)).replace("_", "-")
        raise ValueError(f"--dedup-for {args.dedup_for} chooses --{flag} itself: give one "
                         f"of them, not both") from None
    args.dedup_unit, args.dedup_run, args.dedup_window, args.format_version = chosen


def held_line(identity: dict, held: dict) -> str:
    """What a report adds: the dedup ratio the size holds, where dedup was asked for."""
    return "" if identity["dedup_ratio"] == 1 else f", holds dedup {held['dedup_ratio']:.3f}"


def warn_held(identity: dict, held: dict) -> None:
    """Warn where the size holds the dedup ratio off the request by more than 1%."""
    want = identity["dedup_ratio"]
    if abs(held["dedup_ratio"] / want - 1) <= TOLERANCE:
        return
    size = identity["size"]
    where = (f"; {human(held['smallest_size'])} ({held['smallest_size']} bytes) is the "
             f"smallest size from {human(size)} up that holds it within 1%"
             if held["smallest_size"] else "")
    say(f"warning: {human(size)} holds dedup {held['dedup_ratio']:.3f}, not the "
        f"{want:g} requested ({held['unique_units']} unique units of {held['units']}: the "
        f"ratio shows over whole windows of runs, docs/data-model.md){where}")


def report_written(args, m: dict, line, shown: dict | None = None) -> int:
    """What a command that wrote a dataset prints: its manifest (`shown`, when given) as
    JSON, or line(m) and where the manifest is; and a warning where its size holds less
    dedup than requested."""
    if "holds" in m:
        warn_held(m["identity"], m["holds"])
    if args.json:
        print_json(m if shown is None else shown)
    else:
        print(line(m))
        print(f"manifest {m['manifest']}")
    return 0


def cmd_write(args) -> int:
    if args.changed_only:
        return cmd_rewrite(args)
    write = files.write_dataset
    if args.comm:
        write = functools.partial(args.mpi_module.write, args.comm)
    with progress(args, args.size, "write") as advance:
        m = write(args.path, args.size, files=args.files, **identity_options(args),
                  direct=args.direct, fsync=args.fsync, jobs=args.jobs, threads=args.threads,
                  force=args.force, progress=advance)
    def line(m):
        size = m["identity"]["size"]
        ranks = f" by {len(m['ranks'])} ranks" if "ranks" in m else ""
        return (f"wrote {human(size)} ({size} bytes) in {len(m['files'])} file(s){ranks} at "
                f"{rate(size, m['seconds'])}; {identity_line(m['identity'])}"
                f"{held_line(m['identity'], m['holds'])}")
    return report_written(args, m, line)


def cmd_dataset(args) -> int:
    from . import datasets
    if args.direct:
        raise ValueError("--direct: dgen dataset cannot write with O_DIRECT: container headers "
                         "and framing sit at offsets that are not multiples of the block size; "
                         "write without it (add --fsync to have the data on the device)")
    layout = {k: getattr(args, k) for k in (
        "workload", "files", "eval_files", "samples_per_file", "record_length",
        "record_length_stdev", "subfolders", "file_prefix", "dlio", "hdf5_datasets")}
    options = {**layout, **{k: getattr(args, k) for k in (
        "seed", "dedup_ratio", "compress_ratio", "dedup_unit", "threads", "force", "jobs",
        "fsync")}}
    try:  # the bar's total; bad options are refused by the write (under MPI on every rank)
        total = datasets.plan(datasets.resolve_spec(args.format, **layout))[1]
    except ValueError:
        total = None
    with progress(args, total, "dataset") as advance:
        m = datasets.write_training_dataset(args.path, args.format, **options,
                                            progress=advance, comm=args.comm)
    def line(m):
        size = sum(f["length"] for f in m["files"] + m["index_files"])
        index = f" and {len(m['index_files'])} index file(s)" if m["index_files"] else ""
        return (f"wrote {m['dataset']['format']} dataset of {len(m['files'])} file(s){index}, "
                f"{human(size)} ({size} bytes) at {rate(size, m['seconds'])}; "
                f"{identity_line(m['identity'])}")
    return report_written(args, m, line, {k: v for k, v in m.items() if k != "files"})


def cmd_rewrite(args) -> int:
    if args.comm:
        raise ValueError("--changed-only runs in one process: run it without mpirun/srun "
                         "(or with --no-mpi on one rank)")
    if args.generation == 0:
        raise ValueError(f"--generation must be in [1, {_core.MAX_GENERATION}] with --changed-only, got 0")
    with progress(args, args.size, "rewrite") as advance:
        m = files.rewrite_changed(
            args.path, args.size, files=args.files, **identity_options(args),
            direct=args.direct, fsync=args.fsync, jobs=args.jobs, threads=args.threads,
            progress=advance)
    def line(m):
        r, size, unit = m["rewritten"], m["identity"]["size"], m["identity"]["dedup_unit"]
        return (f"rewrote {r['units']} of {-(-size // unit)} units ({r['bytes']} bytes, "
                f"{r['ranges']} ranges) at {rate(r['bytes'], m['seconds'])}: generation "
                f"{args.generation - 1} -> {args.generation}; {identity_line(m['identity'])}")
    return report_written(args, m, line)


def verify_target(path: str) -> tuple[str, tuple[int, int, int] | None]:
    """What `dgen verify PATH` checks: (dataset path, None), or for one file of a dataset
    directory that has no manifest of its own, (directory, (file index, 0, length))."""
    name = os.path.basename(path)
    named = name == files.MANIFEST_NAME or (path.endswith(files.MANIFEST_SUFFIX)
                                            and len(name) > len(files.MANIFEST_SUFFIX))
    if named and not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, f"no such file or directory: {path}")
    if name == files.MANIFEST_NAME:  # a manifest stands for what it describes
        return os.path.dirname(path) or ".", None
    if named:
        return path[:-len(files.MANIFEST_SUFFIX)], None
    directory = os.path.dirname(path) or "."
    if (os.path.isfile(path) and not os.path.lexists(path + files.MANIFEST_SUFFIX)
            and os.path.isfile(os.path.join(directory, files.MANIFEST_NAME))):
        record = files.read_manifest(directory)
        listed = [i for i, f in enumerate(record["files"]) if f["path"] == name]
        if listed:
            return directory, (listed[0], 0, record["files"][listed[0]]["length"])
    return path, None


def cmd_verify(args) -> int:
    overrides = {"seed": args.seed, "size": args.size, "files": args.files,
                 **identity_options(args)}
    args.path, piece = verify_target(args.path)
    if piece:
        return verify_one_file(args, overrides, piece)
    from . import datasets
    if datasets.is_training_dataset(args.path):
        given = [k for k, v in overrides.items() if v is not None]
        if given or args.direct:
            flag = "--" + (given[0] if given else "direct").replace("_", "-")
            raise ValueError(f"{flag}: {args.path} is a training dataset, verified against "
                             f"its manifest alone")
        with progress(args, None, "verify") as advance:
            r = datasets.verify_training_dataset(args.path, max_ranges=args.max_ranges,
                                                 threads=args.threads, progress=advance,
                                                 comm=args.comm)
        for warning in r["warnings"]:
            say(f"warning: {warning}")
        print_json(r) if args.json else print(datasets.report(r))
        return 0 if r["ok"] else 1
    with contextlib.ExitStack() as held:
        if args.comm:  # each rank resolves the dataset itself, collectively
            verify, total = functools.partial(args.mpi_module.verify, args.comm), None
        else:  # resolved once, under the shared lock kept until verify_file is done
            held.enter_context(files.reading(args.path))
            dataset = files.resolve_dataset(args.path, **overrides)
            verify = functools.partial(files.verify_file, _dataset=dataset)
            total = dataset["identity"]["size"]
        with progress(args, total, "verify") as advance:
            r = verify(args.path, **overrides, direct=args.direct, threads=args.threads,
                       max_ranges=args.max_ranges, progress=advance)
    for warning in r["warnings"]:
        say(f"warning: {warning}")
    if args.json:
        print_json(r)
    else:
        print(verify_report(r))
    return 0 if r["ok"] else 1


def verify_one_file(args, overrides, piece) -> int:
    """dgen verify DIR/FILE: that file alone, against the directory's manifest."""
    if args.comm:
        raise ValueError(f"{args.path}: one file of a dataset is verified in one process: "
                         f"run without mpirun/srun, or verify the directory")
    directory, length = args.path, piece[2]
    with progress(args, length, "verify") as advance:
        r = files.verify_file(directory, **overrides, direct=args.direct,
                              threads=args.threads, max_ranges=args.max_ranges,
                              progress=advance, pieces=[piece])
    r.update(path=os.path.join(directory, r["files"][0]["path"]), bytes=length)
    for key in ("gap_bytes", "zeros"):
        r.pop(key, None)
    for warning in r["warnings"]:
        say(f"warning: {warning}")
    print_json(r) if args.json else print(verify_report(r))
    return 0 if r["ok"] else 1


def verify_report(r: dict) -> str:
    where = f"{r['path']}: {human(r['bytes'])} in {len(r['files'])} file(s)"
    if r["ok"]:
        return (f"OK {r['path']}: {human(r['bytes_read'])} ({r['bytes_read']} bytes) read "
                f"and verified in {len(r['files'])} file(s) at "
                f"{rate(r['bytes_read'], r['seconds'])}; {identity_line(r['identity'])}")
    lines = [f"FAILED {where}, {r['bytes_read']} bytes read: {r['range_count']} "
             f"mismatching range(s), {r['mismatched_bytes']} byte(s) differ or are missing; "
             f"{identity_line(r['identity'])}"]
    if r["verdict"] == "other identity":
        lines.insert(0, "FAILED: nothing here matches this dataset identity (seed, ratios, "
                     "unit, size): written with other settings?")
    absent = {f["path"] for f in r["files"] if f["size_on_disk"] is None}
    width = max(len("file"), *(len(x["file"]) for x in r["ranges"])) if r["ranges"] else 4
    lines.append(f"{'file':<{width}} {'file offset':>14} {'dataset offset':>16} "
                 f"{'length':>12}  what")
    for x in r["ranges"]:
        lines.append(f"{x['file']:<{width}} {x['file_offset']:>14} {x['offset']:>16} "
                     f"{x['length']:>12}  {describe(x, absent)}")
    if r["range_count"] > len(r["ranges"]):
        lines.append(f"... and {r['range_count'] - len(r['ranges'])} more range(s) "
                     f"(--max-ranges lists more)")
    return "\n".join(lines)


def describe(x: dict, absent=()) -> str:
    if x["kind"] == "missing" and x["file"] in absent:
        return "missing: file absent"
    return {"differs": "differs",
            "zeros": "reads as zeros",
            "stale": f"stale: holds its generation {x.get('stale_generation')} content "
                     f"(a lost write)",
            "moved": f"holds the unit that belongs at file offset "
                     f"{x['belongs_at_file_offset']} (dataset offset {x['belongs_at']})",
            "missing": "missing: the file ends early",
            "extra": "extra: the file is longer than the dataset says"}[x["kind"]]


def cmd_analyze(args) -> int:
    from .analysis import CLI_SAMPLE, analyze, dataset_files
    results = []
    for path in args.paths:
        listed = dataset_files(path)
        total = sum(map(os.path.getsize, [path] if listed is None else listed))
        t0 = time.perf_counter()
        with progress(args, total or None, f"analyze {os.path.basename(path)}") as advance:
            results.append(analyze(path, block_sizes=args.block_sizes,
                                   frame_size=args.frame_size,
                                   sample=CLI_SAMPLE if args.sample is None
                                   else args.sample, threads=args.threads,
                                   progress=advance, cdc=args.cdc))
        results[-1]["seconds"] = round(time.perf_counter() - t0, 3)
        if not args.json:
            print(analyze_report(results[-1]))
    if args.json:
        print_json({"files": results})
    return 0


def analyze_report(a: dict) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.3f}"
    z = a["zero_pages"]
    c = a["compression"]
    lines = [f"{a['source']}: {human(a['bytes'])} ({a['bytes']} bytes), entropy "
             f"{a['entropy_bits_per_byte']:.3f} bits/byte, zero pages {z['count']}"
             + (f" ({z['share']:.2%})" if z["share"] is not None else ""),
             f"  {'dedup block':>11} {'blocks':>12} {'unique':>12} {'ratio':>8}"]
    lines += [f"  {human(int(size)):>11} {d['blocks']:>12} {d['unique']:>12} "
              f"{fmt(d['ratio']):>8}" for size, d in a["dedup"].items()]
    if "cdc" in a:
        lines.append(f"  {'cdc average':>11} {'chunks':>12} {'unique':>12} {'ratio':>8}")
        lines += [f"  {human(int(size)):>11} {d['chunks']:>12} {d['unique']:>12} "
                  f"{fmt(d['ratio']):>8}" for size, d in a["cdc"].items()]
    lines.append(f"  compression of {human(c['frame_size'])} frames "
                 f"({c['frames_compressed']} of {c['frames']} compressed):")
    lines += [f"  {name:>11} {fmt(ratio):>8}"
              + (f"  ({n} of {c['frames']} frames)"
                 if (n := c["sampled"][name]["frames_compressed"]) != c["frames_compressed"]
                 else "") for name, ratio in c["ratios"].items()]
    if "seconds" in a:
        lines.append(f"  measured in {a['seconds']:.2f} s ({rate(a['bytes'], a['seconds'])})")
    return "\n".join(lines)


def cmd_bench(args) -> int:
    if args.comm:
        if args.threads and len(args.threads) > 1:
            raise ValueError(f"--threads: under MPI give one count per rank, got "
                             f"{','.join(map(str, args.threads))}")
        if args.io is not None:
            raise ValueError("--io: runs once, not under MPI; pass --no-mpi")
        result = args.mpi_module.bench(args.comm, args.size or 32 << 20, args.seconds,
                                       args.threads[0] if args.threads else None)
        print_json(result) if args.json else print(args.mpi_module.bench_report(result))
        return 0
    if args.io is not None:
        return bench_io(args)
    if args.direct:
        raise ValueError("--direct: only with --io DIR")
    result = bench.run(args.size, args.threads, args.seconds)
    if args.json:
        print_json(result)
    else:
        print(bench.report(result))
    return 0


def bench_io(args) -> int:
    from . import io_bench
    if args.threads:
        raise ValueError("--threads: not with --io (the jobs use every CPU, as fio's do)")
    size = args.size or 2 << 30
    a = io_bench.options(args.io, size=size, pipe_size=2 * size, rounds=args.rounds,
                         direct=args.direct)
    return io_bench.execute(a, args.json, "dgen")


def cmd_info(args) -> int:
    from ._version import __version__
    from ._system import get_system_info
    info = {"version": __version__, "format_version": _core.FORMAT_VERSION,
            "max_format_version": _core.MAX_FORMAT_VERSION,
            **get_system_info()}
    if args.json:
        print_json(info)
        return 0
    print(f"dgen {info['version']} (format {info['format_version']}), isa {info['isa']}")
    print(f"cpus: {info['available_cpus']} available, {info['logical_cpus']} logical, "
          f"{info['physical_cores']} physical cores; {info['deployment_type']}")
    print(f"topology from {info['source']}"
          + ("; threads and memory can be bound" if info["can_bind"]
             else "; binding unavailable (threads and memory unpinned)"))
    for node in info["nodes"]:
        print(f"  node {node['id']}: cpus {cpu_ranges(node['cpus'])}, "
              f"memory {human(node['memory_bytes'])}")
    if info["memory_available"] is not None:
        print(f"memory a call may allocate: {human(info['memory_available'])} "
              f"({info['memory_limited_by']})")
    return 0


def cpu_ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def main(argv=None) -> int:
    parser = build_parser()
    rank = launched_ranks()
    if rank and rank[2] and "--no-mpi" not in (sys.argv[1:] if argv is None else argv):
        # Rank 0 alone prints, usage errors and refusals included.
        sys.stdout = sys.stderr = open(os.devnull, "w")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("a command is required: generate, write, dataset, verify, analyze, "
                     "bench or info (see dgen --help)")
    try:
        args.comm = args.mpi_module = None
        resolve_dedup_for(args)
        if (code := start_mpi(args)) is not None:
            return code
        return args.run(args)
    except files.Refused as e:  # O_DIRECT refused, not a regular file, a writer holds it
        return fail(2, e.strerror)
    except (ValueError, TypeError, OverflowError) as e:
        return fail(2, str(e))
    except MemoryError as e:  # refused before anything was touched: the request was too big
        return fail(2, f"not enough memory: {e}")
    except BrokenPipeError:
        # The reader went away (`dgen generate | head`): stop quietly, like `yes | head`.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        return fail(3 if e.errno in PATH_ERRORS else 1, str(e))
    except KeyboardInterrupt:
        return fail(130, "interrupted", args.comm)
    except BaseException as e:
        if not args.comm:
            raise
        # A rank that fails outside the collective steps would leave the others waiting.
        # Its cause goes to the real stderr: only rank 0's is not silenced.
        print(f"dgen: error: rank {args.comm.rank} failed unexpectedly ({type(e).__name__}: "
              f"{e}); aborting the MPI job", file=sys.__stderr__)
        traceback.print_exc(file=sys.__stderr__)
        sys.__stderr__.flush()
        args.comm.Abort(1)
        raise


# A path that is missing or cannot be read or made: exit code 3, apart from data that
# differs (1) and bad arguments (2).
PATH_ERRORS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
               errno.ELOOP, errno.ENAMETOOLONG}


def fail(code: int, message: str, comm=None) -> int:
    say(f"error: {message}" if code != 130 else message)
    if comm is not None and code == 130:  # ranks may be waiting on this one
        comm.Abort(code)
    return code


# --- MPI: one job over the ranks a launcher started ---------------------------------------
# (variable holding the rank count, variable holding this process's rank, launcher)
LAUNCHERS = (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI"),
             ("PMI_SIZE", "PMI_RANK", "MPICH/Hydra or PMI"),
             ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "Slurm srun"),
             (None, "PMIX_RANK", "PMIx"))


def launched_ranks(environ=os.environ) -> tuple[int, str, int] | None:
    """(ranks, how it is known, this rank) when a launcher started this process as one
    of several ranks, else None. A rank above 0 proves several even without a size."""
    for size_var, rank_var, name in LAUNCHERS:
        try:
            size = int(environ.get(size_var or "", "0"))
            rank = int(environ.get(rank_var, "0"))
        except ValueError:
            continue
        if size > 1 or rank > 0:
            shown = f"{size_var}={size}" if size > 1 else f"{rank_var}={rank}"
            return max(size, rank + 1), f"{name} ({shown})", rank
    return None


def start_mpi(args) -> int | None:
    """Set args.comm when this run is one MPI job; an exit code when it must not run."""
    launched = launched_ranks()
    wanted = getattr(args, "mpi", None)
    if wanted is None:
        wanted = launched is not None
        if wanted and args.command == "generate":
            return fail(2, f"launched as one of {launched[0]} ranks by {launched[1]}: dgen "
                        f"generate runs once; use dgen write to write a dataset from "
                        f"every rank")
        if args.command not in ("write", "dataset", "verify", "bench"):
            return None
    if not wanted:
        return None
    try:
        from . import mpi
    except ImportError as e:  # without it every rank would write the whole dataset
        where = (f"launched as one of {launched[0]} ranks by {launched[1]}" if launched
                 else "--mpi given")
        return fail(2, f"{where}, but mpi4py cannot be imported ({e}): install it "
                    f"(pip install mpi4py, or pip install '.[mpi]' in dgen's source tree) built "
                    f"against this MPI, or pass --no-mpi to run every rank on its own")
    args.mpi_module, args.comm = mpi, mpi.MPI.COMM_WORLD
    if args.comm.rank:  # rank 0 alone prints: the report, progress, --json and errors
        sys.stdout = sys.stderr = open(os.devnull, "w")
    return None


if __name__ == "__main__":
    sys.exit(main())
