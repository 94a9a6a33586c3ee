"""Fill rate of every format-2 and format-3 option beside format 1 and memset, all in the same run.

    python benchmarks/options.py [--size-mib 32] [--seconds 1] [--threads N] [--units 4096,131072]
        [--cpu-time] [--only shift]

Every row (format 1, format 2 plain, runs, skew, shift, generations) and memset are timed
in alternating rounds over the same buffer, so drift hits all alike; the table gives the
median GB/s, fill/memset, and the median over rounds of each option's rate divided by
format 1's rate of the same round (the goal: >= 0.9). All rows use dedup 2, compress 2.
--cpu-time divides by the process's CPU time instead of the wall clock: on a shared
machine the time others take the CPU then does not count (use it with --threads 1).
"""

from __future__ import annotations

import argparse
import statistics
import time

from concurrent.futures import ThreadPoolExecutor

from dgen_py import Generator
from dgen_py.bench import memset_fn

ROWS = [("format 1", {"format_version": 1}), ("format 2", {}),
        ("dedup_run=16", {"dedup_run": 16}), ("dedup_skew=1", {"dedup_skew": 1.0}),
        ("dedup_skew=2", {"dedup_skew": 2.0}), ("dedup_shift", {"dedup_shift": True}),
        ("shift+run=16", {"dedup_shift": True, "dedup_run": 16})]
ROWS += [(f"gen {g} c {c:g}", {"generation": g, "change_rate": c})
         for g in (1, 2, 5, 10, 20) for c in (0.05, 0.3, 1.0)]
ROWS += [("gen 10 c 0.3 skew 1", {"generation": 10, "change_rate": 0.3, "dedup_skew": 1.0})]
ROWS += [(f"format 3 window {w}", {"format_version": 3, "dedup_window": w}) for w in (1, 4, 16)]
ROWS += [("format 3 run 32 window 1", {"format_version": 3, "dedup_run": 32, "dedup_window": 1}),
         ("format 3 gen 2 c 0.3 run 32", {"format_version": 3, "dedup_run": 32, "dedup_window": 1,
                                          "generation": 2, "change_rate": 0.3})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=1.0, help="per row, all rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--units", default="4096,131072", help="dedup units, comma-separated")
    ap.add_argument("--cpu-time", action="store_true", help="rates per CPU second")
    ap.add_argument("--only", help="rows whose name contains this (format 1 is always kept)")
    args = ap.parse_args()
    rows = [r for r in ROWS if r[0] == "format 1" or not args.only or args.only in r[0]]
    clock = time.process_time if args.cpu_time else time.perf_counter

    def rate(fn, nbytes, seconds):
        done, t0 = 0, clock()
        while (elapsed := clock() - t0) < seconds or done == 0:
            fn()
            done += nbytes
        return done / elapsed / 1e9
    size = args.size_mib << 20
    buf = bytearray(size)
    step = args.seconds / args.rounds
    with ThreadPoolExecutor(args.threads) as pool:
        memset = memset_fn(buf, pool, args.threads)
        for unit in (int(u) for u in args.units.split(",")):
            fills = []
            for _, options in rows:
                g = Generator(2**62, 2.0, 2.0, seed=1, dedup_unit=unit,
                              max_threads=args.threads, **options)
                fills.append(lambda g=g: g.fill_chunk(buf))
            for f in fills + [memset]:
                f()  # warm-up
            rates = [[] for _ in fills]
            mem = []
            for _ in range(args.rounds):
                mem.append(rate(memset, size, step))
                for i, f in enumerate(fills):
                    rates[i].append(rate(f, size, step))
            m = statistics.median(mem)
            print(f"unit {unit // 1024} KiB, {args.threads} thread(s), buffer "
                  f"{args.size_mib} MiB; memset {m:.2f} GB/s (median of {args.rounds} rounds)")
            print(f"{'option':<22} {'fill GB/s':>9} {'min-max':>11} {'fill/memset':>11} "
                  f"{'/format 1':>9}")
            for (name, _), r in zip(rows, rates):
                vs1 = statistics.median(a / b for a, b in zip(r, rates[0]))
                print(f"{name:<22} {statistics.median(r):>9.2f} {min(r):>5.2f}-{max(r):<5.2f} "
                      f"{statistics.median(r) / m:>11.3f} {vs1:>9.3f}")
            print()


if __name__ == "__main__":
    main()
