"""The one aggregate and the vectorised classification, each against a plainly correct model.

* :func:`edgeproof.analytics.metrics.classify_arrays` equals :func:`classify` row by row (hypothesis:
  known, unknown, mis-cased and padded result types and methods, nulls, dictionary and chunked arrays).
* :class:`edgeproof.analytics.aggregate.LogAggregate` equals a row-by-row model (classify each row,
  count it into its groups, add its latency to plain sketches) on random tables, on the real samples
  in ``../shared/samples/cloudfront`` and on synthetic logs.
* Mergeable: aggregating a table in one go equals aggregating any split of it and merging.
"""

from __future__ import annotations

import math
import pickle
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from edgeproof.analytics.aggregate import (
    DIMENSIONS,
    MISSING,
    REPORT_DIMENSIONS,
    LogAggregate,
    media_type,
    path_family,
)
from edgeproof.analytics.metrics import CLASS_NAMES, LatencySketch, classify, classify_arrays
from edgeproof.analytics.reader import read_logs
from edgeproof.analytics.schema import LOG_SCHEMA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KNOWN_TYPES = ["Hit", "RefreshHit", "Miss", "OriginShieldHit", "Error", "Redirect", "LimitExceeded",
               "CapacityExceeded", "LambdaGeneratedResponse", "FunctionGeneratedResponse"]
_result_types = st.one_of(
    st.none(), st.sampled_from(KNOWN_TYPES),
    st.sampled_from(KNOWN_TYPES).map(str.lower), st.sampled_from(KNOWN_TYPES).map(str.upper),
    st.sampled_from(KNOWN_TYPES).map(lambda t: f" {t}\t"), st.just(""), st.text(max_size=12),
)
_methods = st.one_of(
    st.none(), st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    st.sampled_from(["get", "Head", "hEaD", " GET", "GET "]), st.just(""), st.text(max_size=8),
)


def _arrow(values: list[str | None], how: str) -> Any:
    arr = pa.array(values, type=pa.string())
    if how == "dictionary":
        return arr.dictionary_encode()
    if how == "chunked":
        cut = len(values) // 2
        return pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], type=pa.string())
    return arr


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(_result_types, _methods), max_size=80),
       how=st.sampled_from(["plain", "dictionary", "chunked"]))
def test_classify_arrays_equals_classify_row_by_row(rows: list[tuple[str | None, str | None]], how: str) -> None:
    types, methods = [r for r, _ in rows], [m for _, m in rows]
    codes = classify_arrays(_arrow(types, how), _arrow(methods, how))
    assert codes.dtype == np.int8 and codes.shape == (len(rows),)
    assert [CLASS_NAMES[c] for c in codes] == [classify(r, m) for r, m in rows]


@pytest.mark.parametrize("rt", ["Hit", " Miss", "hit", "Error", "Nonsense", ""])
@pytest.mark.parametrize("method", ["GET", "head", "POST", " GET"])
def test_classify_arrays_on_uniform_columns(rt: str, method: str) -> None:
    """A column with one value in every row takes a shortcut; it must give what classify gives."""
    n = 1000
    for tail in ([rt], [rt + "x"]):  # uniform, then not uniform in its last row only
        types = [rt] * (n - 1) + tail
        codes = classify_arrays(pa.array(types), pa.array([method] * n))
        assert [CLASS_NAMES[c] for c in codes] == [classify(r, method) for r in types]


def test_classify_arrays_absent_columns_and_lengths() -> None:
    rt = pa.array(["Hit", "Miss", None])
    assert [CLASS_NAMES[c] for c in classify_arrays(rt, None)] == ["method"] * 3  # no method: not GET/HEAD
    assert [CLASS_NAMES[c] for c in classify_arrays(None, pa.array(["GET", "post", None]))] == [
        classify(None, "GET"), classify(None, "post"), classify(None, None)]
    assert classify_arrays(pa.array([], pa.string()), pa.array([], pa.string())).size == 0
    with pytest.raises(ValueError):
        classify_arrays(rt, pa.array(["GET"]))


