"""Mergeable aggregates over a stream of log record batches (one pass, bounded memory).

:class:`LogAggregate` is fed record batches in :data:`analytics.schema.LOG_SCHEMA` and keeps only
counters and latency sketches: per day, hour, POP, content type and path family (requests, hits,
misses, excluded, bytes from cache / from origin), status and exclusion counts, latency sketches for
hits and misses (``time-taken`` and ``time-to-first-byte``) and a capped table of missed URLs. Its
memory depends on the number of distinct groups, never on the number of lines; two aggregates
:meth:`~LogAggregate.merge` by addition (per file, per process or per day).

Every request is classified by :func:`analytics.metrics.classify` and every rate comes from
:func:`analytics.metrics.hit_rate`: this module only counts.
"""

from __future__ import annotations

import posixpath
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analytics.metrics import LatencySketch, classify, hit_rate
from edgeproof.canonical import split_canonical

__all__ = ["AGGREGATE_COLUMNS", "DIMENSIONS", "Counts", "LogAggregate", "path_family"]

DIMENSIONS = ("day", "hour", "pop", "content_type", "family")
AGGREGATE_COLUMNS = ("timestamp", "pop", "cs_method", "x_edge_result_type", "sc_status", "sc_bytes", "time_taken",
            "time_to_first_byte", "sc_content_type", "cs_uri_stem", "cs_uri_query")
#: distinct missed URLs kept; past this the rarest half is dropped (counts become lower bounds)
MISSED_URL_CAP = 200_000


@lru_cache(maxsize=65_536)
def path_family(stem: str | None) -> str:
    """A URL's family: its folder and extension, ops segment removed.

    ``/images/sku-00042-1.jpg/w=640,h=0,fit=cover,q=80,f=webp`` and ``/images/sku-7-2.jpg`` are both
    ``/images/*.jpg``; ``/favicon.ico`` is ``/*.ico``; a path without extension keeps its folder.
    """
    if not stem:
        return "(none)"
    path = stem
    split = split_canonical(stem)
    if split is not None:
        path = "/" + split[0]
    folder, name = posixpath.split(path)
    ext = posixpath.splitext(name)[1].lower()
    folder = folder.rstrip("/")
    return f"{folder}/*{ext}" if ext else f"{folder}/*"


