"""The dataset identity, defined once: the values the bytes of a dataset depend on.

FIELDS is the one table of them, in the order a manifest lists them. Each row gives the
field's API default, its bounds, its check, its command-line flag and help, how it shows in
a report, and when a manifest records it. The argparse options, the manifest's "identity",
the Generator's keywords and reports are all made from it, so a field is added here alone.
Query it as zstd's ZSTD_cParam_getBounds is queried: bounds("dedup_run") -> (1, 1048576).
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import types
from typing import Any, Callable

from . import _checks, _core
from ._units import SIZE_EXAMPLES, human, parse_size

ALL_CHANGE = 1.0  # change_rate's default: one object, so that a fast path can test it by `is`
WINDOW = _core.WINDOW_UNITS  # formats 3 to 5's default runs per window (and 1, 2's only)


# --- the command line's text -> value, each error naming the value and what is accepted ---
def integer_text(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise ValueError(f"{text!r} is not an integer in [{lo}, {hi}]")
        return v
    return parse


def _number_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _ratio_text(name: str) -> Callable[[str], float]:
    hi = _checks.MAX_RATIO[name]

    def parse(text):
        v = _number_text(text)
        if not (math.isfinite(v) and 1 <= v <= hi):
            raise ValueError(f"{text!r} is not a ratio in [1, {hi:g}]")
        return v
    return parse


def _unit_text(text: str) -> int:
    v = parse_size(text)
    if not 4096 <= v <= 64 << 20 or v & (v - 1):
        raise ValueError(f"{text!r} is not a power of two in [4KiB, 64MiB]")
    return v


def _skew_text(text: str) -> float:
    if text == "uniform":
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not 'uniform' or a Zipf exponent") from None
    return _checks.dedup_skew(v)


def _share_text(text: str) -> float:
    v = _number_text(text)
    if not 0 <= v <= 1:
        raise ValueError(f"{text!r} is not a share in [0, 1]")
    return v


def _dedup_for_text(text: str) -> str:
    _checks.dedup_for(text)
    return text


# --- the table ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Field:
    """One identity value. `plain` is its value where nothing is said: the command line's
    default for a new dataset and what a manifest that leaves it out means (None: it must be
    given). `shown` formats it in a report's identity line and `flag` as an option; `always`
    shows it there even at `plain`. `recorded(values)` says whether a manifest lists it."""
    name: str
    default: Any  # the API's default (Generator, write_dataset)
    bounds: tuple  # (lo, hi), or the values accepted
    check: Callable[[Any], Any]  # API value -> the value used; errors name the field
    parse: Callable[[str], Any] | None  # command-line text -> value (None: a switch)
    metavar: str | None
    help: str  # for a new dataset
    plain: Any
    place: int  # where the option stands in --help
    shown: str | Callable[[Any], str] = ""
    flag: str = ""
    always: bool = False
    recorded: Callable[[dict], bool] = lambda values: True
    verify_help: str = "default: from the manifest"  # verify takes it as an override
    required: bool = False  # a manifest must list it
    given: bool = False  # the command line asks it for a new dataset

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def _ratio_field(name, place, short, what):
    return Field(name, 1.0, (1.0, _checks.MAX_RATIO[name]),
                 lambda v: _checks.ratio(name, v), _ratio_text(name), "R",
                 f"default 1 ({what})", 1.0, place, short + " {:g}",
                 "--" + name.replace("_", "-") + " {:g}", always=True, required=True)


_SHIFT_HELP = ("each copy rotated by a keyed offset that is not a multiple of 4 KiB: "
               "fixed-block dedup finds ~nothing, content-defined chunking most of the ratio")
_FORMAT = _core.FORMAT_VERSION

FIELDS: tuple[Field, ...] = (
    Field("seed", None, (0, _checks.MAX_SEED), _checks.seed,
          integer_text(0, _checks.MAX_SEED), "N", "default: drawn at random", None, 3,
          "seed {}", "--seed {}", always=True, required=True),
    Field("size", None, (0, _checks.MAX_SIZE), _checks.size, parse_size, "SIZE",
          f"dataset size in bytes ({SIZE_EXAMPLES})", None, 0, "size {}", "--size {}",
          always=True, required=True, given=True,
          verify_help="default: from the manifest, else the file's size"),
    _ratio_field("dedup_ratio", 1, "dedup", "no duplicates"),
    _ratio_field("compress_ratio", 2, "compress", "incompressible"),
    Field("dedup_unit", 128 << 10, (4096, 64 << 20), _checks.dedup_unit, _unit_text, "SIZE",
          "power of two in [4KiB, 64MiB], default 128KiB", 128 << 10, 4,
          lambda v: f"dedup unit {human(v)}", "--dedup-unit {}", always=True, required=True),
    Field("dedup_run", 1, (1, _core.MAX_DEDUP_RUN), _checks.dedup_run,
          integer_text(1, _core.MAX_DEDUP_RUN), "N",
          "copies in runs of N units repeating N consecutive unique units, so "
          "content-defined chunkers find them (default 1; see docs/data-model.md for the run "
          "an engine needs)", 1, 5, "dedup run {}", "--dedup-run {}"),
    Field("dedup_shift", False, (False, True), lambda v: _checks.flag("dedup_shift", v), None,
          None, _SHIFT_HELP, False, 6, "shifted copies", "--dedup-shift",
          verify_help=_SHIFT_HELP + "; default: from the manifest"),
    Field("dedup_skew", "uniform", (0.0, _core.MAX_DEDUP_SKEW), _checks.dedup_skew,
          _skew_text, "S", "'uniform' (default) or a Zipf exponent: a hot set of units with "
          "many copies, most with few (ratio still exact)", 0.0, 7, "skew {:g}",
          "--dedup-skew {:g}"),
    Field("generation", 0, (0, _core.MAX_GENERATION), _checks.generation,
          integer_text(0, _core.MAX_GENERATION), "G", "the data after G rewrites (default 0)",
          0, 8, "generation {}", "--generation {}"),
    Field("change_rate", ALL_CHANGE, (0.0, 1.0), _checks.change_rate, _share_text, "C",
          "share of the unique units each rewrite changes, in [0, 1] (default 1)", 1.0, 9,
          "change rate {:g}", "--change-rate {:g}"),
    Field("dedup_window", WINDOW, _checks.WINDOWS, _checks.dedup_window,
          lambda text: _checks.dedup_window(integer_text(1, 64)(text)), "N",
          "format 3 to 5: runs per window, 1, 4, 16 or 64 (default); the ratio is exact at "
          "whole windows", WINDOW, 10, "dedup window {}", "--dedup-window {}",
          recorded=lambda values: values["format_version"] >= 3),
    Field("content", "flat", _checks.CONTENTS, _checks.content, _checks.content, "KIND",
          "what pages look like to a compressor: flat (default: random bytes then a repeated "
          "byte), binary or text (LZ-structured like executables or source; zstd -3 measures "
          "--compress-ratio; formats 4 and 5 make them closer for bzip2 and xz)", "flat", 11,
          "content {}", "--content {}",
          recorded=lambda values: values["content"] != "flat"),
    Field("format_version", _FORMAT, (_core.MIN_FORMAT_VERSION, _core.MAX_FORMAT_VERSION),
          _checks.format_version,
          integer_text(_core.MIN_FORMAT_VERSION, _core.MAX_FORMAT_VERSION), "V",
          f"data format, default {_FORMAT}; 1 reproduces datasets of dgen 0.4.0 and before; "
          f"3 sizes windows (--dedup-window, --dedup-for); 4 is 3 with binary and text pages "
          f"closer to real files for bzip2 and xz; 5 is 4 with text made of words", _FORMAT,
          13, "format {}", "--format-version {}", always=True),
)

# A preset, not a value of its own: it becomes the unit, run, window and format it picks.
_PRESET_HELP = ("format 3 (or 4 or 5, if given) with the dedup unit, run and window an engine "
                "sees the ratio with: "
                "cdc:SIZE (content-defined, average chunk SIZE, e.g. cdc:1MiB) or fixed:SIZE "
                "(fixed blocks, e.g. fixed:4KiB); the values chosen are recorded")
DEDUP_FOR = Field("dedup_for", None, (), _checks.dedup_for, _dedup_for_text, "ENGINE",
                  _PRESET_HELP, None, 12, verify_help=_PRESET_HELP)
PRESET_PICKS = ("dedup_unit", "dedup_run", "dedup_window", "format_version")

NAMES = tuple(f.name for f in FIELDS)
KEYWORDS = (*NAMES, DEDUP_FOR.name)  # the API keywords that say an identity
# A manifest must list these; it may leave the others out where they are `plain`.
REQUIRED = tuple(f.name for f in FIELDS if f.required)
DEFAULT = types.SimpleNamespace(**{f.name: f.default for f in FIELDS})


def field(name: str) -> Field:
    """The table's row for `name` (dedup_for included); KeyError names those there are."""
    rows = {f.name: f for f in (*FIELDS, DEDUP_FOR)}
    try:
        return rows[name]
    except KeyError:
        raise KeyError(f"{name!r} is not an identity field; they are "
                       f"{', '.join(rows)}") from None


