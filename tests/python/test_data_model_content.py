"""content= (docs/data-model.md, "Content profiles"): flat (the default, today's bytes),
binary and text, through the API, the CLI and manifests."""

import hashlib
import json

import pytest
import zstandard
from hypothesis import given, settings, strategies as st
from pyfastcdc import FastCDC

import dgen_py
from dgen_py.manifest import MANIFEST_NAME
from test_cli import dgen, dgen_json

PROFILES = ("binary", "text")
FORMATS = (2, 4, 5)  # the profiles' pages: version 1 in 1 to 3, 2 in 4, 3 in 5


def test_flat_is_the_default_and_gives_todays_bytes():
    plain = bytes(dgen_py.generate_buffer(1 << 20, 2.0, 3.0, seed=4))
    assert bytes(dgen_py.generate_buffer(1 << 20, 2.0, 3.0, seed=4, content="flat")) == plain
    for content in PROFILES:
        assert bytes(dgen_py.generate_buffer(1 << 20, 2.0, 3.0, seed=4, content=content)) != plain


def test_format_4_is_format_3_but_for_the_profiles_pages():
    def make(fmt, content):
        return bytes(dgen_py.generate_buffer(1 << 20, 2.0, 3.0, seed=4, content=content,
                                             format_version=fmt))
    assert make(4, "flat") == make(3, "flat")
    for content in PROFILES:
        assert make(4, content) != make(3, content)


def test_format_5_is_format_4_but_for_the_text_pages():
    def make(fmt, content):
        return bytes(dgen_py.generate_buffer(1 << 20, 2.0, 3.0, seed=4, content=content,
                                             format_version=fmt))
    assert make(5, "flat") == make(4, "flat")
    assert make(5, "binary") == make(4, "binary")
    assert make(5, "text") != make(4, "text")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("content", PROFILES)
def test_every_entry_point_gives_the_same_content_bytes(content, fmt):
    kw = {"seed": 3, "content": content, "format_version": fmt}
    want = bytes(dgen_py.generate_buffer(300_001, 1.5, 2.0, **kw))
    buf = bytearray(300_001)
    assert dgen_py.fill_buffer(buf, 1.5, 2.0, **kw) == len(buf)
    assert bytes(buf) == want
    assert dgen_py.Generator(300_001, 1.5, 2.0, **kw).read() == want


@pytest.mark.parametrize("bad, error", [("zip", ValueError), ("Binary", ValueError),
                                        ("", ValueError), (1, TypeError), (None, TypeError)])
def test_bad_content_values_are_refused_naming_the_accepted_ones(bad, error):
    for call in (lambda: dgen_py.Generator(4096, content=bad),
                 lambda: dgen_py.generate_buffer(4096, content=bad),
                 lambda: dgen_py.fill_buffer(bytearray(4096), content=bad)):
        with pytest.raises(error, match="content must be .*flat, binary.*text"):
            call()


def test_the_cli_refuses_a_bad_content_in_one_line(tmp_path):
    for command in (["generate", "-o", tmp_path / "g"], ["write", tmp_path / "w"]):
        r = dgen(*command, "--size", "4KiB", "--content", "zip", check=2)
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and "--content" in lines[0], lines
        assert "content must be flat, binary or text, got 'zip'" in lines[0]


def zstd3_ratio(data, frame=1 << 20):
    z = zstandard.ZstdCompressor(level=3)
    return len(data) / sum(len(z.compress(data[i:i + frame])) for i in range(0, len(data), frame))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("content", PROFILES)
@pytest.mark.parametrize("ratio", [1.5, 3.0, 6.0])
def test_zstd_3_measures_the_requested_ratio(content, ratio, fmt):
    data = bytes(dgen_py.generate_buffer(16 << 20, 1.0, ratio, seed=1, content=content,
                                         format_version=fmt))
    assert zstd3_ratio(data) == pytest.approx(ratio, rel=0.05)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(PROFILES), st.integers(1, 3 << 20), st.sampled_from([1.0, 2.0, 3.7]),
       st.sampled_from([4096, 131072]), st.lists(st.integers(1, 300_000), min_size=1,
                                                 max_size=20), st.sampled_from([1, 3]),
       st.sampled_from(FORMATS))
def test_chunking_threads_and_seek_do_not_change_the_bytes(content, size, ratio, unit, splits,
                                                           threads, fmt):
    whole = bytes(dgen_py.generate_buffer(size, ratio, 2.5, seed=8, dedup_unit=unit,
                                          content=content, max_threads=1,
                                          format_version=fmt))
    g = dgen_py.Generator(size, ratio, 2.5, seed=8, dedup_unit=unit, content=content,
                          max_threads=threads, format_version=fmt)
    got, i = bytearray(), 0
    while len(got) < size:
        buf = bytearray(min(splits[i % len(splits)], size - len(got)))
        got += buf[:g.fill_chunk(buf)]
        i += 1
    assert bytes(got) == whole
    at = size // 3
    g.seek(at)
    buf = bytearray(size - at)
    g.fill_chunk(buf)
    assert bytes(buf) == whole[at:]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("content", PROFILES)
def test_a_prefix_is_the_smaller_dataset(content, fmt):
    kw = {"seed": 6, "content": content, "format_version": fmt}
    whole = dgen_py.generate_buffer(3 << 20, 2.0, 3.0, **kw)
    for n in (1, 4095, 4097, 1_000_003):
        prefix = dgen_py.generate_buffer(n, 2.0, 3.0, **kw)
        assert bytes(prefix) == bytes(memoryview(whole)[:n])


