"""The edge's ``/metrics``: its counters in Prometheus text format, written by ``prometheus_client``.

The counters stay where the request path keeps them (plain ints on :class:`~edgeproof.edge.edge.Pop`,
the origin group, the connections); :class:`EdgeCollector` reads them at scrape time through
:meth:`Edge.stats` and yields metric families, the pattern of ``origin/metrics.py``. Written by hand,
the text had ``# TYPE`` on its first family only, no ``# HELP``, and label values pasted in raw, so
a backend URL or a strategy file path with a ``"`` broke the whole scrape; ``prometheus_client``
gives every family its HELP and TYPE, escapes label values (``\\``, ``"``, newline) and prints
every digit of a value.

Families (all prefixed ``edge_``): ``requests_total``, ``hits_total``, ``misses_total``,
``collapsed_total``, ``pop_results_total{pop,result}``, ``pop_detailed_results_total{pop,detailed}``,
``pop_cache_bytes{pop}``, ``pop_cache_objects{pop}``, ``origin_requests_total{member}``,
``origin_failovers_total``, ``origin_retries_total``, ``origin_inflight``,
``backend_requests_total{backend}``, ``viewer_connections``, ``viewer_timeouts_total{kind}``
(``header``: answered 408; ``idle``: idle connection closed), ``drain_aborted_total``,
``log_lines_total{log}`` (``standard``, ``realtime``), ``ready``, and
``info{strategy,tier,distribution_id,primary}`` (always 1: what this edge runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from .edge import Edge

__all__ = ["CONTENT_TYPE", "EdgeCollector", "render"]

#: the classic text format (0.0.4) that every Prometheus version scrapes
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
_P = "edge_"


def _counter(name: str, help_text: str, value: float | None = None, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    if labels:
        return CounterMetricFamily(_P + name, help_text, labels=labels)
    return CounterMetricFamily(_P + name, help_text, value=value or 0)


def _gauge(name: str, help_text: str, value: float | None = None, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    if labels:
        return GaugeMetricFamily(_P + name, help_text, labels=labels)
    return GaugeMetricFamily(_P + name, help_text, value=value or 0)


class EdgeCollector(Collector):
    """The metric families of one :class:`Edge`, read at scrape time."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    def collect(self) -> Iterator[Metric]:
        edge = self.edge
        stats = edge.stats()
        origin = stats["origin"]
        yield _counter("requests_total", "Viewer requests answered (one log line each).", stats["requests"])
        yield _counter("hits_total", "Hit and RefreshHit results (GET/HEAD), as edgeproof.analytics.metrics counts them.",
                       stats["hits"])
        yield _counter("misses_total", "Miss results (GET/HEAD), as edgeproof.analytics.metrics counts them.", stats["misses"])
        yield _counter("collapsed_total", "Requests that waited for another request's fetch (request collapsing).",
                       stats["collapsed"])
        results = _counter("pop_results_total", "Requests by POP and x-edge-result-type.", labels=("pop", "result"))
        detailed = _counter("pop_detailed_results_total", "Requests by POP and x-edge-detailed-result-type.",
                            labels=("pop", "detailed"))
        cache_bytes = _gauge("pop_cache_bytes", "Bytes held by each POP cache.", labels=("pop",))
        cache_objects = _gauge("pop_cache_objects", "Objects held by each POP cache.", labels=("pop",))
        for pop, p in stats["pops"].items():
            for result, n in sorted(p["results"].items()):
                results.add_metric([pop, result], n)
            for kind, n in sorted(p["detailed"].items()):
                detailed.add_metric([pop, kind], n)
            cache_bytes.add_metric([pop], p["cache_bytes"])
            cache_objects.add_metric([pop], p["cache_objects"])
        yield from (results, detailed, cache_bytes, cache_objects)
        members = _counter("origin_requests_total", "Requests sent to the origin group, by member.",
                           labels=("member",))
        for member in ("primary", "secondary"):
            members.add_metric([member], origin[member])
        yield members
        yield _counter("origin_failovers_total", "Failovers from the primary to the secondary.", origin["failovers"])
        yield _counter("origin_retries_total", "Origin attempts after a connection failure or a timeout.",
                       origin["retries"])
        yield _gauge("origin_inflight", "Origin fetches in flight.", origin["inflight"])
        backends = _counter("backend_requests_total", "Requests sent to each transformer backend.",
                            labels=("backend",))
        for url, n in sorted(origin["backends"].items()):
            backends.add_metric([url], n)
        yield backends
        conns = edge.conns
        yield _gauge("viewer_connections", "Open viewer connections.", len(conns.open))
        timeouts = _counter("viewer_timeouts_total",
                            "Viewer connections timed out: header (request not whole in time, answered 408) "
                            "or idle (keep-alive connection closed).", labels=("kind",))
        timeouts.add_metric(["header"], conns.header_timeouts)
        timeouts.add_metric(["idle"], conns.idle_closed)
        yield timeouts
        yield _counter("drain_aborted_total", "Requests answered 503 AbortedOrigin at the drain limit.", edge.aborted)
        lines = _counter("log_lines_total", "Log lines written to disk, by log.", labels=("log",))
        lines.add_metric(["standard"], stats["logs"]["written"])
        lines.add_metric(["realtime"], stats["logs"]["realtime_written"])
        yield lines
        yield _gauge("ready", "1 while the edge accepts viewer requests, 0 while starting or draining.",
                     1 if edge.ready else 0)
        info = _gauge("info", "What this edge runs (always 1).",
                      labels=("strategy", "tier", "distribution_id", "primary"))
        config = edge.config
        info.add_metric([config.strategy, config.tier, config.distribution_id, edge.group.primary_spec or ""], 1)
        yield info


def render(edge: Edge) -> bytes:
    """The Prometheus text exposition of ``edge``'s counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(edge))
    return generate_latest(registry)
