"""Generation and verification throughput beside memset and memcmp on the same buffer.

memset and memcmp run as ctypes calls from the same number of threads, each on one
contiguous share of the buffer (ctypes releases the GIL), so both sides touch the same
bytes of the same memory with the same parallelism. Each pair is measured in alternating
rounds and the medians compared, so drift (turbo, noisy neighbours) hits both alike.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from . import _core
from ._generator import Generator
from ._system import get_system_info

SETTINGS = ((1, 1), (2, 2))  # (compress_ratio, dedup_ratio)
MIN_SHARE = 64 * 1024  # bytes per thread: a smaller share times thread wake-ups, not fills


def rate(fn, nbytes: int, seconds: float) -> float:
    """GB/s of calling fn (which processes nbytes) repeatedly for `seconds`."""
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or done == 0:
        fn()
        done += nbytes
    return done / elapsed / 1e9


def compare(fn, baseline, nbytes: int, seconds: float, rounds: int = 7):
    """Median GB/s of fn and of baseline over alternating rounds of `seconds` in all."""
    fn(), baseline()  # warm-up: page faults, thread start
    a, b = [], []
    for _ in range(rounds):
        a.append(rate(fn, nbytes, seconds / rounds))
        b.append(rate(baseline, nbytes, seconds / rounds))
    return statistics.median(a), statistics.median(b)


def shares(buf: bytearray, threads: int) -> list[tuple[int, int]]:
    """(address, length) of `threads` contiguous shares of buf."""
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    share = -(-len(buf) // threads)
    return [(addr + i * share, max(0, min(share, len(buf) - i * share)))
            for i in range(threads)]


def memset_fn(buf: bytearray, pool: ThreadPoolExecutor, threads: int):
    parts = shares(buf, threads)
    return lambda: list(pool.map(lambda p: ctypes.memset(p[0], 0, p[1]), parts))


def memcmp_fn(a: bytearray, b: bytearray, pool: ThreadPoolExecutor, threads: int):
    memcmp = ctypes.CDLL(None).memcmp
    memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    pairs = list(zip(shares(a, threads), shares(b, threads)))
    return lambda: list(pool.map(lambda p: memcmp(p[0][0], p[1][0], p[0][1]), pairs))


def run(size: int = 32 * 1024 * 1024, threads=None, seconds: float = 1.0) -> dict:
    """Measure fill vs memset, verify vs memcmp and small-call costs; a JSON-ready dict.

    `threads`: the thread counts to measure (default: every available CPU, and 1);
    `seconds`: the time spent on each pair. GB/s are 10^9 bytes per second.
    """
    info = get_system_info()
    counts = sorted(set(threads or (info["available_cpus"], 1)), reverse=True)
    if size // counts[0] < MIN_SHARE:
        raise ValueError(f"size {size} over {counts[0]} threads gives each {size // counts[0]} "
                         f"bytes, too little to time: give at least {MIN_SHARE} bytes "
                         f"(64 KiB) per thread, size >= {counts[0] * MIN_SHARE}")
    _core.check_memory(2 * size)  # the buffer and the copy verify compares against
    buf = bytearray(size)
    fill, verify = [], []
    for n in counts:
        with ThreadPoolExecutor(n) as pool:
            memset = memset_fn(buf, pool, n)
            for compress, dedup in SETTINGS:
                g = Generator(2**62, dedup, compress, seed=1, max_threads=n)
                gbps, base = compare(lambda: g.fill_chunk(buf), memset, size, seconds)
                fill.append({"threads": n, "compress_ratio": compress, "dedup_ratio": dedup,
                             "fill_gbps": round(gbps, 2), "memset_gbps": round(base, 2),
                             "ratio": round(gbps / base, 3)})
            # Verify compares data read back with the regenerated dataset; memcmp of two
            # copies is the least any check must do.
            g = Generator(size, 2, 2, seed=1, max_threads=n)
            g.fill_chunk(buf)
            copy = bytearray(buf)
            gbps, base = compare(lambda: g.verify(buf), memcmp_fn(buf, copy, pool, n), size,
                                 seconds)
            verify.append({"threads": n, "verify_gbps": round(gbps, 2),
                           "memcmp_gbps": round(base, 2), "ratio": round(gbps / base, 3)})
    return {"buffer_bytes": size, "isa": info["isa"], "fill": fill, "verify": verify,
            "small_calls": _small_calls(seconds)}


def _small_calls(seconds: float) -> list[dict]:
    """The per-call cost of fill_chunk from Python at 4 KiB and 64 KiB."""
    g = Generator(2**62, 1, 1, seed=1)
    out = []
    for n in (4096, 65536):
        b = bytearray(n)
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            for _ in range(1000):
                g.fill_chunk(b)
            calls += 1000
        dt = (time.perf_counter() - t0) / calls
        out.append({"bytes": n, "us_per_call": round(dt * 1e6, 3),
                    "gbps": round(n / dt / 1e9, 2)})
    return out


def report(result: dict) -> str:
    """run()'s result as three tables."""
    lines = [f"buffer {result['buffer_bytes'] / 2**20:g} MiB, isa {result['isa']}",
             f"{'threads':>7} {'compress':>8} {'dedup':>5} {'fill GB/s':>10} "
             f"{'memset GB/s':>11} {'fill/memset':>11}"]
    lines += [f"{r['threads']:>7} {r['compress_ratio']:>8} {r['dedup_ratio']:>5} "
              f"{r['fill_gbps']:>10.2f} {r['memset_gbps']:>11.2f} {r['ratio']:>11.3f}"
              for r in result["fill"]]
    lines += ["", f"{'threads':>7} {'verify GB/s':>11} {'memcmp GB/s':>11} {'verify/memcmp':>13}"]
    lines += [f"{r['threads']:>7} {r['verify_gbps']:>11.2f} {r['memcmp_gbps']:>11.2f} "
              f"{r['ratio']:>13.3f}" for r in result["verify"]]
    lines += ["", f"{'call bytes':>10} {'us/call':>8} {'GB/s':>6}"]
    lines += [f"{r['bytes']:>10} {r['us_per_call']:>8.3f} {r['gbps']:>6.2f}"
              for r in result["small_calls"]]
    return "\n".join(lines)
