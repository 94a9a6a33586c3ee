"""A hang fails the run with the test's name instead of stalling it (pytest-timeout)."""

import pathlib
import subprocess
import sys
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_test_has_a_timeout(request):
    assert 0 < float(request.config.getini("timeout")) <= 600
    assert request.config.getini("timeout_method") == "thread"


def test_a_test_hung_in_native_code_fails_with_its_name(tmp_path):
    # A wait that never returns to the interpreter: only the thread method ends it.
    (tmp_path / "test_hang.py").write_text(textwrap.dedent("""
        import threading
        def test_waits_forever():
            lock = threading.Lock(); lock.acquire(); lock.acquire()
    """))
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-o", "timeout=2",
         str(tmp_path / "test_hang.py")],
        capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "Timeout" in run.stdout + run.stderr
    assert "test_waits_forever" in run.stdout + run.stderr
    assert time.monotonic() - start < 60
