"""dgen's S3 write and verify beside the client's plain upload and ranged GETs
(dgen_py.bench.s3, as `dgen bench --io s3://...` runs it), and a write's peak memory.

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
--memory-concurrency parts in flight, beside part size x concurrency + 64 MiB. moto keeps
every byte it is sent in memory: for sizes beyond the machine's, --memory-sink writes to
benchmarks/s3_sink.py instead (it keeps sizes only), e.g.
    python benchmarks/s3.py --rounds 0 --memory-gib 10 --memory-sink
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
import uuid

MIB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(sink: bool = False):
    port = free_port()
    command = ([os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3_sink.py")] if sink
               else ["-m", "moto.server", "-H", "127.0.0.1", "-p"])
    proc = subprocess.Popen([sys.executable, *command, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
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
    ap.add_argument("--memory-sink", action="store_true",
                    help="measure memory against benchmarks/s3_sink.py (sizes only)")
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_child:
        bucket, gib, part, conc = a.memory_child
        memory_child(bucket, int(gib), int(part), int(conc))
        return
    proc, bucket = (None, os.environ.get("DGEN_S3_TEST_BUCKET", "dgen-test")) \
        if os.environ.get("AWS_ENDPOINT_URL") else start_server()
    try:
        run(a, bucket)
    finally:
        if proc:
            proc.terminate()
            proc.wait()


def run(a, bucket: str) -> None:
    from dgen_py.bench import s3
    part = a.part_mib * MIB
    if a.rounds:
        r = s3.measure(f"s3://{bucket}/bench", a.size_mib * MIB, part_size=part,
                       concurrency=a.concurrency, rounds=a.rounds)
        print(s3.report(r))
    if a.memory_gib:
        env = dict(os.environ)
        sink = start_server(sink=True) if a.memory_sink else None  # the child's endpoint
        try:
            out = subprocess.run([sys.executable, __file__, "--memory-child", bucket,
                                  str(a.memory_gib), str(part), str(a.memory_concurrency)],
                                 stdout=subprocess.PIPE, text=True, check=True)
        finally:
            os.environ.clear()
            os.environ.update(env)
            if sink:
                sink[0].terminate()
                sink[0].wait()
        maxrss, peak = map(int, out.stdout.split()[-2:])
        bound = part * a.memory_concurrency + 64 * MIB
        print(f"memory: {a.memory_gib} GiB write, parts of {a.part_mib} MiB x "
              f"{a.memory_concurrency}: peak RSS (VmHWM) {peak / MIB:.0f} MiB, bound part x "
              f"concurrency + 64 MiB = {bound / MIB:.0f} MiB "
              f"({'below' if peak < bound else 'ABOVE'}); ru_maxrss {maxrss / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
