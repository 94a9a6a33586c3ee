import hashlib

import pytest

import dgen_py


def reference(size, seed, dedup_ratio=1.0, compress_ratio=1.0, dedup_unit=131072, **kw):
    """The whole dataset from one single-threaded call."""
    buf = bytearray(size)
    g = dgen_py.Generator(size, dedup_ratio, compress_ratio, seed=seed, max_threads=1,
                          dedup_unit=dedup_unit, **kw)
    assert g.fill_chunk(buf) == size
    return bytes(buf)


def sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ref():
    return reference
