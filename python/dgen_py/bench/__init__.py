"""Generation and verification throughput beside memset and memcmp on the same buffer
(dgen bench); bench.io runs the I/O jobs beside fio (dgen bench --io).

memset and memcmp run as ctypes calls from the same number of threads, each on one
contiguous share of the buffer (ctypes releases the GIL), so both sides touch the same
bytes of the same memory with the same parallelism. The baseline is memset of a non-zero
byte: some CPUs store zeros faster than any other byte (twice as fast past the cache on
Zen 4), which would make a zero baseline flatter or shame generation depending on the CPU;
memset(0) is measured beside it as its own row. Each pair is measured in alternating
rounds, so drift (turbo, noisy neighbours) hits both alike; the medians are compared and
min and max reported, with a warning when rounds differ by more than NOISY (max/min), and
the process CPU-seconds per 10^12 bytes generated.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from .. import _checks, _core
from .._generator import Generator
from .._system import get_system_info

SETTINGS = ((1, 1), (2, 2))  # (compress_ratio, dedup_ratio)
# In L2, in the last-level cache (or just past it) and well past it.
SIZES = (2 << 20, 32 << 20, 256 << 20)
BASELINE_BYTE = 7  # memset's byte: not 0 (see above)
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
    in all, and the process CPU-seconds per 10^12 bytes of fn's rounds."""
    fn(), baseline()  # warm-up: page faults, thread start
    a, b, cpu, done = [], [], 0.0, 0.0
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        a.append(rate(fn, nbytes, seconds / rounds))
        cpu += time.process_time() - c0
        done += a[-1] * 1e9 * (time.perf_counter() - t0)
        b.append(rate(baseline, nbytes, seconds / rounds))
    return spread(a), spread(b), round(cpu / done * 1e12, 1) if done else None


def spread(values) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def figures(name: str, s: tuple[float, float, float]) -> dict:
    """{name: median, name_min, name_max}, rounded to 0.01 GB/s."""
    return {name: round(s[1], 2), f"{name}_min": round(s[0], 2),
            f"{name}_max": round(s[2], 2)}


def noisy(sides: dict) -> tuple[str, float] | None:
    """(name, max/min) of the side whose rounds vary most, {name: spread}, if above NOISY."""
    name, worst = max(((n, s[2] / s[0]) for n, s in sides.items()), key=lambda x: x[1])
    return (name, round(worst, 2)) if worst > NOISY else None


