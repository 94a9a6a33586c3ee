"""Datasets on S3-compatible stores (dgen_py.s3), against moto's standalone server on
127.0.0.1, or against the store at DGEN_S3_TEST_ENDPOINT (or AWS_ENDPOINT_URL) with the
credentials of the environment and the bucket DGEN_S3_TEST_BUCKET (docs/s3.md)."""

from __future__ import annotations

import json
import uuid

import pytest

obstore = pytest.importorskip("obstore")

from dgen_py.write import write_dataset  # noqa: E402
from dgen_py.s3 import (ConfigError, open_object, open_store, verify_objects,  # noqa: E402
                        write_objects)
from dgen_py.s3 import _store  # noqa: E402
from dgen_py import identity  # noqa: E402

from conftest import reference  # noqa: E402
from s3_faults import FaultProxy  # noqa: E402
from s3_server import EXTERNAL, _client, s3, server  # noqa: E402,F401 (fixtures)

MIB = 1 << 20
PART = 5 * MIB  # S3's smallest part
local_only = pytest.mark.skipif(bool(EXTERNAL), reason="the fault proxy needs a server that "
                                "does not check signatures (the local moto server)")


@pytest.fixture
def proxy(server, monkeypatch, s3):
    p = FaultProxy(server[0])
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
    yield p
    p.close()


def _store_of(url, **kw):
    return open_store(_store.parse_url(url)[0], **kw)


def _key(url):
    return _store.parse_url(url)[1]


def _get(url):
    return bytes(obstore.get(_store_of(url), _key(url)).bytes())


def _put(url, data):
    obstore.put(_store_of(url), _key(url), data, use_multipart=False)


def _exists(url):
    try:
        obstore.head(_store_of(url), _key(url))
        return True
    except FileNotFoundError:
        return False


def _uploads(server, url):
    """Multipart uploads left open under the URL's key."""
    bucket, key = _store.parse_url(url)
    found = _client(server[0], server[2]).list_multipart_uploads(Bucket=bucket, Prefix=key)
    return found.get("Uploads", [])


@pytest.mark.parametrize("size", [0, 1000, 12 * MIB + 123])
def test_one_object_round_trips_byte_exact(s3, size):
    url = s3 + "/data.bin"
    record = write_objects(url, size, seed=7, part_size=PART, concurrency=3)
    assert _get(url) == reference(size, 7)
    assert record["manifest"] == url + ".dgen.json"
    assert record["files"] == [{"path": "data.bin", "offset": 0, "length": size}]
    report = verify_objects(url)
    assert report["ok"] and report["bytes_read"] == size and report["ranges"] == []


@pytest.mark.parametrize("files,size", [(4, 13 * MIB + 5), (2, 12 * MIB)])
def test_many_objects_have_the_names_offsets_and_manifest_of_files(s3, tmp_path, files, size):
    record = write_objects(s3, size, files=files, seed=3, dedup_ratio=2, part_size=PART)
    on_fs = write_dataset(tmp_path / "d", size, files=files, seed=3, dedup_ratio=2)
    assert record["files"] == on_fs["files"]
    assert record["identity"] == on_fs["identity"]
    for f in record["files"]:
        assert _get(f"{s3}/{f['path']}") == (tmp_path / "d" / f["path"]).read_bytes()
    stored = json.loads(_get(s3 + "/dgen-manifest.json"))
    assert stored["files"] == on_fs["files"] and stored["complete"] is True
    assert verify_objects(s3)["ok"]


IDENTITY_CASES = [
    {"dedup_ratio": 3, "dedup_unit": 65536},
    {"compress_ratio": 3},
    {"content": "text", "compress_ratio": 2},
    {"format_version": 3, "dedup_ratio": 2, "dedup_window": 4},
    {"dedup_ratio": 2, "dedup_run": 4},
    {"dedup_ratio": 2, "dedup_shift": True},
    {"dedup_ratio": 2, "dedup_skew": 1.0},
    {"generation": 2, "change_rate": 0.3, "dedup_ratio": 2},
    {"content": "binary", "compress_ratio": 3},
    {"format_version": 1, "dedup_ratio": 2},
    {"dedup_for": "fixed:4KiB", "dedup_ratio": 2},
]


def test_the_identity_cases_cover_every_field_of_the_table():
    given = {name for case in IDENTITY_CASES for name in case}
    assert set(identity.NAMES) - {"seed", "size"} - given == set()


@pytest.mark.parametrize("options", IDENTITY_CASES)
def test_identity_options_round_trip(s3, options):
    size = 7 * MIB + 4096
    url = s3 + "/x"
    write_objects(url, size, seed=11, part_size=PART, **options)
    assert _get(url) == reference(size, 11, **options)
    report = verify_objects(url)
    assert report["ok"], report["ranges"]
    assert verify_objects(url, seed=12)["verdict"] == "other identity"


def _damaged(s3, change):
    write_objects(s3, 12 * MIB, files=3, seed=5, part_size=PART)
    change()
    return verify_objects(s3)


