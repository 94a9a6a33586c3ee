"""Generator and the one-shot helpers, over the core's Stream."""

from __future__ import annotations

import io
import secrets

from . import _checks, _core
from ._core import BytesView, VerifyResult

DEFAULT_CHUNK_SIZE = 32 * 1024 * 1024
DEFAULT_DEDUP_UNIT = 128 * 1024


def _stream(size, dedup_ratio, compress_ratio, numa_mode, max_threads, numa_node, seed,
            dedup_unit, block_size=None) -> _core.Stream:
    size = _checks.size(size)
    dedup_ratio = _checks.ratio("dedup_ratio", dedup_ratio)
    compress_ratio = _checks.ratio("compress_ratio", compress_ratio)
    numa_mode = _checks.numa_mode(numa_mode)
    threads = _checks.threads(max_threads)
    numa_node = _checks.numa_node(numa_node)
    seed = _checks.seed(seed)
    if seed is None:
        seed = secrets.randbits(64)
    dedup_unit = _checks.dedup_unit(dedup_unit)
    block = (0 if block_size is None
             else _checks.integer("block_size", block_size, 4096, _core.MAX_BLOCK_SIZE))
    return _core.Stream(size, dedup_ratio, compress_ratio, seed, dedup_unit, threads, block,
                        numa_mode, numa_node)


class Generator(io.RawIOBase):
    """A dataset of `size` bytes, read sequentially (fill_chunk, get_chunk) or as a file.

    The bytes depend only on (seed, size, dedup_ratio, compress_ratio, dedup_unit) and the
    offset: chunk sizes, threads and call patterns never change them. With seed=None a seed
    is drawn from the OS; `seed` tells which, so the run can be reproduced.
    """

    def __init__(self, size, dedup_ratio=1.0, compress_ratio=1.0, numa_mode="auto",
                 max_threads=None, numa_node=None, chunk_size=None, block_size=None,
                 seed=None, method="parallel", *, dedup_unit=DEFAULT_DEDUP_UNIT):
        super().__init__()
        _checks.method(method)
        self._s = _stream(size, dedup_ratio, compress_ratio, numa_mode, max_threads,
                          numa_node, seed, dedup_unit, block_size)
        self._args = dict(size=size, dedup_ratio=dedup_ratio, compress_ratio=compress_ratio,
                          numa_mode=numa_mode, max_threads=max_threads, numa_node=numa_node,
                          chunk_size=chunk_size, block_size=block_size, dedup_unit=dedup_unit)
        self._chunk = (DEFAULT_CHUNK_SIZE if chunk_size is None
                       else _checks.integer("chunk_size", chunk_size, 1, _checks.MAX_SIZE))

    # --- the dgen-py API -------------------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        return self._chunk

    @property
    def seed(self) -> int:
        return self._s.seed

    def fill_chunk(self, buf) -> int:
        """Write the next min(len(buf), remaining) bytes into buf; 0 once complete."""
        if self.closed:
            _closed()
        return self._s.fill(buf)

    def get_chunk(self, chunk_size=None) -> BytesView | None:
        """The next min(chunk_size, remaining) bytes, or None once complete (or for 0)."""
        if self.closed:
            _closed()
        n = (self._chunk if chunk_size is None
             else _checks.integer("chunk_size", chunk_size, 0, _checks.MAX_SIZE))
        if n == 0:
            return None
        view = self._s.read(n)
        return view if len(view) else None

    def reset(self) -> None:
        self.seek(0)

    def position(self) -> int:
        return self._s.position

    def total_size(self) -> int:
        return self._s.size

    def is_complete(self) -> bool:
        return self._s.position >= self._s.size

    def set_seed(self, seed) -> None:
        """Use a new seed; the stream goes on from the current position with its bytes."""
        if self.closed:
            _closed()
        self._s.set_seed(_checks.integer("seed", seed, 0, _checks.MAX_SEED))

    def verify(self, buf, offset=0, *, max_ranges=20) -> VerifyResult:
        """Compare data read back (any buffer) with bytes [offset, offset + len(buf)).

        Reports exact offsets of the first `max_ranges` mismatching ranges and counts all;
        a range that reads as zeros, or a whole unit that belongs elsewhere, says so.
        Does not move the position.
        """
        if self.closed:
            _closed()
        offset = _checks.integer("offset", offset, 0, _checks.MAX_SIZE)
        max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)
        return self._s.verify(buf, offset, max_ranges)

    def verifier(self, *, max_ranges=20) -> Verifier:
        """A Verifier for data read back in pieces (a file in chunks), in offset order.

        Its `result` is what one verify() over all the pieces would report, with ranges
        merged across piece boundaries; memory stays constant however much is added.
        """
        max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)
        return Verifier(self._s.verifier(max_ranges))

    @property
    def unique_units(self) -> int:
        """Distinct dedup units in the dataset: max(1, round(units / dedup_ratio))."""
        return self._s.unique_units

    # --- file-like: shutil.copyfileobj, io.BufferedReader, boto3 upload_fileobj ----------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.closed:
            _closed()
        return self._s.fill(buf)

    def seek(self, offset, whence=io.SEEK_SET) -> int:
        if self.closed:
            _closed()
        offset = _checks.integer("offset", offset, -_checks.MAX_SIZE, _checks.MAX_SIZE)
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._s.position, io.SEEK_END: self._s.size}.get(whence)
        if base is None:
            raise ValueError(f"whence must be 0, 1 or 2, got {whence!r}")
        target = base + offset
        if not 0 <= target <= self._s.size:
            raise ValueError(f"offset must land in [0, {self._s.size}], got {target}")
        self._s.seek(target)
        return target

    def tell(self) -> int:
        if self.closed:
            _closed()
        return self._s.position

    def __reduce__(self):
        """Pickles as identity + position, so a Generator can go to another process."""
        return _rebuild, (self._args, self._s.seed, self._s.position)

    def __repr__(self) -> str:
        return (f"Generator(size={self._s.size}, position={self._s.position}, "
                f"seed={self._s.seed})")


