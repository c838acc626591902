"""Read CloudFront logs, any format, any input, into Arrow record batches of one schema.

>>> stream = read_logs(["logs/", "s3://my-log-bucket/cf/"], start="2024-05-01", end="2024-05-02")
>>> for batch in stream:          # pyarrow.RecordBatch in edgeproof.analytics.schema.LOG_SCHEMA
...     ...
>>> stream.lines, stream.requests, stream.bad_lines, stream.file_errors, stream.files

Formats (``fmt="auto"`` detects per file): ``w3c`` (standard/legacy logs, any historical field set),
``realtime`` (Kinesis TSV records; ``realtime_fields`` names the fields, in AWS's canonical order),
``json`` (standard logging v2 JSON lines) and ``parquet`` (v2 Parquet). Memory is bounded by one
batch per file: nothing is materialised.

Every line is accounted for (:mod:`edgeproof.analytics.reader_accounting`): per file, ``requests + bad_lines ==
lines`` (data lines; ``#`` headers and blank lines are not data). A bad line costs exactly that line
and is kept as ``file:line: reason`` with an escaped excerpt; damage that is not a line (not gzip,
truncated or corrupt gzip, checksum error, a file in no supported format) is a *file error* with the
bytes that could not be read, and every line read before it still counts. The other files are always
read; ``strict=True`` raises :class:`~edgeproof.errors.StrictModeError` at the first damaged file.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics._arrow import scalar
from edgeproof.analytics.inputs import (
    Block,
    CutLine,
    GzipTail,
    LogInput,
    binary_reason,
    expand_inputs,
    open_input,
    plain_blocks,
)
from edgeproof.analytics.reader_accounting import BadLine, FileStats
from edgeproof.analytics.reader_v2 import read_json_lines, read_parquet
from edgeproof.analytics.reader_w3c import REALTIME_FIELDS, parse_header, read_tsv
from edgeproof.analytics.schema import LOG_SCHEMA

from edgeproof.errors import LogFormatError, StrictModeError, UsageError

__all__ = [
    "FORMATS", "REALTIME_FIELDS", "BadLine", "FileStats", "LogStream", "detect_format", "parse_time", "read_logs",
]

FORMATS = ("auto", "w3c", "realtime", "json", "parquet")
_EPOCH = re.compile(r"^\d{9,11}(\.\d+)?$")
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_HEAD = 1 << 16  # bytes of a file's head that decide its format and layout


def _ms_scalar(when: datetime, typ: pa.DataType) -> pa.Scalar:
    """``when`` as a millisecond timestamp scalar (sub-millisecond parts dropped, like ``pa.scalar``)."""
    return scalar((when - _UNIX) // timedelta(milliseconds=1), typ)


def parse_time(value: str | datetime | date | None) -> datetime | None:
    """``2024-05-01``, ``2024-05-01T13:00``, ``2024-05-01 13:00:00Z`` or a datetime → aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip().replace(" ", "T")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return parse_time(datetime.fromisoformat(text))
    except ValueError as err:
        raise UsageError(f"bad time {value!r}", detail="use ISO 8601, e.g. 2024-05-01 or 2024-05-01T13:00Z") from err


def detect_format(head: bytes, name: str = "") -> str:
    """Guess a file's format from its first bytes: ``parquet``, ``json``, ``realtime`` or ``w3c``."""
    if head[:4] == b"PAR1":
        return "parquet"
    header = parse_header(head)
    if header.fields is not None:
        names = {f.lower() for f in header.fields}
        return "w3c" if "date" in names else "realtime"
    votes = [_guess(line) for line in header.samples]  # the first lines vote: one damaged line does not decide
    return max(dict.fromkeys(votes), key=votes.count) if votes else "w3c"


def _guess(line: str) -> str:
    sample = line.lstrip()
    if sample.startswith("{"):
        return "json"
    first = re.split(r"\s", sample, maxsplit=1)[0] if sample else ""
    return "realtime" if _EPOCH.match(first) else "w3c"


