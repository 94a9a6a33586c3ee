"""Requested vs measured ratios: every compressor, every compression and dedup ratio.

    python benchmarks/ratios.py [--size-mib 16] [--frame-kib 1024] [--json]

Compression is measured with dgen_py.analyze (zstd -1/-3, lz4, zlib -6 over independent
frames); dedup by SHA-256 of aligned blocks at every power of two from 4 KiB to the unit.
"""

from __future__ import annotations

import argparse
import json

import dgen_py

COMPRESS = (1, 1.25, 1.5, 2, 2.5, 3, 4, 6, 8, 10)
DEDUP = (1, 1.5, 2, 3.7, 10, 50)
COMPRESSORS = ("zstd-1", "zstd-3", "lz4", "zlib-6")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--frame-kib", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size, frame = args.size_mib << 20, args.frame_kib << 10

    compression = []
    for c in COMPRESS:
        data = dgen_py.generate_buffer(size, 1, c, seed=1)
        r = dgen_py.analyze(data, block_sizes=[4096], frame_size=frame)["compression"]["ratios"]
        compression.append({"requested": c, **{k: round(r[k], 3) for k in COMPRESSORS}})

    dedup = []
    for unit in (4096, 131072):
        for d in DEDUP:
            n = 1000 * unit if unit > 4096 else 4000 * unit
            sizes = [1 << k for k in range(12, unit.bit_length())]
            a = dgen_py.analyze(dgen_py.generate_buffer(n, d, 2, seed=1, dedup_unit=unit),
                                block_sizes=sizes, compressors=())
            measured = [a["dedup"][str(s)]["ratio"] for s in sizes]
            dedup.append({"unit": unit, "requested": d, "min": round(min(measured), 4),
                          "max": round(max(measured), 4)})

    if args.json:
        print(json.dumps({"size": size, "frame_size": frame, "compression": compression,
                          "dedup": dedup}, indent=2))
        return
    print(f"compression, {args.size_mib} MiB in {args.frame_kib} KiB frames (measured ratio)")
    print(f"{'requested':>9} " + " ".join(f"{k:>7}" for k in COMPRESSORS) + "  worst error")
    for row in compression:
        worst = max(abs(row[k] / row["requested"] - 1) for k in COMPRESSORS)
        print(f"{row['requested']:>9} " + " ".join(f"{row[k]:>7.3f}" for k in COMPRESSORS)
              + f"  {worst:>10.1%}")
    print("\ndedup, SHA-256 of aligned blocks, every power of two from 4 KiB to the unit")
    print(f"{'unit':>7} {'requested':>9} {'measured min':>12} {'measured max':>12}")
    for row in dedup:
        print(f"{row['unit']:>7} {row['requested']:>9} {row['min']:>12.4f} {row['max']:>12.4f}")


if __name__ == "__main__":
    main()
