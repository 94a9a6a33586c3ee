"""dgen-py 0.3.0's BufferPool, generate_uniform, generate_uniform_vectors, normalize_rows,
bench_rolling_pool and version: same signatures, our data rules."""

import array
import hashlib
import inspect
import json
import math
import pathlib
import threading

import numpy as np
import pytest
import zstandard

import dgen_py

HERE = pathlib.Path(__file__).parent
# Recorded from dgen-py 0.3.0 (PyPI), which CI does not install: name -> [name, kind, default].
REFERENCE = json.loads((HERE / "dgen_py_0_3_0_api.json").read_text())
MiB = 1 << 20


def floats(view) -> np.ndarray:
    return np.frombuffer(view, dtype=np.float32)


# --- signatures ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_every_0_3_0_name_has_its_signature(name, request):
    obj = dgen_py
    for part in name.split("."):
        obj = getattr(obj, part) if obj is dgen_py else inspect.getattr_static(obj, part)
    ref = REFERENCE[name]
    if ref == "property":
        assert isinstance(obj, property), name
        return
    if name == "BytesView":  # made only by the library, in 0.3.0 as here
        return
    params = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    ours = [[p.name, p.kind.name, None if p.default is p.empty else repr(p.default)]
            for p in params]
    # 0.3.0's parameters in order, same names, kinds and defaults (we may add a default
    # where it had none); anything more has a default.
    assert [p[:2] for p in ours[:len(ref)]] == [p[:2] for p in ref], name
    for (pname, _, default), mine in zip(ref, ours):
        assert default is None or mine[2] == default, f"{name}({pname}=...)"
    assert all(p.default is not p.empty for p in params[len(ref):]), name


def test_the_new_names_are_exported():
    for name in ("BufferPool", "generate_uniform", "generate_uniform_vectors",
                 "normalize_rows", "bench_rolling_pool"):
        assert name in dgen_py.__all__


def test_version_reads_a_distributions_version_as_in_0_3_0():
    assert dgen_py.version("dgen-py") == dgen_py.__version__


# --- generate_uniform ----------------------------------------------------------------------

def test_uniform_returns_count_float32_values_as_a_bytesview():
    v = dgen_py.generate_uniform(1000, seed=1)
    assert isinstance(v, dgen_py.BytesView)
    assert len(v) == 4000
    assert floats(v).shape == (1000,)
    assert len(dgen_py.generate_uniform(0)) == 0


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-5, 5), (1, 2), (-3e38, 3e37), (1e-30, 2e-30)])
def test_uniform_values_lie_in_low_high(low, high):
    a = floats(dgen_py.generate_uniform(200_000, low, high, seed=4))
    assert a.min() >= np.float32(low)
    assert a.max() < np.float32(high)


def test_uniform_mean_and_variance_match_theory():
    a = floats(dgen_py.generate_uniform(10_000_000, -1, 3, seed=5)).astype(np.float64)
    assert abs(a.mean() - 1.0) < 0.002  # sigma of the mean: 0.0004
    assert abs(a.var() / (16 / 12) - 1) < 0.002


def test_uniform_values_depend_on_seed_and_index_only():
    one = bytes(dgen_py.generate_uniform(3 * MiB + 5, seed=9, max_threads=1))
    assert bytes(dgen_py.generate_uniform(3 * MiB + 5, seed=9, max_threads=2)) == one
    assert bytes(dgen_py.generate_uniform(3 * MiB + 5, seed=9, numa_mode="uma")) == one
    assert bytes(dgen_py.generate_uniform(1000, seed=9)) == one[:4000]  # a prefix
    assert bytes(dgen_py.generate_uniform(1000, seed=10)) != one[:4000]


def test_uniform_without_seed_differs_between_calls():
    assert bytes(dgen_py.generate_uniform(64)) != bytes(dgen_py.generate_uniform(64))


