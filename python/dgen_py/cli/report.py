"""What commands print: messages on stderr, JSON, progress bars, rates and identities."""

from __future__ import annotations

import contextlib
import json
import sys

from .. import identity
from .. import _holds
from .._core import MAX_COMPRESS_RATIO
from .._holds import TOLERANCE, content_ratio
from .._units import human


def say(message: str) -> None:
    print(f"dgen: {message}", file=sys.stderr)


def print_json(value) -> None:
    print(json.dumps(value, indent=2))


@contextlib.contextmanager
def progress(args, total: int, what: str):
    """A progress bar with rate and ETA on a terminal; None in pipes and with --json."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    class Bar(tqdm):  # sizes and rate in the units of the summaries: 1.5 GiB, 0.55 GB/s
        @property
        def format_dict(self):
            d = super().format_dict
            d["done"] = human(d["n"]) + (f"/{human(d['total'])}" if d["total"] else "")
            d["speed"] = rate(d["n"], d["elapsed"]) if d["elapsed"] else "? GB/s"
            return d
    shape = ("{desc}: {percentage:3.0f}%|{bar}| {done} [{elapsed}<{remaining}, {speed}]"
             if total else "{desc}: {done} [{elapsed}, {speed}]")
    with Bar(total=total, desc=what, bar_format=shape, file=sys.stderr, leave=False,
             dynamic_ncols=True) as bar:
        yield bar.update


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / max(seconds, 1e-9) / 1e9:.2f} GB/s"


def identity_line(i: dict) -> str:
    """'seed 1, size 4096, dedup 2, ...': the fields at their plain value left out."""
    return ", ".join(identity.shown(i, "shown"))


def identity_flags(i: dict) -> str:
    """'--seed 1 --size 4096 ...': the options that make this identity again."""
    return " ".join(identity.shown(i, "flag"))


def held_line(i: dict, held: dict) -> str:
    """What a report adds: the dedup ratio the size holds, where dedup was asked for."""
    return "" if i["dedup_ratio"] == 1 else f", holds dedup {held['dedup_ratio']:.3f}"


def warn_held(i: dict, held: dict, payload: bool = False) -> None:
    """Warn where the size holds the dedup ratio off the request by more than 1%; with
    payload (a training dataset) the size is that of its samples' bytes together."""
    want = i["dedup_ratio"]
    if abs(held["dedup_ratio"] / want - 1) <= TOLERANCE:
        return
    size = i["size"]
    of, what = (" of payload", "payload (samples' bytes together)") if payload else ("", "size")
    where = (f"; {human(held['smallest_size'])} ({held['smallest_size']} bytes) is the "
             f"smallest {what} from {human(size)} up that holds it within 1%"
             if held["smallest_size"] else "")
    say(f"warning: {human(size)}{of} holds dedup {held['dedup_ratio']:.3f}, not the "
        f"{want:g} requested ({held['unique_units']} unique units of {held['units']}: the "
        f"ratio shows over whole windows of runs, docs/data-model.md){where}")


CONTENT_TOLERANCE = 0.03  # the calibration's promise within a profile's range


def warn_content(i: dict) -> None:
    """Before a write: warn where binary or text content compresses more than 3% off the
    compress_ratio of identity (or options) i; not for the default 1 (no ratio asked: the
    profile's least compressible pages)."""
    kind, want = i.get("content") or "flat", i.get("compress_ratio") or 1
    if kind == "flat" or want == 1:
        return
    got, version = content_ratio(kind, want, i.get("format_version"))
    if abs(got / want - 1) > CONTENT_TOLERANCE + 1e-9:  # a table value on the line is in
        low, high = (content_ratio(kind, r, version)[0] for r in (1, MAX_COMPRESS_RATIO))
        say(f"warning: {kind} content in format {version} compresses {low:.2f} to "
            f"{high:.2f} (zstd -3 over 1 MiB frames, in steps): {want:g} requested gives "
            f"{got:.2f}")


def warn_files(i: dict, files: list[dict]) -> None:
    """One warning for the files that, read alone, hold the dedup ratio off the request by
    more than 1% (a manifest of dgen write gives each file's holds); a note where the
    dataset has too many units to count them per file."""
    want, units = i["dedup_ratio"], -(-i["size"] // i["dedup_unit"])
    if len(files) > 1 and want != 1 and units > _holds.MAX_COUNTED:
        say(f"note: the dedup each file holds read alone is not counted: {units} units, more "
            f"than the {_holds.MAX_COUNTED} a manifest counts one by one")
    held = [(f["holds"]["dedup_ratio"], f["path"]) for f in files if "holds" in f]
    off = sorted(h for h in held if abs(h[0] / want - 1) > TOLERANCE)
    if not off:
        return
    worst = max(off, key=lambda h: abs(h[0] / want - 1))
    say(f"warning: {len(off)} of {len(files)} files hold dedup {off[0][0]:.2f}-"
        f"{off[-1][0]:.2f} read alone, not the {want:g} requested (worst {worst[1]}: "
        f"{worst[0]:.3f}; the ratio shows over whole windows of runs, docs/data-model.md)")


def written_line(m: dict, noun: str) -> str:
    """The line of a dataset written as `noun`s ("file(s)", "object(s)")."""
    n = m["identity"]["size"]
    ranks = f" by {len(m['ranks'])} ranks" if "ranks" in m else ""
    return (f"wrote {human(n)} ({n} bytes) in {len(m['files'])} {noun}{ranks} at "
            f"{rate(n, m['seconds'])}; {identity_line(m['identity'])}"
            f"{held_line(m['identity'], m['holds'])}")


def report_written(args, m: dict, line, shown: dict | None = None) -> int:
    """What a command that wrote a dataset prints: its manifest (`shown`, when given) as
    JSON, or line(m) and where the manifest is; and a warning where its size holds less
    dedup than requested."""
    if "holds" in m:
        warn_held(m["identity"], m["holds"], payload="dgen_dataset" in m)
    if "dgen_manifest" in m:
        warn_files(m["identity"], m["files"])
    if args.json:
        print_json(m if shown is None else shown)
    else:
        print(line(m))
        print(f"manifest {m['manifest']}")
    return 0


def report_checked(args, r: dict, text) -> int:
    """What a command that verified prints: its warnings, then r as JSON or text(r); the
    exit code 0 when every byte matched, else 1."""
    for warning in r["warnings"]:
        say(f"warning: {warning}")
    print_json(r) if args.json else print(text(r))
    return 0 if r["ok"] else 1