# -- the row-by-row model of the aggregate --------------------------------------------------------

class _Cell:
    """One group in the model: plain counters and sketches fed one value at a time."""

    def __init__(self, latency: bool) -> None:
        self.classes: Counter[str] = Counter()
        self.errors = self.bytes = self.bytes_hit = self.bytes_miss = 0
        self.first: int | None = None
        self.last: int | None = None
        self.sketches = ({f"{m}_{k}": LatencySketch() for m in ("time_taken", "ttfb") for k in ("overall", "hit", "miss")}
                         if latency else None)

    def add(self, row: dict[str, Any], cls: str, ms: int | None) -> None:
        self.classes[cls] += 1
        status, nbytes = row.get("sc_status"), row.get("sc_bytes") or 0
        self.errors += status is not None and status >= 500
        self.bytes += nbytes
        self.bytes_hit += nbytes if cls == "hit" else 0
        self.bytes_miss += nbytes if cls == "miss" else 0
        if ms is not None:
            self.first = ms if self.first is None else min(self.first, ms)
            self.last = ms if self.last is None else max(self.last, ms)
        if self.sketches is None:
            return
        for metric, column in (("time_taken", "time_taken"), ("ttfb", "time_to_first_byte")):
            value = row.get(column)
            if value is None or math.isnan(value):
                continue
            self.sketches[f"{metric}_overall"].add(value * 1000.0)
            if cls in ("hit", "miss"):
                self.sketches[f"{metric}_{cls}"].add(value * 1000.0)


