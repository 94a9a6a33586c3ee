"""Data format 2: copies spread through the data, prefixes that stay the same, mixed seeds."""

import hashlib
import random
import subprocess

import pytest

from hypothesis import given, settings, strategies as st
from pyfastcdc import FastCDC

import dgen_py
from test_cli import DGEN

GOLDEN = 0x9E3779B97F4A7C15


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6 * 2**20), st.sampled_from([1.0, 1.5, 2.0, 3.7, 10.0]),
       st.sampled_from([4096, 131072]), st.integers(0, 2**64 - 1), st.data())
def test_any_prefix_of_a_dataset_is_the_smaller_dataset(size, ratio, unit, seed, data):
    n = data.draw(st.integers(1, size))
    whole = dgen_py.generate_buffer(size, ratio, 2.0, seed=seed, dedup_unit=unit)
    prefix = dgen_py.generate_buffer(n, ratio, 2.0, seed=seed, dedup_unit=unit)
    assert bytes(prefix) == bytes(memoryview(whole)[:n])


def blocks(data, size=4096):
    view = memoryview(data)
    return {hashlib.sha256(view[i:i + size]).digest() for i in range(0, len(view), size)}


def test_seeds_a_multiple_of_the_golden_ratio_apart_share_no_block():
    base = blocks(dgen_py.generate_buffer(8 << 20, 2.0, 2.0, seed=1234))
    for k in range(1, 9):
        other = dgen_py.generate_buffer(8 << 20, 2.0, 2.0, seed=(1234 + k * GOLDEN) % 2**64)
        assert not base & blocks(other), k


def test_format_1_keeps_its_related_seed_defect():
    # Why format 2 exists: in format 1 the same seeds give the same units, shifted by one.
    a = dgen_py.generate_buffer(1 << 20, seed=1234, dedup_unit=4096, format_version=1)
    b = dgen_py.generate_buffer(1 << 20, seed=1234 + GOLDEN, dedup_unit=4096, format_version=1)
    assert bytes(memoryview(a)[4096:8192]) == bytes(memoryview(b)[:4096])


