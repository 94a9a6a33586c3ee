"""benchmarks/io.py runs each job beside its peers and reports rates and the acceptance ratios."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgen_py.bench import io as io_bench

IO = Path(__file__).resolve().parents[2] / "benchmarks" / "io.py"


def run(tmp_path, *args):
    r = subprocess.run([sys.executable, str(IO), "--dir", str(tmp_path), "--size", "1MiB",
                        "--bs", "64KiB", "--pipe-size", "1MiB", "--rounds", "1", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_io_bench_reports_every_job_beside_its_peers_and_cleans_up(tmp_path):
    (tmp_path / "dgen-data").mkdir()  # the user's, with names like the benchmark's
    (tmp_path / "dgen-data" / "keep").write_bytes(b"k")
    (tmp_path / "fio-1.cfg").write_text("keep")
    r = json.loads(run(tmp_path, "--json"))
    fio = shutil.which("fio") is not None
    rows = {case: set(v["rows"]) for case, v in r["cases"].items()}
    assert rows == {"write2": {"dgen"} | ({"fio refill", "fio no refill"} if fio else set()),
                    "write1": {"dgen"} | ({"fio refill"} if fio else set()),
                    "pipe": {"dgen", "head"},
                    "verify2": {"dgen"} | ({"fio read"} if fio else set()),
                    "verify1": {"dgen"} | ({"fio read"} if fio else set())}
    for case in r["cases"].values():
        for row in case["rows"].values():
            assert row["gb_per_s"][0] > 0 and row["gb_per_cpu_s"] > 0
    named = {x["what"] for x in r["acceptance"]}
    assert "pipe: dgen generate / head /dev/zero" in named
    assert len(named) == (6 if fio else 1)
    # Its files are gone, the user's are left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dgen-data", "fio-1.cfg"]
    assert (tmp_path / "dgen-data" / "keep").read_bytes() == b"k"


def test_io_bench_prints_the_acceptance_ratios(tmp_path):
    out = run(tmp_path, "--only", "pipe")
    assert "pipe: dgen generate / head /dev/zero" in out and "(dgen aims for >= 0.8)" in out
    assert "one round: how much the figures vary is not known" in out


DGEN = [sys.executable, "-m", "dgen_py"]


def test_dgen_bench_io_runs_the_same_benchmark_on_the_directory_named(tmp_path):
    r = subprocess.run([*DGEN, "bench", "--io", str(tmp_path), "--size", "2MiB", "--rounds",
                        "1", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["dir"] == str(tmp_path) and set(out["cases"]) == {"write2", "write1", "pipe",
                                                                 "verify2", "verify1"}
    assert out["cases"]["pipe"]["bytes"] == 4 << 20
    assert list(tmp_path.iterdir()) == []


def test_without_fio_the_dgen_rows_are_printed_and_its_absence_named(tmp_path):
    tools = tmp_path / "bin"  # the shell's tools, and no fio
    tools.mkdir()
    for name in ("cat", "head"):
        (tools / name).symlink_to(shutil.which(name))
    data = tmp_path / "data"
    data.mkdir()
    r = subprocess.run([*DGEN, "bench", "--io", str(data), "--size", "2MiB", "--rounds", "1"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PATH": str(tools)})
    assert r.returncode == 0, r.stderr
    assert "fio not found on PATH" in r.stdout and "fio refill" not in r.stdout
    assert "write2 (2 MiB):\n  dgen " in r.stdout and "pipe: dgen generate / head" in r.stdout


def test_dgen_bench_io_refuses_what_it_cannot_run(tmp_path):
    for args, named in ((["--io", str(tmp_path / "none")], "--io"),
                        (["--io", str(tmp_path), "--threads", "2"], "--threads"),
                        (["--direct"], "--direct")):
        r = subprocess.run([*DGEN, "bench", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.startswith(f"dgen: error: {named}"), r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_bench_io_removes_its_files_when_stopped_by_a_signal(tmp_path, sig):
    p = subprocess.Popen([*DGEN, "bench", "--io", str(tmp_path), "--size", "64MiB",
                          "--rounds", "1000"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob("dgen-bench-*/*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(tmp_path.glob("dgen-bench-*/*")), "the benchmark wrote nothing"
        time.sleep(0.3)  # a job runs now
        p.send_signal(sig)
        p.wait(timeout=30)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 128 + sig or p.returncode == -sig or p.returncode == 130
    time.sleep(0.5)  # a job left running would write on
    assert list(tmp_path.iterdir()) == []


def processes_naming(path, program=b"") -> list[int]:
    """The processes whose command line names `path` (and starts with `program`)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read()
        except OSError:
            continue
        if str(path).encode() in line and line.startswith(program):
            found.append(int(pid))
    return found


