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


# --- per file: the units a file's bytes overlap, read alone ----------------------------------
def alone(identity, f):
    """units / distinct units of the units file entry f overlaps, counted one by one."""
    stream = dgen_py.Generator(identity["size"], **{k: v for k, v in identity.items()
                                                    if k != "size"})._s
    unit = identity["dedup_unit"]
    first, end = f["offset"] // unit, -(-(f["offset"] + f["length"]) // unit)
    return (end - first) / len({stream.unique_id(i) for i in range(first, end)})


def test_write_records_the_dedup_each_file_holds_alone(tmp_path):
    m = dgen_py.write_dataset(tmp_path / "d", 16 << 20, files=4, **IDENTITY)
    assert [f["holds"]["dedup_ratio"] for f in m["files"]] == \
        [alone(m["identity"], f) for f in m["files"]]
    assert all(f["holds"]["units"] == 1024 for f in m["files"])
    assert max(f["holds"]["dedup_ratio"] for f in m["files"]) < 1.9  # a window is 16 MiB
    stored = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    assert stored["files"] == m["files"]
    assert dgen_py.verify_file(tmp_path / "d")["ok"]


def test_a_file_that_straddles_units_counts_each_unit_it_overlaps(tmp_path):
    m = dgen_py.write_dataset(tmp_path / "d", (1 << 20) + 8192, files=3, seed=1,
                              dedup_ratio=2, dedup_unit=65536)
    assert [f["offset"] % 65536 for f in m["files"]] != [0, 0, 0]
    assert [f["holds"]["units"] for f in m["files"]] == \
        [-(-(f["offset"] + f["length"]) // 65536) - f["offset"] // 65536 for f in m["files"]]
    assert [f["holds"]["dedup_ratio"] for f in m["files"]] == \
        [alone(m["identity"], f) for f in m["files"]]


def test_one_file_or_no_dedup_records_no_per_file_holds(tmp_path):
    one = dgen_py.write_dataset(tmp_path / "a.bin", 1 << 20, seed=1, dedup_ratio=2)
    none = dgen_py.write_dataset(tmp_path / "d", 1 << 20, files=2, seed=1)
    assert all("holds" not in f for f in one["files"] + none["files"])


def test_write_warns_once_for_the_files_that_hold_less_alone(tmp_path):
    r = dgen("write", tmp_path / "d", "--size", "16MiB", "--files", "4", *SMALL, check=0)
    err = r.stderr.decode().splitlines()
    m = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    held = [f["holds"]["dedup_ratio"] for f in m["files"]]
    worst = m["files"][held.index(min(held))]["path"]
    assert held == [1.0] * 4  # a window is 16 MiB: each 4 MiB file holds unique units only
    assert err == ["dgen: warning: 4 of 4 files hold dedup 1.00-1.00 read alone, not the 2 "
                   f"requested (worst {worst}: 1.000; the ratio shows over whole windows of "
                   "runs, docs/data-model.md)"], err


def test_files_that_each_hold_the_request_draw_no_warning(tmp_path):
    r = dgen("write", tmp_path / "d", "--size", "32MiB", "--files", "2", *SMALL, check=0)
    m = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    assert all(abs(f["holds"]["dedup_ratio"] / 2 - 1) <= 0.01 for f in m["files"])
    assert r.stderr == b""


def test_a_manifest_with_a_malformed_file_holds_is_refused(tmp_path):
    dgen_py.write_dataset(tmp_path / "d", 16 << 20, files=2, **IDENTITY)
    where = tmp_path / "d" / "dgen-manifest.json"
    record = json.loads(where.read_text())
    record["files"][1]["holds"] = {"dedup_ratio": "2", "units": 1, "unique_units": 1}
    where.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"files\[1\]\.holds"):
        dgen_py.verify_file(tmp_path / "d")


def test_files_of_a_dataset_too_large_to_count_get_a_note_instead(tmp_path, monkeypatch, capsys):
    from dgen_py import _holds, cli
    monkeypatch.setattr(_holds, "MAX_COUNTED", 255)
    assert cli.main(["write", str(tmp_path / "d"), "--size", "1MiB", "--files", "2",
                     "--dedup-ratio", "2", "--dedup-unit", "4KiB", "--seed", "1"]) == 0
    assert "dgen: note: the dedup each file holds read alone is not counted: 256 units, " \
        "more than the 255 a manifest counts one by one\n" in capsys.readouterr().err
    m = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    assert all("holds" not in f for f in m["files"])


def test_a_rewrite_keeps_each_files_holds(tmp_path):
    from dgen_py.rewrite import rewrite_changed
    first = dgen_py.write_dataset(tmp_path / "d", 16 << 20, files=4, change_rate=0.5,
                                  **IDENTITY)
    again = rewrite_changed(tmp_path / "d", 16 << 20, files=4, generation=1, change_rate=0.5,
                            **IDENTITY)
    assert again["rewritten"]["units"] > 0
    assert [f["holds"] for f in again["files"]] == [f["holds"] for f in first["files"]]
