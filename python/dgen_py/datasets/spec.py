"""A training dataset's shape: the checked spec (format, counts, record sizes, DLIO
version) and its plan, every data file's path, dims and place in the stream."""

from __future__ import annotations

import math
import os

from .. import _checks
from .. import manifest as manifests

FORMATS = ("npz", "npy", "hdf5", "tfrecord", "parquet", "indexed_binary", "jpeg", "png", "csv")
DLIO_VERSIONS = ("2.0", "head")
# format: (module to import, extra that installs it)
NEEDS = {"hdf5": ("h5py", "hdf5"), "parquet": ("pyarrow", "parquet"),
         "jpeg": ("PIL", "images"), "png": ("PIL", "images"), "tfrecord": ("crc32c", "tfrecord")}
# MLPerf Storage's datagen workloads (storage:configs/dlio/workload/*_datagen.yaml).
WORKLOADS = {
    "unet3d": {"format": "npz", "files": 168, "samples_per_file": 1,
               "record_length": 146_600_628, "record_length_stdev": 68_341_808},
    "resnet50": {"format": "tfrecord", "files": 1024, "samples_per_file": 1251,
                 "record_length": 114_660, "record_length_stdev": 0},
    "cosmoflow": {"format": "tfrecord", "files": 524_288, "samples_per_file": 1,
                  "record_length": 2_828_486, "record_length_stdev": 71_311},
}
ALIGN = 4096
PARQUET_ROW_GROUP = 1024  # DLIO's parquet.row_group_size default
# Fewer rows where 1024 samples would pass this: pyarrow holds about 20 times a row group
# while it encodes it (1024 samples of 1 MiB took 5.7 GB), so DLIO's layout is kept for
# samples up to 64 KiB and memory stays bounded above that.
PARQUET_GROUP_BYTES = 64 << 20
SPLITS = ("train", "valid")
INDEX_DIR = "index"
# Files of a training dataset, train and eval together: the plan and the manifest hold each
# one in memory (3 to 5 KiB), and the manifest must stay readable (manifests.MAX_MANIFEST).
MAX_FILES = manifests.MAX_FILES
ALIGNED_RECORD = 16 * ALIGN  # TFRecord samples this long and longer are 4 KiB-aligned


def resolve_spec(format=None, *, workload=None, files=None, eval_files=None,
                 samples_per_file=None, record_length=None, record_length_stdev=None,
                 subfolders=0, file_prefix="img", dlio="2.0", hdf5_datasets=1,
                 dims_seed=10) -> dict:
    """The checked description of a dataset (the manifest's "dataset"); values not given
    come from the workload preset, else the defaults (1 file, 1 sample, 1 MiB records).
    ValueError names the option (as the CLI spells it) for a bad value."""
    preset = {}
    if workload is not None:
        if workload not in WORKLOADS:
            raise ValueError(f"--workload: {workload!r} is not one of {', '.join(WORKLOADS)}")
        preset = WORKLOADS[workload]

    def pick(name, value, default):
        return value if value is not None else preset.get(name, default)

    fmt = pick("format", format, None)
    if fmt is None:
        raise ValueError("--format: give a format (" + ", ".join(FORMATS) + ") or --workload")
    if fmt not in FORMATS:
        raise ValueError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    spec = {"format": fmt, "workload": workload,
            "files": _option("--files", pick("files", files, 1), 1, MAX_FILES),
            "eval_files": _option("--eval-files", pick("eval_files", eval_files, 0), 0,
                                  MAX_FILES),
            "samples_per_file": _option("--samples-per-file",
                                        pick("samples_per_file", samples_per_file, 1), 1, 1 << 32),
            "record_length": _option("--record-length",
                                     pick("record_length", record_length, 1 << 20), 1, 1 << 40),
            "record_length_stdev": _option("--record-length-stdev",
                                           pick("record_length_stdev", record_length_stdev, 0),
                                           0, 1 << 40),
            "subfolders": _option("--subfolders", subfolders, 0, 1 << 20),
            "file_prefix": file_prefix, "dlio": dlio,
            "hdf5_datasets": _option("--hdf5-datasets", hdf5_datasets, 1, 1024),
            "dims_seed": _option("--dims-seed", dims_seed, 0, 2**32 - 1)}
    if spec["files"] + spec["eval_files"] > MAX_FILES:
        raise ValueError(f"--files + --eval-files: {spec['files'] + spec['eval_files']} files; "
                         f"a training dataset holds at most {MAX_FILES} (its plan and "
                         f"manifest hold every file in memory, 3 to 5 KiB each)")
    if spec["record_length_stdev"] > spec["record_length"]:
        raise ValueError(f"--record-length-stdev: {spec['record_length_stdev']} is larger than "
                         f"--record-length {spec['record_length']}")
    if not isinstance(file_prefix, str) or not file_prefix or "/" in file_prefix \
            or "\0" in file_prefix or file_prefix.startswith("."):
        raise ValueError(f"--file-prefix: {file_prefix!r} must be a file name part without "
                         f"'/' and not starting with '.'")
    longest = _longest_name(spec)
    if len(os.fsencode(longest)) > NAME_MAX:
        raise ValueError(f"--file-prefix: {file_prefix!r} makes file names of up to "
                         f"{len(os.fsencode(longest))} bytes ({longest[:40]}...), more than "
                         f"the {NAME_MAX} a file name may hold: give a shorter prefix")
    if dlio not in DLIO_VERSIONS:
        raise ValueError(f"--dlio: {dlio!r} is not one of {', '.join(DLIO_VERSIONS)}")
    if spec["hdf5_datasets"] > 1 and (fmt != "hdf5" or dlio != "head"):
        raise ValueError(f"--hdf5-datasets: {spec['hdf5_datasets']} datasets per file "
                         f"(records_0..k) are DLIO HEAD's hdf5 layout: give --format hdf5 "
                         f"--dlio head")
    if fmt in ("jpeg", "png") and spec["samples_per_file"] != 1:
        raise ValueError(f"--samples-per-file: {fmt} files hold one image each, got "
                         f"{spec['samples_per_file']}")
    return spec


