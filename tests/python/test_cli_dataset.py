"""`dgen dataset` takes the whole identity, as `dgen write` does, and reports what it holds."""

import json

from dgen_py import identity
from dgen_py.cli import build_parser
from test_cli import dgen, dgen_json

NPY = ["--format", "npy", "--files", 2, "--samples-per-file", 4, "--record-length", "64KiB",
       "--seed", 5]


def options(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {o for a in sub._actions for o in a.option_strings}


def test_dataset_offers_every_identity_option_but_the_size():
    wanted = {f.option for f in identity.options() if f.name != "size"}
    assert wanted <= options("dataset")
    assert "--size" not in options("dataset")
    assert wanted <= options("write")


def test_dataset_records_every_identity_option_and_verifies(tmp_path):
    m = dgen_json("dataset", tmp_path / "d", *NPY, "--content", "text", "--dedup-run", 4,
                  "--format-version", 3, "--dedup-window", 4, "--dedup-ratio", 2,
                  "--dedup-skew", "1.5", "--generation", 2, "--change-rate", "0.5")
    want = {"content": "text", "dedup_run": 4, "format_version": 3, "dedup_window": 4,
            "dedup_skew": 1.5, "generation": 2, "change_rate": 0.5}
    assert {k: m["identity"][k] for k in want} == want
    recorded = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())["identity"]
    assert {k: recorded[k] for k in want} == want
    assert dgen_json("verify", tmp_path / "d")["ok"]


def test_dataset_records_the_values_a_preset_picks(tmp_path):
    m = dgen_json("dataset", tmp_path / "d", *NPY, "--dedup-for", "cdc:64KiB",
                  "--dedup-ratio", 2)
    picked = identity.apply_preset({"dedup_for": "cdc:64KiB"})
    assert {k: m["identity"][k] for k in identity.PRESET_PICKS} == \
        {k: picked[k] for k in identity.PRESET_PICKS}
    assert dgen_json("verify", tmp_path / "d")["ok"]


def test_a_preset_the_files_cannot_honour_is_refused_naming_the_option(tmp_path):
    r = dgen("dataset", tmp_path / "d", "--format", "tfrecord", "--files", 2,
             "--record-length", 60000, "--seed", 1, "--dedup-for", "fixed:4KiB",
             "--dedup-ratio", 2, check=2)
    err = r.stderr.decode()
    assert err.startswith("dgen: error: --dedup-for: 'fixed:4KiB' cannot be honoured by this "
                          "tfrecord training dataset"), err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "d" / "dgen-manifest.json").exists()


def test_a_preset_beside_a_value_it_picks_is_refused_naming_both(tmp_path):
    r = dgen("dataset", tmp_path / "d", *NPY, "--dedup-for", "cdc:64KiB", "--dedup-run", 4,
             check=2)
    assert "--dedup-for cdc:64KiB chooses --dedup-run itself" in r.stderr.decode()


def test_dataset_reports_the_dedup_its_payload_holds_and_warns(tmp_path):
    r = dgen("dataset", tmp_path / "d", *NPY, "--dedup-ratio", 2, "--dedup-run", 4, check=0)
    out, err = r.stdout.decode(), r.stderr.decode()
    m = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    assert f"holds dedup {m['holds']['dedup_ratio']:.3f}" in out.splitlines()[0]
    assert m["holds"]["dedup_ratio"] < 1.98  # 4 units: no whole window
    assert err.startswith("dgen: warning: 512 KiB of payload holds dedup"), err
    assert "is the smallest payload (samples' bytes together) from 512 KiB up" in err


def test_dataset_without_dedup_reports_no_holds(tmp_path):
    r = dgen("dataset", tmp_path / "d", *NPY, check=0)
    assert "holds dedup" not in r.stdout.decode() and r.stderr == b""
