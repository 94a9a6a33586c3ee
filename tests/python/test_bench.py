"""dgen bench reports the spread of its rounds and warns when they disagree."""

import itertools

import pytest

from dgen_py import bench


def fake_rates(monkeypatch, values):
    """bench.rate returns `values` in turn: the measured GB/s of each round."""
    values = itertools.cycle(values)
    monkeypatch.setattr(bench, "rate", lambda fn, nbytes, seconds: next(values))


def test_every_figure_has_min_median_and_max_over_its_rounds(monkeypatch):
    fake_rates(monkeypatch, [1.0, 5.0, 3.0, 2.0, 4.0, 3.0, 3.0])  # 7 rounds, one per pair side
    r = bench.run(1 << 20, threads=[1], seconds=0.01)
    for row, names in [(r["fill"][0], ("fill_gbps", "memset_gbps")),
                       (r["memset0"][0], ("memset0_gbps", "memset_gbps")),
                       (r["verify"][0], ("verify_gbps", "memcmp_gbps"))]:
        for name in names:
            lo, mid, hi = row[f"{name}_min"], row[name], row[f"{name}_max"]
            assert lo <= mid <= hi and lo < hi, (name, row)
    text = bench.report(r)
    assert "median (min-max)" in text


def test_rounds_that_vary_by_more_than_a_fifth_give_a_warning(monkeypatch):
    fake_rates(monkeypatch, [10.0, 13.0, 13.0])  # each side sees 10 and 13
    r = bench.run(1 << 20, threads=[1], seconds=0.01)
    assert len(r["warnings"]) == 4  # memset(0), two fill settings and verify
    assert "rounds vary 1.3x (max/min)" in r["warnings"][0]
    assert "warning: fill compress 1 dedup 1 against memset(7), 1 MiB, 1 thread(s): fill " \
        "compress 1 dedup 1's rounds vary 1.3x" in bench.report(r)


def test_a_warning_names_the_side_whose_rounds_vary(monkeypatch):
    # Rounds alternate the measured side and its baseline: the side sees 10 every time, the
    # baseline 10 and 13 in turn.
    fake_rates(monkeypatch, [10.0, 10.0, 10.0, 13.0])
    r = bench.run(1 << 20, threads=[1], seconds=0.01)
    byte = r["memset_byte"]
    assert r["warnings"] == [
        f"memset(0) against memset({byte}), 1 MiB, 1 thread(s): memset({byte})'s rounds vary "
        "1.3x (max/min); a busy machine or a varying clock: rerun on a quiet one before "
        "trusting this ratio"] + [
        f"{what} against {base}, 1 MiB, 1 thread(s): {base}'s rounds vary 1.3x (max/min); a "
        "busy machine or a varying clock: rerun on a quiet one before trusting this ratio"
        for what, base in [("fill compress 1 dedup 1", f"memset({byte})"),
                           ("fill compress 2 dedup 2", f"memset({byte})"),
                           ("verify", "memcmp")]]


def test_steady_rounds_give_no_warning(monkeypatch):
    fake_rates(monkeypatch, [10.0, 11.0, 11.0])
    r = bench.run(1 << 20, threads=[1], seconds=0.01)
    assert r["warnings"] == [] and "warning" not in bench.report(r)


def test_the_real_rounds_are_ordered(monkeypatch):
    r = bench.run(1 << 20, threads=[1], seconds=0.05)
    row = r["fill"][0]
    assert 0 < row["fill_gbps_min"] <= row["fill_gbps"] <= row["fill_gbps_max"]
    assert row["ratio"] == pytest.approx(row["fill_gbps"] / row["memset_gbps"], rel=0.01)


def test_the_baseline_is_memset_of_a_non_zero_byte_and_memset_0_is_its_own_row(monkeypatch):
    stored = []
    monkeypatch.setattr(bench.ctypes, "memset", lambda addr, byte, n: stored.append(byte))
    r = bench.run(1 << 20, threads=[1], seconds=0.01)
    assert r["memset_byte"] != 0 and set(stored) == {0, r["memset_byte"]}
    text = bench.report(r)
    assert f"fill/memset({r['memset_byte']})" in text and "memset(0) GB/s" in text
    zero = r["memset0"][0]
    assert zero["ratio"] == pytest.approx(zero["memset0_gbps"] / zero["memset_gbps"], rel=0.01)


def test_every_size_is_measured_and_reported_with_the_isa_and_cpu_seconds(monkeypatch):
    fake_rates(monkeypatch, [10.0, 11.0])
    r = bench.run([1 << 20, 2 << 20], threads=[1], seconds=0.01)
    assert r["buffer_bytes"] == [1 << 20, 2 << 20] and r["isa"]
    assert [row["buffer_bytes"] for row in r["fill"]] == [1 << 20] * 2 + [2 << 20] * 2
    assert [row["buffer_bytes"] for row in r["verify"]] == [1 << 20, 2 << 20]
    assert all(row["cpu_s_per_tb"] is not None for row in r["fill"] + r["verify"])
    assert f"isa {r['isa']}" in bench.report(r)


def test_the_default_sizes_are_2_32_and_256_mib():
    assert bench.SIZES == (2 << 20, 32 << 20, 256 << 20)
