"""The recorder: one Parquet row per scheduled request, written in bounded memory.

Each Locust worker process writes its own part, ``OUT/records/part-<host>-<pid>-<run>.parquet``
(``<run>``: the test's start time in ms, shared by all workers of one test), in row
groups of ``row_group`` rows (the buffer never holds more). :func:`read_records` reads every part of a
run as one table (the distributed merge); :func:`merge_parts` writes them into one file.

Columns (:data:`RECORD_SCHEMA`): ``intended_start``/``actual_start`` (UTC, µs), ``latency_ms`` (from the
actual start), ``latency_corrected_ms`` (from the intended start: coordinated-omission corrected),
``status`` (0 = no response), ``bytes``, ``x_cache``, ``pop`` (``X-Amz-Cf-Pop``), ``url``, ``role``,
``sku``, ``promoted``, ``phase``, ``lane``, ``late``, ``dropped`` (never sent: too late or pool full),
``error``. Dropped rows have null latencies and actual start.

Needs only pyarrow (no Locust, no boto3).
"""

from __future__ import annotations

import collections
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edgeproof.errors import ConfigError

__all__ = ["RECORD_SCHEMA", "Recorder", "merge_parts", "per_bin", "read_records", "record_parts", "warm_up"]

RECORD_SCHEMA = pa.schema([
    pa.field("intended_start", pa.timestamp("us", tz="UTC")),
    pa.field("actual_start", pa.timestamp("us", tz="UTC")),
    pa.field("latency_ms", pa.float64()),
    pa.field("latency_corrected_ms", pa.float64()),
    pa.field("status", pa.int32()),
    pa.field("bytes", pa.int64()),
    pa.field("x_cache", pa.string()),
    pa.field("pop", pa.string()),
    pa.field("url", pa.string()),
    pa.field("role", pa.string()),
    pa.field("sku", pa.int32()),
    pa.field("promoted", pa.bool_()),
    pa.field("phase", pa.string()),
    pa.field("lane", pa.int32()),
    pa.field("late", pa.bool_()),
    pa.field("dropped", pa.bool_()),
    pa.field("error", pa.string()),
])
_NAMES = RECORD_SCHEMA.names
_TS = RECORD_SCHEMA.field("intended_start").type
_US = 1_000_000
_append = list.append
_consume = collections.deque  # deque(iterator, 0): runs an iterator to its end, keeping nothing
#: columns with few distinct values get a dictionary page; the others (URLs, times, latencies) are plain:
#: measured ~1.5x faster to write than dictionary-encoding every column, and smaller
_DICTIONARY = ["status", "x_cache", "pop", "role", "phase", "lane", "error"]


class Recorder:
    """Append rows; a row group is written every ``row_group`` rows; :meth:`close` flushes the rest.

    Times are passed as float seconds since the epoch and stored as µs timestamps.
    """

    def __init__(self, out_dir: str | Path, *, row_group: int = 10_000, name: str | None = None,
                 run_id: str = "") -> None:
        self.dir = Path(out_dir) / "records"
        self.dir.mkdir(parents=True, exist_ok=True)
        suffix = f"-{run_id}" if run_id else ""
        self.path = self.dir / (name or f"part-{socket.gethostname()}-{os.getpid()}{suffix}.parquet")
        self.row_group = max(1, row_group)
        # the rows held, one list per column: appending a value allocates no container, so held rows
        # never trigger the garbage collector (a tuple per row did: ~1 µs per row in the generator)
        self._columns: list[list[Any]] = [[] for _ in _NAMES]
        self._held = 0
        warm_up()
        self._writer = pq.ParquetWriter(self.path, RECORD_SCHEMA, compression="zstd", use_dictionary=_DICTIONARY)
        self.rows = 0
        self.closed = False

    def add(self, *, intended: float, actual: float | None, latency_ms: float | None,
            corrected_ms: float | None, status: int, nbytes: int, x_cache: str | None, pop: str | None,
            url: str, role: str, sku: int, promoted: bool, phase: str, lane: int, late: bool,
            dropped: bool, error: str | None) -> None:
        """One row by name (see :meth:`add_row` for the positional fast path)."""
        self.add_row((intended, actual, latency_ms, corrected_ms, status, nbytes, x_cache, pop, url, role, sku,
                      promoted, phase, lane, late, dropped, error))

    def add_row(self, row: tuple) -> None:
        """One row as a tuple in :data:`RECORD_SCHEMA` order (times as float epoch seconds)."""
        _consume(map(_append, self._columns, row), 0)  # column i gets row[i] (zip's pairing, in C)
        self.rows += 1
        self._held += 1
        if self._held >= self.row_group:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        columns = self._columns
        self._columns, self._held = [[] for _ in _NAMES], 0
        self._writer.write_table(columns_table(columns))

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self._writer.close()
        self.closed = True