StreamingGenerator = Generator


def _closed():
    raise ValueError("I/O operation on a closed Generator")


def _rebuild(args: dict, seed: int, position: int) -> Generator:
    g = Generator(seed=seed, **args)
    g.seek(position)
    return g


class Verifier:
    """Checks data that arrives in pieces against a dataset: see Generator.verifier()."""

    def __init__(self, core):
        self._v = core

    def add(self, buf, offset) -> None:
        """Compare buf with bytes [offset, offset + len(buf)); offset must not go back."""
        self._v.add(buf, _checks.integer("offset", offset, 0, _checks.MAX_SIZE))

    @property
    def result(self) -> VerifyResult:
        """Everything added so far, as one verify() call over it would report it."""
        return self._v.result


def generate_buffer(size, dedup_ratio=1.0, compress_ratio=1.0, numa_mode="auto",
                    max_threads=None, numa_node=None, method="parallel", seed=None, *,
                    dedup_unit=DEFAULT_DEDUP_UNIT) -> BytesView:
    """`size` bytes of a dataset as a read-only, zero-copy BytesView."""
    _checks.method(method)
    s = _stream(size, dedup_ratio, compress_ratio, numa_mode, max_threads, numa_node, seed,
                dedup_unit)
    return s.read(s.size)


generate_data = generate_buffer


def fill_buffer(buf, dedup_ratio=1.0, compress_ratio=1.0, numa_mode="auto",
                max_threads=None, numa_node=None, method="parallel", seed=None, *,
                dedup_unit=DEFAULT_DEDUP_UNIT) -> int:
    """Fill a writable buffer in place with a dataset of len(buf) bytes; returns the count."""
    _checks.method(method)
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError(f"buf must be a writable buffer (bytearray, memoryview, numpy array, "
                        f"mmap, array.array), got {type(buf).__name__}") from None
    with view:  # held until filled, so that buf cannot be resized in between
        s = _stream(view.nbytes, dedup_ratio, compress_ratio, numa_mode, max_threads,
                    numa_node, seed, dedup_unit)
        return s.fill(buf)


generate_into_buffer = fill_buffer


def create_bytearrays(count, size) -> list[bytearray]:
    """`count` zeroed bytearrays of `size` bytes each, for fill_chunk/fill_buffer."""
    count = _checks.integer("count", count, 0, 2**31)
    size = _checks.integer("size", size, 0, _checks.MAX_SIZE)
    return [bytearray(size) for _ in range(count)]