def _label(dim: str, row: dict[str, Any], ms: int | None, bin_seconds: float | None) -> str:
    if dim in ("hour", "day", "bin"):
        if ms is None:
            return MISSING
        if dim == "bin":
            start = (ms // round((bin_seconds or 1) * 1000)) * (bin_seconds or 1)
            return f"{start:.0f}" if float(start).is_integer() else f"{start:.3f}"
        at = datetime.fromtimestamp(ms / 1000, UTC)
        return at.strftime("%Y-%m-%dT%H:00Z" if dim == "hour" else "%Y-%m-%d")
    if dim == "content_type":
        return media_type(row.get("sc_content_type"))
    if dim == "family":
        return path_family(row.get("cs_uri_stem"))
    column = {"pop": "pop", "status": "sc_status", "result_type": "x_edge_result_type"}[dim]
    value = row.get(column)
    return MISSING if value is None or value == "" else str(value)


def _model(rows: list[dict[str, Any]], dims: tuple[str, ...], latency_dims: tuple[str, ...],
           bin_seconds: float | None = None, start: datetime | None = None,
           end: datetime | None = None) -> dict[str, Any]:
    total = _Cell(True)
    groups: dict[str, dict[str, _Cell]] = {d: {} for d in dims}
    status: Counter[int] = Counter()
    missed: Counter[tuple[str, str, str]] = Counter()
    outside = 0
    for row in rows:
        ts = row.get("timestamp")
        ms = None if ts is None else int(ts.timestamp() * 1000)
        if (start or end) and (ts is None or (start and ts < start) or (end and ts >= end)):
            outside += 1
            continue
        cls = classify(row.get("x_edge_result_type"), row.get("cs_method"))
        total.add(row, cls, ms)
        for dim in dims:
            label = _label(dim, row, ms, bin_seconds)
            groups[dim].setdefault(label, _Cell(dim in latency_dims)).add(row, cls, ms)
        status[row.get("sc_status") or 0] += 1
        if cls == "miss":
            missed[(row.get("cs_uri_stem") or "", row.get("cs_uri_query") or "", row.get("sc_content_type") or "")] += 1
    return {"total": total, "groups": groups, "status": status, "missed": missed, "outside": outside}


def _assert_cell(counts: Any, cell: _Cell) -> None:
    assert {n: int(v) for n, v in zip(CLASS_NAMES, counts.classes, strict=True) if v} == dict(cell.classes)
    assert (counts.errors, counts.bytes, counts.bytes_hit, counts.bytes_miss) == (
        cell.errors, cell.bytes, cell.bytes_hit, cell.bytes_miss)
    assert (counts.first_ms, counts.last_ms) == (cell.first, cell.last)
    assert (counts.sketches is None) == (cell.sketches is None)
    for name, sketch in (cell.sketches or {}).items():
        mine = counts.sketches[name]
        assert (mine.n, mine.zero, mine.counts.tolist()) == (sketch.n, sketch.zero, sketch.counts.tolist()), name
        assert mine.total == pytest.approx(sketch.total)


def _assert_equals_model(agg: LogAggregate, model: dict[str, Any]) -> None:
    _assert_cell(agg.total, model["total"])
    for dim, cells in model["groups"].items():
        assert sorted(agg.groups[dim]) == sorted(cells), dim
        for label, cell in cells.items():
            _assert_cell(agg.groups[dim][label], cell)
    assert dict(agg.status) == dict(model["status"])
    if agg.track_missed:
        assert dict(agg.missed_urls) == dict(model["missed"])
    assert agg.rows_outside == model["outside"]


# -- random tables -----------------------------------------------------------------------------------

T0 = datetime(2026, 11, 17, 22, tzinfo=UTC)
_rows = st.lists(st.fixed_dictionaries({
    "timestamp": st.none() | st.integers(0, 3 * 86_400_000).map(lambda ms: T0 + timedelta(milliseconds=ms)),
    "pop": st.sampled_from([None, "", "IAD", "FRA", "NRT"]),
    "cs_method": _methods,
    "x_edge_result_type": _result_types,
    "sc_status": st.sampled_from([None, 200, 206, 304, 403, 404, 500, 502, 503]),
    "sc_bytes": st.none() | st.integers(0, 10**10),
    "time_taken": st.none() | st.sampled_from([0.0, 0.001, 0.5]) | st.floats(0, 120, allow_nan=False),
    "time_to_first_byte": st.none() | st.floats(0, 60, allow_nan=False),
    "sc_content_type": st.sampled_from([None, "", "image/webp", "image/jpeg", "text/html; charset=utf-8",
                                        "text/html", " application/json ;x=1"]),
    "cs_uri_stem": st.sampled_from([None, "/images/sku-1.jpg", "/images/sku-2.jpg/w=640,h=0,fit=cover,q=80,f=webp",
                                    "/favicon.ico", "/api/x"]),
    "cs_uri_query": st.sampled_from([None, "w=640", "w=640&utm_source=x"]),
}), max_size=60)
_COLUMNS = ["timestamp", "pop", "cs_method", "x_edge_result_type", "sc_status", "sc_bytes", "time_taken",
            "time_to_first_byte", "sc_content_type", "cs_uri_stem", "cs_uri_query"]
_SCHEMA = pa.schema([LOG_SCHEMA.field(n) for n in _COLUMNS])
SHAPES = {
    "summary": {},
    "by every dimension, latency everywhere": {"dims": DIMENSIONS, "latency_dims": DIMENSIONS, "bin_seconds": 7.5},
    "weekly": {"dims": REPORT_DIMENSIONS, "missed_urls": True},
    "rehearsal spike window": {"dims": ("pop", "bin"), "latency_dims": ("bin",), "bin_seconds": 2.0,
                               "start": T0 + timedelta(hours=5), "end": T0 + timedelta(days=1, hours=3)},
}


def _aggregate(table: pa.Table, shape: dict[str, Any]) -> LogAggregate:
    agg = LogAggregate(**shape)
    for batch in table.to_batches(max_chunksize=17):  # several batches even for small tables
        agg.add_batch(batch)
    return agg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows, shape=st.sampled_from(sorted(SHAPES)), cuts=st.lists(st.integers(0, 60), max_size=4))