@dataclass(slots=True)
class Counts:
    """Counters for one group."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    excluded: int = 0
    errors: int = 0  # HTTP status >= 500 (any class)
    bytes: int = 0
    bytes_hit: int = 0
    bytes_miss: int = 0

    def add(self, other: Counts) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.hits, self.misses)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        out["hit_rate"] = self.hit_rate
        return out


def _sketches() -> dict[str, LatencySketch]:
    return {f"{m}_{c}": LatencySketch() for m in ("time_taken", "ttfb") for c in ("all", "hit", "miss")}


@dataclass
class LogAggregate:
    """One pass over record batches; see the module docstring. ``start``/``end`` bound the timestamps kept."""

    start: datetime | None = None
    end: datetime | None = None
    #: also count per time bin of this many seconds (``groups["bin"]``, keyed by the bin's epoch
    #: second) with a time-taken sketch per bin (``bin_sketches``): for short runs such as rehearsals
    bin_seconds: float | None = None
    bin_sketches: dict[str, LatencySketch] = field(default_factory=dict)
    total: Counts = field(default_factory=Counts)
    groups: dict[str, dict[str, Counts]] = field(default_factory=lambda: {d: defaultdict(Counts) for d in DIMENSIONS})
    status: Counter[int] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)
    sketches: dict[str, LatencySketch] = field(default_factory=_sketches)
    missed_urls: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    missed_urls_truncated: bool = False
    rows_seen: int = 0
    rows_outside: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Count one batch (rows outside ``start``/``end`` are counted in ``rows_outside`` only)."""
        names = [c for c in AGGREGATE_COLUMNS if c in batch.schema.names]
        df = batch.select(names).to_pandas()
        self.rows_seen += len(df)
        if df.empty:
            return
        ts = df["timestamp"]
        if self.start is not None or self.end is not None:
            keep = pd.Series(True, index=df.index)
            if self.start is not None:
                keep &= ts >= pd.Timestamp(self.start)
            if self.end is not None:
                keep &= ts < pd.Timestamp(self.end)
            self.rows_outside += int((~keep).sum())
            df = df[keep]
            if df.empty:
                return
            ts = df["timestamp"]
        lo, hi = ts.min(), ts.max()
        if pd.notna(lo):
            self.first = lo.to_pydatetime() if self.first is None else min(self.first, lo.to_pydatetime())
            self.last = hi.to_pydatetime() if self.last is None else max(self.last, hi.to_pydatetime())

        # classify through the one definition, once per distinct (result type, method) pair
        method = df["cs_method"].fillna("").astype(str)
        rtype = df["x_edge_result_type"].fillna("").astype(str)
        pairs = pd.MultiIndex.from_arrays([rtype, method])
        uniq = pairs.unique()
        lookup = {pair: classify(pair[0] or None, pair[1] or None) for pair in uniq}
        cls = pd.Series([lookup[p] for p in pairs], index=df.index) if len(uniq) > 1 else pd.Series(
            lookup[uniq[0]], index=df.index)
        is_hit = (cls == "hit").to_numpy()
        is_miss = (cls == "miss").to_numpy()
        status = df["sc_status"].fillna(0).astype("int64")
        nbytes = df["sc_bytes"].fillna(0).astype("int64")
        frame = pd.DataFrame({
            "requests": 1,
            "hits": is_hit.astype("int64"),
            "misses": is_miss.astype("int64"),
            "excluded": (~(is_hit | is_miss)).astype("int64"),
            "errors": (status >= 500).astype("int64").to_numpy(),
            "bytes": nbytes.to_numpy(),
            "bytes_hit": np.where(is_hit, nbytes, 0),
            "bytes_miss": np.where(is_miss, nbytes, 0),
        }, index=df.index)
        keys = {
            "day": ts.dt.strftime("%Y-%m-%d"),
            "hour": ts.dt.strftime("%Y-%m-%dT%H"),
            "pop": df["pop"].fillna("(none)").astype(str),
            "content_type": df["sc_content_type"].fillna("(none)").astype(str).str.split(";").str[0].str.strip(),
            "family": df["cs_uri_stem"].map(path_family),
        }
        if self.bin_seconds:
            epoch_ms = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
            bins = (epoch_ms // int(self.bin_seconds * 1000)) * self.bin_seconds
            keys["bin"] = bins.map(lambda b: f"{b:.0f}" if float(b).is_integer() else f"{b:.3f}")
            self.groups.setdefault("bin", defaultdict(Counts))
        for dim, key in keys.items():
            summed = frame.groupby(key.to_numpy(), sort=False).sum()
            target = self.groups[dim]
            for name, row in zip(summed.index, summed.itertuples(index=False), strict=True):
                target[str(name)].add(Counts(*map(int, row)))
        self.total.add(Counts(*map(int, frame.sum().to_numpy())))
        self.status.update({int(k): int(v) for k, v in status.value_counts().items()})
        self.excluded.update({str(k): int(v) for k, v in cls[~(is_hit | is_miss)].value_counts().items()})

        tt = (df["time_taken"].astype("float64") * 1000.0).to_numpy()
        ttfb = (df["time_to_first_byte"].astype("float64") * 1000.0).to_numpy() if "time_to_first_byte" in df \
            else np.full(len(df), np.nan)
        for metric, values in (("time_taken", tt), ("ttfb", ttfb)):
            self.sketches[f"{metric}_all"].add_many(values[is_hit | is_miss])
            self.sketches[f"{metric}_hit"].add_many(values[is_hit])
            self.sketches[f"{metric}_miss"].add_many(values[is_miss])
        if self.bin_seconds:
            cacheable = is_hit | is_miss
            for key, idx in pd.Series(range(len(df)))[cacheable].groupby(keys["bin"].to_numpy()[cacheable]):
                self.bin_sketches.setdefault(str(key), LatencySketch()).add_many(tt[idx.to_numpy()])

        if is_miss.any():
            missed = df.loc[is_miss, ["cs_uri_stem", "cs_uri_query", "sc_content_type"]].fillna("")
            counts = missed.value_counts(sort=False)
            self.missed_urls.update({tuple(map(str, k)): int(v) for k, v in counts.items()})
            self._cap_missed()

    def _cap_missed(self) -> None:
        if len(self.missed_urls) <= MISSED_URL_CAP:
            return
        keep = self.missed_urls.most_common(MISSED_URL_CAP // 2)
        self.missed_urls = Counter(dict(keep))
        self.missed_urls_truncated = True

    def merge(self, other: LogAggregate) -> LogAggregate:
        """Add ``other`` into this aggregate; returns self."""
        self.total.add(other.total)
        for dim, groups in other.groups.items():
            mine = self.groups.setdefault(dim, defaultdict(Counts))
            for key, counts in groups.items():
                mine[key].add(counts)
        for key, sketch in other.bin_sketches.items():
            self.bin_sketches.setdefault(key, LatencySketch()).merge(sketch)
        self.status.update(other.status)
        self.excluded.update(other.excluded)
        for name, sketch in other.sketches.items():
            self.sketches[name].merge(sketch)
        self.missed_urls.update(other.missed_urls)
        self.missed_urls_truncated |= other.missed_urls_truncated
        self._cap_missed()
        self.rows_seen += other.rows_seen
        self.rows_outside += other.rows_outside
        for attr, pick in (("first", min), ("last", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        return self

    def group_rows(self, dim: str) -> list[tuple[str, Counts]]:
        """``(key, counts)`` of one dimension, sorted by key."""
        return sorted(self.groups[dim].items())
