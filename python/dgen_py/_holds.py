"""What a dataset's size holds of its dedup ratio (docs/data-model.md, "What a size holds").

A dataset shows its dedup ratio over whole windows of runs (64 runs in format 2,
dedup_window from format 3 on); a size that ends inside the first windows holds less (2 GiB of
1 MiB units in runs of 64: 1.33 for a requested 2).
Reports give the ratio held, and, where it is off by more than TOLERANCE, the smallest
size from the requested one up that holds the request; a manifest of several files gives
what each file holds read alone (file_holds).
"""

from __future__ import annotations

from ._generator import Generator

TOLERANCE = 0.01
MAX_STEPS = 1 << 16  # candidate sizes looked at (a window is at most 64 runs: far fewer suffice)


def holds(identity: dict) -> dict:
    """{"dedup_ratio": units / unique units at this size, "units", "unique_units",
    "smallest_size": None where the request holds within TOLERANCE, else the smallest size
    >= identity["size"] (in whole runs) that holds it, or None when none is near}."""
    unit = identity["dedup_unit"]
    run = identity.get("dedup_run", 1)

    units = -(-identity["size"] // unit)
    unique = _unique(identity, identity["size"])
    ratio = units / unique if unique else 1.0
    out = {"dedup_ratio": ratio, "units": units, "unique_units": unique, "smallest_size": None}
    want = identity["dedup_ratio"]
    if abs(ratio / want - 1) <= TOLERANCE or units == 0:
        return out
    first = -(-units // run) * run
    for n in range(max(first, run), first + MAX_STEPS * run, run):
        u = _unique(identity, n * unit)
        if abs(n / u / want - 1) <= TOLERANCE:
            out["smallest_size"] = n * unit
            break
    return out


def content_ratio(content: str, compress_ratio: float, format_version=None) -> tuple:
    """(what zstd -3 measures over 1 MiB frames of `content` pages asked for compress_ratio,
    from its profile's calibration (flat: the request); the format version that holds)."""
    given = {} if format_version is None else {"format_version": format_version}
    s = Generator(4096, compress_ratio=compress_ratio, content=content, **given,
                  max_threads=1)._s
    return s.content_ratio, s.format_version


def _unique(identity: dict, size: int) -> int:
    options = {k: v for k, v in identity.items() if k != "size"}
    return Generator(size, **options, max_threads=1).unique_units


# Units a manifest counts one by one for its files' ratios (about 0.2-0.3 us each, so a
# second or two at most): 512 GiB of 128 KiB units, 4 TiB of 1 MiB units.
MAX_COUNTED = 1 << 22


def file_holds(identity: dict, layout: list[dict]) -> list[dict] | None:
    """Per file of `layout` ([{offset, length}]), the dedup ratio it holds read alone:
    {"dedup_ratio": units / unique units, "units": the units its bytes overlap,
    "unique_units": the distinct ones among them}. None where it says nothing the dataset's
    holds() does not (one file, dedup ratio 1) or the dataset has more than MAX_COUNTED
    units (counted_per_file())."""
    if not counted_per_file(identity, len(layout)):
        return None
    import numpy as np  # here, so that `import dgen_py` stays without numpy
    unit = identity["dedup_unit"]
    options = {k: v for k, v in identity.items() if k != "size"}
    unique_id = Generator(identity["size"], **options, max_threads=1)._s.unique_id
    out = []
    for f in layout:
        first, end = f["offset"] // unit, -(-(f["offset"] + f["length"]) // unit)
        out.append(_counted(np.fromiter(map(unique_id, range(first, end)), np.uint64,
                                        end - first)))
    return out


def _counted(ids) -> dict:
    """holds of units with these unique ids (sorted in place: 8 bytes a unit, no set)."""
    import numpy as np
    ids.sort()
    unique = int(np.count_nonzero(ids[1:] != ids[:-1])) + 1 if len(ids) else 0
    return {"dedup_ratio": len(ids) / unique if unique else 1.0, "units": len(ids),
            "unique_units": unique}


def counted_per_file(identity: dict, files: int) -> bool:
    """Whether a manifest of `files` files gives each one's holds (see file_holds)."""
    return (files > 1 and identity["dedup_ratio"] != 1
            and -(-identity["size"] // identity["dedup_unit"]) <= MAX_COUNTED)
