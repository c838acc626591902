"""Log inputs: files, folders, globs and ``s3://bucket/prefix``, opened as (decompressed) byte streams.

- A folder is walked recursively (hidden files and ``.md`` files skipped); a glob is expanded.
- ``s3://bucket/prefix`` is listed through :mod:`edgeproof.s3` (one client per thread,
  ``AWS_ENDPOINT_URL`` honoured, so S3-compatible servers work; a prefix that cannot be listed is a
  :class:`~edgeproof.errors.StoreError`, exit 2; an object that cannot be fetched is a file error of
  that input). With a time range, keys whose name carries CloudFront's ``DIST.YYYY-MM-DD-HH.`` are
  filtered *before* download, so objects outside the range are never fetched. Local files whose
  names carry the same stamp are filtered the same way.
- Compression is detected by content (gzip magic), not by name. A damaged gzip stream keeps every
  byte that inflates, like ``zcat``; :class:`GzipTail` records the damage so the reader can report
  it. Other compressors (bzip2, xz, zstd, zip) and binary data are reported, not read as lines.
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

from edgeproof.analytics.reader_accounting import FileError

from edgeproof import s3
from edgeproof.errors import LogFormatError, StoreError, UsageError

try:  # ISA-L: about twice as fast as zlib at gunzip; same API
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - optional speed-up
    _zlib = zlib  # type: ignore[no-redef]

#: a run of complete lines: bytes, or a zero-copy view of a decompressed chunk
Block = bytes | memoryview

__all__ = [
    "Block", "CutLine", "GzipTail", "LogInput", "Opened", "binary_reason", "expand_inputs", "hour_from_name",
    "keep_freed_buffers", "open_input", "plain_blocks", "split_lines",
]

_STAMP = re.compile(r"\.(\d{4})-(\d{2})-(\d{2})-(\d{2})\.")
_SKIP_SUFFIXES = (".md",)
_STITCH_MAX = 1 << 16  # a partial line longer than this is joined to the next chunk by copying
_RECOVER_PIECE = 1 << 16  # compressed bytes fed at once while re-inflating a damaged gzip member


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


def _expand_s3(url: str, start: datetime | None, end: datetime | None) -> list[LogInput]:
    """The objects under an ``s3://bucket/prefix`` (the prefix verbatim), filtered by name before download."""
    where = s3.parse_s3_url(url)
    return [
        LogInput(f"s3://{where.bucket}/{obj.key}", bucket=where.bucket, key=obj.key, size=obj.size)
        for obj in s3.list_objects(where.bucket, where.key)
        if not obj.key.endswith("/") and _in_range(obj.key, start, end)
    ]


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


class CutLine(bytes):
    """The incomplete line where a damaged stream breaks off: counted as a bad line, never parsed.

    Its bytes may look like a whole record (the cut can fall at the end of a field), but the line did
    not end: parsing it would count a request whose last fields are missing.
    """

    reason: str

    def __new__(cls, data: bytes, reason: str) -> CutLine:
        obj = super().__new__(cls, data)
        obj.reason = reason
        return obj


def _inflate_exactly(d: Any, piece: bytes) -> tuple[Any, bytes, int, str | None]:
    """Feed ``piece`` to the zlib decompressor ``d``, keeping the output of every byte before an error.

    Python's zlib discards a call's whole output when the call fails, so a failing piece is fed again
    in halves from a copy of the state, down to the one byte that fails. Returns the decompressor
    after the last good byte, the output, the bytes of ``piece`` used (up to the member's end, or up
    to the failing byte) and the error (None when there was none).
    """
    outs: list[bytes] = []
    pos, step = 0, len(piece)
    while pos < len(piece):
        trial = d.copy()
        chunk = piece[pos:pos + step]
        try:
            out = trial.decompress(chunk)
        except zlib.error as err:
            if step == 1:
                return d, b"".join(outs), pos, str(err)
            step = (step + 1) // 2
            continue
        outs.append(out)
        d = trial
        if d.eof:
            return d, b"".join(outs), pos + len(chunk) - len(d.unused_data), None
        pos += len(chunk)
    return d, b"".join(outs), pos, None


