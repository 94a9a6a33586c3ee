"""HDF5 files: h5py lays out the container (records (samples, dim1, dim2) uint8 and
labels, or DLIO HEAD's records_0..k-1), its raw data contiguous, 4 KiB-aligned and never
filled; the file's bytes around the raw data are the container, the raw data the
payload."""

from __future__ import annotations

import math
import os
import tempfile

from .parts import Payload
from .spec import ALIGN

_HDF5_CONTAINERS: dict = {}


def _hdf5_container(shape, names) -> tuple[bytes, list[tuple[int, int]]]:
    """(the file's bytes but its raw data, [(offset, length)] of each dataset's raw data),
    made by h5py in a temporary file; up to 64 are kept (then all dropped), as files of one
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


def parts(spec, f):
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


def encoders() -> dict:
    import h5py
    return {"h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}
