"""`dgen write` and `dgen verify` on s3:// targets, driven as installed (subprocess), against
the S3 server of s3_server.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

import pytest

obstore = pytest.importorskip("obstore")

from dgen_py.s3 import open_store, verify_objects  # noqa: E402
from dgen_py.s3 import _store  # noqa: E402

from conftest import reference  # noqa: E402
from s3_server import _client, get as _get, put as _put, s3, server  # noqa: E402,F401
from test_cli import DGEN, dgen, dgen_json  # noqa: E402

MIB = 1 << 20


def test_write_then_verify_round_trips_through_the_cli(s3):
    w = dgen("write", s3, "--size", "12MiB", "--files", "3", "--seed", "7",
             "--part-size", "5MiB", "--concurrency", "2", check=0)
    line, manifest = w.stdout.decode().splitlines()
    assert line.startswith("wrote 12 MiB (12582912 bytes) in 3 object(s) at ")
    assert manifest == f"manifest {s3}/dgen-manifest.json"
    data = b"".join(_get(f"{s3}/part-{i:05d}") for i in range(3))
    assert data == reference(12 * MIB, 7)
    v = dgen("verify", s3, "--concurrency", "3", check=0)
    assert v.stdout.decode().startswith(f"OK {s3}: 12 MiB (12582912 bytes) read and "
                                        f"verified in 3 object(s) at ")


def test_write_json_is_the_manifest_with_its_url(s3):
    m = dgen_json("write", s3 + "/one.bin", "--size", "100000", "--seed", "3",
                  "--dedup-ratio", "2")
    assert m["manifest"] == s3 + "/one.bin.dgen.json"
    assert m["identity"]["size"] == 100000 and m["identity"]["dedup_ratio"] == 2
    assert m["files"] == [{"path": "one.bin", "offset": 0, "length": 100000}]
    assert {"holds", "seconds", "complete"} <= set(m)
    assert json.loads(_get(m["manifest"]))["identity"] == m["identity"]


def test_verify_json_has_the_objects_and_extra_objects(s3):
    dgen("write", s3, "--size", "1MiB", "--files", "2", "--seed", "1", check=0)
    r = dgen_json("verify", s3)
    assert r["ok"] and r["extra_objects"] == []
    assert [f["size_on_store"] for f in r["files"]] == [512 * 1024] * 2


@pytest.mark.parametrize("option", [["--direct"], ["--fsync"], ["--jobs", "2"],
                                    ["--changed-only"]])
def test_file_only_write_options_are_refused_on_s3(s3, option):
    r = dgen("write", s3, "--size", "1MiB", "--seed", "1", *option, check=2)
    assert f"{option[0]}: has no meaning for an s3:// target" in r.stderr.decode()


def test_direct_is_refused_by_verify_on_s3(s3):
    r = dgen("verify", s3, "--direct", check=2)
    assert "--direct: has no meaning for an s3:// target" in r.stderr.decode()


@pytest.mark.parametrize("option", [["--part-size", "8MiB"], ["--concurrency", "2"]])
def test_s3_only_options_are_refused_on_files(tmp_path, option):
    r = dgen("write", tmp_path / "f", "--size", "4096", "--seed", "1", *option, check=2)
    assert f"{option[0]}: applies to s3:// targets only" in r.stderr.decode()


@pytest.mark.parametrize("unset", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_a_missing_setting_exits_2_naming_it(s3, monkeypatch, unset):
    monkeypatch.delenv(unset)
    r = dgen("write", s3, "--size", "1MiB", "--seed", "1", check=2)
    assert f"{unset} is not set" in r.stderr.decode()


def test_a_too_small_part_size_exits_2(s3):
    r = dgen("write", s3, "--size", "1MiB", "--seed", "1", "--part-size", "1MiB", check=2)
    assert "part_size" in r.stderr.decode()


def test_a_corrupted_object_exits_1_naming_its_offset(s3):
    dgen("write", s3, "--size", "12MiB", "--files", "3", "--seed", "5", check=0)
    name = s3 + "/part-00001"
    data = bytearray(_get(name))
    data[1000:1010] = bytes(b ^ 0xFF for b in data[1000:1010])
    _put(name, bytes(data))
    out = dgen("verify", s3, check=1).stdout.decode().splitlines()
    assert out[0].startswith(f"FAILED {s3}: 12 MiB in 3 object(s), ")
    assert out[1].split() == ["object", "object", "offset", "dataset", "offset", "length",
                              "what"]
    assert out[2].split() == ["part-00001", "1000", str(4 * MIB + 1000), "10", "differs"]


def test_an_extra_object_is_listed_and_fails_verify(s3):
    dgen("write", s3, "--size", "1MiB", "--files", "2", "--seed", "1", check=0)
    _put(s3 + "/part-00005", b"left over")
    out = dgen("verify", s3, check=1).stdout.decode()
    key = _store.parse_url(s3)[1]
    assert f"extra object {s3}/part-00005 (9 bytes): not in this dataset" in out
    assert verify_objects(s3)["extra_objects"] == [{"path": key + "/part-00005", "size": 9}]


def test_a_missing_object_without_a_manifest_exits_3(s3):
    r = dgen("verify", s3 + "/nothing.bin", "--seed", "1", check=3)
    assert "no such object" in r.stderr.decode()


@pytest.mark.parametrize("files", ["1", "2"])
def test_a_missing_bucket_exits_3(s3, files):
    url = f"s3://dgen-no-such-bucket-{uuid.uuid4().hex[:8]}/x"
    r = dgen("write", url, "--size", "8192", "--files", files, "--seed", "1", check=3)
    assert "dgen-no-such-bucket" in r.stderr.decode()


def test_help_names_s3_and_its_options():
    for command, options in (("write", ("--part-size", "--concurrency")),
                             ("verify", ("--concurrency",))):
        text = dgen(command, "--help", check=0).stdout.decode()
        assert "s3://BUCKET/PREFIX" in text and all(o in text for o in options)


def test_analyze_of_objects_measures_what_it_measures_on_files(s3, tmp_path):
    options = ("--size", "6MiB", "--files", "3", "--seed", "2", "--dedup-ratio", "2",
               "--compress-ratio", "2")
    dgen("write", s3, *options, check=0)
    dgen("write", tmp_path / "ds", *options, check=0)
    on_store = dgen_json("analyze", s3, "--sample", "1")["files"][0]
    on_files = dgen_json("analyze", tmp_path / "ds", "--sample", "1")["files"][0]
    assert on_store["source"] == s3 and on_store["bytes"] == 6 * MIB
    for key in ("source", "seconds"):
        on_store.pop(key), on_files.pop(key)
    for a in (on_store, on_files):  # CPU speeds vary run to run
        assert a["compression"].pop("cpu_mb_per_s").keys() == {"zstd-1", "zstd-3", "lz4",
                                                                 "zlib-6"}
    assert on_store == on_files


def test_analyze_of_a_missing_object_exits_3(s3):
    r = dgen("analyze", s3 + "/nothing", check=3)
    assert "no such object" in r.stderr.decode()


def test_bench_io_on_s3_times_dgen_beside_plain_puts_and_gets(s3):
    r = dgen_json("bench", "--io", s3, "--size", "6MiB", "--rounds", "1")
    assert set(r["median"]) == {"dgen write", "plain put", "dgen verify", "plain GETs"}
    assert r["size"] == 6 * MIB and r["write_ratio"] > 0 and r["verify_ratio"] > 0
    bucket, key = _store.parse_url(s3)
    assert list(obstore.list(open_store(bucket), key + "/")) in ([], [[]])  # cleaned up


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_aborts_the_upload_and_writes_no_manifest(s3, server, sig, code):
    bucket, key = _store.parse_url(s3)
    client = _client(server[0], server[2])
    p = subprocess.Popen([DGEN, "write", s3 + "/big", "--size", "1GiB", "--seed", "1",
                          "--part-size", "5MiB", "--concurrency", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads"):
            assert time.monotonic() < deadline and p.poll() is None, "no upload started"
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == code
    assert err.decode().splitlines()[-1] == (f"dgen: interrupted writing {s3}/big: uploads in "
                                              f"progress were aborted, no manifest was written")
    assert client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) == []
    assert not any(o["Key"].endswith(".dgen.json") for o in
                   client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []))