def distinct_blocks(data, size=4096):
    view = memoryview(data)
    return len({hashlib.sha256(view[i:i + size]).digest() for i in range(0, len(view), size)})


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("content", PROFILES)
def test_fixed_4kib_blocks_see_the_exact_dedup_ratio(content, fmt):
    size = 64 * 64 * 4096  # 64 whole windows of 4 KiB units
    data = dgen_py.generate_buffer(size, 4.0, 3.0, seed=2, dedup_unit=4096, content=content,
                                   format_version=fmt)
    assert distinct_blocks(data) == size // 4096 // 4


def cdc_found(content, size=128 << 20, average=16384, ratio=2.0, fmt=2):
    """Share of the ideal saving that 16 KiB FastCDC chunks find, runs of 16 units."""
    g = dgen_py.Generator(size, ratio, 3.0, seed=5, dedup_unit=16384, dedup_run=16,
                          content=content, format_version=fmt)
    stored, total = {}, 0
    for chunk in FastCDC(avg_size=average).cut_stream(g):
        stored[hashlib.sha256(chunk.data).digest()] = chunk.length
        total += chunk.length
    return (1 - sum(stored.values()) / total) / (1 - 1 / ratio)


def test_fastcdc_at_16kib_finds_at_least_what_it_finds_on_flat():
    flat = cdc_found("flat")
    for content in PROFILES:
        assert cdc_found(content) >= flat, content
    flat = cdc_found("flat", fmt=4)
    for content in PROFILES:
        assert cdc_found(content, fmt=4) >= flat, (content, 4)
    assert cdc_found("text", fmt=5) >= flat, ("text", 5)  # binary's pages are format 4's


# --- manifests and the CLI ----------------------------------------------------------------
def test_a_flat_manifest_records_no_content(tmp_path):
    m = dgen_json("write", tmp_path / "f", "--size", "1MiB", "--seed", 3)
    assert "content" not in m["identity"]
    assert "content" not in json.loads((tmp_path / "f.dgen.json").read_text())["identity"]
    assert "--content" not in dgen("generate", "-o", tmp_path / "g", "--size", "4KiB",
                                   check=0).stderr.decode()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("content", PROFILES)
def test_write_records_content_and_verify_reads_it_back(tmp_path, content, fmt):
    path = tmp_path / "d"
    args = ["--size", "5000001", "--seed", 12, "--dedup-ratio", 2, "--compress-ratio", 3,
            "--format-version", fmt, "--files", 3, "--content", content]
    m = dgen_json("write", path, *args)
    assert m["identity"]["content"] == content and m["identity"]["format_version"] == fmt
    record = json.loads((path / MANIFEST_NAME).read_text())
    assert record["identity"]["content"] == content
    assert record["identity"]["format_version"] == fmt
    want = bytes(dgen_py.generate_buffer(5000001, 2.0, 3.0, seed=12, content=content,
                                         format_version=fmt))
    assert b"".join((path / f["path"]).read_bytes() for f in record["files"]) == want
    assert dgen_json("verify", path)["ok"]
    assert "content " + content in dgen("write", tmp_path / "x", *args[:-4],
                                        "--content", content, check=0).stdout.decode()
    # Another content is other data: verify with it overridden finds nearly every byte.
    other = "text" if content == "binary" else "binary"
    r = dgen_json("verify", path, "--content", other, check=1)
    assert r["verdict"] == "other identity"
    # The format before is the same layout with the pages of the version before: most bytes
    # differ, but for format 5's binary, which is format 4's.
    if fmt == 4 or (fmt == 5 and content == "text"):
        r = dgen_json("verify", path, "--format-version", fmt - 1, check=1)
        assert not r["ok"] and r["mismatched_bytes"] > 0.8 * r["bytes_read"]
    elif fmt == 5:
        assert dgen_json("verify", path, "--format-version", 4)["ok"]


def test_verify_names_a_changed_byte_at_its_exact_offset(tmp_path):
    path = tmp_path / "d.bin"
    dgen("write", path, "--size", "3MiB", "--seed", 5, "--compress-ratio", 2, "--content",
         "text", check=0)
    data = bytearray(path.read_bytes())
    data[1_234_567] ^= 1
    path.write_bytes(data)
    r = dgen_json("verify", path, check=1)
    assert [(x["offset"], x["length"], x["kind"]) for x in r["ranges"]] == [
        (1_234_567, 1, "differs")]


def test_generate_records_content_and_says_how_to_reproduce_it(tmp_path):
    out = tmp_path / "g.bin"
    r = dgen("generate", "-o", out, "--size", "1MiB", "--compress-ratio", 2, "--content",
             "binary", check=0)
    assert "--content binary" in r.stderr.decode()
    record = json.loads((tmp_path / "g.bin.dgen.json").read_text())
    assert record["identity"]["content"] == "binary"
    assert dgen_json("verify", out)["ok"]


def test_a_changed_only_rewrite_keeps_the_content(tmp_path):
    path = tmp_path / "d"
    args = ["--size", "4MiB", "--seed", 9, "--dedup-ratio", 2, "--dedup-unit", "16KiB",
            "--change-rate", 0.3, "--content", "binary"]
    dgen("write", path, *args, check=0)
    m = dgen_json("write", path, *args, "--generation", 1, "--changed-only")
    assert m["identity"]["content"] == "binary" and m["identity"]["generation"] == 1
    assert path.read_bytes() == bytes(dgen_py.generate_buffer(
        4 << 20, 2.0, seed=9, dedup_unit=16384, change_rate=0.3, generation=1,
        content="binary"))
    # The manifest says binary: a rewrite given another content is refused.
    r = dgen("write", path, *args[:-2], "--generation", 2, "--changed-only", check=2)
    assert "content 'binary', not the 'flat' given" in r.stderr.decode()
