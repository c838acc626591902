"""The edge's counters as a typed result (``Edge.stats()``, served by the admin API as ``GET /stats``).

Typed because it crosses packages: the rehearsal polls it (edgeproof.rehearsal.embedded samples,
edgeproof.rehearsal.analysis), telemetry reads it in-process. The keys are the JSON's, in its order.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["EdgeStats", "LogSinkStats", "OriginGroupStats", "PopStats", "TierStats", "ViewerStats"]


class PopStats(TypedDict):
    """One POP: its requests, hit rate (edgeproof.analytics.metrics classes) and its cache."""

    requests: int
    hits: int
    misses: int
    hit_rate: float | None
    results: dict[str, int]  # by x-edge-result-type
    detailed: dict[str, int]  # by x-edge-detailed-result-type
    sc_bytes: int
    cache_objects: int
    cache_bytes: int
    evictions: int


class TierStats(TypedDict):
    """One regional edge cache or the Origin Shield."""

    kind: str
    objects: int
    bytes: int
    evictions: int


class OriginGroupStats(TypedDict):
    """The origin group's fetches: primary (derivative store) and secondary (transformers)."""

    primary: int
    secondary: int
    failovers: int
    retries: int
    inflight: int
    backends: dict[str, int]  # requests per transformer backend URL


class ViewerStats(TypedDict):
    """The viewer connections: open now, closed by the header timeout or the idle timeout."""

    open: int
    header_timeouts: int
    idle_closed: int


class LogSinkStats(TypedDict):
    """The log sink: lines pending and written, the last upload errors."""

    pending: int
    written: int
    errors: list[str]
    realtime_written: int


class EdgeStats(TypedDict):
    """What :meth:`Edge.stats` returns: the whole edge, per POP and per shared tier."""

    requests: int
    hits: int
    misses: int
    excluded: int
    results: dict[str, int]
    detailed: dict[str, int]
    hit_rate: float | None
    collapsed: int
    origin_requests: int
    origin: OriginGroupStats
    pops: dict[str, PopStats]
    tiers: dict[str, TierStats]
    viewers: ViewerStats
    drain_aborted: int
    logs: LogSinkStats
