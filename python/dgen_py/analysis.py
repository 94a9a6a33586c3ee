"""analyze(): measure the dedup, compression, zero pages and entropy of any data."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import numbers
import os
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import lz4.frame
import numpy as np
import zstandard

from . import _checks
from ._generator import Generator

PAGE = 4096
MAX_BLOCK = 2**30
DEFAULT_BLOCK_SIZES = tuple(PAGE << i for i in range(9))  # 4 KiB .. 1 MiB
CHUNK = 64 * 1024 * 1024  # read size; memory is two chunks plus the page digests
PIECE = 4 * 1024 * 1024  # work item for the thread pool, a whole number of frames
DIGEST = 16  # bytes kept of each page's SHA-256: collisions stay out of reach
ZERO_PAGE = hashlib.sha256(bytes(PAGE)).digest()[:DIGEST]

# Factories, because a ZstdCompressor must not be shared between threads.
COMPRESSORS = {
    "zstd-1": lambda: zstandard.ZstdCompressor(level=1).compress,
    "zstd-3": lambda: zstandard.ZstdCompressor(level=3).compress,
    "lz4": lambda: lz4.frame.compress,
    "zlib-6": lambda: lambda data: zlib.compress(data, 6),
}


def analyze(source, *, block_sizes=None, frame_size=1048576,
            compressors=("zstd-1", "zstd-3", "lz4", "zlib-6"), sample=None,
            threads=None) -> dict:
    """Measure what a dedup engine and a compressor would make of `source`.

    `source` is a path (str or os.PathLike), any bytes-like object (bytes, bytearray,
    memoryview, numpy array, BytesView: the buffer protocol) or a Generator, read in full
    from offset 0 (its position is left at the end). Files and Generators are streamed in
    64 MiB chunks (or one frame, if larger), so memory stays at two chunks plus 16 bytes
    per 4 KiB page; buffers are read in place.

    Every aligned 4 KiB page is hashed once with SHA-256; a larger block is identified by
    the sequence of its pages' digests. `block_sizes` (default 4 KiB .. 1 MiB) must be
    powers of two in [4096, 2**30]. Compression cuts the data into independent frames of
    `frame_size` bytes (a multiple of 4096 up to 2**30; the last frame may be shorter) and
    compresses each one-shot with each of `compressors` ("zstd-1", "zstd-3", "lz4",
    "zlib-6"). `sample` in (0, 1] compresses only that share of the frames, evenly spread
    and always including frame 0 (0.25: frames 0, 4, 8, ...). `threads` defaults to the
    CPUs this process may use.

    Returns a JSON-serialisable dict:
        "source": the path, or the type name of the object
        "bytes": bytes read
        "dedup": {"<block size>": {"blocks": full aligned blocks, "unique": distinct
                  blocks, "ratio": blocks / unique, "ignored_bytes": the partial block
                  at the end, not counted}}
        "compression": {"frame_size", "frames": all frames, "frames_compressed",
                        "bytes_compressed": input bytes of the compressed frames,
                        "ratios": {"<compressor>": input bytes / compressed bytes}}
        "zero_pages": {"count": all-zero aligned 4 KiB pages, "share": count / pages}
        "entropy_bits_per_byte": Shannon entropy of the byte histogram, 0.0 .. 8.0
        "ignored_tail_bytes": bytes after the last full 4 KiB page (not in zero_pages)
    Ratios and shares with nothing to measure (empty input, a block larger than the
    data) are None; counts are then 0 and the entropy is 0.0.
    """
    sizes = _block_sizes(block_sizes)
    frame_size = _checks.integer("frame_size", frame_size, PAGE, MAX_BLOCK)
    if frame_size % PAGE:
        raise ValueError(f"frame_size must be a multiple of 4096 in [4096, {MAX_BLOCK}], "
                         f"got {frame_size}")
    names = _compressor_names(compressors)
    sampled = _sampler(sample)
    threads = (len(os.sched_getaffinity(0)) if threads is None
               else _checks.integer("threads", threads, 1, _checks.MAX_THREADS))
    piece = frame_size * max(1, PIECE // frame_size)
    chunk = piece * max(1, CHUNK // piece)

    digests = bytearray()
    hist = np.zeros(256, np.int64)
    packed = [0] * len(names)
    total = zero = read = frames = 0

    def collect(futures):
        nonlocal zero, read, frames
        for future in futures:
            d, z, h, p, r, f = future.result()
            digests.extend(d)
            hist[:] += h
            packed[:] = [a + b for a, b in zip(packed, p)]
            zero, read, frames = zero + z, read + r, frames + f

    with contextlib.ExitStack() as stack:
        label, chunks = _open(source, chunk, stack)
        pool = ThreadPoolExecutor(threads)
        stack.callback(pool.shutdown, cancel_futures=True)
        pending = deque()
        for data in chunks:
            pending.append([pool.submit(_measure, data[o:o + piece], (total + o) // frame_size,
                                        frame_size, sampled, names)
                            for o in range(0, len(data), piece)])
            total += len(data)
            if len(pending) == 2:  # the reader is about to refill the oldest buffer
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())

    dedup = {}
    for size in sizes:
        blocks = total // size
        rows = np.frombuffer(digests, np.dtype((np.void, DIGEST * size // PAGE)), blocks)
        unique = len(np.unique(rows))
        dedup[str(size)] = {"blocks": blocks, "unique": unique,
                            "ratio": blocks / unique if blocks else None,
                            "ignored_bytes": total - blocks * size}
    pages = total // PAGE
    p = hist[hist > 0] / total if total else np.zeros(0)
    return {
        "source": label,
        "bytes": total,
        "dedup": dedup,
        "compression": {
            "frame_size": frame_size,
            "frames": -(-total // frame_size),
            "frames_compressed": frames,
            "bytes_compressed": read,
            "ratios": {name: read / n if n else None for name, n in zip(names, packed)},
        },
        "zero_pages": {"count": zero, "share": zero / pages if pages else None},
        "entropy_bits_per_byte": float((p * np.log2(1 / p)).sum()),
        "ignored_tail_bytes": total - pages * PAGE,
    }


def _measure(view, first_frame, frame_size, sampled, names):
    """One piece: page digests, zero pages, byte histogram, compressed frame sizes."""
    n = len(view)
    digests = [hashlib.sha256(view[o:o + PAGE]).digest()[:DIGEST]
               for o in range(0, n - PAGE + 1, PAGE)]
    # Counting byte pairs is several times faster than bincount over single bytes, and
    # 1 MiB slices keep bincount's temporary in cache.
    words = np.frombuffer(view, np.uint16, n // 2)
    pairs = sum((np.bincount(words[i:i + 2**19], minlength=65536)
                 for i in range(0, len(words), 2**19)), np.zeros(65536, np.int64))
    pairs = pairs.reshape(256, 256)
    hist = pairs.sum(0) + pairs.sum(1)
    if n % 2:
        hist[view[-1]] += 1
    packers = [COMPRESSORS[name]() for name in names]
    packed = [0] * len(names)
    read = frames = 0
    for i, o in enumerate(range(0, n, frame_size), first_frame):
        if sampled(i):
            frame = view[o:o + frame_size]
            packed = [size + len(pack(frame)) for size, pack in zip(packed, packers)]
            read, frames = read + len(frame), frames + 1
    return b"".join(digests), digests.count(ZERO_PAGE), hist, packed, read, frames


def _open(source, chunk, stack):
    """(label, iterator of memoryviews of at most `chunk` bytes) for any accepted source."""
    if isinstance(source, (str, os.PathLike)):
        f = stack.enter_context(open(source, "rb", buffering=0))
        return os.fsdecode(source), _read_chunks(f.readinto, chunk)
    if isinstance(source, Generator):
        source.seek(0)
        return "Generator", _read_chunks(source.readinto, chunk)
    try:
        view = memoryview(source)
    except TypeError:
        raise TypeError(f"source must be a path, a bytes-like object or a dgen_py.Generator, "
                        f"got {type(source).__name__}") from None
    view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    return type(source).__name__, (view[o:o + chunk] for o in range(0, len(view), chunk))


def _read_chunks(readinto, chunk):
    """Full chunks (the last may be short) read into two buffers used in turn."""
    buffers = (memoryview(bytearray(chunk)), memoryview(bytearray(chunk)))
    for buf in itertools.cycle(buffers):
        n = 0
        while n < chunk and (got := readinto(buf[n:])):
            n += got
        if n:
            yield buf[:n]
        if n < chunk:
            return


def _block_sizes(value) -> list[int]:
    if value is None:
        return list(DEFAULT_BLOCK_SIZES)
    sizes = sorted({_checks.integer("block_sizes", v, PAGE, MAX_BLOCK)
                    for v in ((value,) if isinstance(value, numbers.Integral) else value)})
    for v in sizes:
        if v & (v - 1):
            raise ValueError(f"block_sizes must be powers of two in [4096, {MAX_BLOCK}], "
                             f"got {v}")
    return sizes


def _compressor_names(value) -> list[str]:
    names = list(dict.fromkeys((value,) if isinstance(value, str) else value))
    for name in names:
        if name not in COMPRESSORS:
            raise ValueError(f"unknown compressor {name!r}; accepted: {', '.join(COMPRESSORS)}")
    return names


def _sampler(value):
    """frame index -> compress it? Frame 0 always, then spread evenly at share p/q."""
    if value is None:
        return lambda i: True
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"sample must be None or a number in (0, 1], got {value!r}")
    v = float(value)
    if not 0 < v <= 1:  # also rejects NaN
        raise ValueError(f"sample must be None or a number in (0, 1], got {value!r}")
    # The nearest simple fraction, so that 1/3 takes every third frame (as float it is < 1/3).
    share = Fraction(v).limit_denominator(2**20) or Fraction(1, 2**20)
    p, q = share.numerator, share.denominator
    return lambda i: (i * p) // q > ((i - 1) * p) // q
