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
from dgen_py.datasets.objects import verify_training_objects, write_training_objects  # noqa: E402,E501
from dgen_py.s3 import _store, open_store  # noqa: E402

from s3_faults import FaultProxy  # noqa: E402
from s3_server import EXTERNAL, get, put, s3, server  # noqa: E402,F401 (fixtures)
from test_cli import dgen, dgen_json  # noqa: E402

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


@pytest.mark.parametrize("fmt", ["npz", "tfrecord", "npy"])
def test_every_object_is_the_file_of_the_same_dataset(s3, tmp_path, fmt):
    local = datasets.write_training_dataset(tmp_path / fmt, fmt, **OPTIONS)
    m = write_training_objects(s3, fmt, **OPTIONS)
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
