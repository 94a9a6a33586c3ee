"""analyze() measures dedup, compression, zero pages and entropy exactly as specified."""

import importlib
import json
import math
import os
import pathlib
import zlib

import numpy as np
import pytest

import dgen_py

analyze_module = importlib.import_module("dgen_py.analysis")

PAGE = 4096
ALL = ("zstd-1", "zstd-3", "lz4", "zlib-6")


def pages(n, seed):
    """n distinct pseudo-random 4 KiB pages."""
    rng = np.random.default_rng(seed)
    return [rng.bytes(PAGE) for _ in range(n)]


def test_repeated_pages_give_exact_dedup_at_each_block_size():
    a = pages(1, 1)[0]
    data = a * 8 + b"".join(pages(16, 2))  # 24 pages: 8 copies of A, then 16 distinct
    r = dgen_py.analyze(data, block_sizes=(4096, 8192, 16384, 32768), compressors=())
    got = {k: (v["blocks"], v["unique"], v["ratio"]) for k, v in r["dedup"].items()}
    assert got == {"4096": (24, 17, 24 / 17), "8192": (12, 9, 12 / 9),
                   "16384": (6, 5, 6 / 5), "32768": (3, 3, 1.0)}


def test_trailing_partial_blocks_are_ignored_and_reported():
    data = b"".join(pages(25, 3)) + b"\1" * 100
    r = dgen_py.analyze(data, block_sizes=(4096, 8192, 1 << 20), compressors=())
    assert r["bytes"] == 25 * PAGE + 100
    assert r["ignored_tail_bytes"] == 100
    assert {k: (v["blocks"], v["ignored_bytes"]) for k, v in r["dedup"].items()} == {
        "4096": (25, 100), "8192": (12, PAGE + 100), "1048576": (0, 25 * PAGE + 100)}
    assert r["dedup"]["1048576"]["ratio"] is None


def test_default_block_sizes_are_the_powers_of_two_from_4k_to_1m():
    r = dgen_py.analyze(bytes(PAGE), compressors=())
    assert list(r["dedup"]) == [str(PAGE << i) for i in range(9)]


def test_zeros_are_all_zero_pages_with_no_entropy():
    r = dgen_py.analyze(bytes(1 << 20), compressors=("zstd-1",))
    assert r["zero_pages"] == {"count": 256, "share": 1.0}
    assert r["entropy_bits_per_byte"] == 0.0
    assert r["dedup"]["4096"]["ratio"] == 256.0


def test_random_bytes_are_incompressible_with_full_entropy():
    r = dgen_py.analyze(os.urandom(8 << 20), compressors=ALL)
    assert r["entropy_bits_per_byte"] > 7.9999
    assert r["zero_pages"] == {"count": 0, "share": 0.0}
    for name, ratio in r["compression"]["ratios"].items():
        assert 0.99 < ratio <= 1.0, name
    assert all(v["ratio"] == 1.0 for v in r["dedup"].values())


def test_one_repeated_byte_compresses_very_well():
    r = dgen_py.analyze(b"x" * (4 << 20), compressors=ALL)
    assert r["entropy_bits_per_byte"] == 0.0
    assert r["zero_pages"]["count"] == 0
    for name, ratio in r["compression"]["ratios"].items():
        assert ratio > 200, name


def test_ratio_is_total_input_over_total_output_of_independent_frames():
    data = b"".join(pages(5, 4)) + b"ab" * 6000  # 4 frames, the last of 7904 bytes
    r = dgen_py.analyze(data, frame_size=8192, compressors=("zlib-6",))
    frames = [data[o:o + 8192] for o in range(0, len(data), 8192)]
    assert r["compression"]["frames"] == r["compression"]["frames_compressed"] == 4
    assert r["compression"]["bytes_compressed"] == len(data)
    want = len(data) / sum(len(zlib.compress(f, 6)) for f in frames)
    assert r["compression"]["ratios"] == {"zlib-6": want}


@pytest.mark.parametrize("data, want", [
    (bytes([1, 2, 3]) * 1000 + bytes(3000), 0.5 * 1 + 3 * (1 / 6) * math.log2(6)),
    (b"\0\1\1", 1 / 3 * math.log2(3) + 2 / 3 * math.log2(3 / 2)),  # odd length
])
def test_entropy_follows_the_byte_histogram(data, want):
    r = dgen_py.analyze(data, compressors=())
    assert r["entropy_bits_per_byte"] == pytest.approx(want, rel=1e-12)


