"""benchmarks/peers.py runs every peer it can find and reports positive rates."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dgen_py

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


def test_every_peer_is_measured_from_each_thread_count():
    # This interpreter's dgen stands in for the reference: it exercises the
    # other-interpreter path without needing dgen-py 0.3.0 installed.
    out = subprocess.run(
        [sys.executable, str(PEERS), "--reference-python", sys.executable, "--seconds", "0.2",
         "--rounds", "1", "--threads", "2,1", "--size", "1MiB", "--json"],
        capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    ref = f"dgen-py {dgen_py.__version__}"
    for threads in (1, 2):
        names = {(r["compress_ratio"], r["dedup_ratio"], r["peer"]) for r in rows
                 if r["threads"] == threads}
        assert names == {(1, 1, "memset (baseline)"), (1, 1, ref), (1, 1, "fio refill_buffers"),
                         (1, 1, "numpy Generator.bytes"), (1, 1, "os.urandom"),
                         (2, 2, "memset (baseline)"), (2, 2, ref), (2, 2, "fio refill_buffers")}
    for r in rows:
        if r["peer"].startswith("fio") and shutil.which("fio") is None:
            assert r["ratio"] is None and "not available" in r["note"]
            continue
        assert r["peer_gbps"] > 0 and r["dgen_gbps"] > 0, r
        # The GB/s are rounded to 0.01, the ratio comes from the unrounded medians.
        slack = r["ratio"] * (0.005 / r["peer_gbps"] + 0.005 / r["dgen_gbps"]) + 0.0005
        assert abs(r["ratio"] - r["dgen_gbps"] / r["peer_gbps"]) <= slack


def test_fio_refills_size_in_all_from_its_jobs():
    spec = importlib.util.spec_from_file_location("peers", PEERS)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    cmd = peers.fio_command(threads=4, compress=2, dedup=2, size=32 << 20, seconds=1)
    assert {"--refill_buffers", "--ioengine=null", "--numjobs=4", f"--bs={8 << 20}",
            "--buffer_compress_percentage=50", "--dedupe_percentage=50"} <= set(cmd)


def test_a_reference_without_dgen_is_a_usage_error():
    out = subprocess.run([sys.executable, str(PEERS), "--reference-python", "/bin/false"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "has no dgen-py installed" in out.stderr


def load_peers():
    spec = importlib.util.spec_from_file_location("peers", PEERS)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    return peers


def test_rows_give_min_median_max_and_gb_per_cpu_second_of_both_sides():
    out = subprocess.run(
        [sys.executable, str(PEERS), "--reference-python", sys.executable, "--seconds", "0.05",
         "--rounds", "3", "--threads", "1", "--size", "1MiB", "--json"],
        capture_output=True, text=True, check=True)
    rows = [r for r in json.loads(out.stdout) if r["ratio"] is not None]
    assert {r["peer"] for r in rows} >= {"memset (baseline)", f"dgen-py {dgen_py.__version__}",
                                          "numpy Generator.bytes", "os.urandom"}
    for r in rows:
        for side in ("peer", "dgen"):
            assert 0 < r[f"{side}_gbps_min"] <= r[f"{side}_gbps"] <= r[f"{side}_gbps_max"], r
            assert r[f"{side}_gb_per_cpu_s"] > 0, r
        assert r["cpu_ratio"] > 0
    # The live table (on stderr with --json) has its header before any row.
    lines = out.stderr.splitlines()
    assert "GB/CPU-s" in lines[0] and "per CPU-s" in lines[0] and len(lines) > len(rows)
    assert all("(" in line and "-" in line for line in lines[1:] if "not available" not in line)


def test_cpu_time_counts_every_thread_of_the_process():
    import hashlib
    import threading
    import time

    peers = load_peers()
    burned = []

    def work():  # hashing releases the GIL: two threads burn CPU at once
        t0, data = time.thread_time(), bytes(1 << 16)
        while time.thread_time() - t0 < 0.1:
            hashlib.sha256(data).digest()
        burned.append(time.thread_time() - t0)

    c0 = peers.cpu_seconds()
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peers.cpu_seconds() - c0 >= 0.99 * sum(burned)


def test_fio_cpu_time_is_its_jobs_own_account(monkeypatch):
    peers = load_peers()
    report = {"jobs": [{"usr_cpu": 150.0, "sys_cpu": 50.0, "job_runtime": 2000,
                        "write": {"bw_bytes": 4e9, "io_bytes": 8e9}}]}

    def fake_run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 0, json.dumps(report), "")
    monkeypatch.setattr(peers.subprocess, "run", fake_run)
    assert peers.fio_rate(2, 1, 1, 1 << 20, 1.0) == (4.0, 2.0)  # 8 GB in 4 CPU-seconds


def test_the_table_starts_before_the_first_row_is_measured():
    import select

    # Each row takes 2 x 60 s here: the header must come long before (20 s: start-up on a
    # loaded machine), not with the first row.
    p = subprocess.Popen([sys.executable, str(PEERS), "--seconds", "60", "--rounds", "1",
                          "--threads", "1", "--size", "1MiB"], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert select.select([p.stdout], [], [], 20)[0], "no header within 20 s"
        assert "peer GB/s" in p.stdout.readline()
    finally:
        p.kill()
        p.wait()
