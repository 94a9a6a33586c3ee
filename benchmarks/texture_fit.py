"""Fit the content profiles' calibration table: zstd -3 over 1 MiB frames at every level.

    python benchmarks/texture_fit.py [--bench build/test/content_bench] [--size-mib 8]
                                     [--format 5] [--profile text]

Runs `content_bench PROFILE @LEVEL BYTES FORMAT` (benchmarks/content_bench.cpp) for every
level 0..255 of each profile (0, 8, ..., 248, 255 for formats 1 to 3, whose table was fit
so) and prints the measured ratios as the C++ rows of the calibration tables in
src/core/calibration.cpp (the pages of format --format: one version of the profiles), from
which model_for() picks a level.
"""

from __future__ import annotations

import argparse
import subprocess

import zstandard

FRAME = 1 << 20


def ratio(data: bytes) -> float:
    c = zstandard.ZstdCompressor(level=3)
    return len(data) / sum(len(c.compress(data[i:i + FRAME])) for i in range(0, len(data), FRAME))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/test/content_bench")
    ap.add_argument("--size-mib", type=int, default=8)
    ap.add_argument("--format", type=int, default=5, help="format version of the pages")
    ap.add_argument("--profile", choices=("binary", "text"), action="append",
                    help="fit this profile only (repeatable; default both)")
    args = ap.parse_args()
    levels = list(range(256)) if args.format >= 4 else list(range(0, 256, 8)) + [255]
    for profile in args.profile or ("binary", "text"):
        rs = []
        for level in levels:
            data = subprocess.run([args.bench, profile, f"@{level}", str(args.size_mib << 20),
                                   str(args.format)], check=True, capture_output=True).stdout
            rs.append(ratio(data))
        print(f"    // {profile}: zstd -3 over 1 MiB frames at levels {levels[0]}, "
              f"{levels[1]}, ..., {levels[-2]}, {levels[-1]}")
        for i in range(0, len(rs), 8):
            print("    " + " ".join(f"{r:.3f}," for r in rs[i:i + 8]))


if __name__ == "__main__":
    main()