def test_a_corrupted_object_is_reported_at_its_exact_offsets(s3):
    name = s3 + "/part-00001"

    def corrupt():
        data = bytearray(_get(name))
        data[1000:1010] = bytes(b ^ 0xFF for b in data[1000:1010])
        _put(name, bytes(data))
    report = _damaged(s3, corrupt)
    assert not report["ok"] and report["range_count"] == 1
    r = report["ranges"][0]
    assert (r["file"], r["file_offset"], r["offset"], r["length"], r["kind"]) == \
        ("part-00001", 1000, 4 * MIB + 1000, 10, "differs")


def test_a_truncated_object_is_reported_missing_from_where_it_ends(s3):
    name = s3 + "/part-00002"
    report = _damaged(s3, lambda: _put(name, _get(name)[:10000]))
    f = report["files"][2]
    assert f["size_on_store"] == 10000
    assert [(r["file"], r["file_offset"], r["length"], r["kind"]) for r in report["ranges"]] \
        == [("part-00002", 10000, f["length"] - 10000, "missing")]


def test_a_longer_object_is_reported_extra(s3):
    name = s3 + "/part-00000"
    report = _damaged(s3, lambda: _put(name, _get(name) + b"x" * 100))
    assert [(r["file"], r["file_offset"], r["length"], r["kind"]) for r in report["ranges"]] \
        == [("part-00000", 4 * MIB, 100, "extra")]


def test_a_missing_object_is_named(s3):
    report = _damaged(s3, lambda: obstore.delete(_store_of(s3), _key(s3) + "/part-00001"))
    assert report["files"][1]["size_on_store"] is None
    assert [(r["file"], r["file_offset"], r["length"], r["kind"]) for r in report["ranges"]] \
        == [("part-00001", 0, 4 * MIB, "missing")]


def test_an_extra_part_object_under_the_prefix_is_named(s3):
    report = _damaged(s3, lambda: _put(s3 + "/part-00007", b"left over"))
    assert not report["ok"] and report["ranges"] == []
    assert report["extra_objects"] == [{"path": _key(s3) + "/part-00007", "size": 9}]


def test_verify_without_a_manifest_takes_the_identity_given(s3):
    url = s3 + "/raw"
    write_objects(url, 3 * MIB, seed=9)
    obstore.delete(_store_of(url), _key(url) + ".dgen.json")
    with pytest.raises(ValueError, match="has no manifest"):
        verify_objects(url)
    report = verify_objects(url, seed=9)
    assert report["ok"] and report["warnings"]
    assert verify_objects(url, seed=9, size=3 * MIB + 1)["ranges"][0]["kind"] == "missing"


def test_stale_parts_are_refused_unless_forced(s3):
    write_objects(s3, 2 * MIB, files=4, seed=1)
    with pytest.raises(OSError, match="part object"):
        write_objects(s3, 2 * MIB, files=2, seed=1)
    write_objects(s3, 2 * MIB, files=2, seed=1, force=True)
    assert not _exists(s3 + "/part-00003") and verify_objects(s3)["ok"]


def test_interrupt_aborts_the_multipart_upload_and_leaves_no_manifest(s3, server):
    url = s3 + "/big"
    write_objects(url, MIB, seed=1)  # an earlier manifest: it must not survive

    def progress(n):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt, match="no manifest"):
        write_objects(url, 12 * MIB, seed=1, part_size=PART, progress=progress)
    assert not _exists(url + ".dgen.json")
    if not EXTERNAL:
        assert _uploads(server, url) == []


def test_interrupt_while_objects_go_up_side_by_side_aborts_them_all(s3, server):
    seen = [0]

    def progress(n):
        seen[0] += n
        if seen[0] > 3 * PART:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt, match="no manifest"):
        write_objects(s3, 36 * MIB, files=3, seed=1, part_size=PART, concurrency=6,
                      progress=progress)
    assert not _exists(s3 + "/dgen-manifest.json")
    if not EXTERNAL:
        assert _uploads(server, s3) == []


@local_only
@pytest.mark.parametrize("part", [2, 4])
@pytest.mark.parametrize("fault", ["500", "reset"])
def test_a_failed_part_aborts_the_upload_names_the_object_and_leaves_no_manifest(
        s3, proxy, server, fault, part):
    url = s3 + "/big"
    proxy.fault, proxy.match = fault, rf"^PUT .*partNumber={part}&"
    store = _store_of(url, retries=0)
    with pytest.raises(OSError, match=f"writing {url}: .*no manifest was written"):
        write_objects(url, 16 * MIB, seed=1, part_size=PART, concurrency=1, store=store)
    assert not _exists(url + ".dgen.json") and not _exists(url)
    assert any("DELETE" in r and "uploadId=" in r for r in proxy.requests)
    assert _uploads(server, url) == []


@local_only
def test_a_store_that_answers_too_late_fails_naming_the_object(s3, proxy):
    url = s3 + "/slow"
    proxy.fault, proxy.match = "slow", r"^PUT "
    store = _store_of(url, retries=0, timeout=1)
    with pytest.raises(OSError, match=f"writing {url}: "):
        write_objects(url, MIB, seed=1, store=store)
    proxy.fault = None
    assert not _exists(url + ".dgen.json")


