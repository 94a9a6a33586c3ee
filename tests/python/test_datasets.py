"""Training datasets (dgen dataset): every format read back by the readers DLIO uses, the
layout and names DLIO's loader expects, verify down to the byte, ratios, MPI, bad input."""

import glob
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dgen_py
from dgen_py import cli, datasets
from dgen_py.datasets import engine, formats, tfrecord

from test_mpi import clean_env, mpirun, needs_mpi

SEED = 11


def write(tmp_path, fmt, **options):
    options = {"files": 3, "eval_files": 2, "samples_per_file": 4, "record_length": 5000,
               "record_length_stdev": 1500, "seed": SEED, "dedup_ratio": 2.0,
               "compress_ratio": 2.0, **options}
    root = tmp_path / fmt
    m = datasets.write_training_dataset(root, fmt, **options)
    return root, m


def stream(m, offset, length) -> np.ndarray:
    """Bytes [offset, offset + length) of the dataset's identity stream."""
    i = m["identity"]
    gen = dgen_py.Generator(i["size"], i["dedup_ratio"], i["compress_ratio"], seed=i["seed"],
                            dedup_unit=i["dedup_unit"], format_version=i["format_version"])
    out = np.empty(length, np.uint8)
    gen.seek(offset)
    gen.readinto(memoryview(out))
    return out


