"""dgen beside its peers, on one machine in one run: GB/s, GB per CPU-second, speed-ups.

    python benchmarks/peers.py [--reference-python VENV/bin/python] [--seconds 2]
                               [--threads N,N] [--size 32MiB] [--json]

Every peer makes `--size` (32 MiB) of data per round from the same number of threads,
measured in alternating rounds with dgen; the table shows the median GB/s with (min-max)
over the rounds and warns when they vary by more than 1.2x (max/min). Threads are what
each peer is asked for, not what it takes: dgen-py 0.3.0 ignores max_threads above 1 and
keeps every CPU busy, so the table also gives GB per CPU-second of the process making the
data, all its threads (getrusage; for fio, its own account of its job threads):
- memset of zeros on a reused buffer: the baseline;
- dgen-py 0.3.0 from PyPI, the reference. It has the same import name, so it runs in its
  own interpreter: `python -m venv /tmp/ref && /tmp/ref/bin/pip install dgen-py==0.3.0`,
  then `--reference-python /tmp/ref/bin/python`. Both run the same loop (below); the
  reference measures its own CPU time inside that loop;
- fio's buffer refill: `fio --ioengine=null --refill_buffers` (with
  --buffer_compress_percentage=50 --dedupe_percentage=50 for 2:1 / 2:1), if fio is on PATH;
  each of its jobs refills its own buffer of size/threads;
- numpy's Generator.bytes and os.urandom, for incompressible data only. They have no way
  to fill a buffer in place, so each call returns new bytes.
dgen (and the reference) fill a reused bytearray with Generator.fill_chunk.

With --uniform (--only-uniform: alone), float32 generate_uniform of --uniform-size
(256 MiB) from one thread, a new buffer per
call as callers get it, in alternating rounds with: memset of 0xA5 over a new mapping of the
same size with huge pages asked for (first touch: what generate_uniform's allocation pays,
so the baseline of the >= 0.5 goal), memset over a reused buffer (no page faults: the
store bandwidth alone), and dgen-py 0.3.0's generate_uniform in its own interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

SETTINGS = ((1, 1), (2, 2))  # (compress_ratio, dedup_ratio)
NOISY = 1.2  # max/min over rounds above which a row is not to be trusted


def cpu_seconds() -> float:
    """User + system CPU time of this process, every thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(once, nbytes: int, seconds: float) -> tuple[float, float]:
    """(GB/s, GB per CPU-second of this process) of calling once() (nbytes each) for
    `seconds`, at least once."""
    done, c0, t0 = 0, cpu_seconds(), time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or done == 0:
        once()
        done += nbytes
    cpu = cpu_seconds() - c0
    return done / elapsed / 1e9, done / max(cpu, 1e-6) / 1e9


def fill_rate(threads: int, compress: float, dedup: float, size: int,
              seconds: float) -> tuple[float, float]:
    """(GB/s, GB/CPU-s) of Generator.fill_chunk into a reused bytearray: the loop both
    dgens run."""
    import dgen_py  # whichever dgen_py this interpreter has

    buf = bytearray(size)
    g = dgen_py.Generator(size=2**50, dedup_ratio=dedup, compress_ratio=compress,
                          max_threads=threads)
    g.fill_chunk(buf)  # warm-up: page faults, thread start
    return timed(lambda: g.fill_chunk(buf), size, seconds)


class PeerFailed(RuntimeError):
    """A peer could not be measured; its row says why."""


