"""Requests for more memory than can be had raise MemoryError, whatever the kernel's
overcommit setting; streaming needs constant memory."""

import os
import resource
import subprocess
import sys
import textwrap
import uuid

import pytest

import dgen_py
from dgen_py import _core

from test_cli import DGEN

MiB, GiB = 2**20, 2**30


def headroom() -> int:
    available = dgen_py.get_system_info()["memory_available"]
    assert available is not None  # MemAvailable is always there on Linux
    return available


def too_much() -> int:
    """More than this machine can give, however large it is."""
    return 2 * headroom() + GiB


@pytest.mark.parametrize("call", [
    lambda n: dgen_py.generate_buffer(n),
    lambda n: dgen_py.generate_data(n, 2.0, 2.0, seed=1),
    lambda n: dgen_py.Generator(2**62, seed=1).get_chunk(n),
    lambda n: dgen_py.create_bytearrays(4, n // 4 + 1),
], ids=["generate_buffer", "generate_data", "get_chunk", "create_bytearrays"])
def test_asking_more_than_available_raises_memory_error_naming_the_limit(call):
    n = too_much()
    with pytest.raises(MemoryError, match=r"^asked .* available \(MemAvailable .*\)"):
        call(n)


def test_a_refused_chunk_leaves_the_stream_where_it_was():
    g = dgen_py.Generator(2**62, seed=1)
    g.get_chunk(4096)
    with pytest.raises(MemoryError):
        g.get_chunk(too_much())
    assert g.position() == 4096


def test_the_cli_refuses_a_bench_buffer_too_large_in_one_line():
    r = subprocess.run([DGEN, "bench", "--size", "1TiB"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("dgen: error: not enough memory: asked 2 TiB")
    assert "Traceback" not in r.stderr


def run_child(code: str, *, preexec=None, env=None, timeout=60):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec,
                          env={**os.environ, **(env or {})})


ASK_1GIB = """
    import dgen_py
    try:
        dgen_py.generate_buffer(2**30, seed=1)
    except MemoryError as e:
        print("MemoryError:", e)
    else:
        print("allocated")
"""


def address_space_limit(extra: int):
    """preexec_fn: RLIMIT_AS of `extra` bytes over what an interpreter with dgen_py maps."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (BASE_VM + extra, BASE_VM + extra))
    return limit


# What a child interpreter maps after `import dgen_py` (threads' stacks included), measured
# once; the rlimit tests give it 512 MiB more.
BASE_VM = int(run_child("""
    import dgen_py
    print(int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024)
""").stdout or 0) + 64 * MiB


def test_an_address_space_rlimit_is_named_in_the_memory_error():
    r = run_child(ASK_1GIB, preexec=address_space_limit(512 * MiB))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("MemoryError: asked 1 GiB"), r.stdout
    assert "available (RLIMIT_AS" in r.stdout


def test_the_check_can_be_skipped_from_the_environment():
    r = run_child(ASK_1GIB, preexec=address_space_limit(512 * MiB),
                  env={"DGEN_SKIP_MEMORY_CHECK": "1"})
    assert r.returncode == 0, r.stderr
    # Not checked: the kernel itself refuses the mapping, and that too is a MemoryError.
    assert "the kernel refused the mapping" in r.stdout, r.stdout


def own_memory_cgroup(limit: int) -> str:
    """A new memory cgroup (v2 or v1) below this process's own, limited to `limit` bytes;
    skips where cgroups cannot be made (not root, read-only, no memory controller)."""
    name = f"dgen-test-{uuid.uuid4().hex[:8]}"
    lines = open("/proc/self/cgroup").read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            base, limit_file = "/sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, limit_file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        parent = os.path.join(base, path.lstrip("/"))
        if not os.path.isdir(parent):
            parent = base
        group = os.path.join(parent, name)
        try:
            os.mkdir(group)
        except OSError as e:
            pytest.skip(f"cannot make a memory cgroup under {parent}: {e.strerror}")
        try:
            with open(os.path.join(group, limit_file), "w") as f:
                f.write(str(limit))
            return group
        except OSError as e:
            os.rmdir(group)
            pytest.skip(f"cannot limit memory in {group}: {e.strerror}")
    pytest.skip("no memory cgroup controller")


@pytest.fixture
def cgroup_256mib():
    group = own_memory_cgroup(256 * MiB)
    yield group
    os.rmdir(group)  # its only process, the child, has exited


def join(group):
    return lambda: open(os.path.join(group, "cgroup.procs"), "w").write(str(os.getpid()))


def test_a_cgroup_limit_gives_memory_error_not_a_kill(cgroup_256mib):
    # Without the check the kernel's OOM killer ends the child at its 256 MiB limit.
    r = run_child(ASK_1GIB, preexec=join(cgroup_256mib))
    assert r.returncode == 0, f"child ended by signal {-r.returncode}: {r.stderr}"
    assert r.stdout.startswith("MemoryError: asked 1 GiB"), r.stdout
    assert "available (cgroup limit 256 MiB" in r.stdout


def test_streaming_a_dataset_larger_than_the_cgroup_limit_works(cgroup_256mib):
    # 1 GiB through a 256 MiB cgroup: generate and fill_chunk need their chunk, not the size.
    r = run_child("""
        import dgen_py, subprocess, sys
        g = dgen_py.Generator(2**30, 2, 2, seed=5)
        buf = bytearray(32 * 2**20)
        total = 0
        while n := g.fill_chunk(buf):
            total += n
        print(total)
    """, preexec=join(cgroup_256mib))
    assert r.returncode == 0, f"rc {r.returncode}: {r.stderr}"
    assert r.stdout.split() == [str(2**30)]
    cli = subprocess.run(f"'{DGEN}' generate --size 1GiB --seed 5 | wc -c", shell=True,
                         capture_output=True, text=True, timeout=120,
                         preexec_fn=join(cgroup_256mib))
    assert cli.stdout.split() == [str(2**30)], cli.stderr


def test_generate_streams_in_constant_memory():
    # Peak resident memory of `dgen generate` does not grow with the size it streams.
    def peak_rss(size):
        r = subprocess.run(
            [sys.executable, "-c", "import resource, subprocess, sys;"
             f"subprocess.run([{DGEN!r}, 'generate', '--size', '{size}', '--seed', '1'],"
             " stdout=subprocess.DEVNULL, check=True);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)"],
            capture_output=True, text=True, timeout=120, check=True)
        return int(r.stdout)

    small, large = peak_rss("64MiB"), peak_rss("2GiB")
    assert large < small + 16 * MiB, (small, large)



READ_3GIB = """
    import dgen_py
    g = dgen_py.Generator(3 * 2**30, seed=1)
    for call in (lambda: g.read(3 * 2**30), lambda: g.read(), lambda: g.readall()):
        try:
            call()
        except MemoryError as e:
            print("MemoryError:", e)
        else:
            print("allocated")
    print("position", g.tell())
"""


@pytest.mark.parametrize("skip_check", ["0", "1"])
def test_a_read_too_large_raises_memory_error_naming_the_size(skip_check):
    r = run_child(READ_3GIB, preexec=address_space_limit(512 * MiB),
                  env={"DGEN_SKIP_MEMORY_CHECK": skip_check})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout
    for line in lines[:3]:
        assert line.startswith("MemoryError: asked 3 GiB (3221225472 bytes)"), r.stdout
    assert lines[3] == "position 0"  # a refused read leaves the position


def test_create_bytearrays_that_python_cannot_allocate_names_the_size():
    r = run_child("""
        import dgen_py
        try:
            dgen_py.create_bytearrays(3, 2**30)
        except MemoryError as e:
            print("MemoryError:", e)
    """, preexec=address_space_limit(512 * MiB), env={"DGEN_SKIP_MEMORY_CHECK": "1"})
    assert r.stdout.startswith("MemoryError: asked 3221225472 bytes"), r.stdout + r.stderr


@pytest.mark.parametrize("args", [["bench", "--size", "1GiB", "--threads", "1"],
                                  ["analyze", "FILE", "--frame-size", "1GiB"]])
def test_the_cli_names_the_size_python_could_not_allocate(args, tmp_path):
    (tmp_path / "FILE").write_bytes(bytes(4096))
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    r = subprocess.run([DGEN, *args], capture_output=True, text=True, timeout=60,
                       preexec_fn=address_space_limit(512 * MiB),
                       env={**os.environ, "DGEN_SKIP_MEMORY_CHECK": "1"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("dgen: error: not enough memory: asked "), r.stderr
    assert "bytes" in r.stderr.splitlines()[0]
