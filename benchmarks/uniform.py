"""generate_uniform beside numpy, memset and dgen-py 0.3.0, in one run: GB/s of float32.

    python benchmarks/uniform.py [--count 64M] [--threads 1] [--rounds 5]
                                 [--reference-python VENV/bin/python]

Each round makes `--count` float32 values (default 2^26, 256 MiB) with dgen_py.generate_uniform
(a new BytesView per call, as callers get it), numpy's Generator.random(dtype=float32,
out=...) into a reused array, and memset (ctypes) of zeros and of 0xA5 over a reused
buffer of the same size. With --reference-python, the published dgen-py 0.3.0 (same
import name, so in its own venv) runs generate_uniform there. Medians over the rounds.
numpy and memset run on one thread only (numpy's Generator has no threads of its own).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import time

import numpy as np

import dgen_py

REFERENCE = """
import sys, time, dgen_py
count, threads, rounds = map(int, sys.argv[1:4])
best = []
for _ in range(rounds):
    t = time.perf_counter()
    v = dgen_py.generate_uniform(count, max_threads=threads, seed=1)
    best.append(time.perf_counter() - t)
    del v
print(sorted(best)[len(best) // 2])
"""


def median_seconds(fn, rounds: int) -> float:
    fn()  # warm-up: first touch, thread start
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=lambda s: int(s.upper().replace("M", "")) << 20
                    if s.upper().endswith("M") else int(s), default=1 << 26)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reference-python")
    a = ap.parse_args(argv)
    nbytes = 4 * a.count
    rows = []

    t = median_seconds(lambda: dgen_py.generate_uniform(a.count, max_threads=a.threads, seed=1),
                       a.rounds)
    rows.append((f"dgen_py.generate_uniform ({a.threads} thr)", nbytes / t / 1e9))
    out = np.empty(a.count, np.float32)
    rng = np.random.default_rng(1)
    t = median_seconds(lambda: rng.random(dtype=np.float32, out=out), a.rounds)
    rows.append(("numpy Generator.random float32 (1 thr)", nbytes / t / 1e9))
    buf = ctypes.create_string_buffer(nbytes)
    for value in (0, 0xA5):  # some machines store zeros faster than any other byte
        t = median_seconds(lambda: ctypes.memset(buf, value, nbytes), a.rounds)
        rows.append((f"memset {value:#04x} (1 thr)", nbytes / t / 1e9))
    if a.reference_python:
        r = subprocess.run([a.reference_python, "-c", REFERENCE, str(a.count), str(a.threads),
                            str(a.rounds)], capture_output=True, text=True, check=True)
        rows.append((f"dgen-py 0.3.0 generate_uniform ({a.threads} thr)",
                     nbytes / float(r.stdout) / 1e9))

    ours = rows[0][1]
    print(f"{a.count} float32 values ({nbytes / 2**20:.0f} MiB), median of {a.rounds} rounds; "
          f"isa {dgen_py._core.isa()}")
    print(f"{'':44} {'GB/s':>8} {'ours/this':>10}")
    for name, gbs in rows:
        print(f"{name:44} {gbs:8.2f} {ours / gbs:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
