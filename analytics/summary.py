"""Summaries of CloudFront logs: requests, hit rate, excluded-by-reason, bytes, latency percentiles.

Built on :mod:`edgeproof.analytics.metrics` (the one definition of result classes, hit rate and the latency
sketch). A :class:`Partial` is the mergeable state: per-file partials are computed independently
(in worker processes with ``jobs > 1``) and merged, so the result does not depend on how files are
split across processes, and memory is bounded (counts and fixed-size sketches only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics._arrow import scalar, string_array, to_numpy
from edgeproof.analytics.inputs import LogInput
from edgeproof.analytics.metrics import EXCLUDED_REASONS, LatencySketch, classify, hit_rate
from edgeproof.analytics.reader import LogStream, read_logs
from edgeproof.analytics.reader_accounting import FileStats, accounting

from edgeproof.errors import UsageError

__all__ = ["BY_CHOICES", "SUMMARY_COLUMNS", "Partial", "summarize"]

CLASSES: tuple[str, ...] = ("hit", "miss", *EXCLUDED_REASONS)
_CODE = {c: i for i, c in enumerate(CLASSES)}
BY_CHOICES: tuple[str, ...] = ("pop", "hour", "day", "content-type", "status", "result-type")
#: the only columns a summary reads (the fast path parses just these)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "timestamp", "pop", "sc_bytes", "cs_method", "sc_status", "x_edge_result_type", "time_taken",
    "time_to_first_byte", "sc_content_type",
)
_LATENCY = (("time_taken", "time_taken"), ("ttfb", "time_to_first_byte"))
#: blocks of lines a summary parses at once: fewer, larger blocks cost less per line (measured 16 vs 8 MiB)
_BLOCK_BYTES = 16 << 20
_GET_HEAD = string_array(["GET", "HEAD"])
_FALSE = scalar(False, pa.bool_())
_ZERO = scalar(0, pa.int64())
_THOUSAND = scalar(1000.0, pa.float64())


class Partial:
    """Mergeable summary state for one slice of logs (optionally with per-group partials)."""

    def __init__(self, by: str | None = None) -> None:
        self.by = by
        self.counts = np.zeros(len(CLASSES), dtype=np.int64)
        self.bytes = 0
        self.sketches = {(m, k): LatencySketch() for m, _ in _LATENCY for k in ("overall", "hit", "miss")}
        self.groups: dict[str, Partial] = {}
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.bad_lines = 0
        self.examples: list[str] = []
        self.files = 0
        self.file_errors: list[str] = []
        self.accounts: list[FileStats] = []  # every file's line accounting

    # -- adding --------------------------------------------------------------------------------
    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        n = batch.num_rows
        if n == 0:
            return
        names = batch.schema.names
        method_ok = pc.fill_null(pc.is_in(batch.column("cs_method"), _GET_HEAD), _FALSE)
        rt = batch.column("x_edge_result_type")
        if isinstance(rt, pa.ChunkedArray):
            rt = rt.combine_chunks()
        enc = rt.dictionary_encode()
        table = np.array([_CODE[classify(v, "GET")] for v in enc.dictionary.to_pylist()] + [_CODE["unknown"]])
        idx = to_numpy(pc.fill_null(enc.indices, scalar(len(enc.dictionary), enc.indices.type)))
        code = np.where(to_numpy(method_ok), table[idx], _CODE["method"])
        sc_bytes = to_numpy(pc.fill_null(batch.column("sc_bytes"), _ZERO))
        lat = {
            m: (to_numpy(pc.multiply(batch.column(col), _THOUSAND))
                if col in names else np.full(n, np.nan))
            for m, col in _LATENCY
        }
        ts = None
        if "timestamp" in names:
            ts = pc.cast(batch.column("timestamp"), pa.int64())
            lo, hi = pc.min_max(ts).values()
            if lo.is_valid:
                self._span(lo.as_py(), hi.as_py())
        self._add_arrays(code, sc_bytes, lat)
        if self.by is not None:
            self._add_groups(batch, code, sc_bytes, lat, ts)

    def _span(self, lo: int, hi: int) -> None:
        self.first_ms = lo if self.first_ms is None else min(self.first_ms, lo)
        self.last_ms = hi if self.last_ms is None else max(self.last_ms, hi)

    def _add_arrays(self, code: np.ndarray, sc_bytes: np.ndarray, lat: dict[str, np.ndarray]) -> None:
        self.counts += np.bincount(code, minlength=len(CLASSES))
        self.bytes += int(np.asarray(sc_bytes, dtype=np.int64).sum())
        is_hit = code == _CODE["hit"]
        is_miss = code == _CODE["miss"]
        for m, values in lat.items():
            overall = self.sketches[(m, "overall")]
            codes = overall.buckets(values)  # the logs are computed once per value
            overall.add_buckets(codes, values)
            self.sketches[(m, "hit")].add_buckets(codes[is_hit], values[is_hit])
            self.sketches[(m, "miss")].add_buckets(codes[is_miss], values[is_miss])

    def _group_keys(self, batch: pa.RecordBatch | pa.Table, ts: pa.Array | None) -> tuple[np.ndarray, list[str]]:
        by = self.by
        if by in ("hour", "day"):
            if ts is None:
                raise UsageError(f"--by {by} needs timestamps")
            unit = 3_600_000 if by == "hour" else 86_400_000
            buckets = to_numpy(pc.fill_null(ts, scalar(-unit, pa.int64()))) // unit
            uniq, inv = np.unique(buckets, return_inverse=True)
            fmt = "%Y-%m-%dT%H:00Z" if by == "hour" else "%Y-%m-%d"
            labels = [
                "-" if u < 0 else datetime.fromtimestamp(int(u) * unit / 1000, tz=UTC).strftime(fmt) for u in uniq
            ]
            return inv, labels
        col = {"pop": "pop", "content-type": "sc_content_type", "status": "sc_status",
               "result-type": "x_edge_result_type"}[by or ""]
        arr = batch.column(col)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        enc = pc.cast(arr, pa.string()).dictionary_encode()
        labels = [str(v) for v in enc.dictionary.to_pylist()] + ["-"]
        missing = scalar(len(enc.dictionary), enc.indices.type)
        return to_numpy(pc.fill_null(enc.indices, missing)), labels

    def _add_groups(self, batch: Any, code: np.ndarray, sc_bytes: np.ndarray, lat: dict[str, np.ndarray],
                    ts: pa.Array | None) -> None:
        keys, labels = self._group_keys(batch, ts)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
        ts_np = to_numpy(pc.fill_null(ts, _ZERO)) if ts is not None else None
        for rows in np.split(order, cuts):
            if rows.size == 0:
                continue
            label = labels[int(keys[rows[0]])]
            part = self.groups.get(label)
            if part is None:
                part = self.groups[label] = Partial()
            part._add_arrays(code[rows], sc_bytes[rows], {m: v[rows] for m, v in lat.items()})
            if ts_np is not None:
                part._span(int(ts_np[rows].min()), int(ts_np[rows].max()))

    def add_stream(self, stream: LogStream) -> None:
        for batch in stream:
            self.add_batch(batch)
        self.bad_lines += stream.bad_lines
        self.examples.extend(stream.bad_line_examples[: 10 - len(self.examples)])
        self.files += len(stream.files)
        self.file_errors.extend(stream.file_errors)
        self.accounts.extend(stream.files)

    # -- merging and output --------------------------------------------------------------------
    def merge(self, other: Partial) -> Partial:
        self.counts += other.counts
        self.bytes += other.bytes
        for key, sketch in other.sketches.items():
            self.sketches[key].merge(sketch)
        for label, part in other.groups.items():
            if label in self.groups:
                self.groups[label].merge(part)
            else:
                self.groups[label] = part
        if other.first_ms is not None and other.last_ms is not None:
            self._span(other.first_ms, other.last_ms)
        self.bad_lines += other.bad_lines
        self.examples.extend(other.examples[: max(0, 10 - len(self.examples))])
        self.files += other.files
        self.file_errors.extend(other.file_errors)
        self.accounts.extend(other.accounts)
        return self

    def core(self) -> dict[str, Any]:
        """The counts, hit rate, bytes and latency of this slice (the per-group record)."""
        c = {name: int(self.counts[i]) for i, name in enumerate(CLASSES)}
        hits, misses = c["hit"], c["miss"]
        rate = hit_rate(hits, misses)
        return {
            "requests": int(self.counts.sum()),
            "cacheable": hits + misses,
            "hits": hits,
            "misses": misses,
            "hit_rate": None if rate is None else round(rate, 6),
            "excluded": {r: c[r] for r in EXCLUDED_REASONS},
            "bytes": self.bytes,
            "latency_ms": {
                m: {k: self.sketches[(m, k)].quantiles() for k in ("overall", "hit", "miss")} for m, _ in _LATENCY
            },
            "first": _iso(self.first_ms),
            "last": _iso(self.last_ms),
        }

    def to_json(self) -> dict[str, Any]:
        out = self.core()
        out["bad_lines"] = self.bad_lines
        out["bad_line_examples"] = list(self.examples)
        out["files"] = self.files
        out["file_errors"] = list(self.file_errors)
        out["lines"] = sum(f.lines for f in self.accounts)
        out["accounting"] = accounting(self.accounts)
        if self.by is not None:
            out["by"] = self.by
            out["groups"] = {label: self.groups[label].core() for label in sorted(self.groups)}
        return out


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _columns(by: str | None) -> list[str]:
    """The columns a summary needs: grouping columns only when grouping by them."""
    optional = {"pop": "pop", "sc_content_type": "content-type", "sc_status": "status"}
    return [c for c in SUMMARY_COLUMNS if c not in optional or optional[c] == by]


def _summarize_one(inp: LogInput, by: str | None, opts: dict[str, Any], threads: int = 1) -> Partial:
    part = Partial(by)
    part.add_stream(LogStream([inp], columns=_columns(by), threads=threads, block_bytes=_BLOCK_BYTES, **opts))
    return part


def _warm_up(by: str | None) -> None:
    """Summarize one in-memory line, so that lazy imports and kernels load once, before forking."""
    from edgeproof.analytics.reader_w3c import _Layout, _parse_block
    from edgeproof.analytics.schema import LEGACY_FIELDS_33
    from edgeproof.analytics.writer import encode_line

    line = encode_line({"timestamp": 0, "x_edge_location": "IAD1", "cs_method": "GET", "sc_status": 200,
                        "x_edge_result_type": "Hit", "time_taken": 0.001, "sc_bytes": 1})
    block = _parse_block((line + "\n").encode(), _Layout(LEGACY_FIELDS_33, False, False), _columns(by))
    part = Partial(by)
    for batch in block.batches:
        part.add_batch(batch)


def _pool_context() -> Any:
    import multiprocessing  # only with several jobs: ~20 ms of imports a sequential summary skips

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def summarize(
    source: Any,
    *,
    by: str | None = None,
    start: Any = None,
    end: Any = None,
    jobs: int | None = 1,
    fmt: str = "auto",
    realtime_fields: Sequence[str] | str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Summarize logs into one JSON-able dict.

    ``source``: paths (files, folders, globs, ``s3://``), a :class:`~edgeproof.analytics.reader.LogStream`,
    a ``pyarrow.Table`` or an iterable of record batches (in :data:`~edgeproof.analytics.schema.LOG_SCHEMA`).
    ``by``: one of :data:`BY_CHOICES` adds ``groups``. ``jobs``: how many cores to use (None: all):
    with several files, that many worker processes (each file is read by one process); with one file,
    gunzip runs in its own thread and ``jobs`` threads parse blocks. ``jobs=1`` is strictly sequential. Keys: ``requests``, ``cacheable``, ``hits``,
    ``misses``, ``hit_rate``, ``excluded`` (by reason), ``bad_lines``, ``bad_line_examples``,
    ``bytes``, ``latency_ms`` ({time_taken, ttfb} × {overall, hit, miss} × {p50, p90, p99, p999}),
    plus ``first``/``last``, ``files``, ``file_errors``, ``lines`` (data lines read), ``accounting``
    (:func:`edgeproof.analytics.reader_accounting.accounting`: every line counted, per file) and ``groups``
    (with ``by``).
    """
    if by is not None and by not in BY_CHOICES:
        raise UsageError(f"unknown --by {by!r}", detail=f"use one of {', '.join(BY_CHOICES)}")
    total = Partial(by)
    if isinstance(source, LogStream):
        total.add_stream(source)
        return total.to_json()
    if isinstance(source, pa.Table | pa.RecordBatch) or (
        isinstance(source, Iterable) and not isinstance(source, str | os.PathLike) and _is_batches(source)
    ):
        batches = source.to_batches() if isinstance(source, pa.Table) else (
            [source] if isinstance(source, pa.RecordBatch) else source)
        for batch in batches:
            total.add_batch(batch)
        return total.to_json()
    stream = read_logs(source, fmt=fmt, realtime_fields=realtime_fields, start=start, end=end, strict=strict,
                       columns=SUMMARY_COLUMNS)
    inputs = stream.inputs
    opts = {"fmt": fmt, "realtime_fields": stream.realtime_fields, "start": stream.start, "end": stream.end,
            "strict": strict}
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(inputs) <= 1:
        for inp in inputs:
            total.merge(_summarize_one(inp, by, opts, threads=jobs))
        return total.to_json()
    context = _pool_context()
    if context.get_start_method() == "fork":
        _warm_up(by)  # forked workers inherit what the first summary loads (pandas via pyarrow: ~0.5 s)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(inputs)), mp_context=context) as pool:
        futures = [pool.submit(_summarize_one, inp, by, opts) for inp in inputs]
        for fut in futures:
            total.merge(fut.result())
    return total.to_json()


def _is_batches(source: Any) -> bool:
    if isinstance(source, list | tuple):
        return bool(source) and all(isinstance(b, pa.RecordBatch) for b in source)
    return not isinstance(source, list | tuple) and hasattr(source, "__next__")
