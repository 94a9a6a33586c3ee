"""Parquet files, encoded by pyarrow one row group at a time."""

from __future__ import annotations

import io

from .parts import Encoded
from .spec import parquet_rows


class _Sink(io.RawIOBase):
    """A file that keeps what is written until take() hands it out: in one growing buffer
    that take() passes on without a copy (a row group's bytes can be 256 MiB)."""

    def __init__(self):
        super().__init__()
        self.buffer = io.BytesIO()

    def writable(self):
        return True

    def write(self, b):
        return self.buffer.write(b)

    def take(self) -> bytes:
        out, self.buffer = self.buffer.getvalue(), io.BytesIO()
        return out


def parts(spec, f):
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


def encoders() -> dict:
    import pyarrow
    return {"pyarrow": pyarrow.__version__}
