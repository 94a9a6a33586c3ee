"""The one-shot helpers of the dgen-py API: a dataset into a new or a given buffer."""

from __future__ import annotations

from . import _checks, _core
from ._core import BytesView
from ._generator import ALL_CHANGE, DEFAULT_DEDUP_UNIT, _stream
from .identity import DEFAULT


def generate_buffer(size, dedup_ratio=1.0, compress_ratio=1.0, numa_mode="auto",
                    max_threads=None, numa_node=None, method="parallel", seed=None, *,
                    dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=DEFAULT.dedup_run,
                    dedup_shift=DEFAULT.dedup_shift, dedup_skew=DEFAULT.dedup_skew,
                    generation=DEFAULT.generation, change_rate=ALL_CHANGE,
                    format_version=DEFAULT.format_version, dedup_window=DEFAULT.dedup_window,
                    dedup_for=None, content=DEFAULT.content) -> BytesView:
    """`size` bytes of a dataset as a read-only, zero-copy BytesView."""
    _checks.method(method)
    s = _stream(size, dedup_ratio, compress_ratio, numa_mode, max_threads, numa_node, seed,
                dedup_unit, None, dedup_for, (dedup_run, dedup_shift, dedup_skew, generation,
                                              change_rate, dedup_window, content,
                                              format_version))
    return s.read(s.size)


generate_data = generate_buffer


def fill_buffer(buffer, dedup_ratio=1.0, compress_ratio=1.0, numa_mode="auto",
                max_threads=None, numa_node=None, method="parallel", seed=None, *,
                dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=DEFAULT.dedup_run,
                dedup_shift=DEFAULT.dedup_shift, dedup_skew=DEFAULT.dedup_skew,
                generation=DEFAULT.generation, change_rate=ALL_CHANGE,
                format_version=DEFAULT.format_version, dedup_window=DEFAULT.dedup_window,
                dedup_for=None, content=DEFAULT.content) -> int:
    """Fill a writable buffer in place with a dataset of len(buffer) bytes; returns the count."""
    _checks.method(method)
    try:
        view = memoryview(buffer)
    except TypeError:
        raise TypeError(f"buffer must be a writable buffer (bytearray, memoryview, numpy array, "
                        f"mmap, array.array), got {type(buffer).__name__}") from None
    with view:  # held until filled, so that buffer cannot be resized in between
        s = _stream(view.nbytes, dedup_ratio, compress_ratio, numa_mode, max_threads,
                    numa_node, seed, dedup_unit, None, dedup_for,
                    (dedup_run, dedup_shift, dedup_skew, generation, change_rate,
                     dedup_window, content, format_version))
        return s.fill(buffer)


generate_into_buffer = fill_buffer


def create_bytearrays(count, size) -> list[bytearray]:
    """`count` zeroed bytearrays of `size` bytes each, for fill_chunk/fill_buffer."""
    count = _checks.integer("count", count, 0, 2**31)
    size = _checks.integer("size", size, 0, _checks.MAX_SIZE)
    _core.check_memory(count * size)
    try:
        return [bytearray(size) for _ in range(count)]
    except MemoryError:
        raise MemoryError(f"asked {count * size} bytes ({count} bytearrays of {size}); Python "
                          f"could not allocate them") from None
