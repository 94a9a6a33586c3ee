"""analyze(): measure the dedup, compression, zero pages and entropy of any data."""

from __future__ import annotations

import contextlib
import errno
import itertools
import numbers
import os
import statistics
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import lz4.frame
import numpy as np
import xxhash
import zstandard

from . import _checks, _core
from ._cdc import Chunker, cdc_sizes
from ._generator import Generator
from ._fs import DatasetTree
from .manifest import MANIFEST_NAME, MANIFEST_SUFFIX, load_manifest

PAGE = 4096
MAX_BLOCK = 2**30
DEFAULT_BLOCK_SIZES = tuple(PAGE << i for i in range(9))  # 4 KiB .. 1 MiB
CHUNK = 64 * 1024 * 1024  # read size; memory is two chunks plus the page digests
PIECE = 4 * 1024 * 1024  # work item for the thread pool, a whole number of frames
DIGEST = 16  # bytes of each page's XXH3-128 digest
ZERO_PAGE = np.frombuffer(xxhash.xxh3_128_digest(bytes(PAGE)), np.uint64)

# What `dgen analyze` compresses without --sample: zstd-1 and lz4 every frame, the slow ones
# a share that costs about what zstd-1 does (zstd-3 is about 2 and zlib-6 about 20 times
# slower: benchmarks/analyze.py prints them).
CLI_SAMPLE = {"zstd-3": 1 / 4, "zlib-6": 1 / 16}

# The per-block spread: every 16th aligned page compressed alone with zstd -3, as a file
# system that compresses 4 KiB blocks sees it (about a fifth of what zstd-1 costs).
SPREAD_EVERY = 16

# Factories, because a ZstdCompressor must not be shared between threads.
COMPRESSORS = {
    "zstd-1": lambda: zstandard.ZstdCompressor(level=1).compress,
    "zstd-3": lambda: zstandard.ZstdCompressor(level=3).compress,
    "lz4": lambda: lz4.frame.compress,
    "zlib-6": lambda: lambda data: zlib.compress(data, 6),
}


