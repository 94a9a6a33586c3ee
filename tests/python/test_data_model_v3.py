"""Data format 3: windows sized for the engine, dedup_for presets (docs/data-model.md)."""

import hashlib
import json
import subprocess

import pytest
import zstandard
from hypothesis import given, settings, strategies as st
from pyfastcdc import FastCDC

import dgen_py
from test_cli import DGEN

MIB = 1 << 20


def found(size, average, ratio, start=0, stop=None, **identity):
    """Share of the ideal saving (1 - 1/ratio) FastCDC at `average` finds in [start, stop)."""
    g = dgen_py.Generator(size, ratio, seed=5, start=start, stop=stop, **identity)
    stored, total = {}, 0
    for c in FastCDC(avg_size=average).cut_stream(g):
        stored[hashlib.sha256(c.data).digest()] = c.length
        total += c.length
    return (1 - sum(stored.values()) / total) / (1 - 1 / ratio)


def chunk_store(size, average, **identity):
    g = dgen_py.Generator(size, 2.0, seed=5, **identity)
    return {hashlib.sha256(c.data).digest(): c.length
            for c in FastCDC(avg_size=average).cut_stream(g)}


@pytest.mark.parametrize("ratio", [2.0, 4.0])
def test_a_cdc_preset_lets_its_engine_find_the_saving_in_a_small_dataset(ratio):
    assert found(64 * MIB, 16384, ratio, dedup_for="cdc:16KiB") >= 0.9


@pytest.mark.parametrize("ratio", [2.0, 4.0])
def test_a_cdc_preset_lets_its_engine_find_the_saving_in_every_file(ratio):
    size = 256 * MIB  # files of 32 MiB: one window of cdc:16KiB
    cuts = [size * i // 8 for i in range(9)]
    for a, b in zip(cuts, cuts[1:]):
        assert found(size, 16384, ratio, a, b, dedup_for="cdc:16KiB") >= 0.9, (a, b)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_a_generation_is_new_to_the_presets_engine_in_its_change_rate_share(rate):
    size, unit = 256 * MIB, 16384
    unique = dgen_py.Generator(size, 2.0, seed=5, dedup_for="cdc:16KiB").unique_units * unit
    before = chunk_store(size, unit, dedup_for="cdc:16KiB", change_rate=rate)
    for g in (1, 2):
        now = chunk_store(size, unit, dedup_for="cdc:16KiB", change_rate=rate, generation=g)
        new = sum(n for d, n in now.items() if d not in before)
        assert 0.85 <= new / (rate * unique) <= 1.2, (g, new / (rate * unique))
        before = now


def test_a_cdc_preset_keeps_the_fixed_block_ratio_exact():
    data = dgen_py.generate_buffer(64 * MIB, 2.0, seed=2, dedup_for="cdc:16KiB")
    view = memoryview(data)
    blocks = {hashlib.sha256(view[i:i + 4096]).digest() for i in range(0, len(view), 4096)}
    assert len(view) // 4096 == 2 * len(blocks)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6 * MIB), st.sampled_from([1.5, 2.0, 3.7]),
       st.sampled_from(["cdc:4KiB", "cdc:16KiB", "cdc:64KiB", "fixed:8KiB"]),
       st.integers(0, 2**64 - 1), st.data())
def test_any_prefix_of_a_format_3_dataset_is_the_smaller_dataset(size, ratio, preset, seed,
                                                                 data):
    n = data.draw(st.integers(1, size))
    whole = dgen_py.generate_buffer(size, ratio, 2.0, seed=seed, dedup_for=preset)
    prefix = dgen_py.generate_buffer(n, ratio, 2.0, seed=seed, dedup_for=preset)
    assert bytes(prefix) == bytes(memoryview(whole)[:n])


@pytest.mark.parametrize("preset", ["cdc:4KiB", "cdc:8KiB", "cdc:16KiB", "cdc:32KiB",
                                    "fixed:4KiB"])
