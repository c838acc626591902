"""Origin metrics in Prometheus text format, summed over every worker process.

Each series is one slot in a shared-memory array (``multiprocessing.RawArray``) made before the
workers fork; each worker writes only its own row and only from its event-loop thread, so there are
no locks, and ``/metrics`` on any worker reports the whole server (the rows are summed on read).

Series (all prefixed ``edgeproof_origin_``):

=========================================  =========  ==============================================
name                                       type       labels
=========================================  =========  ==============================================
requests_total                             counter    status (200, 304, 400, … , other), source
request_duration_seconds                   histogram  (all image requests)
transforms_total                           counter    format
transform_duration_seconds                 histogram  (pyvips time in the worker thread)
transform_failures_total                   counter    reason (unprocessable, bad_request, deadline)
singleflight_joins_total                   counter    requests that shared another's transform
shed_total                                 counter    reason (queue, deadline)
queue_depth                                gauge      transforms waiting for a slot
in_flight                                  gauge      transforms running
store_reads_total                          counter    store (source, derivative), result (hit, miss, error)
store_writes_total                         counter    result (ok, error)
local_cache_hits_total / _misses_total     counter    per-process LRU cache (``--local-cache-mb``)
local_cache_bytes                          gauge      bytes held by the local caches
ready                                      gauge      workers that finished warming up
=========================================  =========  ==============================================

Per worker: ``worker_transforms_total{worker}`` and ``worker_busy{worker}`` (running + queued), to
see how evenly the kernel spreads connections over the workers.

``source`` on requests_total is where the bytes came from: ``local_cache``, ``derivative_store``,
``transform`` (including single-flight joins), or ``none`` for errors.

The text is written by ``prometheus_client`` (:class:`OriginCollector` yields metric families read
from the shared array; the storage stays lock-free), not by hand: it prints every value with all its
digits (a hand-written ``{:g}`` printed 2,000,003 as ``2e+06``, six significant digits, and
``rate()`` went flat past 10^6), escapes label values and help text, and gives every family its
``# HELP`` and ``# TYPE``.
"""

from __future__ import annotations

import bisect
import multiprocessing
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics", "OriginCollector", "STATUSES"]

#: the classic text format (0.0.4) that every Prometheus version scrapes
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATUSES = ("200", "304", "400", "403", "404", "413", "422", "500", "502", "503", "other")
SOURCES = ("local_cache", "derivative_store", "transform", "none")
FORMATS = ("jpeg", "png", "webp", "avif")
_P = "edgeproof_origin_"

# (name, type, help, label name(s), label values) — label values are fixed so slots are fixed.
_Series = tuple[str, str, str, tuple[str, ...], tuple[tuple[str, ...], ...]]


