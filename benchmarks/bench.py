"""Fill reused buffers of 2, 32 and 256 MiB; print GB/s beside memset of a non-zero byte
(and memset(0), its own row) on the same buffer and threads, verify beside memcmp, and the
ISA and CPU-seconds per TB.

    python benchmarks/bench.py [--size-mib 2,32,256] [--seconds 2] [--threads 1] [--json]

The measurement lives in dgen_py.bench (also run by `dgen bench`); this script keeps the
benchmark's historical flags.
"""

from __future__ import annotations

import argparse
import json

from dgen_py import bench


def mib_list(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"integers >= 1 separated by commas, got {text!r}")
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=mib_list, default=[s >> 20 for s in bench.SIZES],
                    help="buffer sizes in MiB, comma-separated (default 2,32,256)")
    ap.add_argument("--seconds", type=float, default=2.0, help="per case")
    ap.add_argument("--threads", type=int, action="append",
                    help="a thread count (repeat for several; default every CPU, and 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = bench.run([m << 20 for m in args.size_mib], args.threads, seconds=args.seconds)
    print(json.dumps(result, indent=2) if args.json else bench.report(result))


if __name__ == "__main__":
    main()