def _gzip_damage(why: str) -> tuple[str, str]:
    """(kind, message) for a zlib error message."""
    low = why.lower()
    if "data check" in low or "length check" in low or "checksum" in low:
        what = "length" if "length" in low else "CRC-32"
        return "checksum", f"gzip checksum error: the {what} check failed (the lines were kept but may be damaged)"
    return "corrupt", f"corrupt gzip data: {why.split(':', 1)[-1].strip()}"


class GzipTail(io.RawIOBase):
    """A read-only stream over a (possibly multi-member) gzip stream that keeps all that inflates.

    Like ``zcat``, damage does not cost the data before it: every byte that inflates is kept, the
    incomplete line at a break is handed on as a :class:`CutLine`, and ``damage`` lists what
    happened (truncated stream, corrupt deflate data, checksum mismatch, trailing garbage) with the
    compressed bytes that could not be read. Decompression uses ISA-L (``isal``) when installed, else
    zlib; both release the GIL. When either reports an error, the damaged member is inflated again
    with zlib (whose state can be copied) to find the exact byte where the damage starts. After a
    checksum mismatch the next member is still read. With ``prefetch=True`` a background thread
    decompresses ahead (a bounded queue of a few MiB), so decompression and parsing run on two cores.
    """

    def __init__(self, raw: IO[bytes], chunk: int = 1 << 20, *, prefetch: bool = False) -> None:
        self._raw = raw
        self._chunk = chunk
        self._d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf: Block = b""
        self._pos = 0
        self._hold = b""
        self._ready: deque[Block] = deque()
        self._eof = False
        self._done = False
        self._broken: str | None = None  # why the stream stopped early (the partial line is cut)
        self._pending = b""
        self._started = False
        self._in_pos = 0  # compressed offset of the next byte to feed (``_pending`` starts there)
        self._members = 0
        self._member_start = 0
        self._member_out = 0  # bytes the current member has inflated so far
        self.damage: list[FileError] = []
        self._queue: queue.Queue[Block | None] | None = None
        self._stop = threading.Event()
        if prefetch:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._produce, name="gunzip", daemon=True)
            self._thread.start()

    @property
    def error(self) -> str | None:
        """The damage as one readable string (None when the stream was whole)."""
        return "; ".join(str(d) for d in self.damage) or None

    def readable(self) -> bool:
        return True

    def _size(self) -> int | None:
        return _stream_size(self._raw)

    def _stop_at(self, kind: str, message: str, at: int | None) -> None:
        """The stream cannot be read past compressed offset ``at``: record it, end the output."""
        size = self._size()
        unread = size - at if size is not None and at is not None else None
        self.damage.append(FileError(kind, message, unread_bytes=unread or None))
        self._broken = "truncated gzip" if kind == "truncated" else "corrupt gzip"
        self._eof = True

    def _inflate_some(self) -> bytes | None:
        """The next output of the compressed stream (None at its end); records damage."""
        data = self._pending or self._raw.read(self._chunk)
        self._pending = b""
        if not data:
            if self._started:
                return self._at_eof()
            self._eof = True
            return None
        if not self._started:
            self._started = True
            self._members += 1
            self._member_start, self._member_out = self._in_pos, 0
        try:
            out = self._d.decompress(data, 8 * self._chunk)
        except _zlib.error as err:
            return self._recover(str(err))
        self._member_out += len(out)
        if self._d.eof:  # end of one gzip member; more members may follow
            rest = self._d.unused_data
            self._in_pos += len(data) - len(rest)
            self._d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._started = False
            if rest.strip(b"\0"):
                self._pending = rest
            else:  # NUL padding after the last member (seen on some copies): not data
                self._in_pos += len(rest)
        else:
            tail = self._d.unconsumed_tail
            self._in_pos += len(data) - len(tail)
            self._pending = tail
        return out

    def _at_eof(self) -> bytes:
        """The compressed data ended inside a member: keep what inflates, say it is truncated.

        A member that gave nothing at all is inflated again by zlib, which tells a cut header from
        one that is not gzip.
        """
        if self._member_out == 0:
            return self._recover("")
        try:
            out = self._d.flush()
        except _zlib.error:
            out = b""
        self._member_out += len(out)
        self._stop_at("truncated", "truncated gzip: the compressed stream ends before its end marker", None)
        return out

    def _recover(self, why: str) -> bytes:
        """Inflate the damaged member again with zlib, byte-exact, and return what it had not yet given."""
        try:
            self._raw.seek(self._member_start)
        except (OSError, ValueError):  # not seekable: what was given before the failing call is all
            kind, message = _gzip_damage(why)
            self._stop_at(kind, message, self._in_pos)
            return b""
        d: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        skip, pos, kept = self._member_out, self._member_start, []
        error: str | None = None
        while not d.eof:
            piece = self._raw.read(_RECOVER_PIECE)
            if not piece:
                break
            d, out, used, error = _inflate_exactly(d, piece)
            if skip:
                cut = min(skip, len(out))
                out, skip = out[cut:], skip - cut
            kept.append(out)
            pos += used
            if error is not None:
                break
        out = b"".join(kept)
        self._member_out += len(out)
        if error is None and d.eof:  # zlib read the member whole after all: go on after it
            self._resume(pos)
        elif error is None:
            self._stop_at("truncated", "truncated gzip: the compressed stream ends before its end marker", None)
        else:
            kind, message = _gzip_damage(error)
            if kind == "checksum":  # the data was all there; the next member (if any) starts after the trailer
                self.damage.append(FileError(kind, f"{message} (gzip member {self._members})"))
                self._resume(pos + 1 + (4 if "data check" in error else 0))
            elif self._members > 1 and self._member_out == 0:
                self._stop_at("corrupt", f"data after gzip member {self._members - 1} is not gzip (ignored)",
                              self._member_start)
            else:  # a member that gave nothing was not read at all; else the bytes from the damage on
                self._stop_at(kind, message, self._member_start if self._member_out == 0 else pos)
        return out

    def _resume(self, at: int) -> None:
        """Read on from compressed offset ``at`` (the start of the next member, if there is one)."""
        self._raw.seek(at)
        self._in_pos = at
        self._d = _zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._started = False
        rest = self._raw.read(self._chunk)
        if rest.strip(b"\0"):
            self._pending = rest
        else:
            self._eof = True

    def _next_block(self) -> Block | None:
        """The next run of complete lines (None at the end); at a break, the partial line is a CutLine."""
        if self._ready:
            return self._ready.popleft()
        while not self._eof:
            out = self._inflate_some()
            if not out:
                continue
            pieces, self._hold = split_lines(out, self._hold)
            if pieces:
                self._ready.extend(pieces[1:])
                return pieces[0]
        if self._done:
            return None
        self._done = True
        hold, self._hold = self._hold, b""
        if not hold:
            return None
        if self._broken and hold.strip():
            return CutLine(hold, f"incomplete line where the {self._broken} stream breaks off")
        return hold

    def _produce(self) -> None:
        assert self._queue is not None
        try:
            while not self._stop.is_set():
                block = self._next_block()
                self._put(block)
                if block is None:
                    return
        except Exception as err:  # noqa: BLE001 - reported as the file's damage, never lost
            self.damage.append(FileError("corrupt", f"cannot read: {err}"))
            self._put(None)

    def _put(self, item: Block | None) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

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


