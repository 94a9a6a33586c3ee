"""csv and parquet training files are encoded in pieces: memory stays bounded however large
a file is, and the bytes are those of encoding the whole file at once."""

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dgen_py import datasets
from dgen_py.datasets import csv as csv_format

MiB = 1 << 20

PEAK = """
    import resource, sys
    from dgen_py import datasets
    fmt, samples, record = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    datasets.write_training_dataset(sys.argv[4], fmt, files=1, samples_per_file=samples,
                                    record_length=record, record_length_stdev=0, seed=1,
                                    threads=1)
    assert datasets.verify_training_dataset(sys.argv[4], threads=1)["ok"]
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak(tmp_path, fmt, samples, record) -> int:
    """Peak RSS of a process that writes and verifies one file of `samples` samples."""
    root = tmp_path / f"{fmt}-{samples}"
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(PEAK), fmt, str(samples),
                        str(record), str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


# (format, samples and record length of an 8 MiB file): parquet in row groups of 1024
# samples (DLIO's), csv in rows.
@pytest.mark.parametrize("fmt, samples, record", [("csv", 8, MiB), ("parquet", 2048, 4096)])
def test_memory_does_not_grow_with_the_file(tmp_path, fmt, samples, record):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    small = peak(tmp_path, fmt, samples, record)
    large = peak(tmp_path, fmt, 4 * samples, record)  # 32 MiB: 18-23x would be 430+ MiB more
    assert large - small < 48 * MiB, (small, large)


def test_parquet_row_groups_of_large_samples_stay_bounded(tmp_path):
    # 1 MiB samples: 1024 of them (DLIO's row group) would be 1 GiB, about 20 GiB in pyarrow.
    pytest.importorskip("pyarrow")
    # Row groups of 64 samples (256 MiB of int32 values in the file): 4 groups against 8.
    # Peaks measured 1.48-1.58 GB for either, varying by about 100 MiB with pyarrow's pool
    # (by 400 MiB when verify read a whole group at once and the sink copied it); in one
    # 1024-row group the 256 MiB more would take about 5 GB more.
    small = peak(tmp_path, "parquet", 256, MiB)
    large = peak(tmp_path, "parquet", 512, MiB)
    assert large - small < 384 * MiB and large < 2 << 30, (small, large)


def whole_file(fmt, values: np.ndarray, rows: int) -> bytes:
    """The file as one call of the encoder makes it, for comparison."""
    if fmt == "csv":
        return b"".join(b",".join(str(v).encode() for v in row) + b"\n"
                        for row in values.reshape(rows, -1).tolist())
    import pyarrow as pa
    import pyarrow.parquet as pq
    column = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.uint8()),
                                               len(values) // rows)
    out = io.BytesIO()
    pq.write_table(pa.table({"data": column}), out,
                   row_group_size=datasets.parquet_rows(len(values) // rows),
                   compression="none", use_dictionary=False, write_statistics=False)
    return out.getvalue()


# csv: rows cut across pieces at a small ENCODE_VALUES, and at the default; parquet: one
# row group, a short last one, whole ones.
@pytest.mark.parametrize("fmt, samples, dims, encode_values", [
    ("csv", 3, (5, 7), 17), ("csv", 2, (1100, 1000), datasets.ENCODE_VALUES),
    ("parquet", 1, (8, 8), 0), ("parquet", 2500, (4, 8), 0), ("parquet", 2048, (2, 2), 0),
    ("parquet", 5, (1024, 32768), 0)])  # 32 MiB samples: row groups of 2
def test_pieces_are_the_bytes_of_the_whole_file(fmt, samples, dims, encode_values,
                                                monkeypatch):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    else:
        monkeypatch.setattr(csv_format, "ENCODE_VALUES", encode_values)
    d1, d2 = dims
    f = {"dims": dims, "samples": samples, "payload_offset": 8192,
         "payload": samples * d1 * d2}
    values = np.random.default_rng(1).integers(0, 256, f["payload"], np.uint8)
    got = b""
    for part in datasets.parts({"format": fmt}, f):
        assert isinstance(part, datasets.Encoded)
        assert part.length <= (encode_values or datasets.parquet_rows(d1 * d2) * d1 * d2)
        at = part.offset - f["payload_offset"]
        got += part.encode(values[at:at + part.length])
    assert got == whole_file(fmt, values, samples)
