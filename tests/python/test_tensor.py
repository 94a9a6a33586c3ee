"""Typed tensors: fill_tensor, tensor and clustered_vectors (docs/data-model.md, "Typed
tensors (version 1)")."""

import hashlib
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import dgen_py

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden_tensor_v1.txt"
FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def golden_lines():
    for line in GOLDEN.read_text().splitlines():
        if line and not line.startswith("#"):
            yield line.split()


def from_golden(dtype, dist, seed, start, count, a, b, c):
    kw = dict(seed=int(seed), start=int(start))
    if dist == "uniform":
        kw.update(low=float(a), high=float(b))
    elif dist == "normal":
        kw.update(dist="normal", mean=float(a), std=float(b))
    else:
        kw.update(low=int(a), high=int(b), zipf=float(c) if dist == "zipf" else None)
    return dgen_py.tensor(int(count), dtype, **kw)


def test_golden_vectors_cover_every_dtype_and_distribution():
    lines = list(golden_lines())
    kinds = {(f[0], f[1]) for f in lines}
    assert kinds == {(d, k) for d in FLOATS for k in ("uniform", "normal")} | \
        {(d, k) for d in INTS for k in ("integers", "zipf")}
    for *args, want in lines:
        assert hashlib.sha256(from_golden(*args).tobytes()).hexdigest() == want, args


def test_golden_vectors_on_the_scalar_path():
    code = (f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r}); "
            "import test_tensor as t, dgen_py, hashlib; assert dgen_py._core.isa() == 'scalar'; "
            "print(all(hashlib.sha256(t.from_golden(*a).tobytes()).hexdigest() == w "
            "for *a, w in t.golden_lines()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "DGEN_ISA": "scalar"}, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("dtype", FLOATS + INTS)
def test_threads_chunks_and_start_do_not_change_elements(dtype):
    kw = dict(zipf=1.2, low=0, high=100) if dtype in INTS[::2] else {}
    whole = dgen_py.tensor(600_000, dtype, seed=5, max_threads=1, **kw)
    assert np.array_equal(whole, dgen_py.tensor(600_000, dtype, seed=5, max_threads=2, **kw))
    pieces = np.empty_like(whole)
    at = 0
    for n in (1, 1023, 1025, 70_000, 12_345):
        dgen_py.fill_tensor(pieces[at:at + n], seed=5, start=at, dtype=dtype, **kw)
        at += n
    dgen_py.fill_tensor(pieces[at:], seed=5, start=at, dtype=dtype, **kw)
    assert np.array_equal(whole, pieces)
    assert not np.array_equal(whole, dgen_py.tensor(600_000, dtype, seed=6, **kw))


def test_fills_an_existing_array_of_any_shape_in_place():
    a = np.zeros((3, 4, 5), np.float64)
    assert dgen_py.fill_tensor(a, seed=1) is a
    assert np.array_equal(a.ravel(), dgen_py.tensor(60, "float64", seed=1))
    assert np.array_equal(dgen_py.tensor((3, 4, 5), "float64", seed=1), a)


def test_float32_uniform_is_generate_uniform():
    view = dgen_py.generate_uniform(5000, -1, 2, seed=9)
    assert np.array_equal(np.frombuffer(view, np.float32),
                          dgen_py.tensor(5000, "float32", low=-1, high=2, seed=9))


@pytest.mark.parametrize("dtype", FLOATS)
def test_uniform_floats_lie_in_low_high(dtype):
    t = dgen_py.tensor(200_000, dtype, low=-1, high=2, seed=3)
    v = (t.astype(np.uint32) << 16).view(np.float32) if dtype == "bfloat16" else t
    assert v.min() >= -1 and v.max() < 2
    assert abs(float(v.astype(np.float64).mean()) - 0.5) < 0.01


def test_uniform_mean_and_variance_over_1e7_values():
    # 10^8 is the C++ test Uniform.MeanAndVarianceMatchTheoryOver1e8Values.
    v = dgen_py.tensor(10**7, "float64", low=-1, high=3, seed=13)
    assert v.mean() == pytest.approx(1, rel=1e-3)
    assert v.var() == pytest.approx(16 / 12, rel=1e-3)


