"""Log inputs: files, folders, globs and ``s3://bucket/prefix``, opened as (decompressed) byte streams.

- A folder is walked recursively (hidden files and ``.md`` files skipped); a glob is expanded.
- ``s3://bucket/prefix`` is listed with boto3 (``AWS_ENDPOINT_URL`` is honoured, so S3-compatible
  servers work). With a time range, keys whose name carries CloudFront's ``DIST.YYYY-MM-DD-HH.``
  are filtered *before* download, so objects outside the range are never fetched. Local files whose
  names carry the same stamp are filtered the same way.
- Compression is detected by content (gzip magic), not by name. A truncated gzip stream ends the
  file where the damage starts; :class:`GzipTail` records that so the reader can report it.
"""

from __future__ import annotations

import glob
import io
import os
import queue
import re
import shutil
import tempfile
import threading
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from edgeproof.errors import LogFormatError, UsageError

try:  # ISA-L: about twice as fast as zlib at gunzip; same API
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - optional speed-up
    _zlib = zlib  # type: ignore[no-redef]

#: a run of complete lines: bytes, or a zero-copy view of a decompressed chunk
Block = bytes | memoryview

__all__ = [
    "Block", "GzipTail", "LogInput", "expand_inputs", "hour_from_name", "keep_freed_buffers", "open_input",
    "plain_blocks", "split_lines",
]

_STAMP = re.compile(r"\.(\d{4})-(\d{2})-(\d{2})-(\d{2})\.")
_SKIP_SUFFIXES = (".md",)
_STITCH_MAX = 1 << 16  # a partial line longer than this is joined to the next chunk by copying


@dataclass(frozen=True, slots=True)
class LogInput:
    """One log object: a local path or an S3 object (``bucket``/``key``)."""

    name: str  # how it is named in reports: a path or s3://bucket/key
    path: Path | None = None
    bucket: str | None = None
    key: str | None = None
    size: int | None = None


def keep_freed_buffers() -> bool:
    """Ask glibc to recycle freed multi-MiB buffers instead of unmapping them (process-wide; CLI only).

    Every gunzip output and parse block is a few MiB; by default glibc gives each one fresh pages from
    the kernel and unmaps it when freed, so a 1 GB log costs ~0.5 s of page faults (a third of the
    gunzip time). With big buffers kept in the heap they are reused while still mapped. Returns
    False (and changes nothing) where glibc's ``mallopt`` is not available.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked with
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))


def hour_from_name(name: str) -> datetime | None:
    """``E2ABC.2024-05-01-13.a1b2c3.gz`` → 2024-05-01 13:00 UTC; None when the name has no stamp."""
    m = _STAMP.search("." + os.path.basename(name))
    if not m:
        return None
    try:
        return datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), tzinfo=UTC)
    except ValueError:
        return None


def _in_range(name: str, start: datetime | None, end: datetime | None) -> bool:
    hour = hour_from_name(name)
    if hour is None:
        return True
    if start is not None and hour + timedelta(hours=1) <= start:
        return False
    return not (end is not None and hour >= end)


def _s3_client() -> Any:
    import boto3  # lazily: analytics never imports boto3 at module import time

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _expand_s3(url: str, start: datetime | None, end: datetime | None) -> list[LogInput]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise UsageError(f"bad S3 URL {url!r}", detail="expected s3://bucket/prefix")
    client = _s3_client()
    found: list[LogInput] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/") or not _in_range(key, start, end):
                    continue
                found.append(LogInput(f"s3://{bucket}/{key}", bucket=bucket, key=key, size=obj.get("Size")))
    except (BotoCoreError, ClientError) as err:
        raise LogFormatError(f"cannot list {url}", detail=str(err)) from err
    return found


def _wanted_file(p: Path) -> bool:
    return not p.name.startswith(".") and not p.name.lower().endswith(_SKIP_SUFFIXES)


def expand_inputs(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[LogInput]:
    """Every log object named by ``paths`` (files, folders, globs, s3:// prefixes), sorted per argument.

    Raises :class:`~edgeproof.errors.UsageError` when an argument matches nothing that exists.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[LogInput] = []
    for raw in paths:
        text = os.fspath(raw)
        if text.startswith("s3://"):
            out.extend(_expand_s3(text, start, end))
            continue
        p = Path(text)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and _wanted_file(f))
        elif p.is_file():
            files = [p]
        elif glob.has_magic(text):
            files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        else:
            raise UsageError(f"no such log file or folder: {text}")
        out.extend(LogInput(str(f), path=f) for f in files if _in_range(f.name, start, end))
    return out