def _stream_size(raw: IO[bytes]) -> int | None:
    """The size of a seekable stream (its position is left at the end), or None."""
    try:
        raw.seek(0, io.SEEK_END)
        return raw.tell()
    except (OSError, ValueError):
        return None


def _download(inp: LogInput) -> IO[bytes]:
    """The object spooled to memory (or disk past 64 MiB): the reader seeks, an S3 body cannot.

    An object that cannot be fetched (gone since the listing, access denied, endpoint down) is a
    file-level error of this one input, so the reader accounts it and reads the others.
    """
    assert inp.bucket is not None and inp.key is not None
    tmp = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - returned to the caller
    try:
        with s3.open_object(inp.bucket, inp.key) as body:
            shutil.copyfileobj(body, tmp, 1 << 20)
    except StoreError as err:
        tmp.close()
        raise LogFormatError(err.message, detail=err.detail) from err
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


@dataclass
class Opened:
    """An opened log object: its decompressed byte stream, and why it cannot be read, if it cannot."""

    stream: IO[bytes]
    gzip: GzipTail | None
    size: int | None  # bytes on disk / in S3 (compressed)
    problem: tuple[str, str] | None = None  # (FileError kind, message): the bytes are no log we read


#: magic numbers of compressors other than gzip (a log must be decompressed before it is read)
_OTHER_COMPRESSION = (
    (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"), (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def _compression_problem(head: bytes, name: str) -> tuple[str, str] | None:
    named_gz = name.lower().endswith(".gz")
    for magic, what in _OTHER_COMPRESSION:
        if head.startswith(magic) and (what != "bzip2" or head[3:4].isdigit()):
            return ("not_gzip" if named_gz else "format",
                    f"{what}-compressed data{' named .gz' if named_gz else ''}: not supported "
                    "(decompress it, or compress it with gzip)")
    return None


def binary_reason(head: bytes, name: str = "") -> tuple[str, str] | None:
    """(kind, message) when the first bytes of a (decompressed) file are binary data, not text lines.

    Text is printable ASCII, tabs, newlines and UTF-8; NUL bytes are not counted against it, because
    a log with a run of NULs (a crash while writing) still has good lines around them. Random bytes
    are ~11 % control bytes and ~45 % invalid UTF-8; a log with a few damaged lines is far below 30 %.
    """
    sample = head[: 1 << 16].replace(b"\0", b"")
    if len(sample) < 64:
        return None
    control = len(sample) - len(sample.translate(None, _CONTROL))
    invalid = sample.decode("utf-8", "replace").count("\ufffd") - sample.count("\ufffd".encode())
    share = (control + max(0, invalid)) / len(sample)
    if share < 0.3:
        return None
    named_gz = name.lower().endswith(".gz")
    return ("not_gzip" if named_gz else "format",
            f"{'named .gz but not gzip: ' if named_gz else ''}binary data, not a text log "
            f"({share:.0%} of its first {len(sample):,} bytes are not text)")


_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"


def open_input(inp: LogInput, *, prefetch: bool = False, block_bytes: int = 8 << 20) -> Opened:
    """Open ``inp`` as a decompressed binary stream (``gzip`` is set for gzip input).

    Compression is detected by content; data compressed with anything else (bzip2, xz, zstd, zip)
    is a ``problem``, not lines. Raises :class:`~edgeproof.errors.LogFormatError` when the object
    cannot be opened at all.
    """
    try:
        raw: IO[bytes] = _download(inp) if inp.bucket else open(inp.path or inp.name, "rb")  # noqa: SIM115
    except OSError as err:
        raise LogFormatError(f"cannot open {inp.name}", detail=err.strerror or str(err)) from err
    head = raw.read(8)
    size = _stream_size(raw)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        tail = GzipTail(raw, max(1, block_bytes // 8), prefetch=prefetch)
        return Opened(tail, tail, size)  # type: ignore[arg-type]
    return Opened(raw, None, size, _compression_problem(head, inp.name))