def test_aggregate_equals_model_and_any_split_merged(rows: list[dict[str, Any]], shape: str,
                                                     cuts: list[int]) -> None:
    options = SHAPES[shape]
    table = pa.Table.from_pylist(rows, schema=_SCHEMA)
    whole = _aggregate(table, options)
    model_options = {k: options[k] for k in ("bin_seconds", "start", "end") if k in options}
    _assert_equals_model(whole, _model(rows, tuple(options.get("dims", ())), tuple(options.get("latency_dims", ())),
                                       **model_options))
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    parts = [_aggregate(table.slice(a, b - a), options) for a, b in zip(bounds, bounds[1:], strict=False)]
    merged = LogAggregate(**options)
    for part in reversed(parts):  # merge order does not matter either
        merged.merge(pickle.loads(pickle.dumps(part)))  # as a worker process hands it back
    assert merged.total == whole.total
    assert merged.groups == whole.groups
    assert (merged.status, merged.missed_urls, merged.rows_seen, merged.rows_outside) == (
        whole.status, whole.missed_urls, whole.rows_seen, whole.rows_outside)


def test_merge_refuses_another_shape() -> None:
    with pytest.raises(ValueError, match="different shapes"):
        LogAggregate(dims=("pop",)).merge(LogAggregate(dims=("hour",)))
    with pytest.raises(ValueError):
        LogAggregate(dims=("bin",))  # a bin needs its width
    with pytest.raises(ValueError):
        LogAggregate(dims=("pop",), latency_dims=("hour",))


def test_labels_are_the_one_set() -> None:
    at = datetime(2026, 11, 18, 5, 59, 59, tzinfo=UTC)
    rows = [{"timestamp": at, "pop": "IAD", "cs_method": "GET", "x_edge_result_type": "Hit", "sc_status": 200,
             "sc_content_type": "text/html; charset=utf-8", "time_taken": 0.01},
            {"timestamp": None, "pop": None, "cs_method": "GET", "x_edge_result_type": "Miss"}]
    agg = _aggregate(pa.Table.from_pylist(rows, schema=_SCHEMA),
                     {"dims": ("hour", "day", "pop", "content_type"), "latency_dims": ("hour",)})
    assert sorted(agg.groups["hour"]) == ["-", "2026-11-18T05:00Z"]
    assert sorted(agg.groups["day"]) == ["-", "2026-11-18"]
    assert sorted(agg.groups["content_type"]) == ["-", "text/html"]
    assert set(agg.sketches) == {f"{m}_{k}" for m in ("time_taken", "ttfb") for k in ("overall", "hit", "miss")}
    cacheable = agg.groups["hour"]["2026-11-18T05:00Z"].sketch("time_taken", "cacheable")
    assert cacheable.n == 1 and cacheable.quantile(0.5) == pytest.approx(10.0, rel=0.01)


# -- real and synthetic logs -------------------------------------------------------------------------

def _log_rows(paths: list[str], columns: list[str]) -> tuple[list[pa.RecordBatch], list[dict[str, Any]]]:
    batches = list(read_logs(paths, columns=columns))
    rows = [r for b in batches for r in b.to_pylist()]
    return batches, rows


def _sample_files(samples_dir: Path) -> list[Path]:
    return sorted(p for p in samples_dir.iterdir() if p.is_file() and p.name != "README.md")


def test_real_samples_equal_the_model_and_merge(samples_dir: Path) -> None:
    shape = SHAPES["by every dimension, latency everywhere"] | {"missed_urls": True}
    every = LogAggregate(**shape)
    all_rows: list[dict[str, Any]] = []
    files = _sample_files(samples_dir)
    assert len(files) >= 10
    for path in files:
        one = LogAggregate(**shape)
        batches, rows = _log_rows([str(path)], one.columns)
        for batch in batches:
            one.add_batch(batch)
        _assert_equals_model(one, _model(rows, DIMENSIONS, DIMENSIONS, bin_seconds=7.5))
        every.merge(one)
        all_rows += rows
    _assert_equals_model(every, _model(all_rows, DIMENSIONS, DIMENSIONS, bin_seconds=7.5))
    assert every.total.requests == len(all_rows) > 0


