"""dgen's I/O jobs beside fio and the pipe ceiling, on one machine in one run.

    dgen bench --io DIR [--size 2GiB] [--rounds 3] [--direct] [--json]
    python benchmarks/io.py [--dir /dev/shm] [--size 2GiB] [--pipe-size 4GiB] [--rounds 3]
                            [--bs 1MiB] [--dedup-ratio 1] [--compress-ratio 1] [--direct]
                            [--dgen "CMD"] [--json]

Cases, each run in alternating rounds (every command once per round), whole commands timed
(wall clock, and CPU seconds of the children: getrusage(RUSAGE_CHILDREN), so a pipe counts
both ends):
- write, 2 files, 2 jobs: `dgen write --files 2 --jobs 2` beside fio --rw=write
  --ioengine=psync --numjobs=2 with --refill_buffers (fresh data per write, as dgen makes)
  and without (one buffer written again and again: the I/O ceiling);
- write, 1 file, 1 job: the same with one job;
- pipe: `dgen generate --size N | cat > /dev/null` beside `head -c N /dev/zero | cat > /dev/null`;
- verify, 2 files: `dgen verify` of the 2-file dataset beside fio --rw=read --numjobs=2
  (which reads without checking); verify, 1 file: the 1-file dataset (checked in parts by
  every thread) beside one fio --rw=read job;
- with --direct, write and verify with O_DIRECT beside fio --direct=1 (the directory's
  filesystem must support it).
fio gets the same sizes, jobs and block size (--bs, dgen's own chunk being cache-sized) and
the ratios as --buffer_compress_percentage / --dedupe_percentage. Files are written once
before the timed rounds, so every timed write overwrites in place, dgen's as fio's. Each
row gives GB/s (10^9 bytes/s) min/median/max over the rounds and GB per CPU-second
(median); the end gives the ratios dgen aims for (those the acceptance of issue 14 names),
from the medians, and a warning for every row whose rounds vary by more than 1.2x.
`--dgen` replaces the dgen command (default: this Python's `-m dgen_py`), to compare builds.
Without fio on PATH its rows are left out, and the run says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from .. import _core
from .._units import human, parse_size
from . import noisy

# (name, case, numerator row, denominator row, at least)
ACCEPTANCE = [
    ("write 2 jobs: dgen / fio refill", "write2", "dgen", "fio refill", 1.3),
    ("write 2 jobs: dgen / fio no refill", "write2", "dgen", "fio no refill", 0.7),
    ("write 1 job: dgen / fio refill", "write1", "dgen", "fio refill", 1.3),
    ("pipe: dgen generate / head /dev/zero", "pipe", "dgen", "head", 0.8),
    ("verify 2 files: dgen / fio read", "verify2", "dgen", "fio read", 0.9),
    ("verify 1 file: dgen / fio read", "verify1", "dgen", "fio read", 0.9),
    ("O_DIRECT write: dgen / fio --direct=1", "direct", "dgen write", "fio write", 1.0),
    ("O_DIRECT verify: dgen / fio --direct=1 read", "direct", "dgen verify", "fio read", 1.0),
]


# Free space a run needs, in --size: dgen's and fio's datasets of 2 files and of 1 file,
# and with --direct their O_DIRECT files too.
SPACE, SPACE_DIRECT = 4, 6

NO_FIO = ("fio not found on PATH: its rows and the ratios against it are left out "
          "(apt-get install fio)")


def timed(cmd: str) -> tuple[float, float]:
    """(seconds, CPU seconds of the children) of one shell command. It runs in a process
    group of its own, killed whole with every process it started when this one stops (an
    error, Ctrl-C, SIGTERM), so that nothing writes on into the directory being removed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        err = p.communicate()[1]
    except BaseException:
        kill_tree(p.pid)
        p.wait()
        raise
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise OSError(f"`{cmd}` failed ({p.returncode}): {err.decode().strip()[-300:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def kill_tree(leader: int) -> None:
    """SIGKILL the process group of `leader` and every process below it, also those in
    sessions of their own: fio's job processes call setsid(), and outlive a killed group
    waiting forever on their parent. The group is stopped first, so that none starts one
    more while the tree is read from /proc."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGSTOP)
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])  # after the name: state, ppid
            children.setdefault(parent, []).append(int(pid))
    below, todo = [], [leader]
    while todo:
        below += (found := children.get(todo.pop(), []))
        todo += found
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGKILL)


def percent(ratio: float) -> int:
    """fio's share of compressible or duplicate content for a ratio: 1 - 1/ratio."""
    return round(100 * (1 - 1 / ratio))


def options(directory="/dev/shm", size=2 << 30, pipe_size=4 << 30, rounds=3, bs=1 << 20,
            dedup_ratio=1.0, compress_ratio=1.0, direct=False, only=None, dgen=None):
    """The settings of one run, as main() parses them; checked by check()."""
    return argparse.Namespace(
        dir=os.path.abspath(directory), size=size, pipe_size=pipe_size, rounds=rounds, bs=bs,
        dedup_ratio=dedup_ratio, compress_ratio=compress_ratio, direct=direct, only=only,
        dgen=dgen or f"{shlex.quote(sys.executable)} -m dgen_py")


def check(a) -> None:
    """ValueError naming what is wrong with the settings, or the room in a.dir."""
    if a.rounds < 1 or a.pipe_size < 1 or a.bs < 4096 or a.size < 2 * a.bs:
        raise ValueError("--rounds must be >= 1, --pipe-size >= 1, --bs >= 4096 and --size "
                         "at least 2 * --bs (each fio job writes at least one block)")
    if not os.path.isdir(a.dir):
        raise ValueError(f"--io (--dir): {a.dir!r} is not a directory")
    st = os.statvfs(a.dir)
    need = (SPACE_DIRECT if a.direct else SPACE) * a.size
    if st.f_bavail * st.f_frsize < need:
        raise ValueError(f"{a.dir} has {human(st.f_bavail * st.f_frsize)} free; this run "
                         f"needs {human(need)}")


def cases(a) -> dict[str, dict]:
    """{case: {"bytes": n, "setup": [commands], "rows": {name: command}}}."""
    dgen = a.dgen
    ident = f"--seed 1 --dedup-ratio {a.dedup_ratio:g} --compress-ratio {a.compress_ratio:g}"
    d = shlex.quote(a.dir)
    # fio splits --directory at ':' (a list of directories) unless it is escaped.
    fio = (f"fio --ioengine=psync --directory={shlex.quote(a.dir.replace(':', chr(92) + ':'))} "
           f"--group_reporting "
           f"--buffer_compress_percentage={percent(a.compress_ratio)} "
           f"--dedupe_percentage={percent(a.dedup_ratio)}")

    def fio_job(name, jobs, rw, extra="", bs=a.bs):
        return (f"{fio} --bs={bs} --name={name} --filename_format='{name}.$jobnum' "
                f"--numjobs={jobs} --size={a.size // jobs} --rw={rw} {extra}")
    w2 = f"{dgen} write {d}/dgen-2 --size {a.size} --files 2 --jobs 2 --force {ident}"
    w1 = f"{dgen} write {d}/dgen-1 --size {a.size} {ident}"
    out = {
        "write2": {"bytes": a.size, "setup": [w2, fio_job("fio-2", 2, "write")], "rows": {
            "dgen": w2,
            "fio refill": fio_job("fio-2", 2, "write", "--refill_buffers"),
            "fio no refill": fio_job("fio-2", 2, "write")}},
        "write1": {"bytes": a.size, "setup": [w1, fio_job("fio-1", 1, "write")], "rows": {
            "dgen": w1,
            "fio refill": fio_job("fio-1", 1, "write", "--refill_buffers")}},
        "pipe": {"bytes": a.pipe_size, "setup": [], "rows": {
            "dgen": f"{dgen} generate --size {a.pipe_size} {ident} | cat > /dev/null",
            "head": f"head -c {a.pipe_size} /dev/zero | cat > /dev/null"}},
        "verify2": {"bytes": a.size, "setup": [w2, fio_job("fio-2", 2, "write")], "rows": {
            "dgen": f"{dgen} verify {d}/dgen-2",
            "fio read": fio_job("fio-2", 2, "read")}},
        # One file checked by every thread in parts, beside one fio job reading it.
        "verify1": {"bytes": a.size, "setup": [w1, fio_job("fio-1", 1, "write")], "rows": {
            "dgen": f"{dgen} verify {d}/dgen-1",
            "fio read": fio_job("fio-1", 1, "read")}},
    }
    if a.direct:
        # fio's block size is dgen's O_DIRECT request size here: its cache-sized chunk.
        wd = f"{dgen} write {d}/dgen-d --size {a.size} --direct {ident}"
        bs = _core.write_chunk()
        out["direct"] = {"bytes": a.size, "setup": [wd, fio_job("fio-d", 1, "write", bs=bs)],
                         "rows": {"dgen write": wd,
                                  "fio write": fio_job("fio-d", 1, "write",
                                                       "--direct=1 --refill_buffers", bs=bs),
                                  "dgen verify": f"{dgen} verify {d}/dgen-d --direct",
                                  "fio read": fio_job("fio-d", 1, "read", "--direct=1",
                                                      bs=bs)}}
    if not shutil.which("fio"):
        for case in out.values():
            case["rows"] = {k: v for k, v in case["rows"].items() if not k.startswith("fio")}
            case["setup"] = [c for c in case["setup"] if not c.startswith("fio")]
    return {k: v for k, v in out.items() if not a.only or k in a.only}


def run(a) -> dict:
    """Every case of a (see options()) in alternating rounds, in a directory of its own made
    under a.dir and removed after (nothing else there is touched)."""
    mine = argparse.Namespace(**{**vars(a), "dir": tempfile.mkdtemp(prefix="dgen-bench-",
                                                                     dir=a.dir)})
    terminated = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends the run as Ctrl-C does, through the finally below.
        def stop(signum, frame):
            raise SystemExit(128 + signum)
        terminated = signal.signal(signal.SIGTERM, stop)
    try:
        return {**_run(mine), "dir": a.dir}
    finally:
        shutil.rmtree(mine.dir)
        if terminated is not None:
            signal.signal(signal.SIGTERM, terminated)


def _run(a) -> dict:
    plan = cases(a)
    results = {}
    for name, case in plan.items():
        for cmd in case["setup"]:  # files exist before the timed rounds
            timed(cmd)
        samples = {row: [] for row in case["rows"]}
        for _ in range(a.rounds):
            for row, cmd in case["rows"].items():
                samples[row].append(timed(cmd))
        n = case["bytes"]
        results[name] = {"bytes": n, "rows": {row: {
            "command": case["rows"][row],
            "gb_per_s": sorted(n / max(s, 1e-9) / 1e9 for s, _ in v),
            "gb_per_cpu_s": statistics.median(n / max(c, 1e-9) / 1e9 for _, c in v),
        } for row, v in samples.items()}}
        for row in results[name]["rows"].values():
            row["median"] = statistics.median(row["gb_per_s"])
    ratios = []
    for label, case, top, bottom, need in ACCEPTANCE:
        rows = results.get(case, {}).get("rows", {})
        if top in rows and bottom in rows:
            r = rows[top]["median"] / rows[bottom]["median"]
            ratios.append({"what": label, "ratio": r, "at_least": need, "met": r >= need})
    return {"dir": a.dir, "rounds": a.rounds, "load_average": os.getloadavg(),
            "fio": shutil.which("fio") is not None, "cases": results, "acceptance": ratios,
            "warnings": noise(results)}


def noise(cases: dict) -> list[str]:
    """A warning for every row whose rounds vary by more than bench.NOISY (max/min): the
    ratios it enters are not to be trusted, as `dgen bench` says of its own."""
    out = []
    for name, case in cases.items():
        for row, v in case["rows"].items():
            if found := noisy({row: (v["gb_per_s"][0], v["median"], v["gb_per_s"][-1])}):
                out.append(f"{name}, {row}: rounds vary {found[1]:g}x (max/min); a busy "
                           f"machine or a varying clock: rerun on a quiet one before "
                           f"trusting its ratios")
    return out


def report(r: dict) -> str:
    lines = [f"{r['dir']}, {r['rounds']} alternating rounds, load average "
             f"{r['load_average'][0]:.1f} (GB/s min / median / max; GB per CPU-second, "
             f"median)"]
    if not r["fio"]:
        lines.append(NO_FIO)
    for name, case in r["cases"].items():
        lines.append(f"{name} ({human(case['bytes'])}):")
        for row, v in case["rows"].items():
            g = v["gb_per_s"]
            lines.append(f"  {row:14} {g[0]:6.2f} / {v['median']:6.2f} / {g[-1]:6.2f} GB/s"
                         f"   {v['gb_per_cpu_s']:6.2f} GB/cpu-s")
    lines.append("ratios of medians (one run on a busy machine proves little: see the "
                 "warnings)" if r.get("warnings") else "ratios of medians:")
    for x in r["acceptance"]:
        lines.append(f"  {x['what']:44} {x['ratio']:5.2f}  (dgen aims for >= "
                     f"{x['at_least']:g})")
    if r["rounds"] == 1:
        lines.append("one round: how much the figures vary is not known (give --rounds)")
    lines += [""] * bool(r.get("warnings")) + [f"warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)


def execute(a, as_json: bool, prog: str) -> int:
    """check(a), run it, print the result as JSON or the report (prog names the command
    in the note that fio is missing, which the report itself gives otherwise)."""
    check(a)
    if as_json and not shutil.which("fio"):
        print(f"{prog}: {NO_FIO}", file=sys.stderr)
    r = run(a)
    print(json.dumps(r, indent=2) if as_json else report(r))
    return 0


def main(argv=None) -> int:
    d = options()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=d.dir, help=f"where the files go (default {d.dir})")
    p.add_argument("--size", type=parse_size, default=d.size, help="dataset bytes (2GiB)")
    p.add_argument("--pipe-size", type=parse_size, default=d.pipe_size, help="bytes piped (4GiB)")
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--bs", type=parse_size, default=d.bs,
                   help="fio's block size (default 1MiB; given to fio in bytes, since fio "
                   "reads 1MiB as 10^6)")
    p.add_argument("--dedup-ratio", type=float, default=1.0)
    p.add_argument("--compress-ratio", type=float, default=1.0)
    p.add_argument("--direct", action="store_true", help="also O_DIRECT write and verify")
    p.add_argument("--only", nargs="*", help="cases to run: write2 write1 pipe verify2 verify1 direct")
    p.add_argument("--dgen", default=d.dgen,
                   help="the dgen command (default: this Python's -m dgen_py)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    a.dir = os.path.abspath(a.dir)
    try:
        check(a)
    except ValueError as e:
        p.error(str(e))
    return execute(a, a.json, "io.py")
