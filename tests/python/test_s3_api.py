"""dgen_py.write_dataset() and dgen_py.verify_file() on s3:// URLs: what write_objects() and
verify_objects() do, with the file-system options refused (docs/s3.md). Against moto's
standalone server on 127.0.0.1, or the store at DGEN_S3_TEST_ENDPOINT (see s3_server.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

import dgen_py
from dgen_py.rewrite import rewrite_changed

from s3_server import get, put, s3, server  # noqa: F401 (fixtures)

MIB = 1 << 20
needs_client = pytest.mark.skipif(importlib.util.find_spec("obstore") is None,
                                  reason="needs the optional obstore client")


def _objects(url, record):
    """The URLs of a dataset's objects: the URL itself for one object, else under it."""
    files = record["files"]
    return [url] if len(files) == 1 else [f"{url}/{f['path']}" for f in files]


@needs_client
@pytest.mark.parametrize("files", [1, 3])
def test_write_dataset_to_a_url_is_verified_by_verify_file(s3, files):
    from dgen_py.s3 import write_objects
    size = 11 * MIB + 77
    written = dgen_py.write_dataset(s3 + "/a/x", size, files=files, seed=9, dedup_ratio=2)
    plain = write_objects(s3 + "/b/x", size, files=files, seed=9, dedup_ratio=2)
    assert written.keys() == plain.keys()
    assert written["files"] == plain["files"] and written["identity"] == plain["identity"]
    assert written["manifest"] == plain["manifest"].replace("/b/x", "/a/x")
    assert len(written["files"]) == files
    for a, b in zip(_objects(s3 + "/a/x", written), _objects(s3 + "/b/x", plain)):
        assert get(a) == get(b)
    report = dgen_py.verify_file(s3 + "/a/x")
    assert report["ok"] and report["bytes_read"] == size, report["ranges"]
    assert report["path"] == s3 + "/a/x" and report["extra_objects"] == []
    assert [f["size_on_store"] for f in report["files"]] == [f["length"] for f in plain["files"]]


@needs_client
def test_verify_file_of_a_url_names_the_corrupted_object(s3):
    dgen_py.write_dataset(s3, 12 * MIB, files=3, seed=5)
    name = s3 + "/part-00001"
    data = bytearray(get(name))
    data[4096:4100] = bytes(b ^ 0xFF for b in data[4096:4100])
    put(name, bytes(data))
    report = dgen_py.verify_file(s3)
    assert not report["ok"] and report["range_count"] == 1
    r = report["ranges"][0]
    assert (r["file"], r["file_offset"], r["length"], r["kind"]) == \
        ("part-00001", 4096, 4, "differs")


@pytest.mark.parametrize("call,option", [
    (lambda url: dgen_py.write_dataset(url, 1000, seed=1, direct=True), "direct"),
    (lambda url: dgen_py.write_dataset(url, 1000, seed=1, fsync=True), "fsync"),
    (lambda url: dgen_py.write_dataset(url, 1000, seed=1, files=3, jobs=2), "jobs"),
    (lambda url: dgen_py.verify_file(url, seed=1, direct=True), "direct"),
], ids=["write-direct", "write-fsync", "write-jobs", "verify-direct"])
def test_file_system_options_on_a_url_are_refused_naming_the_option(tmp_path, monkeypatch,
                                                                     call, option):
    monkeypatch.chdir(tmp_path)  # nothing of a URL taken for a path lands in the tree
    with pytest.raises(ValueError, match=rf"^{option}\b.*s3://"):
        call("s3://dgen-test/refused")
    assert list(tmp_path.iterdir()) == []


def test_rewrite_changed_of_a_url_is_refused_as_for_file_systems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="rewrites in place are for file systems"):
        rewrite_changed("s3://dgen-test/ds", 1000, seed=1, generation=1)


def test_a_refused_url_option_loads_neither_numpy_nor_the_client(tmp_path):
    # `import dgen_py` stays light: the S3 jobs (numpy, obstore) load only to do S3 work.
    code = ("import sys, dgen_py\n"
            "try:\n"
            "    dgen_py.write_dataset('s3://dgen-test/x', 10, seed=1, fsync=True)\n"
            "except ValueError:\n"
            "    print(sorted(m for m in ('numpy', 'obstore') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.strip() == "[]"
