"""Reports give the dedup ratio the written size holds, and warn where it is off."""

import json

import pytest

import dgen_py
from dgen_py._holds import holds
from test_cli import dgen

# 4 KiB units in runs of 64: a window (64 runs) is 16 MiB, where dedup 2 holds exactly.
SMALL = ["--dedup-ratio", "2", "--dedup-unit", "4KiB", "--dedup-run", "64", "--seed", "3"]
IDENTITY = dict(seed=3, dedup_ratio=2.0, compress_ratio=1.0, dedup_unit=4096, dedup_run=64,
                format_version=2)


def held(size):
    return -(-size // 4096) / dgen_py.Generator(size, **IDENTITY).unique_units


@pytest.mark.parametrize("size", [8 << 20, 16 << 20, 12345678, 4096])
def test_holds_is_units_over_unique_units(size):
    h = holds({**IDENTITY, "size": size})
    assert h["dedup_ratio"] == held(size)
    assert h["units"] == -(-size // 4096)
    assert h["unique_units"] == dgen_py.Generator(size, **IDENTITY).unique_units


def test_the_smallest_size_that_holds_the_request_is_the_first_from_the_size_up():
    h = holds({**IDENTITY, "size": 8 << 20})
    assert h["dedup_ratio"] == pytest.approx(4 / 3)
    s = h["smallest_size"]
    assert 8 << 20 < s <= 16 << 20 and s % (64 * 4096) == 0
    assert held(s) == pytest.approx(2, rel=0.01)
    assert all(abs(held(n) / 2 - 1) > 0.01 for n in range(8 << 20, s, 64 * 4096))


def test_a_size_that_holds_the_request_names_no_other_size():
    assert holds({**IDENTITY, "size": 16 << 20})["smallest_size"] is None
    assert holds({**IDENTITY, "size": 0})["smallest_size"] is None


def test_write_reports_what_the_size_holds_and_warns(tmp_path):
    r = dgen("write", tmp_path / "d", "--size", "8MiB", "--files", "2", *SMALL, check=0)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "holds dedup 1.333" in out
    assert ("warning: 8 MiB holds dedup 1.333, not the 2 requested (1536 unique units of "
            "2048" in err), err
    m = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    assert m["holds"] == holds(m["identity"])
    assert str(m["holds"]["smallest_size"]) in err


def test_write_of_a_size_that_holds_the_ratio_does_not_warn(tmp_path):
    r = dgen("write", tmp_path / "d", "--size", "16MiB", *SMALL, check=0)
    assert "holds dedup 2.000" in r.stdout.decode()
    assert "warning" not in r.stderr.decode()


def test_generate_to_a_pipe_warns_too():
    r = dgen("generate", "--size", "8MiB", *SMALL, check=0)
    assert len(r.stdout) == 8 << 20
    assert "warning: 8 MiB holds dedup 1.333" in r.stderr.decode()
