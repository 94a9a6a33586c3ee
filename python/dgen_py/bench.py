"""Generation and verification throughput beside memset and memcmp on the same buffer.

memset and memcmp run as ctypes calls from the same number of threads, each on one
contiguous share of the buffer (ctypes releases the GIL), so both sides touch the same
bytes of the same memory with the same parallelism. Each pair is measured in alternating
rounds, so drift (turbo, noisy neighbours) hits both alike; the medians are compared and
min and max reported, with a warning when rounds differ by more than NOISY (max/min).
"""

from __future__ import annotations

import ctypes
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from . import _checks, _core
from ._generator import Generator
from ._system import get_system_info

SETTINGS = ((1, 1), (2, 2))  # (compress_ratio, dedup_ratio)
MIN_SHARE = 64 * 1024  # bytes per thread: a smaller share times thread wake-ups, not fills
NOISY = 1.2  # max/min over rounds above which a figure is not to be trusted


def rate(fn, nbytes: int, seconds: float) -> float:
    """GB/s of calling fn (which processes nbytes) repeatedly for `seconds`."""
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or done == 0:
        fn()
        done += nbytes
    return done / elapsed / 1e9


def compare(fn, baseline, nbytes: int, seconds: float, rounds: int = 7):
    """(min, median, max) GB/s of fn and of baseline over alternating rounds of `seconds`
    in all."""
    fn(), baseline()  # warm-up: page faults, thread start
    a, b = [], []
    for _ in range(rounds):
        a.append(rate(fn, nbytes, seconds / rounds))
        b.append(rate(baseline, nbytes, seconds / rounds))
    return spread(a), spread(b)


def spread(values) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def figures(name: str, s: tuple[float, float, float]) -> dict:
    """{name: median, name_min, name_max}, rounded to 0.01 GB/s."""
    return {name: round(s[1], 2), f"{name}_min": round(s[0], 2),
            f"{name}_max": round(s[2], 2)}


def noisy(*spreads) -> float | None:
    """The largest max/min above NOISY among spreads, else None."""
    worst = max(s[2] / s[0] for s in spreads)
    return round(worst, 2) if worst > NOISY else None


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
    buf = _checks.buffer(size)
    fill, verify, warnings = [], [], []

    def warn(row, what, *spreads):
        if worst := noisy(*spreads):
            warnings.append(f"{what}, {row['threads']} thread(s): rounds vary {worst:g}x "
                            f"(max/min); a busy machine or a varying clock: rerun on a "
                            f"quiet one before trusting this ratio")

    for n in counts:
        with ThreadPoolExecutor(n) as pool:
            memset = memset_fn(buf, pool, n)
            for compress, dedup in SETTINGS:
                g = Generator(2**62, dedup, compress, seed=1, max_threads=n)
                ours, base = compare(lambda: g.fill_chunk(buf), memset, size, seconds)
                fill.append({"threads": n, "compress_ratio": compress, "dedup_ratio": dedup,
                             **figures("fill_gbps", ours), **figures("memset_gbps", base),
                             "ratio": round(ours[1] / base[1], 3)})
                warn(fill[-1], f"fill compress {compress:g} dedup {dedup:g}", ours, base)
            # Verify compares data read back with the regenerated dataset; memcmp of two
            # copies is the least any check must do.
            g = Generator(size, 2, 2, seed=1, max_threads=n)
            g.fill_chunk(buf)
            copy = _checks.buffer(size)
            copy[:] = buf
            ours, base = compare(lambda: g.verify(buf), memcmp_fn(buf, copy, pool, n), size,
                                 seconds)
            verify.append({"threads": n, **figures("verify_gbps", ours),
                           **figures("memcmp_gbps", base), "ratio": round(ours[1] / base[1], 3)})
            warn(verify[-1], "verify", ours, base)
    return {"buffer_bytes": size, "isa": info["isa"], "fill": fill, "verify": verify,
            "small_calls": _small_calls(seconds), "warnings": warnings}


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
    """run()'s result as three tables: median GB/s and (min-max) over the rounds."""
    def cell(r, name):
        return f"{r[name]:>6.2f} ({r[name + '_min']:.2f}-{r[name + '_max']:.2f})"
    lines = [f"buffer {result['buffer_bytes'] / 2**20:g} MiB, isa {result['isa']}; "
             f"GB/s: median (min-max) over rounds",
             f"{'threads':>7} {'compress':>8} {'dedup':>5} {'fill GB/s':>18} "
             f"{'memset GB/s':>18} {'fill/memset':>11}"]
    lines += [f"{r['threads']:>7} {r['compress_ratio']:>8} {r['dedup_ratio']:>5} "
              f"{cell(r, 'fill_gbps'):>18} {cell(r, 'memset_gbps'):>18} {r['ratio']:>11.3f}"
              for r in result["fill"]]
    lines += ["", f"{'threads':>7} {'verify GB/s':>18} {'memcmp GB/s':>18} "
              f"{'verify/memcmp':>13}"]
    lines += [f"{r['threads']:>7} {cell(r, 'verify_gbps'):>18} {cell(r, 'memcmp_gbps'):>18} "
              f"{r['ratio']:>13.3f}" for r in result["verify"]]
    lines += ["", f"{'call bytes':>10} {'us/call':>8} {'GB/s':>6}"]
    lines += [f"{r['bytes']:>10} {r['us_per_call']:>8.3f} {r['gbps']:>6.2f}"
              for r in result["small_calls"]]
    lines += [""] * bool(result["warnings"]) + [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)