@local_only
def test_a_short_object_the_store_completed_fails_the_write(s3, proxy):
    """The proxy drops the last part from CompleteMultipartUpload: the store completes an
    object short of it and answers 200; the HEAD after the upload catches it."""
    url = s3 + "/short"
    proxy.fault, proxy.match = "drop-last-part", r"^POST .*uploadId="
    with pytest.raises(OSError, match=f"{url}: the store holds {10 * MIB} bytes after the "
                                      f"upload, but {12 * MIB} were sent"):
        write_objects(url, 12 * MIB, seed=1, part_size=PART, store=_store_of(url, retries=0))
    proxy.fault = None
    assert not _exists(url + ".dgen.json")
    assert verify_objects(url, seed=1, size=12 * MIB)["ranges"][0]["kind"] == "missing"


def test_a_bucket_that_does_not_exist_fails_naming_the_object(s3):
    url = f"s3://dgen-no-such-bucket-{uuid.uuid4().hex[:8]}/x"
    with pytest.raises(OSError, match="dgen-no-such-bucket"):
        write_objects(url, MIB, seed=1, store=_store_of(url, retries=0))


@pytest.mark.parametrize("unset,named", [("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                                         ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")])
def test_missing_credentials_are_named(s3, monkeypatch, unset, named):
    monkeypatch.delenv(unset)
    with pytest.raises(ConfigError, match=f"{named} is not set"):
        write_objects(s3, MIB, seed=1)


def test_aws_needs_a_region_and_endpoints_need_a_scheme(s3, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(ConfigError, match="AWS_REGION"):
        verify_objects(s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "ftp://127.0.0.1:9")
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL"):
        verify_objects(s3)


def test_plain_http_only_when_the_endpoint_says_so(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://store.example:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")  # S3's own wins
    assert _store.settings()["endpoint"] == "http://127.0.0.1:9000"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert _store.settings()["endpoint"] == "https://store.example:9000"


@pytest.mark.parametrize("url", ["s3://A_B/x", "s3://ok-bucket//x", "s3://ok-bucket/a/../b",
                                 "/local/path"])
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError, match="url"):
        _store.parse_url(url)


def test_too_small_a_part_is_refused(s3):
    with pytest.raises(ValueError, match="part_size must be in"):
        write_objects(s3, MIB, part_size=MIB)


def test_a_write_holds_at_most_concurrency_parts(s3, monkeypatch):
    from dgen_py.s3 import _write
    import weakref
    live, most = [0], [0]

    class Counting:  # numpy, with each part made counted while it lives
        def __getattr__(self, name):
            return getattr(np_, name)

        @staticmethod
        def frombuffer(*args, **kw):
            a = np_.frombuffer(*args, **kw)
            live[0] += 1
            most[0] = max(most[0], live[0])
            weakref.finalize(a, lambda: live.__setitem__(0, live[0] - 1))
            return a
    import numpy as np_
    monkeypatch.setattr(_write, "np", Counting())
    url = s3 + "/held"
    write_objects(url, 8 * PART + 1, seed=2, part_size=PART, concurrency=3)
    assert most[0] == 3
    assert verify_objects(url)["ok"]


def test_a_unit_moved_within_its_window_is_named(s3):
    url = s3 + "/moved"
    write_objects(url, 4 * MIB, seed=4, dedup_unit=65536)
    data = bytearray(_get(url))
    data[MIB:MIB + 65536] = data[0:65536]
    _put(url, bytes(data))
    r = verify_objects(url)["ranges"]
    assert [(x["offset"], x["length"], x["kind"], x["belongs_at"]) for x in r] == \
        [(MIB, 65536, "moved", 0)]


def test_damage_across_the_cut_between_two_readers_is_one_range(s3):
    url = s3 + "/cut"
    write_objects(url, 66 * MIB, seed=6, part_size=16 * MIB)
    data = bytearray(_get(url))
    at = 64 * MIB - 100
    data[at:at + 200] = bytes(200)
    _put(url, bytes(data))
    report = verify_objects(url, concurrency=2)
    assert [(x["offset"], x["length"], x["kind"]) for x in report["ranges"]] == \
        [(at, 200, "zeros")]


def test_an_object_range_reads_as_a_seekable_file(s3):
    url = s3 + "/f"
    write_objects(url, 3 * MIB, seed=8)
    want = reference(3 * MIB, 8)
    with open_object(url) as f:
        assert f.read() == want
        f.seek(MIB + 5)
        assert f.read(10) == want[MIB + 5:MIB + 15] and f.tell() == MIB + 15
    with open_object(url, 1000, 9000, buffer_size=4096) as f:
        assert f.read() == want[1000:9000]
        assert f.seek(-10, 2) == 7990 and f.read() == want[8990:9000]
    with pytest.raises(FileNotFoundError, match="no such object"):
        open_object(s3 + "/none")
    with pytest.raises(ValueError, match="stop must be in"):
        open_object(url, 10, 3 * MIB + 1)