def test_dgen_dedup_is_measured_exactly():
    data = dgen_py.generate_buffer(1024 * PAGE, dedup_ratio=4, compress_ratio=1, seed=1,
                                   dedup_unit=4096)
    d = dgen_py.analyze(data, block_sizes=(4096,), compressors=())["dedup"]["4096"]
    assert (d["blocks"], d["unique"], d["ratio"]) == (1024, 256, 4.0)


def test_dgen_compression_is_measured_near_the_requested_ratio():
    data = dgen_py.generate_buffer(8 << 20, compress_ratio=3, seed=1)
    r = dgen_py.analyze(data, compressors=ALL)
    for name, ratio in r["compression"]["ratios"].items():
        assert ratio == pytest.approx(3, rel=0.05), name
    assert r["zero_pages"]["count"] == 0


@pytest.fixture(scope="module")
def sample_data():
    """Deduplicating, compressible data with zero pages and an odd tail."""
    data = bytearray(dgen_py.generate_buffer((1 << 20) + 12345, 2, 2, seed=5,
                                             dedup_unit=16384))
    data[PAGE * 10:PAGE * 13] = bytes(3 * PAGE)
    return bytes(data)


def without_source(r):
    return {k: v for k, v in r.items() if k != "source"}


@pytest.mark.parametrize("kind", ["str", "pathlib", "bytearray", "memoryview", "numpy",
                                  "BytesView", "Generator"])