def ks_statistic_normal(x):
    x = np.sort(x)
    cdf = 0.5 * (1 + np.frompyfunc(math.erf, 1, 1)(x / math.sqrt(2)).astype(np.float64))
    n = len(x)
    return max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())


@pytest.mark.parametrize("dtype", ("float32", "float64"))
def test_normal_passes_kolmogorov_smirnov_at_1e6(dtype):
    n = 10**6
    x = dgen_py.tensor(n, dtype, "normal", mean=3, std=2, seed=21).astype(np.float64)
    # Critical value at the 1% level: 1.628 / sqrt(n).
    assert ks_statistic_normal((x - 3) / 2) < 1.628 / math.sqrt(n)


def test_normal_fails_kolmogorov_smirnov_when_it_should():
    x = dgen_py.tensor(10**6, "float64", "normal", mean=0.01, seed=21)
    assert ks_statistic_normal(x) > 1.628 / 1000  # a 1% shift of the mean is seen


@pytest.mark.parametrize("dtype", INTS)
def test_integers_cover_their_range_uniformly(dtype):
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -50), min(info.max + 1, 50)
    t = dgen_py.tensor(200_000, dtype, low=lo, high=hi, seed=2)
    assert t.dtype == dtype and t.min() == lo and t.max() == hi - 1
    counts = np.bincount((t.astype(np.int64) - lo))
    assert counts.min() > 0.9 * len(t) / (hi - lo)
    full = dgen_py.tensor(100_000, dtype, seed=2)  # default: the dtype's whole range
    assert full.min() < info.min / 2 + info.max / 4 and full.max() > info.max / 2


@pytest.mark.parametrize("s", (0.8, 1.0, 1.3))
def test_zipf_fits_its_exponent(s):
    z = dgen_py.tensor(10**6, "int32", low=0, high=1000, zipf=s, seed=4)
    assert z.min() >= 0 and z.max() < 1000
    ranks = np.arange(1, 101)
    fitted = -np.polyfit(np.log(ranks), np.log(np.bincount(z, minlength=1000)[:100]), 1)[0]
    assert abs(fitted - s) < 0.1


def test_bfloat16_is_the_top_half_of_float32():
    f = dgen_py.tensor(10_000, "float32", "normal", seed=8)
    b = dgen_py.tensor(10_000, "bfloat16", "normal", seed=8)
    assert b.dtype == np.uint16
    back = (b.astype(np.uint32) << 16).view(np.float32)
    assert np.all(np.abs(back - f) <= np.abs(f) * 2**-8)


def test_normalized_rows():
    for dtype in ("float32", "float64"):
        t = dgen_py.tensor((100, 33), dtype, "normal", normalize=True, seed=1)
        assert np.allclose(np.linalg.norm(t.astype(np.float64), axis=1), 1, atol=1e-6)
    with pytest.raises(ValueError, match="float32 and float64"):
        dgen_py.tensor((4, 4), "float16", normalize=True, seed=1)


def test_clustered_vectors_plant_their_neighbours():
    base, queries, ids = dgen_py.clustered_vectors(5000, 24, clusters=10, queries=50,
                                                   neighbours=5, seed=7)
    assert base.shape == (5000, 24) and queries.shape == (50, 24) and ids.shape == (50, 5)
    assert base.dtype == queries.dtype == np.float32
    d = ((queries[:, None, :].astype(np.float64) - base[None]) ** 2).sum(-1)
    assert np.array_equal(ids, np.argsort(d, axis=1, kind="stable")[:, :5])
    planted = dgen_py.tensor(50, "int64", low=0, high=5000, seed=7)
    assert np.array_equal(ids[:, 0], planted)  # each query's planted row is its nearest
    again = dgen_py.clustered_vectors(5000, 24, clusters=10, queries=50, neighbours=5,
                                      seed=7, max_threads=1)
    assert all(np.array_equal(a, b) for a, b in zip((base, queries, ids), again))


