"""Uniform float32 values and L2-normalized vectors: dgen-py 0.3.0's numeric functions.

Value i of a seed's stream is a pure function of (seed, i): thread count, NUMA mode and
how the values are split never change it (docs/data-model.md, "Uniform float32").
"""

from __future__ import annotations

import secrets

from .. import _checks, _core
from .._core import BytesView

# The largest count whose bytes fit the sizes the core accepts.
MAX_COUNT = _checks.MAX_SIZE // 4


def seed_or_random(seed) -> int:
    seed = _checks.seed(seed)
    return secrets.randbits(64) if seed is None else seed


def generate_uniform(count, low=0.0, high=1.0, max_threads=None, numa_mode="auto",
                     seed=None) -> BytesView:
    """`count` float32 values uniform in [low, high), as a BytesView of 4 * count bytes.

    Read them with ``np.frombuffer(view, dtype=np.float32)``. seed=None draws a seed from
    the OS; a given seed always gives the same values, whatever max_threads or numa_mode.
    """
    count = _checks.integer("count", count, 0, MAX_COUNT)
    low, high = _checks.float32_range(low, high)
    threads = _checks.threads(max_threads)
    numa_mode = _checks.numa_mode(numa_mode)
    seed = seed_or_random(seed)
    return _core.uniform_f32(count, low, high, seed, threads, numa_mode)


def generate_uniform_vectors(rows, dim, low=0.0, high=1.0, normalize=True, max_threads=None,
                             numa_mode="auto", seed=None) -> BytesView:
    """`rows` vectors of `dim` float32 values uniform in [low, high), each scaled to unit
    L2 norm unless normalize=False: a BytesView, read as
    ``np.frombuffer(v, np.float32).reshape(rows, dim)``.

    The values before normalizing are generate_uniform(rows * dim, low, high, seed=seed).
    """
    rows = _checks.integer("rows", rows, 0, MAX_COUNT)
    dim = _checks.integer("dim", dim, 1, MAX_COUNT)
    if rows * dim > MAX_COUNT:
        raise ValueError(f"rows * dim must be at most {MAX_COUNT}, got {rows} * {dim}")
    low, high = _checks.float32_range(low, high)
    normalize = _checks.flag("normalize", normalize)
    threads = _checks.threads(max_threads)
    numa_mode = _checks.numa_mode(numa_mode)
    seed = seed_or_random(seed)
    return _core.uniform_vectors(rows, dim, low, high, normalize, seed, threads, numa_mode)


def normalize_rows(buffer, dim, max_threads=None) -> None:
    """Scale each row of `dim` float32 values to unit L2 norm, in place.

    `buffer`: any writable C-contiguous buffer of float32 (numpy float32, array('f')) or of
    raw bytes (bytearray, a BytesView's copy), its length a multiple of dim * 4 bytes. Other
    typed buffers (float64, int8, ...) are refused rather than reinterpreted. The norm is
    taken in double; a row of zeros (or one holding inf or NaN) is left unchanged.
    """
    dim = _checks.integer("dim", dim, 1, MAX_COUNT)
    threads = _checks.threads(max_threads)
    _core.normalize_rows(buffer, dim, threads)
