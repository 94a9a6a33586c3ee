"""Training datasets on S3 (dgen dataset s3://...): the DLIO layout as objects, each byte
for byte the file of the same dataset on a file system, read back by DLIO's readers, the
manifest put last, verified down to the object and offset."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

obstore = pytest.importorskip("obstore")

from dgen_py import datasets  # noqa: E402
from dgen_py.datasets.objects import (verify_training_objects,  # noqa: E402
                                      write_training_objects)
from dgen_py.s3 import _store, open_store  # noqa: E402

from s3_faults import FaultProxy  # noqa: E402
from s3_server import EXTERNAL, get, put, s3, server  # noqa: E402,F401 (fixtures)
from test_cli import DGEN, dgen, dgen_json  # noqa: E402
from test_mpi import clean_env, mpirun, needs_mpi  # noqa: E402

OPTIONS = {"files": 3, "eval_files": 2, "samples_per_file": 4, "record_length": 5000,
           "record_length_stdev": 1500, "seed": 11, "dedup_ratio": 2.0, "compress_ratio": 2.0}
TIMES = ("created", "manifest", "seconds")


def _objects(url) -> dict:
    """{key under the prefix: size} of every object under url."""
    bucket, key = _store.parse_url(url)
    listed = [o for batch in obstore.list(open_store(bucket), key + "/") for o in batch]
    return {o["path"][len(key) + 1:]: o["size"] for o in listed}


def _files(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt, subfolders", [("npz", 0), ("tfrecord", 0), ("npy", 2)])
def test_every_object_is_the_file_of_the_same_dataset(s3, tmp_path, fmt, subfolders):
    options = {**OPTIONS, "subfolders": subfolders}
    local = datasets.write_training_dataset(tmp_path / fmt, fmt, **options)
    m = write_training_objects(s3, fmt, **options)
    files = _files(tmp_path / fmt)
    assert set(_objects(s3)) == set(files)
    for rel, data in files.items():
        if rel == "dgen-manifest.json":
            continue
        assert get(f"{s3}/{rel}") == data, rel
    stored = json.loads(get(s3 + "/dgen-manifest.json"))
    assert m["manifest"] == s3 + "/dgen-manifest.json"
    assert {k: v for k, v in stored.items() if k not in TIMES} == \
        {k: v for k, v in local.items() if k not in TIMES}
    assert verify_training_objects(s3)["ok"]


def test_a_file_above_the_part_size_goes_up_in_parts_byte_exact(s3, tmp_path):
    big = {**OPTIONS, "files": 1, "eval_files": 0, "samples_per_file": 1,
           "record_length": 11 << 20, "record_length_stdev": 0}
    datasets.write_training_dataset(tmp_path, "npy", **big)
    m = write_training_objects(s3, "npy", **big, part_size=5 << 20, concurrency=2)
    name = m["files"][0]["path"]
    assert m["files"][0]["length"] > 10 << 20
    assert get(f"{s3}/{name}") == (tmp_path / name).read_bytes()


def test_the_manifest_is_put_after_every_object(s3):
    seen = []
    write_training_objects(s3, "npz", **OPTIONS, progress=lambda n: seen.append(
        "dgen-manifest.json" in _objects(s3)))
    assert seen and not any(seen)
    bucket, key = _store.parse_url(s3)
    listed = [o for batch in obstore.list(open_store(bucket), key + "/") for o in batch]
    last = max(listed, key=lambda o: o["last_modified"])
    assert last["last_modified"] == \
        [o for o in listed if o["path"].endswith("/dgen-manifest.json")][0]["last_modified"]


def test_npz_objects_read_with_numpy_as_dlio_reads_them(s3):
    m = write_training_objects(s3, "npz", **OPTIONS)
    for f in m["files"]:
        with np.load(io.BytesIO(get(f"{s3}/{f['path']}")), allow_pickle=True) as z:
            x, y = z["x"], z["y"]  # zipfile checks the CRCs
        assert x.shape == (*f["dims"], OPTIONS["samples_per_file"]) and y.shape == (4,)


def test_tfrecord_objects_read_with_the_index_objects(s3, tmp_path):
    tfrecord = pytest.importorskip("tfrecord")
    m = write_training_objects(s3, "tfrecord", **OPTIONS)
    for f in m["files"]:
        split, name = f["path"].split("/")[0], f["path"].rpartition("/")[2]
        (tmp_path / "data").write_bytes(get(f"{s3}/{f['path']}"))
        (tmp_path / "idx").write_bytes(get(f"{s3}/index/{split}/{name}.idx"))
        records = list(tfrecord.tfrecord_loader(str(tmp_path / "data"), str(tmp_path / "idx"),
                                                {"image": "byte", "size": "int"}))
        assert len(records) == OPTIONS["samples_per_file"]


def test_dgen_dataset_and_verify_on_s3_through_the_cli(s3):
    m = dgen_json("dataset", s3, "--format", "npz", "--files", 2, "--samples-per-file", 2,
                  "--record-length", "4KiB", "--seed", 3, "--part-size", "5MiB")
    assert m["manifest"] == s3 + "/dgen-manifest.json"
    r = dgen("verify", s3, check=0)
    assert r.stdout.decode().startswith(f"OK {s3}: npz dataset, 2 file(s)")
    assert dgen_json("verify", s3 + "/dgen-manifest.json")["ok"]


def test_a_corrupted_object_is_named_by_verify_with_exit_1(s3):
    m = write_training_objects(s3, "npz", **OPTIONS)
    name = m["files"][1]["path"]
    data = bytearray(get(f"{s3}/{name}"))
    data[5000] ^= 0xFF
    put(f"{s3}/{name}", bytes(data))
    r = dgen("verify", s3, check=1)
    assert f"{name} " in r.stdout.decode() and "FAILED" in r.stdout.decode()
    ranges = verify_training_objects(s3)["ranges"]
    assert [(x["file"], x["file_offset"], x["length"]) for x in ranges] == [(name, 5000, 1)]


def test_a_missing_object_is_reported_missing(s3):
    m = write_training_objects(s3, "tfrecord", **OPTIONS)
    bucket, key = _store.parse_url(s3)
    obstore.delete(open_store(bucket), f"{key}/{m['files'][0]['path']}")
    r = verify_training_objects(s3)
    assert not r["ok"] and r["ranges"][0] == {
        "file": m["files"][0]["path"], "file_offset": 0, "length": m["files"][0]["length"],
        "kind": "missing", "offset": None}


def test_objects_of_another_dataset_are_refused_unless_forced(s3):
    write_training_objects(s3, "npy", **{**OPTIONS, "files": 4})
    with pytest.raises(OSError, match=r"holds 4 object\(s\) .*\(train/img_0_of_4.npy, .*--force"):
        write_training_objects(s3, "npy", **OPTIONS)
    assert "dgen-manifest.json" in _objects(s3)  # refused before anything was deleted
    write_training_objects(s3, "npy", **OPTIONS, force=True)
    assert "train/img_0_of_4.npy" not in _objects(s3) and verify_training_objects(s3)["ok"]


def test_file_only_options_are_refused_for_s3_datasets(s3):
    r = dgen("dataset", s3, "--format", "npz", "--fsync", check=2)
    assert b"--fsync" in r.stderr


@pytest.mark.skipif(bool(EXTERNAL), reason="the fault proxy needs the local moto server")
def test_a_failed_upload_leaves_no_manifest(s3, server, monkeypatch):
    write_training_objects(s3, "npz", **OPTIONS)  # an old manifest, deleted first
    proxy = FaultProxy(server[0])
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        proxy.fault, proxy.match = "500", r"^PUT .*/valid/"
        bucket = _store.parse_url(s3)[0]
        with pytest.raises(OSError, match=f"writing {s3}/valid/.*no manifest was written"):
            write_training_objects(s3, "npz", **OPTIONS, store=open_store(bucket, retries=0))
    finally:
        proxy.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server[0])
    assert "dgen-manifest.json" not in _objects(s3)


def test_an_interrupt_leaves_no_manifest(s3):
    write_training_objects(s3, "npz", **OPTIONS)

    def progress(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="no manifest was written"):
        write_training_objects(s3, "npz", **OPTIONS, progress=progress)
    assert "dgen-manifest.json" not in _objects(s3)


CLI_OPTIONS = ("--format", "tfrecord", "--files", 3, "--eval-files", 2, "--samples-per-file",
               4, "--record-length", 5000, "--record-length-stdev", 1500, "--seed", 11)


def _ranks(*args, code=0):
    r = mpirun(2, DGEN, *args, "--json", env=clean_env())
    assert r.returncode == code, r.stderr.decode()[-2000:]
    return json.loads(r.stdout)


@needs_mpi
def test_two_ranks_write_one_dataset_of_the_files_bytes(s3, tmp_path):
    m = _ranks("dataset", s3, *CLI_OPTIONS)
    dgen("dataset", tmp_path, *CLI_OPTIONS, check=0)
    files = _files(tmp_path)
    assert set(_objects(s3)) == set(files)
    for rel in (f["path"] for f in m["index_files"]):
        assert get(f"{s3}/{rel}") == files[rel]
    for f in json.loads(get(m["manifest"]))["files"]:
        assert get(f"{s3}/{f['path']}") == files[f["path"]]


@needs_mpi
def test_two_ranks_verify_a_dataset_into_one_report(s3):
    m = write_training_objects(s3, "npz", **OPTIONS)
    assert _ranks("verify", s3)["ok"]
    name = m["files"][4]["path"]
    data = bytearray(get(f"{s3}/{name}"))
    data[4100] ^= 1
    put(f"{s3}/{name}", bytes(data))
    r = _ranks("verify", s3, code=1)
    assert [(x["file"], x["file_offset"]) for x in r["ranges"]] == [(name, 4100)]
