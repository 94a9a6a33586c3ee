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


def memset_fn(buf: bytearray, pool: ThreadPoolExecutor, threads: int):
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    share = -(-len(buf) // threads)
    parts = [(addr + i * share, min(share, len(buf) - i * share)) for i in range(threads)]
    return lambda: list(pool.map(lambda p: ctypes.memset(p[0], 0, p[1]), parts))


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
    if args.json:
        print(json.dumps({"buffer_bytes": size, "isa": dgen_py.get_system_info()["isa"],
                          "results": rows}, indent=2))
        return
    print(f"buffer {args.size_mib} MiB, isa {dgen_py.get_system_info()['isa']}")
    print(f"{'threads':>7} {'compress':>8} {'dedup':>5} {'fill GB/s':>10} {'memset GB/s':>11} {'fill/memset':>11}")
    for r in rows:
        print(f"{r['threads']:>7} {r['compress_ratio']:>8} {r['dedup_ratio']:>5} "
              f"{r['fill_gbps']:>10.2f} {r['memset_gbps']:>11.2f} {r['ratio']:>11.3f}")


if __name__ == "__main__":
    main()
