"""Independent Generators on several threads: aggregate rate and small-call latency.

    python benchmarks/threads.py [--rounds 5] [--seconds 0.5] [--chunk-mib 2 32]

Prints, in one run, in alternating rounds: the rate of one thread with its own Generator
(max_threads=1), and of two threads each with their own Generator (max_threads=1, and the
default, which shares the worker pool) as a ratio to it, min/median/max over rounds with
the CPUs the process got; then the latency of a 2 MiB fill alone and beside another
Generator's 512 MiB fill. On an N-core machine two threads should reach about min(2, N)x
one thread's rate, and the small fill should not wait for the large one. On a machine
shared with other work, the CPUs column says how much of it the run had.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import dgen_py


def aggregate(callers: int, chunk: int, seconds: float, max_threads) -> tuple[float, float]:
    """GB/s of `callers` threads, each filling its own buffer from its own Generator, and
    the CPUs the process used meanwhile."""
    start = threading.Barrier(callers + 1)
    stop = threading.Event()
    done = [0] * callers

    def caller(k: int) -> None:
        g = dgen_py.Generator(1 << 50, 2, 2, seed=k + 1, max_threads=max_threads)
        buf = bytearray(chunk)
        g.fill_chunk(buf)  # warm: pages touched, workers started
        start.wait()
        while not stop.is_set():
            done[k] += g.fill_chunk(buf)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0, c0 = time.perf_counter(), os.times()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    c1, elapsed = os.times(), time.perf_counter() - t0
    cpus = (c1.user + c1.system - c0.user - c0.system) / elapsed
    return sum(done) / elapsed / 1e9, cpus


def small_fill_ms(beside_large: bool, rounds: int = 15) -> float:
    """Median milliseconds of a 2 MiB fill, alone or while a 512 MiB fill runs."""
    small, big = bytearray(2 << 20), bytearray(512 << 20) if beside_large else None
    g = dgen_py.Generator(1 << 50, seed=1)
    times = []
    for _ in range(rounds):
        t = None
        if big is not None:
            t = threading.Thread(target=dgen_py.Generator(1 << 50, seed=2).fill_chunk,
                                 args=(big,))
            t.start()
            time.sleep(0.01)  # the large call is under way
        t0 = time.perf_counter()
        g.fill_chunk(small)
        times.append((time.perf_counter() - t0) * 1e3)
        if t is not None:
            t.join()
    return statistics.median(times)


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}/{statistics.median(xs):.2f}/{max(xs):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="per case and round")
    ap.add_argument("--chunk-mib", type=int, nargs="+", default=[2, 32])
    args = ap.parse_args()
    print(f"{dgen_py._core.available_cpus()} CPUs, isa {dgen_py._core.isa()}; "
          f"min/median/max over {args.rounds} rounds")
    print("chunk    1 thread GB/s      2 threads, 1 each: x1  CPUs      "
          "2 threads, shared pool: x1  CPUs")
    for mib in args.chunk_mib:
        one, two, pooled, cpu2, cpup = [], [], [], [], []
        for _ in range(args.rounds):
            r1 = aggregate(1, mib << 20, args.seconds, 1)[0]
            r2, c2 = aggregate(2, mib << 20, args.seconds, 1)
            rp, cp = aggregate(2, mib << 20, args.seconds, None)
            one.append(r1)
            two.append(r2 / r1)
            pooled.append(rp / r1)
            cpu2.append(c2)
            cpup.append(cp)
        print(f"{mib:3d} MiB  {spread(one):>17}  {spread(two):>22}  "
              f"{statistics.median(cpu2):4.2f}  {spread(pooled):>25}  "
              f"{statistics.median(cpup):4.2f}")
    alone, beside = small_fill_ms(False), small_fill_ms(True)
    print(f"2 MiB fill: {alone:.2f} ms alone, {beside:.2f} ms beside a 512 MiB fill "
          f"({beside / alone:.1f}x)")


if __name__ == "__main__":
    main()