def columns_table(columns: list[list[Any]]) -> pa.Table:
    """Columns of rows (:data:`RECORD_SCHEMA` order, times as float epoch seconds) → a table.

    Times × 10⁶ truncated to µs, like ``int(t * 1_000_000)``; :func:`rows_table_reference` is the plain
    per-row form it must equal (``tests/test_loadtest_model.py``)."""
    arrays = []
    for i, (values, field) in enumerate(zip(columns, RECORD_SCHEMA, strict=True)):
        if i < 2:
            seconds = pa.array(values, pa.float64())
            arrays.append(pc.cast(pc.multiply(seconds, float(_US)), pa.int64(), safe=False).cast(_TS))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=RECORD_SCHEMA)


def rows_table_reference(rows: list[tuple]) -> pa.Table:
    """The plain form of :func:`columns_table`: rows (tuples) transposed, then one column at a time."""
    cols = list(zip(*rows, strict=True))
    arrays = []
    for i, name in enumerate(_NAMES):
        values: Any = cols[i]
        if i < 2:  # float seconds → µs timestamps
            arrays.append(pa.array([None if v is None else int(v * _US) for v in values], pa.int64()).cast(_TS))
        else:
            arrays.append(pa.array(values, type=RECORD_SCHEMA.field(name).type))
    return pa.Table.from_arrays(arrays, schema=RECORD_SCHEMA)


_warm = False


def warm_up() -> None:
    """Pay pyarrow's one-off costs now (the first ParquetWriter of a process, ~0.3 s; the first
    tz-aware timestamp array, ~1 s of tz data) instead of at the first flush in the middle of a run."""
    global _warm
    if _warm:
        return
    table = pa.Table.from_pylist([], schema=RECORD_SCHEMA)
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, RECORD_SCHEMA, compression="zstd", use_dictionary=_DICTIONARY) as writer:
        writer.write_table(table)
    columns_table([[v] for v in (0.0, None, None, None, 0, 0, None, None, "", "", 0, False, "", 0, False, False, None)])
    _warm = True


def record_parts(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Part files under run folders, ``records/`` folders or given directly."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_file():
            out.append(p)
        elif (p / "records").is_dir():
            out += sorted((p / "records").glob("*.parquet"))
        elif p.is_dir():
            out += sorted(p.glob("*.parquet"))
        else:
            raise ConfigError(f"no recorder rows at {p}", detail="give a run folder (--out) or Parquet part files")
    return out


def read_records(paths: str | Path | Iterable[str | Path], columns: list[str] | None = None) -> pa.Table:
    """Every part of a run (or several runs) as one table in :data:`RECORD_SCHEMA`."""
    parts = record_parts(paths)
    if not parts:
        raise ConfigError("no recorder part files found", detail=", ".join(str(p) for p in parts) or str(paths))
    tables = []
    for part in parts:
        try:
            tables.append(pq.read_table(part, columns=columns, schema=RECORD_SCHEMA))
        except (OSError, pa.ArrowException) as err:
            raise ConfigError(f"cannot read recorder part {part}: {err}") from err
    return pa.concat_tables(tables)


def merge_parts(paths: str | Path | Iterable[str | Path], dest: str | Path) -> int:
    """Write all parts into one Parquet file, one part at a time (bounded memory); returns rows."""
    rows = 0
    with pq.ParquetWriter(dest, RECORD_SCHEMA, compression="zstd") as writer:
        for part in record_parts(paths):
            pf = pq.ParquetFile(part)
            for i in range(pf.num_row_groups):
                t = pf.read_row_group(i)
                writer.write_table(t)
                rows += t.num_rows
    return rows


def per_bin(table: pa.Table, origin_us: int, width_s: float) -> dict[int, dict[str, Any]]:
    """Recorder rows binned by intended start (``width_s`` seconds from ``origin_us``, µs since the
    epoch): per bin the scheduled and dropped arrivals, hits and misses (by ``X-Cache``), the hit rate,
    p50/p99 of the corrected latency and p99 of the raw latency over the requests that were sent.
    The one per-bin computation of the rehearsal's timeline and of the run comparison."""
    import numpy as np
    import pyarrow.compute as pc
    from edgeproof.analytics.metrics import exact_quantiles, hit_rate
    from edgeproof.loadtest.gates import row_classes

    start = table.column("intended_start").to_numpy(zero_copy_only=False).astype("datetime64[us]").astype(np.int64)
    bins = np.floor((start - origin_us) / (width_s * 1e6)).astype(np.int64)
    classes = np.array(row_classes(table.column("x_cache").to_pylist()), dtype=object)
    dropped = pc.fill_null(table.column("dropped"), False).to_numpy(zero_copy_only=False).astype(bool)
    corr = table.column("latency_corrected_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    raw = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    out: dict[int, dict[str, Any]] = {}
    for b in np.unique(bins):
        m = bins == b
        sent = m & ~dropped
        q_corr = exact_quantiles(corr[sent], [0.5, 0.99])
        hits, misses = int((classes[sent] == "hit").sum()), int((classes[sent] == "miss").sum())
        out[int(b)] = {"scheduled": int(m.sum()), "dropped": int((m & dropped).sum()), "hits": hits,
                       "misses": misses, "hit_rate": hit_rate(hits, misses), "p50_corrected": q_corr["p50"],
                       "p99_corrected": q_corr["p99"], "p99_raw": exact_quantiles(raw[sent], [0.99])["p99"]}
    return out
