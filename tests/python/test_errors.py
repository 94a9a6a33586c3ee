"""Bad input raises a clean exception naming the parameter, never crashes or hangs."""

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import dgen_py

G = dgen_py.Generator
NOWHERE = "/nonexistent-dgen-test-dir/data.bin"  # a check that comes too late fails there

CASES = [
    ("size -1", lambda: G(-1), ValueError, "size"),
    ("size 2^63", lambda: G(2**63), ValueError, "size"),
    ("size float", lambda: G(1.5), TypeError, "size"),
    ("size str", lambda: G("10"), TypeError, "size"),
    ("size None", lambda: G(None), TypeError, "size"),
    ("dedup 0.5", lambda: G(10, dedup_ratio=0.5), ValueError, "dedup_ratio"),
    ("dedup 0", lambda: G(10, dedup_ratio=0), ValueError, "dedup_ratio"),
    ("dedup nan", lambda: G(10, dedup_ratio=math.nan), ValueError, "dedup_ratio"),
    ("dedup inf", lambda: G(10, dedup_ratio=math.inf), ValueError, "dedup_ratio"),
    ("dedup str", lambda: G(10, dedup_ratio="2"), TypeError, "dedup_ratio"),
    ("compress 0.99", lambda: G(10, compress_ratio=0.99), ValueError, "compress_ratio"),
    ("compress -2", lambda: G(10, compress_ratio=-2), ValueError, "compress_ratio"),
    ("compress nan", lambda: G(10, compress_ratio=math.nan), ValueError, "compress_ratio"),
    ("compress 129", lambda: G(10, compress_ratio=129), ValueError, "compress_ratio"),
    ("dedup 1e7", lambda: G(10, dedup_ratio=1e7), ValueError, "dedup_ratio"),
    ("numa_mode", lambda: G(10, numa_mode="bogus"), ValueError, "numa_mode"),
    ("numa_mode int", lambda: G(10, numa_mode=1), ValueError, "numa_mode"),
    ("numa_node", lambda: G(10, numa_node=10_000), ValueError, "numa_node"),
    ("numa_node -1", lambda: G(10, numa_node=-1), ValueError, "numa_node"),
    ("max_threads 0", lambda: G(10, max_threads=0), ValueError, "max_threads"),
    ("max_threads -4", lambda: G(10, max_threads=-4), ValueError, "max_threads"),
    ("max_threads huge", lambda: G(10, max_threads=10**6), ValueError, "max_threads"),
    ("chunk_size 0", lambda: G(10, chunk_size=0), ValueError, "chunk_size"),
    ("block_size 1", lambda: G(10, block_size=1), ValueError, "block_size"),
    ("seed -1", lambda: G(10, seed=-1), ValueError, "seed"),
    ("seed 2^64", lambda: G(10, seed=2**64), ValueError, "seed"),
    ("seed float", lambda: G(10, seed=1.0), TypeError, "seed"),
    ("set_seed 2^64", lambda: G(10, seed=1).set_seed(2**64), ValueError, "seed"),
    ("dedup_unit 3000", lambda: G(10, dedup_unit=3000), ValueError, "dedup_unit"),
    ("dedup_unit 12288", lambda: G(10, dedup_unit=12288), ValueError, "dedup_unit"),
    ("dedup_unit 128MiB", lambda: G(10, dedup_unit=128 << 20), ValueError, "dedup_unit"),
    ("seek past end", lambda: G(10, seed=1).seek(11), ValueError, "offset"),
    ("seek negative", lambda: G(10, seed=1).seek(-1), ValueError, "offset"),
    ("get_chunk -1", lambda: G(10, seed=1).get_chunk(-1), ValueError, "chunk_size"),
    ("method", lambda: G(10, method=3), TypeError, "method"),
    ("bytes buffer", lambda: G(10, seed=1).fill_chunk(b"0123456789"), ValueError, "read-only"),
    ("str buffer", lambda: G(10, seed=1).fill_chunk("abc"), TypeError, "buffer"),
    ("int buffer", lambda: dgen_py.fill_buffer(5), TypeError, "buffer"),
    ("None buffer", lambda: G(10, seed=1).fill_chunk(None), TypeError, "expected a buffer"),
    ("readinto None", lambda: G(10, seed=1).readinto(None), TypeError, "expected a buffer"),
    ("verify None", lambda: G(10, seed=1).verify(None), TypeError, "expected a buffer"),
    ("direct str", lambda: dgen_py.write_dataset(NOWHERE, 10, direct="no"), TypeError, "direct"),
    ("fsync str", lambda: dgen_py.write_dataset(NOWHERE, 10, fsync="no"), TypeError, "fsync"),
    ("path int", lambda: dgen_py.write_dataset(3.5, 10), TypeError, "path"),
    ("non-contiguous", lambda: G(10, seed=1).fill_chunk(np.zeros(20, np.uint8)[::2]), ValueError,
     "contiguous"),
    ("read-only numpy", lambda: G(10, seed=1).fill_chunk(np.frombuffer(b"x" * 10, np.uint8)), ValueError, "read-only"),
    ("huge allocation", lambda: dgen_py.generate_buffer(2**62), MemoryError, ""),
    # Values equal to the defaults but not them still get their checks (no fast path).
    ("dedup_shift 0", lambda: G(10, dedup_shift=0), TypeError, "dedup_shift"),
    ("dedup_run True", lambda: G(10, dedup_run=True), TypeError, "dedup_run"),
    ("generation 0.0", lambda: G(10, generation=0.0), TypeError, "generation"),
    ("dedup_skew bogus", lambda: G(10, dedup_skew="zipf"), TypeError, "dedup_skew"),
    ("bytearrays count", lambda: dgen_py.create_bytearrays(-1, 10), ValueError, "count"),
    ("verifier max_ranges", lambda: G(10, seed=1).verifier(max_ranges=-1), ValueError,
     "max_ranges"),
    ("verifier past end", lambda: G(10, seed=1).verifier().add(b"x" * 5, 6), ValueError,
     "past the dataset"),
    ("verifier backwards", lambda: _backwards(), ValueError, "offset order"),
]


