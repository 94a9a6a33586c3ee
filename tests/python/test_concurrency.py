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
        import mmap, sys, time, dgen_py
        # 6 GiB of untouched pages: only what the call writes before Ctrl-C becomes memory.
        buf = mmap.mmap(-1, 6 * 2**30)
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


def run_script(code: str, timeout: float = 60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


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


def test_a_small_call_does_not_wait_for_another_generators_large_one():
    # When the small call returns, the large one is provably running: its first bytes are
    # written and its last ones not yet (blocks are handed out in order). Before, calls on
    # the shared pool ran one at a time and the small one always waited for the large one.
    r = run_script("""
        import threading, dgen_py
        big = bytearray(768 << 20)            # ~0.25 s on the scalar path, 2 threads
        small = bytearray(2 << 20)
        first, last = memoryview(big)[:64], memoryview(big)[-64:]
        wins = 0
        for attempt in range(3):
            big[:64] = big[-64:] = bytes(64)
            t = threading.Thread(target=dgen_py.Generator(1 << 40, seed=1).fill_chunk,
                                 args=(big,))
            t.start()
            while not any(first) and t.is_alive():
                pass
            dgen_py.Generator(1 << 40, seed=2).fill_chunk(small)
            wins += not any(last)
            t.join()
        print(wins)
    """, env=dict(os.environ, DGEN_ISA="scalar"))
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) >= 2, f"the small call waited for the large one in {3 - int(r.stdout)} of 3"


def test_forks_under_load_never_hang_and_every_child_exits_promptly():
    # 2,000 forks while other threads generate, share a Verifier and so hold the pool and
    # locks. A child that inherited a busy condition variable hung; one that inherited the
    # parent's count of calls in flight waited 5 s at exit.
    r = run_script("""
        import atexit, os, signal, sys, threading, time, dgen_py
        shared = dgen_py.Generator(1 << 40, seed=1)
        v = shared.verifier()
        def load(k):
            buf = bytearray((3 << 20) + k)
            offset = 0
            while True:
                shared.fill_chunk(buf)
                dgen_py.Generator(1 << 30, seed=k).fill_chunk(buf)
                v.add(memoryview(buf)[:4096], offset)
                offset += 1 << 20
        for k in range(3):
            threading.Thread(target=load, args=(k,), daemon=True).start()
        time.sleep(0.2)
        worst, hung = 0.0, 0
        for k in range(2000):
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                g = dgen_py.Generator(1 << 30, seed=3)
                g.seek((1 << 20) - 4096)
                g.fill_chunk(bytearray(12288))        # straddles blocks: uses the pool
                if k % 200 == 0:
                    sys.exit(0)                      # a full interpreter exit
                atexit._run_exitfuncs()              # what exit does with dgen, quickly
                os._exit(0)
            while (got := os.waitpid(pid, os.WNOHANG)) == (0, 0):
                if time.monotonic() - t0 > 20:
                    os.kill(pid, signal.SIGKILL)
                    hung += 1
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.0005)
            else:
                assert got[1] == 0, got
            worst = max(worst, time.monotonic() - t0)
        print(hung, worst)
    """, timeout=180)
    assert r.returncode == 0, r.stderr
    hung, worst = r.stdout.split()
    assert hung == "0", "forked children hung"
    assert float(worst) < 2.0, f"a forked child took {float(worst):.2f}s to exit"


FORK_WHILE_LOCKED = """
    import os, signal, threading, time, dgen_py
    g = dgen_py.Generator(1 << 30, seed=1)
    v = g.verifier()
    junk = bytearray(b"\\x01" * (256 << 20))   # every byte differs: a slow add (~0.5 s)
    t = threading.Thread(target=v.add, args=(junk, 0))
    t.start()
    time.sleep(0.05)
    assert t.is_alive()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)                         # a hang ends the child
        CHILD
        os._exit(0)
    t.join()
    status = os.waitpid(pid, 0)[1]
    print(os.waitstatus_to_exitcode(status))
"""


