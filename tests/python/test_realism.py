"""The ratios real tools measure on our output (issue: data realism)."""

import hashlib
import zlib
from concurrent.futures import ThreadPoolExecutor

import lz4.frame
import pytest
import zstandard

import dgen_py

COMPRESSORS = {  # a ZstdCompressor must not be shared by threads: one per call
    "zstd-1": lambda b: zstandard.ZstdCompressor(level=1).compress(b),
    "zstd-3": lambda b: zstandard.ZstdCompressor(level=3).compress(b),
    "lz4": lz4.frame.compress,
    "zlib-6": lambda b: zlib.compress(b, 6),
}
POOL = ThreadPoolExecutor(2)  # the compressors release the GIL


def compression_ratio(data: bytes, compress, frame: int) -> float:
    frames = [data[i:i + frame] for i in range(0, len(data), frame)]
    return len(data) / sum(POOL.map(lambda f: len(compress(f)), frames))


def page_digests(data: bytes) -> list[bytes]:
    return [hashlib.blake2b(data[i:i + 4096], digest_size=16).digest()
            for i in range(0, len(data), 4096)]


def distinct_blocks(digests: list[bytes], pages_per_block: int) -> tuple[int, int]:
    blocks = [tuple(digests[i:i + pages_per_block])
              for i in range(0, len(digests) - pages_per_block + 1, pages_per_block)]
    return len(blocks), len(set(blocks))


@pytest.mark.parametrize("ratio", [1, 1.25, 1.5, 2, 2.5, 3, 4, 6, 8, 10])
def test_every_compressor_measures_the_requested_ratio(ratio):
    data = bytes(dgen_py.generate_buffer(16 << 20, 1, ratio, seed=1))
    for name, compress in COMPRESSORS.items():
        got = compression_ratio(data, compress, 1 << 20)
        assert got == pytest.approx(ratio, rel=0.05), f"{name} over 1 MiB frames: {got:.3f}"
    for name in ("zstd-1", "lz4"):  # what arrays compress
        got = compression_ratio(data, COMPRESSORS[name], 32 << 10)
        assert got == pytest.approx(ratio, rel=0.08), f"{name} over 32 KiB frames: {got:.3f}"


@pytest.mark.parametrize("unit", [4096, 131072])
@pytest.mark.parametrize("ratio", [1, 1.5, 2, 3.7, 10, 50])
@pytest.mark.parametrize("version", [1, 2])
def test_dedup_holds_at_every_granularity_up_to_the_unit(ratio, unit, version):
    # Whole windows of format 2 (64 units) show the ratio exactly.
    units = 1600
    data = bytes(dgen_py.generate_buffer(units * unit, ratio, 2.0, seed=7, dedup_unit=unit,
                                         format_version=version))
    digests = page_digests(data)
    g = 4096
    while g <= unit:
        blocks, distinct = distinct_blocks(digests, g // 4096)
        assert blocks / distinct == pytest.approx(ratio, rel=0.01), f"at {g} bytes"
        g *= 2
    _, unique_units = distinct_blocks(digests, unit // 4096)
    assert unique_units == max(1, round(units / ratio))
    assert unique_units == dgen_py.Generator(units * unit, ratio, dedup_unit=unit,
                                             format_version=version).unique_units


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 3 * 4096 + 5, 10 * 4096, 77 * 4096 - 1])
@pytest.mark.parametrize("ratio", [1, 1.3, 2, 2.5, 7])
@pytest.mark.parametrize("version", [1, 2])
def test_distinct_unit_count_is_exact_for_small_sizes(size, ratio, version):
    g = dgen_py.Generator(size, ratio, 1.5, seed=3, dedup_unit=4096, format_version=version)
    data = bytes(g.read(size))
    units = -(-size // 4096)
    full = {data[i:i + 4096] for i in range(0, size - size % 4096, 4096)}
    tail = data[size - size % 4096:] if size % 4096 else None
    # A partial last unit is the prefix of a full one: count it only if no full unit starts so.
    distinct = len(full) + (tail is not None and not any(u.startswith(tail) for u in full))
    assert distinct == g.unique_units
    if version == 1:
        assert distinct == max(1, round(units / ratio))


@pytest.mark.parametrize("compress", [1, 1.5, 2, 4, 10, 64])
@pytest.mark.parametrize("dedup", [1, 2, 10])
def test_no_page_is_zero_and_unique_units_share_no_page(compress, dedup):
    unit = 65536
    data = bytes(dgen_py.generate_buffer(256 * unit, dedup, compress, seed=5, dedup_unit=unit))
    zero = bytes(4096)
    assert all(data[i:i + 4096] != zero for i in range(0, len(data), 4096))
    # pages of distinct units never coincide: each distinct page belongs to one unit content
    units = {data[i:i + unit] for i in range(0, len(data), unit)}
    pages = [u[j:j + 4096] for u in units for j in range(0, unit, 4096)]
    assert len(set(pages)) == len(pages)


def test_compression_and_dedup_hold_together():
    data = bytes(dgen_py.generate_buffer(32 << 20, 2, 2, seed=9))
    for name, compress in COMPRESSORS.items():
        assert compression_ratio(data, compress, 1 << 20) == pytest.approx(2, rel=0.05), name
    blocks, distinct = distinct_blocks(page_digests(data), 32)
    assert blocks / distinct == 2.0


def test_dedup_does_not_change_compression():
    plain = bytes(dgen_py.generate_buffer(16 << 20, 1, 3, seed=4))
    deduped = bytes(dgen_py.generate_buffer(16 << 20, 4, 3, seed=4))
    for name in ("lz4", "zlib-6"):  # windows shorter than a unit: they see no duplicates
        a = compression_ratio(plain, COMPRESSORS[name], 1 << 20)
        b = compression_ratio(deduped, COMPRESSORS[name], 1 << 20)
        assert a == pytest.approx(b, rel=0.005), name
