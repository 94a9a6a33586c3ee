"""dgen analyze: dedup, compression, zero pages and entropy of files."""

from __future__ import annotations

import os
import time

from .._units import human
from . import objects
from .args import block_sizes, json_flag, number, size, threads
from .report import print_json, progress, rate


def add(command) -> None:
    c = command("analyze", "Measure dedup, compression, zero pages and entropy of files.",
                "examples:\n  dgen analyze disk.img --sample 0.1\n"
                "  dgen analyze /mnt/test/dir            # a dataset: its files as one\n"
                "  dgen analyze a.bin b.bin --block-sizes 4K,64K --json\n"
                "  dgen analyze /backup/src --cdc 1MiB,2MiB   # what restic/borg would find\n"
                "Without --sample, zstd-1 and lz4 compress every frame, zstd-3 1 frame in 4\n"
                "and zlib-6 1 in 16 (the slow ones); --sample 1: every frame with all four.")
    c.add_argument("paths", nargs="+", metavar="PATH",
                   help="a file, or a dataset directory or manifest (its files in dataset "
                   "order, as one dataset); or s3://BUCKET/KEY, an object or a dataset "
                   "of objects")
    c.add_argument("--block-sizes", metavar="SIZES", type=block_sizes,
                   help="dedup block sizes, comma-separated (default 4KiB..1MiB)")
    c.add_argument("--frame-size", metavar="SIZE", type=size, default=1 << 20,
                   help="compression frame (default 1MiB)")
    c.add_argument("--cdc", metavar="SIZES", type=block_sizes, default=(),
                   help="also measure the dedup a content-defined chunking engine finds "
                   "(FastCDC) at these average chunk sizes, comma-separated powers of two "
                   "in [256, 256MiB]")
    c.add_argument("--sample", metavar="SHARE", type=number(0, 1, "a share in (0, 1]"),
                   help="share of frames every compressor compresses, in (0, 1] (default: "
                   "all for zstd-1 and lz4, 1/4 for zstd-3, 1/16 for zlib-6)")
    threads(c)
    json_flag(c)
    c.set_defaults(run=run)


def run(args) -> int:
    from ..analysis import CLI_SAMPLE, analyze, dataset_files
    results = []
    for path in args.paths:
        if objects.is_url(path):  # its objects as one stream of ranged GETs
            source, total = objects.stream(path)
        else:
            listed = dataset_files(path)
            source, total = path, sum(map(os.path.getsize,
                                          [path] if listed is None else listed))
        t0 = time.perf_counter()
        with progress(args, total or None, f"analyze {os.path.basename(path)}") as advance:
            results.append(analyze(source, block_sizes=args.block_sizes,
                                   frame_size=args.frame_size,
                                   sample=CLI_SAMPLE if args.sample is None
                                   else args.sample, threads=args.threads,
                                   progress=advance, cdc=args.cdc, timing=True))
        results[-1]["seconds"] = round(time.perf_counter() - t0, 3)
        if not args.json:
            print(report(results[-1]))
    if args.json:
        print_json({"files": results})
    return 0


def report(a: dict) -> str:
    from ..analysis import SPREAD_EVERY
    def fmt(v):
        return "-" if v is None else f"{v:.3f}"
    z = a["zero_pages"]
    c = a["compression"]
    lines = [f"{a['source']}: {human(a['bytes'])} ({a['bytes']} bytes), entropy "
             f"{a['entropy_bits_per_byte']:.3f} bits/byte, zero pages {z['count']}"
             + (f" ({z['share']:.2%})" if z["share"] is not None else ""),
             f"  {'dedup block':>11} {'blocks':>12} {'unique':>12} {'ratio':>8}"]
    lines += [f"  {human(int(size)):>11} {d['blocks']:>12} {d['unique']:>12} "
              f"{fmt(d['ratio']):>8}" for size, d in a["dedup"].items()]
    if "cdc" in a:
        lines.append(f"  {'cdc average':>11} {'chunks':>12} {'unique':>12} {'ratio':>8}")
        lines += [f"  {human(int(size)):>11} {d['chunks']:>12} {d['unique']:>12} "
                  f"{fmt(d['ratio']):>8}" for size, d in a["cdc"].items()]
    lines.append(f"  compression of {human(c['frame_size'])} frames "
                 f"({c['frames_compressed']} of {c['frames']} compressed):")
    speed = c.get("cpu_mb_per_s", {})
    lines.append(f"  {'':>11} {'ratio':>8} {'CPU MB/s':>9}")
    lines += [f"  {name:>11} {fmt(ratio):>8} "
              + ("-" if speed.get(name) is None else f"{speed[name]:.0f}").rjust(9)
              + (f"  ({n} of {c['frames']} frames)"
                 if (n := c["sampled"][name]["frames_compressed"]) != c["frames_compressed"]
                 else "") for name, ratio in c["ratios"].items()]
    b = a["block_spread"]
    lines.append(f"  {human(b['block_size'])} blocks alone ({b['compressor']}, every "
                 f"{SPREAD_EVERY}th): p10 {fmt(b['p10'])}, p50 {fmt(b['p50'])}, "
                 f"p90 {fmt(b['p90'])}")
    if "seconds" in a:
        lines.append(f"  measured in {a['seconds']:.2f} s ({rate(a['bytes'], a['seconds'])})")
    return "\n".join(lines)
