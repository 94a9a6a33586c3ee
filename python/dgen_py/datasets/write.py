"""Writing a training dataset: every rank its share of the files, rank 0 the directory's
claim and the manifest."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time

from .. import _checks, _core
from .._generator import DEFAULT_DEDUP_UNIT
from ..identity import keywords_in
from .claim import claim_directory, targets
from .engine import Writer
from .formats import side_files, side_paths
from .manifest import manifest_record
from .ranks import collective
from .presets import refuse_unhonoured
from .spec import plan, require, resolve_spec
from .. import _fs
from .. import manifest as manifests


def write_training_dataset(path, format=None, *, workload=None, files=None, eval_files=None,
                           samples_per_file=None, record_length=None,
                           record_length_stdev=None, subfolders=0, file_prefix="img",
                           dlio="2.0", hdf5_datasets=1, dims_seed=10, seed=None,
                           dedup_ratio=1.0, compress_ratio=1.0, dedup_unit=DEFAULT_DEDUP_UNIT,
                           dedup_run=1, dedup_shift=False, dedup_skew="uniform",
                           generation=0, change_rate=1.0, format_version=_core.FORMAT_VERSION,
                           dedup_window=_core.WINDOW_UNITS, dedup_for=None, content="flat",
                           threads=None, force=False, jobs=None, fsync=False, progress=None,
                           comm=None) -> dict:
    """Write a DLIO training dataset into directory `path`; returns its manifest.

    format (or workload, a preset of MLPerf Storage: unet3d, resnet50, cosmoflow) and the
    counts as in DLIO's dataset section; see dgen_py.datasets' docstring for the bytes. The
    identity keywords are write_dataset's and name the stream the payloads are cut from; a
    dedup_for preset whose engine would not see the ratio in these files is refused (see
    datasets.presets). With comm (an mpi4py communicator; collective) file i is written
    by rank i % comm.size and rank 0 claims the directory and writes the manifest after
    every rank finished; every rank returns the same manifest. Files under train/, valid/
    and index/ that the new dataset does not have are refused, or deleted with force=True.
    jobs files are written at once (default: one per thread, at most the files);
    fsync=True fsyncs every file and directory before the manifest. progress(n) is called
    with the payload bytes written (on rank 0, scaled to the dataset's size, under MPI).
    """
    fields = keywords_in(locals())
    agree, rank, world, share = collective(comm)
    planned = {}

    def check():  # on every rank, each rank's settings gathered to compare them
        spec = resolve_spec(format, workload=workload, files=files, eval_files=eval_files,
                            samples_per_file=samples_per_file, record_length=record_length,
                            record_length_stdev=record_length_stdev, subfolders=subfolders,
                            file_prefix=file_prefix, dlio=dlio, hdf5_datasets=hdf5_datasets,
                            dims_seed=dims_seed)
        require(spec["format"])
        _checks.path(path)
        _checks.flag("force", force)
        synced = _checks.flag("fsync", fsync)
        if jobs is not None:
            _checks.integer("jobs", jobs, 1, _checks.MAX_THREADS)
        count = _checks.threads(threads) or share or _core.available_cpus()
        planned["entries"], size = plan(spec)
        refuse_unhonoured(dedup_for, spec, planned["entries"])
        identity = manifests.make_identity(size=size, **fields)
        return (spec, {**identity, "seed": _checks.seed(seed)}, identity["seed"], count, synced,
                os.path.abspath(path))
    checked = agree(check)
    if comm is not None:  # fsync too: the manifest is durable only if every rank synced
        from ..mpi import same_settings
        same_settings([{**spec, **given, "fsync": synced, "path": where}
                       for spec, given, _, _, synced, where in checked])
    spec, identity, threads = checked[0][0], dict(checked[0][1]), checked[rank][3]
    identity["seed"] = checked[0][2]  # rank 0 drew it, where none was given
    entries, root = planned["entries"], _checks.path(path)
    force, fsync = bool(force), bool(fsync)
    new, new_dirs = targets(spec, entries)
    manifest = os.path.join(root, manifests.MANIFEST_NAME)
    held = []  # rank 0: the claim's release()

    try:
        agree(lambda: held.append(claim_directory(root, manifest, new, new_dirs, force))
              if rank == 0 else None)
        if comm is not None:
            from ..mpi import same_storage
            same_storage(comm, root)
        mine = entries[rank::world]
        scale = identity["size"] / max(1, sum(e["payload"] for e in mine))
        tick = (lambda n: progress(n * scale)) if progress and rank == 0 else None
        sizes = agree(lambda: _write_files(root, spec, identity, mine, threads, tick, jobs,
                                           fsync), share=True)
        seconds = max(s for _, s in sizes)
        sized = {}
        for written, _ in sizes:
            sized.update(written)
        record = manifest_record(spec, identity, entries, sized)
        agree(lambda: manifests.write_manifest(manifest, record) if rank == 0 else None)
    finally:
        for release in held:
            release()
    return {**record, "manifest": manifest, "seconds": seconds}


def _write_files(root, spec, identity, mine, threads, progress, jobs=None, fsync=False):
    """Write data files `mine` and their index files; ({path: size}, seconds). With several
    threads, several files at once (`jobs`, one writer each, as `dgen write --jobs`; by
    default one per thread): one thread copying into the page cache is slower than
    generation. fsync: every file, then every directory, reaches the device."""
    from concurrent.futures import ThreadPoolExecutor
    started = time.perf_counter()
    tree = _fs.DatasetTree.at(root)
    jobs = max(1, min(len(mine), threads if jobs is None else jobs))
    if progress and jobs > 1:
        lock, report = threading.Lock(), progress

        def progress(n):
            with lock:
                report(n)
    sizes = {}

    def write(group):
        writer = Writer(identity, max(1, threads // jobs), progress)
        try:
            for f in group:
                _write_one(tree, root, spec, f, writer, sizes, fsync)
        finally:
            writer.window.close()

    try:
        for f in mine:  # directories opened here (rank 0 made them), so writers only read it
            for p in [f["path"]] + side_paths(spec, f):
                tree.dir(os.path.dirname(p))
        with ThreadPoolExecutor(jobs) as pool:
            for future in [pool.submit(write, mine[j::jobs]) for j in range(jobs)]:
                future.result()
        if fsync:
            for fd in tree.fds.values():
                os.fsync(fd)
    finally:
        tree.close()
    return sizes, time.perf_counter() - started



@contextlib.contextmanager
def _writing(tree, root, rel, flags):
    """The fd of file `rel` opened for writing, closed after; an OSError (a full disk, a
    file size limit) names the file."""
    fd = tree.open(rel, flags)
    try:
        yield fd
    except OSError as e:
        raise OSError(e.errno, f"writing {os.path.join(root, rel)}: {e.strerror}") from None
    finally:
        os.close(fd)


def _write_one(tree, root, spec, f, writer, sizes, fsync=False):
    # Existing files are overwritten in place and cut to their new length after (as
    # write_dataset does: no pages freed and allocated again), new ones appended to.
    flags = os.O_WRONLY | os.O_CREAT
    with _writing(tree, root, f["path"], flags) as fd:
        sizes[f["path"]] = writer.write(fd, spec, f)
        os.ftruncate(fd, sizes[f["path"]])
        if fsync:
            os.fsync(fd)
    for p, content in side_files(spec, f):
        with _writing(tree, root, p, flags | os.O_TRUNC) as fd:
            sizes[p] = 0
            for chunk in content:
                _write_all(fd, chunk)
                sizes[p] += len(chunk)
            if fsync:
                os.fsync(fd)


def _write_all(fd, data) -> None:
    """write() until every byte is written: a short write is retried, and the retry
    raises what stopped the first (ENOSPC, EFBIG)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == 0:
            raise OSError(errno.EIO, "write() wrote nothing")
        view = view[n:]
