"""Training datasets take every field of the dataset identity (as write_dataset does), record
it in the manifest, verify with it, refuse the one value they cannot honour, and say what
the stream size of their payloads holds of the dedup ratio."""

import json

import numpy as np
import pytest

import dgen_py
from dgen_py import _holds, datasets

from test_datasets import dgen, edit_manifest, flip

SHAPE = {"files": 2, "eval_files": 1, "samples_per_file": 4, "record_length": 64 << 10,
         "record_length_stdev": 0, "seed": 5, "dedup_ratio": 2.0, "compress_ratio": 2.0,
         "dedup_unit": 4096}
# field, value, what the baseline has besides SHAPE (so that the field alone differs), and
# what the manifest's identity records for it
FIELDS = [
    ("dedup_run", 4, {}, {"dedup_run": 4}),
    ("dedup_shift", True, {"dedup_unit": 16384}, {"dedup_shift": True}),
    ("dedup_skew", 1.1, {}, {"dedup_skew": 1.1}),
    ("generation", 2, {}, {"generation": 2}),
    ("change_rate", 0.5, {"generation": 1}, {"change_rate": 0.5}),
    ("dedup_window", 4, {"format_version": 3}, {"dedup_window": 4}),
    ("dedup_for", "cdc:8KiB", {"dedup_unit": 128 << 10},
     {"dedup_unit": 8192, "dedup_run": 32, "dedup_window": 64, "format_version": 3}),
    ("content", "text", {}, {"content": "text"}),
]
PRESET_SHAPE = {k: v for k, v in SHAPE.items() if k != "dedup_unit"}  # a preset picks it


def needs(fmt) -> None:
    if fmt == "tfrecord":
        pytest.importorskip("crc32c")


def stream(identity, offset, length) -> bytes:
    """Bytes [offset, offset + length) of the stream of a manifest's identity."""
    i = dict(identity)
    gen = dgen_py.Generator(i.pop("size"), i.pop("dedup_ratio"), i.pop("compress_ratio"), **i)
    out = np.empty(length, np.uint8)
    gen.seek(offset)
    gen.readinto(memoryview(out))
    return out.tobytes()


def payloads(root, m) -> list[bytes]:
    """Each data file's first payload bytes, found in the file where its stream bytes lie."""
    out = []
    for f in m["files"]:
        data = (root / f["path"]).read_bytes()
        head = stream(m["identity"], f["payload_offset"], 64)
        at = data.find(head)
        assert at >= 0, f"{f['path']} does not hold its payload"
        out.append(data[at:at + min(f["payload"], 60000)])
    return out


@pytest.mark.parametrize("fmt", ["npz", "tfrecord"])
@pytest.mark.parametrize("field, value, baseline, recorded", FIELDS,
                         ids=[f[0] for f in FIELDS])
def test_every_identity_field_is_recorded_changes_the_payload_and_verifies(
        tmp_path, fmt, field, value, baseline, recorded):
    needs(fmt)
    base = {**SHAPE, **baseline}
    given = {**base, field: value}
    if field == "dedup_for":
        del given["dedup_unit"]
    a, b = tmp_path / "default", tmp_path / field
    ma = datasets.write_training_dataset(a, fmt, **base)
    mb = datasets.write_training_dataset(b, fmt, **given)
    assert {k: mb["identity"].get(k) for k in recorded} == recorded
    on_disk = json.loads((b / "dgen-manifest.json").read_text())
    assert on_disk["identity"] == mb["identity"]
    assert payloads(a, ma) != payloads(b, mb)
    assert datasets.verify_training_dataset(b)["ok"]
    f = mb["files"][1]
    at = (b / f["path"]).read_bytes().find(stream(mb["identity"], f["payload_offset"], 64))
    flip(b / f["path"], at + 10)
    r = datasets.verify_training_dataset(b)
    assert not r["ok"] and [(x["file"], x["file_offset"], x["kind"]) for x in r["ranges"]] \
        == [(f["path"], at + 10, "payload")]


def test_the_manifest_lists_the_fields_as_write_dataset_does(tmp_path):
    m = datasets.write_training_dataset(tmp_path / "d", "npy", **SHAPE)
    w = dgen_py.write_dataset(str(tmp_path / "w.bin"), m["identity"]["size"],
                              **{k: v for k, v in SHAPE.items() if k in m["identity"]})
    assert m["identity"] == w["identity"]  # format 2, flat: no dedup_window, no content


@pytest.mark.parametrize("fmt, preset, shape, why", [
    ("npz", "fixed:8KiB", {}, "4096-byte aligned file offsets only"),
    ("npz", "fixed:64KiB", {}, "4096-byte aligned file offsets only"),
    ("tfrecord", "fixed:1MiB", {}, "4096-byte aligned file offsets only"),
    ("tfrecord", "fixed:4KiB", {"record_length": 60000}, "packed off the 4096-byte grid"),
    ("tfrecord", "cdc:64KiB", {"record_length": 114_660},  # resnet50's 338 x 338 samples
     "a TFRecord sample of 114244 bytes holds fewer than two 65536-byte chunks"),
])
def test_a_preset_the_files_would_hide_the_ratio_from_is_refused_naming_it(tmp_path, fmt,
                                                                           preset, shape,
                                                                           why):
    needs(fmt)
    shape = {**PRESET_SHAPE, **shape}
    with pytest.raises(ValueError, match=f"^dedup_for: '{preset}' cannot be honoured by this "
                                         f"{fmt} training dataset: .*{why}"):
        datasets.write_training_dataset(tmp_path / "d", fmt, dedup_for=preset, **shape)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("fmt, preset, shape", [
    ("npz", "fixed:4KiB", {}), ("npz", "cdc:1MiB", {"record_length": 1000}),
    ("tfrecord", "fixed:4KiB", {"record_length": 65536}),
    ("tfrecord", "cdc:32KiB", {"record_length": 114_660}),
])
def test_a_preset_the_files_show_is_honoured(tmp_path, fmt, preset, shape):
    needs(fmt)
    shape = {**PRESET_SHAPE, **shape}
    m = datasets.write_training_dataset(tmp_path / "d", fmt, dedup_for=preset, **shape)
    assert m["identity"]["format_version"] == 3
    assert datasets.verify_training_dataset(tmp_path / "d")["ok"]


@pytest.mark.parametrize("options", [{}, {"dedup_for": "cdc:8KiB"}])
def test_the_manifest_says_what_the_payload_stream_holds(tmp_path, options):
    shape = {**PRESET_SHAPE, **options} if options else SHAPE
    m = datasets.write_training_dataset(tmp_path / "d", "npz", **shape)
    assert m["holds"] == _holds.holds(m["identity"])
    on_disk = json.loads((tmp_path / "d" / "dgen-manifest.json").read_text())
    assert on_disk["holds"] == m["holds"]
    if options:  # 1 MiB of 256 KiB runs in windows of 64: far from dedup 2
        assert m["holds"]["dedup_ratio"] < 1.9 and m["holds"]["smallest_size"]


@pytest.mark.parametrize("change, field", [
    (lambda i: i.update(content="bogus"), "identity.content"),
    (lambda i: i.update(dedup_run=0), "identity.dedup_run"),
    (lambda i: i.update(generation=-1), "identity.generation"),
])
def test_an_edited_identity_field_is_refused_naming_it(tmp_path, change, field):
    root = tmp_path / "d"
    datasets.write_training_dataset(root, "npy", **SHAPE)
    edit_manifest(root, lambda r: change(r["identity"]))
    out = dgen("verify", root)
    assert out.returncode == 2 and f"dgen-manifest.json: {field}" in out.stderr.decode()
