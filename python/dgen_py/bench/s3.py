"""dgen's S3 write and verify beside the same client's plain upload and ranged GETs.

    dgen bench --io s3://BUCKET/PREFIX [--size 2GiB] [--rounds 3] [--json]
    python benchmarks/s3.py (starts a local server; and a peak memory measurement)

Each round, alternating which goes first, times write_objects() of `size` bytes against
obstore.put of a prebuilt buffer of the same size (the same part size and concurrency),
and verify_objects() against ranged GETs of the same bytes in part-size pieces, by as
many threads as the concurrency. One untimed run of each comes first. The objects go
under PREFIX/dgen-bench-XXXXXXXX/ and are deleted after.
"""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .._units import human

CASES = ("dgen write", "plain put", "dgen verify", "plain GETs")


def measure(url: str, size: int, *, part_size: int = 16 << 20, concurrency: int = 8,
            rounds: int = 3) -> dict:
    """{url, endpoint, size, part_size, concurrency, rounds, seconds: {case: [...]}, median:
    {case: s}, gbps: {case: GB/s of the median}, write_ratio, verify_ratio (dgen / plain:
    1.0 is as fast)}."""
    import obstore
    from .._oneshot import generate_buffer
    from ..s3 import open_store, verify_objects, write_objects
    from ..s3._store import join, parse_url, settings
    bucket, key = parse_url(url)
    store = open_store(bucket)
    base = join(key, f"dgen-bench-{uuid.uuid4().hex[:8]}")
    dataset, plain = f"s3://{bucket}/{base}/dgen", join(base, "plain")
    buf = generate_buffer(size, seed=2)  # prebuilt, in memory

    def dgen_write():
        write_objects(dataset, size, seed=1, part_size=part_size, concurrency=concurrency)

    def plain_write():
        obstore.put(store, plain, buf, chunk_size=part_size, max_concurrency=concurrency)

    def dgen_verify():
        if not verify_objects(dataset, concurrency=concurrency, read_size=part_size)["ok"]:
            raise OSError(f"{dataset} did not verify: the store returned other bytes")

    def plain_read():
        def one(at):
            return len(obstore.get_range(store, join(base, "dgen"), start=at,
                                         length=min(part_size, size - at)))
        with ThreadPoolExecutor(concurrency) as pool:
            sum(pool.map(one, range(0, size, part_size)))

    times = {n: [] for n in CASES}
    try:
        for fn in (dgen_write, plain_write, dgen_verify, plain_read):  # warm-up, untimed
            fn()
        for r in range(rounds):
            writes = [("dgen write", dgen_write), ("plain put", plain_write)]
            reads = [("dgen verify", dgen_verify), ("plain GETs", plain_read)]
            for group in (writes, reads):
                for name, fn in (group if r % 2 == 0 else group[::-1]):
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
    finally:
        names = [o["path"] for batch in obstore.list(store, base + "/") for o in batch]
        obstore.delete(store, names)
    med = {n: statistics.median(t) for n, t in times.items()}
    return {"url": url, "endpoint": settings()["endpoint"] or "AWS", "size": size,
            "part_size": part_size, "concurrency": concurrency, "rounds": rounds,
            "seconds": times, "median": med,
            "gbps": {n: size / t / 1e9 for n, t in med.items()},
            "write_ratio": med["plain put"] / med["dgen write"],
            "verify_ratio": med["plain GETs"] / med["dgen verify"]}


def report(r: dict) -> str:
    lines = [f"{human(r['size'])}, parts of {human(r['part_size'])} x {r['concurrency']}, "
             f"{r['rounds']} rounds, {r['url']} at {r['endpoint']}"]
    lines += [f"  {n:12s} median {r['median'][n]:6.2f} s  {r['gbps'][n]:5.2f} GB/s  (all: "
              f"{', '.join(f'{x:.2f}' for x in r['seconds'][n])})" for n in CASES]
    lines.append(f"write  ratio dgen/plain: {r['write_ratio']:.3f}")
    lines.append(f"verify ratio dgen/plain: {r['verify_ratio']:.3f}")
    return "\n".join(lines)
