"""Datasets on S3-compatible object stores: write_objects() and verify_objects() do for
s3://bucket/key what write_dataset() and verify_file() do for a path (docs/s3.md).
Needs the optional obstore client: pip install 'dgen-py[s3]'."""

from ._reader import ObjectRange, open_dataset, open_object
from ._store import ConfigError, is_url, open_store, parse_url
from ._verify import verify_objects
from ._write import write_objects

__all__ = ["ConfigError", "ObjectRange", "is_url", "open_dataset", "open_object", "open_store",
           "parse_url", "verify_objects", "write_objects"]
