"""`dgen analyze` speed against an earlier implementation, in the same run.

    python benchmarks/analyze.py [--size 512MiB] [--rounds 3] [--baseline feb8a12^]

Writes one dataset file (dedup 2, compress 2) to /dev/shm, then, in alternating rounds,
times analyze() as `dgen analyze` calls it (its default sample) and the baseline's
analyze() (its python/dgen_py/analysis.py at the git revision --baseline, by default the
version before analyze learned to sample, loaded beside this package) with its own
defaults, on all CPUs. Prints MB/s and CPU-seconds per round (min/median/max) and the
ratio of the medians; then the CPU-seconds of SHA-256 and XXH3-128 digests of every 4 KiB
page of 256 MiB (what each costs analyze), and of each compressor over its 1 MiB frames,
beside zstd-1's (what CLI_SAMPLE's shares are set from). Run it from a git checkout of the
project.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import types
import time

import dgen_py
import xxhash
from dgen_py import analysis
from dgen_py._units import parse_size


def load_baseline(rev: str):
    """analysis.py at `rev`, imported as a module of the installed package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "-C", root, "show", f"{rev}:python/dgen_py/analysis.py"],
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("dgen_py._analysis_baseline")
    module.__package__ = "dgen_py"
    exec(compile(source, f"{rev}:analysis.py", "exec"), module.__dict__)
    return module


def page_hash_seconds(data, digest) -> float:
    """CPU-seconds to hash every 4 KiB page of data with digest (as analyze does)."""
    view, c0 = memoryview(data), time.process_time()
    for o in range(0, len(view) - 4095, 4096):
        digest(view[o:o + 4096])
    return time.process_time() - c0


def compress_seconds(data, make) -> float:
    """CPU-seconds to compress data in 1 MiB frames (analyze's default) with make()."""
    compress, view, c0 = make(), memoryview(data), time.process_time()
    for o in range(0, len(view), 1 << 20):
        compress(view[o:o + (1 << 20)])
    return time.process_time() - c0


def timed(fn, path) -> tuple[float, float, dict]:
    t0, c0 = time.perf_counter(), os.times()
    result = fn(path)
    c1 = os.times()
    return time.perf_counter() - t0, c1.user + c1.system - c0.user - c0.system, result


def spread(xs) -> str:
    return f"{min(xs):7.1f} {statistics.median(xs):7.1f} {max(xs):7.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=parse_size, default=512 << 20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default="feb8a12^")
    args = ap.parse_args()
    baseline = load_baseline(args.baseline)
    path = os.path.join("/dev/shm", f"dgen-analyze-bench-{os.getpid()}.bin")
    g, buf = dgen_py.Generator(args.size, 2, 2, seed=1), bytearray(32 << 20)
    with open(path, "wb") as f:
        while n := g.fill_chunk(buf):
            f.write(memoryview(buf)[:n])
    runs = {"now": lambda p: analysis.analyze(p, sample=analysis.CLI_SAMPLE),
            args.baseline: baseline.analyze}
    seen = {name: ([], []) for name in runs}
    try:
        print(f"{args.size} bytes, {len(os.sched_getaffinity(0))} CPUs, load "
              f"{os.getloadavg()[0]:.1f}; MB/s and CPU-s per round")
        for r in range(args.rounds):
            for name, fn in runs.items():
                wall, cpu, result = timed(fn, path)
                seen[name][0].append(args.size / wall / 1e6)
                seen[name][1].append(cpu)
                ratio = result["dedup"]["4096"]["ratio"], result["compression"]["ratios"]["zstd-1"]
                print(f"  round {r + 1} {name:>10}: {args.size / wall / 1e6:7.1f} MB/s "
                      f"{cpu:6.2f} CPU-s  (dedup {ratio[0]:.3f}, zstd-1 {ratio[1]:.3f})",
                      flush=True)
    finally:
        os.unlink(path)
    print(f"{'':>12}  {'MB/s min/med/max':>23}  {'CPU-s min/med/max':>23}")
    for name, (rates, cpus) in seen.items():
        print(f"{name:>12}  {spread(rates)}  {spread(cpus)}")
    now, base = seen["now"], seen[args.baseline]
    data = dgen_py.generate_buffer(min(args.size, 256 << 20), 2, 2, seed=1)
    sha = min(page_hash_seconds(data, lambda v: hashlib.sha256(v).digest()) for _ in range(3))
    xxh = min(page_hash_seconds(data, xxhash.xxh3_128_digest) for _ in range(3))
    print(f"page digests of {len(data) >> 20} MiB: SHA-256 {sha:.3f} CPU-s, XXH3-128 "
          f"{xxh:.3f} CPU-s ({sha / xxh:.1f}x)")
    costs = {name: min(compress_seconds(data, make) for _ in range(3))
             for name, make in analysis.COMPRESSORS.items()}
    print(f"compressing {len(data) >> 20} MiB in 1 MiB frames, CPU-s (x zstd-1's): " +
          ", ".join(f"{name} {s:.3f} ({s / costs['zstd-1']:.1f}x)" for name, s in costs.items()))
    print(f"speed-up (median MB/s): {statistics.median(now[0]) / statistics.median(base[0]):.2f}x"
          f"; per CPU-second: {statistics.median(base[1]) / statistics.median(now[1]):.2f}x")
    if max(now[0]) > 1.3 * min(now[0]):
        print("warning: rounds spread by more than 30%: the machine is busy", file=sys.stderr)


if __name__ == "__main__":
    main()
