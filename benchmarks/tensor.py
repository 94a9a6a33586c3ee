"""fill_tensor beside memset, in one run: GB/s of every dtype and distribution.

    python benchmarks/tensor.py [--size 64MiB] [--threads 1] [--rounds 5]

Each round fills a reused array of --size bytes per dtype and distribution (no page
faults: the kernels alone), and memset of 0xA5 over a buffer of the same size on one
thread; medians over the rounds, measured in alternating rounds.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time

import numpy as np

import dgen_py
from dgen_py._units import parse_size

CASES = [(d, "uniform", {}) for d in ("float16", "bfloat16", "float32", "float64")] + \
        [(d, "normal", {"dist": "normal"}) for d in ("float16", "float32", "float64")] + \
        [(d, "integers", {"low": 0, "high": 50_000}) for d in ("int32", "int64", "uint16")] + \
        [("int8", "integers", {})] + [("int32", "zipf", {"low": 0, "high": 50_000, "zipf": 1.1})]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="64MiB")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    nbytes = parse_size(a.size)
    mem = np.empty(nbytes, np.uint8)
    arrays = {d: np.empty(nbytes // 2 if d == "bfloat16" else nbytes // np.dtype(d).itemsize,
                          np.uint16 if d == "bfloat16" else d) for d, _, _ in CASES}
    sides = {"memset 0xa5 (1 thr)": lambda: ctypes.memset(mem.ctypes.data, 0xA5, nbytes)}
    for d, dist, kw in CASES:
        sides[f"{d} {dist}"] = (lambda d=d, kw=kw: dgen_py.fill_tensor(
            arrays[d], seed=1, max_threads=a.threads, dtype=d, **kw))
    times = {name: [] for name in sides}
    for f in sides.values():
        f()  # warm-up: first touch, thread start
    for _ in range(a.rounds):
        for name, f in sides.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    memset = nbytes / statistics.median(times["memset 0xa5 (1 thr)"]) / 1e9
    print(f"{nbytes / 2**20:.0f} MiB per fill, {a.threads} thread(s), median of {a.rounds} "
          f"rounds; isa {dgen_py._core.isa()}")
    print(f"{'':28} {'GB/s':>7} {'/memset':>8}")
    for name, t in times.items():
        gbs = nbytes / statistics.median(t) / 1e9
        print(f"{name:28} {gbs:7.2f} {gbs / memset:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
