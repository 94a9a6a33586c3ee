"""dgen_py — synthetic data at memory speed with exact dedup and compression ratios.

A drop-in for the dgen-py API: Generator, generate_buffer, fill_buffer, BytesView, ...
The bytes are a pure function of the dataset identity (Identity: seed, size, ratios and
the other fields of identity.FIELDS) and the offset; see the project's docs/data-model.md.
"""

import importlib
from importlib.metadata import version  # noqa: F401 (dgen-py 0.3.0 exports it)

from .ml.buffer_pool import BufferPool, bench_rolling_pool
from ._core import FORMAT_VERSION, BytesView, Mismatch, VerifyResult
from ._generator import Generator, StreamingGenerator, Verifier
from ._oneshot import (
    create_bytearrays,
    fill_buffer,
    generate_buffer,
    generate_data,
    generate_into_buffer,
)
from .identity import Identity
from ._system import detect_numa_nodes, get_numa_info, get_system_info
from .ml.uniform import generate_uniform, generate_uniform_vectors, normalize_rows
from .numa import run_per_node
from .verify import verify_file
from .write import write_dataset
from ._shares import split
from ._version import __version__

# Names whose modules need numpy (and analyze: zstandard, lz4): imported on first use, so
# that `dgen` and plain generation start fast.
_LAZY = {"analyze": "analysis", "clustered_vectors": "ml.tensor", "fill_tensor": "ml.tensor",
         "tensor": "ml.tensor"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dgen_py' has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION",
    "BufferPool",
    "BytesView",
    "Generator",
    "Identity",
    "Mismatch",
    "Verifier",
    "VerifyResult",
    "StreamingGenerator",
    "analyze",
    "bench_rolling_pool",
    "clustered_vectors",
    "create_bytearrays",
    "detect_numa_nodes",
    "fill_buffer",
    "fill_tensor",
    "generate_buffer",
    "generate_data",
    "generate_into_buffer",
    "generate_uniform",
    "generate_uniform_vectors",
    "get_numa_info",
    "get_system_info",
    "normalize_rows",
    "run_per_node",
    "split",
    "tensor",
    "verify_file",
    "write_dataset",
]
