"""BufferPool: many small objects of unique data, as dgen-py 0.3.0's rolling pool serves.

A pool is a position in one dataset of unbounded size: next_slice(n) hands out its next n
bytes. So the slices are unique data (a byte range is never handed out twice), and
together, in order, they are a prefix of the dataset: they carry its dedup and compression
ratios exactly (per 4 KiB block when slice sizes are multiples of 4 KiB, since each slice
is then made of whole pages). reconfigure() with new ratios moves to a new dataset of a
seed derived from the pool's, unrelated to the data handed out before.

`remaining` follows 0.3.0's accounting of its 1 MiB blocks (a slice larger than what is
left opens a new block; slices over 1 MiB do not count), so code that watches it sees the
same numbers; the data itself is never reused.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import weakref

from .. import _checks
from .._core import BytesView
from .._generator import DEFAULT_DEDUP_UNIT, _stream

BLOCK = 1 << 20  # 0.3.0's pool block

# Every pool, so that a forked child can give each a new lock: one held by another thread
# at the fork would stay taken for good there (the holder does not exist in the child).
# The child's pool also moves to a seed of its own, drawn from the OS: going on where the
# parent's stood, it would hand out the parent's next slices (why pickling is refused).
_pools: weakref.WeakSet = weakref.WeakSet()


def _renew_in_child() -> None:
    for pool in list(_pools):
        pool._lock = threading.Lock()
        pool._seed, pool._generation = secrets.randbits(64), 0
        pool._open(pool._dedup, pool._compress)


os.register_at_fork(after_in_child=_renew_in_child)


class BufferPool:
    """Unique data for high-frequency small objects: next_slice(size) -> BytesView.

    Each slice is new data from one dataset (dedup_ratio, compress_ratio, seed); seed=None
    draws one from the OS, and `seed` tells which, so a run can be reproduced.
    """

    def __init__(self, dedup_ratio=1.0, compress_ratio=1.0, *, seed=None):
        seed = _checks.seed(seed)
        self._seed = secrets.randbits(64) if seed is None else seed
        self._lock = threading.Lock()
        _pools.add(self)
        self._generation = 0
        self._remaining = BLOCK
        self._open(_checks.ratio("dedup_ratio", dedup_ratio),
                   _checks.ratio("compress_ratio", compress_ratio))

    def _open(self, dedup: float, compress: float) -> None:
        # Generation k reads the dataset of seed + k * golden ratio: format 2 mixes seeds
        # non-linearly, so these are unrelated datasets.
        seed = (self._seed + self._generation * 0x9E3779B97F4A7C15) % 2**64
        self._s = _stream(_checks.MAX_SIZE, dedup, compress, "auto", None, None, seed,
                          DEFAULT_DEDUP_UNIT)
        self._dedup, self._compress = dedup, compress

    def next_slice(self, size) -> BytesView:
        """The pool's next `size` bytes (>= 1), as a read-only BytesView of its own."""
        size = _checks.integer("size", size, 1, _checks.MAX_SIZE)
        with self._lock:
            if size <= BLOCK:
                if size > self._remaining:
                    self._remaining = BLOCK
                self._remaining -= size
            stream = self._s
        return stream.read(size)

    def reconfigure(self, dedup_ratio=1.0, compress_ratio=1.0) -> None:
        """Use new ratios from the next slice on; the same ratios change nothing.

        Slices already handed out stay valid; a new block starts (remaining is 1 MiB).
        """
        dedup = _checks.ratio("dedup_ratio", dedup_ratio)
        compress = _checks.ratio("compress_ratio", compress_ratio)
        with self._lock:
            if (dedup, compress) == (self._dedup, self._compress):
                return
            self._generation += 1
            self._open(dedup, compress)
            self._remaining = BLOCK

    @property
    def remaining(self) -> int:
        """Bytes left in the current 1 MiB block before the next one opens."""
        return self._remaining

    @property
    def dedup_ratio(self) -> float:
        return self._dedup

    @property
    def compress_ratio(self) -> float:
        return self._compress

    @property
    def seed(self) -> int:
        """The seed the pool's datasets derive from."""
        return self._seed

    def __reduce__(self):
        raise TypeError("BufferPool cannot be pickled: a copy would hand out the same slices as "
                        "the original, so their data would not be unique; make one pool per "
                        "process instead (BufferPool(seed=...) with a seed of its own)")

    def __repr__(self) -> str:
        return (f"BufferPool(dedup_ratio={self._dedup:g}, compress_ratio={self._compress:g}, "
                f"seed={self._seed})")


def bench_rolling_pool(obj_size, total_bytes) -> tuple[int, float]:
    """Time BufferPool.next_slice(obj_size) over max(total_bytes // obj_size, 1) calls,
    after one warm-up call: returns (bytes generated, seconds)."""
    obj_size = _checks.integer("obj_size", obj_size, 1, _checks.MAX_SIZE)
    total_bytes = _checks.integer("total_bytes", total_bytes, 0, _checks.MAX_SIZE)
    calls = max(total_bytes // obj_size, 1)
    pool = BufferPool()
    pool.next_slice(obj_size)
    start = time.perf_counter()
    for _ in range(calls):
        pool.next_slice(obj_size)
    return calls * obj_size, time.perf_counter() - start
