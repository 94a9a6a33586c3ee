"""Fill a reused 32 MiB buffer; print GB/s beside memset on the same buffer and threads.

    python benchmarks/bench.py [--size-mib 32] [--seconds 2] [--json]

The measurement lives in dgen_py.bench (also run by `dgen bench`); this script keeps the
benchmark's historical flags.
"""

from __future__ import annotations

import argparse
import json

from dgen_py import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=2.0, help="per case")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = bench.run(args.size_mib << 20, seconds=args.seconds)
    print(json.dumps(result, indent=2) if args.json else bench.report(result))


if __name__ == "__main__":
    main()
