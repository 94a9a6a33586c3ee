"""Training datasets laid out as DLIO 2.0 writes them, with payload from a dataset identity.

write_training_dataset() writes DIR/train/<prefix>_<i>_of_<N>.<format> (and valid/, and
index/ for TFRecord's DALI index files) in one of the formats DLIO and MLPerf Storage
read; verify_training_dataset() reads them back. Every sample's bytes come from one
logical stream, the identity (seed, ratios, dedup unit, format version) of files.py:
file g's payload is stream bytes [payload_offset(g), payload_offset(g) + payload(g)),
files in DLIO's order (train 0..N-1, then eval) with each start rounded up to 4 KiB
(TFRecord samples of ALIGNED_RECORD bytes and more each at a 4 KiB-aligned offset, and at
one of the file too), so the files carry the stream's dedup and compression ratios where
the container stores the payload raw (npy, npz, hdf5, tfrecord, indexed_binary) and are
reproducible from the seed.

Each format is a generator of the file's parts, in file order: container bytes, Payload
extents (stream bytes stored raw; a checksum of them may be asked for), Encoded parts
(stream bytes turned into other bytes: images, text, Parquet), and TFRecord's Records (a
run of records that the core writes whole, or that stands for its own parts). Writing and
verifying run the same generator, so verify regenerates every byte of every file and
compares, with the exact offset of each mismatch and whether it lies in payload or
container. Encoded bytes are checkable only as far as the encoder is deterministic: jpeg,
png and parquet are encoded again with the same package (its version is in the manifest)
and compared.

The manifest (DIR/dgen-manifest.json, with "dgen_dataset": 1) is written last, after every
file; per-file dims are drawn, as DLIO does, from a normal seeded with dims_seed (10).
"""

from __future__ import annotations

import errno
import functools
import io
import math
import mmap
import os
import struct
import tempfile
import threading
import time
import zlib

from . import _checks, _core, files as _files
from ._generator import DEFAULT_DEDUP_UNIT

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
WINDOW = 4 << 20  # stream bytes generated at once for payloads that pass through Python
# (small enough that what is written next is still in cache, as in the core's write loop)
FLUSH = 1 << 20  # gathered writes go out at this many bytes ...
IOV_MAX = 512  # ... or this many pieces
DIRECT_WRITE = 1 << 20  # payload extents at least this long are written by the core
PARQUET_ROW_GROUP = 1024  # DLIO's parquet.row_group_size default
# Fewer rows where 1024 samples would pass this: pyarrow holds about 20 times a row group
# while it encodes it (1024 samples of 1 MiB took 5.7 GB), so DLIO's layout is kept for
# samples up to 64 KiB and memory stays bounded above that.
PARQUET_GROUP_BYTES = 64 << 20


def parquet_rows(sample_bytes: int) -> int:
    """Rows per parquet row group for samples of `sample_bytes`."""
    return max(1, min(PARQUET_ROW_GROUP, PARQUET_GROUP_BYTES // max(1, sample_bytes)))
ENCODE_VALUES = 1 << 20  # csv values encoded at once (the encoder holds about 25 bytes each)
SPLITS = ("train", "valid")
INDEX_DIR = "index"


# --- the dataset's shape ------------------------------------------------------------------
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
                         f"manifest hold every file in memory, about 1 KiB each)")
    if spec["record_length_stdev"] > spec["record_length"]:
        raise ValueError(f"--record-length-stdev: {spec['record_length_stdev']} is larger than "
                         f"--record-length {spec['record_length']}")
    if not isinstance(file_prefix, str) or not file_prefix or "/" in file_prefix \
            or "\0" in file_prefix or file_prefix.startswith("."):
        raise ValueError(f"--file-prefix: {file_prefix!r} must be a file name part without "
                         f"'/' and not starting with '.'")
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


# Files of a training dataset, train and eval together: the plan and the manifest hold each
# one in memory (about 1 KiB), and the manifest must stay readable (files.MAX_MANIFEST).
MAX_FILES = _files.MAX_FILES


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
    offset, see _stride). An hdf5 file of DLIO HEAD's layout holds its samples once per
    dataset records_j."""
    copies = spec["hdf5_datasets"] if spec["format"] == "hdf5" else 1
    n = spec["samples_per_file"]
    at, out = 0, []
    for path, (d1, d2) in zip(_file_names(spec), dims(spec)):
        payload = copies * n * d1 * d2
        if spec["format"] == "tfrecord":  # the stream bytes its samples span
            payload = (n - 1) * _stride(d1 * d2) + d1 * d2
        out.append({"path": path, "dims": (d1, d2), "samples": n, "payload_offset": at,
                    "payload": payload})
        at = -(-(at + payload) // ALIGN) * ALIGN
    return out, (out[-1]["payload_offset"] + out[-1]["payload"]) if out else 0


# --- parts ---------------------------------------------------------------------------------
class Payload:
    """Stream bytes [offset, offset + length) stored raw; with crc ("crc32" or "crc32c")
    the consumer sets .crc to the checksum of them, continued from `start`. `step`: the
    stream bytes from this payload to the next of its kind (TFRecord's samples), if any."""

    __slots__ = ("offset", "length", "crc", "start", "step")

    def __init__(self, offset, length, crc=None, start=0, step=None):
        self.offset, self.length, self.crc, self.start = offset, length, crc, start
        self.step = step


class Encoded:
    """Stream bytes [offset, offset + length) passed to encode(uint8 array) -> bytes."""

    __slots__ = ("offset", "length", "encode")

    def __init__(self, offset, length, encode):
        self.offset, self.length, self.encode = offset, length, encode


def parts(spec, f):
    """The parts of data file f (a plan() entry) in file order."""
    return _FORMAT_PARTS[spec["format"]](spec, f)


def side_paths(spec, f) -> list[str]:
    """The paths of the files written beside data file f: index files."""
    fmt = spec["format"]
    if fmt == "indexed_binary":
        return [f["path"] + ".off.idx", f["path"] + ".sz.idx"]
    if fmt == "tfrecord":
        split = f["path"].split("/", 1)[0]
        return [f"{INDEX_DIR}/{split}/{os.path.basename(f['path'])}.idx"]
    return []


INDEX_CHUNK = 1 << 16  # index entries made at a time (memory stays bounded)


def side_files(spec, f) -> list[tuple[str, object]]:
    """(path, content) of side_paths(spec, f); content: an iterator of bytes, made
    INDEX_CHUNK entries at a time."""
    fmt, (d1, d2), n = spec["format"], f["dims"], f["samples"]
    cuts = [(i, min(n, i + INDEX_CHUNK)) for i in range(0, n, INDEX_CHUNK)]
    if fmt == "indexed_binary":
        size = d1 * d2
        contents = [(struct.pack(f"<{b - a}Q", *range(a * size, b * size, size))
                     for a, b in cuts),
                    (struct.pack(f"<{b - a}Q", *[size] * (b - a)) for a, b in cuts)]
    elif fmt == "tfrecord":
        starts, at = [], 0  # (first record, its file offset, record length) of each run
        for head, after, first, count in _record_runs(spec, f):
            starts.append((first, at, 16 + len(head) + d1 * d2 + len(after)))
            at += count * starts[-1][2]

        def line(i):
            first, at, record = next(r for r in reversed(starts) if r[0] <= i)
            return f"{at + (i - first) * record} {record}\n"
        contents = [("".join(line(i) for i in range(a, b)).encode() for a, b in cuts)]
    else:
        contents = []
    return list(zip(side_paths(spec, f), contents))


# npy: a version 1.0 header padded with spaces so that the array starts at a 4 KiB
# boundary of the file (np.load reads any header length).
def _npy_header(shape, starts_at: int, descr="|u1") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    total = -(-(starts_at + 10 + len(text) + 1) // ALIGN) * ALIGN - starts_at
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + \
        text.encode().ljust(total - 11) + b"\n"


def _npy_parts(spec, f):
    d1, d2 = f["dims"]
    yield _npy_header((d1, d2, f["samples"]), 0)
    yield Payload(f["payload_offset"], f["payload"])


# npz: a stored zip of x.npy (dims, samples: the sample axis last, as np.savez(x=...) in
# DLIO; its npy header padded so that the payload starts 4 KiB into the file) and y.npy
# (samples zeros). x's CRC-32 follows its data (a data descriptor), so the payload is
# generated once.
_DOS_DATE = 0x21  # 1980-01-01, 00:00


def _local_header(name: bytes, crc, size, flags) -> bytes:
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, _DOS_DATE, crc, size, size,
                       len(name), 0) + name


def _central_entry(name: bytes, crc, size, flags, at) -> bytes:
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, 0, _DOS_DATE, crc,
                       size, size, len(name), 0, 0, 0, 0, 0, at) + name