def reference_rate(python: str, threads, compress, dedup, size, seconds):
    """fill_rate in another interpreter (the reference package has our import name); its
    CPU time is measured there, over the loop alone."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
            f"import peers; print(*peers.fill_rate({threads}, {compress}, {dedup}, {size}, "
            f"{seconds}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd="/")
    if out.returncode != 0:
        raise PeerFailed(f"{python}: {out.stderr.strip().splitlines()[-1:]}")
    gbps, per_cpu = out.stdout.split()[-2:]
    return float(gbps), float(per_cpu)


def fio_command(threads, compress, dedup, size, seconds) -> list[str]:
    """fio refilling its write buffers with the null engine (no I/O): size in all."""
    share = size // threads
    cmd = ["fio", "--name=refill", "--ioengine=null", "--rw=write", f"--bs={share}",
           f"--size={share}", "--refill_buffers", "--time_based",
           f"--runtime={max(1, round(seconds * 1000))}ms", f"--numjobs={threads}", "--thread",
           "--group_reporting", "--output-format=json"]
    if compress > 1:
        cmd.append(f"--buffer_compress_percentage={round(100 - 100 / compress)}")
    if dedup > 1:
        cmd.append(f"--dedupe_percentage={round(100 - 100 / dedup)}")
    return cmd


def fio_rate(threads, compress, dedup, size, seconds):
    """fio's (GB/s, GB/CPU-s), the CPU time being fio's own account of its job threads:
    usr_cpu and sys_cpu are percentages of job_runtime, summed over the jobs."""
    cmd = fio_command(threads, compress, dedup, size, seconds)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise PeerFailed(f"fio: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    job = json.loads(out.stdout)["jobs"][0]
    cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] / 1000
    return job["write"]["bw_bytes"] / 1e9, job["write"]["io_bytes"] / max(cpu, 1e-6) / 1e9


def pooled_rate(make, threads: int, size: int, seconds: float):
    """(GB/s, GB/CPU-s) of `threads` threads each making size/threads bytes per round with
    make(n)."""
    share = size // threads
    with ThreadPoolExecutor(threads) as pool:
        def once():
            list(pool.map(make, [share] * threads))
        once()  # warm-up: thread start
        return timed(once, share * threads, seconds)


def numpy_rate(threads, size, seconds):
    import numpy as np

    local = threading.local()

    def make(n):  # one Generator per thread: they are not thread-safe
        if not hasattr(local, "rng"):
            local.rng = np.random.default_rng()
        return local.rng.bytes(n)
    return pooled_rate(make, threads, size, seconds)


def memset_rate(threads, size, seconds):
    from dgen_py import bench

    buf = bytearray(size)
    with ThreadPoolExecutor(threads) as pool:
        memset = bench.memset_fn(buf, pool, threads)
        memset()  # warm-up: page faults, thread start
        return timed(memset, size, seconds)


def peers(threads: int, compress, dedup, size, args) -> dict:
    """name -> a function of `seconds` giving that peer's (GB/s, GB/CPU-s); None: not
    available here."""
    out = {"memset (baseline)": lambda s: memset_rate(threads, size, s)}
    out[f"dgen-py {args.reference_version}"] = (
        (lambda s: reference_rate(args.reference_python, threads, compress, dedup, size, s))
        if args.reference_python else None)
    out["fio refill_buffers"] = ((lambda s: fio_rate(threads, compress, dedup, size, s))
                                 if shutil.which("fio") else None)
    if (compress, dedup) == (1, 1):
        out["numpy Generator.bytes"] = lambda s: numpy_rate(threads, size, s)
        out["os.urandom"] = lambda s: pooled_rate(os.urandom, threads, size, s)
    return out


def run(args) -> list[dict]:
    rows = []
    print(report([]), flush=True, file=args.live)  # the header at once: rows take a while
    for threads in args.threads:
        for compress, dedup in SETTINGS:
            for name, peer in peers(threads, compress, dedup, args.size, args).items():
                row = {"threads": threads, "compress_ratio": compress, "dedup_ratio": dedup,
                       "peer": name, "peer_gbps": None, "dgen_gbps": None, "ratio": None}
                if peer is None:
                    row["note"] = "not available: see --help"
                else:
                    ours, theirs = [], []
                    try:
                        for _ in range(args.rounds):  # alternating: drift hits both alike
                            ours.append(fill_rate(threads, compress, dedup, args.size,
                                                  args.seconds / args.rounds))
                            theirs.append(peer(args.seconds / args.rounds))
                    except PeerFailed as e:
                        row["note"] = f"failed: {e}"
                    else:
                        row.update(figures("peer", theirs), **figures("dgen", ours))
                        row["ratio"] = round(statistics.median(r[0] for r in ours)
                                             / statistics.median(r[0] for r in theirs), 3)
                        row["cpu_ratio"] = round(row["dgen_gb_per_cpu_s"]
                                                 / row["peer_gb_per_cpu_s"], 3)
                        worst = max(max(r[0] for r in x) / min(r[0] for r in x)
                                    for x in (ours, theirs))
                        if worst > NOISY:
                            row["note"] = (f"rounds vary {worst:.2f}x (max/min): a busy "
                                           f"machine; rerun before trusting this row")
                rows.append(row)
                print(report([row], header=False), flush=True, file=args.live)
    return rows


# One round of the reference in a fresh interpreter, which exits before the next side runs:
# 0.3.0's worker threads stay busy after a call and would slow whatever runs beside them.
UNIFORM_REFERENCE = """
import sys, time, dgen_py
count = int(sys.argv[1])
dgen_py.generate_uniform(count, max_threads=1, seed=1)  # warm-up: thread start
t = time.perf_counter()
v = dgen_py.generate_uniform(count, max_threads=1, seed=1)
print(time.perf_counter() - t)
"""


def first_touch_memset(nbytes: int) -> None:
    """memset of a new anonymous mapping, huge pages asked for as dgen's allocator does."""
    import ctypes
    import mmap

    # Private, as malloc's and dgen's mappings are: shared anonymous memory is shmem, which
    # gets no transparent huge pages.
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        m.madvise(mmap.MADV_HUGEPAGE)
    view = (ctypes.c_char * nbytes).from_buffer(m)
    ctypes.memset(view, 0xA5, nbytes)
    del view
    m.close()