def test_a_child_forked_while_a_verifier_is_locked_gets_a_clear_error():
    # Exit code 3: the clear error; 4: no error, the add had not taken the lock yet at the
    # fork (a loaded machine), so the parent tries again. A hang ends the child by SIGALRM.
    script = """
        import os, signal, threading, time, dgen_py
        g = dgen_py.Generator(1 << 30, seed=1)
        junk = bytearray(b"\\x01" * (256 << 20))   # every byte differs: a slow add (~0.5 s)
        for attempt in range(5):
            v = g.verifier()
            t = threading.Thread(target=v.add, args=(junk, 0))
            t.start()
            time.sleep(0.05)
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)
                try:
                    v.result
                    code = 4
                except RuntimeError as e:
                    print(e, flush=True)
                    code = 3 if "forked" in str(e) and "Verifier" in str(e) else 5
                fresh = g.verifier()                     # a new one works
                fresh.add(g.get_chunk(4096), 0)
                os._exit(code if fresh.result.ok else 6)
            t.join()
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            if code != 4:
                break
        print(code)
    """
    r = run_script(script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "3", r.stdout + r.stderr


def test_a_child_forked_while_a_verifier_is_locked_exits_promptly():
    r = run_script(FORK_WHILE_LOCKED.replace("CHILD", """import sys
        t0 = time.monotonic()
        import atexit; atexit._run_exitfuncs()
        print(time.monotonic() - t0, flush=True)"""))
    assert r.returncode == 0, r.stderr
    took, code = r.stdout.split()
    assert code == "0" and float(took) < 1.0, r.stdout


EXIT_WITH_DAEMONS = """
    import itertools, threading, time, dgen_py
    g = dgen_py.Generator(1 << 40, seed=1)
    v = g.verifier()
    junk = bytearray(b"\\x01" * (8 << 20))
    offsets = itertools.count(0, len(junk))
    def verifying(k):
        while True:                               # most of the time waiting for v's lock
            try:
                v.add(junk, next(offsets))
            except ValueError:                    # another thread's piece went first
                pass
    def generating():
        buf = bytearray(64 << 20)
        while True:
            g.fill_chunk(buf)
    for k in range(3):
        threading.Thread(target=verifying, args=(k,), daemon=True).start()
    for k in range(2):
        threading.Thread(target=generating, daemon=True).start()
    time.sleep(0.3)
    print("exiting", flush=True)
"""


def exits_cleanly_ten_times(script: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(10)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out == "exiting\n", err
        assert err == "", err                      # no abort, no traceback from a thread


def test_exit_with_daemon_threads_sharing_a_verifier_and_a_generator_is_clean():
    # Aborted ("terminate called without an active exception") in about half the runs.
    exits_cleanly_ten_times(EXIT_WITH_DAEMONS)


EXIT_IN_UNPOOLED_CALLS = """
    import threading, time, dgen_py
    from dgen_py import _core
    buf = bytearray(b"\\x01" * (256 << 20))
    g = dgen_py.Generator(1 << 40, seed=1, dedup_ratio=2, format_version=2, generation=3,
                          change_rate=0.5)
    def histogram():
        while True:
            _core.byte_histogram(buf)
    def changed():
        while True:
            g._s.changed_units(0, 1 << 20, 3)
    for target in (histogram, histogram, changed):
        threading.Thread(target=target, daemon=True).start()
    time.sleep(0.3)
    print("exiting", flush=True)
"""


def test_exit_with_daemon_threads_in_histogram_and_changed_units_calls_is_clean():
    # These calls release the GIL outside the pool: they too must park at exit.
    exits_cleanly_ten_times(EXIT_IN_UNPOOLED_CALLS)


def test_ctrl_c_interrupts_a_wait_for_a_verifiers_lock():
    r = run_script("""
        import os, signal, threading, time, dgen_py
        g = dgen_py.Generator(1 << 30, seed=1)
        v = g.verifier()
        junk = bytearray(b"\\x01" * (512 << 20))   # holds the lock for over a second
        holder = threading.Thread(target=v.add, args=(junk, 0))
        holder.start()
        time.sleep(0.3)                            # the holder has the lock by now
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            v.add(b"\\x00" * 100, 600 << 20)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted", "while held" if holder.is_alive() else "after")
        holder.join()
    """)
    assert r.stdout.strip() == "interrupted while held", r.stdout + r.stderr


def test_a_dgen_call_from_a_signal_handler_during_a_long_call_raises():
    r = run_script("""
        import signal, dgen_py
        other = dgen_py.Generator(1 << 30, seed=2)
        def handler(signum, frame):
            other.fill_chunk(bytearray(4 << 20))
        signal.signal(signal.SIGALRM, handler)
        buf = bytearray(768 << 20)                # ~0.25 s to fill on the scalar path
        g = dgen_py.Generator(1 << 40, seed=1)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            g.fill_chunk(buf)
            print("completed")
        except RuntimeError as e:
            print(e)
    """, timeout=30, env=dict(os.environ, DGEN_ISA="scalar"))
    assert r.returncode == 0, r.stderr
    assert "signal handler" in r.stdout and "fill" in r.stdout, r.stdout


@pytest.mark.parametrize("call", ["fill_chunk", "readinto", "get_chunk", "read", "seek",
                                  "verify"])
def test_a_closed_generator_raises_value_error(call):
    g = dgen_py.Generator(1 << 20, seed=1)
    g.close()
    args = {"fill_chunk": (bytearray(10),), "readinto": (bytearray(10),), "get_chunk": (10,),
            "read": (10,), "seek": (0,), "verify": (b"x",)}[call]
    with pytest.raises(ValueError, match="closed"):
        getattr(g, call)(*args)
    assert g.position() == 0


def test_the_exiting_threads_own_calls_still_run_in_atexit_handlers():
    # Handlers registered before dgen_py was imported run after its own exit hook.
    r = run_script("""
        import atexit
        atexit.register(lambda: print(len(dgen_py.generate_buffer(4 << 20, seed=1))))
        import dgen_py
    """)
    assert r.returncode == 0 and r.stdout.strip() == str(4 << 20), r.stdout + r.stderr


def test_a_child_forked_while_another_thread_holds_a_buffer_pools_lock_can_use_the_pool():
    r = run_script("""
        import os, threading, dgen_py
        pool = dgen_py.BufferPool(seed=1)
        held, done = threading.Event(), threading.Event()
        def hold():
            with pool._lock:  # as next_slice does, when the GIL moves to the forking thread
                held.set()
                done.wait()
        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(10)  # a hang ends the child with SIGALRM
            os._exit(0 if len(pool.next_slice(4096)) == 4096 else 1)
        done.set()
        print(os.waitpid(pid, 0)[1])
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"], "the child hung on the pool's lock"


def test_a_forked_child_pool_hands_out_other_data_than_its_parent():
    # "No two slices share data" across processes too: a child that went on where its
    # parent's pool stood would hand out the parent's next slices (pickling is refused
    # for that reason).
    r = run_script("""
        import os, dgen_py
        pool = dgen_py.BufferPool(seed=1)
        pool.next_slice(4096)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, bytes(pool.next_slice(4096)))
            os._exit(0)
        os.waitpid(pid, 0)
        child = os.read(read, 4096)
        mine = bytes(pool.next_slice(4096))
        print(len(child), child == mine, pool.seed)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["4096", "False", "1"], r.stdout
