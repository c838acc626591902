"""Standard logging v2 output: JSON lines and Parquet.

In v2 JSON every value is a string and a missing number is ``"-"``; field names are the W3C names
(``x-edge-location``, ``cs(Host)``…) plus ``timestamp(ms)``, ``DistributionId``, ``c-country``,
``asn`` and others (unknown names are ignored). Parquet columns may be typed or strings; both are
cast to strings and typed by :mod:`analytics.reader_convert`, so the rules are the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from analytics.reader_convert import convert, field_column
from analytics.reader_w3c import FileStats

__all__ = ["read_json_lines", "read_parquet"]


def _emit(
    rows: list[dict[str, Any]], numbers: list[int], columns: Sequence[str], stats: FileStats
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
        raw[col] = pa.array([None if v in (None, "-", "") else str(v) for v in vals], pa.string())
    done = convert(raw, len(rows), columns)
    for idx in done.bad_rows:
        stats.bad(numbers[int(idx)], done.reasons.get(int(idx), "bad value"))
    if done.batch.num_rows:
        yield done.batch


def _lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    for block in blocks:
        yield from bytes(block).splitlines()


def read_json_lines(
    blocks: Iterable[bytes], stats: FileStats, *, columns: Sequence[str], batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Stream typed batches from v2 JSON lines (one object per line), given blocks of whole lines."""
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, line in enumerate(_lines(blocks), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            stats.bad(number, f"not JSON: {err.msg if hasattr(err, 'msg') else err}")
            continue
        if not isinstance(obj, dict):
            stats.bad(number, "not a JSON object")
            continue
        rows.append(obj)
        numbers.append(number)
        if len(rows) >= batch_rows:
            yield from _emit(rows, numbers, columns, stats)
            rows, numbers = [], []
    if rows:
        yield from _emit(rows, numbers, columns, stats)


def read_parquet(
    stream: IO[bytes], stats: FileStats, *, columns: Sequence[str], batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Stream typed batches from a v2 Parquet file (row numbers count from 1 in file order)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(stream)
    except (pa.ArrowInvalid, OSError) as err:
        stats.error = f"not a readable Parquet file: {err}"
        stats.bad(None, stats.error)
        return
    names = {n: field_column(n) for n in pf.schema_arrow.names}
    wanted = [n for n, c in names.items() if c is not None]
    stats.fields = len(pf.schema_arrow.names)
    seen = 0
    for chunk in pf.iter_batches(batch_size=batch_rows, columns=wanted):
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
            stats.bad(seen + int(idx) + 1, done.reasons.get(int(idx), "bad value"))
        seen += chunk.num_rows
        if done.batch.num_rows:
            yield done.batch
