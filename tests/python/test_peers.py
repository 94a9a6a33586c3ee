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
