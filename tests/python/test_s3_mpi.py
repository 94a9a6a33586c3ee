"""One dataset of S3 objects written and verified by two MPI ranks (mpirun as test_mpi.py
runs it), against the S3 server of s3_server.py."""

from __future__ import annotations

import json
import uuid

import pytest

obstore = pytest.importorskip("obstore")


from conftest import reference  # noqa: E402
from s3_server import get as _get, put as _put, s3, server  # noqa: E402,F401
from test_mpi import DGEN, clean_env, mpirun, needs_mpi  # noqa: E402

MIB = 1 << 20
pytestmark = needs_mpi


def _run(*args, code=0):
    r = mpirun(2, DGEN, *args, "--json", env=clean_env())
    assert r.returncode == code, r.stderr.decode()[-2000:]
    return json.loads(r.stdout)


def test_each_rank_writes_its_share_and_the_objects_are_one_dataset(s3):
    m = _run("write", s3, "--size", "12MiB", "--files", "4", "--seed", "9",
             "--part-size", "5MiB")
    assert [(r["rank"], r["bytes"]) for r in m["ranks"]] == [(0, 6 * MIB), (1, 6 * MIB)]
    assert m["manifest"] == s3 + "/dgen-manifest.json"
    assert json.loads(_get(m["manifest"]))["files"] == m["files"]
    data = b"".join(_get(f"{s3}/part-{i:05d}") for i in range(4))
    assert data == reference(12 * MIB, 9)


def test_each_rank_verifies_its_share_into_one_report(s3):
    _run("write", s3, "--size", "8MiB", "--files", "4", "--seed", "2")
    name = s3 + "/part-00003"
    data = bytearray(_get(name))
    data[5:7] = b"\0\1" if data[5:7] != b"\0\1" else b"\1\0"
    _put(name, bytes(data))
    _put(s3 + "/part-00009", b"x")
    r = _run("verify", s3, code=1)
    assert [x["rank"] for x in r["ranks"]] == [0, 1]
    assert r["bytes_read"] == 8 * MIB and r["range_count"] == 1
    x = r["ranges"][0]
    assert (x["file"], x["file_offset"], x["offset"]) == ("part-00003", 5, 6 * MIB + 5)
    assert [o["path"].rpartition("/")[2] for o in r["extra_objects"]] == ["part-00009"]


def test_a_clean_dataset_verifies_ok_on_two_ranks(s3):
    _run("write", s3, "--size", "3MiB", "--files", "3", "--seed", "4")
    r = _run("verify", s3)
    assert r["ok"] and [f["size_on_store"] for f in r["files"]] == [MIB] * 3


def test_a_missing_bucket_fails_every_rank_with_exit_3(s3):
    url = f"s3://dgen-no-such-bucket-mpi-{uuid.uuid4().hex[:8]}/ds"
    r = mpirun(2, DGEN, "write", url, "--size", "1MiB", "--files", "2", "--seed", "1",
               env=clean_env())
    assert r.returncode == 3 and "dgen-no-such-bucket-mpi" in r.stderr.decode()
