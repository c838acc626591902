"""Summaries of CloudFront logs: requests, hit rate, excluded-by-reason, bytes, latency percentiles.

A summary is the JSON face of the one aggregate, :class:`edgeproof.analytics.aggregate.LogAggregate`
(which counts with :mod:`edgeproof.analytics.metrics`, the one definition of result classes, hit rate
and the latency sketch). Per-file aggregates are computed independently (in worker processes with
``jobs > 1``) and merged, so the result does not depend on how files are split across processes,
and memory is bounded (counts and fixed-size sketches only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

import pyarrow as pa
from edgeproof.analytics.aggregate import LATENCY_METRICS, SKETCH_KINDS, Counts, LogAggregate
from edgeproof.analytics.inputs import LogInput
from edgeproof.analytics.reader import LogStream, read_logs
from edgeproof.analytics.reader_accounting import AccountingJSON, accounting

from edgeproof.errors import UsageError

__all__ = ["BY_CHOICES", "LogSummary", "SummaryRecord", "summarize", "summary_aggregate", "summary_json"]

#: ``--by`` as the CLI spells it (``content-type``); the groups are the aggregate's dimensions
#: (``content_type``), and either spelling is accepted
BY_CHOICES: tuple[str, ...] = ("pop", "hour", "day", "content-type", "status", "result-type")
#: blocks of lines a summary parses at once: fewer, larger blocks cost less per line (measured 16 vs 8 MiB)
_BLOCK_BYTES = 16 << 20


class SummaryRecord(TypedDict):
    """The counts, hit rate, bytes and latency of one slice of logs: the whole, or one group.

    Typed because it crosses packages (the CLI, the rehearsal's analysis); the keys are the JSON's, in
    its order. ``latency_ms`` is {time_taken, ttfb} × {overall, hit, miss} × {p50, p90, p99, p999}.
    """

    requests: int
    cacheable: int
    hits: int
    misses: int
    hit_rate: float | None
    excluded: dict[str, int]
    bytes: int
    latency_ms: dict[str, dict[str, dict[str, float | None]]]
    first: str | None
    last: str | None


class LogSummary(SummaryRecord):
    """What :func:`summarize` returns (``logs summarize --json`` prints it): the whole's record, what was
    read (every line accounted for) and, with ``by``, one record per group."""

    bad_lines: int
    bad_line_examples: list[str]
    files: int
    file_errors: list[str]
    lines: int
    accounting: AccountingJSON
    by: NotRequired[str]
    groups: NotRequired[dict[str, SummaryRecord]]


def _dimension(by: str | None) -> str | None:
    """``content-type`` → ``content_type``; a usage error for anything but :data:`BY_CHOICES`."""
    if by is None:
        return None
    dim = by.replace("-", "_")
    if dim not in {c.replace("-", "_") for c in BY_CHOICES}:
        raise UsageError(f"unknown --by {by!r}", detail=f"use one of {', '.join(BY_CHOICES)}")
    return dim


def summary_aggregate(by: str | None = None, **options: Any) -> LogAggregate:
    """The aggregate a summary by ``by`` counts into (groups keep latency sketches); ``options`` go
    to :class:`LogAggregate` (``start``, ``end``)."""
    dim = _dimension(by)
    dims = () if dim is None else (dim,)
    return LogAggregate(dims=dims, latency_dims=dims, **options)


def _record(counts: Counts) -> SummaryRecord:
    """The counts, hit rate, bytes and latency of one slice (the whole, or one group)."""
    rate = counts.hit_rate
    return {
        "requests": counts.requests,
        "cacheable": counts.hits + counts.misses,
        "hits": counts.hits,
        "misses": counts.misses,
        "hit_rate": None if rate is None else round(rate, 6),
        "excluded": counts.excluded_by_reason,
        "bytes": counts.bytes,
        "latency_ms": {m: {k: counts.sketch(m, k).quantiles() for k in SKETCH_KINDS} for m, _ in LATENCY_METRICS},
        "first": _iso(counts.first_ms),
        "last": _iso(counts.last_ms),
    }


def summary_json(agg: LogAggregate, by: str | None = None) -> LogSummary:
    """The summary dict of an aggregate (see :func:`summarize` for its keys); ``by`` picks the groups."""
    out: LogSummary = {
        **_record(agg.total),
        "bad_lines": agg.bad_lines,
        "bad_line_examples": agg.bad_line_examples,
        "files": len(agg.accounts),
        "file_errors": agg.file_errors,
        "lines": sum(f.lines for f in agg.accounts),
        "accounting": accounting(agg.accounts),
    }
    dim = _dimension(by)
    if dim is not None:
        out["by"] = dim
        out["groups"] = {label: _record(counts) for label, counts in agg.group_rows(dim)}
    return out


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _summarize_one(inp: LogInput, by: str | None, opts: dict[str, Any], threads: int = 1) -> LogAggregate:
    part = summary_aggregate(by)
    part.add_stream(LogStream([inp], columns=part.columns, threads=threads, block_bytes=_BLOCK_BYTES, **opts))
    return part


def _warm_up(by: str | None) -> None:
    """Summarize one in-memory line, so that lazy imports and kernels load once, before forking."""
    from edgeproof.analytics.reader_w3c import _Layout, _parse_block
    from edgeproof.analytics.schema import LEGACY_FIELDS_33
    from edgeproof.analytics.writer import encode_line

    line = encode_line({"timestamp": 0, "x_edge_location": "IAD1", "cs_method": "GET", "sc_status": 200,
                        "x_edge_result_type": "Hit", "time_taken": 0.001, "sc_bytes": 1})
    part = summary_aggregate(by)
    block = _parse_block((line + "\n").encode(), _Layout(LEGACY_FIELDS_33, False, False), part.columns)
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
) -> LogSummary:
    """Summarize logs into one JSON-able dict (a :class:`LogSummary`).

    ``source``: paths (files, folders, globs, ``s3://``), a :class:`~edgeproof.analytics.reader.LogStream`,
    a ``pyarrow.Table`` or an iterable of record batches (in :data:`~edgeproof.analytics.schema.LOG_SCHEMA`).
    ``by``: one of :data:`BY_CHOICES` adds ``groups`` (keyed by the aggregate's labels: hours as
    ``2026-11-18T05:00Z``, days as ``2026-11-18``, content types without parameters, ``-`` for none).
    ``jobs``: how many cores to use (None: all): with several files, that many worker processes (each
    file is read by one process); with one file, gunzip runs in its own thread and ``jobs`` threads
    parse blocks. ``jobs=1`` is strictly sequential. Keys: ``requests``, ``cacheable``, ``hits``, ``misses``, ``hit_rate``, ``excluded`` (by reason), ``bad_lines``, ``bad_line_examples``,
    ``bytes``, ``latency_ms`` ({time_taken, ttfb} × {overall, hit, miss} × {p50, p90, p99, p999}),
    plus ``first``/``last``, ``files``, ``file_errors``, ``lines`` (data lines read), ``accounting``
    (:func:`edgeproof.analytics.reader_accounting.accounting`: every line counted, per file) and ``groups``
    (with ``by``).
    """
    total = summary_aggregate(by)
    if isinstance(source, LogStream):
        total.add_stream(source)
        return summary_json(total, by)
    if isinstance(source, pa.Table | pa.RecordBatch) or (
        isinstance(source, Iterable) and not isinstance(source, str | os.PathLike) and _is_batches(source)
    ):
        batches = source.to_batches() if isinstance(source, pa.Table) else (
            [source] if isinstance(source, pa.RecordBatch) else source)
        for batch in batches:
            total.add_batch(batch)
        return summary_json(total, by)
    stream = read_logs(source, fmt=fmt, realtime_fields=realtime_fields, start=start, end=end, strict=strict,
                       columns=total.columns)
    inputs = stream.inputs
    opts = {"fmt": fmt, "realtime_fields": stream.realtime_fields, "start": stream.start, "end": stream.end,
            "strict": strict}
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(inputs) <= 1:
        for inp in inputs:
            total.merge(_summarize_one(inp, by, opts, threads=jobs))
        return summary_json(total, by)
    context = _pool_context()
    if context.get_start_method() == "fork":
        _warm_up(by)  # forked workers inherit what the first summary loads (pandas via pyarrow: ~0.5 s)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(inputs)), mp_context=context) as pool:
        futures = [pool.submit(_summarize_one, inp, by, opts) for inp in inputs]
        for fut in futures:
            total.merge(fut.result())
    return summary_json(total, by)


def _is_batches(source: Any) -> bool:
    if isinstance(source, list | tuple):
        return bool(source) and all(isinstance(b, pa.RecordBatch) for b in source)
    return not isinstance(source, list | tuple) and hasattr(source, "__next__")
