"""Balanced, aligned shares of a dataset for N processes (MPI ranks, NUMA nodes)."""

from __future__ import annotations

from . import _checks

ALIGN = 4096  # O_DIRECT's alignment, and the compression page


def split(size_or_files, world, align=ALIGN):
    """Cut a dataset into `world` shares, in dataset order.

    An integer size gives `world` (start, stop) byte ranges covering [0, size): every cut
    is a multiple of `align` (a power of two, at least 4096; pass the dedup unit so that
    no unit is split), shares differ by at most `align` bytes, and where the size holds
    fewer than `world` aligned blocks some shares are empty. A list of file sizes (or
    of {"length": n} records, a manifest's "files") gives `world` lists of file indices:
    whole files, consecutive, balanced by bytes (a rank may get none when files < world).
    """
    world = _checks.integer("world", world, 1, 2**31)
    if isinstance(size_or_files, (list, tuple)):
        return _split_files(size_or_files, world)
    size, align = _checks.size(size_or_files), _align(align)
    cuts = [_cut(size, i, world, align) for i in range(world + 1)]
    return list(zip(cuts, cuts[1:]))


def _align(align) -> int:
    align = _checks.integer("align", align, ALIGN, 2**62)
    if align & (align - 1):
        raise ValueError(f"align must be a power of two of at least {ALIGN}, got {align}")
    return align


def _cut(size: int, i: int, world: int, align: int) -> int:
    return min(size, i * -(-size // align) // world * align)


def _split_files(files, world: int) -> list[list[int]]:
    lengths = []
    for i, f in enumerate(files):
        value = f.get("length") if isinstance(f, dict) else f
        lengths.append(_checks.integer(f"files[{i}]", value, 0, _checks.MAX_SIZE))
    total, at, out = sum(lengths), 0, [[] for _ in range(world)]
    for i, n in enumerate(lengths):
        # A file goes to the share its middle byte falls in: consecutive files, and every
        # share within one file's size of total / world.
        out[min(world - 1, (2 * at + n) * world // max(1, 2 * total))].append(i)
        at += n
    return out


def shard(size, rank, world, align=ALIGN) -> tuple[int, int]:
    """(start, stop) of share `rank` of split(size, world, align)."""
    world = _checks.integer("world", world, 1, 2**31)
    rank = _checks.integer("rank", rank, 0, world - 1)
    size, align = _checks.size(size), _align(align)
    return _cut(size, rank, world, align), _cut(size, rank + 1, world, align)
