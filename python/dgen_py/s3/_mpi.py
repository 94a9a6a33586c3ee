"""write_objects() and verify_objects() by every rank of an MPI job: each rank puts or
checks its share of the objects (whole objects, consecutive, balanced by bytes, as
dgen_py.mpi shares files), one dataset and one report.

Each step ends in one allgather of every rank's error (mpi.agree), so a failure on any
rank makes every rank raise it at the same step: settings agreed (rank 0's seed), rank 0
claims the prefix (old manifest deleted), every rank uploads its share, rank 0 puts the
manifest once all have succeeded. With fewer objects than ranks some ranks have none.
"""

from __future__ import annotations

import hashlib
import json
import time

from .._shares import split
from ..mpi import _scaled, agree, same_settings, threads_per_rank
from ._verify import Check
from ._write import CONCURRENCY, PART_SIZE, Plan


def write_objects(comm, url, size, *, threads=None, progress=None, seed=None,
                  part_size=PART_SIZE, concurrency=CONCURRENCY, files=1, force=False,
                  store=None, **identity) -> dict:
    """write_objects() from every rank of `comm` (collective); every rank returns the same
    dict: the manifest, "manifest" (its URL), "seconds" (the slowest rank, from a common
    barrier), "ranks" ([{rank, bytes, seconds}]) and "gbps". threads and concurrency are
    per rank; progress(n) is called on rank 0 only, with its own bytes scaled to the
    dataset's size."""
    default_threads = threads_per_rank(comm)

    def planned(seed):
        return Plan(url, size, seed=seed, files=files, part_size=part_size,
                    concurrency=concurrency, threads=threads or default_threads,
                    force=force, store=store, **identity)

    def check():
        plan = planned(seed)
        settings = {**plan.identity, "seed": seed, "files": plan.files, "url": url,
                    "part_size": plan.part_size}
        return settings, plan.identity["seed"]

    values = agree(comm, check)
    same_settings([v[0] for v in values])
    plan = planned(values[0][1])  # rank 0 drew the seed, where none was given
    agree(comm, lambda: comm.rank == 0 and plan.claim())
    mine = [plan.objects[i] for i in split([o["length"] for o in plan.objects],
                                           comm.size)[comm.rank]]
    comm.Barrier()
    # rank 0's bar: its own bytes scaled to the dataset's size, as mpi.write shows it
    shown = _scaled(progress, plan.identity["size"], [(0, 0, o["length"]) for o in mine]) \
        if comm.rank == 0 else None
    rows = agree(comm, lambda: (sum(o["length"] for o in mine), plan.upload(mine, shown)))
    record = agree(comm, lambda: plan.finish() if comm.rank == 0 else None)[0]
    seconds = max(s for _, s in rows)
    return {**record, "seconds": seconds,
            "ranks": [{"rank": r, "bytes": n, "seconds": s} for r, (n, s) in enumerate(rows)],
            "gbps": sum(n for n, _ in rows) / seconds / 1e9 if seconds else None}


def verify_objects(comm, url, *, seed=None, size=None, files=None, threads=None,
                   concurrency=CONCURRENCY, read_size=PART_SIZE, max_ranges=20,
                   progress=None, store=None, **given) -> dict:
    """verify_objects() from every rank of `comm` (collective), each rank checking its
    share of the objects; every rank returns the same report, ranges in dataset order,
    with "ranks" ([{rank, bytes, seconds}]) and "seconds" (the slowest rank's)."""
    default_threads = threads_per_rank(comm)

    def resolved():
        job = Check(url, {"seed": seed, **given}, size, files,
                    threads=threads or default_threads, concurrency=concurrency,
                    read_size=read_size, max_ranges=max_ranges, store=store)
        seen = json.dumps([job.identity, job.objects], sort_keys=True).encode()
        return job, hashlib.sha256(seen).hexdigest()

    job, seen = agree(comm, resolved, share=False)
    lead = comm.bcast(seen)
    agree(comm, lambda: _same(seen, lead, url))
    mine = split([o["length"] for o in job.objects], comm.size)[comm.rank]
    comm.Barrier()
    started = time.perf_counter()
    done = agree(comm, lambda: (*job.run(mine, progress if comm.rank == 0 else None,
                                         extra=comm.rank == 0),
                                time.perf_counter() - started))
    tally, sizes = done[0][0], {}
    for i, (t, held, _, _) in enumerate(done):
        if i:
            tally.merge(t)
        sizes.update(held)
    report = job.report(tally, sizes, done[0][2], max(s for *_, s in done))
    report["ranks"] = [{"rank": r, "bytes": t.read, "seconds": s}
                       for r, (t, _, _, s) in enumerate(done)]
    return report


def _same(mine: str, lead: str, url: str) -> None:
    if mine != lead:
        raise ValueError(f"sees another dataset at {url} than rank 0 (another manifest): "
                         f"give every rank the same URL and identity options")
