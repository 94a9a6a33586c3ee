"""Fit the content profiles' calibration table: zstd -3 over 1 MiB frames at every 8th level.

    python benchmarks/texture_fit.py [--bench build/test/content_bench] [--size-mib 8]

Runs `content_bench PROFILE @LEVEL BYTES` (benchmarks/content_bench.cpp) for levels 0, 8,
..., 248, 255 of each profile and prints the measured ratios as the C++ rows of kCalibration
in src/core/content.cpp, which model_for() interpolates (in log ratio) to pick a level.
"""

from __future__ import annotations

import argparse
import subprocess

import zstandard

FRAME = 1 << 20
LEVELS = list(range(0, 256, 8)) + [255]


def ratio(data: bytes) -> float:
    c = zstandard.ZstdCompressor(level=3)
    return len(data) / sum(len(c.compress(data[i:i + FRAME])) for i in range(0, len(data), FRAME))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/test/content_bench")
    ap.add_argument("--size-mib", type=int, default=8)
    args = ap.parse_args()
    for profile in ("binary", "text"):
        rs = []
        for level in LEVELS:
            data = subprocess.run([args.bench, profile, f"@{level}", str(args.size_mib << 20)],
                                  check=True, capture_output=True).stdout
            rs.append(ratio(data))
        print(f"    // {profile}: zstd -3 over 1 MiB frames at levels {LEVELS[0]}, "
              f"{LEVELS[1]}, ..., {LEVELS[-2]}, {LEVELS[-1]}")
        for i in range(0, len(rs), 8):
            print("    " + " ".join(f"{r:.3f}," for r in rs[i:i + 8]))


if __name__ == "__main__":
    main()