def uniform_rows(args) -> list[dict]:
    """GB/s of 256 MiB float32 generate_uniform on one thread and its baselines."""
    import ctypes

    import dgen_py

    nbytes = args.uniform_size // 4 * 4
    count = nbytes // 4
    reused = bytearray(nbytes)
    sides = {
        "dgen generate_uniform": lambda: dgen_py.generate_uniform(count, max_threads=1, seed=1),
        "memset, first touch": lambda: first_touch_memset(nbytes),
        "memset, reused buffer": lambda: ctypes.memset((ctypes.c_char * nbytes).from_buffer(
            reused), 0xA5, nbytes),
    }
    if args.reference_python:
        def reference() -> None:
            out = subprocess.run([args.reference_python, "-c", UNIFORM_REFERENCE, str(count)],
                                 capture_output=True, text=True, cwd="/")
            if out.returncode != 0:
                raise PeerFailed(f"{args.reference_python}: {out.stderr.strip()[-200:]}")
            return float(out.stdout)
    times = {name: [] for name in sides}
    for f in sides.values():
        f()  # warm-up: thread start, imports
    ref_name = f"dgen-py {args.reference_version}"
    if args.reference_python:
        times[ref_name] = []
    for _ in range(args.rounds):  # alternating: drift hits every side alike
        for name, f in sides.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
        if args.reference_python:
            times[ref_name].append(reference())
    ours = statistics.median(times["dgen generate_uniform"])
    return [{"uniform_bytes": nbytes, "threads": 1, "peer": name,
             "gbps": round(nbytes / statistics.median(t) / 1e9, 2),
             "gbps_min": round(nbytes / max(t) / 1e9, 2),
             "gbps_max": round(nbytes / min(t) / 1e9, 2),
             "dgen_over_peer": round(statistics.median(t) / ours, 3)}
            for name, t in times.items()]


def uniform_report(rows) -> str:
    lines = [f"generate_uniform float32, {rows[0]['uniform_bytes'] / 2**20:.0f} MiB, 1 thread, "
             f"a new buffer per call (median (min-max) GB/s over the rounds):",
             f"  {'':26} {'GB/s':>19} {'dgen/this':>9}"]
    for r in rows:
        lines.append(f"  {r['peer']:<26} {r['gbps']:>6.2f} ({r['gbps_min']:>5.2f}-"
                     f"{r['gbps_max']:<5.2f}) {r['dgen_over_peer']:>9.3f}")
    return "\n".join(lines)


