"""Typed tensors: numpy arrays of any numeric dtype filled by the core's kernels.

Element i of a fill is a pure function of (seed, dtype, distribution and its parameters, i):
thread count and how a tensor is split never change it, and `start` seeks to any element
(docs/data-model.md, "Typed tensors (version 1)").
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .. import _checks, _core
from .uniform import seed_or_random

DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64")
# Elements per call to brute-force neighbours in clustered_vectors: bounds its memory.
_NEIGHBOUR_CHUNK = 1 << 22


def _finite(name: str, value) -> float:
    return _checks.number(name, value, -sys.float_info.max, sys.float_info.max)


def _dtype_name(out: np.ndarray, dtype) -> str:
    name = out.dtype.name if dtype is None else np.dtype(dtype).name if dtype != "bfloat16" \
        else "bfloat16"
    if name == "bfloat16":  # bits in uint16 (or ml_dtypes' bfloat16, same 2 bytes)
        if out.dtype.itemsize != 2 or out.dtype.kind not in "uV":
            raise TypeError(f"bfloat16 goes in a uint16 array, got {out.dtype}")
        return name
    if name not in DTYPES:
        raise TypeError(f"dtype must be one of {', '.join(DTYPES)}; got {name}")
    if out.dtype.name != name:
        raise TypeError(f"dtype={name} does not match the array's dtype {out.dtype}")
    return name


def _integer_bounds(name: str, low, high) -> tuple[int, int]:
    """(first, count) of [low, high) in 64 bits; None stands for the dtype's own bound."""
    info = np.iinfo(name)
    low = info.min if low is None else _checks.integer("low", low, info.min, info.max)
    high = info.max + 1 if high is None else _checks.integer("high", high, info.min + 1,
                                                             info.max + 1)
    if not low < high:
        raise ValueError(f"low must be below high, got low={low}, high={high}")
    return low % 2**64, (high - low) % 2**64


