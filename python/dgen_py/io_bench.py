"""Moved to dgen_py.bench.io; this name stays for benchmarks/io.py until it imports that."""

import sys

from .bench import io

sys.modules[__name__] = io