def shares(buf: bytearray, threads: int) -> list[tuple[int, int]]:
    """(address, length) of `threads` contiguous shares of buf."""
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    share = -(-len(buf) // threads)
    return [(addr + i * share, max(0, min(share, len(buf) - i * share)))
            for i in range(threads)]


def memset_fn(buf: bytearray, pool: ThreadPoolExecutor, threads: int,
              byte: int = BASELINE_BYTE):
    parts = shares(buf, threads)
    if threads == 1:  # on the caller, as a one-thread fill runs: no hand-off to time
        (addr, n), = parts
        return lambda: ctypes.memset(addr, byte, n)
    return lambda: list(pool.map(lambda p: ctypes.memset(p[0], byte, p[1]), parts))


def memcmp_fn(a: bytearray, b: bytearray, pool: ThreadPoolExecutor, threads: int):
    memcmp = ctypes.CDLL(None).memcmp
    memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    pairs = list(zip(shares(a, threads), shares(b, threads)))
    if threads == 1:
        ((x, n), (y, _)), = pairs
        return lambda: memcmp(x, y, n)
    return lambda: list(pool.map(lambda p: memcmp(p[0][0], p[1][0], p[0][1]), pairs))


def run(size=None, threads=None, seconds: float = 1.0) -> dict:
    """Measure fill vs memset, verify vs memcmp and small-call costs; a JSON-ready dict.

    `size`: the buffer size, or several (default SIZES: 2, 32 and 256 MiB); `threads`: the
    thread counts to measure (default: every available CPU, and 1); `seconds`: the time
    spent on each pair. GB/s are 10^9 bytes per second.
    """
    info = get_system_info()
    sizes = list(SIZES if size is None else [size] if isinstance(size, int) else size)
    counts = sorted(set(threads or (info["available_cpus"], 1)), reverse=True)
    if min(sizes) // counts[0] < MIN_SHARE:
        small = min(sizes)
        raise ValueError(f"size {small} over {counts[0]} threads gives each "
                         f"{small // counts[0]} bytes, too little to time: give at least "
                         f"{MIN_SHARE} bytes (64 KiB) per thread, size >= "
                         f"{counts[0] * MIN_SHARE}")
    _core.check_memory(2 * max(sizes))  # the buffer and the copy verify compares against
    fill, memset0, verify, warnings = [], [], [], []

    def warn(row, what, ours, base, base_name):
        if found := noisy({what: ours, base_name: base}):
            who, worst = found
            warnings.append(f"{what} against {base_name}, {row['buffer_bytes'] / 2**20:g} MiB, "
                            f"{row['threads']} thread(s): {who}'s rounds vary {worst:g}x "
                            f"(max/min); a busy machine or a varying clock: rerun on a quiet "
                            f"one before trusting this ratio")

    for nbytes in sizes:
        buf = _checks.buffer(nbytes)
        for n in counts:
            at = {"buffer_bytes": nbytes, "threads": n}
            with ThreadPoolExecutor(n) as pool:
                memset = memset_fn(buf, pool, n)
                zero, base, _ = compare(memset_fn(buf, pool, n, 0), memset, nbytes, seconds)
                memset0.append({**at, **figures("memset0_gbps", zero),
                                **figures("memset_gbps", base),
                                "ratio": round(zero[1] / base[1], 3)})
                warn(memset0[-1], "memset(0)", zero, base, f"memset({BASELINE_BYTE})")
                for compress, dedup in SETTINGS:
                    g = Generator(2**62, dedup, compress, seed=1, max_threads=n)
                    ours, base, cpu = compare(lambda: g.fill_chunk(buf), memset, nbytes,
                                              seconds)
                    fill.append({**at, "compress_ratio": compress, "dedup_ratio": dedup,
                                 **figures("fill_gbps", ours), **figures("memset_gbps", base),
                                 "ratio": round(ours[1] / base[1], 3), "cpu_s_per_tb": cpu})
                    warn(fill[-1], f"fill compress {compress:g} dedup {dedup:g}", ours, base,
                         f"memset({BASELINE_BYTE})")
                # Verify compares data read back with the regenerated dataset; memcmp of two
                # copies is the least any check must do.
                g = Generator(nbytes, 2, 2, seed=1, max_threads=n)
                g.fill_chunk(buf)
                copy = _checks.buffer(nbytes)
                copy[:] = buf
                ours, base, cpu = compare(lambda: g.verify(buf), memcmp_fn(buf, copy, pool, n),
                                          nbytes, seconds)
                del copy
                verify.append({**at, **figures("verify_gbps", ours),
                               **figures("memcmp_gbps", base),
                               "ratio": round(ours[1] / base[1], 3), "cpu_s_per_tb": cpu})
                warn(verify[-1], "verify", ours, base, "memcmp")
        del buf
    return {"buffer_bytes": sizes, "isa": info["isa"], "memset_byte": BASELINE_BYTE,
            "fill": fill, "memset0": memset0, "verify": verify,
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


def table(columns, rows) -> list[str]:
    """A table's lines: the headings, then one line per row. columns: (heading, width, the
    row's key or a function of the row, format spec); cells right-aligned, one space apart."""
    def cell(row, key):
        return key(row) if callable(key) else row[key]
    return [" ".join(format(h, f">{w}") for h, w, _, _ in columns)] + [
        " ".join(format(cell(r, key), f">{w}{spec}") for _, w, key, spec in columns)
        for r in rows]


def report(result: dict) -> str:
    """run()'s result as tables: median GB/s and (min-max) over the rounds."""
    def gbps(heading, name):
        return (heading, 18, lambda r: f"{r[name]:>6.2f} ({r[name + '_min']:.2f}-"
                                       f"{r[name + '_max']:.2f})", "")
    byte = result["memset_byte"]
    mib = ("MiB", 5, lambda r: f"{r['buffer_bytes'] / 2**20:g}", "")
    threads = ("threads", 7, "threads", "")
    memset = gbps(f"memset({byte}) GB/s", "memset_gbps")
    cpu = ("cpu-s/TB", 9, lambda r: r["cpu_s_per_tb"] or 0, ".1f")
    lines = [f"isa {result['isa']}; GB/s: median (min-max) over rounds; baseline "
             f"memset({byte}) (memset(0) is not: some CPUs store zeros faster), measured "
             f"again beside each row in alternating rounds; cpu-s/TB: process CPU-seconds "
             f"per 10^12 bytes",
             *table([mib, threads, ("compress", 8, "compress_ratio", ""),
                     ("dedup", 5, "dedup_ratio", ""), gbps("fill GB/s", "fill_gbps"), memset,
                     (f"fill/memset({byte})", 14, "ratio", ".3f"), cpu], result["fill"]), "",
             *table([mib, threads, gbps("memset(0) GB/s", "memset0_gbps"), memset,
                     (f"memset(0)/memset({byte})", 20, "ratio", ".3f")], result["memset0"]), "",
             *table([mib, threads, gbps("verify GB/s", "verify_gbps"),
                     gbps("memcmp GB/s", "memcmp_gbps"), ("verify/memcmp", 13, "ratio", ".3f"),
                     cpu], result["verify"]), "",
             *table([("call bytes", 10, "bytes", ""), ("us/call", 8, "us_per_call", ".3f"),
                     ("GB/s", 6, "gbps", ".2f")], result["small_calls"])]
    lines += [""] * bool(result["warnings"]) + [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)
