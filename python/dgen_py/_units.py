"""Sizes as people write them ('4KiB', '1.5G') and as dgen prints them ('1.5 KiB')."""

from __future__ import annotations

import re
from fractions import Fraction

from ._checks import MAX_SIZE

SIZE_EXAMPLES = "examples: 4096, 4KiB, 10G, 1.5TiB"
# Like GNU dd: K/M/G/T/P/E and KiB/MiB/... are powers of 1024, KB/MB/... powers of 1000.
UNITS = {"": 1, "b": 1,
         **{p: 1024**i for i, p in enumerate("kmgtpe", 1)},
         **{p + "ib": 1024**i for i, p in enumerate("kmgtpe", 1)},
         **{p + "b": 1000**i for i, p in enumerate("kmgtpe", 1)}}
SIZE = re.compile(r"\s*(\d+\.?\d*|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'4KiB' -> 4096. K/KiB = 1024, KB = 1000 (case-insensitive); fractions are allowed
    when they give a whole number of bytes (1.5K = 1536)."""
    m = SIZE.fullmatch(text)
    if not m or m[2].lower() not in UNITS:
        raise ValueError(f"{text!r} is not a size ({SIZE_EXAMPLES})")
    value = Fraction(m[1]) * UNITS[m[2].lower()]
    if value.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number of bytes ({SIZE_EXAMPLES})")
    if value > MAX_SIZE:
        raise ValueError(f"{text!r} is larger than the largest size, 2**63-1 bytes")
    return int(value)


def human(n: float) -> str:
    """1536 -> '1.5 KiB', 4096 -> '4 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f}".rstrip("0").rstrip(".") + f" {unit}"
        n /= 1024
