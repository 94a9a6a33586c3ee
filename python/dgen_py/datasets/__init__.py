"""Training datasets laid out as DLIO 2.0 writes them, with payload from a dataset identity.

write_training_dataset() writes DIR/train/<prefix>_<i>_of_<N>.<format> (and valid/, and
index/ for TFRecord's DALI index files) in one of the formats DLIO and MLPerf Storage
read; verify_training_dataset() reads them back. Every sample's bytes come from one
logical stream, the dataset identity (every field of write_dataset's) of files.py:
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

Modules: spec (the spec and plan), parts (the kinds of part), one per container format
(npy, npz, hdf5, tfrecord, parquet, images, csv) and formats (by name), engine (the stream
window, Writer and Checker), claim (the directory before writing), presets (the dedup_for
presets the files can honour), manifest, write, verify,
ranks (MPI).
"""

from .csv import ENCODE_VALUES
from .engine import Writer as _Writer  # noqa: F401 (tests count the writers)
from .formats import parts
from .manifest import LAYOUT, is_training_dataset, read_manifest
from .parts import Encoded
from .spec import dims, parquet_rows, plan, resolve_spec
from .tfrecord import core_crc32c
from .verify import report, verify_training_dataset
from .write import write_training_dataset

__all__ = ["ENCODE_VALUES", "LAYOUT", "Encoded", "core_crc32c", "dims", "is_training_dataset",
           "parquet_rows", "parts", "plan", "read_manifest", "report", "resolve_spec",
           "verify_training_dataset", "write_training_dataset"]