def _npz_parts(spec, f):
    d1, d2 = f["dims"]
    n = f["samples"]
    x_head = _local_header(b"x.npy", 0, 0, 8)
    npy = _npy_header((d1, d2, n), len(x_head))
    x_size = len(npy) + f["payload"]
    import numpy as np
    y = io.BytesIO()
    np.lib.format.write_array(y, np.zeros(n, dtype=np.int64), version=(1, 0))
    y = y.getvalue()
    y_at = len(x_head) + x_size + 16
    if y_at + 30 + 5 + len(y) + 2 * 51 + 22 + ALIGN > 0xFFFFFFFF:
        raise ValueError(f"--record-length: npz files over 4 GiB are not supported "
                         f"({f['path']} would hold {x_size} bytes)")
    yield x_head + npy
    payload = Payload(f["payload_offset"], f["payload"], "crc32", zlib.crc32(npy))
    yield payload
    crc = payload.crc
    y_crc = zlib.crc32(y)
    tail = struct.pack("<IIII", 0x08074B50, crc, x_size, x_size) + \
        _local_header(b"y.npy", y_crc, len(y), 0) + y
    central = _central_entry(b"x.npy", crc, x_size, 8, 0) + \
        _central_entry(b"y.npy", y_crc, len(y), 0, y_at)
    at = y_at + 35 + len(y)
    # The zip's comment (zeros) ends the file at a multiple of 4 KiB, so that the next
    # file's payload is 4 KiB-aligned where files are read as one stream.
    comment = bytes(-(at + len(central) + 22) % ALIGN)
    yield tail + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 2, 2, len(central),
                                       at, len(comment)) + comment


def _indexed_binary_parts(spec, f):
    yield Payload(f["payload_offset"], f["payload"])


# TFRecord: records of a tf.train.Example {image: bytes (the sample), size: int64},
# framed as uint64 length, masked CRC-32C of it, data, masked CRC-32C of the data.
def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


def _size_entry(spec, f) -> bytes:
    """The `size` feature: the byte count in DLIO HEAD, the base dimension in 2.0."""
    value = f["dims"][0] * f["dims"][1] if spec["dlio"] == "head" else \
        int(math.sqrt(spec["record_length"]))
    return _field(0x0A, _field(0x0A, b"size") +
                  _field(0x12, _field(0x1A, _field(0x0A, _varint(value)))))


def _example(length, size_entry, front=b"", tail=b"") -> tuple[bytes, bytes]:
    """(the Example's bytes before the image's `length` raw bytes, those after them).
    Example {features = 1: Features {feature = 1: map entries {key = 1, value = 2: Feature
    {bytes_list = 1 | int64_list = 3}}}}: the entries `front` (a padding entry or none),
    image, size (`size_entry`) and `tail` (as front)."""
    bytes_list = 1 + len(_varint(length)) + length
    feature = 1 + len(_varint(bytes_list)) + bytes_list
    entry_body = 7 + 1 + len(_varint(feature)) + feature
    entry = b"\x0a" + _varint(entry_body) + b"\x0a\x05image\x12" + _varint(feature) + \
        b"\x0a" + _varint(bytes_list) + b"\x0a" + _varint(length)
    after = size_entry + tail
    features = len(front) + len(entry) + length + len(after)
    return b"\x0a" + _varint(features) + front + entry, after


ALIGNED_RECORD = 16 * ALIGN  # TFRecord samples this long and longer are 4 KiB-aligned


