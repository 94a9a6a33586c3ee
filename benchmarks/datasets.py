"""`dgen dataset` beside `dgen write` of the same bytes into the same directory.

    python benchmarks/datasets.py [--dir /dev/shm] [--size 1GiB] [--files 8] [--rounds 5]
                                  [--threads N] [--json]

Each round runs every command once, in turn, the order reversed every other round: `dgen
write` of --size bytes in --files files (with as many jobs as the dataset writer runs
writers: one per file, up to the threads), and `dgen dataset` of about as many payload bytes in as many
files for npy and indexed_binary (one sample of --size/--files bytes per file) and
tfrecord (resnet50's 338x338 records, as many per file as fit). Whole commands are timed
(wall clock); each row gives GB/s (bytes written, containers included, / seconds / 1e9)
min/median/max over the rounds and the ratio of its median to dgen write's. The datasets
are uncompressed (ratios 1). The header says who wrote the TFRecord records: the core (with
google-crc32c's CRC32C library) or Python.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from dgen_py._units import parse_size
from dgen_py.datasets import core_crc32c

RECORD = 338 * 338  # resnet50's sample


def commands(root, size, files, threads):
    """{name: (command, directory it writes)}; dgen write with as many writers as the
    dataset writer runs (one per file, up to the threads)."""
    side = int(math.sqrt(size // files))
    per_file = max(1, size // files // RECORD)
    threads = threads or len(os.sched_getaffinity(0))
    common = ["--seed", "1", "--files", str(files), "--threads", str(threads)]
    dgen = [sys.executable, "-m", "dgen_py"]
    dataset = lambda name, fmt, *more: (dgen + ["dataset", f"{root}/{name}", "--format", fmt,
                                                *more, *common], f"{root}/{name}")
    return {
        "dgen write": (dgen + ["write", f"{root}/write", "--size", str(side * side * files),
                               "--jobs", str(min(files, threads)), *common], f"{root}/write"),
        "dataset npy": dataset("npy", "npy", "--record-length", str(side * side)),
        "dataset indexed_binary": dataset("ib", "indexed_binary", "--record-length",
                                          str(side * side)),
        "dataset tfrecord": dataset("tf", "tfrecord", "--record-length", str(RECORD),
                                    "--samples-per-file", str(per_file)),
    }


def written(path) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path)
               for n in names if not n.startswith("dgen-manifest"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default="/dev/shm")
    p.add_argument("--size", type=parse_size, default=1 << 30)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="dgen-datasets-", dir=args.dir)
    try:
        cases = commands(root, args.size, args.files, args.threads)
        rates = {name: [] for name in cases}
        for name, (cmd, _) in cases.items():  # once untimed: files exist, pages warm
            subprocess.run(cmd, check=True, capture_output=True)
        for r in range(args.rounds):
            for name, (cmd, path) in list(cases.items())[::-1 if r % 2 else 1]:
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                rates[name].append(written(path) / (time.perf_counter() - t0) / 1e9)
    finally:
        shutil.rmtree(root)
    base = statistics.median(rates["dgen write"])
    rows = {name: {"min": min(r), "median": statistics.median(r), "max": max(r),
                   "ratio_to_write": statistics.median(r) / base} for name, r in rates.items()}
    if args.json:
        print(json.dumps({"size": args.size, "files": args.files, "rounds": args.rounds,
                          "load": os.getloadavg(), "tfrecord_by_core": core_crc32c(),
                          "rows": rows}, indent=2))
        return 0
    print(f"{args.size} bytes in {args.files} files to {args.dir}, {args.rounds} alternating "
          f"rounds, load {os.getloadavg()[0]:.1f}; TFRecord records by "
          f"{'the core' if core_crc32c() else 'Python (no google-crc32c)'}; GB/s "
          f"min/median/max, median / dgen write")
    for name, r in rows.items():
        print(f"  {name:<24} {r['min']:6.2f} {r['median']:6.2f} {r['max']:6.2f}   "
              f"{r['ratio_to_write']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