def test_uniform_matches_the_golden_vectors():
    rows = 0
    for line in (HERE.parent / "golden_uniform_v1.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        kind, seed, a, b, low, high, want = line.split()
        seed, a, b, low, high = int(seed), int(a), int(b), float(low), float(high)
        if kind == "uniform":
            data = bytes(dgen_py.generate_uniform(a + b, low, high, seed=seed))[4 * a:]
        else:
            data = bytes(dgen_py.generate_uniform_vectors(a, b, low, high, seed=seed))
        assert hashlib.sha256(data).hexdigest() == want, line
        rows += 1
    assert rows >= 8


# --- generate_uniform_vectors and normalize_rows -------------------------------------------

def test_vectors_are_normalized_uniform_values():
    v = dgen_py.generate_uniform_vectors(500, 64, seed=3)
    assert isinstance(v, dgen_py.BytesView)
    a = floats(v).reshape(500, 64)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    raw = floats(dgen_py.generate_uniform(500 * 64, seed=3)).reshape(500, 64)
    assert np.allclose(a, raw / np.linalg.norm(raw.astype(np.float64), axis=1, keepdims=True))


def test_vectors_without_normalize_are_generate_uniform():
    v = dgen_py.generate_uniform_vectors(30, 7, -2, 2, normalize=False, seed=12)
    assert bytes(v) == bytes(dgen_py.generate_uniform(210, -2, 2, seed=12))


def test_normalize_rows_scales_a_numpy_array_in_place():
    a = np.array([[3, 4], [1, 0], [-2, 0]], dtype=np.float32)
    assert dgen_py.normalize_rows(a, 2) is None
    assert a.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [1, 0], [-1, 0]]


@pytest.mark.parametrize("make", [
    lambda b: bytearray(b),
    lambda b: memoryview(bytearray(b)),
    lambda b: array.array("f", b),
    lambda b: memoryview(bytearray(b)).cast("f"),
], ids=["bytearray", "memoryview", "array-f", "memoryview-f"])
def test_normalize_rows_takes_raw_bytes_and_float32_buffers(make):
    buf = make(np.array([0, 5, 12, 0], np.float32).tobytes())
    dgen_py.normalize_rows(buf, 2)
    assert np.frombuffer(bytes(buf), np.float32).tolist() == [0, 1, 1, 0]


def test_normalize_rows_leaves_zero_rows_unchanged():
    a = np.zeros((4, 8), np.float32)
    a[1] = 2
    dgen_py.normalize_rows(a, 8)
    assert not a[[0, 2, 3]].any()
    assert np.allclose(np.linalg.norm(a[1]), 1)


def test_normalize_rows_is_the_same_on_any_thread_count():
    base = floats(dgen_py.generate_uniform(3 * MiB, -1, 1, seed=2)).copy()
    one, two = base.copy(), base.copy()
    dgen_py.normalize_rows(one, 96, max_threads=1)
    dgen_py.normalize_rows(two, 96, max_threads=2)
    assert one.tobytes() == two.tobytes()


@pytest.mark.parametrize("buf", [
    np.zeros(4, np.float64), np.zeros(8, np.int8), np.zeros(4, np.float16).view(np.int16),
    array.array("d", [0, 0]), array.array("i", [0, 0]),
], ids=["float64", "int8", "int16", "array-d", "array-i"])
def test_normalize_rows_refuses_other_dtypes(buf):
    before = bytes(buf)
    with pytest.raises(ValueError, match="float32"):
        dgen_py.normalize_rows(buf, 1)
    assert bytes(buf) == before


@pytest.mark.parametrize("buf, dim, exc, words", [
    (bytes(16), 2, ValueError, "read-only"),
    (bytearray(12), 2, ValueError, "multiple of dim"),
    (bytearray(16), 0, ValueError, "dim"),
    (bytearray(16), -1, ValueError, "dim"),
    (bytearray(16), 1.5, TypeError, "dim"),
    (memoryview(bytearray(32))[::2], 2, ValueError, "contiguous"),
    (memoryview(bytearray(20))[1:17], 2, ValueError, "4-byte"),
    ("text", 1, TypeError, "buffer"),
    (None, 1, TypeError, "buffer"),
])
def test_normalize_rows_errors_name_the_problem(buf, dim, exc, words):
    with pytest.raises(exc, match=words):
        dgen_py.normalize_rows(buf, dim)


