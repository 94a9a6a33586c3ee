"""dgen_py — synthetic data at memory speed with exact dedup and compression ratios.

A drop-in for the dgen-py API: Generator, generate_buffer, fill_buffer, BytesView, ...
The bytes are a pure function of (seed, size, dedup_ratio, compress_ratio, dedup_unit)
and the offset; see the project's docs/data-model.md.
"""

from importlib.metadata import PackageNotFoundError, version

from ._core import FORMAT_VERSION, BytesView, Mismatch, VerifyResult
from ._generator import (
    Generator,
    StreamingGenerator,
    create_bytearrays,
    fill_buffer,
    generate_buffer,
    generate_data,
    generate_into_buffer,
)
from ._system import detect_numa_nodes, get_numa_info, get_system_info
from .numa import run_per_node
from .analyze import analyze

try:
    __version__ = version("dgen-py")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "FORMAT_VERSION",
    "BytesView",
    "Generator",
    "Mismatch",
    "VerifyResult",
    "StreamingGenerator",
    "analyze",
    "create_bytearrays",
    "detect_numa_nodes",
    "fill_buffer",
    "generate_buffer",
    "generate_data",
    "generate_into_buffer",
    "get_numa_info",
    "get_system_info",
    "run_per_node",
]