def keywords_in(values: dict) -> dict:
    """The identity's keywords among `values`: a function taking them all passes on its
    own with keywords_in(locals())."""
    return {name: values[name] for name in KEYWORDS if name in values}


def bounds(name: str) -> tuple:
    """(lo, hi) of a numeric field, or the values a field accepts."""
    return field(name).bounds


def options() -> list[Field]:
    """The rows in the order of their command-line options (the preset included)."""
    return sorted((*FIELDS, DEDUP_FOR), key=lambda f: f.place)


def shown(values: dict, form: str) -> list[str]:
    """values as a report shows them: form "shown" (seed 1, size 4096, ...) or "flag"
    (--seed 1 --size 4096 ...); fields at their plain value only where `always`."""
    out = []
    for f in FIELDS:
        if f.always or values.get(f.name, f.plain) != f.plain:
            text = getattr(f, form)
            out.append(text(values[f.name]) if callable(text) else text.format(values[f.name]))
    return out


def apply_preset(values: dict) -> dict:
    """values with a dedup_for preset (key removed) turned into the values it picks; one of
    those given away from its default beside it is refused (format_version 3 to 5 may be:
    the preset keeps it)."""
    values = dict(values)
    preset = values.pop("dedup_for", None)
    if preset is None:
        return values
    chosen = _checks.dedup_for(preset)
    for name in PRESET_PICKS:
        given = values.get(name, field(name).default)
        later = range(chosen[name], _core.MAX_FORMAT_VERSION + 1)
        if name == "format_version" and given in later:
            chosen[name] = given
        elif given != field(name).default:
            raise ValueError(f"dedup_for={preset!r} chooses {name} itself "
                             f"({chosen[name]}): give dedup_for or {name}={given!r}, not both")
    return {**values, **{name: chosen[name] for name in PRESET_PICKS}}