def test_synthetic_logs_equal_the_model(tmp_path: Path) -> None:
    from edgeproof.analytics.synthetic import generate_logs

    generate_logs(tmp_path, "2026-11-16T22:00:00Z", hours=4, requests_per_hour=400, hit_rate=0.9, seed=3)
    agg = LogAggregate(dims=REPORT_DIMENSIONS, latency_dims=("pop",), missed_urls=True)
    batches, rows = _log_rows([str(tmp_path)], agg.columns)
    for batch in batches:
        agg.add_batch(batch)
    _assert_equals_model(agg, _model(rows, REPORT_DIMENSIONS, ("pop",)))
    assert len(agg.groups["day"]) == 2 and agg.missed_urls


def test_summary_is_the_aggregate(samples_dir: Path) -> None:
    """``summarize`` reports the aggregate's numbers (and counts a lower-case ``get`` as classify does)."""
    from edgeproof.analytics.summary import summarize

    path = samples_dir / "awsdocs-cloudfront-devguide__AccessLogs-2023-03-31_33field.log"
    table = read_logs([str(path)]).read_all()
    lower = table.set_column(table.schema.get_field_index("cs_method"), "cs_method",
                             pa.array([m.lower() if m else m for m in table["cs_method"].to_pylist()]))
    rows = table.to_pylist()
    model = _model(rows, ("content_type",), ("content_type",))
    for source in (table, lower):
        result = summarize(source, by="content-type")
        assert result["by"] == "content_type"
        assert (result["hits"], result["misses"]) == (model["total"].classes["hit"], model["total"].classes["miss"])
        assert {k for k, v in result["excluded"].items() if v} == set(model["total"].classes) - {"hit", "miss"}
        assert sorted(result["groups"]) == sorted(model["groups"]["content_type"])


def test_rehearsal_edge_numbers_come_from_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rehearsal's edge numbers (overall, spike, per POP, per bin) and a real distribution's what-if
    input come from one read of the logs, and equal what separate reads gave."""
    import edgeproof.analytics.reader as reader
    from edgeproof.analytics.replay import COLUMNS
    from edgeproof.analytics.summary import summarize
    from edgeproof.analytics.synthetic import generate_logs
    from edgeproof.rehearsal.analysis import _edge

    generate_logs(tmp_path, "2026-11-16T00:00:00Z", hours=3, requests_per_hour=600, hit_rate=0.9, seed=8)
    logs = [str(tmp_path)]
    t0 = datetime(2026, 11, 16, 0, 20, tzinfo=UTC)
    window = (datetime(2026, 11, 16, 0, 10, tzinfo=UTC), datetime(2026, 11, 16, 2, 30, tzinfo=UTC))
    spike = (600.0, 3600.0)
    reads: list[Any] = []
    real = reader.read_logs
    monkeypatch.setattr(reader, "read_logs", lambda *a, **k: reads.append(k) or real(*a, **k))
    edge, timeline, by_pop, kept = _edge(logs, t0, 5.0, spike, window, COLUMNS)
    assert len(reads) == 1
    monkeypatch.undo()

    overall = summarize(logs, by="pop", start=window[0], end=window[1])
    for key in ("requests", "cacheable", "hits", "misses", "hit_rate", "excluded", "bad_lines", "latency_ms"):
        assert edge[key] == overall[key], key
    a, b = t0 + timedelta(seconds=spike[0]), t0 + timedelta(seconds=spike[1] + 1)
    in_spike = summarize(logs, by="pop", start=a, end=b)
    assert edge["spike"] == {k: in_spike[k] for k in ("requests", "hits", "misses", "hit_rate")}
    assert [p["pop"] for p in by_pop] == sorted(in_spike["groups"])
    assert [p["hits"] for p in by_pop] == [g["hits"] for _, g in sorted(in_spike["groups"].items())]
    assert sum(cell["requests"] for cell in timeline.values()) == overall["requests"]
    again = pa.Table.from_batches(list(real(logs, start=window[0], end=window[1], columns=list(COLUMNS))))
    assert pa.Table.from_batches(kept).equals(again)  # the what-if's input, as its own read gave it