def _option(name, value, lo, hi) -> int:
    try:
        return _checks.integer(name, value, lo, hi)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not an integer in [{lo}, {hi}]") from None


def require(fmt: str):
    """The module a format needs, or ValueError naming the extra that installs it."""
    if fmt not in NEEDS:
        return None
    module, extra = NEEDS[fmt]
    try:
        return __import__(module)
    except ImportError:
        raise ValueError(f"--format {fmt} needs the Python package {module}: pip install "
                         f"'.[{extra}]' in dgen's source tree") from None


NAME_MAX = 255  # bytes in a file name (Linux file systems)


def _longest_name(spec) -> str:
    """The longest name of a data or index file (its last path part)."""
    side = {"indexed_binary": ".off.idx", "tfrecord": ".idx"}.get(spec["format"], "")
    count = max(spec["files"], spec["eval_files"])
    width = len(str(count))
    return f"{spec['file_prefix']}_{'9' * width}_of_{count}.{spec['format']}{side}"


def _file_names(spec) -> list[str]:
    """Every data file's path relative to DIR, in DLIO's global order."""
    out = []
    for split, count in zip(SPLITS, (spec["files"], spec["eval_files"])):
        width, sub = len(str(count)), spec["subfolders"]
        for i in range(count):
            name = f"{spec['file_prefix']}_{i:0{width}d}_of_{count}.{spec['format']}"
            folder = f"{split}/{i % sub:0{len(str(sub))}d}" if sub > 1 else split
            out.append(f"{folder}/{name}")
    return out


def dims(spec) -> list[tuple[int, int]]:
    """(dim1, dim2) of every file, as DLIO's get_dimension draws them: d = int(sqrt(record
    length)), sd = stdev / 2 / sqrt(record length), max(int(Normal(d, sd)), 1) twice per
    file from one normal seeded with dims_seed."""
    length, stdev = spec["record_length"], spec["record_length_stdev"]
    d = int(math.sqrt(length))
    sd = stdev / 2 / math.sqrt(length)
    total = spec["files"] + spec["eval_files"]
    if sd == 0:
        return [(d, d)] * total
    import numpy as np
    drawn = np.random.RandomState(spec["dims_seed"]).normal(d, sd, (total, 2))
    return [(max(int(a), 1), max(int(b), 1)) for a, b in drawn]


def plan(spec) -> tuple[list[dict], int]:
    """([{path, dims, samples, payload_offset, payload}], stream size) for every data file:
    `payload` stream bytes from payload_offset hold its samples, back to back but for
    TFRecord samples of ALIGNED_RECORD bytes and more (each at a 4 KiB-aligned stream
    offset, see stride). An hdf5 file of DLIO HEAD's layout holds its samples once per
    dataset records_j."""
    copies = spec["hdf5_datasets"] if spec["format"] == "hdf5" else 1
    n = spec["samples_per_file"]
    at, out = 0, []
    for path, (d1, d2) in zip(_file_names(spec), dims(spec)):
        payload = copies * n * d1 * d2
        if spec["format"] == "tfrecord":  # the stream bytes its samples span
            payload = (n - 1) * stride(d1 * d2) + d1 * d2
        out.append({"path": path, "dims": (d1, d2), "samples": n, "payload_offset": at,
                    "payload": payload})
        at = -(-(at + payload) // ALIGN) * ALIGN
    return out, (out[-1]["payload_offset"] + out[-1]["payload"]) if out else 0



def stride(size: int) -> int:
    """Stream bytes from one TFRecord sample of `size` bytes to the next: size, or for
    samples of ALIGNED_RECORD bytes and more size rounded up to 4 KiB, so that each
    starts at a 4 KiB-aligned stream offset (placed at an aligned file offset, its 4 KiB
    blocks are the stream's, and so are its duplicates; the padding costs < 1/16)."""
    return size if size < ALIGNED_RECORD else -(-size // ALIGN) * ALIGN


def parquet_rows(sample_bytes: int) -> int:
    """Rows per parquet row group for samples of `sample_bytes`."""
    return max(1, min(PARQUET_ROW_GROUP, PARQUET_GROUP_BYTES // max(1, sample_bytes)))
