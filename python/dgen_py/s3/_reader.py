"""open_object(): a byte range of an object as a read-only, seekable file (ranged GETs);
open_dataset(): the objects of a dataset as one stream."""

from __future__ import annotations

import io

from .. import _checks
from . import _store

BUFFER = 8 << 20


class ObjectRange(io.RawIOBase):
    """Bytes [start, stop) of one object; positions count from start. Each readinto is one
    ranged GET (wrap it in io.BufferedReader for small reads: open_object does)."""

    def __init__(self, url: str, start: int = 0, stop: int | None = None, *, store=None):
        super().__init__()
        bucket, self._key = _store.parse_url(url)
        self.name = url
        self._store = store or _store.open_store(bucket)
        from ._verify import head
        size = head(self._store, self._key)
        if size is None:
            raise FileNotFoundError(f"no such object: {url}")
        start = _checks.integer("start", start, 0, size)
        stop = size if stop is None else _checks.integer("stop", stop, start, size)
        self._start, self._stop, self._pos = start, stop, 0

    @property
    def size(self) -> int:
        return self._stop - self._start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"offset {offset} (whence {whence}) is before the start")
        self._pos = base + offset
        return self._pos

    def readinto(self, b) -> int:
        import obstore
        view = memoryview(b).cast("B")
        n = min(len(view), self.size - self._pos)
        if n <= 0:
            return 0
        try:
            data = obstore.get_range(self._store, self._key, start=self._start + self._pos,
                                     length=n)
        except Exception as e:
            raise OSError(f"reading {self.name} at {self._start + self._pos}: "
                          f"{_store.described(e)}") from None
        got = len(data)
        view[:got] = memoryview(data)
        self._pos += got
        return got


def open_object(url: str, start: int = 0, stop: int | None = None, *,
                buffer_size: int = BUFFER, store=None) -> io.BufferedReader:
    """Bytes [start, stop) (default: all) of the object at s3://bucket/key as a buffered,
    seekable binary file: read, readinto, seek, tell; each refill is one ranged GET of
    buffer_size bytes. FileNotFoundError when there is no such object."""
    buffer_size = _checks.integer("buffer_size", buffer_size, 1, 1 << 30)
    return io.BufferedReader(ObjectRange(url, start, stop, store=store), buffer_size)


class Objects(io.RawIOBase):
    """ObjectRanges read one after another as one stream (not seekable)."""

    def __init__(self, parts: list[ObjectRange], name: str):
        super().__init__()
        self._parts, self.name = list(parts), name
        self.size = sum(p.size for p in parts)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._parts:
            if n := self._parts[0].readinto(b):
                return n
            self._parts.pop(0)
        return 0


def open_dataset(url: str, *, buffer_size: int = BUFFER, store=None) -> io.BufferedReader:
    """The dataset at s3://bucket/key as one buffered binary stream, read with ranged GETs:
    its manifest's objects in dataset order (key.dgen.json, key/dgen-manifest.json or a
    manifest's URL), else the object at the URL. The stream's .raw.size is its bytes.
    FileNotFoundError when there is neither."""
    from ._verify import find_manifest
    buffer_size = _checks.integer("buffer_size", buffer_size, 1, 1 << 30)
    bucket, key = _store.parse_url(url)
    store = store or _store.open_store(bucket)
    where = f"{_store.SCHEME}{bucket}/"
    record, manifest, _, _ = find_manifest(store, key, where)
    names = [key] if record is None else [
        _store.join(manifest.rpartition("/")[0], f["path"]) for f in record["files"]]
    parts = [ObjectRange(where + n, store=store) for n in names]
    return io.BufferedReader(Objects(parts, url), buffer_size)
