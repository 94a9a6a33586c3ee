"""benchmarks/peers.py runs every peer it can find and reports positive rates."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dgen_py

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


def test_every_peer_is_measured():
    # This interpreter's dgen stands in for the reference: it exercises the
    # other-interpreter path without needing dgen-py 0.3.0 installed.
    out = subprocess.run(
        [sys.executable, str(PEERS), "--reference-python", sys.executable, "--seconds", "0.2",
         "--rounds", "1", "--threads", "1", "--size", "1MiB", "--json"],
        capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    names = {(r["compress_ratio"], r["dedup_ratio"], r["peer"]) for r in rows}
    ref = f"dgen-py {dgen_py.__version__}"
    assert names >= {(1, 1, "memset (ceiling)"), (1, 1, ref), (1, 1, "numpy Generator.bytes"),
                     (1, 1, "os.urandom"), (2, 2, "memset (ceiling)"), (2, 2, ref),
                     (1, 1, "fio refill_buffers"), (2, 2, "fio refill_buffers")}
    for r in rows:
        if r["peer"].startswith("fio") and shutil.which("fio") is None:
            assert r["ratio"] is None
            continue
        assert r["peer_gbps"] > 0 and r["dgen_gbps"] > 0
        # The GB/s are rounded to 0.01, the ratio comes from the unrounded medians.
        slack = r["ratio"] * (0.005 / r["peer_gbps"] + 0.005 / r["dgen_gbps"]) + 0.0005
        assert abs(r["ratio"] - r["dgen_gbps"] / r["peer_gbps"]) <= slack
