"""Standard logging v2 output: JSON lines and Parquet.

In v2 JSON every value is a string and a missing number is ``"-"``; field names are the W3C names
(``x-edge-location``, ``cs(Host)``…) plus ``timestamp(ms)``, ``DistributionId``, ``c-country``,
``asn`` and others (unknown names are ignored). Parquet columns may be typed or strings; both are
cast to strings and typed by :mod:`edgeproof.analytics.reader_convert`, so the rules are the same everywhere.

Accounting (:mod:`edgeproof.analytics.reader_accounting`): a JSON line is a data line unless it is blank; a
Parquet row is a data line. Bytes that are not UTF-8 in a JSON line are kept as the text ``\\xNN``
(as in tab-separated logs), so the rest of the record still counts.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics.inputs import CutLine
from edgeproof.analytics.reader_accounting import FileStats
from edgeproof.analytics.reader_convert import convert, field_column
from edgeproof.analytics.reader_w3c import _strings

__all__ = ["read_json_lines", "read_parquet"]


def _json_escape(err: UnicodeError) -> tuple[str, int]:
    """Undecodable bytes → ``\\\\xNN``: an escaped backslash in JSON, so the value reads ``\\xNN``."""
    assert isinstance(err, UnicodeDecodeError)
    return "".join(f"\\\\x{b:02x}" for b in err.object[err.start:err.end]), err.end


codecs.register_error("edgeproof-json-bytes", _json_escape)


def _emit(
    rows: list[dict[str, Any]], numbers: list[int], columns: Sequence[str], stats: FileStats,
    lines: list[bytes],
) -> Iterator[pa.RecordBatch]:
    keys: dict[str, str] = {}
    for row in rows:
        for k in row:
            if k not in keys:
                col = field_column(k)
                if col is not None:
                    keys[k] = col
    raw: dict[str, pa.Array] = {}
    for k, col in keys.items():
        if col in raw:
            continue
        vals = [row.get(k) for row in rows]
        raw[col] = _strings([None if v in (None, "-", "") else str(v) for v in vals])
    done = convert(raw, len(rows), columns)
    for idx in done.bad_rows:
        i = int(idx)
        stats.bad(numbers[i], done.reasons.get(i, "bad value"), lines[i] if stats.wants_examples else None)
    stats.requests += done.batch.num_rows
    if done.batch.num_rows:
        yield done.batch


def _lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Physical lines split at ``\n`` (one ``\r`` dropped); the cut line of a damaged stream as is."""
    for block in blocks:
        if isinstance(block, CutLine):
            yield block
            continue
        lines = bytes(block).split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line


def read_json_lines(
    blocks: Iterable[bytes], stats: FileStats, *, columns: Sequence[str], batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Stream typed batches from v2 JSON lines (one object per line), given blocks of whole lines."""
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    raws: list[bytes] = []
    for number, line in enumerate(_lines(blocks), start=1):
        text = line.strip()
        if not text:
            stats.blank_lines += 1
            continue
        stats.lines += 1
        if isinstance(line, CutLine):
            stats.bad(number, line.reason, bytes(line))
            continue
        try:
            obj = json.loads(text.decode("utf-8", "edgeproof-json-bytes"))
        except json.JSONDecodeError as err:
            stats.bad(number, f"not JSON: {err.msg}", line)
            continue
        if not isinstance(obj, dict):
            stats.bad(number, "not a JSON object", line)
            continue
        rows.append(obj)
        numbers.append(number)
        raws.append(line)
        if len(rows) >= batch_rows:
            yield from _emit(rows, numbers, columns, stats, raws)
            rows, numbers, raws = [], [], []
    if rows:
        yield from _emit(rows, numbers, columns, stats, raws)


def read_parquet(
    stream: IO[bytes], stats: FileStats, *, columns: Sequence[str], batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Stream typed batches from a v2 Parquet file (row numbers count from 1 in file order)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(stream)
    except (pa.ArrowInvalid, OSError) as err:
        stats.fail("format", f"not a readable Parquet file: {err}")
        return
    names = {n: field_column(n) for n in pf.schema_arrow.names}
    wanted = [n for n, c in names.items() if c is not None]
    stats.fields = len(pf.schema_arrow.names)
    seen = 0
    chunks = pf.iter_batches(batch_size=batch_rows, columns=wanted)
    while True:
        try:
            chunk = next(chunks, None)
        except (pa.ArrowException, OSError) as err:  # a damaged row group: the rows before it count
            total = pf.metadata.num_rows
            stats.fail("corrupt", f"corrupt Parquet data after row {seen:,}: {err}",
                       unread_lines=total - seen if total > seen else None)
            return
        if chunk is None:
            return
        raw: dict[str, pa.Array] = {}
        for name in chunk.schema.names:
            col = names[name]
            if col is None or col in raw:
                continue
            arr = chunk.column(name)
            if pa.types.is_timestamp(arr.type):
                arr = pc.cast(pc.cast(arr, pa.timestamp("ms")), pa.int64())
                col = "timestamp_ms"
            arr = pc.cast(arr, pa.string())
            raw[col] = pc.if_else(pc.equal(arr, "-"), pa.scalar(None, pa.string()), arr)
        done = convert(raw, chunk.num_rows, columns)
        for idx in done.bad_rows:
            i = int(idx)
            values = "\t".join("-" if a[i].as_py() is None else str(a[i].as_py()) for a in raw.values())
            stats.bad(seen + i + 1, done.reasons.get(i, "bad value"), values.encode() if stats.wants_examples else None)
        seen += chunk.num_rows
        stats.lines += chunk.num_rows
        stats.requests += done.batch.num_rows
        if done.batch.num_rows:
            yield done.batch
