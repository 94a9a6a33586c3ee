"""Argument types and the options commands share; the identity's come from identity.FIELDS.

Every type's error names the value and what is accepted; Parser prints it on one line.
"""

from __future__ import annotations

import argparse
import math
import re

from .. import _checks, identity
from .._units import parse_size
from ..identity import integer_text


def arg(parse):
    """An argparse type from a parser that raises ValueError naming the value."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def integer(lo: int, hi: int):
    return arg(integer_text(lo, hi))


def number(lo: float, hi: float, accepted: str):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and lo < v <= hi):
            raise ValueError(f"{text!r} is not {accepted}")
        return v
    return arg(parse)


def _buffer_size(text):
    v = parse_size(text)
    if not 4096 <= v <= 1 << 40:
        raise ValueError(f"{text!r} is not a buffer size in [4KiB, 1TiB]")
    return v


def _thread_list(text):
    parse = integer_text(1, _checks.MAX_THREADS)
    return [parse(part) for part in text.split(",")]


def _block_sizes(text):
    return [parse_size(part) for part in text.split(",")]


size = arg(parse_size)
buffer_size = arg(_buffer_size)
thread_list = arg(_thread_list)
block_sizes = arg(_block_sizes)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # No abbreviations: `--format npy` must not be taken for `--format-version npy`.
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):
        """One line, no usage dump: `dgen: error: --size: '10X' is not a size (...)`."""
        self.exit(2, f"dgen: error: {re.sub(r'^argument ', '', message)}\n")


def add_identity(c, new: bool, names=None, helps=None) -> None:
    """The identity's options, one per row of identity.FIELDS (and the dedup_for preset),
    in --help order: for a new dataset with the table's defaults, else (verify) as
    overrides of the manifest. `names` picks some, `helps` replaces their help texts."""
    for f in identity.options():
        if names is not None and f.name not in names:
            continue
        text = (helps or {}).get(f.name) or (f.help if new else f.verify_help)
        if f.parse is None:  # a switch
            c.add_argument(f.option, action="store_true", default=f.plain if new else None,
                           help=text)
            continue
        kwargs = {"default": f.plain} if new and f.plain is not None else {}
        c.add_argument(f.option, metavar=f.metavar, type=arg(f.parse), help=text,
                       **({"required": True} if new and f.given else {}), **kwargs)


def identity_options(args) -> dict:
    """The identity's values given (or defaulted) besides size, named as in the API."""
    return {f.name: getattr(args, f.name) for f in identity.FIELDS if f.name != "size"}


def resolve_dedup_for(args) -> None:
    """--dedup-for becomes the values it picks (what every command and manifest then sees);
    --dedup-unit, --dedup-run or --dedup-window given beside it is refused. A command that
    sets keep_dedup_for (dgen dataset: its writer refuses presets its files cannot honour)
    keeps the preset as given, checked alone."""
    if getattr(args, "dedup_for", None) is None:
        return
    given = {k: getattr(args, k) for k in identity.PRESET_PICKS
             if getattr(args, k) is not None}
    try:
        chosen = identity.apply_preset({**given, "dedup_for": args.dedup_for})
    except ValueError as e:
        flag = next(k for k in identity.PRESET_PICKS if f" {k}" in str(e)).replace("_", "-")
        raise ValueError(f"--dedup-for {args.dedup_for} chooses --{flag} itself: give one "
                         f"of them, not both") from None
    for k in () if getattr(args, "keep_dedup_for", False) else identity.PRESET_PICKS:
        setattr(args, k, chosen[k])


def threads(c) -> None:
    c.add_argument("--threads", metavar="N", type=integer(1, _checks.MAX_THREADS),
                   help="worker threads (default: DGEN_THREADS, else every CPU this "
                   "process may use)")


def json_flag(c) -> None:
    c.add_argument("--json", action="store_true", help="print JSON for machines")


def mpi_flags(c) -> None:
    g = c.add_mutually_exclusive_group()
    g.add_argument("--mpi", dest="mpi", action="store_true", default=None,
                   help="run as one job over the ranks of mpirun/srun (default: when "
                   "a launcher started more than one rank)")
    g.add_argument("--no-mpi", dest="mpi", action="store_false",
                   help="run every rank on its own, as without MPI")
