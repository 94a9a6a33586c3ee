"""dgen bench: generation and verification GB/s beside memset and memcmp; with --io, the
I/O jobs beside fio (dgen_py.bench)."""

from __future__ import annotations

import math

from .. import bench
from . import objects
from .args import buffer_size, integer, json_flag, mpi_flags, number, thread_list
from .report import print_json


def add(command) -> None:
    c = command("bench", "Generation and verification GB/s beside memset of a non-zero byte "
                "and memcmp; with --io DIR, dgen write, generate and verify beside fio and "
                "head -c N /dev/zero | cat.",
                "examples:\n  dgen bench\n  dgen bench --threads 1,2,4 --seconds 2 --json\n"
                "  dgen bench --io /mnt/nvme --size 8GiB --rounds 5 --direct\n"
                "With --io the files go to DIR (4 x --size, 6 x with --direct, must be "
                "free)\nand are removed after, also on Ctrl-C or SIGTERM; without fio on "
                "PATH only dgen's rows\nare printed.")
    c.add_argument("--threads", metavar="N,N", type=thread_list,
                   help="thread counts, comma-separated (default: every CPU, and 1)")
    c.add_argument("--size", metavar="SIZE", type=buffer_size,
                   help="buffer size (default 2MiB, 32MiB and 256MiB; 32MiB under MPI); with "
                   "--io the dataset size (default 2GiB), twice that through the pipe")
    c.add_argument("--io", metavar="DIR", help="run the I/O jobs (benchmarks/io.py) on "
                   "the directory DIR, e.g. /dev/shm or a mounted device; or on "
                   "s3://BUCKET/PREFIX: write and verify beside plain puts and GETs")
    c.add_argument("--rounds", metavar="N", type=integer(1, 1000), default=3,
                   help="with --io: alternating rounds (default 3)")
    c.add_argument("--direct", action="store_true",
                   help="with --io: also O_DIRECT write and verify beside fio --direct=1")
    c.add_argument("--seconds", metavar="S", type=number(0, math.inf, "a positive number"),
                   default=1.0, help="time per measurement pair (default 1)")
    json_flag(c)
    mpi_flags(c)
    c.set_defaults(run=run)


def run(args) -> int:
    if args.comm:
        if args.threads and len(args.threads) > 1:
            raise ValueError(f"--threads: under MPI give one count per rank, got "
                             f"{','.join(map(str, args.threads))}")
        if args.io is not None:
            raise ValueError("--io: runs once, not under MPI; pass --no-mpi")
        result = args.mpi_module.bench(args.comm, args.size or 32 << 20, args.seconds,
                                       args.threads[0] if args.threads else None)
        print_json(result) if args.json else print(args.mpi_module.bench_report(result))
        return 0
    if args.io is not None:
        return io(args)
    if args.direct:
        raise ValueError("--direct: only with --io DIR")
    result = bench.run(args.size, args.threads, args.seconds)
    print_json(result) if args.json else print(bench.report(result))
    return 0


def io(args) -> int:
    from ..bench import io
    if args.threads:
        raise ValueError("--threads: not with --io (the jobs use every CPU, as fio's do)")
    size = args.size or 2 << 30
    if objects.is_url(args.io):
        return objects.bench(args, size)
    a = io.options(args.io, size=size, pipe_size=2 * size, rounds=args.rounds,
                   direct=args.direct)
    return io.execute(a, args.json, "dgen")
