"""Source and derivative stores: a local folder or ``s3://bucket/prefix``.

One small interface, used by the origin (sources and derivatives), prescale, and the edge emulator
(which reads the derivative store as its primary origin)::

    store = open_store("./derivatives")            # or "s3://bucket/prefix"
    store.get(key) -> bytes | None                  # None when the object does not exist
    store.get(key, max_bytes=N)                     # PayloadTooLarge if the object is over N bytes
    store.put(key, data, content_type)              # atomic: readers never see a partial object
    store.exists(key) -> bool
    store.head(key) -> ObjectInfo | None            # size and content type, without the body
    store.iter_keys(prefix="") -> Iterator[str]        # every key under prefix, sorted for folders
    store.describe() -> str                         # "folder /abs/path" / "s3://bucket/prefix"
    store.remove_orphans() -> int                   # temp files a killed writer left (folders; S3: 0)
    etag_for(data) -> str                           # '"md5hex"', equal to S3's ETag for the object

Keys are relative ``/``-separated paths (``images/sku-00001-1.jpg`` or a derivative key such as
``images/sku-00001-1.jpg/w=640,h=0,fit=cover,q=80,f=webp``). A key that is absolute, contains
``..``/``.``/empty segments or control characters raises :class:`~edgeproof.errors.BadRequest`.
Every I/O failure (permissions, disk full, S3 unreachable) raises
:class:`~edgeproof.errors.StoreError`: OS errors are translated here, botocore's in
:mod:`edgeproof.s3` (the one S3 boundary).

Both stores are thread-safe and may be shared by a thread pool. The S3 store goes through
:mod:`edgeproof.s3`: one client per thread and process (made on first use, so after ``fork``),
``AWS_ENDPOINT_URL`` and the usual AWS_* variables honoured, retries and timeouts, and the one place
botocore errors become StoreErrors. For folders, the derivative store and the source store must be
different folders: a derivative key uses its source key as a directory.

A folder write goes to ``.NAME.PID-RANDOM.tmp`` beside its object and is renamed into place; a
process killed (``kill -9``, OOM) between the two leaves that file behind for good. The origin and
prescale call :meth:`FolderStore.remove_orphans` when they start: it removes such files older than
:data:`ORPHAN_AGE` seconds that this process did not write. No derivative write takes anywhere
near that long, and one that somehow did would fail its rename (a logged write error), never leave
a partial object.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeproof import s3
from edgeproof.canonical import CONTENT_TYPES, split_canonical, validate_source_key
from edgeproof.errors import PayloadTooLarge, StoreError

__all__ = ["ORPHAN_AGE", "FolderStore", "ObjectInfo", "S3Store", "Store", "content_type_for_key", "etag_for",
           "open_store"]

#: seconds after which a temp file of another process is an orphan (a write takes milliseconds)
ORPHAN_AGE = 60.0
#: ``.NAME.PID-RANDOM.tmp`` (and ``.NAME.RANDOM.tmp``, before the PID was in the name)
_TEMP_NAME = re.compile(r"^\..+\.(?:(\d+)-)?[0-9a-f]{12}\.tmp$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``head`` tells about an object."""

    key: str
    size: int
    content_type: str


def etag_for(data: bytes) -> str:
    """The strong ETag of an object: quoted MD5 hex, the same as S3's ETag of a single-part upload,
    so a variant has one ETag whether it comes from the derivative store or from the transformer."""
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def content_type_for_key(key: str) -> str:
    """The content type a key implies: its ``f=`` op for a derivative key, else its extension."""
    split = split_canonical("/" + key)
    if split is not None:
        for op in split[1].split(","):
            name, _, value = op.partition("=")
            if name == "f" and value in CONTENT_TYPES:
                return CONTENT_TYPES[value]
    guessed, _ = mimetypes.guess_type(key)
    return guessed or "application/octet-stream"


class Store:
    """The store interface; see the module docstring. Subclasses implement the ``_``-less methods."""

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        raise NotImplementedError

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        raise NotImplementedError

    def head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def remove_orphans(self, min_age: float = ORPHAN_AGE) -> int:
        """Remove what killed writers left behind; the number removed. Nothing for atomic stores."""
        return 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


