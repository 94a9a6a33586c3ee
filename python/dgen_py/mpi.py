"""Scale-out on MPI: many processes write, verify or measure ONE dataset together.

The bytes of a dataset depend only on its identity and the offset, so each rank makes a
disjoint share and the union is byte-identical to a one-process run. Shares
(shares()): with at least as many files as ranks, whole files per rank, consecutive and
balanced by bytes; with fewer (one file), byte ranges of the dataset cut at multiples of
the dedup unit (and so of 4 KiB, as O_DIRECT needs), each rank writing its range of the
same file with positional writes.

Protocol of write(): every rank takes the same steps, each ending in one allgather of
every rank's error (or None), so that a failure anywhere makes every rank raise the same
error at the same step and none waits forever:
  1. ready: rank 0 has locked the dataset, created and emptied its files; a barrier
     follows and each rank's timing starts after it;
  2. written: every rank has written its pieces (bytes and seconds are gathered);
  3. done: rank 0 has written the manifest, the last thing written.
A rank that dies outright is the launcher's to report: mpirun ends the job.

This module alone imports mpi4py; `import dgen_py` never does.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

from mpi4py import MPI

from . import _checks, _core, bench as _bench
from ._collective import (_raise_first, _wire, agree, same_dataset, same_settings,
                          same_storage, sizes_seen)
from ._locks import reading
from ._generator import DEFAULT_DEDUP_UNIT, Generator
from ._report import Report, joined
from ._shares import split
from .identity import keywords_in
from .manifest import (MAX_FILES, UNREAD, file_layout, make_identity, read_manifest,
                       resolve_dataset)
from .verify import stray_parts, verify_file
from .write import cut_pieces, write_dataset

STEPS = 3  # ready, written, done (see the module docstring)
def threads_per_rank(comm) -> int:
    """Worker threads for this rank: its affinity mask's CPUs, shared with the ranks on
    the same node whose masks overlap it (unbound ranks share the node's CPUs); never
    derived from the global rank count."""
    cpus = os.sched_getaffinity(0)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        masks = node.allgather(sorted(cpus))
    finally:
        node.Free()
    sharing = sum(1 for m in masks if cpus.intersection(m))
    return max(1, len(cpus) // sharing)


def shares(layout: list[dict], world: int, align: int) -> list[list[tuple[int, int, int]]]:
    """Per rank, its pieces [(file index, file offset, length)] of a dataset whose files
    are `layout` ([{offset, length}] in dataset order)."""
    if len(layout) >= world:
        return [[(i, 0, layout[i]["length"]) for i in mine] for mine in split(layout, world)]
    size = sum(f["length"] for f in layout)
    out = []
    for a, b in split(size, world, align):
        out.append([(i, max(a, f["offset"]) - f["offset"],
                     min(b, f["offset"] + f["length"]) - max(a, f["offset"]))
                    for i, f in enumerate(layout)
                    if max(a, f["offset"]) < min(b, f["offset"] + f["length"])])
    # Empty files, which no byte range holds, go to the last rank (verify reads their size).
    out[-1] = sorted(out[-1] + [(i, 0, 0) for i, f in enumerate(layout) if not f["length"]])
    return out


def _for_jobs(pieces, jobs: int) -> list[tuple[int, int, int]]:
    """pieces cut further for `jobs` parallel writers, as write_dataset cuts files."""
    cut = cut_pieces([{"length": n} for _, _, n in pieces], jobs)
    return [(pieces[k][0], pieces[k][1] + at, n) for k, at, n in cut]


_agree = agree  # the name datasets.py imports


class _Job:
    """This rank's part in write_dataset (see write.write_dataset's job=) of the dataset in
    `directory`."""

    def __init__(self, comm, pieces, directory):
        self.comm, self.lead, self.pieces = comm, comm.rank == 0, pieces
        self.steps, self.failed, self.values, self.rows = 0, False, [], []
        self.directory = directory

    def step(self, error=None, value=None) -> list:
        self.steps += 1
        gathered = self.comm.allgather((value, _wire(error, self.comm.rank)))
        self.values = [v for v, _ in gathered]
        try:
            _raise_first([e for _, e in gathered])
        except Exception:
            self.failed = True
            raise
        return self.values

    def ready(self) -> None:
        try:
            same_storage(self.comm, self.directory)
        except Exception:
            # raised on every rank at once, or here paired with the one step a rank that
            # failed before takes: no rank has a step left to take
            self.failed = True
            raise
        self.step()
        self.comm.Barrier()  # write_dataset times from here

    def written(self, seconds) -> None:
        self.rows = self.step(value=(sum(n for _, _, n in self.pieces), seconds))

    def finish(self, error=None, value=None) -> list:
        """The steps left; with an error, the first of them raises it (or an earlier
        rank's) on every rank."""
        while self.steps < STEPS:
            self.step(error, value)
        return self.values


def write(comm, path, size, *, files=1, dedup_ratio=1.0, compress_ratio=1.0, seed=None,
          dedup_unit=DEFAULT_DEDUP_UNIT, dedup_run=1, dedup_shift=False, dedup_skew="uniform",
          generation=0, change_rate=1.0, format_version=_core.FORMAT_VERSION, direct=False,
          fsync=False, jobs=1,
          threads=None, force=False, progress=None, dedup_window=_core.WINDOW_UNITS,
          dedup_for=None, content="flat") -> dict:
    """Write one dataset from every rank of `comm` (collective: call it on every rank).

    Arguments as write_dataset; `jobs` and `threads` are per rank (threads default:
    threads_per_rank). Rank 0 draws the seed when none is given, claims the dataset and,
    after every rank has finished, writes the manifest. Every rank returns the same dict:
    the manifest, "manifest" (its path), "seconds" (the slowest rank, timed from a common
    barrier), "ranks" ([{rank, bytes, seconds}]) and "gbps" (all bytes / seconds / 1e9).
    progress(n) is called on rank 0 only, with its own bytes scaled to the dataset's size
    (a bar of the dataset's size ends when rank 0's share is written).
    """
    default_threads, given = threads_per_rank(comm), keywords_in(locals())

    def check():
        identity = make_identity(**given)
        count = _checks.integer("files", files, 1, MAX_FILES)
        _checks.integer("jobs", jobs, 1, _checks.MAX_THREADS)
        _checks.path(path)
        # direct and fsync too: the manifest (rank 0's) records them for every rank's files
        settings = {**identity, "seed": _checks.seed(seed), "files": count,
                    "path": os.path.abspath(path),
                    "direct": _checks.flag("direct", direct),
                    "fsync": _checks.flag("fsync", fsync)}
        return settings, identity["seed"], _checks.threads(threads) or default_threads

    values = agree(comm, check)  # small values only: every rank gets every rank's
    same_settings([v[0] for v in values])
    identity = {k: v for k, v in values[0][0].items()
                if k not in ("files", "direct", "fsync", "path")}
    identity["seed"] = values[0][1]  # rank 0 drew it, where none was given
    mine = values[comm.rank][2]
    base, layout = file_layout(_checks.path(path), identity["size"], files)
    pieces = _for_jobs(shares(layout, comm.size, identity["dedup_unit"])[comm.rank], jobs)
    job = _Job(comm, pieces, base or ".")
    try:
        m = write_dataset(  # every identity field is a keyword of write_dataset
            path, identity["size"], files=files,
            **{k: v for k, v in identity.items() if k != "size"}, direct=direct, fsync=fsync,
            jobs=jobs, threads=mine, force=force,
            progress=_scaled(progress, identity["size"], pieces) if comm.rank == 0 else None,
            job=job)
    except Exception as e:
        if job.failed:
            raise
        job.finish(e)
        raise  # not reached: finish raised
    record = job.finish(value=m if comm.rank == 0 else None)[0]
    seconds = max(s for _, s in job.rows)
    total = sum(n for n, _ in job.rows)
    return {**record, "seconds": seconds,
            "ranks": [{"rank": r, "bytes": n, "seconds": s}
                      for r, (n, s) in enumerate(job.rows)],
            "gbps": total / seconds / 1e9 if seconds else None}


def _scaled(progress, size: int, pieces):
    mine = sum(n for _, _, n in pieces)
    if not progress or not mine:
        return None
    return lambda n: progress(n * size / mine)


def verify(comm, path, *, seed=None, size=None, files=None, dedup_ratio=None,
           compress_ratio=None, dedup_unit=None, dedup_run=None, dedup_shift=None,
           dedup_skew=None, generation=None, change_rate=None, format_version=None,
           direct=False, threads=None,
           max_ranges=20, progress=None, dedup_window=None, content=None,
           _loaded=UNREAD) -> dict:
    """Verify one dataset from every rank of `comm` (collective), each rank reading its
    share; every rank returns the same dict, as verify_file would return it for
    the whole dataset: ranges in dataset order, a range running across a share boundary
    merged into one. Two limits of cutting one file into shares: a dedup unit moved
    across a share boundary reads as "differs" (not "moved"), and where a rank found more
    than max_ranges ranges the count may keep a boundary range twice. "seconds" is the
    slowest rank's; "ranks" gives each rank's bytes and seconds. progress(n) is called
    on rank 0 only, with its own bytes. _loaded: the manifest as this rank read it.
    """
    overrides = {**keywords_in(locals()), "files": files}
    default_threads = threads_per_rank(comm)
    held = contextlib.ExitStack()  # the reading lock, from the resolve to the last read

    def check():
        held.enter_context(reading(_checks.path(path)))
        dataset = resolve_dataset(path, **overrides,
                                  _record=read_manifest(path, _loaded=_loaded))
        _checks.integer("max_ranges", max_ranges, 0, 2**31)
        return dataset, _checks.threads(threads) or default_threads

    with held:
        dataset, count = agree(comm, check, share=False)
        same_dataset(comm, [dataset["identity"], dataset["files"], os.path.abspath(path),
                            sizes_seen(dataset["base"], dataset["files"])], path)
        layout = dataset["files"]
        pieces = shares(layout, comm.size, dataset["identity"]["dedup_unit"])[comm.rank]
        comm.Barrier()
        started = time.perf_counter()
        results = agree(comm, lambda: verify_file(
            path, **overrides, direct=direct, threads=count, max_ranges=max_ranges,
            progress=progress if comm.rank == 0 else None, pieces=pieces, _dataset=dataset))
        seconds = comm.allgather(time.perf_counter() - started)
        extra = agree(comm, lambda: stray_parts(path, layout)
                      if comm.rank == 0 and dataset["manifest"] else None)[0]
    return _combine(results, layout, max_ranges, seconds, extra)


def _combine(results: list[dict], layout: list[dict], max_ranges: int, seconds,
             extra: list[dict]) -> dict:
    first = results[0]
    ranges, count, complete = [], 0, False
    for r in results:
        own = list(r["ranges"])
        count += r["range_count"]
        if own and ranges and complete and (one := joined(ranges[-1], own[0])):
            ranges[-1] = one
            own.pop(0)
            count -= 1
        ranges += own
        if r["range_count"]:
            complete = len(r["ranges"]) == r["range_count"]
    report = Report(max_ranges)
    report.count, report.zeros = count, any(r["zeros"] for r in results)
    report.read, report.mismatched, report.gaps = (
        sum(r[key] for r in results) for key in ("bytes_read", "mismatched_bytes", "gap_bytes"))
    size = first["identity"]["size"]
    ok = count == 0 and report.read == size and not extra
    seen = {}
    for r in results:
        for f in r["files"]:
            seen.setdefault(f["path"], f["size_on_disk"])
    return {
        "ok": ok,
        "verdict": "ok" if ok else "other identity" if report.other_identity() else "mismatch",
        "path": first["path"],
        "manifest": first["manifest"],
        "identity": first["identity"],
        "files": [{**f, "size_on_disk": seen.get(f["path"])} for f in layout],
        "bytes": size,
        "bytes_read": report.read,
        "mismatched_bytes": report.mismatched,
        "range_count": count,
        "ranges": ranges[:max_ranges],
        "extra_files": extra,
        "warnings": first["warnings"],
        "seconds": max(seconds),
        "ranks": [{"rank": i, "bytes": r["bytes_read"], "seconds": s}
                  for i, (r, s) in enumerate(zip(results, seconds))],
    }


def bench(comm, size=32 * 1024 * 1024, seconds=1.0, threads=None) -> dict:
    """Aggregate generation GB/s of every rank of `comm` (collective), beside memset.

    Each rank fills its own `size`-byte buffer from its shard of one dataset, with
    `threads` threads (default threads_per_rank), for `seconds`, starting at a common
    barrier; then memsets it the same way. Aggregate GB/s = all ranks' bytes / the
    slowest rank's seconds / 1e9. Every rank returns the same dict.
    """
    default_threads = threads_per_rank(comm)

    def check():
        n = _checks.integer("size", size, 4096, 1 << 40)
        if not (isinstance(seconds, (int, float)) and 0 < seconds < float("inf")):
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        count = _checks.threads(threads) or default_threads
        if n // count < _bench.MIN_SHARE:
            raise ValueError(f"size {n} over {count} threads gives each {n // count} bytes, "
                             f"too little to time: give size >= {count * _bench.MIN_SHARE}")
        _core.check_memory(n)
        return count

    count = agree(comm, check)[comm.rank]
    buf = _checks.buffer(size)
    rows = []

    def timed(fn) -> tuple[int, float]:
        fn()  # warm-up: page faults, thread start
        comm.Barrier()
        done, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds or done == 0:
            fn()
            done += size
        return done, elapsed

    with ThreadPoolExecutor(count) as pool:
        memset = _bench.memset_fn(buf, pool, count)
        for compress, dedup in _bench.SETTINGS:
            g = Generator(2**62, dedup, compress, seed=1, max_threads=count).shard(
                comm.rank, comm.size)
            fill = comm.allgather(timed(lambda: g.fill_chunk(buf)))
            base = comm.allgather(timed(memset))
            fill_gbps, memset_gbps = (sum(n for n, _ in r) / max(t for _, t in r) / 1e9
                                      for r in (fill, base))
            rows.append({"compress_ratio": compress, "dedup_ratio": dedup,
                         "fill_gbps": round(fill_gbps, 2), "memset_gbps": round(memset_gbps, 2),
                         "ratio": round(fill_gbps / memset_gbps, 3),
                         "rank_fill_gbps": [round(n / t / 1e9, 2) for n, t in fill]})
    return {"ranks": comm.size, "threads_per_rank": comm.allgather(count),
            "buffer_bytes": size, "seconds": seconds, "fill": rows}


def bench_report(result: dict) -> str:
    """bench()'s result as a table of aggregate GB/s."""
    threads = sorted(set(result["threads_per_rank"]))
    ranks = lambda r: " " + " ".join(f"{x:.2f}" for x in r["rank_fill_gbps"])  # noqa: E731
    return "\n".join([
        f"{result['ranks']} rank(s), {'/'.join(map(str, threads))} thread(s) each, buffer "
        f"{result['buffer_bytes'] / 2**20:g} MiB per rank; aggregate GB/s = all ranks' bytes "
        f"/ slowest rank's seconds",
        *_bench.table([("compress", 8, "compress_ratio", ""), ("dedup", 5, "dedup_ratio", ""),
                       ("fill GB/s", 10, "fill_gbps", ".2f"), ("memset GB/s", 12,
                       "memset_gbps", ".2f"), ("fill/memset", 11, "ratio", ".3f"),
                       (" per rank fill GB/s", 1, ranks, "")], result["fill"])])