# --- argument errors -------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, words", [
    (lambda: dgen_py.generate_uniform(-1), ValueError, "count"),
    (lambda: dgen_py.generate_uniform(1.5), TypeError, "count"),
    (lambda: dgen_py.generate_uniform(2**62), ValueError, "count"),
    (lambda: dgen_py.generate_uniform(4, 1, 1), ValueError, "low must be below high"),
    (lambda: dgen_py.generate_uniform(4, 2, 1), ValueError, "low must be below high"),
    (lambda: dgen_py.generate_uniform(4, math.nan, 1), ValueError, "low"),
    (lambda: dgen_py.generate_uniform(4, 0, math.inf), ValueError, "high"),
    (lambda: dgen_py.generate_uniform(4, 0, 1e39), ValueError, "high"),
    (lambda: dgen_py.generate_uniform(4, -3e38, 3e38), ValueError, "high - low"),
    (lambda: dgen_py.generate_uniform(4, "a", 1), TypeError, "low"),
    (lambda: dgen_py.generate_uniform(4, max_threads=0), ValueError, "max_threads"),
    (lambda: dgen_py.generate_uniform(4, numa_mode="bogus"), ValueError, "numa_mode"),
    (lambda: dgen_py.generate_uniform(4, seed=-1), ValueError, "seed"),
    (lambda: dgen_py.generate_uniform(4, seed=2**64), ValueError, "seed"),
    (lambda: dgen_py.generate_uniform_vectors(3, 0), ValueError, "dim"),
    (lambda: dgen_py.generate_uniform_vectors(-1, 4), ValueError, "rows"),
    (lambda: dgen_py.generate_uniform_vectors(2**40, 2**40), ValueError, "rows \\* dim"),
    (lambda: dgen_py.generate_uniform_vectors(2, 2, normalize=1), TypeError, "normalize"),
    (lambda: dgen_py.generate_uniform_vectors(2, 2, 1, 0), ValueError, "low must be below"),
    (lambda: dgen_py.BufferPool(0.5), ValueError, "dedup_ratio"),
    (lambda: dgen_py.BufferPool(1, math.nan), ValueError, "compress_ratio"),
    (lambda: dgen_py.BufferPool("x"), TypeError, "dedup_ratio"),
    (lambda: dgen_py.BufferPool().next_slice(0), ValueError, "size"),
    (lambda: dgen_py.BufferPool().next_slice(1.5), TypeError, "size"),
    (lambda: dgen_py.BufferPool().reconfigure(0.5), ValueError, "dedup_ratio"),
    (lambda: dgen_py.bench_rolling_pool(0, 100), ValueError, "obj_size"),
    (lambda: dgen_py.bench_rolling_pool(10, -1), ValueError, "total_bytes"),
])
def test_errors_name_the_parameter(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


@pytest.mark.parametrize("call", [
    lambda: dgen_py.generate_uniform(2**50),
    lambda: dgen_py.generate_uniform_vectors(2**40, 2**10),
    lambda: dgen_py.BufferPool().next_slice(2**52),
], ids=["uniform", "vectors", "next_slice"])
def test_a_call_that_cannot_be_allocated_raises_memory_error(call):
    with pytest.raises(MemoryError, match="asked"):
        call()


# --- BufferPool ------------------------------------------------------------------------------

def blocks(data: bytes, size=4096) -> list:
    return [hashlib.sha256(data[i:i + size]).digest() for i in range(0, len(data), size)]


def test_next_slice_returns_exactly_size_bytes_as_a_bytesview():
    pool = dgen_py.BufferPool()
    for n in (1, 1000, MiB, MiB + 1, 3 * MiB):
        v = pool.next_slice(n)
        assert isinstance(v, dgen_py.BytesView)
        assert len(v) == n


def test_remaining_follows_0_3_0s_1_mib_blocks():
    # The numbers dgen-py 0.3.0 reports for this sequence of calls.
    pool = dgen_py.BufferPool()
    seen = [pool.remaining]
    for n in (1000, 1047000, 576, 1, 100, MiB, 5, MiB + 1, 7):
        pool.next_slice(n)
        seen.append(pool.remaining)
    assert seen == [MiB, 1047576, 576, 0, 1048575, 1048475, 0, 1048571, 1048571, 1048564]


def test_slices_are_unique_data():
    pool = dgen_py.BufferPool()
    objs = [bytes(pool.next_slice(4096)) for _ in range(2000)]  # across two 1 MiB blocks
    big = bytes(pool.next_slice(2 * MiB))
    all_blocks = [hashlib.sha256(o).digest() for o in objs] + blocks(big)
    assert len(set(all_blocks)) == len(all_blocks)


def test_two_pools_give_different_data_and_a_seed_reproduces_one():
    a, b = dgen_py.BufferPool(), dgen_py.BufferPool()
    assert bytes(a.next_slice(4096)) != bytes(b.next_slice(4096))
    c, d = dgen_py.BufferPool(seed=5), dgen_py.BufferPool(seed=5)
    assert c.seed == 5
    assert [bytes(c.next_slice(n)) for n in (10, 5000, MiB)] == \
           [bytes(d.next_slice(n)) for n in (10, 5000, MiB)]


def test_slices_in_order_are_a_prefix_of_the_pools_dataset():
    pool = dgen_py.BufferPool(2, 2, seed=8)
    got = b"".join(bytes(pool.next_slice(n)) for n in (4096, 100, 3 * MiB, 7))
    want = bytes(dgen_py.Generator(2**63 - 1, 2, 2, seed=8).get_chunk(len(got)))
    assert got == want


@pytest.mark.parametrize("dedup, compress", [(1, 1), (2, 1), (1, 3), (2.5, 2)])
def test_slices_honour_both_ratios(dedup, compress):
    pool = dgen_py.BufferPool(dedup, compress)
    objs = [bytes(pool.next_slice(64 * 1024)) for _ in range(512)]  # 32 MiB, 256 units
    data = b"".join(objs)
    keys = [h for o in objs for h in blocks(o)]
    assert len(keys) / len(set(keys)) == pytest.approx(dedup, rel=0.01)
    zstd = zstandard.ZstdCompressor(level=3)
    unique = {}
    for i in range(0, len(data), 4096):
        unique.setdefault(hashlib.sha256(data[i:i + 4096]).digest(), data[i:i + 4096])
    sample = b"".join(list(unique.values())[:2048])
    assert len(sample) / len(zstd.compress(sample)) == pytest.approx(compress, rel=0.05)


def test_reconfigure_changes_ratios_and_never_repeats_data():
    pool = dgen_py.BufferPool(seed=3)
    before = bytes(pool.next_slice(MiB))
    pool.next_slice(10)
    pool.reconfigure(1, 1)  # the same ratios change nothing
    assert pool.remaining == MiB - 10
    pool.reconfigure(dedup_ratio=2.0, compress_ratio=2.0)
    assert (pool.dedup_ratio, pool.compress_ratio, pool.remaining) == (2.0, 2.0, MiB)
    pool.reconfigure()  # back to (1, 1): still new data
    after = bytes(pool.next_slice(MiB))
    assert not set(blocks(before)) & set(blocks(after))


def test_a_pool_used_from_several_threads_hands_each_range_out_once():
    pool = dgen_py.BufferPool()
    out = []

    def work():
        out.extend(bytes(pool.next_slice(4096)) for _ in range(300))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 1200
    assert len(set(out)) == 1200


def test_bench_rolling_pool_returns_bytes_and_seconds():
    generated, secs = dgen_py.bench_rolling_pool(64 * 1024, 4 * MiB)
    assert generated == 4 * MiB
    assert isinstance(secs, float) and secs > 0
    assert dgen_py.bench_rolling_pool(2 * MiB, 0)[0] == 2 * MiB  # at least one call
