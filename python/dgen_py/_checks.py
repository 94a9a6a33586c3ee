"""Argument checks: every error names the parameter, the value and the accepted range."""

from __future__ import annotations

import math
import operator
import os
import struct

from . import _core

MAX_SIZE = 2**63 - 1
MAX_SEED = 2**64 - 1
MAX_THREADS = 1024
NUMA_MODES = ("auto", "uma", "disabled", "force")


def integer(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer, got {type(value).__name__} {value!r}"
        ) from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


MAX_RATIO = {"dedup_ratio": _core.MAX_DEDUP_RATIO, "compress_ratio": _core.MAX_COMPRESS_RATIO}


def number(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must be a finite number in [{lo:g}, {hi:g}], got {v!r}")
    return v


def ratio(name: str, value) -> float:
    if type(value) is float and 1.0 <= value <= MAX_RATIO[name]:  # the common case, quickly
        return value
    return number(name, value, 1.0, MAX_RATIO[name])


def flag(name: str, value) -> bool:
    """A switch such as direct=: only a bool, since any non-empty string is truthy."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def path(value) -> str:
    """str, bytes or os.PathLike, as a str (bytes decoded as the OS does)."""
    try:
        return os.fsdecode(value)
    except TypeError:
        raise TypeError(f"path must be a str, bytes or os.PathLike, got "
                        f"{type(value).__name__} {value!r}") from None


def buffer(size: int) -> bytearray:
    """bytearray(size), checked against the memory that can be had first; a MemoryError
    names the size either way (Python's own says nothing)."""
    _core.check_memory(size)
    try:
        return bytearray(size)
    except MemoryError:
        raise MemoryError(f"asked {size} bytes; Python could not allocate them") from None


def size(value) -> int:
    return integer("size", value, 0, MAX_SIZE)


def seed(value) -> int | None:
    return None if value is None else integer("seed", value, 0, MAX_SEED)


def threads(value) -> int:
    """max_threads: None means DGEN_THREADS when set (as in dgen-py 0.3.0), else 0: every
    CPU this process may use."""
    if value is None:
        env = os.environ.get("DGEN_THREADS")
        if not env:
            return 0
        try:
            n = int(env)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_THREADS:
            raise ValueError(f"DGEN_THREADS must be an integer in [1, {MAX_THREADS}], "
                             f"got {env!r}")
        return n
    return integer("max_threads", value, 1, MAX_THREADS)


def numa_mode(value) -> str:
    if not isinstance(value, str) or value.lower() not in NUMA_MODES:
        raise ValueError(f"numa_mode must be one of {', '.join(NUMA_MODES)}; got {value!r}")
    return value.lower()


def numa_node(value) -> int | None:
    """Range only: the core refuses a node that does not exist, naming those that do."""
    return None if value is None else integer("numa_node", value, 0, 2**32 - 1)


def dedup_unit(value) -> int:
    v = integer("dedup_unit", value, 4096, 64 * 1024 * 1024)
    if v & (v - 1):
        raise ValueError(
            f"dedup_unit must be a power of two in [4096, 67108864], got {v}"
        )
    return v


def method(value) -> str:
    """dgen-py 0.3's `method` keyword: accepted for compatibility, one engine serves all."""
    if not isinstance(value, str):
        raise TypeError(f"method must be a string, got {type(value).__name__}")
    return value


def dedup_run(value) -> int:
    return integer("dedup_run", value, 1, _core.MAX_DEDUP_RUN)


def generation(value) -> int:
    return integer("generation", value, 0, _core.MAX_GENERATION)


def change_rate(value) -> float:
    return number("change_rate", value, 0.0, 1.0)


def dedup_skew(value) -> float:
    """"uniform" (0.0) or a Zipf exponent in (0, MAX_DEDUP_SKEW]."""
    return 0.0 if value == "uniform" else number("dedup_skew", value, 0.0, _core.MAX_DEDUP_SKEW)


def format_version(value) -> int:
    return integer("format_version", value, _core.MIN_FORMAT_VERSION, _core.MAX_FORMAT_VERSION)


WINDOWS = (1, 4, 16, 64)  # runs per window from format 3 on: grids of 1, 2, 4 and 8 a side


def dedup_window(value) -> int:
    v = integer("dedup_window", value, 1, 64)
    if v not in WINDOWS:
        raise ValueError(f"dedup_window must be 1, 4, 16 or 64, got {v}")
    return v


CONTENTS = ("flat", "binary", "text")  # docs/data-model.md, "Content profiles"


def content(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"content must be a string, one of flat, binary, text; got "
                        f"{type(value).__name__}")
    if value not in CONTENTS:
        raise ValueError(f"content must be flat, binary or text, got {value!r}")
    return value


# dedup_for presets (docs/data-model.md, "Format 3"): a content-defined engine finds a copy
# through the chunks lying wholly inside it, so runs hold CDC_CHUNKS of its average chunks;
# a fixed-block engine needs a unit that is a multiple of its block.
CDC_CHUNKS = 32
CDC_SIZES = (4096, 8 << 20)
FIXED_SIZES = (4096, 64 << 20)
FRAME = 1 << 20  # copies at least this far apart: compressors' 1 MiB frames never see them
_SIZE_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20}
DEDUP_FOR_FORMS = "'cdc:SIZE' (SIZE a power of two in [4KiB, 8MiB]) or 'fixed:SIZE' " \
                  "(a power of two in [4KiB, 64MiB]), e.g. cdc:1MiB, fixed:4KiB"


def window_for(run_bytes: int) -> int:
    """Runs of FRAME bytes or more need no grid: a copy is a run or more from its original,
    out of a compressor's frame; shorter runs take format 2's grid of 8 x 8, whose copies
    lie 8 runs apart up to dedup 8 (a smaller grid puts an id's copies side by side in a
    row once the ratio exceeds its side)."""
    return 1 if run_bytes >= FRAME else 64


def dedup_for(value) -> dict:
    """The identity values a preset picks: format_version, dedup_unit, dedup_run,
    dedup_window."""
    if not isinstance(value, str):
        raise TypeError(f"dedup_for must be a string, {DEDUP_FOR_FORMS}; got "
                        f"{type(value).__name__}")
    engine, _, size = value.strip().partition(":")
    num = size.strip().rstrip("bBiI").lower()
    digits = num.rstrip("km")
    n = int(digits) * _SIZE_UNITS[num[len(digits):]] if digits.isdigit() else 0
    lo, hi = CDC_SIZES if engine == "cdc" else FIXED_SIZES
    if engine not in ("cdc", "fixed") or not lo <= n <= hi or n & (n - 1):
        raise ValueError(f"dedup_for must be {DEDUP_FOR_FORMS}; got {value!r}")
    if engine == "cdc":
        unit, run = n, CDC_CHUNKS
    else:
        unit, run = max(n, 128 << 10), 1
    return {"format_version": 3, "dedup_unit": unit, "dedup_run": run,
            "dedup_window": window_for(unit * run)}


FLOAT32_MAX = 3.4028234663852886e38


def float32(name: str, value) -> float:
    """A real number as the float32 it rounds to, finite."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    try:
        f = struct.unpack("f", struct.pack("f", v))[0]
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ValueError(f"{name} must be a finite float32 in [-{FLOAT32_MAX:g}, "
                         f"{FLOAT32_MAX:g}], got {v!r}")
    return f


def float32_range(low, high) -> tuple[float, float]:
    lo, hi = float32("low", low), float32("high", high)
    if not lo < hi:
        raise ValueError(f"low must be below high (as float32), got low={lo!r}, high={hi!r}")
    try:
        struct.pack("f", hi - lo)
    except OverflowError:
        raise ValueError(f"high - low must be at most {FLOAT32_MAX:g} (float32), got "
                         f"low={lo!r}, high={hi!r}") from None
    return lo, hi