class GzipTail(io.RawIOBase):
    """A read-only stream over a (possibly multi-member) gzip stream that survives truncation.

    A truncated or corrupt stream reads as EOF after the last complete line before the damage;
    ``error`` then says why. Decompression uses ISA-L (``isal``) when installed, else zlib; both
    release the GIL. With ``prefetch=True`` a background thread decompresses ahead (a bounded queue of
    a few MiB), so decompression and parsing run on two cores.
    """

    def __init__(self, raw: IO[bytes], chunk: int = 1 << 20, *, prefetch: bool = False) -> None:
        self._raw = raw
        self._chunk = chunk
        self._d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf = b""
        self._pos = 0
        self._hold = b""
        self._ready: deque[Block] = deque()
        self._eof = False
        self._pending = b""
        self._started = False
        self.error: str | None = None
        self._queue: queue.Queue[Block | None] | None = None
        self._stop = threading.Event()
        if prefetch:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._produce, name="gunzip", daemon=True)
            self._thread.start()

    def readable(self) -> bool:
        return True

    def _next_block(self) -> Block | None:
        """The next run of complete lines (None at the end); sets ``error`` on damage."""
        if self._ready:
            return self._ready.popleft()
        while not self._eof:
            data = self._pending or self._raw.read(self._chunk)
            self._pending = b""
            if not data:
                self._eof = True
                if self._started:
                    self._damaged("truncated gzip: the compressed stream ends before its end marker")
                    return None
                out, self._hold = self._hold, b""
                return out or None
            try:
                self._started = True
                out = self._d.decompress(data, 8 * self._chunk)
            except _zlib.error as err:
                self._eof = True
                self._damaged(f"corrupt gzip: {err}")
                return None
            self._pending = self._d.unconsumed_tail
            if self._d.eof:  # end of one gzip member; more members may follow
                rest = self._d.unused_data
                self._d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._started = False
                self._pending = rest if rest.strip(b"\0") else b""
            pieces, self._hold = split_lines(out, self._hold)
            if pieces:
                self._ready.extend(pieces[1:])
                return pieces[0]
        return None

    def _produce(self) -> None:
        assert self._queue is not None
        try:
            while not self._stop.is_set():
                block = self._next_block()
                self._put(block)
                if block is None:
                    return
        except Exception as err:  # noqa: BLE001 - reported as the file's error, never lost
            self.error = f"cannot read: {err}"
            self._put(None)

    def _put(self, item: Block | None) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _damaged(self, why: str) -> None:
        # the bytes after the last complete line are not a line: drop them, say so
        if self._hold.strip():
            why += "; its partial last line was dropped"
        self.error = why
        self._hold = b""

    def blocks(self) -> Iterator[Block]:
        """The decompressed data as blocks of complete lines (the last may lack its newline)."""
        while True:
            block = self._queue.get() if self._queue is not None else self._next_block()
            if block is None:
                return
            yield block

    def readinto(self, b: Any) -> int:
        if self._pos >= len(self._buf):
            block = self._queue.get() if self._queue is not None else self._next_block()
            if block is None:
                if self._queue is not None:
                    self._queue.put(None)  # stay at EOF for later reads
                return 0
            self._buf, self._pos = block, 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._stop.set()
        self._raw.close()
        super().close()


def _download(inp: LogInput) -> IO[bytes]:
    from botocore.exceptions import BotoCoreError, ClientError

    tmp = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - returned to the caller
    try:
        body = _s3_client().get_object(Bucket=inp.bucket, Key=inp.key)["Body"]
        shutil.copyfileobj(body, tmp, 1 << 20)
    except (BotoCoreError, ClientError) as err:
        tmp.close()
        raise LogFormatError(f"cannot download {inp.name}", detail=str(err)) from err
    tmp.seek(0)
    return tmp  # type: ignore[return-value]


def split_lines(out: bytes, hold: bytes) -> tuple[list[Block], bytes]:
    """Cut ``hold + out`` at its last newline: ``([blocks of complete lines], new hold)``.

    The bulk is a zero-copy view of ``out``. A carried-over partial line (``hold``) is completed by
    the first line of ``out`` and returned as its own small block first, so the multi-MiB chunk is
    never copied just to prepend one line; a very long ``hold`` is joined with one copy instead.
    """
    last = out.rfind(b"\n")
    if last < 0:
        return [], hold + out
    view = memoryview(out)
    if not hold:
        return [view[: last + 1]], bytes(view[last + 1 :])
    if len(hold) > _STITCH_MAX:
        return [hold + view[: last + 1]], bytes(view[last + 1 :])
    first = out.find(b"\n")
    blocks: list[Block] = [hold + view[: first + 1]]
    if last > first:
        blocks.append(view[first + 1 : last + 1])
    return blocks, bytes(view[last + 1 :])


def plain_blocks(stream: IO[bytes], size: int = 8 << 20) -> Iterator[Block]:
    """Blocks of complete lines from an uncompressed stream (the last may lack its newline)."""
    hold = b""
    while True:
        data = stream.read(size)
        if not data:
            if hold:
                yield hold
            return
        pieces, hold = split_lines(data, hold)
        yield from pieces


def open_input(
    inp: LogInput, *, prefetch: bool = False, block_bytes: int = 8 << 20
) -> tuple[IO[bytes], GzipTail | None]:
    """Open ``inp`` as a decompressed binary stream; the second item is set for gzip input.

    Raises :class:`~edgeproof.errors.LogFormatError` when the object cannot be opened at all.
    """
    try:
        raw: IO[bytes] = _download(inp) if inp.bucket else open(inp.path or inp.name, "rb")  # noqa: SIM115
    except OSError as err:
        raise LogFormatError(f"cannot open {inp.name}", detail=err.strerror or str(err)) from err
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        tail = GzipTail(raw, max(1, block_bytes // 8), prefetch=prefetch)
        return tail, tail  # type: ignore[return-value]
    return raw, None