#: errors that mean "no such object" for a folder store (a name too long cannot exist either)
_ABSENT = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def _reason(err: OSError) -> str:
    """The OS error without the absolute path (never leak the server's layout)."""
    return err.strerror or type(err).__name__


def _too_large(key: str, size: int, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "source over the byte limit", detail=f"{key} is {size} bytes; the limit is {max_bytes} bytes"
    )


class FolderStore(Store):
    """Objects as files under ``root``; writes go to a temp file then ``os.replace`` (atomic)."""

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create store folder {self.root}", detail=_reason(err)) from err
        elif not self.root.is_dir():
            raise StoreError(f"store folder {self.root} does not exist")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_source_key(key).split("/"))

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                if max_bytes is None:
                    return fh.read()
                data = fh.read(max_bytes + 1)
        except OSError as err:
            if err.errno in _ABSENT:
                return None
            raise StoreError(f"cannot read {key} from {self.describe()}", detail=_reason(err)) from err
        if len(data) > max_bytes:
            raise _too_large(key, path.stat().st_size, max_bytes)
        return data

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {key} to {self.describe()}", detail=_reason(err)) from err

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except OSError as err:
            if err.errno in _ABSENT:
                return None
            raise StoreError(f"cannot stat {key} in {self.describe()}", detail=_reason(err)) from err
        if not path.is_file():
            return None
        return ObjectInfo(key, st.st_size, content_type_for_key(key))

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith("."):
                    continue  # temp files of in-progress writes
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key

    def describe(self) -> str:
        return f"folder {self.root}"

    def remove_orphans(self, min_age: float = ORPHAN_AGE) -> int:
        """Remove temp files of writes that never finished: older than ``min_age`` seconds and not
        this process's (see the module docstring). Safe while other processes write."""
        own, now, removed = str(os.getpid()), time.time(), 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                match = _TEMP_NAME.match(name)
                if match is None or match.group(1) == own:
                    continue
                path = os.path.join(dirpath, name)
                try:
                    if now - os.stat(path).st_mtime < min_age:
                        continue  # maybe another process's write in progress
                    os.unlink(path)
                except OSError:  # already gone (another process cleaned up) or not ours to remove
                    continue
                removed += 1
        return removed


class S3Store(Store):
    """Objects in ``s3://bucket/prefix`` through :mod:`edgeproof.s3` (this thread's client, its retries,
    timeouts and error boundary: every S3 failure is a StoreError naming the bucket and key)."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        where = s3.parse_s3_url(f"s3://{bucket}/{prefix.strip('/')}")
        self.bucket = where.bucket
        self.prefix = where.prefix

    def _key(self, key: str) -> str:
        key = validate_source_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        body = s3.open_object(self.bucket, self._key(key), missing_ok=True)
        if body is None:
            return None
        with body:
            if max_bytes is not None and body.size > max_bytes:
                raise _too_large(key, body.size, max_bytes)
            data = body.read() if max_bytes is None else body.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise _too_large(key, body.size, max_bytes)
        return data

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        s3.put_object(self.bucket, self._key(key), data, content_type=content_type or content_type_for_key(key))

    def head(self, key: str) -> ObjectInfo | None:
        obj = s3.head_object(self.bucket, self._key(key))
        if obj is None:
            return None
        return ObjectInfo(key, obj.size, obj.content_type or content_type_for_key(key))

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        for obj in s3.list_objects(self.bucket, full):
            yield obj.key[strip:]

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def open_store(spec: str | Path, *, create: bool = True) -> Store:
    """``s3://bucket[/prefix]`` → :class:`S3Store`; anything else is a folder path (created if missing)."""
    text = str(spec)
    if s3.is_s3_url(text):
        where = s3.parse_s3_url(text)
        return S3Store(where.bucket, where.key)
    if "://" in text:
        raise StoreError(f"unsupported store {text!r}", detail="use a folder path or s3://bucket/prefix")
    return FolderStore(text, create=create)
