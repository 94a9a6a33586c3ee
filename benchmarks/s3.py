"""dgen's S3 write and verify beside the client's plain upload and ranged GETs.

    python benchmarks/s3.py [--size-mib 256] [--part-mib 16] [--concurrency 4] [--rounds 3]
                            [--memory-gib 2] [--memory-concurrency 8]

Starts moto's standalone server (python -m moto.server) on 127.0.0.1 in its own process,
unless AWS_ENDPOINT_URL names a store (with its credentials in the environment and the
bucket in DGEN_S3_TEST_BUCKET). Each round, alternating which goes first, times:
- write: dgen_py.s3.write_objects of --size-mib MiB against obstore.put of a prebuilt
  buffer of the same size, with the same part size and concurrency;
- verify: dgen_py.s3.verify_objects against ranged GETs (obstore.get_range) of the same
  bytes in pieces of the part size, by as many threads as the concurrency.
One untimed run of each comes first.
It prints the medians and the ratios dgen / plain (1.0: as fast). Then, in a child
process, the peak resident memory (VmHWM; ru_maxrss beside it) of writing --memory-gib GiB with
--memory-concurrency parts in flight, beside part size x concurrency + 64 MiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

MIB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(url + "/dgen-bench", method="PUT")).read()
    return proc, "dgen-bench"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def memory_child(bucket: str, gib: int, part: int, concurrency: int) -> None:
    from dgen_py.s3 import write_objects
    write_objects(f"s3://{bucket}/mem-{uuid.uuid4().hex[:8]}", gib << 30, seed=1,
                  part_size=part, concurrency=concurrency)
    # VmHWM: this process's own peak. ru_maxrss is printed too, but on Linux it also counts
    # the parent's resident memory at fork (kept across exec), here the prebuilt buffer.
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, hwm * 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--part-mib", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-gib", type=int, default=2)
    ap.add_argument("--memory-concurrency", type=int, default=8)
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_child:
        bucket, gib, part, conc = a.memory_child
        memory_child(bucket, int(gib), int(part), int(conc))
        return
    proc, bucket = (None, os.environ.get("DGEN_S3_TEST_BUCKET", "dgen-test")) \
        if os.environ.get("AWS_ENDPOINT_URL") else start_moto()
    try:
        run(a, bucket)
    finally:
        if proc:
            proc.terminate()
            proc.wait()


def run(a, bucket: str) -> None:
    import obstore
    from dgen_py.s3 import open_store, verify_objects, write_objects
    store = open_store(bucket)
    size, part, conc = a.size_mib * MIB, a.part_mib * MIB, a.concurrency
    import dgen_py
    buf = bytes(dgen_py.generate_buffer(size, seed=2))  # prebuilt, in memory
    key = f"bench-{uuid.uuid4().hex[:8]}"

    def dgen_write():
        write_objects(f"s3://{bucket}/{key}/dgen", size, seed=1, part_size=part,
                      concurrency=conc)

    def plain_write():
        obstore.put(store, f"{key}/plain", buf, chunk_size=part, max_concurrency=conc)

    def dgen_verify():
        assert verify_objects(f"s3://{bucket}/{key}/dgen", concurrency=conc,
                              read_size=part)["ok"]

    def plain_read():
        def one(at):
            return len(obstore.get_range(store, f"{key}/dgen", start=at,
                                         length=min(part, size - at)))
        with ThreadPoolExecutor(conc) as pool:
            assert sum(pool.map(one, range(0, size, part))) == size

    for fn in (dgen_write, plain_write, dgen_verify, plain_read):  # warm-up, not timed
        fn()
    times = {n: [] for n in ("dgen write", "plain put", "dgen verify", "plain GETs")}
    for r in range(a.rounds):
        pairs = [("dgen write", dgen_write), ("plain put", plain_write)]
        reads = [("dgen verify", dgen_verify), ("plain GETs", plain_read)]
        for group in (pairs, reads):
            for name, fn in (group if r % 2 == 0 else group[::-1]):
                times[name].append(timed(fn))
    med = {n: statistics.median(t) for n, t in times.items()}
    where = os.environ["AWS_ENDPOINT_URL"]
    print(f"{a.size_mib} MiB, parts of {a.part_mib} MiB x {conc}, {a.rounds} rounds, "
          f"server {where}")
    for n, t in med.items():
        print(f"  {n:12s} median {t:6.2f} s  {size / t / 1e9:5.2f} GB/s  "
              f"(all: {', '.join(f'{x:.2f}' for x in times[n])})")
    print(f"write  ratio dgen/plain: {med['plain put'] / med['dgen write']:.3f}")
    print(f"verify ratio dgen/plain: {med['plain GETs'] / med['dgen verify']:.3f}")
    if a.memory_gib:
        out = subprocess.run([sys.executable, __file__, "--memory-child", bucket,
                              str(a.memory_gib), str(part), str(a.memory_concurrency)],
                             stdout=subprocess.PIPE, text=True, check=True)
        maxrss, peak = map(int, out.stdout.split()[-2:])
        bound = part * a.memory_concurrency + 64 * MIB
        print(f"memory: {a.memory_gib} GiB write, parts of {a.part_mib} MiB x "
              f"{a.memory_concurrency}: peak RSS (VmHWM) {peak / MIB:.0f} MiB, bound part x "
              f"concurrency + 64 MiB = {bound / MIB:.0f} MiB "
              f"({'below' if peak < bound else 'ABOVE'}); ru_maxrss {maxrss / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