def figures(who: str, rounds) -> dict:
    """Median, min and max GB/s and the median GB/CPU-s of one side's rounds."""
    gbps = [r[0] for r in rounds]
    return {f"{who}_gbps": round(statistics.median(gbps), 2),
            f"{who}_gbps_min": round(min(gbps), 2), f"{who}_gbps_max": round(max(gbps), 2),
            f"{who}_gb_per_cpu_s": round(statistics.median(r[1] for r in rounds), 2)}


def report(rows, header=True) -> str:
    """GB/s as median (min-max) over the rounds; GB/CPU-s as the median."""
    lines = [f"{'threads':>7} {'compress':>8} {'dedup':>5}  {'peer':<22} {'peer GB/s':>19} "
             f"{'GB/CPU-s':>8} {'dgen GB/s':>19} {'GB/CPU-s':>8} {'dgen/peer':>9} "
             f"{'per CPU-s':>9}"] if header else []
    for r in rows:
        if r["ratio"] is None:
            tail = f"  ({r['note']})"
        else:
            tail = "".join(
                f" {r[w + '_gbps']:>6.2f} ({r[w + '_gbps_min']:>5.2f}-{r[w + '_gbps_max']:<5.2f})"
                f" {r[w + '_gb_per_cpu_s']:>8.2f}" for w in ("peer", "dgen"))
            tail += f" {r['ratio']:>9.3f} {r['cpu_ratio']:>9.3f}"
            if "note" in r:
                tail += f"  (warning: {r['note']})"
        lines.append(f"{r['threads']:>7} {r['compress_ratio']:>8} {r['dedup_ratio']:>5}  "
                     f"{r['peer']:<22}{tail}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--reference-python", help="an interpreter with dgen-py 0.3.0 installed")
    ap.add_argument("--seconds", type=float, default=2.0, help="per peer and case (default 2)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--threads", default=None,
                    help="thread counts, comma-separated (default: every CPU, and 1)")
    ap.add_argument("--size", default="32MiB", help="buffer size (default 32MiB)")
    ap.add_argument("--json", action="store_true", help="print JSON at the end")
    ap.add_argument("--uniform", action="store_true",
                    help="then measure generate_uniform and its baselines (JSON: rows with "
                         "uniform_bytes)")
    ap.add_argument("--only-uniform", action="store_true", help="--uniform alone")
    ap.add_argument("--uniform-size", default="256MiB",
                    help="generate_uniform bytes per call (default 256MiB)")
    args = ap.parse_args()

    from dgen_py import get_system_info
    from dgen_py._units import parse_size

    try:
        args.size = parse_size(args.size)
        args.uniform_size = parse_size(args.uniform_size)
        args.threads = sorted({int(t) for t in args.threads.split(",")} if args.threads
                              else {get_system_info()["available_cpus"], 1}, reverse=True)
    except ValueError as e:
        ap.error(str(e))
    if args.threads[-1] < 1:
        ap.error(f"--threads must be 1 or more, got {args.threads[-1]}")
    if args.size < 4096 * args.threads[0]:
        ap.error(f"--size must be at least 4 KiB per thread ({4096 * args.threads[0]} "
                 f"bytes for {args.threads[0]} threads), got {args.size}")
    if args.uniform_size < 4:
        ap.error(f"--uniform-size must be at least 4 bytes, got {args.uniform_size}")
    if args.rounds < 1 or not args.seconds > 0:
        ap.error(f"--rounds must be 1 or more and --seconds above 0, got {args.rounds} "
                 f"and {args.seconds}")
    args.reference_version = "0.3.0 (reference)"
    if args.reference_python:
        try:
            out = subprocess.run(
                [args.reference_python, "-c",
                 "import importlib.metadata as m; print(m.version('dgen-py'))"],
                capture_output=True, text=True, cwd="/")
        except OSError as e:
            ap.error(f"--reference-python {args.reference_python}: {e.strerror}")
        if out.returncode != 0:
            ap.error(f"--reference-python {args.reference_python} has no dgen-py installed")
        args.reference_version = out.stdout.strip()
    args.live = sys.stderr if args.json else sys.stdout
    rows = [] if args.only_uniform else run(args)
    if args.uniform or args.only_uniform:
        urows = uniform_rows(args)
        print(uniform_report(urows), flush=True, file=args.live)
        rows += urows
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