@pytest.mark.skipif(not shutil.which("fio"), reason="needs fio")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_bench_io_stopped_while_fio_runs_leaves_no_fio_behind(tmp_path, sig):
    # fio's job processes start sessions of their own: killing fio's process group alone
    # left them waiting forever on their dead parent.
    p = subprocess.Popen([*DGEN, "bench", "--io", str(tmp_path), "--size", "64MiB",
                          "--rounds", "1000"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(processes_naming(tmp_path, b"fio")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # fio and its job
        assert len(processes_naming(tmp_path, b"fio")) >= 2, "fio never ran"
        p.send_signal(sig)
        p.wait(timeout=30)
        time.sleep(0.5)
        assert processes_naming(tmp_path) == []
        assert list(tmp_path.iterdir()) == []
    finally:
        p.kill()
        p.wait()
        for pid in processes_naming(tmp_path):  # none are left to other tests
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not shutil.which("fio"), reason="needs fio")
def test_a_directory_name_with_a_colon_reaches_fio_whole(tmp_path):
    where = tmp_path / "a:b"
    where.mkdir()
    out = json.loads(run(where, "--only", "write1", "--json"))
    assert set(out["cases"]["write1"]["rows"]) == {"dgen", "fio refill"}
    assert list(where.iterdir()) == [] and sorted(tmp_path.iterdir()) == [where]


@pytest.mark.parametrize("direct, factor", [(False, 4), (True, 6)])
def test_bench_io_asks_for_the_free_space_its_files_take(tmp_path, monkeypatch, direct,
                                                         factor):
    size = 1 << 30
    real = os.statvfs

    def free(bytes_):
        st = real(tmp_path)
        monkeypatch.setattr(os, "statvfs", lambda p: os.statvfs_result(
            (st.f_bsize, 4096, st.f_blocks, bytes_ // 4096, bytes_ // 4096, st.f_files,
             st.f_ffree, st.f_favail, st.f_flag, st.f_namemax)))
    a = io_bench.options(tmp_path, size=size, direct=direct)
    free(factor * size)
    io_bench.check(a)
    free(factor * size - 4096)
    with pytest.raises(ValueError, match=f"this run needs {factor} GiB"):
        io_bench.check(a)


def test_bench_io_gives_ratios_with_a_noise_warning_not_a_verdict():
    case = {"bytes": 1, "rows": {
        "dgen": {"command": "x", "gb_per_s": [1.0, 1.5, 2.0], "median": 1.5, "gb_per_cpu_s": 1},
        "head": {"command": "y", "gb_per_s": [1.0, 1.05, 1.1], "median": 1.05,
                 "gb_per_cpu_s": 1}}}
    warnings = io_bench.noise({"pipe": case})
    assert warnings == ["pipe, dgen: rounds vary 2x (max/min); a busy machine or a varying "
                        "clock: rerun on a quiet one before trusting its ratios"]
    r = {"dir": "/d", "rounds": 3, "load_average": (0.5, 0, 0), "fio": True,
         "cases": {"pipe": case}, "warnings": warnings,
         "acceptance": [{"what": "pipe: dgen generate / head /dev/zero", "ratio": 0.7,
                         "at_least": 0.8, "met": False}]}
    out = io_bench.report(r)
    assert "met" not in out
    assert "  pipe: dgen generate / head /dev/zero          0.70  (dgen aims for >= 0.8)" in out
    assert out.endswith("\nwarning: " + warnings[0])


def test_bench_io_help_says_what_the_docs_and_the_check_say():
    words = " ".join(subprocess.run([*DGEN, "bench", "--help"], capture_output=True,
                                    text=True).stdout.split())
    assert "beside fio and head -c N /dev/zero | cat" in words
    assert "With --io the files go to DIR (4 x --size, 6 x with --direct, must be free)" \
        in words
    docs = " ".join((Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
                    .split())
    assert "DIR needs 4 times it free (6 times with `--direct`)" in docs
    assert "`head -c N /dev/zero | cat`" in docs
