"""Generator and Verifier, over the core's Stream (_oneshot.py: the one-shot helpers)."""

from __future__ import annotations

import io
import operator
import secrets

from . import _checks, _core, identity
from .identity import DEFAULT, Identity
from ._core import BytesView, VerifyResult

DEFAULT_CHUNK_SIZE = 32 * 1024 * 1024
DEFAULT_DEDUP_UNIT = DEFAULT.dedup_unit
ALL_CHANGE = identity.ALL_CHANGE  # change_rate's default object, tested by `is` below
# The identity fields the core takes by keyword after numa_node (callers pass their values
# as a tuple in this order), and their defaults: left at those (the same objects), they need
# no checks, which keeps a 4 KiB call as cheap as before they existed.
_OPTIONS = tuple(f for f in identity.FIELDS if f.name not in
                 ("seed", "size", "dedup_ratio", "compress_ratio", "dedup_unit"))
_NAMES = tuple(f.name for f in _OPTIONS)
_DEFAULTS = tuple(f.default for f in _OPTIONS)


def _stream(size, dedup_ratio, compress_ratio, numa_mode, max_threads, numa_node, seed,
            dedup_unit, block_size=None, dedup_for=None, options=_DEFAULTS) -> _core.Stream:
    """A core Stream; `options` are the values of the fields of _OPTIONS, in their order."""
    size = _checks.size(size)
    dedup_ratio = _checks.ratio("dedup_ratio", dedup_ratio)
    compress_ratio = _checks.ratio("compress_ratio", compress_ratio)
    numa_mode = _checks.numa_mode(numa_mode)
    threads = _checks.threads(max_threads)
    numa_node = _checks.numa_node(numa_node)
    seed = _checks.seed(seed)
    if seed is None:
        seed = secrets.randbits(64)
    if dedup_for is not None:
        picked = identity.apply_preset({**dict(zip(_NAMES, options)),
                                        "dedup_unit": dedup_unit, "dedup_for": dedup_for})
        dedup_unit, options = picked["dedup_unit"], tuple(map(picked.get, _NAMES))
    dedup_unit = _checks.dedup_unit(dedup_unit)
    block = (0 if block_size is None
             else _checks.integer("block_size", block_size, 4096, _core.MAX_BLOCK_SIZE))
    if all(map(operator.is_, options, _DEFAULTS)):
        return _core.Stream(size, dedup_ratio, compress_ratio, seed, dedup_unit, threads, block,
                            numa_mode, numa_node)
    checked = {f.name: f.check(v) for f, v in zip(_OPTIONS, options)}
    return _core.Stream(size, dedup_ratio, compress_ratio, seed, dedup_unit, threads, block,
                        numa_mode, numa_node, **checked)


