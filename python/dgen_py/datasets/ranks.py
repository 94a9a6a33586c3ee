"""The ranks of an MPI job, as writing and verifying a training dataset use them."""

from __future__ import annotations


def collective(comm):
    """(agree, rank, world size, share). agree(fn): fn() on every rank and every rank's
    value (a list; share=False: this rank's value only), or every rank raises the first
    error (dgen_py.mpi's protocol). share: the threads of this rank's share of its node
    (asked here, as it is collective, before any rank can fail). Without comm: the same
    for one rank (rank 0 of 1), and no share."""
    if comm is None:
        return (lambda fn, share=True: [fn()] if share else fn()), 0, 1, None
    from ..mpi import _agree, threads_per_rank
    threads = threads_per_rank(comm)
    return (lambda fn, share=True: _agree(comm, fn, share)), comm.rank, comm.size, threads
