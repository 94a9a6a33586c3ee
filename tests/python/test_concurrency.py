"""Threads, fork and Ctrl-C: one Generator shared safely, no hangs."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import dgen_py
from conftest import reference


def test_threads_sharing_a_generator_cover_the_dataset_exactly_once():
    size, chunk = 16 * 2**20 + 12_345, 192 * 1024 + 7
    g = dgen_py.Generator(size, 2, 2, seed=11)
    ref = reference(size, 11, 2, 2)
    expected = {ref[o:o + chunk]: o for o in range(0, size, chunk)}
    got: list[bytes] = []
    lock = threading.Lock()

    def reader():
        buf = bytearray(chunk)
        while (n := g.fill_chunk(buf)) > 0:
            with lock:
                got.append(bytes(buf[:n]))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    offsets = sorted(expected[c] for c in got)  # KeyError: a chunk from no claimed range
    assert offsets == sorted(expected.values())  # every range once, none twice
    assert g.is_complete()


def _child_uses_generators(g, q):
    buf = bytearray(4 * 2**20)
    g.reset()
    g.fill_chunk(buf)
    fresh = dgen_py.generate_buffer(4 * 2**20, 2, 2, seed=g.seed)
    q.put((bytes(buf[:64]), bytes(fresh)[:64]))


def test_a_forked_child_uses_a_generator_made_before_the_fork():
    g = dgen_py.Generator(4 * 2**20, 2, 2, seed=21)
    g.fill_chunk(bytearray(4 * 2**20))  # the parent's worker threads are running now
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_uses_generators, args=(g, q))
    p.start()
    p.join(timeout=30)
    if p.is_alive():
        p.kill()
        pytest.fail("forked child hung")
    assert p.exitcode == 0
    a, b = q.get(timeout=5)
    assert a == b == reference(4 * 2**20, 21, 2, 2)[:64]
    g.reset()  # and the parent still works
    assert bytes(g.get_chunk(64)) == a


def test_ctrl_c_interrupts_a_long_call_within_a_second():
    script = textwrap.dedent("""
        import sys, time, dgen_py
        buf = bytearray(6 * 2**30)
        g = dgen_py.Generator(len(buf), seed=1, max_threads=1)
        print("start", flush=True)
        t0 = time.monotonic()
        try:
            g.fill_chunk(buf)
            print("completed", time.monotonic() - t0, flush=True)
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
    """)
    env = dict(os.environ, DGEN_ISA="scalar")  # the slow path: the call lasts seconds
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                         env=env)
    assert p.stdout.readline().strip() == "start"
    time.sleep(0.5)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert out.startswith("interrupted"), out
    latency = float(out.split()[1]) - sent  # CLOCK_MONOTONIC is shared by processes
    assert latency < 1.0, f"took {latency:.2f}s to stop"


def run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


BUSY_THREAD = """
    import os, threading, time, dgen_py
    big = dgen_py.Generator(1 << 40, seed=1)
    def busy():
        buf = bytearray(512 << 20)
        while True:
            big.fill_chunk(buf)  # the pool stays busy, polling for Ctrl-C under the GIL
    threading.Thread(target=busy, daemon=True).start()
    time.sleep(0.3)
"""


def test_small_calls_do_not_deadlock_behind_a_busy_pool():
    out = run_script(BUSY_THREAD + """
    small = dgen_py.Generator(1 << 40, seed=2)
    buf = bytearray(200 << 10)
    for _ in range(300):
        small.seek((1 << 20) - (100 << 10))  # straddles a block: needs the pool
        small.fill_chunk(buf)
    print("done")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


def test_fork_while_another_thread_is_mid_call():
    out = run_script(BUSY_THREAD + """
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            g = dgen_py.Generator(1 << 30, seed=3)
            g.fill_chunk(bytearray(8 << 20))
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    print("done")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


def test_exit_with_a_daemon_thread_inside_a_call_is_clean():
    out = run_script(BUSY_THREAD + "    print('exiting')\n")
    assert out.returncode == 0, out.stderr
    assert "terminate" not in out.stderr and "Fatal" not in out.stderr


def test_an_interrupted_or_failed_read_gives_its_range_back():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import _thread, threading, dgen_py
        g = dgen_py.Generator(1 << 40, seed=4, max_threads=1)
        threading.Timer(0.2, _thread.interrupt_main).start()
        try:
            g.fill_chunk(bytearray(2 << 30))  # seconds on the scalar path
            print("completed")
        except KeyboardInterrupt:
            print("interrupted", g.position())
    """)], capture_output=True, text=True, timeout=60, env=dict(os.environ, DGEN_ISA="scalar"))
    assert out.stdout.split() == ["interrupted", "0"], out.stdout + out.stderr
    g = dgen_py.Generator(1 << 40, seed=4)
    with pytest.raises(MemoryError):
        g.get_chunk(2**61)
    assert g.position() == 0


def test_a_verifier_shared_by_threads_does_not_deadlock():
    # A long add() holds the verifier without the GIL and takes the GIL to poll for Ctrl-C;
    # a small add() or `result` from another thread meanwhile must wait without the GIL.
    r = run_script("""
        import threading, time, dgen_py
        g = dgen_py.Generator(64 << 20, seed=1)
        for other in ("result", "small add"):
            v = g.verifier()
            junk = bytearray(b"\\x01" * (32 << 20))   # every byte differs: a slow add
            t = threading.Thread(target=v.add, args=(junk, 0))
            t.start()
            time.sleep(0.002)
            if other == "result":
                v.result
            else:
                v.add(b"\\x00" * 100, 40 << 20)
            t.join()
            assert v.result.bytes == (32 << 20) + (100 if other == "small add" else 0)
        print("ok")
    """, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