def _product(*values: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = [()]
    for vals in values:
        out = [o + (v,) for o in out for v in vals]
    return tuple(out)


_DEFS: tuple[_Series, ...] = (
    ("requests_total", "counter", "Image requests by status and where the bytes came from.",
     ("status", "source"), _product(STATUSES, SOURCES)),
    ("transforms_total", "counter", "Completed pyvips transforms by output format.", ("format",), _product(FORMATS)),
    ("transform_failures_total", "counter", "Transforms that failed, by reason.", ("reason",),
     _product(("unprocessable", "bad_request", "deadline", "store"))),
    ("singleflight_joins_total", "counter", "Requests that shared a transform already in progress.", (), ((),)),
    ("shed_total", "counter", "Requests answered 503, by reason.", ("reason",), _product(("queue", "deadline"))),
    ("queue_depth", "gauge", "Transforms waiting for a concurrency slot.", (), ((),)),
    ("in_flight", "gauge", "Transforms holding a concurrency slot.", (), ((),)),
    ("store_reads_total", "counter", "Store reads by store and result.", ("store", "result"),
     _product(("source", "derivative"), ("hit", "miss", "error"))),
    ("store_writes_total", "counter", "Derivative writes (after the response) by result.", ("result",),
     _product(("ok", "error"))),
    ("local_cache_hits_total", "counter", "Per-process local cache hits.", (), ((),)),
    ("local_cache_misses_total", "counter", "Per-process local cache misses.", (), ((),)),
    ("local_cache_bytes", "gauge", "Bytes held by the per-process local caches.", (), ((),)),
    ("ready", "gauge", "Worker processes that finished warming up.", (), ((),)),
)
_HISTS = (
    ("request_duration_seconds", "Image request latency, arrival to response."),
    ("transform_duration_seconds", "pyvips transform time (worker thread)."),
)


class Metrics:
    """Fixed series in shared memory; ``worker`` selects this process's row."""

    def __init__(self, workers: int = 1) -> None:
        self._index: dict[tuple[str, tuple[str, ...]], int] = {}
        for name, _t, _h, _l, values in _DEFS:
            for vals in values:
                self._index[(name, vals)] = len(self._index)
        for name, _h in _HISTS:
            for i in range(len(LATENCY_BUCKETS) + 1):
                self._index[(name, (str(i),))] = len(self._index)
            self._index[(name, ("sum",))] = len(self._index)
        self.width = len(self._index)
        self.workers = max(1, workers)
        self._data = multiprocessing.RawArray("d", self.width * self.workers)
        self.worker = 0
        self._registry: CollectorRegistry | None = None

    def _slot(self, name: str, labels: tuple[str, ...]) -> int:
        return self.worker * self.width + self._index[(name, labels)]

    def inc(self, name: str, *labels: str, value: float = 1.0) -> None:
        self._data[self._slot(name, labels)] += value

    def set(self, name: str, *labels: str, value: float) -> None:
        self._data[self._slot(name, labels)] = value

    def observe(self, name: str, seconds: float) -> None:
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        self._data[self._slot(name, (str(i),))] += 1
        self._data[self._slot(name, ("sum",))] += seconds

    def request(self, status: int, source: str, seconds: float) -> None:
        code = str(status) if str(status) in STATUSES else "other"
        self.inc("requests_total", code, source)
        self.observe("request_duration_seconds", seconds)

    def total(self, name: str, *labels: str) -> float:
        """One series summed over all workers."""
        j = self._index[(name, labels)]
        return sum(self._data[w * self.width + j] for w in range(self.workers))

    def render(self) -> str:
        """The Prometheus text exposition of every series, summed over workers."""
        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(OriginCollector(self))
        return generate_latest(self._registry).decode()

    def busy(self, worker: int) -> float:
        """Transforms running or queued in one worker."""
        return self.value(worker, "queue_depth") + self.value(worker, "in_flight")

    def busier_than_others(self, margin: float = 1.0) -> bool:
        """This worker has more than ``margin`` transforms more than the least busy other worker."""
        if self.workers < 2:
            return False
        others = min(self.busy(w) for w in range(self.workers) if w != self.worker)
        return self.busy(self.worker) > others + margin

    def value(self, worker: int, name: str, *labels: str) -> float:
        """One series of one worker."""
        return self._data[worker * self.width + self._index[(name, labels)]]


class OriginCollector(Collector):
    """The metric families of one :class:`Metrics`, read at scrape time from its shared memory."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        for name, kind, help_text, label_names, values in _DEFS:
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(_P + name, help_text, labels=label_names)
            else:
                family = GaugeMetricFamily(_P + name, help_text, labels=label_names)
            for vals in values:
                family.add_metric(list(vals), m.total(name, *vals))
            yield family
        for name, help_text in _HISTS:
            cumulative, buckets = 0.0, []
            for i, le in enumerate((*LATENCY_BUCKETS, float("inf"))):
                cumulative += m.total(name, str(i))
                buckets.append((floatToGoString(le), cumulative))
            yield HistogramMetricFamily(_P + name, help_text, buckets=buckets, sum_value=m.total(name, "sum"))
        # per worker: how evenly SO_REUSEPORT spreads the work
        done = CounterMetricFamily(_P + "worker_transforms_total", "Completed transforms per worker process.",
                                   labels=("worker",))
        busy = GaugeMetricFamily(_P + "worker_busy", "Transforms running or queued per worker process.",
                                 labels=("worker",))
        for w in range(m.workers):
            done.add_metric([str(w)], sum(m.value(w, "transforms_total", f) for f in FORMATS))
            busy.add_metric([str(w)], m.busy(w))
        yield done
        yield busy