def test_a_random_512mib_range_shows_the_ratio_by_sha256_of_4k_blocks():
    # The model checks many ranges and ratios (C++ ModelV2 tests); this hashes real bytes.
    rng = random.Random(5)
    size, length = 8 << 30, 512 << 20
    for ratio in (1.5, 3.7):
        g = dgen_py.Generator(size, ratio, 2.0, seed=77)
        g.seek(rng.randrange(0, size - length) // 4096 * 4096)  # blocks aligned in the dataset
        data = g.read(length)
        assert abs(length / 4096 / len(blocks(data)) - ratio) < 0.03 * ratio


def test_every_file_of_a_dedup_2_dataset_shows_the_ratio(tmp_path):
    # Format 1 put all first occurrences before all copies: its first half read 1.0.
    data = dgen_py.generate_buffer(64 << 20, 2.0, seed=3)
    for i in range(8):
        part = memoryview(data)[i * (8 << 20):(i + 1) * (8 << 20)]
        assert len(part) / 4096 / len(blocks(part)) == 2.0


def test_a_stream_cut_short_verifies_against_its_own_length(tmp_path):
    f = tmp_path / "cut.bin"
    subprocess.run(f"'{DGEN}' generate --size 1GiB --seed 9 --dedup-ratio 2 --compress-ratio 2"
                   f" | head -c 300000000 > '{f}'", shell=True, check=True, timeout=120)
    r = subprocess.run([DGEN, "verify", str(f), "--size", "300000000", "--seed", "9",
                        "--dedup-ratio", "2", "--compress-ratio", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK")


def cdc_found(size, average, ratio, **identity):
    """Share of the ideal saving (1 - 1/ratio) that FastCDC chunks of `average` bytes find,
    dedup by SHA-256 of each chunk."""
    g = dgen_py.Generator(size, ratio, seed=5, **identity)
    stored, total = {}, 0
    for chunk in FastCDC(avg_size=average).cut_stream(g):
        stored[hashlib.sha256(chunk.data).digest()] = chunk.length
        total += chunk.length
    return (1 - sum(stored.values()) / total) / (1 - 1 / ratio)


def test_runs_of_32_chunks_let_a_1mib_content_defined_chunker_find_the_copies():
    # Backup software chunks at about 1 MiB: runs of 32 MiB (1 MiB units, dedup_run 32),
    # over one whole window (64 runs, 2 GiB). Without runs it finds nothing.
    assert cdc_found(2 << 30, 1 << 20, 2.0, dedup_unit=1 << 20, dedup_run=32) >= 0.9
    assert cdc_found(256 << 20, 1 << 20, 2.0) < 0.05


def test_runs_of_16_units_let_an_8kib_content_defined_chunker_find_the_copies():
    assert cdc_found(256 << 20, 8192, 2.0, dedup_run=16) >= 0.95


def test_runs_keep_the_fixed_block_ratio_exact():
    data = dgen_py.generate_buffer(64 * 16 * 65536, 2.0, dedup_unit=65536, dedup_run=16, seed=2)
    assert len(data) / 4096 / len(blocks(data)) == 2.0


@pytest.mark.parametrize("c", [0.05, 0.3, 1.0])
def test_a_generation_changes_the_change_rate_share_and_keeps_both_ratios(c):
    unit, units = 65536, 64 * 40
    def gen(g):
        return dgen_py.generate_buffer(units * unit, 2.0, 2.0, seed=4, dedup_unit=unit,
                                       generation=g, change_rate=c)
    a, b = memoryview(gen(1)), memoryview(gen(2))
    differ = sum(a[i:i + unit] != b[i:i + unit] for i in range(0, len(a), unit))
    assert abs(differ / units - c) < 0.01
    for data in (a, b):
        assert len(data) / 4096 / len(blocks(data)) == 2.0
        assert zstandard_ratio(data) == pytest.approx(2.0, rel=0.05)
    # Both generations together: the unique units plus the ones generation 2 changed.
    unique = units // 2
    changed = round(c * unique) if c < 1 else unique
    together = len(blocks(a) | blocks(b))
    assert together == pytest.approx((unique + changed) * unit // 4096, rel=0.01)


def zstandard_ratio(data, frame=1 << 20):
    import zstandard
    z = zstandard.ZstdCompressor(level=1)
    return len(data) / sum(len(z.compress(data[i:i + frame])) for i in range(0, len(data), frame))


def cdc_ratio(data, average):
    stored, total = {}, 0
    for chunk in FastCDC(avg_size=average).cut_buf(bytes(data)):
        stored[hashlib.sha256(chunk.data).digest()] = chunk.length
        total += chunk.length
    return total / sum(stored.values())


def test_shifted_copies_hide_from_fixed_blocks_and_show_to_content_defined_chunks():
    # Which kind of engine is it? Fixed 4 KiB blocks find nothing, 8 KiB FastCDC most of 2.
    data = dgen_py.generate_buffer(256 << 20, 2.0, seed=3, dedup_shift=True, dedup_run=4)
    assert len(data) / 4096 / len(blocks(data)) <= 1.05
    assert cdc_ratio(data, 8192) >= 1.8
    # The same identity without the shift: both see the ratio.
    plain = dgen_py.generate_buffer(256 << 20, 2.0, seed=3, dedup_run=4)
    assert len(plain) / 4096 / len(blocks(plain)) == 2.0


def test_a_shifted_dataset_is_still_a_pure_function_of_the_offset():
    whole = dgen_py.generate_buffer(3 << 20, 2.0, 2.0, seed=1, dedup_unit=16384, dedup_run=3,
                                    dedup_shift=True)
    g = dgen_py.Generator(3 << 20, 2.0, 2.0, seed=1, dedup_unit=16384, dedup_run=3,
                          dedup_shift=True, max_threads=2, block_size=65536)
    for at, n in ((0, 1), (12345, 100000), (16384 * 7 - 3, 40000), ((3 << 20) - 999, 999)):
        g.seek(at)
        assert bytes(g.read(n)) == bytes(memoryview(whole)[at:at + n])
    assert g.verify(whole).ok


@pytest.mark.parametrize("s", [0.5, 1.0, 1.5, 2.0])
@pytest.mark.parametrize("ratio", [2.0, 4.0])
def test_skewed_copies_follow_the_zipf_exponent_and_keep_the_ratio(s, ratio):
    import collections
    import math
    import numpy as np
    unit, units = 4096, 64 * 1024
    data = memoryview(dgen_py.generate_buffer(units * unit, ratio, seed=3, dedup_unit=unit,
                                              dedup_skew=s))
    copies = collections.Counter(hashlib.sha256(data[i:i + unit]).digest()
                                 for i in range(0, len(data), unit))
    assert units / len(copies) == ratio  # whole windows: exact
    # The hot set's copies (docs/data-model.md, "Skew"): each unit's count less the copies
    # every unit gets from its own window, (64 - H) slots over its 64 / r births.
    hot = math.floor((64 - 64 / ratio) / 2)
    floor = (64 - hot) / (64 / ratio)
    top = np.array(sorted(copies.values(), reverse=True)[:50], float) - floor
    fitted = -np.polyfit(np.log(np.arange(1, 51)), np.log(top), 1)[0]
    assert abs(fitted - s) < 0.1