@pytest.mark.parametrize("call, error, match", [
    (lambda: dgen_py.fill_tensor([1.0, 2.0]), TypeError, "numpy array"),
    (lambda: dgen_py.fill_tensor(np.zeros(10)[::2]), ValueError, "C-contiguous"),
    (lambda: dgen_py.fill_tensor(np.frombuffer(bytes(16))), ValueError, "read-only"),
    (lambda: dgen_py.fill_tensor(np.zeros(4, np.complex64)), TypeError, "dtype must be"),
    (lambda: dgen_py.fill_tensor(np.zeros(4, bool)), TypeError, "dtype must be"),
    (lambda: dgen_py.fill_tensor(np.zeros(4, np.float32), dtype="bfloat16"), TypeError,
     "bfloat16 goes in a uint16"),
    (lambda: dgen_py.tensor(4, "int8", "normal"), ValueError, "float dtype"),
    (lambda: dgen_py.tensor(4, "float32", zipf=1.0), ValueError, "integer dtypes"),
    (lambda: dgen_py.tensor(4, "float32", "gamma"), ValueError, "dist must be"),
    (lambda: dgen_py.tensor(4, "int8", low=0, high=300), ValueError, "high must be in"),
    (lambda: dgen_py.tensor(4, "uint8", low=5, high=5), ValueError, "low must be below"),
    (lambda: dgen_py.tensor(4, "int64", zipf=1.0), ValueError, "2\\^53"),
    (lambda: dgen_py.tensor(4, "int32", low=0, high=9, zipf=0), ValueError, "zipf must be"),
    (lambda: dgen_py.tensor(4, "float32", low=1, high=1), ValueError, "low < high"),
    (lambda: dgen_py.tensor(4, "float16", low=1.0001, high=1.0002), ValueError,
     "no float16 value"),
    (lambda: dgen_py.tensor(4, "float32", "normal", std=-1), ValueError, "std must be"),
    (lambda: dgen_py.tensor(4, "float32", start=-1), ValueError, "start must be"),
    (lambda: dgen_py.tensor(4, "float32", start=2**64 - 2), ValueError, "start \\+ out.size"),
])
def test_bad_input_is_refused_with_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_errors_show_the_values_given():
    with pytest.raises(ValueError, match=r"low=1e-10, high=2e-10"):
        dgen_py.tensor((4,), "float16", low=1e-10, high=2e-10)


@pytest.mark.parametrize("dtype, kw", [
    (">f2", {}), (">f4", {"dist": "normal"}), (">f8", {}), (">i2", {}), (">i4", {}),
    (">i8", {"low": -5, "high": 1000}), (">u4", {}), (">u8", {}), (">u2", {"dtype": "bfloat16"}),
])
def test_a_big_endian_array_gets_the_values_a_native_one_gets(dtype, kw):
    big = np.empty(1000, dtype)
    dgen_py.fill_tensor(big, seed=3, start=7, **kw)
    native = dgen_py.fill_tensor(np.empty(1000, big.dtype.newbyteorder("=")), seed=3, start=7,
                                 **kw)
    assert np.array_equal(big, native)  # compared as values, each in its own byte order
    assert big.tobytes() == native.byteswap().tobytes()


# mean + std * z with |z| <= sqrt(-2 ln 2^-33) = 6.76...: the largest std whose values all
# stay finite, as the refusal says.
@pytest.mark.parametrize("dtype, largest", [
    ("float16", 65504.0), ("bfloat16", 3.3895313892515355e38),
    ("float32", 3.4028234663852886e38), ("float64", 1.7976931348623157e308)])
def test_normal_refuses_a_std_that_overflows_the_dtype_naming_its_range(dtype, largest):
    bound = re.escape(f"{largest:g}")
    with pytest.raises(ValueError, match=rf"std.*{dtype}.*{bound}"):
        dgen_py.tensor(4, dtype, "normal", std=largest / 6)
    with pytest.raises(ValueError, match=rf"mean.*{dtype}.*{bound}"):
        dgen_py.tensor(4, dtype, "normal", mean=largest, std=largest / 1e6)
    values = dgen_py.tensor(1 << 16, dtype, "normal", std=largest / 6.8, seed=1)
    if dtype == "bfloat16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    assert np.isfinite(values).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clustered_vectors_refuse_a_spread_that_overflows_naming_the_range(dtype):
    with pytest.raises(ValueError, match=rf"spread must be at most .* for {dtype}"):
        dgen_py.clustered_vectors(100, 4, clusters=2, queries=3, spread=1e200, dtype=dtype)
    with pytest.raises(ValueError, match="spread must be at most"):
        dgen_py.clustered_vectors(100, 4, clusters=2, queries=3, spread=1e300, dtype=dtype)
