"""Fill a reused 32 MiB buffer; print GB/s beside memset on the same buffer and threads.

    python benchmarks/bench.py [--size-mib 32] [--seconds 1] [--json]

memset runs as ctypes.memset calls from the same number of threads, each on one
contiguous share of the buffer (ctypes releases the GIL), so both sides write the same
bytes of the same memory with the same parallelism.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import dgen_py


def rate(fn, nbytes: int, seconds: float) -> float:
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or done == 0:
        fn()
        done += nbytes
    return done / elapsed / 1e9


def compare(fill, memset, nbytes: int, seconds: float, rounds: int = 7):
    """Median GB/s of each over alternating rounds, so drift hits both sides alike."""
    fill(), memset()  # warm-up: page faults, thread start
    f, m = [], []
    for _ in range(rounds):
        f.append(rate(fill, nbytes, seconds / rounds))
        m.append(rate(memset, nbytes, seconds / rounds))
    return statistics.median(f), statistics.median(m)


def shares(buf: bytearray, threads: int) -> list[tuple[int, int]]:
    """(address, length) of `threads` contiguous shares of buf."""
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    share = -(-len(buf) // threads)
    return [(addr + i * share, min(share, len(buf) - i * share)) for i in range(threads)]


def memset_fn(buf: bytearray, pool: ThreadPoolExecutor, threads: int):
    parts = shares(buf, threads)
    return lambda: list(pool.map(lambda p: ctypes.memset(p[0], 0, p[1]), parts))


def memcmp_fn(a: bytearray, b: bytearray, pool: ThreadPoolExecutor, threads: int):
    memcmp = ctypes.CDLL(None).memcmp
    memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    pairs = list(zip(shares(a, threads), shares(b, threads)))
    return lambda: list(pool.map(lambda p: memcmp(p[0][0], p[1][0], p[0][1]), pairs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=2.0, help="per case")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = args.size_mib << 20
    buf = bytearray(size)
    cpus = dgen_py.get_system_info()["available_cpus"]
    rows = []
    for threads in sorted({cpus, 1}, reverse=True):
        pool = ThreadPoolExecutor(threads)
        memset = memset_fn(buf, pool, threads)
        for compress, dedup in ((1, 1), (2, 2)):
            g = dgen_py.Generator(2**62, dedup, compress, seed=1, max_threads=threads)
            gbps, mem = compare(lambda: g.fill_chunk(buf), memset, size, args.seconds)
            rows.append({"threads": threads, "compress_ratio": compress, "dedup_ratio": dedup,
                         "fill_gbps": round(gbps, 2), "memset_gbps": round(mem, 2),
                         "ratio": round(gbps / mem, 3)})
    # Verify: data read back compared with the regenerated dataset, against memcmp of two
    # copies (the least any check must do), same threads.
    verify_rows = []
    for threads in sorted({cpus, 1}, reverse=True):
        pool = ThreadPoolExecutor(threads)
        g = dgen_py.Generator(size, 2, 2, seed=1, max_threads=threads)
        g.fill_chunk(buf)
        copy = bytearray(buf)
        gbps, cmp = compare(lambda: g.verify(buf), memcmp_fn(buf, copy, pool, threads), size,
                            args.seconds)
        verify_rows.append({"threads": threads, "verify_gbps": round(gbps, 2),
                            "memcmp_gbps": round(cmp, 2), "ratio": round(gbps / cmp, 3)})
    # Small calls: the per-call cost of fill_chunk from Python.
    small = []
    g = dgen_py.Generator(2**62, 1, 1, seed=1)
    for n in (4096, 65536):
        b = bytearray(n)
        calls = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds / 2:
            for _ in range(1000):
                g.fill_chunk(b)
            calls += 1000
        dt = (time.perf_counter() - t0) / calls
        small.append({"bytes": n, "us_per_call": round(dt * 1e6, 3), "gbps": round(n / dt / 1e9, 2)})
    if args.json:
        print(json.dumps({"buffer_bytes": size, "isa": dgen_py.get_system_info()["isa"],
                          "fill": rows, "verify": verify_rows, "small_calls": small}, indent=2))
        return
    print(f"buffer {args.size_mib} MiB, isa {dgen_py.get_system_info()['isa']}")
    print(f"{'threads':>7} {'compress':>8} {'dedup':>5} {'fill GB/s':>10} {'memset GB/s':>11} {'fill/memset':>11}")
    for r in rows:
        print(f"{r['threads']:>7} {r['compress_ratio']:>8} {r['dedup_ratio']:>5} "
              f"{r['fill_gbps']:>10.2f} {r['memset_gbps']:>11.2f} {r['ratio']:>11.3f}")
    print(f"\n{'threads':>7} {'verify GB/s':>11} {'memcmp GB/s':>11} {'verify/memcmp':>13}")
    for r in verify_rows:
        print(f"{r['threads']:>7} {r['verify_gbps']:>11.2f} {r['memcmp_gbps']:>11.2f} {r['ratio']:>13.3f}")
    print(f"\n{'call bytes':>10} {'us/call':>8} {'GB/s':>6}")
    for r in small:
        print(f"{r['bytes']:>10} {r['us_per_call']:>8.3f} {r['gbps']:>6.2f}")


if __name__ == "__main__":
    main()
