"""The one mergeable aggregate over CloudFront log record batches (one pass, bounded memory).

``logs summarize`` (:mod:`edgeproof.analytics.summary`), the weekly report
(:mod:`edgeproof.analytics.report.weekly`) and the rehearsal analysis all count with
:class:`LogAggregate`. There used to be three counters with three sets of labels for the same
dimension (``content-type``/``content_type``, ``overall``/``all``, two hour spellings); they had
started to disagree (the summary matched methods case-sensitively, the classifier does not).

What it keeps: for everything (:attr:`LogAggregate.total`) and for each group of each requested
dimension, a :class:`Counts` — requests by class (hit, miss, every excluded reason, from
:func:`edgeproof.analytics.metrics.classify_arrays`, the one definition), 5xx responses, bytes
(all, served by hits, fetched by misses), the first and last request, and, where asked, latency
sketches (:class:`~edgeproof.analytics.metrics.LatencySketch`) of time-taken and time-to-first-byte
for ``overall`` (every request with a value), ``hit`` and ``miss``; ``cacheable`` is hit ⊕ miss,
derived exactly. Optionally the status codes, a capped table of missed URLs, and the line
accounting of the streams read. Memory depends on the number of distinct groups, never on lines.

Mergeable: :meth:`LogAggregate.merge` adds counts and merges sketches, so aggregating a table in
one go equals aggregating any split of it (by file, process or day) and merging (a property test
holds it to that).

One set of labels: dimensions ``day`` (``2026-11-18``), ``hour`` (``2026-11-18T05:00Z``), ``pop``,
``content_type`` (the media type without parameters: ``text/html; charset=utf-8`` is ``text/html``),
``status``, ``result_type``, ``family`` (:func:`path_family`) and ``bin`` (a time bin of
``bin_seconds``, keyed by its epoch second); :data:`MISSING` (``-``, the logs' own "no value") for a
row without one.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics._arrow import scalar, to_numpy
from edgeproof.analytics.metrics import (
    CLASS_NAMES,
    EXCLUDED_REASONS,
    HIT,
    MISS,
    LatencySketch,
    classify_arrays,
    hit_rate,
)
from edgeproof.analytics.reader_accounting import FileStats

from edgeproof.canonical import split_canonical

__all__ = [
    "DIMENSIONS", "LATENCY_METRICS", "MISSING", "REPORT_DIMENSIONS", "SKETCH_KINDS", "Counts", "LogAggregate",
    "media_type", "path_family",
]

DIMENSIONS: tuple[str, ...] = ("day", "hour", "pop", "content_type", "status", "result_type", "family", "bin")
#: what the weekly report breaks a week down by
REPORT_DIMENSIONS: tuple[str, ...] = ("day", "hour", "pop", "content_type", "family")
#: the label of a row without a value for the dimension (what CloudFront writes for "no value")
MISSING = "-"
HOUR_FORMAT = "%Y-%m-%dT%H:00Z"
DAY_FORMAT = "%Y-%m-%d"
#: (metric name, log column in seconds); sketches hold milliseconds
LATENCY_METRICS: tuple[tuple[str, str], ...] = (("time_taken", "time_taken"), ("ttfb", "time_to_first_byte"))
#: the sketches kept per metric; ``cacheable`` (hit ⊕ miss) is derived by :meth:`Counts.sketch`
SKETCH_KINDS: tuple[str, ...] = ("overall", "hit", "miss")
#: distinct missed URLs kept; past this the rarest half is dropped (counts become lower bounds)
MISSED_URL_CAP = 200_000
MAX_EXAMPLES = 10

_BASE_COLUMNS = ("timestamp", "cs_method", "x_edge_result_type", "sc_status", "sc_bytes", "time_taken",
                 "time_to_first_byte")
_DIM_COLUMN = {"pop": "pop", "content_type": "sc_content_type", "status": "sc_status",
               "result_type": "x_edge_result_type", "family": "cs_uri_stem"}
_MISSED_COLUMNS = ("cs_uri_stem", "cs_uri_query", "sc_content_type")
_NO_TIME = int(np.iinfo(np.int64).min)
_NC = len(CLASS_NAMES)
_BUCKETS = LatencySketch()  # the bucket coder every sketch shares (same parameters)
_HOUR_MS, _DAY_MS = 3_600_000, 86_400_000


@lru_cache(maxsize=65_536)
def path_family(stem: str | None) -> str:
    """A URL's family: its folder and extension, ops segment removed.

    ``/images/sku-00042-1.jpg/w=640,h=0,fit=cover,q=80,f=webp`` and ``/images/sku-7-2.jpg`` are both
    ``/images/*.jpg``; ``/favicon.ico`` is ``/*.ico``; a path without extension keeps its folder.
    """
    if not stem:
        return MISSING
    path = stem
    split = split_canonical(stem)
    if split is not None:
        path = "/" + split[0]
    folder, name = posixpath.split(path)
    ext = posixpath.splitext(name)[1].lower()
    folder = folder.rstrip("/")
    return f"{folder}/*{ext}" if ext else f"{folder}/*"


def media_type(value: str | None) -> str:
    """``text/html; charset=utf-8`` → ``text/html``: one group per media type, whatever its parameters."""
    kind = value.split(";", 1)[0].strip() if value else ""
    return kind or MISSING


# -- one group's counters ------------------------------------------------------------------------

class Counts:
    """Counters of one group (or of everything): requests by class, 5xx, bytes, time span, sketches."""

    __slots__ = ("bytes", "bytes_hit", "bytes_miss", "classes", "errors", "first_ms", "last_ms", "sketches")

    def __init__(self, latency: bool = False) -> None:
        self.classes = np.zeros(_NC, dtype=np.int64)  # indexed like metrics.CLASS_NAMES
        self.errors = 0  # HTTP status >= 500 (any class)
        self.bytes = 0
        self.bytes_hit = 0
        self.bytes_miss = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.sketches: dict[str, LatencySketch] | None = (
            {f"{m}_{k}": LatencySketch() for m, _ in LATENCY_METRICS for k in SKETCH_KINDS} if latency else None)

    @property
    def requests(self) -> int:
        return int(self.classes.sum())

    @property
    def hits(self) -> int:
        return int(self.classes[HIT])

    @property
    def misses(self) -> int:
        return int(self.classes[MISS])

    @property
    def excluded(self) -> int:
        return self.requests - self.hits - self.misses

    @property
    def excluded_by_reason(self) -> dict[str, int]:
        """Every excluded reason (in :data:`~edgeproof.analytics.metrics.EXCLUDED_REASONS` order), zeros too."""
        return {r: int(self.classes[CLASS_NAMES.index(r)]) for r in EXCLUDED_REASONS}

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.hits, self.misses)

    def sketch(self, metric: str, kind: str) -> LatencySketch:
        """The ``metric`` (``time_taken``/``ttfb``) sketch of ``kind`` (``overall``, ``hit``, ``miss``, or
        ``cacheable``: hit ⊕ miss, a new sketch)."""
        if self.sketches is None:
            raise KeyError("this group keeps no latency sketches (see LogAggregate's latency_dims)")
        if kind != "cacheable":
            return self.sketches[f"{metric}_{kind}"]
        return LatencySketch().merge(self.sketches[f"{metric}_hit"]).merge(self.sketches[f"{metric}_miss"])

    def span(self, lo: int | None, hi: int | None) -> None:
        """Widen the first/last request to include ``lo``..``hi`` (epoch ms)."""
        if lo is not None:
            self.first_ms = lo if self.first_ms is None else min(self.first_ms, lo)
        if hi is not None:
            self.last_ms = hi if self.last_ms is None else max(self.last_ms, hi)

    def add(self, other: Counts) -> Counts:
        """Add ``other`` into these counters (sketches merge); returns self."""
        self.classes += other.classes
        self.errors += other.errors
        self.bytes += other.bytes
        self.bytes_hit += other.bytes_hit
        self.bytes_miss += other.bytes_miss
        self.span(other.first_ms, other.last_ms)
        if other.sketches is not None:
            if self.sketches is None:
                raise ValueError("cannot merge latency sketches into counts that keep none")
            for name, sketch in other.sketches.items():
                self.sketches[name].merge(sketch)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The report's row: requests, hits, misses, excluded, errors, bytes (all / hit / miss), hit rate."""
        return {"requests": self.requests, "hits": self.hits, "misses": self.misses, "excluded": self.excluded,
                "errors": self.errors, "bytes": self.bytes, "bytes_hit": self.bytes_hit,
                "bytes_miss": self.bytes_miss, "hit_rate": self.hit_rate}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counts):
            return NotImplemented
        same = (np.array_equal(self.classes, other.classes)
                and (self.errors, self.bytes, self.bytes_hit, self.bytes_miss, self.first_ms, self.last_ms)
                == (other.errors, other.bytes, other.bytes_hit, other.bytes_miss, other.first_ms, other.last_ms))
        if not same or (self.sketches is None) != (other.sketches is None):
            return False
        return self.sketches is None or all(
            _same_sketch(s, other.sketches[k]) for k, s in self.sketches.items())  # type: ignore[index]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Counts(requests={self.requests}, hits={self.hits}, misses={self.misses}, bytes={self.bytes})"


def _same_sketch(a: LatencySketch, b: LatencySketch) -> bool:
    """Equal bucket counts (the sum of values may differ in its last bits with the order of additions)."""
    return (a.n, a.zero) == (b.n, b.zero) and np.array_equal(a.counts, b.counts) and bool(
        np.isclose(a.total, b.total, rtol=1e-9, atol=1e-9))


# -- one batch as arrays ---------------------------------------------------------------------------

@dataclass(slots=True)
class _Rows:
    """One batch's per-row arrays, computed once and shared by the total and every dimension."""

    ms: np.ndarray  # epoch ms, _NO_TIME where missing
    cls: np.ndarray  # class codes into CLASS_NAMES
    is_hit: np.ndarray
    is_miss: np.ndarray
    nbytes: np.ndarray
    status: np.ndarray  # 0 where missing
    latency: dict[str, tuple[np.ndarray, np.ndarray]]  # metric -> (milliseconds, sketch bucket codes)

    @classmethod
    def of(cls, batch: pa.RecordBatch | pa.Table, ms: np.ndarray) -> _Rows:
        codes = classify_arrays(_column(batch, "x_edge_result_type"), _column(batch, "cs_method"))
        latency = {}
        for metric, column in LATENCY_METRICS:
            values = _millis(batch, column)
            latency[metric] = (values, _BUCKETS.buckets(values))
        return cls(ms, codes, codes == HIT, codes == MISS, _ints(batch, "sc_bytes"), _ints(batch, "sc_status"),
                   latency)


def _column(batch: Any, name: str) -> Any:
    return batch.column(name) if name in batch.schema.names else None


def _ints(batch: Any, name: str, null: int = 0) -> np.ndarray:
    col = _column(batch, name)
    return np.full(batch.num_rows, null, dtype=np.int64) if col is None else _int_values(col, null)


def _int_values(col: Any, null: int) -> np.ndarray:
    """An integer column as int64, ``null`` where missing (read from buffers: no pandas import)."""
    if col.null_count:
        col = pc.fill_null(col, scalar(null, col.type))
    return np.asarray(to_numpy(col), dtype=np.int64)


def _millis(batch: Any, name: str) -> np.ndarray:
    """A seconds column in milliseconds (NaN where missing)."""
    col = _column(batch, name)
    if col is None:
        return np.full(batch.num_rows, np.nan)
    return np.asarray(to_numpy(pc.multiply(col, scalar(1000.0, pa.float64()))), dtype=np.float64)


def _epoch_ms(batch: Any) -> np.ndarray:
    col = _column(batch, "timestamp")
    if col is None:
        return np.full(batch.num_rows, _NO_TIME, dtype=np.int64)
    if pa.types.is_timestamp(col.type) and col.type.unit != "ms":
        col = pc.cast(col, pa.timestamp("ms", tz=col.type.tz))
    return _int_values(pc.cast(col, pa.int64()), _NO_TIME)


def _bool_array(mask: np.ndarray) -> pa.Array:
    """A numpy mask as an Arrow boolean array, from its bits (``pa.array`` would import pandas)."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits.tobytes())])


def _strings(batch: Any, name: str) -> pa.Array:
    """A string column with nulls as ``""`` (all ``""`` when the batch lacks it)."""
    col = _column(batch, name)
    if col is None:
        col = pa.nulls(batch.num_rows, pa.string())
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return pc.fill_null(pc.cast(col, pa.string()), scalar("", pa.string()))


# -- group keys --------------------------------------------------------------------------------------

def _time_keys(ms: np.ndarray, unit_ms: int, label: Callable[[int], str]) -> tuple[np.ndarray, list[str]]:
    """Row codes into the distinct time slots of ``unit_ms`` (:data:`MISSING` for rows without a time)."""
    slots = np.where(ms == _NO_TIME, _NO_TIME, ms // unit_ms)
    uniq, codes = np.unique(slots, return_inverse=True)
    return codes.astype(np.int64), [MISSING if u == _NO_TIME else label(int(u)) for u in uniq]


def _value_keys(batch: Any, name: str, label: Callable[[str | None], str]) -> tuple[np.ndarray, list[str]]:
    """Row codes into the labels of a column's values (each label computed once per distinct value)."""
    col = _column(batch, name)
    if col is None:
        return np.zeros(batch.num_rows, dtype=np.int64), [MISSING]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    enc = col.dictionary_encode()
    labels = [label(v) for v in enc.dictionary.to_pylist()] + [MISSING]
    indices = enc.indices
    if indices.null_count:
        indices = pc.fill_null(indices, scalar(len(labels) - 1, indices.type))
    uniq = sorted(set(labels))
    index = {key: i for i, key in enumerate(uniq)}
    remap = np.array([index[key] for key in labels], dtype=np.int64)
    return remap[to_numpy(indices)], uniq


def _bin_label(seconds: float) -> Callable[[int], str]:
    def label(slot: int) -> str:
        start = slot * seconds
        return f"{start:.0f}" if float(start).is_integer() else f"{start:.3f}"
    return label


def _day(slot: int) -> str:
    return datetime.fromtimestamp(slot * 86_400, UTC).strftime(DAY_FORMAT)


def _hour(slot: int) -> str:
    return datetime.fromtimestamp(slot * 3_600, UTC).strftime(HOUR_FORMAT)


# -- the aggregate -------------------------------------------------------------------------------

class LogAggregate:
    """One pass over record batches; see the module docstring.

    ``dims``: the dimensions to break the counts down by (:data:`DIMENSIONS`); ``latency_dims``:
    those of them whose groups also keep latency sketches (the total always does); ``start``/``end``:
    only rows in ``[start, end)`` are counted (the others in ``rows_outside``); ``bin_seconds``: the
    width of the ``bin`` dimension; ``missed_urls``: keep the distinct missed (stem, query, content
    type) with their counts (the weekly report's fragmentation table).
    """

    def __init__(self, *, dims: Sequence[str] = (), latency_dims: Sequence[str] = (),
                 start: datetime | None = None, end: datetime | None = None, bin_seconds: float | None = None,
                 missed_urls: bool = False) -> None:
        unknown = [d for d in (*dims, *latency_dims) if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}: use {', '.join(DIMENSIONS)}")
        if not set(latency_dims) <= set(dims):
            raise ValueError("latency_dims must be among dims")
        if "bin" in dims and not (bin_seconds and bin_seconds > 0):
            raise ValueError("the bin dimension needs bin_seconds > 0")
        self.dims = tuple(dict.fromkeys(dims))
        self.latency_dims = tuple(dict.fromkeys(latency_dims))
        self.start, self.end, self.bin_seconds = start, end, bin_seconds
        self.track_missed = missed_urls
        self.total = Counts(latency=True)
        self.groups: dict[str, dict[str, Counts]] = {d: {} for d in self.dims}
        self.status: Counter[int] = Counter()  # 0 for a row without a status
        self.missed_urls: Counter[tuple[str, str, str]] = Counter()
        self.missed_urls_truncated = False
        self.rows_seen = 0
        self.rows_outside = 0
        self.accounts: list[FileStats] = []  # the line accounting of every file read (add_stream)

    @property
    def columns(self) -> list[str]:
        """The log columns this aggregate reads (pass them to ``read_logs``: a reader parses only those)."""
        names = [*_BASE_COLUMNS, *(_DIM_COLUMN[d] for d in self.dims if d in _DIM_COLUMN)]
        if self.track_missed:
            names += _MISSED_COLUMNS
        return list(dict.fromkeys(names))

    # -- adding --------------------------------------------------------------------------------
    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Count one batch (rows outside ``start``/``end`` are counted in ``rows_outside`` only)."""
        self.rows_seen += batch.num_rows
        if batch.num_rows == 0:
            return
        batch, ms = self._window(batch, _epoch_ms(batch))
        if batch.num_rows == 0:
            return
        rows = _Rows.of(batch, ms)
        self._add_total(rows)
        for dim in self.dims:
            keys, labels = self._keys(dim, batch, rows)
            self._add_groups(dim, keys, labels, rows)
        for value, count in zip(*np.unique(rows.status, return_counts=True), strict=True):
            self.status[int(value)] += int(count)
        if self.track_missed and rows.is_miss.any():
            self._add_missed(batch.filter(_bool_array(rows.is_miss)))

    def add_stream(self, stream: Any) -> None:
        """Count every batch of a :class:`~edgeproof.analytics.reader.LogStream`, then keep its accounting."""
        for batch in stream:
            self.add_batch(batch)
        self.add_accounting(stream)

    def add_accounting(self, stream: Any) -> None:
        """Keep the line accounting of a stream already read (when its batches fed several aggregates)."""
        self.accounts.extend(stream.files)

    def _window(self, batch: Any, ms: np.ndarray) -> tuple[Any, np.ndarray]:
        """The rows inside ``[start, end)`` (rows without a time are outside any bound)."""
        if self.start is None and self.end is None:
            return batch, ms
        keep = ms != _NO_TIME
        if self.start is not None:
            keep &= ms >= int(self.start.timestamp() * 1000)
        if self.end is not None:
            keep &= ms < int(self.end.timestamp() * 1000)
        dropped = int(keep.size - keep.sum())
        if dropped:
            self.rows_outside += dropped
            batch, ms = batch.filter(_bool_array(keep)), ms[keep]
        return batch, ms

    def _add_total(self, rows: _Rows) -> None:
        total = self.total
        total.classes += np.bincount(rows.cls, minlength=_NC)
        total.errors += int((rows.status >= 500).sum())
        total.bytes += int(rows.nbytes.sum())
        total.bytes_hit += int(rows.nbytes[rows.is_hit].sum())
        total.bytes_miss += int(rows.nbytes[rows.is_miss].sum())
        timed = rows.ms[rows.ms != _NO_TIME]
        if timed.size:
            total.span(int(timed.min()), int(timed.max()))
        _add_latency(total, rows, None)

    def _keys(self, dim: str, batch: Any, rows: _Rows) -> tuple[np.ndarray, list[str]]:
        """(row codes, their distinct labels) of one dimension for this batch."""
        if dim == "hour":
            return _time_keys(rows.ms, _HOUR_MS, _hour)
        if dim == "day":
            return _time_keys(rows.ms, _DAY_MS, _day)
        if dim == "bin":
            step = float(self.bin_seconds or 0)
            return _time_keys(rows.ms, round(step * 1000), _bin_label(step))
        label = {"content_type": media_type, "family": path_family}.get(dim, _or_missing)
        return _value_keys(batch, _DIM_COLUMN[dim], label)

    def _add_groups(self, dim: str, keys: np.ndarray, labels: list[str], rows: _Rows) -> None:
        """Add the rows of each group (``keys`` index ``labels``) into that group's counts."""
        k = len(labels)
        classes = np.bincount(keys * _NC + rows.cls, minlength=k * _NC).reshape(k, _NC)
        sums = {name: _sum_by(keys, values, k) for name, values in (
            ("errors", rows.status >= 500), ("bytes", rows.nbytes),
            ("bytes_hit", np.where(rows.is_hit, rows.nbytes, 0)), ("bytes_miss", np.where(rows.is_miss, rows.nbytes, 0)))}
        timed = rows.ms != _NO_TIME
        lo = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(k, _NO_TIME, dtype=np.int64)
        np.minimum.at(lo, keys[timed], rows.ms[timed])
        np.maximum.at(hi, keys[timed], rows.ms[timed])
        latency = dim in self.latency_dims
        target = self.groups[dim]
        cells: list[Counts] = []
        for i, label in enumerate(labels):
            if not classes[i].any():  # a label of no row here (the missing-value label of a column without nulls)
                cells.append(Counts())
                continue
            cell = target.get(label)
            if cell is None:
                cell = target[label] = Counts(latency)
            cell.classes += classes[i]
            for name, values in sums.items():
                setattr(cell, name, getattr(cell, name) + int(values[i]))
            if hi[i] != _NO_TIME:
                cell.span(int(lo[i]), int(hi[i]))
            cells.append(cell)
        if latency:
            order = np.argsort(keys, kind="stable")
            for part in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
                if part.size:
                    _add_latency(cells[int(keys[part[0]])], rows, part)

    def _add_missed(self, missed: Any) -> None:
        table = pa.table({
            "stem": _strings(missed, "cs_uri_stem"),
            "query": _strings(missed, "cs_uri_query"),
            "ctype": _strings(missed, "sc_content_type"),
        }).group_by(["stem", "query", "ctype"]).aggregate([([], "count_all")])
        for stem, query, ctype, count in zip(*(table.column(c).to_pylist() for c in
                                               ("stem", "query", "ctype", "count_all")), strict=True):
            self.missed_urls[(stem, query, ctype)] += int(count)
        self._cap_missed()

    def _cap_missed(self) -> None:
        if len(self.missed_urls) <= MISSED_URL_CAP:
            return
        self.missed_urls = Counter(dict(self.missed_urls.most_common(MISSED_URL_CAP // 2)))
        self.missed_urls_truncated = True

    # -- merging -------------------------------------------------------------------------------
    def merge(self, other: LogAggregate) -> LogAggregate:
        """Add ``other`` (built with the same dimensions) into this aggregate; returns self."""
        mine = (self.dims, self.latency_dims, self.bin_seconds, self.track_missed)
        theirs = (other.dims, other.latency_dims, other.bin_seconds, other.track_missed)
        if mine != theirs:
            raise ValueError(f"cannot merge aggregates of different shapes: {mine} and {theirs}")
        self.total.add(other.total)
        for dim, groups in other.groups.items():
            target = self.groups[dim]
            for label, counts in groups.items():
                if label not in target:
                    target[label] = Counts(dim in self.latency_dims)
                target[label].add(counts)
        self.status.update(other.status)
        self.missed_urls.update(other.missed_urls)
        self.missed_urls_truncated |= other.missed_urls_truncated
        self._cap_missed()
        self.rows_seen += other.rows_seen
        self.rows_outside += other.rows_outside
        self.accounts.extend(other.accounts)
        return self

    # -- reading -------------------------------------------------------------------------------
    @property
    def sketches(self) -> dict[str, LatencySketch]:
        """The total's sketches, ``{metric}_{kind}`` (``time_taken_overall``, ``ttfb_miss`` …)."""
        return self.total.sketches or {}

    @property
    def excluded(self) -> dict[str, int]:
        """The excluded requests by reason, the reasons that occurred only."""
        return {r: n for r, n in self.total.excluded_by_reason.items() if n}

    @property
    def first(self) -> datetime | None:
        return _datetime(self.total.first_ms)

    @property
    def last(self) -> datetime | None:
        return _datetime(self.total.last_ms)

    def group_rows(self, dim: str) -> list[tuple[str, Counts]]:
        """``(key, counts)`` of one dimension, sorted by key."""
        return sorted(self.groups[dim].items(), key=lambda item: item[0])

    @property
    def bad_lines(self) -> int:
        return sum(f.bad_lines for f in self.accounts)

    @property
    def bad_line_examples(self) -> list[str]:
        """The first bad lines over all files read (``file:line: reason``), at most ten."""
        out: list[str] = []
        for f in self.accounts:
            out.extend(f.examples[: MAX_EXAMPLES - len(out)])
        return out

    @property
    def file_errors(self) -> list[str]:
        return [f"{f.name}: {f.error}" for f in self.accounts if f.errors]


def _or_missing(value: str | None) -> str:
    return value or MISSING


def _datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _sum_by(keys: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Exact integer sums of ``values`` per key (``np.add.at``: no float rounding, unlike bincount weights)."""
    out = np.zeros(k, dtype=np.int64)
    np.add.at(out, keys, np.asarray(values, dtype=np.int64))
    return out


def _add_latency(cell: Counts, rows: _Rows, part: np.ndarray | None) -> None:
    """Add the rows ``part`` (all when None) into ``cell``'s overall/hit/miss sketches."""
    sketches = cell.sketches
    if sketches is None:
        return
    is_hit = rows.is_hit if part is None else rows.is_hit[part]
    is_miss = rows.is_miss if part is None else rows.is_miss[part]
    for metric, (values, codes) in rows.latency.items():
        if part is not None:
            values, codes = values[part], codes[part]
        sketches[f"{metric}_overall"].add_buckets(codes, values)
        sketches[f"{metric}_hit"].add_buckets(codes[is_hit], values[is_hit])
        sketches[f"{metric}_miss"].add_buckets(codes[is_miss], values[is_miss])