def _backwards():
    v = G(10, seed=1).verifier()
    v.add(b"x" * 4, 4)
    v.add(b"x", 2)


@pytest.mark.parametrize("call, exc, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clean_error(call, exc, needle):
    with pytest.raises(exc) as info:
        call()
    assert needle in str(info.value)


def test_a_failed_fill_leaves_the_position():
    g = G(100, seed=1)
    with pytest.raises(ValueError):
        g.fill_chunk(b"x" * 10)
    assert g.position() == 0


def _with_isa(isa, *argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, DGEN_ISA=isa))


@pytest.mark.parametrize("isa", ["bogus", "AVX2", "avx-512"])
def test_an_unknown_dgen_isa_is_refused_naming_the_valid_values(isa):
    r = _with_isa(isa, sys.executable, "-c", "import dgen_py; dgen_py.Generator(10, seed=1)")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("ValueError: DGEN_ISA"), r.stderr
    assert repr(isa) in last and "scalar" in last and "avx2" in last and "avx512" in last


def test_dgen_refuses_an_unknown_dgen_isa_in_one_line():
    dgen = shutil.which("dgen", path=os.path.dirname(sys.executable)) or shutil.which("dgen")
    r = _with_isa("bogus", dgen, "generate", "--size", "4K", "--seed", "1")
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.startswith("dgen: error: DGEN_ISA") and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("isa, used", [("scalar", "scalar"), ("", None)])
def test_dgen_isa_scalar_forces_the_reference_path_and_empty_means_unset(isa, used):
    r = _with_isa(isa, sys.executable, "-c", "import dgen_py; print(dgen_py.get_system_info()['isa'])")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (used or dgen_py.get_system_info()["isa"])


@pytest.mark.parametrize("call", [
    lambda g: g.fill_chunk(bytearray(4)), lambda g: g.get_chunk(4), lambda g: g.read(4),
    lambda g: g.readinto(bytearray(4)), lambda g: g.verify(b"1234"), lambda g: g.verifier(),
    lambda g: g.set_seed(2), lambda g: g.seek(0), lambda g: g.tell(),
], ids=["fill_chunk", "get_chunk", "read", "readinto", "verify", "verifier", "set_seed",
        "seek", "tell"])
def test_a_closed_generator_raises_value_error(call):
    g = G(100, seed=1)
    g.close()
    with pytest.raises(ValueError, match="closed Generator"):
        call(g)


@pytest.mark.parametrize("kind", [str, os.fsencode, __import__("pathlib").Path])
def test_verify_file_takes_str_bytes_and_pathlike_paths(tmp_path, kind):
    path = tmp_path / "d.bin"
    dgen_py.write_dataset(str(path), 4096, seed=1)
    assert dgen_py.verify_file(kind(str(path)))["ok"]


def test_verify_file_refuses_a_path_of_another_type_naming_it():
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, got int"):
        dgen_py.verify_file(3)


def test_a_buffer_pool_refuses_to_pickle_saying_why():
    import copy
    import pickle
    pool = dgen_py.BufferPool(seed=1)
    with pytest.raises(TypeError, match="BufferPool cannot be pickled: .*same slices"):
        pickle.dumps(pool)
    with pytest.raises(TypeError, match="BufferPool cannot be pickled"):
        copy.copy(pool)