def samples(m, f) -> np.ndarray:
    """File f's samples as (samples, dim1, dim2), from the stream: back to back, or (large
    TFRecord samples) each at a 4 KiB-aligned stream offset."""
    d1, d2 = f["dims"]
    size = d1 * d2
    n = m["dataset"]["samples_per_file"]
    stride = f["payload"] // n if n > 1 and f["payload"] % size else size
    stride = -(-stride // 4096) * 4096 if stride != size else size
    return np.stack([stream(m, f["payload_offset"] + i * stride, size).reshape(d1, d2)
                     for i in range(n)])


def test_npz_reads_as_dlio_reads_it(tmp_path):
    root, m = write(tmp_path, "npz")
    for f in m["files"]:
        with np.load(root / f["path"], allow_pickle=True) as z:  # zipfile checks the CRCs
            x, y = z["x"], z["y"]
        d1, d2 = f["dims"]
        assert x.shape == (d1, d2, 4) and x.dtype == np.uint8 and list(y) == [0] * 4
        flat = stream(m, f["payload_offset"], f["payload"]).reshape(d1, d2, 4)
        for i in range(4):
            assert np.array_equal(x[..., i], flat[..., i])


def test_npy_reads_as_dlio_reads_it(tmp_path):
    root, m = write(tmp_path, "npy")
    for f in m["files"]:
        x = np.load(root / f["path"])
        d1, d2 = f["dims"]
        assert x.shape == (d1, d2, 4) and x.dtype == np.uint8
        assert np.array_equal(x, stream(m, f["payload_offset"], f["payload"])
                              .reshape(d1, d2, 4))
        with open(root / f["path"], "rb") as fh:  # the payload lies raw at a 4 KiB boundary
            fh.seek(4096)
            assert fh.read(16) == x.tobytes()[:16]


@pytest.mark.parametrize("dlio, k", [("2.0", 1), ("head", 3)])
def test_hdf5_reads_as_dlio_reads_it(tmp_path, dlio, k):
    h5py = pytest.importorskip("h5py")
    root, m = write(tmp_path, "hdf5", dlio=dlio, hdf5_datasets=k)
    for f in m["files"]:
        d1, d2 = f["dims"]
        per = 4 * d1 * d2
        with h5py.File(root / f["path"], "r") as h5:
            names = ["records"] if dlio == "2.0" else [f"records_{j}" for j in range(k)]
            assert sorted(h5) == sorted(names + ["labels"])
            assert list(h5["labels"][:]) == [0] * 4 and h5["labels"].dtype == np.int64
            for j, name in enumerate(names):
                want = stream(m, f["payload_offset"] + j * per, per).reshape(4, d1, d2)
                assert h5[name].shape == (4, d1, d2) and h5[name].dtype == np.uint8
                for i in range(4):
                    assert np.array_equal(h5[name][i], want[i])


@pytest.mark.parametrize("dlio, record_length", [("2.0", 5000), ("head", 5000),
                                                 ("2.0", 70000), ("head", 70000)])
def test_tfrecord_reads_with_an_independent_reader(tmp_path, dlio, record_length):
    crc32c = pytest.importorskip("crc32c")
    tfrecord = pytest.importorskip("tfrecord")
    from tfrecord import example_pb2
    assert crc32c.crc32c(b"123456789") == 0xE3069283  # Castagnoli
    root, m = write(tmp_path, "tfrecord", dlio=dlio, record_length=record_length,
                    record_length_stdev=record_length // 4)
    base = int(np.sqrt(record_length))
    for f in m["files"]:
        path = root / f["path"]
        split = f["path"].split("/")[0]
        index = root / "index" / split / (os.path.basename(f["path"]) + ".idx")
        want = samples(m, f)
        aligned = want[0].size >= 64 * 1024  # samples of 64 KiB and more: payloads aligned
        data = path.read_bytes()
        at, starts = 0, []
        for i in range(4):  # framing: length, masked CRC of it, data, masked CRC of data
            (length,) = struct.unpack_from("<Q", data, at)
            for what, crc in ((data[at:at + 8], data[at + 8:at + 12]),
                              (data[at + 12:at + 12 + length],
                               data[at + 12 + length:at + 16 + length])):
                c = crc32c.crc32c(what)
                assert struct.unpack("<I", crc)[0] == \
                    (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
            example = example_pb2.Example()
            example.ParseFromString(data[at + 12:at + 12 + length])
            feature = example.features.feature
            padding = ["padding", "padding_end"] if i == 3 else ["padding"]
            assert sorted(feature) == sorted(["image", "size"] + (padding if aligned else []))
            if aligned:  # the payload at a 4 KiB boundary of the file
                assert data.index(want[i].tobytes(), at) % 4096 == 0
            assert len(feature["image"].bytes_list.value) == 1
            assert len(feature["size"].int64_list.value) == 1
            assert feature["image"].bytes_list.value[0] == want[i].tobytes()
            assert feature["size"].int64_list.value[0] == \
                (want[i].size if dlio == "head" else base)
            starts.append((at, 16 + length))
            at += 16 + length
        assert at == len(data)
        assert index.read_text() == "".join(f"{a} {n}\n" for a, n in starts)  # DALI's
        # With the index and one shard the reader seeks to the records the index gives.
        records = list(tfrecord.tfrecord_loader(str(path), str(index),
                                                {"image": "byte", "size": "int"}, (0, 1)))
        assert len(records) == 4
        assert [bytes(r["image"]) for r in records] == [w.tobytes() for w in want]


def test_parquet_row_groups(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    root, m = write(tmp_path, "parquet", samples_per_file=1500, record_length=64,
                    record_length_stdev=0)
    for f in m["files"]:
        pf = pq.ParquetFile(root / f["path"])
        assert pf.num_row_groups == 2  # 1024 rows per group, as DLIO's default
        want = samples(m, f).reshape(1500, 64)
        rows = np.concatenate([np.stack(pf.read_row_group(g, columns=["data"])
                                        .column("data").to_numpy(zero_copy_only=False))
                               for g in range(pf.num_row_groups)])
        assert np.array_equal(rows, want)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_images_open_with_pil(tmp_path, fmt):
    Image = pytest.importorskip("PIL.Image")
    root, m = write(tmp_path, fmt, samples_per_file=1)
    for f in m["files"]:
        pixels = np.asarray(Image.open(root / f["path"]))
        assert pixels.shape == tuple(f["dims"]) and pixels.dtype == np.uint8
        if fmt == "png":  # lossless
            assert np.array_equal(pixels, samples(m, f)[0])


def test_indexed_binary_index_files(tmp_path):
    root, m = write(tmp_path, "indexed_binary")
    for f in m["files"]:
        path = root / f["path"]
        offsets = np.fromfile(f"{path}.off.idx", np.uint64)
        sizes = np.fromfile(f"{path}.sz.idx", np.uint64)
        assert len(offsets) == len(sizes) == 4
        data, want = path.read_bytes(), samples(m, f)
        for i, (a, n) in enumerate(zip(offsets.tolist(), sizes.tolist())):
            assert data[a:a + n] == want[i].tobytes()


def test_csv_rows_are_samples(tmp_path):
    root, m = write(tmp_path, "csv")
    for f in m["files"]:
        rows = np.loadtxt(root / f["path"], delimiter=",", dtype=np.int64, ndmin=2)
        assert np.array_equal(rows, samples(m, f).reshape(4, -1))


def dlio_listing(root, split, fmt, subfolders):
    """The files DLIO's loader (main.py initialize) takes from a split, in its order."""
    folder = os.path.join(root, split)
    entries = sorted(os.listdir(folder))
    if os.path.isdir(os.path.join(folder, entries[0])):
        assert len(entries) == subfolders
        return sorted(glob.glob(os.path.join(folder, f"*/*.{fmt}")), key=os.path.basename)
    assert subfolders == 0
    return [os.path.join(folder, e) for e in entries if e.endswith(fmt)]


@pytest.mark.parametrize("subfolders", [0, 3])
def test_names_and_order_as_dlio_expects(tmp_path, subfolders):
    root, m = write(tmp_path, "npy", files=12, eval_files=2, subfolders=subfolders,
                    file_prefix="part", record_length=100, record_length_stdev=0)
    train = dlio_listing(root, "train", "npy", subfolders)
    assert [os.path.basename(p) for p in train] == [f"part_{i:02d}_of_12.npy" for i in range(12)]
    if subfolders:
        assert all(p.endswith(f"/train/{i % 3}/part_{i:02d}_of_12.npy")
                   for i, p in enumerate(train))
    valid = dlio_listing(root, "valid", "npy", subfolders)
    assert [os.path.basename(p) for p in valid] == ["part_0_of_2.npy", "part_1_of_2.npy"]
    assert [f["path"] for f in m["files"]] == \
        [os.path.relpath(p, root) for p in train + valid]  # dataset order


def test_dims_from_a_seeded_normal_as_dlio(tmp_path):
    spec = datasets.resolve_spec("npy", files=5, record_length=10_000,
                                 record_length_stdev=2000)
    rng = np.random.RandomState(10)
    want = [tuple(max(int(v), 1) for v in rng.normal(100, 2000 / 2 / 100, 2))
            for _ in range(5)]
    assert datasets.dims(spec) == want and len(set(want)) > 1


def test_workload_presets():
    spec = datasets.resolve_spec(workload="resnet50", files=2)
    assert (spec["format"], spec["files"], spec["samples_per_file"]) == ("tfrecord", 2, 1251)
    assert datasets.dims(spec)[0] == (338, 338)
    assert datasets.resolve_spec(workload="unet3d")["format"] == "npz"
    assert datasets.resolve_spec(workload="cosmoflow")["files"] == 524_288


def flip(path, at):
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("fmt", ["npy", "tfrecord", "hdf5", "npz"])
def test_verify_finds_the_flipped_byte(tmp_path, fmt):
    if fmt == "hdf5":
        pytest.importorskip("h5py")
    root, m = write(tmp_path, fmt)
    assert dgen("verify", root).returncode == 0
    f = m["files"][2]
    path = root / f["path"]
    payload_at = {"npy": 4096, "npz": 4096, "tfrecord": 60, "hdf5": 4096}[fmt] + 5
    assert fmt == "tfrecord" or path.read_bytes()[payload_at - 5:payload_at + 11] == \
        stream(m, f["payload_offset"], 16).tobytes()  # it is payload
    flip(path, payload_at)
    r = datasets.verify_training_dataset(root)
    assert not r["ok"] and r["range_count"] == 1
    (x,) = r["ranges"]
    assert (x["file"], x["file_offset"], x["length"], x["kind"]) == \
        (f["path"], payload_at, 1, "payload")
    flip(path, payload_at)
    container_at = 20  # a header's byte in every format here
    flip(path, container_at)
    out = dgen("verify", root)
    assert out.returncode == 1
    assert f"{f['path']} {container_at:>14} {1:>12}  container".encode() in out.stdout


def test_verify_reports_missing_and_extra(tmp_path):
    root, m = write(tmp_path, "indexed_binary")
    first, second = (root / f["path"] for f in m["files"][:2])
    os.truncate(first, 100)
    with open(second, "ab") as fh:
        fh.write(b"x" * 7)
    os.unlink(f"{root / m['files'][3]['path']}.sz.idx")
    kinds = {(x["file"], x["kind"]) for x in datasets.verify_training_dataset(root)["ranges"]}
    assert kinds == {(m["files"][0]["path"], "missing"), (m["files"][1]["path"], "extra"),
                     (m["files"][3]["path"] + ".sz.idx", "missing")}


@pytest.mark.parametrize("fmt", ["npy", "npz", "tfrecord"])
def test_verify_reports_an_absent_data_file_as_missing_whole(tmp_path, fmt):
    root, m = write(tmp_path, fmt)
    gone = m["files"][1]
    os.unlink(root / gone["path"])
    r = datasets.verify_training_dataset(root)
    assert [(x["file"], x["kind"], x["file_offset"], x["length"]) for x in r["ranges"]] == [
        (gone["path"], "missing", 0, gone["length"])]


@pytest.mark.parametrize("fmt", ["npy", "tfrecord"])
def test_verify_reports_a_truncated_file_as_one_missing_range(tmp_path, fmt):
    root, m = write(tmp_path, fmt)
    cut = m["files"][0]
    os.truncate(root / cut["path"], 100)
    r = datasets.verify_training_dataset(root)
    assert (r["range_count"], [(x["file"], x["kind"], x["file_offset"], x["length"])
                               for x in r["ranges"]]) == (
        1, [(cut["path"], "missing", 100, cut["length"] - 100)])


def test_analyze_measures_both_ratios_of_the_dataset_directory(tmp_path):
    root, m = write(tmp_path, "npy", files=2, eval_files=1, samples_per_file=32,
                    record_length=1 << 20, record_length_stdev=0)
    out = dgen("analyze", root, "--json", "--sample", "0.25")
    assert out.returncode == 0, out.stderr
    a = json.loads(out.stdout)["files"][0]
    assert a["bytes"] == sum(os.path.getsize(root / f["path"]) for f in m["files"])
    # Each payload starts 4 KiB into its file: 4 KiB blocks see every duplicate.
    assert abs(a["dedup"]["4096"]["ratio"] - 2) < 0.1
    assert abs(a["compression"]["ratios"]["zstd-1"] - 2) < 0.1


def test_reproducible_from_the_seed(tmp_path):
    a, _ = write(tmp_path / "a", "tfrecord")
    b, _ = write(tmp_path / "b", "tfrecord")
    assert tree_bytes(a) == tree_bytes(b)
    c, _ = write(tmp_path / "c", "tfrecord", seed=SEED + 1)
    assert tree_bytes(a) != tree_bytes(c)


def tree_bytes(root) -> dict:
    return {os.path.relpath(os.path.join(d, n), root): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(root) for n in names if n != "dgen-manifest.json"}


def dgen(*args):
    return subprocess.run([sys.executable, "-m", "dgen_py", *map(str, args)],
                          capture_output=True, timeout=120, env=clean_env())


def exit_code(argv) -> int:
    """cli.main's exit code: returned, or (argparse's refusals) raised as SystemExit."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("args, names", [
    (["--format", "tiff"], "--format"),
    (["--format", "npy", "--files", "0"], "--files"),
    (["--format", "npy", "--record-length", "0"], "--record-length"),
    (["--format", "npy", "--record-length", "100", "--record-length-stdev", "101"],
     "--record-length-stdev"),
    (["--format", "npy", "--samples-per-file", "0"], "--samples-per-file"),
    (["--workload", "bert"], "--workload"),
    (["--format", "npy", "--dlio", "1.0"], "--dlio"),
    (["--format", "jpeg", "--samples-per-file", "2"], "--samples-per-file"),
    (["--format", "npy", "--hdf5-datasets", "2"], "--hdf5-datasets"),
    (["--format", "npy", "--file-prefix", "a/b"], "--file-prefix"),
    # names of 256 bytes: the data file's (npy), or only its index file's
    (["--format", "npy", "--file-prefix", "x" * 245, "--files", "2"], "--file-prefix"),
    (["--format", "tfrecord", "--file-prefix", "x" * 239, "--files", "2"], "--file-prefix"),
    (["--format", "indexed_binary", "--file-prefix", "x" * 228, "--files", "2"],
     "--file-prefix"),
])
def test_bad_input_exits_2_naming_the_option(tmp_path, args, names, capsys):
    assert exit_code(["dataset", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert names in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("fmt, module, extra", [
    ("hdf5", "h5py", "hdf5"), ("parquet", "pyarrow", "parquet"), ("jpeg", "PIL", "images"),
    ("tfrecord", "crc32c", "tfrecord")])
def test_missing_dependency_names_the_extra(tmp_path, monkeypatch, capsys, fmt, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    assert cli.main(["dataset", str(tmp_path / "d"), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert module in err and f"pip install '.[{extra}]'" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("option, bad, accepted", [
    ("--files", ["0", "-1"], "[1, 1000000]"), ("--samples-per-file", ["0", "-1"], "[1, "),
    ("--hdf5-datasets", ["0", "-1"], "[1, 1024]"), ("--eval-files", ["-1"], "[0, 1000000]")])
def test_a_count_out_of_range_names_one_range(tmp_path, capsys, option, bad, accepted):
    for value in bad:
        assert exit_code(["dataset", str(tmp_path / "d"), "--format", "npy", option,
                          value]) == 2
        err = capsys.readouterr().err
        assert option in err and accepted in err, err


def test_a_prefix_too_long_for_a_name_is_refused_before_an_old_dataset_goes(tmp_path, capsys):
    root = tmp_path / "d"
    args = ["dataset", str(root), "--format", "tfrecord", "--files", "2", "--record-length",
            "4096", "--seed", "1"]
    assert cli.main(args) == 0
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    # 239 + len("_1_of_2.tfrecord") = 255: the data file's name fits, its .idx does not
    assert cli.main([*args, "--file-prefix", "x" * 239, "--force"]) == 2
    assert "--file-prefix" in capsys.readouterr().err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert cli.main(["verify", str(root)]) == 0
    assert cli.main([*args, "--file-prefix", "x" * 235, "--force"]) == 0  # 255 with .idx


def test_a_file_under_train_the_manifest_does_not_list_fails_verify(tmp_path, capsys):
    """DLIO reads every file of its format under train/: one the manifest does not list is
    data no verify checked."""
    root = tmp_path / "d"
    assert cli.main(["dataset", str(root), "--format", "npy", "--files", "2",
                     "--record-length", "4096", "--seed", "1"]) == 0
    (root / "train" / "img_9_of_9.npy").write_bytes(b"x" * 7)
    capsys.readouterr()
    assert cli.main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"extra file {root}/train/img_9_of_9.npy (7 bytes): not in this dataset (delete " \
        f"it, or write with --force)" in out
    r = datasets.verify_training_dataset(root)
    assert not r["ok"] and r["extra_files"] == [{"path": "train/img_9_of_9.npy", "size": 7}]


def test_nothing_half_written_looks_complete(tmp_path):
    root, _ = write(tmp_path, "npy", record_length=2000, record_length_stdev=0)
    manifest = root / "dgen-manifest.json"
    assert manifest.exists()
    # A file size limit the larger files pass: the write fails after the old manifest went.
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    r = subprocess.run([sys.executable, "-m", "dgen_py", "dataset", root, "--format", "npy",
                        "--files", "3", "--eval-files", "2", "--samples-per-file", "4",
                        "--record-length", "8000"], capture_output=True, timeout=120,
                       env=clean_env(), preexec_fn=limit)
    assert r.returncode == 1 and b"File too large" in r.stderr, r.stderr
    assert not manifest.exists()
    assert dgen("verify", root).returncode != 0


def valid_is_a_file(root):
    os.rmdir(root / "valid")
    (root / "valid").write_bytes(b"x")


def data_file_is_a_directory(root):
    os.unlink(root / "train" / "img_1_of_3.npy")
    os.mkdir(root / "train" / "img_1_of_3.npy")


def data_file_is_a_symlink(root):
    os.rename(root / "train" / "img_1_of_3.npy", root / "moved.npy")
    os.symlink(root / "moved.npy", root / "train" / "img_1_of_3.npy")


def index_dir_is_a_symlink(root):
    os.rename(root / "index", root / "moved")
    os.symlink(root / "moved", root / "index")


@pytest.mark.parametrize("fmt, change, what", [
    ("npy", valid_is_a_file, "valid is not a directory"),
    ("npy", data_file_is_a_directory, "img_1_of_3.npy is a directory"),
    ("npy", data_file_is_a_symlink, "img_1_of_3.npy is a symbolic link"),
    ("tfrecord", index_dir_is_a_symlink, "index is not a directory"),
])
def test_a_refused_dataset_run_keeps_the_previous_manifest(tmp_path, fmt, change, what):
    root, _ = write(tmp_path, fmt, eval_files=0)
    manifest = (root / "dgen-manifest.json").read_bytes()
    change(root)
    before = tree_bytes(root)
    out = dgen("dataset", root, "--format", fmt, "--files", "3", "--record-length", "100",
               "--force")
    assert out.returncode == 2 and what in out.stderr.decode(), out.stderr
    assert (root / "dgen-manifest.json").read_bytes() == manifest
    assert tree_bytes(root) == before


def test_force_deletes_a_stray_symlinked_subdirectory_not_its_target(tmp_path):
    root, _ = write(tmp_path, "npy")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep").write_bytes(b"keep")
    os.symlink(tmp_path / "elsewhere", root / "train" / "extra")
    out = dgen("dataset", root, "--format", "npy", "--record-length", "100", "--force")
    assert out.returncode == 0, out.stderr
    assert not os.path.lexists(root / "train" / "extra")
    assert (tmp_path / "elsewhere" / "keep").read_bytes() == b"keep"
    assert dgen("verify", root).returncode == 0


def test_stale_files_refused_unless_force(tmp_path):
    root, _ = write(tmp_path, "npy", files=4)
    out = dgen("dataset", root, "--format", "npy", "--files", "2", "--record-length", "100")
    assert out.returncode == 2 and b"--force" in out.stderr
    assert (root / "dgen-manifest.json").exists()  # refused before anything changed
    out = dgen("dataset", root, "--format", "npy", "--files", "2", "--record-length", "100",
               "--force")
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(root / "train")) == ["img_0_of_2.npy", "img_1_of_2.npy"]
    assert os.listdir(root / "valid") == []
    assert dgen("verify", root).returncode == 0


def test_stale_subfolders_refused_unless_force(tmp_path):
    # DLIO's loader takes a directory as the first entry to mean subfolders: leftovers of
    # an earlier layout would hide the new files from it.
    root, _ = write(tmp_path, "npy", files=4, subfolders=3)
    args = ("dataset", root, "--format", "npy", "--files", "2", "--record-length", "100")
    out = dgen(*args)
    assert out.returncode == 2 and b"--force" in out.stderr
    assert dgen(*args, "--force").returncode == 0
    assert sorted(os.listdir(root / "train")) == ["img_0_of_2.npy", "img_1_of_2.npy"]
    assert os.listdir(root / "valid") == []
    assert dgen("verify", root).returncode == 0


def test_symlinked_split_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    root = tmp_path / "d"
    root.mkdir()
    os.symlink(tmp_path / "elsewhere", root / "train")
    out = dgen("dataset", root, "--format", "npy", "--record-length", "100")
    assert out.returncode == 2 and b"not a directory" in out.stderr
    assert os.listdir(tmp_path / "elsewhere") == []


@needs_mpi
@pytest.mark.parametrize("fmt", ["tfrecord", "npz"])
def test_mpi_dataset_is_byte_identical(tmp_path, fmt):
    args = ["--format", fmt, "--files", "3", "--eval-files", "2", "--samples-per-file", "3",
            "--record-length", "20000", "--record-length-stdev", "5000", "--seed", "3",
            "--dedup-ratio", "2", "--compress-ratio", "2"]
    single = tmp_path / "single"
    assert dgen("dataset", single, *args).returncode == 0
    many = tmp_path / "many"
    out = mpirun(2, sys.executable, "-m", "dgen_py", "dataset", many, *args, "--json")
    assert out.returncode == 0, out.stderr
    assert tree_bytes(single) == tree_bytes(many)
    one, two = (json.loads((p / "dgen-manifest.json").read_text()) for p in (single, many))
    assert {k: v for k, v in one.items() if k != "created"} == \
        {k: v for k, v in two.items() if k != "created"}
    out = mpirun(2, sys.executable, "-m", "dgen_py", "verify", many)
    assert out.returncode == 0, out.stderr
    flip(many / "valid" / f"img_1_of_2.{fmt}", 4200)
    out = mpirun(2, sys.executable, "-m", "dgen_py", "verify", many, "--json")
    assert out.returncode == 1
    r = json.loads(out.stdout)
    assert [(x["file"], x["file_offset"]) for x in r["ranges"]] == \
        [(f"valid/img_1_of_2.{fmt}", 4200)]


def test_verify_takes_no_identity_overrides(tmp_path, capsys):
    root, _ = write(tmp_path, "npy", files=1, eval_files=0)
    assert cli.main(["verify", str(root), "--seed", "3"]) == 2
    assert "--seed" in capsys.readouterr().err


@pytest.mark.parametrize("window, record_length", [
    (3 * 4096 + 100, 5000), (2000, 5000),
    (200_000, 70_000), (50_000, 70_000)])  # TFRecord samples 4 KiB-aligned in the stream
def test_windows_and_prefetch_do_not_change_bytes(tmp_path, monkeypatch, window,
                                                  record_length):
    """Records across many windows (generated ahead) and records larger than a window
    (checksums continued across windows) give the bytes one window would."""
    pytest.importorskip("crc32c")
    options = {"samples_per_file": 10, "record_length": record_length,
               "record_length_stdev": 0}
    want = {fmt: tree_bytes(write(tmp_path / "one", fmt, **options)[0])
            for fmt in ("tfrecord", "npz")}
    monkeypatch.setattr(engine, "WINDOW", window)
    monkeypatch.setattr(engine, "FLUSH", 1000)
    monkeypatch.setattr(tfrecord, "_CORE_CRC32C", [False])  # TFRecord's through the windows
    for fmt in want:
        root, _ = write(tmp_path / "small", fmt, **options)
        assert tree_bytes(root) == want[fmt]
        assert datasets.verify_training_dataset(root)["ok"]


def core_crc32c():
    if not datasets.core_crc32c():
        pytest.skip("no CRC32C library for the core (pip install google-crc32c)")


@pytest.mark.parametrize("record_length", [5000, (1 << 20) + 4321])
def test_tfrecord_written_by_the_core_is_the_python_path_byte_for_byte(tmp_path, monkeypatch,
                                                                       record_length):
    """The core's records (payloads over a write chunk split across chunks) against the
    parts made here with crc32c."""
    core_crc32c()
    options = {"samples_per_file": 3, "record_length": record_length,
               "record_length_stdev": record_length // 4}
    root, _ = write(tmp_path / "core", "tfrecord", **options)
    monkeypatch.setattr(tfrecord, "_CORE_CRC32C", [False])
    want, _ = write(tmp_path / "python", "tfrecord", **options)
    assert tree_bytes(root) == tree_bytes(want)
    assert datasets.verify_training_dataset(root)["ok"]


def test_tfrecord_verify_by_the_core_reports_what_the_parts_report(tmp_path, monkeypatch):
    """verify makes TFRecord records with the core's writer, COMPARE bytes at a time: each
    damaged range, cut at the pieces a record is made of (framing and head, payload, tail
    and CRC) and at records, and a file that ends in a record are reported as the parts
    made here report them."""
    core_crc32c()
    root, m = write(tmp_path, "tfrecord", samples_per_file=40, record_length=300,
                    record_length_stdev=90)
    files = [root / f["path"] for f in m["files"][:2]]
    size = files[0].stat().st_size
    with open(files[0], "r+b") as fh:  # ranges over every kind of boundary
        for at, n in ((0, 3), (50, 200), (size // 3, 900), (size - 10, 10)):
            fh.seek(at)
            damaged = bytes(b ^ 0x21 for b in fh.read(n))
            fh.seek(at)
            fh.write(damaged)
    os.truncate(files[1], files[1].stat().st_size * 2 // 3 + 7)  # ends inside a record

    def report():
        r = datasets.verify_training_dataset(root, max_ranges=1000)
        return r["ok"], r["range_count"], r["ranges"], r["bytes_read"]
    monkeypatch.setattr(engine, "COMPARE", 1000)  # several batches a run of records
    by_core = report()
    monkeypatch.setattr(tfrecord, "_CORE_CRC32C", [False])
    by_parts = report()
    assert not by_core[0] and by_core[1] > 8
    assert {x["kind"] for x in by_core[2]} == {"payload", "container", "missing"}
    assert by_core == by_parts


def test_core_tfrecord_crcs_are_crc32cs_across_pieces(tmp_path):
    """Stream.write_tfrecords with the smallest chunk: every record's masked CRC is
    crc32c's of the Example (continued from head_crc) for payloads cut into pieces at
    every position relative to the chunks."""
    crc32c = pytest.importorskip("crc32c")
    core_crc32c()
    gen = dgen_py.Generator(1 << 20, 1.0, 2.0, seed=SEED)
    before, head, after = b"\x01" * 12, b"head of the example", b"\x0atail"
    size, count, offset, at = 10007, 9, 333, 4099
    path = tmp_path / "records"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        n = gen._s.write_tfrecords(fd, before + head, crc32c.crc32c(head), after, offset,
                                   size, count, at, chunk=4096)
    finally:
        os.close(fd)
    data = path.read_bytes()
    record = len(before) + len(head) + size + len(after) + 4
    assert n == count * record and len(data) == at + n
    for i in range(count):
        r = data[at + i * record:at + (i + 1) * record]
        payload = np.empty(size, np.uint8)
        gen.seek(offset + i * size)
        gen.readinto(memoryview(payload))
        payload = payload.tobytes()
        assert r[:-4] == before + head + payload + after
        c = crc32c.crc32c(head + payload + after)
        assert struct.unpack("<I", r[-4:])[0] == (((c >> 15) | (c << 17)) + 0xA282EAD8) \
            & 0xFFFFFFFF


def test_verify_names_encoded_bytes(tmp_path):
    pytest.importorskip("PIL")
    root, m = write(tmp_path, "jpeg", samples_per_file=1)
    assert datasets.verify_training_dataset(root)["ok"]
    flip(root / m["files"][0]["path"], 700)
    (x,) = datasets.verify_training_dataset(root)["ranges"]
    assert (x["file"], x["file_offset"], x["kind"]) == (m["files"][0]["path"], 700, "encoded")


def test_verify_reads_encoded_bytes_in_bounded_pieces_and_joins_ranges_across_them(
        tmp_path, monkeypatch):
    # A parquet row group is encoded whole (up to 256 MiB of file bytes); verify compares it
    # COMPARE bytes at a time, and a damaged range that crosses pieces is still one range.
    pytest.importorskip("pyarrow")
    root, m = write(tmp_path, "parquet", samples_per_file=1, record_length_stdev=0)
    path = root / m["files"][0]["path"]
    reads = []
    pread = os.pread
    monkeypatch.setattr(engine, "COMPARE", 1000)
    monkeypatch.setattr(engine.os, "pread", lambda fd, n, at: reads.append(n) or
                        pread(fd, n, at))
    data = bytearray(path.read_bytes())
    data[1990:3010] = bytes(b ^ 0xFF for b in data[1990:3010])
    path.write_bytes(data)
    (x,) = datasets.verify_training_dataset(root, threads=1)["ranges"]
    assert (x["file_offset"], x["length"], x["kind"]) == (1990, 1020, "encoded")
    assert reads and max(reads) <= 1000


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.lists(st.tuples(st.integers(0, 299), st.integers(1, 40)),
                                    max_size=6), st.integers(250, 300))
def test_compare_in_pieces_finds_the_ranges_a_whole_compare_finds(piece, damage, size):
    expected = np.random.default_rng(piece).integers(0, 256, 300, np.uint8)
    held = expected.copy()
    for at, n in damage:
        held[at:at + n] ^= 0x5A
    held = held[:size]  # a file that ends early: the rest is not compared
    bad = np.flatnonzero(held != expected[:size])
    want = [(int(g[0]), len(g)) for g in np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1)
            if len(g)]
    checker = engine.Checker({"seed": 1, "size": 1}, 1, 1000, None)
    fd = os.memfd_create("held")
    try:
        os.write(fd, held.tobytes())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine, "COMPARE", piece)
            assert checker._compare(fd, "f", 0, expected.tobytes(), "encoded") == size
    finally:
        os.close(fd)
    assert [(x["file_offset"], x["length"]) for x in checker.ranges] == want


def test_verify_warns_of_another_encoder_version(tmp_path):
    pytest.importorskip("PIL")
    root, m = write(tmp_path, "png", samples_per_file=1)
    assert set(m["encoders"]) == {"pillow"}
    manifest = root / "dgen-manifest.json"
    record = json.loads(manifest.read_text())
    record["encoders"]["pillow"] = "0.1"
    manifest.write_text(json.dumps(record))
    r = datasets.verify_training_dataset(root)
    assert r["ok"] and len(r["warnings"]) == 1 and "0.1" in r["warnings"][0]


def test_a_manifest_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    # verify of a training dataset opens its manifest; a FIFO there must not block it.
    d = tmp_path / "ds"
    d.mkdir()
    os.mkfifo(d / dgen_py.manifest.MANIFEST_NAME)
    code = ("import sys\nfrom dgen_py import datasets\n"
            "try:\n    datasets.read_manifest(sys.argv[1])\n"
            "except (OSError, ValueError) as e:\n    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "is a FIFO" in r.stdout, r.stdout + r.stderr


def test_a_short_write_of_an_index_file_fails_naming_it(tmp_path):
    # indexed_binary with 4-byte samples: the data file (4000 bytes) fits under a 6000-byte
    # file size limit, its 8000-byte offset index does not (write() writes 6000, then fails).
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))
    root = tmp_path / "d"
    r = subprocess.run([sys.executable, "-m", "dgen_py", "dataset", root, "--format",
                        "indexed_binary", "--samples-per-file", "1000", "--record-length", "4",
                        "--seed", "1"], capture_output=True, text=True, timeout=120,
                       env=clean_env(), preexec_fn=limit)
    assert r.returncode == 1, r.stdout + r.stderr
    assert str(root / "train" / "img_0_of_1.indexed_binary.off.idx") in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    assert not (root / "dgen-manifest.json").exists()


def edit_manifest(root, change):
    path = root / "dgen-manifest.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("change, field", [
    (lambda r: r.pop("files"), "files"),
    (lambda r: r.pop("index_files"), "index_files"),
    (lambda r: r["files"][0].pop("path"), "files[0].path"),
    (lambda r: r["files"][1].update(length="9"), "files[1].length"),
    (lambda r: r["files"][1].update(path="train/other.tfrecord"), "files[1].path"),
    (lambda r: r["index_files"][0].pop("length"), "index_files[0].length"),
    (lambda r: r.update(files={}), "files"),
    (lambda r: r.update(encoders=["pillow"]), "encoders"),
    (lambda r: r.update(encoders={"pillow": 3}), "encoders"),
    (lambda r: r.update(dataset=[]), "dataset"),
    (lambda r: r.pop("identity"), "identity is missing"),
    (lambda r: r["identity"].pop("seed"), "identity.seed is missing"),
    (lambda r: r["identity"].update(seed=None), "identity.seed is null"),
    (lambda r: r["dataset"].update(color=1), "dataset"),
])
def test_an_edited_training_manifest_is_refused_naming_the_field(tmp_path, change, field):
    root, _ = write(tmp_path, "tfrecord", files=2, eval_files=0)
    edit_manifest(root, change)
    out = dgen("verify", root)
    err = out.stderr.decode()
    assert out.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"dgen-manifest.json: {field}" in err, err


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("args", [
    ["verify", "{d}"], ["analyze", "{d}"],
    ["write", "{d}", "--size", "1MiB", "--files", "2", "--generation", "1", "--changed-only"],
])
def test_a_deeply_nested_manifest_is_refused_not_a_traceback(tmp_path, args):
    root, _ = write(tmp_path, "npy", files=2, eval_files=0)
    (root / "dgen-manifest.json").write_text(DEEP)
    out = dgen(*[a.format(d=root) for a in args])
    err = out.stderr.decode()
    assert out.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "dgen-manifest.json: not a" in err and "manifest" in err, err


def test_changed_only_on_a_training_dataset_says_rewrites_are_for_dgen_write(tmp_path):
    root, m = write(tmp_path, "npy", files=2, eval_files=0)
    manifest = (root / "dgen-manifest.json").read_bytes()
    out = dgen("write", root, "--size", m["identity"]["size"], "--files", "2", "--seed",
               SEED, "--generation", "1", "--changed-only")
    err = out.stderr.decode()
    assert out.returncode == 2 and err.count("\n") == 1, err
    assert "training dataset" in err and "datasets written by dgen write" in err, err
    assert (root / "dgen-manifest.json").read_bytes() == manifest


def test_a_training_dataset_without_its_manifest_is_not_asked_for_a_seed(tmp_path):
    root, _ = write(tmp_path, "npy")
    os.unlink(root / "dgen-manifest.json")
    out = dgen("verify", root)
    err = out.stderr.decode()
    assert out.returncode == 2 and err.count("\n") == 1, err
    assert "has no manifest" in err and "dgen dataset" in err and "seed" not in err, err


def plant(root, **dataset):
    """A manifest edited to describe a far larger dataset than the files there: the
    dataset section changed, identity.size made to match it."""
    def change(record):
        record["dataset"].update(dataset)
        spec = datasets.resolve_spec(**record["dataset"])
        if spec["files"] + spec["eval_files"] < 100:
            record["identity"]["size"] = datasets.plan(spec)[1]
    edit_manifest(root, change)


def verify_bounded(root, seconds=60, memory=3 << 30):
    """dgen verify of root in a process limited in time and address space."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return subprocess.run([sys.executable, "-m", "dgen_py", "verify", root], timeout=seconds,
                          capture_output=True, text=True, env=clean_env(), preexec_fn=limit)


def test_a_planted_manifest_asking_for_millions_of_files_is_refused_up_front(tmp_path):
    root, _ = write(tmp_path, "npy", files=2, eval_files=0)
    plant(root, files=900_000, eval_files=0)  # within the accepted count, not listed
    out = verify_bounded(root, seconds=20)
    assert out.returncode == 2 and "files lists 2 file(s)" in out.stderr, out.stderr
    assert "900000" in out.stderr, out.stderr


@pytest.mark.parametrize("fmt, dataset", [
    ("tfrecord", {"samples_per_file": 1 << 32, "record_length": 1}),  # 4G records, index
    ("indexed_binary", {"samples_per_file": 1 << 32, "record_length": 1}),
    ("npy", {"samples_per_file": 1, "record_length": 1 << 40}),  # one 1 TiB sample
    ("hdf5", {"samples_per_file": 1 << 32, "record_length": 1}),  # 4G labels
])
def test_verify_of_a_planted_manifest_reads_what_is_there_in_bounded_time_and_memory(
        tmp_path, fmt, dataset):
    if fmt == "hdf5":
        pytest.importorskip("h5py")
    root, _ = write(tmp_path, fmt, files=1, eval_files=0, samples_per_file=2,
                    record_length=4096, record_length_stdev=0)
    plant(root, record_length_stdev=0, **dataset)
    out = verify_bounded(root, seconds=20)
    assert out.returncode == 1 and "missing" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("fmt", ["tfrecord", "indexed_binary"])
def test_index_files_made_in_chunks_are_the_same_bytes(tmp_path, monkeypatch, fmt):
    want = tree_bytes(write(tmp_path / "one", fmt, samples_per_file=10)[0])
    monkeypatch.setattr(formats, "INDEX_CHUNK", 3)
    root, _ = write(tmp_path / "chunks", fmt, samples_per_file=10)
    assert tree_bytes(root) == want
    assert datasets.verify_training_dataset(root)["ok"]
    index = [p for p in want if p.endswith(".idx")][0]
    with open(root / index, "r+b") as f:  # a byte of the third chunk
        f.seek(len(want[index]) - 3)
        f.write(b"\xff")
    (x,) = datasets.verify_training_dataset(root)["ranges"]
    assert (x["file"], x["file_offset"]) == (index, len(want[index]) - 3)


@pytest.mark.parametrize("fmt, options, ratio", [
    # resnet50's samples: 27 of the 29 blocks of a record are payload (1.88 at most)
    ("tfrecord", {"files": 4, "samples_per_file": 64, "record_length": 114_660}, 1.7),
    ("tfrecord", {"files": 16, "samples_per_file": 1, "record_length": 2_828_486,
                  "record_length_stdev": 71_311}, 1.8),  # cosmoflow's
    # 1448 x 1448 samples: the payload ends off the 4 KiB grid
    ("npz", {"files": 4, "samples_per_file": 4, "record_length": 2 << 20}, 1.9),
    ("hdf5", {"files": 4, "samples_per_file": 4, "record_length": 2 << 20}, 1.9),
])
def test_training_datasets_carry_the_dedup_ratio_at_4_kib_blocks(tmp_path, fmt, options,
                                                                 ratio):
    if fmt == "hdf5":
        pytest.importorskip("h5py")
    options = {"eval_files": 0, "record_length_stdev": 0, **options}
    root, m = write(tmp_path, fmt, **options)
    measured = dgen_py.analyze(str(root), block_sizes=[4096], sample=0.05)
    assert measured["dedup"]["4096"]["ratio"] > ratio, measured["dedup"]
    for f in m["files"]:  # each file ends at 4 KiB: the next one's payload stays aligned
        assert f["length"] % 4096 == 0


def test_more_files_than_a_plan_holds_are_refused_up_front_naming_the_limit(tmp_path):
    import time
    from test_cli import dgen
    started = time.perf_counter()
    r = dgen("dataset", tmp_path / "ds", "--format", "npy", "--files", 16777216,
             "--record-length", 4096, check=2)
    assert time.perf_counter() - started < 10
    assert r.stderr.decode().splitlines() == [
        "dgen: error: --files: '16777216' is not an integer in [1, 1000000]"]
    with pytest.raises(ValueError, match="--files \\+ --eval-files: 1100000 files; a training "
                                         "dataset holds at most 1000000"):
        datasets.resolve_spec("npy", files=600_000, eval_files=500_000)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("fmt", ["npz", "hdf5", "tfrecord"])
def test_a_dataset_of_the_earlier_container_layout_is_refused_naming_it(tmp_path, fmt):
    # npz, hdf5 and tfrecord files are laid out for 4 KiB blocks since layout 2: a manifest
    # without "layout" was written before, and its files cannot match what verify makes.
    root, m = write(tmp_path, fmt, files=1, eval_files=0, samples_per_file=2,
                    record_length=70000, record_length_stdev=0)
    assert m["layout"] == datasets.LAYOUT == 2
    edit_manifest(root, lambda r: r.pop("layout"))
    with pytest.raises(ValueError, match=rf"{fmt} files of container layout 1 .*dgen "
                                         rf"{m['dgen_version']}.* writes layout 2"):
        datasets.verify_training_dataset(root)


def test_parquet_of_large_samples_in_layout_1_is_refused_small_ones_verify(tmp_path):
    pytest.importorskip("pyarrow")
    big, _ = write(tmp_path / "big", "parquet", files=1, eval_files=0, samples_per_file=80,
                   record_length=1 << 20, record_length_stdev=0)  # row groups of 64 now
    small, _ = write(tmp_path / "small", "parquet", files=1, eval_files=0)
    for root in (big, small):
        edit_manifest(root, lambda r: r.pop("layout"))
    with pytest.raises(ValueError, match="parquet files of container layout 1"):
        datasets.verify_training_dataset(big)
    assert datasets.verify_training_dataset(small)["ok"]


def test_a_dataset_of_a_format_the_layout_left_alone_verifies_at_any_layout(tmp_path):
    root, _ = write(tmp_path, "npy", files=1, eval_files=0)
    edit_manifest(root, lambda r: r.pop("layout"))
    assert datasets.verify_training_dataset(root)["ok"]


def test_a_future_layout_is_refused(tmp_path):
    root, _ = write(tmp_path, "npy", files=1, eval_files=0)
    edit_manifest(root, lambda r: r.update(layout=3))
    with pytest.raises(ValueError, match="layout is 3: this dgen reads layouts 1 to 2"):
        datasets.verify_training_dataset(root)
