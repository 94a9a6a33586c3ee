"""One process per NUMA node, the pattern multi-socket results come from, built in.

Each process is pinned to its node and generates its own share of ONE logical dataset
(node i makes bytes [i*size, (i+1)*size)), so the union is byte-identical to one process
making the whole; all start together at a barrier and the throughputs are summed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import secrets
import time
import warnings

from . import _checks, _core
from ._generator import Generator

DEFAULT_CHUNK = 32 * 1024 * 1024


def _node_process(index, node, cpus, pin, params, barrier, results):
    note = None
    if pin:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as e:
            note = f"node {node}: could not pin to CPUs {cpus}: {e}"
    size, total, dedup, compress, seed, unit, threads, chunk = params
    g = Generator(total, dedup, compress, seed=seed, dedup_unit=unit, max_threads=threads,
                  numa_node=node)
    g.seek(index * size)
    buf = bytearray(min(chunk, size) or 1)
    view = memoryview(buf)
    g.fill_chunk(view[:min(len(buf), size)])  # first touch by the pinned workers
    g.seek(index * size)
    barrier.wait()
    t0 = time.perf_counter()
    done = 0
    while done < size:
        done += g.fill_chunk(view[:min(len(buf), size - done)])
    seconds = time.perf_counter() - t0
    results.put({"node": node, "cpus": sorted(cpus), "bytes": done, "seconds": seconds,
                 "gbps": done / seconds / 1e9 if seconds else None, "warning": note})


def run_per_node(size, dedup_ratio=1.0, compress_ratio=1.0, *, nodes=None, seed=None,
                 dedup_unit=131072, max_threads=None, chunk_size=DEFAULT_CHUNK) -> dict:
    """Generate `size` bytes on each NUMA node at once, one pinned process per node.

    Returns {"seed", "nodes": [{"node", "cpus", "bytes", "seconds", "gbps", "warning"}],
    "total_bytes", "seconds" (the slowest node), "aggregate_gbps", "pinned"}. Where the
    topology is not this machine's (hwloc synthetic/XML) processes cannot be pinned: they
    still run, and a RuntimeWarning says so.
    """
    size = _checks.integer("size", size, 1, _checks.MAX_SIZE)
    seed = secrets.randbits(64) if seed is None else _checks.seed(seed)
    topo = _core.topology()
    available = {n["id"]: n["cpus"] for n in topo["nodes"]}
    chosen = list(available) if nodes is None else list(nodes)
    for n in chosen:
        if n not in available:
            raise ValueError(f"nodes must be among the available nodes {list(available)}, got {n!r}")
    if not chosen:
        raise ValueError("nodes must name at least one node")
    pin = topo["can_bind"]
    if not pin:
        warnings.warn(f"topology source is {topo['source']}: it is not this machine's, so "
                      "the per-node processes run unpinned", RuntimeWarning, stacklevel=2)
    threads = None if max_threads is None else _checks.threads(max_threads)
    chunk = _checks.integer("chunk_size", chunk_size, 4096, _checks.MAX_SIZE)
    if size * len(chosen) > _checks.MAX_SIZE:
        raise ValueError(f"size * nodes must be at most 2**63-1, got {size} * {len(chosen)}")
    # The whole identity is checked here, so no child fails on what the parent accepted.
    Generator(size * len(chosen), dedup_ratio, compress_ratio, seed=seed,
              dedup_unit=dedup_unit, max_threads=max_threads)
    params = (size, size * len(chosen), dedup_ratio, compress_ratio, seed, dedup_unit,
              threads, chunk)
    # Forked, not spawned: a spawned child re-runs the caller's script, so a script without
    # an `if __name__ == "__main__":` guard failed. The pool is fork-safe, and each child
    # pins itself before it starts its workers.
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(len(chosen)), ctx.Queue()
    procs = [ctx.Process(target=_node_process,
                         args=(i, n, available[n], pin, params, barrier, results))
             for i, n in enumerate(chosen)]
    for p in procs:
        p.start()
    out = []
    try:
        while len(out) < len(procs):
            try:
                out.append(results.get(timeout=0.2))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:  # the others would wait at the barrier, or run on, for nothing
                    raise RuntimeError(f"a per-node process failed (exit codes {dead})") from None
    except BaseException:
        for p in procs:
            p.kill()
        raise
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"per-node processes failed with exit codes {failed}")
    out.sort(key=lambda r: r["node"])
    for r in out:
        if r["warning"]:
            warnings.warn(r["warning"], RuntimeWarning, stacklevel=2)
    seconds = max(r["seconds"] for r in out)
    total = sum(r["bytes"] for r in out)
    return {"seed": seed, "nodes": out, "total_bytes": total, "seconds": seconds,
            "aggregate_gbps": total / seconds / 1e9 if seconds else None, "pinned": pin}