class LogStream:
    """An iterable of typed record batches over many log objects, with line-exact accounting.

    Iterate once. After (or during) iteration: ``files`` (one :class:`FileStats` per object), the
    totals ``lines``, ``requests``, ``bad_lines``, ``file_errors``, and the first bad lines over all
    files as ``bad_line_examples`` (``file:line: reason``) and ``bad_line_details`` (with excerpts).
    """

    def __init__(
        self,
        inputs: Sequence[LogInput],
        *,
        fmt: str = "auto",
        realtime_fields: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        strict: bool = False,
        batch_rows: int = 65536,
        columns: Sequence[str] | None = None,
        max_examples: int = 10,
        threads: int = 1,
        block_bytes: int = 8 << 20,
    ) -> None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown log format {fmt!r}", detail=f"use one of {', '.join(FORMATS)}")
        self.inputs = list(inputs)
        self.fmt = fmt
        self.realtime_fields = tuple(realtime_fields) if realtime_fields else None
        self.start = start
        self.end = end
        self.strict = strict
        self.batch_rows = batch_rows
        self.columns = [n for n in LOG_SCHEMA.names if columns is None or n in columns]
        self.max_examples = max_examples
        self.threads = max(1, threads)
        self.block_bytes = block_bytes
        self.files: list[FileStats] = []
        self.schema = pa.schema([LOG_SCHEMA.field(n) for n in self.columns])

    # -- accounting ----------------------------------------------------------------------------
    @property
    def lines(self) -> int:
        """Data lines read (headers and blank lines excluded): ``requests + bad_lines``."""
        return sum(f.lines for f in self.files)

    @property
    def requests(self) -> int:
        """Data lines parsed into requests (before ``start``/``end``; ``rows`` is after)."""
        return sum(f.requests for f in self.files)

    @property
    def bad_lines(self) -> int:
        return sum(f.bad_lines for f in self.files)

    @property
    def bad_line_examples(self) -> list[str]:
        out: list[str] = []
        for f in self.files:
            out.extend(f.examples[: self.max_examples - len(out)])
        return out

    @property
    def bad_line_details(self) -> list[BadLine]:
        out: list[BadLine] = []
        for f in self.files:
            out.extend(f.bad_examples[: self.max_examples - len(out)])
        return out

    @property
    def file_errors(self) -> list[str]:
        """``name: error`` for every file with file-level damage."""
        return [f"{f.name}: {f.error}" for f in self.files if f.errors]

    @property
    def readable(self) -> bool:
        """Whether anything could be read (False when every input was unreadable, or there was none)."""
        return any(f.readable for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    # -- reading -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for inp in self.inputs:
            yield from self.read_one(inp)

    def read_one(self, inp: LogInput) -> Iterator[pa.RecordBatch]:
        """Batches of one log object; its :class:`FileStats` is appended to ``files``."""
        stats = FileStats(inp.name)
        self.files.append(stats)
        try:
            opened = open_input(inp, prefetch=self.threads > 1, block_bytes=self.block_bytes)
        except LogFormatError as err:
            stats.fail("open", err.message + (f": {err.detail}" if err.detail else ""), unread_bytes=inp.size)
            self._finish(stats)
            return
        stream, tail = opened.stream, opened.gzip
        if opened.problem is not None:
            stream.close()
            stats.fail(*opened.problem, unread_bytes=opened.size)
            self._finish(stats)
            return
        need = list(self.columns)
        filtering = self.start is not None or self.end is not None
        if filtering and "timestamp" not in need:
            need.append("timestamp")
        try:
            for batch in self._batches(stream, tail, stats, need, opened.size):
                if filtering:
                    batch = self._in_range(batch)
                if "timestamp" not in self.columns and "timestamp" in batch.schema.names:
                    batch = batch.drop_columns(["timestamp"])
                stats.rows += batch.num_rows
                if batch.num_rows:
                    yield batch
        finally:
            stream.close()
        if tail is not None:
            stats.errors.extend(tail.damage)
        self._finish(stats)

    def _finish(self, stats: FileStats) -> None:
        """Close a file's accounting: a file nothing could be read from is a file error; check --strict."""
        if stats.lines and not stats.requests and not stats.errors:
            fmt = stats.format or "log"
            stats.fail("format", f"not a {fmt} log in a layout we read: none of its {stats.lines:,} data lines "
                                 "could be read")
        if not stats.balanced:  # a bug, but never a silent one
            stats.fail("internal", f"the reader lost count: {stats.requests} requests + {stats.bad_lines} bad "
                                   f"lines != {stats.lines} lines read (please report this)")
        self._check_strict(stats)

    def _batches(
        self, stream: IO[bytes], tail: GzipTail | None, stats: FileStats, need: list[str], size: int | None
    ) -> Iterator[pa.RecordBatch]:
        blocks = tail.blocks() if tail is not None else plain_blocks(stream, self.block_bytes)
        firsts: list[Block] = []  # the head decides the format and layout: at least 64 KiB of it
        for block in blocks:
            firsts.append(block)
            if sum(len(b) for b in firsts) >= _HEAD or isinstance(block, CutLine):
                break
        head = b"".join(bytes(b[:_HEAD]) for b in firsts)[:_HEAD]
        fmt = self.fmt if self.fmt != "auto" else detect_format(head, stats.name)
        stats.format = fmt
        every = itertools.chain(firsts, blocks)
        if fmt == "parquet":
            if tail is not None:
                stats.fail("format", "gzip-compressed Parquet is not supported (gunzip it first)")
                return
            stream.seek(0)
            yield from read_parquet(stream, stats, columns=need, batch_rows=self.batch_rows)
        elif (binary := binary_reason(head, stats.name)) is not None:
            stats.fail(*binary, unread_bytes=size)
        elif fmt == "json":
            yield from read_json_lines(every, stats, columns=need, batch_rows=self.batch_rows)
        else:
            yield from read_tsv(
                every, stats, parse_header(head), columns=need, realtime=fmt == "realtime",
                realtime_fields=self.realtime_fields, threads=self.threads,
            )

    def _in_range(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        ts = batch.column(batch.schema.get_field_index("timestamp"))
        mask = None
        if self.start is not None:
            mask = pc.greater_equal(ts, _ms_scalar(self.start, ts.type))
        if self.end is not None:
            upper = pc.less(ts, _ms_scalar(self.end, ts.type))
            mask = upper if mask is None else pc.and_(mask, upper)
        return batch.filter(pc.fill_null(mask, scalar(False, pa.bool_()))) if mask is not None else batch

    def _check_strict(self, stats: FileStats) -> None:
        if self.strict and stats.bad_lines:
            first = stats.examples[0] if stats.examples else stats.name
            raise StrictModeError(
                f"{stats.bad_lines} bad line(s) in {stats.name} (--strict): {first}",
                detail="; ".join(stats.examples[1:4]) or None,
            )
        if self.strict and stats.errors:
            raise StrictModeError(f"file error in {stats.name} (--strict): {stats.error}")

    def read_all(self) -> pa.Table:
        """Everything as one table (small inputs only: this materialises)."""
        return pa.Table.from_batches(list(self), schema=self.schema)


def read_logs(
    paths: str | Sequence[str] | Any,
    *,
    fmt: str = "auto",
    realtime_fields: Sequence[str] | str | None = None,
    start: str | datetime | date | None = None,
    end: str | datetime | date | None = None,
    strict: bool = False,
    batch_rows: int = 65536,
    columns: Sequence[str] | None = None,
    threads: int = 1,
    block_bytes: int = 8 << 20,
) -> LogStream:
    """A :class:`LogStream` over ``paths`` (files, folders, globs, ``s3://bucket/prefix``).

    ``start``/``end`` (UTC, end exclusive) filter rows, and skip files and S3 keys whose
    ``DIST.YYYY-MM-DD-HH.`` name is outside the range before they are opened or downloaded.
    ``realtime_fields`` is a list or a comma-separated string of real-time field names.
    ``batch_rows`` sizes the batches of JSON and Parquet input (tab-separated input yields one batch
    per block of lines, see ``block_bytes``).
    ``columns`` restricts the schema columns produced (faster). ``threads`` > 1 gunzips in a background
    thread and parses that many blocks at once (bad-line numbers stay exact); ``block_bytes`` is the
    size of those blocks of whole lines. Raises
    :class:`~edgeproof.errors.UsageError` for a path that does not exist.
    """
    if isinstance(realtime_fields, str):
        realtime_fields = [f.strip() for f in realtime_fields.replace(" ", ",").split(",") if f.strip()]
    if realtime_fields:
        unknown = [f for f in realtime_fields if f not in REALTIME_FIELDS]
        if unknown:
            raise UsageError(
                f"unknown real-time field(s): {', '.join(unknown)}",
                detail="known fields, in AWS's canonical order: " + " ".join(REALTIME_FIELDS),
            )
    if columns is not None:
        unknown = [c for c in columns if c not in LOG_SCHEMA.names]
        if unknown:
            raise UsageError(f"unknown column(s): {', '.join(unknown)}")
    t0, t1 = parse_time(start), parse_time(end)
    inputs = expand_inputs(paths, start=t0, end=t1)
    return LogStream(
        inputs, fmt=fmt, realtime_fields=realtime_fields, start=t0, end=t1, strict=strict,
        batch_rows=batch_rows, columns=columns, threads=threads,
        block_bytes=block_bytes,
    )