def fill_tensor(out, dist="uniform", low=None, high=None, mean=0.0, std=1.0, zipf=None,
                seed=None, start=0, max_threads=None, dtype=None):
    """Fill the numpy array `out` in place and return it.

    Float dtypes (float16, bfloat16 as uint16 bits, float32, float64): dist="uniform" in
    [low, high) (default [0, 1)) or "normal" (mean, std). Integer dtypes: dist="uniform"
    gives integers in [low, high) (default: the dtype's whole range), and zipf=s skews them:
    low + k with probability about proportional to (k + 1)^-s. `start` is the element
    offset of out[0] in the stream; seed=None draws a seed from the OS.
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous; pass np.ascontiguousarray(out) and copy back")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array")
    name = _dtype_name(out, dtype)
    start = _checks.integer("start", start, 0, 2**64 - 1)
    if start + out.size > 2**64:
        raise ValueError(f"start + out.size must be at most 2^64, got {start} + {out.size}")
    threads = _checks.threads(max_threads)
    seed = seed_or_random(seed)
    lo = hi = 0.0
    first = count = 0
    exponent = 1.0
    if dist not in ("uniform", "normal"):
        raise ValueError(f"dist must be 'uniform' or 'normal', got {dist!r}")
    floating = name.startswith(("float", "bfloat"))
    if floating:
        if zipf is not None:
            raise ValueError(f"zipf applies to integer dtypes, not {name}")
        if dist == "uniform":
            lo = _finite("low", 0.0 if low is None else low)
            hi = _finite("high", 1.0 if high is None else high)
        else:
            mean, std = _finite("mean", mean), _finite("std", std)
            if std < 0:
                raise ValueError(f"std must be >= 0, got {std}")
        kind = dist
    else:
        if dist != "uniform":
            raise ValueError(f"dist='normal' needs a float dtype, got {name}")
        first, count = _integer_bounds(name, low, high)
        kind = "integers"
        if zipf is not None:
            exponent = _finite("zipf", zipf)
            if not 0 < exponent <= 100:
                raise ValueError(f"zipf must be in (0, 100], got {exponent}")
            if count == 0 or count > 2**53:
                raise ValueError(f"zipf needs high - low in [1, 2^53], got low={low}, "
                                 f"high={high}")
            kind = "zipf"
    # The core writes native order: a byte-swapped array is filled through a native view
    # of it, then swapped to its own order.
    target = out if out.dtype.isnative else out.view(out.dtype.newbyteorder("="))
    _core.fill_tensor(target, name, kind, lo, hi, float(mean), float(std), first, count,
                      exponent, seed, start, threads)
    if target is not out:
        target.byteswap(inplace=True)
    return out


def tensor(shape, dtype="float32", dist="uniform", low=None, high=None, mean=0.0, std=1.0,
           zipf=None, seed=None, start=0, normalize=False, max_threads=None) -> np.ndarray:
    """A new C-contiguous array of `shape` filled as fill_tensor fills one (bfloat16 comes as
    uint16 bits). normalize=True scales each row (the last axis) of a float32 or float64
    tensor to unit L2 norm afterwards, as normalize_rows does."""
    name = "bfloat16" if dtype == "bfloat16" else np.dtype(dtype).name
    normalize = _checks.flag("normalize", normalize)
    if normalize and name not in ("float32", "float64"):  # refused before any filling
        raise ValueError(f"normalize applies to float32 and float64, not {name}")
    out = np.empty(shape, np.uint16 if name == "bfloat16" else name)
    fill_tensor(out, dist, low, high, mean, std, zipf, seed, start, max_threads, name)
    if normalize:
        _normalize(out, max_threads)
    return out


def _normalize(a: np.ndarray, max_threads) -> None:
    threads = _checks.threads(max_threads)
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError(f"normalize needs rows of at least one value, got shape {a.shape}")
    if a.dtype == np.float32:
        _core.normalize_rows(a, a.shape[-1], threads)
    elif a.dtype == np.float64:
        _core.normalize_rows_f64(a, a.shape[-1], threads)
    else:
        raise ValueError(f"normalize applies to float32 and float64, not {a.dtype}")


def clustered_vectors(rows, dim, clusters=16, queries=100, neighbours=10, spread=0.1,
                      dtype="float32", normalize=False, seed=None, max_threads=None):
    """Vectors around `clusters` centres, with planted near-neighbours.

    Returns (base, queries, ids): base is rows x dim, centre i % clusters (standard normal)
    plus spread * N(0, 1) per value; query j is base row t_j (t_j uniform in [0, rows)) plus
    spread / 100 * N(0, 1), so t_j is its nearest neighbour as a rule; ids (queries x
    neighbours, int64) are the exact nearest base rows of each query by Euclidean distance
    (computed in float64 on the base as returned), nearest first. Recall@k of an index is
    the share of ids[:, :k] it finds. normalize=True scales base and query rows to unit norm
    first (cosine similarity). Everything is a pure function of the arguments and seed.
    """
    rows = _checks.integer("rows", rows, 1, 2**40)
    dim = _checks.integer("dim", dim, 1, 2**20)
    clusters = _checks.integer("clusters", clusters, 1, rows)
    queries = _checks.integer("queries", queries, 0, 2**32)
    neighbours = _checks.integer("neighbours", neighbours, 1, rows)
    spread = _finite("spread", spread)
    if spread < 0:
        raise ValueError(f"spread must be >= 0, got {spread}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    # Values reach 6.77 * (1 + 1.01 * spread) (|normal| <= 6.77), and the float64 squared
    # distances dim * (twice that)^2: both must stay finite, as uniform's values do.
    largest = min(float(np.finfo(dtype).max), math.sqrt(sys.float_info.max / dim) / 2)
    limit = (largest / 6.77 - 1) / 1.01
    if spread > limit:
        raise ValueError(f"spread must be at most {limit:g} for {np.dtype(dtype).name} with "
                         f"dim={dim} (every value and distance finite), got {spread:g}")
    seed = seed_or_random(seed)
    normal = np.empty((clusters + rows + queries) * dim)  # one normal stream, in turn
    fill_tensor(normal, "normal", seed=seed, max_threads=max_threads)
    centres = normal[:clusters * dim].reshape(clusters, dim)
    base = normal[clusters * dim:(clusters + rows) * dim].reshape(rows, dim)
    base *= spread
    base += np.resize(centres, (rows, dim))  # row i gets centre i % clusters
    targets = fill_tensor(np.empty(queries, np.int64), low=0, high=rows, seed=seed,
                          max_threads=max_threads)
    query = normal[(clusters + rows) * dim:].reshape(queries, dim) * (spread / 100)
    query += base[targets]
    base, query = base.astype(dtype), query.astype(dtype)
    if normalize:
        _normalize(base, max_threads)
        _normalize(query, max_threads)
    return base, query, _nearest(base, query, neighbours)


def _nearest(base: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """ids of the k nearest base rows of every query, nearest first (ties: lower id)."""
    q = query.astype(np.float64)
    step = max(1, _NEIGHBOUR_CHUNK // max(1, len(q) * base.shape[1]))
    best_d = np.full((len(query), 0), np.inf)
    best_i = np.empty((len(query), 0), np.int64)
    for at in range(0, len(base), step):
        b = base[at:at + step].astype(np.float64)
        d = ((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        best_d = np.concatenate([best_d, d], 1)
        best_i = np.concatenate([best_i, np.broadcast_to(np.arange(at, at + len(b)), d.shape)], 1)
        order = np.lexsort((best_i, best_d), axis=1)[:, :k]
        best_d = np.take_along_axis(best_d, order, 1)
        best_i = np.take_along_axis(best_i, order, 1)
    return np.ascontiguousarray(best_i)