def analyze(source, *, block_sizes=None, frame_size=1048576,
            compressors=("zstd-1", "zstd-3", "lz4", "zlib-6"), sample=None,
            threads=None, progress=None, cdc=(), timing=False) -> dict:
    """Measure what a dedup engine and a compressor would make of `source`.

    `source` is a path (str or os.PathLike), any bytes-like object (bytes, bytearray,
    memoryview, numpy array, BytesView: the buffer protocol), a Generator, read in full from
    offset 0 (its position is left at the end), or a binary file (anything with readinto:
    open(), dgen_py.s3.open_dataset()), read to its end. A path may be a dataset: a
    directory or a manifest (see dataset_files()); its files are read in dataset order as
    one stream, so duplicates across files count and pages and frames run on across file
    boundaries. Files and Generators are streamed in 64 MiB chunks (or one frame, if
    larger), so memory stays at two chunks plus 16 bytes per 4 KiB page; buffers are read in
    place. `progress`, if given, is called with the number of bytes measured as work
    completes.

    Every aligned 4 KiB page is hashed once with XXH3-128 (a dedup engine's SHA-256 finds
    the same duplicates: a chance collision among 2**40 pages has odds below 2**-48, and
    XXH3 digests pages 9x faster here: benchmarks/analyze.py); a larger block is
    identified by the sequence of its pages' digests. `block_sizes` (default 4 KiB ..
    1 MiB) must be powers of two in [4096, 2**30]. Compression cuts the data into independent frames of
    `frame_size` bytes (a multiple of 4096 up to 2**30; the last frame may be shorter) and
    compresses each one-shot with each of `compressors` ("zstd-1", "zstd-3", "lz4",
    "zlib-6"). `sample` in (0, 1] compresses only that share of the frames, evenly spread
    and always including frame 0 (0.25: frames 0, 4, 8, ...); a dict gives a share per
    compressor ({"zlib-6": 0.125}: zlib-6 every 8th frame, the others every frame).
    `threads` (default: DGEN_THREADS where set, else the CPUs this process may use)
    measure 4 MiB pieces in parallel;
    the result does not depend on it. `cdc`: average chunk sizes (each a power of two in
    [256, 2**28]) at which to measure what a content-defined chunking engine finds:
    FastCDC (pyfastcdc; minimum a quarter, maximum 8 times the average) over the whole
    stream, each chunk identified by its XXH3-128 digest. `timing=True` adds each
    compressor's speed in MB of input per CPU-second of its own calls (varies run to run,
    so it is off by default and results compare equal).

    Returns a JSON-serialisable dict:
        "source": the path, or the type name of the object
        "bytes": bytes read
        "dedup": {"<block size>": {"blocks": full aligned blocks, "unique": distinct
                  blocks, "ratio": blocks / unique, "ignored_bytes": the partial block
                  at the end, not counted}}
        "compression": {"frame_size", "frames": all frames, "frames_compressed",
                        "bytes_compressed": input bytes of the compressed frames (at
                        the share `sample` gives compressors not in a dict),
                        "ratios": {"<compressor>": input bytes / compressed bytes},
                        "sampled": {"<compressor>": {"frames_compressed",
                                                     "bytes_compressed"}},
                        "cpu_mb_per_s": {"<compressor>": ...}, with `timing`}
        "block_spread": {"block_size": 4096, "compressor": "zstd-3", "blocks": every
                         16th aligned page, each compressed alone, "p10", "p50", "p90":
                         the 10th/50th/90th percentile of their ratios}
        "cdc": {"<average>": {"chunks", "unique": distinct chunks, "stored_bytes": bytes
                of the distinct chunks, "ratio": bytes / stored_bytes}}, with `cdc`
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
    default, samplers = _samplers(sample, names)
    chunkers = [Chunker(avg) for avg in cdc_sizes(cdc)]
    threads = (_checks.threads(None) or len(os.sched_getaffinity(0)) if threads is None
               else _checks.integer("threads", threads, 1, _checks.MAX_THREADS))
    piece = frame_size * max(1, PIECE // frame_size)
    chunk = piece * max(1, CHUNK // piece)

    digests = bytearray()
    hist = np.zeros(256, np.int64)
    packed = np.zeros((3, len(names) + 1), np.int64)  # compressed, read, frames; last: default
    cpu = np.zeros(len(names) + 1)
    spread = []
    total = zero = 0

    def collect(futures, nbytes):
        nonlocal zero
        for future in futures[:len(chunkers)]:
            future.result()
        for future in futures[len(chunkers):]:
            d, z, h, p, c, b = future.result()
            digests.extend(d)
            hist[:] += h
            packed[:] += p
            cpu[:] += c
            spread.extend(b)
            zero += z
        if progress:
            progress(nbytes)

    with contextlib.ExitStack() as stack:
        label, chunks = _open(source, chunk, stack)
        pool = ThreadPoolExecutor(threads)
        stack.callback(pool.shutdown, cancel_futures=True)
        # One thread per chunker: each cuts the stream in order, beside the pieces' work.
        serial = [ThreadPoolExecutor(1) for _ in chunkers]
        for executor in serial:
            stack.callback(executor.shutdown, cancel_futures=True)
        pending = deque()
        for data in chunks:
            pending.append(([*(e.submit(c.feed, data) for e, c in zip(serial, chunkers)),
                             *(pool.submit(_measure, data[o:o + piece],
                                         (total + o) // frame_size, frame_size,
                                         [*samplers, default], names, total + o, timing)
                               for o in range(0, len(data), piece))], len(data)))
            total += len(data)
            if len(pending) == 2:  # the reader is about to refill the oldest buffer
                collect(*pending.popleft())
        while pending:
            collect(*pending.popleft())
    for c in chunkers:
        c.finish()

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
    out, read, frames = (row.tolist() for row in packed)
    return {
        "source": label,
        "bytes": total,
        "dedup": dedup,
        "compression": {
            "frame_size": frame_size,
            "frames": -(-total // frame_size),
            "frames_compressed": frames[-1],
            "bytes_compressed": read[-1],
            "ratios": {name: r / n if n else None for name, r, n in zip(names, read, out)},
            "sampled": {name: {"frames_compressed": f, "bytes_compressed": r}
                        for name, f, r in zip(names, frames, read)},
            **({"cpu_mb_per_s": {name: r / s / 1e6 if s else None
                                 for name, r, s in zip(names, read, cpu)}} if timing else {}),
        },
        "block_spread": _spread(spread),
        **({"cdc": {str(c.average): c.result(total) for c in chunkers}} if chunkers else {}),
        "zero_pages": {"count": zero, "share": zero / pages if pages else None},
        "entropy_bits_per_byte": float((p * np.log2(1 / p)).sum()),
        "ignored_tail_bytes": total - pages * PAGE,
    }


def _measure(view, first_frame, frame_size, samplers, names, at, timing):
    """One piece at stream offset `at`: page digests, zero pages, byte histogram, per
    compressor (then for the default share) compressed bytes, bytes read and frames of its
    sampled frames, the CPU-seconds of each compressor's calls (with `timing`), and the
    compressed sizes of the spread's pages."""
    n = len(view)
    page = xxhash.xxh3_128_digest
    digests = b"".join([page(view[o:o + PAGE]) for o in range(0, n - PAGE + 1, PAGE)])
    zero = int(np.count_nonzero((np.frombuffer(digests, np.uint64).reshape(-1, 2)
                                 == ZERO_PAGE).all(1)))
    hist = np.array(_core.byte_histogram(view), np.int64)
    packers = [COMPRESSORS[name]() for name in names]
    packed = np.zeros((3, len(samplers)), np.int64)
    cpu = np.zeros(len(samplers))
    clock = time.thread_time if timing else lambda: 0.0
    for i, o in enumerate(range(0, n, frame_size), first_frame):
        frame = view[o:o + frame_size]
        for j, sampled in enumerate(samplers):
            if sampled(i):  # the last sampler, the default share, only counts
                t = clock()
                packed[:, j] += (len(packers[j](frame)) if j < len(packers) else 0,
                                 len(frame), 1)
                cpu[j] += clock() - t
    block = COMPRESSORS["zstd-3"]()
    first = -(-at // PAGE) * PAGE - at  # the first page whose index is a multiple of EVERY
    first += (-((at + first) // PAGE) % SPREAD_EVERY) * PAGE
    spread = [len(block(view[o:o + PAGE]))
              for o in range(first, n - PAGE + 1, PAGE * SPREAD_EVERY)]
    return digests, zero, hist, packed, cpu, spread


def _spread(sizes: list[int]) -> dict:
    ratios = sorted(PAGE / s for s in sizes)
    q = (statistics.quantiles(ratios, n=10, method="inclusive") if len(ratios) > 1
         else ratios * 9 or [None] * 9)
    return {"block_size": PAGE, "compressor": "zstd-3", "blocks": len(ratios),
            "p10": q[0], "p50": q[4], "p90": q[8]}


def dataset_files(path) -> list[str] | None:
    """The files of the dataset at `path` in dataset order; None for a plain file.

    A directory with a manifest (dgen-manifest.json): the files it lists, by offset. A
    directory without one: its regular files (not hidden, not manifests) by name. A
    manifest itself (dgen-manifest.json or FILE.dgen.json): the files it lists.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        manifest = os.path.join(path, MANIFEST_NAME)
        if not os.path.lexists(manifest):
            names = sorted(e.name for e in os.scandir(path) if e.is_file(follow_symlinks=False)
                           and not e.name.startswith(".") and e.name != MANIFEST_NAME
                           and not e.name.endswith(MANIFEST_SUFFIX))
            if not names:
                raise IsADirectoryError(errno.EISDIR, "directory holds no files to analyze",
                                        path)
            return [os.path.join(path, name) for name in names]
        path = manifest
    elif not (os.path.basename(path) == MANIFEST_NAME or path.endswith(MANIFEST_SUFFIX)):
        return None
    return _manifest_files(path)


def _manifest_files(path: str) -> list[str]:
    record = load_manifest(path)  # refuses a symlink, FIFO, device or oversized file
    if record is None:
        raise FileNotFoundError(errno.ENOENT, "no such manifest", path)
    listed = record.get("files") if isinstance(record, dict) else None
    if not isinstance(listed, list) or not all(
            isinstance(x, dict) and isinstance(x.get("path"), str)
            and isinstance(x.get("offset"), int) for x in listed):
        raise ValueError(f"{path}: \"files\" must be a list of {{path, offset}} objects")
    base = os.path.dirname(path)
    out = []
    for x in sorted(listed, key=lambda x: x["offset"]):
        # A file of the dataset, maybe in a subdirectory (training datasets: train/...).
        parts = x["path"].split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{path}: files[].path must name a file in {base or '.'}, "
                             f"got {x['path']!r}")
        out.append(os.path.join(base, *parts))
    return out


def _open(source, chunk, stack):
    """(label, iterator of memoryviews of at most `chunk` bytes) for any accepted source."""
    if isinstance(source, (str, os.PathLike)):
        listed = dataset_files(source)
        readers = (_file_readers([source], None) if listed is None
                   else _file_readers(listed, _dataset_root(source)))
        stack.callback(readers.close)
        return os.fsdecode(source), _read_chunks(readers, chunk)
    if isinstance(source, Generator):
        source.seek(0)
        return "Generator", _read_chunks([source.readinto], chunk)
    if hasattr(source, "readinto"):  # a binary file: open(), dgen_py.s3.open_dataset()
        return getattr(source, "name", type(source).__name__), _read_chunks([source.readinto],
                                                                            chunk)
    try:
        view = memoryview(source)
    except TypeError:
        raise TypeError(f"source must be a path, a bytes-like object, a dgen_py.Generator or "
                        f"a binary file, got {type(source).__name__}") from None
    view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    return type(source).__name__, (view[o:o + chunk] for o in range(0, len(view), chunk))


def _dataset_root(path) -> str:
    path = os.fspath(path)
    return path if os.path.isdir(path) else os.path.dirname(path) or "."


def _file_readers(paths, root):
    """readinto of each file in turn; a file is closed when the next is asked for. The files
    of a dataset (under `root`) are opened without following symlinks."""
    tree = None
    if root is not None:
        tree = DatasetTree.at(root)
    try:
        for path in paths:
            fd = (os.open(path, os.O_RDONLY) if tree is None
                  else tree.open(os.path.relpath(path, root), os.O_RDONLY))
            with open(fd, "rb", buffering=0) as f:
                yield f.readinto
    finally:
        if tree is not None:
            tree.close()


def _read_chunks(readers, chunk):
    """Full chunks (the last may be short) read from the readers in turn, as one stream,
    into two buffers used in turn."""
    buffers = (memoryview(_checks.buffer(chunk)), memoryview(_checks.buffer(chunk)))
    readers = iter(readers)
    readinto = next(readers, None)
    for buf in itertools.cycle(buffers):
        n = 0
        while n < chunk and readinto:
            if got := readinto(buf[n:]):
                n += got
            else:
                readinto = next(readers, None)
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


def _samplers(value, names):
    """(the sampler for the share `value` gives, [the sampler of each compressor])."""
    if not isinstance(value, dict):
        one = _sampler(value)
        return one, [one] * len(names)
    for name in value:
        if name not in COMPRESSORS:
            raise ValueError(f"sample: unknown compressor {name!r}; accepted: "
                             f"{', '.join(COMPRESSORS)}")
    every = _sampler(None)
    return every, [_sampler(value[n]) if n in value else every for n in names]


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
