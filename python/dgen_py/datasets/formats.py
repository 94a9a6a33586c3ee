"""Each format's parts, index files and encoder versions, by format name."""

from __future__ import annotations

import os

from . import csv, hdf5, images, npy, npz, parquet, tfrecord
from .spec import INDEX_DIR

_PARTS = {"npy": npy.parts, "npz": npz.parts, "indexed_binary": npy.indexed_binary_parts,
          "tfrecord": tfrecord.parts, "hdf5": hdf5.parts, "jpeg": images.parts,
          "png": images.parts, "csv": csv.parts, "parquet": parquet.parts}
_ENCODERS = {"hdf5": hdf5.encoders, "jpeg": images.encoders, "png": images.encoders,
             "parquet": parquet.encoders}


def parts(spec, f):
    """The parts of data file f (a plan() entry) in file order."""
    return _PARTS[spec["format"]](spec, f)


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
    fmt, n = spec["format"], f["samples"]
    cuts = [(i, min(n, i + INDEX_CHUNK)) for i in range(0, n, INDEX_CHUNK)]
    if fmt == "indexed_binary":
        contents = npy.index_contents(f, cuts)
    elif fmt == "tfrecord":
        contents = [tfrecord.index_lines(spec, f, cuts)]
    else:
        contents = []
    return list(zip(side_paths(spec, f), contents))


def encoders(fmt: str) -> dict:
    """Versions of the encoders whose output verify can only compare byte for byte."""
    return _ENCODERS[fmt]() if fmt in _ENCODERS else {}