class _Identity:
    """What the bytes of a dataset depend on, with the offset: every value checked and in
    the form a manifest records (dedup_skew "uniform" is 0.0). Identity.of(...) draws a seed
    and applies a dedup_for preset; record() is the manifest's "identity"."""
    _fields: tuple[Field, ...] = FIELDS

    def __post_init__(self):
        if self.seed is None:
            raise TypeError("seed must be an integer, got None (Identity.of draws one)")
        for f in self._fields:
            object.__setattr__(self, f.name, f.check(getattr(self, f.name)))
        if self.format_version < 3 and self.dedup_window != WINDOW:
            raise ValueError(f"dedup_window must be {WINDOW} in format_version "
                             f"{self.format_version} (formats 3 to 5 set it), got "
                             f"{self.dedup_window}")

    @classmethod
    def of(cls, **values):
        """From API keywords: defaults for those left out, a dedup_for preset applied and a
        seed of None drawn from the OS."""
        values = apply_preset(values)
        seed = _checks.seed(values.pop("seed", None))
        return cls(seed=secrets.randbits(64) if seed is None else seed, **values)

    def record(self) -> dict:
        """The manifest's "identity": every field in table order, less those it leaves
        out (dedup_window below format 3, content when flat)."""
        values = self.keywords()
        return {f.name: values[f.name] for f in self._fields if f.recorded(values)}

    @classmethod
    def from_record(cls, record: dict):
        """The identity a manifest's "identity" (record()'s form) describes."""
        return cls(**{f.name: record.get(f.name, f.plain) for f in cls._fields
                      if f.name in record or not f.required})

    def keywords(self) -> dict:
        """The values by name (Generator keywords that make these bytes)."""
        return {f.name: getattr(self, f.name) for f in self._fields}


def build(fields: tuple[Field, ...]) -> type:
    """The frozen dataclass of an identity table: one attribute per row, defaulting to its
    `plain` value (rows without one, seed and size, must be given)."""
    return dataclasses.make_dataclass(
        "Identity", [(f.name, Any) if f.plain is None else
                     (f.name, Any, dataclasses.field(default=f.plain)) for f in fields],
        bases=(_Identity,), namespace={"_fields": fields, "__module__": __name__},
        frozen=True)


Identity = build(FIELDS)