def _stride(size: int) -> int:
    """Stream bytes from one TFRecord sample of `size` bytes to the next: size, or for
    samples of ALIGNED_RECORD bytes and more size rounded up to 4 KiB, so that each
    starts at a 4 KiB-aligned stream offset (placed at an aligned file offset, its 4 KiB
    blocks are the stream's, and so are its duplicates; the padding costs < 1/16)."""
    return size if size < ALIGNED_RECORD else -(-size // ALIGN) * ALIGN


def _pad_entry(key: bytes, total: int) -> bytes | None:
    """The map entry {key: bytes_list [n zero bytes]} of exactly `total` bytes, or None
    where no n gives that length (a varint grows by a byte)."""
    for n in range(max(0, total - 16 - len(key)), total):
        entry = _field(0x0A, _field(0x0A, key) +
                       _field(0x12, _field(0x0A, _field(0x0A, bytes(n)))))
        if len(entry) >= total:
            return entry if len(entry) == total else None
    return None


def _aligning(key: bytes, length_with) -> bytes:
    """The shortest padding entry `key` with which length_with(entry) is a multiple of
    4 KiB (length_with(b""): the length without it; an entry changes it by its own length
    and by at most 2 bytes of varints)."""
    need = -length_with(b"") % ALIGN
    for total in sorted(t for t in (need - d + k * ALIGN for d in range(3) for k in range(3))
                        if t >= 17):
        pad = _pad_entry(key, total)
        if pad is not None and length_with(pad) % ALIGN == 0:
            return pad
    raise AssertionError(f"no padding aligns a record of {length_with(b'')} bytes")


def _record_runs(spec, f) -> list[tuple[bytes, bytes, int, int]]:
    """[(head, after, first record, count)]: the records of TFRecord data file f, in runs
    of records with the same bytes around their payload. Samples of ALIGNED_RECORD bytes
    and more start at 4 KiB-aligned file offsets and the file ends at one: record 0's
    Example opens with a "padding" bytes feature that ends its head at 4 KiB, the others
    with one that puts their payload 4 KiB-aligned after the one before; the last ends
    with a "padding_end" one that ends the file at a multiple of 4 KiB."""
    return _runs(f["dims"][0] * f["dims"][1], f["samples"], _size_entry(spec, f))


@functools.lru_cache(maxsize=4096)  # files share dims; writing and index ask alike
def _runs(size, n, size_entry):
    if size < ALIGNED_RECORD:
        head, after = _example(size, size_entry)
        return [(head, after, 0, n)]
    pad, end = b"padding", b"padding_end"

    def head_with(tail, lead):  # padded head of a record after `lead` bytes
        return _example(size, size_entry, _aligning(pad, lambda p: lead + 12 + len(
            _example(size, size_entry, p, tail)[0])), tail)[0]
    gap = size + len(size_entry) + 4  # from a payload's start to the next record's start
    tail = _aligning(end, lambda p: size + len(size_entry) + len(p) + 4)
    last_after = size_entry + tail
    if n == 1:
        return [(head_with(tail, 0), last_after, 0, 1)]
    runs = [(head_with(b"", 0), size_entry, 0, 1)]
    if n > 2:
        runs.append((head_with(b"", gap), size_entry, 1, n - 2))
    return runs + [(head_with(tail, gap), last_after, n - 1, 1)]


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class Records:
    """count TFRecord records: `before` (framing and the Example's head), the Payload of
    stream bytes [offset + i * stride, + size), `after` (the Example's tail) and the masked
    CRC-32C of the Example, continued from head_crc. Written by the core where it has a
    CRC32C library (core_crc32c()), else as parts()."""

    __slots__ = ("before", "head_crc", "after", "offset", "size", "count", "stride")

    def __init__(self, before, head_crc, after, offset, size, count, stride):
        self.before, self.head_crc, self.after = before, head_crc, after
        self.offset, self.size, self.count, self.stride = offset, size, count, stride

    def parts(self):
        import crc32c
        for i in range(self.count):
            yield self.before
            payload = Payload(self.offset + i * self.stride, self.size, "crc32c",
                              self.head_crc, self.stride)
            yield payload
            yield self.after + struct.pack("<I", _masked(crc32c.crc32c(self.after,
                                                                       payload.crc)))


def _tfrecord_parts(spec, f):
    import crc32c
    size = f["dims"][0] * f["dims"][1]
    stride = _stride(size)
    for head, after, first, count in _record_runs(spec, f):
        frame = struct.pack("<Q", len(head) + size + len(after))
        frame += struct.pack("<I", _masked(crc32c.crc32c(frame)))
        yield Records(frame + head, crc32c.crc32c(head), after,
                      f["payload_offset"] + first * stride, size, count, stride)


_CORE_CRC32C = []  # [whether the core has a CRC32C function], once asked


def core_crc32c() -> bool:
    """Whether the core can checksum TFRecord payloads itself, while they are in cache:
    with crc32c_extend() of Google's CRC32C library, which the google-crc32c package's
    extension links (its wheels ship the library; the package's pure-Python build has
    none, and the CRCs are then made here with crc32c)."""
    if not _CORE_CRC32C:
        try:
            from google_crc32c import _crc32c
            _core.use_crc32c(_crc32c.__file__)
            _CORE_CRC32C.append(True)
        except (ImportError, OSError):
            _CORE_CRC32C.append(False)
    return _CORE_CRC32C[0]


# HDF5: h5py lays out the container (records (samples, dim1, dim2) uint8 and labels, or
# DLIO HEAD's records_0..k-1), its raw data contiguous, 4 KiB-aligned and never filled;
# the file's bytes around the raw data are the container, the raw data the payload.
_HDF5_CONTAINERS: dict = {}


def _hdf5_container(shape, names) -> tuple[bytes, list[tuple[int, int]]]:
    """(the file's bytes but its raw data, [(offset, length)] of each dataset's raw data),
    made by h5py in a temporary file; the last few are kept, as files of one
    dataset often share their shape."""
    key = (shape, names)
    if (cached := _HDF5_CONTAINERS.get(key)) is not None:  # one lookup: writers share it
        return cached
    if len(_HDF5_CONTAINERS) >= 64:
        _HDF5_CONTAINERS.clear()
    import h5py
    import numpy as np
    with tempfile.TemporaryDirectory(prefix="dgen-hdf5-") as tmp:
        path = os.path.join(tmp, "container.hdf5")
        with h5py.File(path, "w", libver="latest", alignment_threshold=ALIGN,
                       alignment_interval=ALIGN) as h5:
            extents = []
            for name in names:
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
                dcpl.set_obj_track_times(False)
                ds = h5py.h5d.create(h5.id, name.encode(), h5py.h5t.NATIVE_UINT8,
                                     h5py.h5s.create_simple(shape), dcpl=dcpl)
                extents.append((ds.get_offset(), math.prod(shape)))
            # int64 zeros, as DLIO writes [0] * n: the fill value, so that no array of
            # them is made here (a manifest may ask for billions of samples)
            h5.create_dataset("labels", shape=(shape[0],), dtype=np.int64, fillvalue=0,
                              track_times=False)
        with open(path, "rb") as fh:  # only the bytes outside the raw data
            image, at = bytearray(), 0
            for offset, length in sorted(extents):
                fh.seek(at)
                image += fh.read(offset - at)
                at = offset + length
            fh.seek(at)
            image += fh.read()
    made = _HDF5_CONTAINERS[key] = (bytes(image), extents)
    return made


def _hdf5_parts(spec, f):
    d1, d2 = f["dims"]
    n, k = f["samples"], spec["hdf5_datasets"]
    names = ("records",) if spec["dlio"] == "2.0" else tuple(f"records_{j}" for j in range(k))
    image, extents = _hdf5_container((n, d1, d2), names)
    at = used = 0  # file offset; bytes of `image` used
    stream = f["payload_offset"]
    per = n * d1 * d2
    for j, (offset, length) in sorted(enumerate(extents), key=lambda e: e[1][0]):
        yield image[used:used + offset - at]
        used += offset - at
        yield Payload(stream + j * per, length)
        at = offset + length
    # Zeros after the end HDF5 records (readers allow a longer file) end the file at a
    # multiple of 4 KiB, so that the next file's payload stays aligned where files are
    # read as one stream.
    rest = image[used:]
    yield rest + bytes(-(at + len(rest)) % ALIGN)


def _image_parts(spec, f):
    from PIL import Image
    d1, d2 = f["dims"]
    fmt = "JPEG" if spec["format"] == "jpeg" else "PNG"

    def encode(pixels):
        out = io.BytesIO()
        Image.fromarray(pixels.reshape(d1, d2), mode="L").save(out, format=fmt)
        return out.getvalue()
    yield Encoded(f["payload_offset"], f["payload"], encode)


def _csv_table():
    """(256 x 4 uint8: each byte value's decimal digits, left-aligned; their counts)."""
    import numpy as np
    table, counts = np.zeros((256, 4), np.uint8), np.zeros(256, np.intp)
    for v in range(256):
        text = str(v).encode()
        table[v, :len(text)] = list(text)
        counts[v] = len(text)
    return table, counts


def _csv_parts(spec, f):
    """n rows of dim1 * dim2 comma-separated values, no header (pandas' to_csv of DLIO),
    encoded ENCODE_VALUES values at a time, rows cut anywhere: memory stays bounded."""
    row = f["dims"][0] * f["dims"][1]
    table = []

    def piece(first):  # values [first, first + len(values)) of the file
        def encode(values):
            import numpy as np
            if not table:
                table.extend(_csv_table())
            digits, counts = table
            tokens = digits[values]  # each value's digits, then its separator
            n = len(values)
            ends = np.full(n, ord(","), np.uint8)
            ends[row - 1 - first % row::row] = ord("\n")  # the last value of a row
            width = counts[values]
            tokens.reshape(-1)[np.arange(0, 4 * n, 4) + width] = ends
            return tokens[np.arange(4) <= width[:, None]].tobytes()
        return encode
    for at in range(0, f["payload"], ENCODE_VALUES):
        yield Encoded(f["payload_offset"] + at, min(ENCODE_VALUES, f["payload"] - at),
                      piece(at))


class _Sink(io.RawIOBase):
    """A file that keeps what is written until take() hands it out."""

    def __init__(self):
        super().__init__()
        self.pieces = []

    def writable(self):
        return True

    def write(self, b):
        self.pieces.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self.pieces = b"".join(self.pieces), []
        return out


def _parquet_parts(spec, f):
    """One column `data` of fixed-size lists of dim1 * dim2 uint8, row groups of 1024 rows
    (the MLPerf Storage fork's legacy mode; fewer for samples over 64 KiB: parquet_rows),
    stored uncompressed, no dictionary. One row group is encoded at a time (the bytes of
    pq.write_table over the whole file), so memory is bounded by a row group's, not the
    file's."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    row = f["dims"][0] * f["dims"][1]
    sink, state = _Sink(), {}

    def piece(last):
        def encode(values):
            column = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.uint8()), row)
            table = pa.table({"data": column})
            if "writer" not in state:
                state["writer"] = pq.ParquetWriter(sink, table.schema, compression="none",
                                                   use_dictionary=False,
                                                   write_statistics=False)
            state["writer"].write_table(table, row_group_size=rows)
            if last:
                state["writer"].close()
            return sink.take()
        return encode
    rows = parquet_rows(row)
    group = rows * row
    for at in range(0, f["payload"], group):
        n = min(group, f["payload"] - at)
        yield Encoded(f["payload_offset"] + at, n, piece(at + n == f["payload"]))


_FORMAT_PARTS = {"npy": _npy_parts, "npz": _npz_parts, "indexed_binary": _indexed_binary_parts,
                 "tfrecord": _tfrecord_parts, "hdf5": _hdf5_parts, "jpeg": _image_parts,
                 "png": _image_parts, "csv": _csv_parts, "parquet": _parquet_parts}


def encoders(fmt: str) -> dict:
    """Versions of the encoders whose output verify can only compare byte for byte."""
    out = {}
    if fmt == "hdf5":
        import h5py
        out = {"h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}
    elif fmt in ("jpeg", "png"):
        import PIL
        out = {"pillow": PIL.__version__}
    elif fmt == "parquet":
        import pyarrow
        out = {"pyarrow": pyarrow.__version__}
    return out


# --- the stream window and the consumers ---------------------------------------------------
class _Window:
    """Stream bytes generated WINDOW at a time, served as views; while the caller writes
    one window, a thread generates the next (two buffers, the Generator's own threads
    releasing the GIL), so generation and writing overlap as in the core's write loop."""

    def __init__(self, identity, threads, before_refill=None):
        from concurrent.futures import ThreadPoolExecutor
        self.gen, self.before_refill = _files._generator(identity, threads), before_refill
        self.views = [memoryview(mmap.mmap(-1, WINDOW)) for _ in range(2)]
        self.start = self.end = 0
        self.sums, self.key = {}, None
        self.pool, self.ahead = ThreadPoolExecutor(1), None  # (start, end, future)

    def _fill(self, view, offset, n, length, checksum, step):
        """Generate stream bytes [offset, offset + n) into view; with checksum = (function,
        start), the checksum of each piece of `length` (one every `step` bytes) too (so it
        is made here, beside the writes of the other window, not in the caller's thread)."""
        self.gen.seek(offset)
        self.gen.readinto(view[:n])
        if checksum:
            crc, start = checksum
            return {offset + i: crc(view[i:i + length], start)
                    for i in range(0, n - length + 1, step)}
        return {}

    def get(self, offset: int, length: int, limit: int, checksum=None, step=None):
        """(view of bytes [offset, offset + length), their checksum or None); length <=
        WINDOW. A window runs on up to `limit` and holds whole pieces of `length`, one
        every `step` bytes (default length: records of one size follow each other in the
        stream), so that the next window starts where the next piece does; checksum =
        (function, start) asks for the piece's checksum."""
        step = step or length
        if not (self.start <= offset and offset + length <= self.end):
            if self.before_refill:
                self.before_refill()  # nothing refers to the current buffer any more
            ahead, self.ahead = self.ahead, None
            sums = ahead[3].result() if ahead else None
            if ahead and ahead[:3] == (offset, length, checksum) and ahead[5] == step:
                self.views.reverse()
                self.start, self.end, self.sums = offset, ahead[4], sums
            else:
                self.start = offset
                self.end = offset + self._size(offset, length, step, limit)[0]
                self.sums = self._fill(self.views[0], offset, self.end - self.start, length,
                                       checksum, step)
            self.key = (length, checksum, step)
            after = self.start + self._size(self.start, length, step, limit)[1]
            if after + length <= limit:
                n = self._size(after, length, step, limit)[0]
                self.ahead = (after, length, checksum,
                              self.pool.submit(self._fill, self.views[1], after, n, length,
                                               checksum, step), after + n, step)
        view = self.views[0][offset - self.start:offset - self.start + length]
        if not checksum:
            return view, None
        if self.key == (length, checksum, step) and offset in self.sums:
            return view, self.sums[offset]
        return view, checksum[0](view, checksum[1])  # a piece of another kind

    @staticmethod
    def _size(offset, length, step, limit) -> tuple[int, int]:
        """(bytes of a window from offset: whole pieces, up to WINDOW and limit, at least
        one; the offset of the piece after them, relative)."""
        k = max(1, (min(WINDOW, limit - offset) - length) // step + 1)
        return (k - 1) * step + length, k * step

    def close(self):
        if self.ahead:
            self.ahead[3].result()
        self.pool.shutdown()


def _chunks(part, window, limit, crc):
    """Views of a Payload's bytes (each at most WINDOW), setting part.crc at the end."""
    if part.length <= WINDOW:
        view, value = window.get(part.offset, part.length, limit,
                                 (crc, part.start) if part.crc else None, part.step)
        yield part.offset, view
        if part.crc:
            part.crc = value
        return
    value = part.start
    for at in range(part.offset, part.offset + part.length, WINDOW):
        view, _ = window.get(at, min(WINDOW, part.offset + part.length - at), limit)
        if part.crc:
            value = crc(view, value)
        yield at, view
    if part.crc:
        part.crc = value


def _crc_function(name):
    if name == "crc32c":
        import crc32c
        return crc32c.crc32c
    return zlib.crc32


class _Writer:
    """Writes the parts of one file at a time, gathered into large pwritev calls."""

    def __init__(self, identity, threads, progress):
        self.gen = _files._generator(identity, threads)
        self.window = _Window(identity, threads, self.flush)
        self.progress = progress
        self.pending, self.pending_bytes, self.fd, self.at = [], 0, None, 0

    def flush(self):
        while self.pending:
            n = os.pwritev(self.fd, self.pending, self.at - self.pending_bytes)
            self.pending_bytes -= n
            if self.pending_bytes == 0:
                self.pending = []
                break
            self.pending = [b"".join(bytes(p) for p in self.pending)[n:]]  # a short write

    def add(self, data):
        self.pending.append(data)
        self.pending_bytes += len(data)
        self.at += len(data)
        if self.pending_bytes >= FLUSH or len(self.pending) >= IOV_MAX:
            self.flush()

    def write(self, fd, spec, f) -> int:
        self.fd, self.at = fd, 0
        limit = f["payload_offset"] + f["payload"]
        try:
            for part in _expanded(parts(spec, f), core_crc32c()):
                if isinstance(part, Records):
                    self.flush()
                    self.at += self.gen._s.write_tfrecords(
                        fd, part.before, part.head_crc, part.after, part.offset, part.size,
                        part.count, self.at, tick=self._tick, stride=part.stride)
                elif isinstance(part, (bytes, bytearray)):
                    if part:
                        self.add(part)
                elif isinstance(part, Payload) and not part.crc and part.length >= DIRECT_WRITE:
                    self.flush()
                    self.gen._s.write(fd, part.offset, part.length, self.at, False,
                                      tick=self._tick)
                    self.at += part.length
                elif isinstance(part, Payload):
                    for _, view in _chunks(part, self.window, limit, _crc_function(part.crc)):
                        self.add(view)
                        self._tick(len(view))
                else:  # Encoded: the whole payload at once
                    self.add(part.encode(_payload_array(self.gen, part)))
                    self._tick(part.length)
            self.flush()
        finally:
            self.pending, self.pending_bytes = [], 0
        return self.at

    def _tick(self, n):
        if self.progress:
            self.progress(n)


def _expanded(parts, keep_records=False):
    """parts with each Records replaced by its own parts (unless keep_records)."""
    for part in parts:
        if isinstance(part, Records) and not keep_records:
            yield from part.parts()
        else:
            yield part


def _payload_array(gen, part):
    """A Payload's bytes as a new uint8 numpy array."""
    import numpy as np
    _core.check_memory(part.length)
    values = np.empty(part.length, np.uint8)
    gen.seek(part.offset)
    gen.readinto(memoryview(values))
    return values


class _Checker:
    """Compares one file at a time with its parts, recording mismatching ranges."""

    def __init__(self, identity, threads, max_ranges, progress):
        self.gen = _files._generator(identity, threads)
        self.window = _Window(identity, threads)
        self.max_ranges, self.progress = max_ranges, progress
        self.ranges, self.count, self.mismatched, self.read = [], 0, 0, 0

    def _range(self, path, at, length, kind, stream=None):
        self.count += 1
        self.mismatched += length
        if len(self.ranges) < self.max_ranges:
            self.ranges.append({"file": path, "file_offset": at, "length": length,
                                "kind": kind, "offset": stream})

    def _compare(self, fd, path, at, expected, kind, stream=None) -> int:
        """File bytes at `at` against `expected`; the bytes the file had of them."""
        import numpy as np
        expected = memoryview(expected).cast("B")
        got = os.pread(fd, len(expected), at)
        self.read += len(got)
        a = np.frombuffer(expected[:len(got)], np.uint8)
        b = np.frombuffer(got, np.uint8)
        diff = np.flatnonzero(a != b)
        if diff.size:
            breaks = np.flatnonzero(np.diff(diff) > 1)
            starts = np.concatenate(([diff[0]], diff[breaks + 1]))
            ends = np.concatenate((diff[breaks], [diff[-1]])) + 1
            for s, e in zip(starts.tolist(), ends.tolist()):
                self._range(path, at + s, e - s, kind,
                            None if stream is None else stream + s)
        return len(got)

    def check(self, fd, path, expected_parts, limit=0, size=0) -> None:
        """Compare the file with its parts. Where the file ends early the parts left are
        not made (a manifest that asks for more than is there costs what is there): one
        missing range from there to `size`, the file's length in the manifest."""
        at = 0
        for part in _expanded(expected_parts):
            if isinstance(part, (bytes, bytearray)):
                pieces = [(part, "container", None)]
            elif isinstance(part, Payload):
                pieces = ((view, "payload", stream) for stream, view in
                          _chunks(part, self.window, limit, _crc_function(part.crc)))
            else:
                pieces = [(part.encode(_payload_array(self.gen, part)), "encoded", None)]
            for data, kind, stream in pieces:
                got = self._compare(fd, path, at, data, kind, stream)
                if got < len(data):
                    self._range(path, at + got, max(0, size - at - got), "missing")
                    return
                at += len(data)
                if self.progress and kind != "container":
                    self.progress(len(data))
        if (extra := os.fstat(fd).st_size - at) > 0:
            self._range(path, at, extra, "extra")


# --- directories ---------------------------------------------------------------------------
def _parents(path: str) -> list[str]:
    """The directories path lies in, relative: "a/b/c" -> ["a", "a/b"]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _kind(entry) -> str:
    return "dir" if entry.is_dir(follow_symlinks=False) else \
        "file" if entry.is_file(follow_symlinks=False) else "other"


def _existing(root: str) -> dict[str, str]:
    """Every entry under DIR/train, valid and index, and those three: {path relative to
    DIR: "dir", "file" or "other" (symlinks, FIFOs, devices: never followed)}."""
    out, todo = {}, []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name in (*SPLITS, INDEX_DIR):
                out[entry.name] = _kind(entry)
                todo.append(entry.name)
    while todo:
        rel = todo.pop()
        if out[rel] != "dir":
            continue
        with os.scandir(os.path.join(root, rel)) as entries:
            for entry in entries:
                name = f"{rel}/{entry.name}"
                out[name] = _kind(entry)
                todo.append(name)
    return out


def _refuse_in_the_way(root: str, existing: dict, files: set, dirs: set) -> None:
    """Refused, before anything changes, where an entry that a new file or directory
    needs is of another kind (a directory or symlink where a file goes, a file or
    symlink where a directory goes): the write would fail after the old manifest went."""
    for rel in sorted(dirs):
        if existing.get(rel, "dir") != "dir":
            raise _files.Refused(errno.EINVAL, f"{os.path.join(root, rel)} is not a "
                                 f"directory: dgen reads and writes only inside real "
                                 f"directories of the dataset")
    for rel in sorted(files):
        if existing.get(rel, "file") != "file":
            full = os.path.join(root, rel)
            _files._refuse_not_regular(os.lstat(full), full)


# --- writing -------------------------------------------------------------------------------
def write_training_dataset(path, format=None, *, workload=None, files=None, eval_files=None,
                           samples_per_file=None, record_length=None,
                           record_length_stdev=None, subfolders=0, file_prefix="img",
                           dlio="2.0", hdf5_datasets=1, dims_seed=10, seed=None,
                           dedup_ratio=1.0, compress_ratio=1.0, dedup_unit=DEFAULT_DEDUP_UNIT,
                           format_version=_core.FORMAT_VERSION, threads=None, force=False,
                           jobs=None, fsync=False, progress=None, comm=None) -> dict:
    """Write a DLIO training dataset into directory `path`; returns its manifest.

    format (or workload, a preset of MLPerf Storage: unet3d, resnet50, cosmoflow) and the
    counts as in DLIO's dataset section; see the module docstring for the bytes. With comm
    (an mpi4py communicator; collective) file i is written by rank i % comm.size and rank 0
    claims the directory and writes the manifest after every rank finished; every rank
    returns the same manifest. Files under train/, valid/ and index/ that the new dataset
    does not have are refused, or deleted with force=True. jobs files are written at once
    (default: one per thread, at most the files); fsync=True fsyncs every file and
    directory before the manifest. progress(n) is called with the payload bytes written
    (on rank 0, scaled to the dataset's size, under MPI).
    """
    agree = _collective(comm)
    rank, world = (0, 1) if comm is None else (comm.rank, comm.size)
    share = None
    if comm is not None:
        from .mpi import same_settings, threads_per_rank
        share = threads_per_rank(comm)  # collective: before any rank can fail
    planned = {}

    def check():  # on every rank, each rank's settings gathered to compare them
        spec = resolve_spec(format, workload=workload, files=files, eval_files=eval_files,
                            samples_per_file=samples_per_file, record_length=record_length,
                            record_length_stdev=record_length_stdev, subfolders=subfolders,
                            file_prefix=file_prefix, dlio=dlio, hdf5_datasets=hdf5_datasets,
                            dims_seed=dims_seed)
        require(spec["format"])
        _checks.path(path)
        _checks.flag("force", force)
        synced = _checks.flag("fsync", fsync)
        if jobs is not None:
            _checks.integer("jobs", jobs, 1, _checks.MAX_THREADS)
        count = _checks.threads(threads) or share or _core.available_cpus()
        planned["entries"], size = plan(spec)
        identity = _files._identity(size, dedup_ratio, compress_ratio, seed, dedup_unit,
                                    format_version)
        return spec, {**identity, "seed": _checks.seed(seed)}, identity["seed"], count, synced
    checked = agree(check)
    if comm is not None:  # fsync too: the manifest is durable only if every rank synced
        same_settings([{**spec, **given, "fsync": synced}
                       for spec, given, _, _, synced in checked])
    spec, identity, threads = checked[0][0], dict(checked[0][1]), checked[rank][3]
    identity["seed"] = checked[0][2]  # rank 0 drew it, where none was given
    entries, root = planned["entries"], _checks.path(path)
    force, fsync = bool(force), bool(fsync)
    new = {e["path"] for e in entries} | {p for e in entries for p in side_paths(spec, e)}
    new_dirs = {d for p in new for d in _parents(p)}
    sub = spec["subfolders"]
    new_dirs |= {f"{split}/{j:0{len(str(sub))}d}" for split in SPLITS
                 for j in range(sub if sub > 1 else 0)}
    manifest = os.path.join(root, _files.MANIFEST_NAME)
    state = {}

    def claim():  # rank 0: lock, refuse or delete stale files, drop the old manifest
        if os.path.exists(root) and not os.path.isdir(root):
            raise ValueError(f"path must be a directory for a training dataset, got the "
                             f"file {root}")
        os.makedirs(root, exist_ok=True)
        state["root"] = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        state["release"] = _files._lock(state["root"], root)
        existing = _existing(root)
        _refuse_in_the_way(root, existing, new, new_dirs | set(SPLITS))
        # Entries the new layout does not have; symlinks go as files (never followed).
        # Directories (an earlier --subfolders: DLIO would take them for subfolders)
        # deepest first, so each is empty when it goes.
        kept = new | new_dirs | {*SPLITS, INDEX_DIR}
        stale = sorted(p for p, kind in existing.items() if kind != "dir" and p not in kept)
        stale_dirs = sorted((p for p, kind in existing.items()
                             if kind == "dir" and p not in kept), key=lambda d: -d.count("/"))
        stale += stale_dirs
        if stale and not force:
            raise _files.Refused(errno.EEXIST, f"{root} holds {len(stale)} file(s) that are "
                                 f"not part of the new dataset ({', '.join(stale[:3])}"
                                 f"{', ...' if len(stale) > 3 else ''}): remove them, or pass "
                                 f"--force (force=True) to delete them")
        try:
            os.unlink(manifest)
        except FileNotFoundError:
            pass
        tree = _files.DatasetTree(state["root"], root)
        try:
            for name in stale[:len(stale) - len(stale_dirs)]:
                parent, leaf = os.path.split(name)
                os.unlink(leaf, dir_fd=tree.dir(parent))
            for name in stale_dirs:
                parent, leaf = os.path.split(name)
                os.rmdir(leaf, dir_fd=tree.dir(parent))
            # Both splits, every subfolder (as DLIO makes them) and every directory a file
            # goes in, before the other ranks open them.
            for d in sorted(new_dirs | set(SPLITS)):
                tree.dir(d, create=True)
        finally:
            tree.close()

    try:
        agree(claim if rank == 0 else lambda: None)
        mine = entries[rank::world]
        scale = identity["size"] / max(1, sum(e["payload"] for e in mine))
        tick = (lambda n: progress(n * scale)) if progress and rank == 0 else None
        sizes = agree(lambda: _write_files(root, spec, identity, mine, threads, tick, jobs,
                                           fsync), share=True)
        seconds = max(s for _, s in sizes)
        sized = {}
        for written, _ in sizes:
            sized.update(written)
        record = _manifest(spec, identity, entries, sized)
        if rank == 0:
            agree(lambda: _files.write_manifest(manifest, record))
        else:
            agree(lambda: None)
    finally:
        if "root" in state:
            state.get("release", lambda: None)()
            os.close(state["root"])  # and with it the lock
    return {**record, "manifest": manifest, "seconds": seconds}


def _collective(comm):
    """agree(fn): fn() on every rank and every rank's value (a list), or every rank raises
    the first error (dgen_py.mpi's protocol); without comm, [fn()]."""
    if comm is None:
        return lambda fn, share=True: [fn()] if share else fn()
    from .mpi import _agree
    return lambda fn, share=True: _agree(comm, fn, share)


def _write_files(root, spec, identity, mine, threads, progress, jobs=None, fsync=False):
    """Write data files `mine` and their index files; ({path: size}, seconds). With several
    threads, several files at once (`jobs`, one writer each, as `dgen write --jobs`; by
    default one per thread): one thread copying into the page cache is slower than
    generation. fsync: every file, then every directory, reaches the device."""
    from concurrent.futures import ThreadPoolExecutor
    started = time.perf_counter()
    tree = _files.DatasetTree.at(root)
    jobs = max(1, min(len(mine), threads if jobs is None else jobs))
    if progress and jobs > 1:
        lock, report = threading.Lock(), progress

        def progress(n):
            with lock:
                report(n)
    sizes = {}

    def write(group):
        writer = _Writer(identity, max(1, threads // jobs), progress)
        try:
            for f in group:
                _write_one(tree, root, spec, f, writer, sizes, fsync)
        finally:
            writer.window.close()

    try:
        for f in mine:  # directories opened here (rank 0 made them), so writers only read it
            for p in [f["path"]] + side_paths(spec, f):
                tree.dir(os.path.dirname(p))
        with ThreadPoolExecutor(jobs) as pool:
            for future in [pool.submit(write, mine[j::jobs]) for j in range(jobs)]:
                future.result()
        if fsync:
            for fd in tree.fds.values():
                os.fsync(fd)
    finally:
        tree.close()
    return sizes, time.perf_counter() - started


def _write_one(tree, root, spec, f, writer, sizes, fsync=False):
    # Existing files are overwritten in place and cut to their new length after (as
    # write_dataset does: no pages freed and allocated again), new ones appended to.
    flags = os.O_WRONLY | os.O_CREAT
    fd = tree.open(f["path"], flags)
    try:
        sizes[f["path"]] = writer.write(fd, spec, f)
        os.ftruncate(fd, sizes[f["path"]])
        if fsync:
            os.fsync(fd)
    except OSError as e:
        raise OSError(e.errno, f"writing {os.path.join(root, f['path'])}: "
                      f"{e.strerror}") from None
    finally:
        os.close(fd)
    for p, content in side_files(spec, f):
        fd = tree.open(p, flags | os.O_TRUNC)
        sizes[p] = 0
        try:
            for chunk in content:
                _write_all(fd, chunk)
                sizes[p] += len(chunk)
            if fsync:
                os.fsync(fd)
        except OSError as e:  # a full disk or a file size limit: name the file
            raise OSError(e.errno, f"writing {os.path.join(root, p)}: {e.strerror}") from None
        finally:
            os.close(fd)


def _write_all(fd, data) -> None:
    """write() until every byte is written: a short write is retried, and the retry
    raises what stopped the first (ENOSPC, EFBIG)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == 0:
            raise OSError(errno.EIO, "write() wrote nothing")
        view = view[n:]


# The container layout of the files dgen dataset writes. 2 (dgen 0.6.0): npz, hdf5 and
# tfrecord files end at 4 KiB, TFRecord samples of 64 KiB and more start at 4 KiB, and
# parquet samples over 64 KiB go in row groups of fewer than 1024 rows.
LAYOUT = 2


def _check_layout(record, where, spec, entries) -> None:
    """ValueError where the files were laid out otherwise than this dgen lays them out:
    verify would call every container byte damage."""
    layout = record.get("layout", 1)
    if type(layout) is not int or not 1 <= layout <= LAYOUT:
        raise ValueError(f"{where}: layout is {layout!r}: this dgen reads layouts 1 to "
                         f"{LAYOUT} (a newer dgen wrote it?)")
    fmt, samples = spec["format"], spec["samples_per_file"]
    changed = fmt in ("npz", "hdf5", "tfrecord") or fmt == "parquet" and any(
        parquet_rows(e["dims"][0] * e["dims"][1]) < min(PARQUET_ROW_GROUP, samples)
        for e in entries)
    if layout < 2 and changed:
        raise ValueError(f"{where}: {fmt} files of container layout {layout} (written by dgen "
                         f"{record.get('dgen_version', 'before 0.6.0')}); this dgen writes "
                         f"layout {LAYOUT}, whose {fmt} files differ: verify with the dgen "
                         f"that wrote it, or write the dataset again")


def _manifest(spec, identity, entries, sizes) -> dict:
    from ._version import __version__
    import datetime
    listed, at = [], 0
    for f in entries:
        listed.append({"path": f["path"], "offset": at, "length": sizes[f["path"]],
                       "payload_offset": f["payload_offset"], "payload": f["payload"],
                       "dims": list(f["dims"])})
        at += sizes[f["path"]]
    index = sorted(p for f in entries for p in side_paths(spec, f))
    return {"dgen_dataset": 1, "dgen_version": __version__, "layout": LAYOUT,
            "format_version": identity["format_version"], "identity": identity,
            "dataset": spec, "encoders": encoders(spec["format"]), "files": listed,
            "index_files": [{"path": p, "length": sizes[p]} for p in index],
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "complete": True}


# --- verifying -----------------------------------------------------------------------------
def is_training_dataset(path) -> bool:
    """Whether `path` is a directory whose manifest describes a training dataset."""
    if not os.path.isdir(path):
        return False
    try:  # a manifest the loader refuses is refused again, with its reason, as a plain one
        record = _files.load_manifest(os.path.join(os.fspath(path), _files.MANIFEST_NAME))
    except (ValueError, OSError):
        return False
    return isinstance(record, dict) and "dgen_dataset" in record


def read_manifest(path) -> dict:
    """The checked manifest of the training dataset in directory `path`."""
    where = os.path.join(os.fspath(path), _files.MANIFEST_NAME)
    record = _files._load_manifest(path)  # refuses a FIFO or device instead of hanging
    if record is None:
        raise FileNotFoundError(errno.ENOENT, "no manifest", where)
    if not isinstance(record, dict) or record.get("dgen_dataset") != 1:
        raise ValueError(f"{where}: not a training dataset manifest (dgen_dataset != 1)")
    if record.get("complete") is not True:
        raise ValueError(f"{where}: complete is {record.get('complete')!r}: the dataset was "
                         f"not completely written")
    for key in ("dataset", "identity"):
        if not isinstance(record.get(key), dict):
            raise ValueError(f"{where}: {key} " + ("is missing" if key not in record else
                             f"must be a JSON object, got {type(record[key]).__name__}"))
    ident = record["identity"]
    names = ("size", "dedup_ratio", "compress_ratio", "seed", "dedup_unit", "format_version")
    for name in names:
        if ident.get(name) is None:  # a null seed would draw one at random
            raise ValueError(f"{where}: identity.{name} is "
                             f"{'missing' if name not in ident else 'null'}")
    try:
        identity = _files._identity(*(ident[name] for name in names))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: identity.{e}") from None
    try:
        spec = resolve_spec(**record["dataset"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: dataset: {e}") from None
    # The lists the dataset section asks for must be there, before plan() makes them: a
    # small manifest cannot ask for millions of files.
    count = spec["files"] + spec["eval_files"]
    listed = {"files": count, "index_files": count * len(side_paths(spec, {"path": "x/y"}))}
    for key, n in listed.items():
        if not isinstance(record.get(key), list):
            raise ValueError(f"{where}: {key} " + ("is missing" if key not in record else
                             f"must be a list, got {type(record[key]).__name__}"))
        if len(record[key]) != n:
            raise ValueError(f"{where}: {key} lists {len(record[key])} file(s), but the "
                             f"dataset section (files + eval_files: {count}) makes {n}")
    entries, size = plan(spec)
    _check_layout(record, where, spec, entries)
    if size != identity["size"]:
        raise ValueError(f"{where}: identity.size is {identity['size']}, but the dataset's "
                         f"samples take {size} bytes of the stream")
    _check_listing(record, where, {
        "files": [e["path"] for e in entries],
        "index_files": sorted(p for e in entries for p in side_paths(spec, e))})
    encoders = record.get("encoders", {})
    if not isinstance(encoders, dict) or not all(
            isinstance(v, str) for v in encoders.values()):
        raise ValueError(f"{where}: encoders must be an object of package: version strings, "
                         f"got {encoders!r:.60}")
    return {**record, "dataset": spec, "identity": identity, "entries": entries,
            "manifest": where}


def _check_listing(record, where, expected: dict) -> None:
    """The manifest's file lists (lists of the right length; expected: {key: the paths the
    dataset section makes, in order}) are {path, length} of exactly those paths;
    ValueError naming the first bad field."""
    def bad(field, problem):
        raise ValueError(f"{where}: {field} {problem}")
    for key, paths in expected.items():
        for i, (f, path) in enumerate(zip(record[key], paths)):
            if not isinstance(f, dict):
                bad(f"{key}[{i}]", f"must be a JSON object, got {type(f).__name__}")
            if f.get("path") != path:
                bad(f"{key}[{i}].path", "is missing" if "path" not in f else
                    f"is {f['path']!r}, but the dataset section makes {path!r}")
            length = f.get("length")
            if isinstance(length, bool) or not isinstance(length, int) or \
                    not 0 <= length <= _checks.MAX_SIZE:
                bad(f"{key}[{i}].length", "is missing" if "length" not in f else
                    f"must be an integer in [0, {_checks.MAX_SIZE}], got {length!r}")


def verify_training_dataset(path, *, max_ranges=20, threads=None, progress=None,
                            comm=None) -> dict:
    """Regenerate every file of the training dataset in `path` and compare it with what is
    there. Returns a JSON-ready dict: "ok", "path", "manifest", "identity", "dataset",
    "files" (data and index files checked), "bytes_read", "mismatched_bytes",
    "range_count", "ranges" (the first max_ranges: {file, file_offset, length, kind
    ("payload", "container", "encoded": bytes an encoder made, "missing", "extra"),
    offset: the stream offset of a payload range}), "warnings" (encoders of another
    version than the one that wrote the files) and "seconds". With comm, rank r checks
    files r, r + size, ... and every rank returns the same dict."""
    agree = _collective(comm)
    rank, world = (0, 1) if comm is None else (comm.rank, comm.size)
    share = None
    if comm is not None:
        from .mpi import same_dataset, threads_per_rank
        share = threads_per_rank(comm)  # collective: before any rank can fail

    def check():
        return (_checks.integer("max_ranges", max_ranges, 0, 2**31),
                _checks.threads(threads) or share or _core.available_cpus(),
                read_manifest(path))
    max_ranges, count, record = agree(check, share=False)
    path = os.fspath(path)
    if comm is not None:  # the manifest as read (not where, nor what it implies)
        same_dataset(comm, {k: v for k, v in record.items()
                            if k not in ("manifest", "entries")}, path)
    spec, identity, entries = record["dataset"], record["identity"], record["entries"]
    warnings = []
    now = agree(lambda: require(spec["format"]) and encoders(spec["format"]),
                share=False) or {}
    for name, version in (record.get("encoders") or {}).items():
        if now.get(name) != version:
            warnings.append(f"{name} {now.get(name)} here, {version} wrote the dataset: "
                            f"{spec['format']} container or encoded bytes may differ")
    started = time.perf_counter()
    lengths = {f["path"]: f["length"] for f in record["files"] + record["index_files"]}
    results = agree(lambda: _check_files(path, spec, identity, entries[rank::world], lengths,
                                         count, max_ranges,
                                         progress if rank == 0 else None))
    ranges = sorted((r for res in results for r in res["ranges"]),
                    key=lambda r: r["file"])[:max_ranges]
    count = sum(r["range_count"] for r in results)
    return {"ok": count == 0, "path": path, "manifest": record["manifest"],
            "identity": identity, "dataset": spec,
            "files": sum(r["files"] for r in results),
            "bytes_read": sum(r["bytes_read"] for r in results),
            "mismatched_bytes": sum(r["mismatched_bytes"] for r in results),
            "range_count": count, "ranges": ranges, "warnings": warnings,
            "seconds": time.perf_counter() - started}


def _check_files(root, spec, identity, mine, lengths, threads, max_ranges, progress) -> dict:
    """Compare files `mine` with what they should hold; `lengths`: the manifest's, by path."""
    checker = _Checker(identity, threads, max_ranges, progress)
    tree = _files.DatasetTree.at(root)
    count = 0
    try:
        for f in mine:
            targets = [(f["path"], parts(spec, f), f["payload_offset"] + f["payload"])]
            targets += [(p, content, 0) for p, content in side_files(spec, f)]
            for rel, expected, limit in targets:
                count += 1
                try:
                    fd = tree.open(rel, os.O_RDONLY)
                except FileNotFoundError:
                    checker._range(rel, 0, lengths[rel], "missing")
                    continue
                try:
                    checker.check(fd, rel, expected, limit, lengths[rel])
                finally:
                    os.close(fd)
    finally:
        checker.window.close()
        tree.close()
    return {"files": count, "bytes_read": checker.read, "mismatched_bytes": checker.mismatched,
            "range_count": checker.count, "ranges": checker.ranges}


def report(r: dict) -> str:
    """verify_training_dataset's result as the CLI prints it."""
    spec = r["dataset"]
    what = f"{spec['format']} dataset, {r['files']} file(s) (data and index)"
    if r["ok"]:
        return (f"OK {r['path']}: {what}, {r['bytes_read']} bytes read and verified "
                f"(payload and container); seed {r['identity']['seed']}")
    lines = [f"FAILED {r['path']}: {what}: {r['range_count']} mismatching range(s), "
             f"{r['mismatched_bytes']} byte(s) differ or are missing"]
    width = max([4, *(len(x["file"]) for x in r["ranges"])])
    lines.append(f"{'file':<{width}} {'file offset':>14} {'length':>12}  what")
    for x in r["ranges"]:
        where = "" if x["offset"] is None else f" (stream offset {x['offset']})"
        lines.append(f"{x['file']:<{width}} {x['file_offset']:>14} {x['length']:>12}  "
                     f"{x['kind']}{where}")
    if r["range_count"] > len(r["ranges"]):
        lines.append(f"... and {r['range_count'] - len(r['ranges'])} more range(s)")
    return "\n".join(lines)
