"""Datasets on S3-compatible object stores: write_objects() and verify_objects() do for
s3://bucket/key what write_dataset() and verify_file() do for a path (docs/s3.md).
Needs the optional obstore client: pip install 'dgen-py[s3]'."""

import importlib

from ._reader import ObjectRange, open_dataset, open_object
from ._store import ConfigError, is_url, open_store, parse_url

# The jobs need numpy: imported on first use, so that `dgen` starts without it.
_LAZY = {"verify_objects": "._verify", "write_objects": "._write"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dgen_py.s3' has no attribute {name!r}")


__all__ = ["ConfigError", "ObjectRange", "is_url", "open_dataset", "open_object", "open_store",
           "parse_url", "verify_objects", "write_objects"]