def test_compressors_over_1mib_frames_do_not_see_a_presets_copies(preset):
    # Runs under 1 MiB lie in grids of 8 x 8, their copies 8 runs apart up to dedup 8;
    # runs of 1 MiB or more are a frame apart already.
    for ratio in (2.0, 4.0, 8.0):
        data = memoryview(dgen_py.generate_buffer(32 * MIB, ratio, 2.0, seed=1,
                                                  dedup_for=preset))
        z = zstandard.ZstdCompressor(level=3)
        packed = sum(len(z.compress(data[i:i + MIB])) for i in range(0, len(data), MIB))
        assert len(data) / packed < 2.1, (preset, ratio)


def test_presets_choose_format_3_unit_run_and_window():
    g = dgen_py.Generator(64 * MIB, 2.0, seed=1, dedup_for="cdc:1MiB")
    assert g.format_version == 3
    same = dgen_py.Generator(64 * MIB, 2.0, seed=1, format_version=3, dedup_unit=MIB,
                             dedup_run=32, dedup_window=1)
    assert bytes(g.read(4 * MIB)) == bytes(same.read(4 * MIB))
    fixed = dgen_py.generate_buffer(8 * MIB, 2.0, seed=1, dedup_for="fixed:4KiB")
    assert bytes(fixed) == bytes(dgen_py.generate_buffer(
        8 * MIB, 2.0, seed=1, format_version=3, dedup_unit=131072, dedup_window=64))


@pytest.mark.parametrize("fmt", [4, 5])
def test_a_preset_keeps_a_later_format_where_it_is_given(fmt):
    # Formats 4 and 5 are format 3 with later content pages: a preset must not turn them
    # into 3.
    g = dgen_py.Generator(64 * MIB, 2.0, seed=1, dedup_for="cdc:1MiB", content="text",
                          format_version=fmt)
    assert g.format_version == fmt
    same = dgen_py.Generator(64 * MIB, 2.0, seed=1, format_version=fmt, dedup_unit=MIB,
                             dedup_run=32, dedup_window=1, content="text")
    later = bytes(g.read(4 * MIB))
    assert later == bytes(same.read(4 * MIB))
    three = dgen_py.Generator(64 * MIB, 2.0, seed=1, dedup_for="cdc:1MiB", content="text")
    assert three.format_version == 3 and bytes(three.read(4 * MIB)) != later


@pytest.mark.parametrize("extra, named", [({"dedup_unit": 4096}, "dedup_unit"),
                                          ({"dedup_run": 4}, "dedup_run"),
                                          ({"dedup_window": 16}, "dedup_window"),
                                          ({"format_version": 1}, "format_version")])
def test_a_preset_beside_the_values_it_chooses_is_refused_naming_both(extra, named):
    with pytest.raises(ValueError, match=f"dedup_for.*{named}"):
        dgen_py.Generator(MIB, 2.0, dedup_for="cdc:1MiB", **extra)


@pytest.mark.parametrize("bad", ["cdc:3KiB", "cdc:16MiB", "fixed:2KiB", "zfs:128KiB", "cdc",
                                 "cdc:1GiB", ""])
def test_a_bad_preset_is_refused_naming_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="cdc:SIZE.*fixed:SIZE"):
        dgen_py.generate_buffer(4096, dedup_for=bad)
    with pytest.raises(TypeError, match="dedup_for"):
        dgen_py.generate_buffer(4096, dedup_for=1)


def test_a_window_other_than_64_needs_format_3():
    with pytest.raises(ValueError, match="dedup_window"):
        dgen_py.Generator(MIB, 2.0, dedup_window=16)
    with pytest.raises(ValueError, match="dedup_window must be 1, 4, 16 or 64"):
        dgen_py.Generator(MIB, 2.0, format_version=3, dedup_window=8)


