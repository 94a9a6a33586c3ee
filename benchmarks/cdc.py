"""What a content-defined chunking engine finds in data written with dedup_for presets.

FastCDC (pyfastcdc) at the preset's average chunk over generated streams (no files), dedup
by SHA-256 of each chunk. Prints, per preset and dedup ratio, the share of the ideal saving
(1 - 1/ratio) found: over a whole dataset, over each file of an 8-file dataset and over
random ranges of a larger one; and, per generation of a 4 GiB dataset, the bytes new to
the engine against change_rate x unique size (docs/data-model.md, "Format 3").

    python benchmarks/cdc.py                       # the full-scale figures (tens of GiB)
    python benchmarks/cdc.py --scale 64 --presets cdc:16KiB   # sizes / 64, seconds
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time

from pyfastcdc import FastCDC

import dgen_py
from dgen_py import _checks

GIB, MIB = 1 << 30, 1 << 20


def chunks(size, average, start=0, stop=None, **identity):
    g = dgen_py.Generator(size, seed=5, start=start, stop=stop, **identity)
    for c in FastCDC(avg_size=average).cut_stream(g):
        yield hashlib.sha256(c.data).digest(), c.length


def found(size, average, ratio, start=0, stop=None, **identity):
    """Share of the ideal saving FastCDC finds in dataset bytes [start, stop)."""
    stored, total = {}, 0
    for digest, n in chunks(size, average, start, stop, dedup_ratio=ratio, **identity):
        stored[digest] = n
        total += n
    return (1 - sum(stored.values()) / total) / (1 - 1 / ratio)


def held(size, ratio, start, stop, **identity):
    """Share of the ideal saving the whole dedup units inside [start, stop) hold (what an
    exact engine of the unit's blocks finds there)."""
    unit = _checks.dedup_for(identity["dedup_for"])["dedup_unit"]
    a, b = -(-start // unit) * unit, stop // unit * unit
    g = dgen_py.Generator(size, ratio, seed=5, start=a, stop=b, **identity)
    digests = [hashlib.sha256(g.read(unit)).digest() for _ in range((b - a) // unit)]
    return (1 - len(set(digests)) / len(digests)) / (1 - 1 / ratio)


def new_per_generation(size, average, ratio, rate, generations, **identity):
    """[(generation, bytes new to the engine / (rate x unique bytes))]."""
    g0 = dgen_py.Generator(size, ratio, seed=5, **identity)
    unique = g0.unique_units * _checks.dedup_for(identity["dedup_for"])["dedup_unit"]
    before, out = None, []
    for g in range(generations + 1):
        store = {}
        for digest, n in chunks(size, average, dedup_ratio=ratio, generation=g,
                                change_rate=rate, **identity):
            store[digest] = n
        if before is not None:
            new = sum(n for d, n in store.items() if d not in before)
            out.append((g, new / (rate * unique)))
        before = store
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="cdc:1MiB,cdc:2MiB")
    p.add_argument("--ratios", default="2,4")
    p.add_argument("--rates", default="0.1,0.3")
    p.add_argument("--scale", type=int, default=1, help="divide every size by this")
    p.add_argument("--ranges", type=int, default=5)
    p.add_argument("--only", default="whole,files,ranges,generations")
    a = p.parse_args()
    only = set(a.only.split(","))
    s = a.scale
    for preset in a.presets.split(","):
        chosen = _checks.dedup_for(preset)
        average = chosen["dedup_unit"]  # a cdc preset's unit is its average chunk
        ident = {"dedup_for": preset}
        print(f"{preset}: {chosen}", flush=True)
        for ratio in map(float, a.ratios.split(",")):
            t = time.perf_counter()
            if "whole" in only:
                print(f"  dedup {ratio:g} whole {human(GIB // s)}: "
                      f"{found(GIB // s, average, ratio, **ident):.3f}", flush=True)
            if "files" in only:
                size, n = 2 * GIB // s, 8
                cuts = [size * i // n for i in range(n + 1)]
                got = [found(size, average, ratio, cuts[i], cuts[i + 1], **ident)
                       for i in range(n)]
                print(f"  dedup {ratio:g} each of 8 files of {human(size // n)} "
                      f"({human(size)} in all): "
                      f"{' '.join(f'{x:.3f}' for x in got)} (min {min(got):.3f})", flush=True)
            if "ranges" in only:
                size, length = 4 * GIB // s, 512 * MIB // s
                rng = random.Random(int(ratio * 10) + average)
                starts = [rng.randrange(0, size - length) for _ in range(a.ranges)]
                got = [found(size, average, ratio, x, x + length, **ident) for x in starts]
                have = [held(size, ratio, x, x + length, **ident) for x in starts]
                print(f"  dedup {ratio:g} {a.ranges} random ranges of {human(length)} of "
                      f"{human(size)}: {' '.join(f'{x:.3f}' for x in got)} "
                      f"(min {min(got):.3f}); their whole units hold "
                      f"{' '.join(f'{x:.3f}' for x in have)}", flush=True)
            print(f"    ({time.perf_counter() - t:.0f} s)", flush=True)
        if "generations" in only:  # 4 GiB: 64 unique runs of 32 MiB, whole groups of 16
            for rate in map(float, a.rates.split(",")):
                got = new_per_generation(4 * GIB // s, average, 2.0, rate, 2, **ident)
                print(f"  dedup 2, change rate {rate:g}, {human(4 * GIB // s)}: new / (c x unique) "
                      + " ".join(f"gen {g}: {x:.3f}" for g, x in got), flush=True)


def human(n: int) -> str:
    return f"{n // GIB} GiB" if n % GIB == 0 else f"{n // MIB} MiB" if n % MIB == 0 \
        else f"{n // 1024} KiB"


if __name__ == "__main__":
    main()