def test_every_kind_of_source_gives_the_same_result(kind, sample_data, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(sample_data)
    make = {
        "str": lambda: str(path),
        "pathlib": lambda: path,
        "bytearray": lambda: bytearray(sample_data),
        "memoryview": lambda: memoryview(sample_data),
        "numpy": lambda: np.frombuffer(sample_data[:-1], np.uint16).reshape(-1, 2),
        "BytesView": lambda: dgen_py.generate_buffer((1 << 20) + 12345, 2, 2, seed=5,
                                                     dedup_unit=16384),
        "Generator": lambda: dgen_py.Generator((1 << 20) + 12345, 2, 2, seed=5,
                                               dedup_unit=16384),
    }
    plain = {"numpy": sample_data[:-1], "BytesView": bytes(make["BytesView"]()),
             "Generator": bytes(make["BytesView"]())}.get(kind, sample_data)
    want = dgen_py.analyze(plain)
    got = dgen_py.analyze(make[kind]())
    assert without_source(got) == without_source(want)
    assert got["source"] == {"str": str(path), "pathlib": str(path), "numpy": "ndarray",
                             "memoryview": "memoryview"}.get(kind, kind)


def test_zero_pages_are_counted_on_aligned_pages(sample_data):
    r = dgen_py.analyze(sample_data, compressors=())
    assert r["zero_pages"] == {"count": 3, "share": 3 / (len(sample_data) // PAGE)}


def test_a_generator_is_read_from_the_start_to_the_end():
    gen = dgen_py.Generator(384 * PAGE, dedup_ratio=3, seed=2, dedup_unit=4096)
    gen.read(12345)
    r = dgen_py.analyze(gen, block_sizes=(4096,), compressors=())
    assert (r["bytes"], r["dedup"]["4096"]["unique"]) == (384 * PAGE, 128)
    assert gen.tell() == 384 * PAGE


def test_small_chunks_and_pieces_do_not_change_the_result(sample_data, tmp_path,
                                                          monkeypatch):
    path = tmp_path / "data.bin"
    path.write_bytes(sample_data)
    want = dgen_py.analyze(sample_data, frame_size=PAGE, sample=0.3)
    monkeypatch.setattr(analyze_module, "CHUNK", 5 * PAGE)  # many refills of both buffers
    monkeypatch.setattr(analyze_module, "PIECE", 2 * PAGE)
    for threads in (1, 2, 3):
        got = dgen_py.analyze(path, frame_size=PAGE, sample=0.3, threads=threads)
        assert without_source(got) == without_source(want)


def test_sample_compresses_an_even_share_of_the_frames():
    # Frames 0, 4, 8, ... repeat one byte, the others are random: only the former count.
    frames = [b"x" * PAGE if i % 4 == 0 else p for i, p in enumerate(pages(64, 6))]
    r = dgen_py.analyze(b"".join(frames), frame_size=PAGE, sample=0.25,
                        compressors=("zlib-6",))
    c = r["compression"]
    assert (c["frames"], c["frames_compressed"], c["bytes_compressed"]) == (64, 16, 16 * PAGE)
    assert c["ratios"]["zlib-6"] == PAGE / len(zlib.compress(b"x" * PAGE, 6))


@pytest.mark.parametrize("frames, sample, want", [
    (10, 0.25, 3), (1, 0.01, 1), (9, 1 / 3, 3), (7, 1 / 3, 3), (10, 0.3, 3), (100, 0.7, 70),
    (10, 1.0, 10), (10, None, 10)])
def test_sample_takes_frame_zero_then_an_even_share(frames, sample, want):
    r = dgen_py.analyze(bytes(frames * PAGE), frame_size=PAGE, sample=sample,
                        compressors=("lz4",))
    assert r["compression"]["frames_compressed"] == want


def test_only_the_requested_compressors_and_block_sizes_are_reported():
    r = dgen_py.analyze(bytes(3 * PAGE), block_sizes=[8192, 4096, 8192], compressors="lz4")
    assert list(r["dedup"]) == ["4096", "8192"]
    assert list(r["compression"]["ratios"]) == ["lz4"]


def test_the_result_is_plain_json():
    r = dgen_py.analyze(np.arange(5000, dtype=np.uint8))
    assert json.loads(json.dumps(r)) == r


def test_empty_input_reports_zeros_and_none():
    r = dgen_py.analyze(b"")
    assert r["bytes"] == r["ignored_tail_bytes"] == 0
    assert r["dedup"]["4096"] == {"blocks": 0, "unique": 0, "ratio": None, "ignored_bytes": 0}
    assert r["compression"]["frames"] == r["compression"]["frames_compressed"] == 0
    assert set(r["compression"]["ratios"].values()) == {None}
    assert r["zero_pages"] == {"count": 0, "share": None}
    assert r["entropy_bits_per_byte"] == 0.0


ERRORS = [
    ("missing file", dict(source="/nonexistent/dgen-analyze"), FileNotFoundError, "nonexistent"),
    ("int source", dict(source=42), TypeError, "int"),
    ("None source", dict(source=None), TypeError, "NoneType"),
    ("list source", dict(source=["a"]), TypeError, "list"),
    ("sample 0", dict(sample=0), ValueError, "sample"),
    ("sample 1.5", dict(sample=1.5), ValueError, "sample"),
    ("sample -0.5", dict(sample=-0.5), ValueError, "sample"),
    ("sample nan", dict(sample=math.nan), ValueError, "sample"),
    ("sample str", dict(sample="0.5"), TypeError, "sample"),
    ("frame_size 2048", dict(frame_size=2048), ValueError, "frame_size"),
    ("frame_size 1GiB+4K", dict(frame_size=2**30 + 4096), ValueError, "frame_size"),
    ("frame_size 5000", dict(frame_size=5000), ValueError, "frame_size"),
    ("block 2048", dict(block_sizes=(2048, 4096)), ValueError, "[4096, 1073741824], got 2048"),
    ("block 12288", dict(block_sizes=(12288,)), ValueError, "got 12288"),
    ("block 2GiB", dict(block_sizes=(2**31,)), ValueError, "block_sizes"),
    ("block float", dict(block_sizes=(4096.0,)), TypeError, "block_sizes"),
    ("compressor", dict(compressors=("zstd-1", "gzip")), ValueError,
     "'gzip'; accepted: zstd-1, zstd-3, lz4, zlib-6"),
    ("threads 0", dict(threads=0), ValueError, "threads"),
    ("cdc 3000", dict(cdc=3000), ValueError, "powers of two in [256, 2**28], got 3000"),
    ("cdc 128", dict(cdc=(128,)), ValueError, "cdc"),
    ("cdc float", dict(cdc=(4096.0,)), TypeError, "cdc"),
]


@pytest.mark.parametrize("kwargs, exc, needle", [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_bad_input_raises_a_clean_error(kwargs, exc, needle):
    kwargs = {"source": b"\0" * PAGE, **kwargs}
    with pytest.raises(exc) as info:
        dgen_py.analyze(**kwargs)
    assert needle in str(info.value)


def test_path_like_and_directory_errors_are_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        dgen_py.analyze(pathlib.Path(tmp_path / "missing"))
    with pytest.raises(IsADirectoryError):
        dgen_py.analyze(tmp_path)


# --- datasets of several files, threads, sampling per compressor, progress ----------------
@pytest.fixture
def dataset_dir(tmp_path):
    """A 3-file dataset whose copies sit in other files than their originals, and its bytes;
    file lengths are not multiples of the read chunk, so chunks straddle files."""
    dgen_py.write_dataset(tmp_path / "ds", 3 * (1 << 20) + 8192, files=3, dedup_ratio=2,
                          compress_ratio=2, seed=9, dedup_unit=16384)
    names = sorted(p.name for p in (tmp_path / "ds").glob("part-*"))
    return tmp_path / "ds", b"".join((tmp_path / "ds" / n).read_bytes() for n in names)


def test_a_dataset_directory_is_its_files_in_dataset_order(dataset_dir):
    path, data = dataset_dir
    got = dgen_py.analyze(path)
    assert without_source(got) == without_source(dgen_py.analyze(data))
    assert got["source"] == str(path) and got["dedup"]["16384"]["ratio"] == 2.0


def test_a_manifest_stands_for_its_dataset(dataset_dir):
    path, data = dataset_dir
    got = dgen_py.analyze(path / "dgen-manifest.json", compressors=("lz4",))
    assert without_source(got) == without_source(dgen_py.analyze(data, compressors=("lz4",)))


def test_a_directory_without_manifest_is_its_files_by_name(tmp_path):
    a, b = pages(2, 7)
    (tmp_path / "y").write_bytes(a + b)
    (tmp_path / "x").write_bytes(b)
    (tmp_path / ".hidden").write_bytes(a)
    got = dgen_py.analyze(tmp_path, block_sizes=(4096,), compressors=())
    assert without_source(got) == without_source(
        dgen_py.analyze(b + a + b, block_sizes=(4096,), compressors=()))


@pytest.mark.parametrize("listed", ["../secret", "/etc/passwd", "sub/../../x", "sub//x"])
def test_a_manifest_may_only_name_files_in_its_directory(tmp_path, listed):
    (tmp_path / "dgen-manifest.json").write_text(
        json.dumps({"files": [{"path": listed, "offset": 0, "length": 1}]}))
    with pytest.raises(ValueError, match="files\\[\\].path must name a file in"):
        dgen_py.analyze(tmp_path)


def test_a_dataset_is_read_without_following_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "part").write_bytes(b"secret" * 1000)
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "sub").symlink_to(outside)
    (ds / "dgen-manifest.json").write_text(
        json.dumps({"files": [{"path": "sub/part", "offset": 0, "length": 6000}]}))
    with pytest.raises(OSError, match="not a directory"):
        dgen_py.analyze(ds)
    (ds / "link").symlink_to(outside / "part")
    (ds / "dgen-manifest.json").write_text(
        json.dumps({"files": [{"path": "link", "offset": 0, "length": 6000}]}))
    with pytest.raises(OSError, match="symbolic link"):
        dgen_py.analyze(ds)
    (ds / "dgen-manifest.json").unlink()  # without a manifest: its regular files only
    (ds / "real").write_bytes(b"x" * 4096)
    assert dgen_py.analyze(ds, compressors=())["bytes"] == 4096


def test_a_manifest_listing_no_files_is_an_empty_dataset(tmp_path):
    (tmp_path / "dgen-manifest.json").write_text(json.dumps({"files": []}))
    for source in (tmp_path, tmp_path / "dgen-manifest.json"):
        assert dgen_py.analyze(source)["bytes"] == 0


def test_threads_and_read_chunks_across_files_do_not_change_the_result(dataset_dir,
                                                                       monkeypatch):
    path, data = dataset_dir
    want = dgen_py.analyze(data, frame_size=PAGE, sample=0.3, threads=1)
    monkeypatch.setattr(analyze_module, "CHUNK", 7 * PAGE)  # chunks straddle the files
    monkeypatch.setattr(analyze_module, "PIECE", 3 * PAGE)
    for threads in (1, 2, 4):
        got = dgen_py.analyze(path, frame_size=PAGE, sample=0.3, threads=threads)
        assert without_source(got) == without_source(want)


def test_a_share_per_compressor_samples_only_that_compressor(sample_data):
    got = dgen_py.analyze(sample_data, frame_size=8192, sample={"zlib-6": 0.25})
    every = dgen_py.analyze(sample_data, frame_size=8192)
    quarter = dgen_py.analyze(sample_data, frame_size=8192, sample=0.25)
    c = got["compression"]
    assert c["ratios"] == {**every["compression"]["ratios"],
                           "zlib-6": quarter["compression"]["ratios"]["zlib-6"]}
    assert c["sampled"]["zlib-6"] == {
        k: quarter["compression"][k] for k in ("frames_compressed", "bytes_compressed")}
    assert c["sampled"]["lz4"]["frames_compressed"] == c["frames_compressed"] == c["frames"]


def test_a_share_for_an_unknown_compressor_is_refused():
    with pytest.raises(ValueError, match="sample: unknown compressor 'gzip'"):
        dgen_py.analyze(bytes(PAGE), sample={"gzip": 0.5})


def test_progress_is_called_with_every_byte_measured(dataset_dir, monkeypatch):
    path, data = dataset_dir
    monkeypatch.setattr(analyze_module, "CHUNK", 64 * PAGE)
    monkeypatch.setattr(analyze_module, "PIECE", 16 * PAGE)
    calls = []
    dgen_py.analyze(path, compressors=(), progress=calls.append)
    assert len(calls) > 1 and sum(calls) == len(data)


def fastcdc_count(data, average):
    """(chunks, unique, stored bytes) of FastCDC over one buffer, as a backup engine counts."""
    from pyfastcdc import FastCDC
    stored, chunks = {}, 0
    for c in FastCDC(avg_size=average).cut_buf(data):
        stored[bytes(c.data)] = c.length
        chunks += 1
    return chunks, len(stored), sum(stored.values())


def test_cdc_counts_what_fastcdc_finds_over_the_whole_stream(tmp_path, monkeypatch):
    # Runs of 16 pages copied: a 16 KiB chunker finds most copies, a 64 KiB one fewer.
    data = bytes(dgen_py.generate_buffer(12 << 20, dedup_ratio=2, compress_ratio=2, seed=8,
                                         dedup_unit=PAGE, dedup_run=16))
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    monkeypatch.setattr(analyze_module, "CHUNK", 1)  # 4 MiB reads: chunks cut across them
    r = dgen_py.analyze(path, cdc=(16384, 65536), compressors=(), block_sizes=(PAGE,))
    for average in (16384, 65536):
        chunks, unique, stored = fastcdc_count(data, average)
        assert r["cdc"][str(average)] == {"chunks": chunks, "unique": unique,
                                          "stored_bytes": stored, "ratio": len(data) / stored}
    assert r["cdc"]["16384"]["ratio"] > r["cdc"]["65536"]["ratio"] > 1.0


def test_cdc_is_reported_only_when_asked_for():
    assert "cdc" not in dgen_py.analyze(b"\1" * PAGE, compressors=())
    r = dgen_py.analyze(b"", cdc=4096, compressors=())
    assert r["cdc"] == {"4096": {"chunks": 0, "unique": 0, "stored_bytes": 0, "ratio": None}}


def test_cdc_without_pyfastcdc_is_refused_naming_the_package_and_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pyfastcdc", None)  # import raises ImportError
    with pytest.raises(ValueError, match=r"cdc needs the Python package pyfastcdc: pip "
                                         r"install '\.\[cdc\]'"):
        dgen_py.analyze(b"\1" * PAGE, cdc=4096, compressors=())


def test_threads_default_to_dgen_threads_as_the_help_says(monkeypatch):
    made = []

    class Pool(analyze_module.ThreadPoolExecutor):
        def __init__(self, n):
            made.append(n)
            super().__init__(n)

    monkeypatch.setattr(analyze_module, "ThreadPoolExecutor", Pool)
    monkeypatch.setenv("DGEN_THREADS", "3")
    dgen_py.analyze(b"\1" * PAGE, compressors=())
    assert made == [3]


def test_block_spread_gives_percentiles_of_every_16th_page_compressed_alone():
    # Pages 0, 16, 32, ...: the first 4 of 10 repeat one byte, the other 6 are random.
    data = [p for p in pages(160, 11)]
    for k in range(4):
        data[16 * k] = b"x" * PAGE
    s = dgen_py.analyze(b"".join(data), compressors=())["block_spread"]
    alone = len(analyze_module.COMPRESSORS["zstd-3"]()(b"x" * PAGE))
    assert (s["block_size"], s["compressor"], s["blocks"]) == (PAGE, "zstd-3", 10)
    assert s["p90"] == pytest.approx(PAGE / alone)
    assert s["p10"] == s["p50"] < 1  # a random page grows by the frame's header


def test_block_spread_does_not_depend_on_where_pieces_start(sample_data, monkeypatch):
    want = dgen_py.analyze(sample_data, compressors=())["block_spread"]
    monkeypatch.setattr(analyze_module, "CHUNK", 21 * PAGE)
    monkeypatch.setattr(analyze_module, "PIECE", 7 * PAGE)  # pieces start off the 16-page grid
    assert dgen_py.analyze(sample_data, compressors=(), threads=2)["block_spread"] == want
    assert want["blocks"] == -(-(len(sample_data) // PAGE) // 16)


def test_timing_adds_each_compressors_cpu_speed_and_only_when_asked(sample_data):
    r = dgen_py.analyze(sample_data, compressors=ALL, timing=True)["compression"]
    assert set(r["cpu_mb_per_s"]) == set(ALL)
    assert all(v > 0 for v in r["cpu_mb_per_s"].values())
    assert "cpu_mb_per_s" not in dgen_py.analyze(sample_data, compressors=ALL)["compression"]
