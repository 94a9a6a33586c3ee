"""benchmarks/io.py runs each job beside its peers and reports rates and the acceptance ratios."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert "pipe: dgen generate / head /dev/zero" in out and "(>= 0.8:" in out


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
