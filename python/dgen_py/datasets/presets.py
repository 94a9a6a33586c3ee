"""Which dedup_for presets a training dataset can honour.

Every identity field makes the stream the payloads are cut from (a generation is that
stream written whole, as dgen write without --changed-only), and the files hold it raw
where the format does; but a preset names the engine that is to see the ratio, and the
containers put bytes between payloads. Measured at dedup 2: 128 KiB fixed blocks found
1.29 (payloads lie 4 KiB-aligned only); 4 KiB blocks found 1.00 in TFRecord samples of
60,000 bytes (packed, off the 4 KiB grid); FastCDC of 64 KiB found 3-6% of the saving in
TFRecord samples of 114,660 bytes, 8 KiB 76%, 4 KiB 85% (the framing cuts the chunks
astride it, in each copy elsewhere); npy files of half a chunk each, read in dataset
order, still gave 92% (the headers between their payloads are alike).
"""

from __future__ import annotations

from .. import _checks
from .spec import ALIGN, ALIGNED_RECORD


def _preset(value: str) -> tuple[str, int]:
    """(engine, size) of a valid preset, read as _checks.dedup_for reads it."""
    engine, _, size = value.strip().partition(":")
    num = size.strip().rstrip("bBiI").lower()
    digits = num.rstrip("km")
    return engine, int(digits) * _checks._SIZE_UNITS[num[len(digits):]]


def refuse_unhonoured(dedup_for, spec, entries) -> None:
    """ValueError, naming dedup_for, where the engine the preset names would not see the
    ratio in the files of `spec` (planned as `entries`)."""
    if dedup_for is None:
        return
    _checks.dedup_for(dedup_for)  # a malformed preset is refused as write_dataset does
    engine, size = _preset(dedup_for)
    packed = spec["format"] == "tfrecord"
    sample = min(e["dims"][0] * e["dims"][1] for e in entries)
    if engine == "fixed" and size > ALIGN:
        why, instead = (f"its payloads lie at {ALIGN}-byte aligned file offsets only, off the "
                        f"grid of {size}-byte blocks", "fixed:4KiB or cdc:SIZE")
    elif engine == "fixed" and packed and sample < ALIGNED_RECORD:
        why, instead = (f"TFRecord samples under {ALIGNED_RECORD} bytes (here {sample}) are "
                        f"packed off the {ALIGN}-byte grid", f"samples of {ALIGNED_RECORD} "
                        f"bytes or more")
    elif engine == "cdc" and packed and sample < 2 * size:
        why, instead = (f"a TFRecord sample of {sample} bytes holds fewer than two {size}-byte "
                        f"chunks, and the framing between samples cuts those astride it",
                        f"cdc:SIZE with SIZE at most {sample // 2} bytes")
    else:
        return
    raise ValueError(f"dedup_for: {dedup_for!r} cannot be honoured by this "
                     f"{spec['format']} training dataset: {why}; give {instead}")