def test_write_and_verify_refuse_a_window_other_than_64_before_format_3(tmp_path):
    # The manifest of formats 1 and 2 lists no window: a window given there would be dropped
    # silently, the data written (or checked) with 64.
    with pytest.raises(ValueError, match="dedup_window must be 64 in format_version 2"):
        dgen_py.write_dataset(str(tmp_path / "d"), MIB, dedup_ratio=2.0, seed=1,
                              dedup_window=16)
    assert not (tmp_path / "d").exists()
    dgen_py.write_dataset(str(tmp_path / "e"), MIB, dedup_ratio=2.0, seed=1)
    with pytest.raises(ValueError, match="dedup_window must be 64 in format_version 2"):
        dgen_py.verify_file(str(tmp_path / "e"), dedup_window=16)


def test_write_records_the_values_a_preset_chose_and_verifies(tmp_path):
    f = tmp_path / "d"
    r = subprocess.run([DGEN, "write", str(f), "--size", "32MiB", "--seed", "4",
                        "--dedup-ratio", "2", "--dedup-for", "cdc:16KiB"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    identity = json.loads((tmp_path / "d.dgen.json").read_text())["identity"]
    assert {k: identity[k] for k in ("dedup_unit", "dedup_run", "dedup_window",
                                     "format_version")} == {
        "dedup_unit": 16384, "dedup_run": 32, "dedup_window": 64, "format_version": 3}
    r = subprocess.run([DGEN, "verify", str(f)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stdout + r.stderr
    assert bytes(dgen_py.generate_buffer(32 * MIB, 2.0, seed=4, dedup_for="cdc:16KiB")) == \
        f.read_bytes()


def test_format_2_manifests_do_not_list_a_window(tmp_path):
    m = dgen_py.write_dataset(str(tmp_path / "d"), MIB, dedup_ratio=2.0, seed=1)
    assert "dedup_window" not in m["identity"]


def test_the_cli_refuses_a_preset_beside_a_value_it_chooses(tmp_path):
    r = subprocess.run([DGEN, "write", str(tmp_path / "d"), "--size", "1MiB",
                        "--dedup-for", "cdc:1MiB", "--dedup-run", "8"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--dedup-for cdc:1MiB" in r.stderr and "--dedup-run" in r.stderr
    r = subprocess.run([DGEN, "generate", "--size", "1MiB", "--dedup-for", "lz4:1MiB",
                        "-o", str(tmp_path / "e")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cdc:SIZE" in r.stderr


def test_write_dataset_takes_a_preset(tmp_path):
    m = dgen_py.write_dataset(str(tmp_path / "d"), 8 * MIB, files=2, dedup_ratio=2.0, seed=1,
                              dedup_for="cdc:64KiB")
    assert (m["identity"]["dedup_unit"], m["identity"]["dedup_run"],
            m["identity"]["dedup_window"]) == (65536, 32, 1)
    assert dgen_py.verify_file(str(tmp_path / "d"))["ok"]


def test_verify_names_the_runs_a_generation_changed_as_stale(tmp_path):
    # 32 MiB of cdc:32KiB at dedup 2: 16 unique runs of 1 MiB in windows of one run, one
    # group of births, of which round(0.3 * 16) = 5 change: 10 of the 32 runs.
    path = str(tmp_path / "d")
    dgen_py.write_dataset(path, 32 * MIB, dedup_ratio=2.0, seed=1, dedup_for="cdc:32KiB",
                          change_rate=0.3)
    r = dgen_py.verify_file(path, generation=1, max_ranges=10**6)
    assert r["verdict"] == "mismatch"
    assert abs(r["mismatched_bytes"] / (32 * MIB) - 10 / 32) < 0.005
    kinds = {(x["kind"], x["stale_generation"]) for x in r["ranges"]}
    assert ("stale", 0) in kinds and kinds <= {("stale", 0), ("differs", None)}


def test_a_size_short_of_a_window_is_reported_with_the_smallest_that_holds(tmp_path):
    r = subprocess.run([DGEN, "write", str(tmp_path / "d"), "--size", "8MiB", "--seed", "1",
                        "--dedup-ratio", "2", "--dedup-for", "cdc:1MiB"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "holds dedup 1.000" in r.stdout
    assert "64 MiB (67108864 bytes) is the smallest size" in r.stderr