class Generator(io.RawIOBase):
    """A dataset of `size` bytes, read sequentially (fill_chunk, get_chunk) or as a file.

    The bytes depend only on the identity (`identity`: seed, size, ratios and every other
    field of identity.FIELDS) and the offset: chunk sizes, threads and call patterns never
    change them. With seed=None a seed
    is drawn from the OS; `seed` tells which, so the run can be reproduced.
    content="binary" or "text" makes LZ-structured pages that compress like shared
    libraries or source files (compress_ratio: what zstd -3 measures over 1 MiB frames);
    "flat" (the default) the random bytes and filler of every format.

    start= and stop= slice the dataset: the Generator then makes dataset bytes
    [start, stop), identical to that range of the whole, and position, size, seek, fill
    and verify count from `start` (shard(rank, world) cuts balanced slices).

    set_seed(s) at position P restarts (dgen-py 0.3.0 does at P a multiple of 1 MiB;
    README, "Differences from dgen-py 0.3"): position p then holds byte
    p - P of seed s's dataset (of the slice), up to the same total size; `_shift` is P.
    The stream itself reads dataset offsets in [start, _end), _end = stop - P.
    """

    def __init__(self, size, dedup_ratio=1.0, compress_ratio=1.0, numa_mode="auto",
                 max_threads=None, numa_node=None, chunk_size=None, block_size=None,
                 seed=None, method="parallel", *, dedup_unit=DEFAULT_DEDUP_UNIT,
                 dedup_run=DEFAULT.dedup_run, dedup_shift=DEFAULT.dedup_shift,
                 dedup_skew=DEFAULT.dedup_skew, generation=DEFAULT.generation,
                 change_rate=ALL_CHANGE, format_version=DEFAULT.format_version, start=0,
                 stop=None, dedup_window=DEFAULT.dedup_window, dedup_for=None,
                 content=DEFAULT.content):
        super().__init__()
        _checks.method(method)
        self._s = _stream(size, dedup_ratio, compress_ratio, numa_mode, max_threads,
                          numa_node, seed, dedup_unit, block_size, dedup_for,
                          (dedup_run, dedup_shift, dedup_skew, generation, change_rate,
                           dedup_window, content, format_version))
        self._args = dict(size=size, dedup_ratio=dedup_ratio, compress_ratio=compress_ratio,
                          numa_mode=numa_mode, max_threads=max_threads, numa_node=numa_node,
                          chunk_size=chunk_size, block_size=block_size, dedup_unit=dedup_unit,
                          dedup_run=dedup_run, dedup_shift=dedup_shift,
                          dedup_skew=dedup_skew, generation=generation,
                          change_rate=change_rate, format_version=format_version,
                          dedup_window=dedup_window, dedup_for=dedup_for, content=content)
        self._chunk = (DEFAULT_CHUNK_SIZE if chunk_size is None
                       else _checks.integer("chunk_size", chunk_size, 1, _checks.MAX_SIZE))
        whole = self._s.size
        self._stop = whole if stop is None else _checks.integer("stop", stop, 0, whole)
        self._start = _checks.integer("start", start, 0, self._stop)
        self._shift, self._end = 0, self._stop
        self._sliced = (self._start, self._stop) != (0, whole)
        if self._sliced:
            self._s.seek(self._start)
        self._direct_fill()
        self._args.update(start=self._start, stop=self._stop)

    def _restart(self, shift: int) -> None:
        """Position `shift` holds the slice's first byte from here on (see set_seed)."""
        self._shift, self._end = shift, self._stop - shift
        self._sliced = (self._start, self._end) != (0, self._s.size)
        self._s.seek(self._start)
        self._direct_fill()

    def _direct_fill(self) -> None:
        """fill_chunk straight to the core where nothing cuts the buffer (a third of a 4 KiB
        call's cost saved); a slice, a restarted seed or close() take it away again, and a
        subclass's own fill_chunk never gets it."""
        if self._sliced or self.closed or type(self).fill_chunk is not Generator.fill_chunk:
            self.__dict__.pop("fill_chunk", None)
        else:
            self.fill_chunk = self._s.fill

    def close(self) -> None:
        super().close()
        self._direct_fill()

    def shard(self, rank, world) -> Generator:
        """Share `rank` of `world` of this Generator's bytes (dgen_py.split, cut at
        multiples of the dedup unit), as a Generator sliced to it, at its start.

        After set_seed at position P the shares cut the new seed's bytes from P on (the
        stream's [start, _end)): those before P came from the old seed."""
        from ._shares import shard
        a, b = shard(self._end - self._start, rank, world, self._args["dedup_unit"])
        return _rebuild({**self._args, "start": self._start + a,
                         "stop": self._start + b}, self._s.seed, 0)

    @property
    def start(self) -> int:
        """Dataset offset of this Generator's first byte (0 unless sliced)."""
        return self._start

    @property
    def stop(self) -> int:
        """Dataset offset where this Generator's bytes end (the dataset size unless
        sliced)."""
        return self._stop

    def _room(self, buf):
        """buf, cut to the bytes left in the slice."""
        left = self._end - self._s.position
        view = memoryview(buf)
        return view.cast("B")[:max(0, left)] if view.nbytes > left else buf

    # --- the dgen-py API -------------------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        return self._chunk

    @property
    def seed(self) -> int:
        return self._s.seed

    @property
    def identity(self) -> Identity:
        """The dataset identity these bytes follow (the seed as drawn, a dedup_for preset
        as the values it picked): what a manifest of them records."""
        given = {name: self._args[name] for name in identity.NAMES if name != "seed"}
        return Identity.of(**given, seed=self._s.seed, dedup_for=self._args["dedup_for"])

    def fill_chunk(self, buffer) -> int:
        """Write the next min(len(buffer), remaining) bytes into buffer; 0 once complete."""
        if self.closed:
            _closed()
        return self._s.fill(self._room(buffer) if self._sliced else buffer)

    def get_chunk(self, chunk_size=None) -> BytesView | None:
        """The next min(chunk_size, remaining) bytes, or None once complete (or for 0)."""
        if self.closed:
            _closed()
        n = (self._chunk if chunk_size is None
             else _checks.integer("chunk_size", chunk_size, 0, _checks.MAX_SIZE))
        if n == 0:
            return None
        if self._sliced:
            n = min(n, self._end - self._s.position)
        view = self._s.read(n) if n > 0 else ()
        return view if len(view) else None

    def reset(self) -> None:
        """Back to position 0, where the seed in use starts its stream again."""
        if self.closed:
            _closed()
        self._restart(0)

    def position(self) -> int:
        return self._s.position - self._start + self._shift

    def total_size(self) -> int:
        return self._stop - self._start

    def is_complete(self) -> bool:
        return self._s.position >= self._end

    def set_seed(self, seed, *, restart=True) -> None:
        """Use a new seed (None: drawn from the OS, as dgen-py does).

        The bytes from here on are the new seed's stream from its beginning, while
        position() counts on to the same total size (so seeding each object gives it its
        seed's bytes; dgen-py 0.3.0 does so only at a multiple of 1 MiB, elsewhere going on
        at the new stream's offset position() % 1 MiB). restart=False instead goes on at the current
        offset of the new seed's dataset.
        """
        if self.closed:
            _closed()
        seed = _checks.seed(seed)
        restart = _checks.flag("restart", restart)
        self._s.set_seed(secrets.randbits(64) if seed is None else seed)
        if restart:
            self._restart(self.position())

    def verify(self, buf, offset=0, *, max_ranges=20) -> VerifyResult:
        """Compare data read back (any buffer) with bytes [offset, offset + len(buf)).

        Reports exact offsets of the first `max_ranges` mismatching ranges and counts all;
        a range that reads as zeros, or a whole unit that belongs elsewhere, says so.
        Does not move the position. In a slice, `offset` counts from its start and the
        ranges reported carry dataset offsets (start + offset), so that the results of
        every shard of a dataset read alike. After a restarting set_seed at position P,
        `offset` counts from the new seed's bytes, which position P holds.
        """
        if self.closed:
            _closed()
        offset = _checks.integer("offset", offset, 0, _checks.MAX_SIZE)
        max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)
        if self._sliced:
            n = memoryview(buf).nbytes
            if offset + n > self._stop - self._start:
                raise ValueError(f"offset + len(buf) must be at most the slice's "
                                 f"{self._stop - self._start} bytes, got {offset} + {n}")
            offset += self._start
        return self._s.verify(buf, offset, max_ranges)

    def verifier(self, *, max_ranges=20) -> Verifier:
        """A Verifier for data read back in pieces (a file in chunks), in offset order.

        Its `result` is what one verify() over all the pieces would report, with ranges
        merged across piece boundaries; memory stays constant however much is added.
        """
        if self.closed:
            _closed()
        max_ranges = _checks.integer("max_ranges", max_ranges, 0, 2**31)
        return Verifier(self._s.verifier(max_ranges), self._start)

    @property
    def unique_units(self) -> int:
        """Distinct dedup units in the dataset (docs/data-model.md gives the count)."""
        return self._s.unique_units

    @property
    def format_version(self) -> int:
        """The data format these bytes follow (1, 2, the default, 3, 4 or 5)."""
        return self._s.format_version

    # --- file-like: shutil.copyfileobj, io.BufferedReader, boto3 upload_fileobj ----------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.closed:
            _closed()
        return self._s.fill(self._room(buf) if self._sliced else buf)

    def read(self, size=-1) -> bytes:
        """The next min(size, remaining) bytes (all of them for size -1 or None), made in
        place in one bytes object; a size that cannot be had raises MemoryError naming it."""
        if self.closed:
            _closed()
        size = -1 if size is None else _checks.integer("size", size, -_checks.MAX_SIZE,
                                                       _checks.MAX_SIZE)
        left = max(0, self._end - self._s.position)
        return self._s.read_bytes(left if size < 0 else min(size, left))

    def readall(self) -> bytes:
        return self.read()

    def seek(self, offset, whence=io.SEEK_SET) -> int:
        """Go to position `offset` (counted from the slice's start in a slice). After
        set_seed at position P, only positions from P on hold the seed's bytes."""
        if self.closed:
            _closed()
        offset = _checks.integer("offset", offset, -_checks.MAX_SIZE, _checks.MAX_SIZE)
        size = self._stop - self._start
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position(), io.SEEK_END: size}.get(whence)
        if base is None:
            raise ValueError(f"whence must be 0, 1 or 2, got {whence!r}")
        target = base + offset
        if not 0 <= target <= size:
            raise ValueError(f"offset must land in [0, {size}], got {target}")
        if target < self._shift:
            raise ValueError(f"offset must land in [{self._shift}, {size}], got {target}: the "
                             f"bytes before position {self._shift} came from the seed "
                             f"before set_seed(); reset() starts this seed over at 0")
        self._s.seek(self._start + target - self._shift)
        return target

    def tell(self) -> int:
        if self.closed:
            _closed()
        return self.position()

    def __reduce__(self):
        """Pickles as identity + position, so a Generator can go to another process."""
        return _rebuild, (self._args, self._s.seed, self.tell(), self._shift)

    def __repr__(self) -> str:
        where = f", start={self._start}, stop={self._stop}" if self._sliced else ""
        return (f"Generator(size={self._s.size}{where}, position={self.tell()}, "
                f"seed={self._s.seed})")


StreamingGenerator = Generator


def _closed():
    raise ValueError("I/O operation on a closed Generator")


def _rebuild(args: dict, seed: int, position: int, shift: int = 0) -> Generator:
    g = Generator(seed=seed, **args)
    g._restart(shift)
    g.seek(position)
    return g


class Verifier:
    """Checks data that arrives in pieces against a dataset: see Generator.verifier()."""

    def __init__(self, core, start=0):
        self._v, self._start = core, start

    def add(self, buf, offset) -> None:
        """Compare buf with bytes [offset, offset + len(buf)) (of the slice the Generator
        was cut to); offset must not go back."""
        offset = _checks.integer("offset", offset, 0, _checks.MAX_SIZE - self._start)
        self._v.add(buf, self._start + offset)

    @property
    def result(self) -> VerifyResult:
        """Everything added so far, as one verify() call over it would report it."""
        return self._v.result

    @property
    def last(self):
        """The last range found, listed in result.ranges or not; None when none was (what a
        range of the next piece may join, when several Verifiers check adjacent pieces)."""
        return self._v.last
