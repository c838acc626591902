"""Mergeable aggregates over a stream of log record batches (one pass, bounded memory).

:class:`LogAggregate` is fed record batches in :data:`edgeproof.analytics.schema.LOG_SCHEMA` and keeps only
counters and latency sketches: per day, hour, POP, content type and path family (requests, hits,
misses, excluded, bytes from cache / from origin), status and exclusion counts, latency sketches for
hits and misses (``time-taken`` and ``time-to-first-byte``) and a capped table of missed URLs. Its
memory depends on the number of distinct groups, never on the number of lines; two aggregates
:meth:`~LogAggregate.merge` by addition (per file, per process or per day).

Every request is classified by :func:`edgeproof.analytics.metrics.classify` and every rate comes from
:func:`edgeproof.analytics.metrics.hit_rate`: this module only counts.
"""

from __future__ import annotations

import posixpath
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics.metrics import LatencySketch, classify, hit_rate

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


def _str_column(batch: Any, name: str) -> pa.Array:
    """A string column with nulls as ``""`` (an all-empty column when the batch lacks it)."""
    if name not in batch.schema.names:
        return pa.array([""] * batch.num_rows, type=pa.string())
    col = batch.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return pc.fill_null(col.cast(pa.string()), "")


def _int_column(batch: Any, name: str, null: int) -> np.ndarray:
    if name not in batch.schema.names:
        return np.full(batch.num_rows, null, dtype=np.int64)
    col = batch.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return np.asarray(pc.fill_null(col.cast(pa.int64()), null).to_numpy(zero_copy_only=False), dtype=np.int64)


def _float_column(batch: Any, name: str) -> np.ndarray:
    if name not in batch.schema.names:
        return np.full(batch.num_rows, np.nan)
    col = batch.column(name).cast(pa.float64())
    return np.asarray(pc.fill_null(col, float("nan")).to_numpy(zero_copy_only=False), dtype=np.float64)


def _encode(arr: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dictionary-encode: (row codes, distinct values)."""
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _str_keys(batch: Any, name: str, label: Callable[[str], str]) -> tuple[np.ndarray, list[str]]:
    """Row codes into group labels for a string column (labels computed once per distinct value)."""
    codes, values = _encode(_str_column(batch, name))
    labels = [label(v) for v in values]
    uniq = sorted(set(labels))
    index = {k: i for i, k in enumerate(uniq)}
    remap = np.array([index[lab] for lab in labels] or [0], dtype=np.int64)
    return remap[codes], uniq


def _int_keys(values: np.ndarray, label: Callable[[int], str]) -> tuple[np.ndarray, list[str]]:
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), ["(none)" if v < 0 else label(int(v)) for v in uniq]


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
        n = batch.num_rows
        self.rows_seen += n
        if n == 0:
            return
        ms = _int_column(batch, "timestamp", np.iinfo(np.int64).min)
        if self.start is not None or self.end is not None:
            keep = ms != np.iinfo(np.int64).min
            if self.start is not None:
                keep &= ms >= int(self.start.timestamp() * 1000)
            if self.end is not None:
                keep &= ms < int(self.end.timestamp() * 1000)
            dropped = int(n - keep.sum())
            if dropped:
                self.rows_outside += dropped
                batch = batch.filter(pa.array(keep))
                ms = ms[keep]
                n = batch.num_rows
                if n == 0:
                    return
        valid = ms != np.iinfo(np.int64).min
        if valid.any():
            lo = datetime.fromtimestamp(int(ms[valid].min()) / 1000, UTC)
            hi = datetime.fromtimestamp(int(ms[valid].max()) / 1000, UTC)
            self.first = lo if self.first is None else min(self.first, lo)
            self.last = hi if self.last is None else max(self.last, hi)

        # classify through the one definition, once per distinct (result type, method) pair
        pair = pc.binary_join_element_wise(_str_column(batch, "x_edge_result_type"),
                                           _str_column(batch, "cs_method"), "\x1f")
        codes, values = _encode(pair)
        labels = []
        for value in values:
            rtype, _, method = value.partition("\x1f")
            labels.append(classify(rtype or None, method or None))
        label_arr = np.array(labels or ["unknown"], dtype=object)
        cls = label_arr[codes]
        is_hit = cls == "hit"
        is_miss = cls == "miss"
        status = _int_column(batch, "sc_status", 0)
        nbytes = _int_column(batch, "sc_bytes", 0)
        metrics = {
            "requests": np.ones(n, dtype=np.int64),
            "hits": is_hit.astype(np.int64),
            "misses": is_miss.astype(np.int64),
            "excluded": (~(is_hit | is_miss)).astype(np.int64),
            "errors": (status >= 500).astype(np.int64),
            "bytes": nbytes,
            "bytes_hit": np.where(is_hit, nbytes, 0),
            "bytes_miss": np.where(is_miss, nbytes, 0),
        }
        day = np.where(valid, ms // 86_400_000, -1)
        hour = np.where(valid, ms // 3_600_000, -1)
        dims: dict[str, tuple[np.ndarray, list[str]]] = {
            "day": _int_keys(day, lambda v: datetime.fromtimestamp(v * 86_400, UTC).strftime("%Y-%m-%d")),
            "hour": _int_keys(hour, lambda v: datetime.fromtimestamp(v * 3_600, UTC).strftime("%Y-%m-%dT%H")),
            "pop": _str_keys(batch, "pop", lambda v: v or "(none)"),
            "content_type": _str_keys(batch, "sc_content_type",
                                      lambda v: v.split(";", 1)[0].strip() if v else "(none)"),
            "family": _str_keys(batch, "cs_uri_stem", lambda v: path_family(v or None)),
        }
        if self.bin_seconds:
            step = int(self.bin_seconds * 1000)
            bins = np.where(valid, ms // step, -1)
            dims["bin"] = _int_keys(bins, lambda v: f"{v * self.bin_seconds:.0f}"
                                    if float(v * self.bin_seconds).is_integer() else f"{v * self.bin_seconds:.3f}")
            self.groups.setdefault("bin", defaultdict(Counts))
        order = list(metrics)
        for dim, (key_codes, keys) in dims.items():
            sums = [np.bincount(key_codes, weights=metrics[m], minlength=len(keys)) for m in order]
            target = self.groups[dim]
            for i, key in enumerate(keys):
                if sums[0][i]:
                    target[key].add(Counts(*(int(s[i]) for s in sums)))
        self.total.add(Counts(*(int(metrics[m].sum()) for m in order)))
        for value, count in zip(*np.unique(status, return_counts=True), strict=True):
            self.status[int(value)] += int(count)
        for label, count in zip(*np.unique(cls[~(is_hit | is_miss)].astype(str), return_counts=True), strict=True):
            self.excluded[str(label)] += int(count)

        tt = _float_column(batch, "time_taken") * 1000.0
        ttfb = _float_column(batch, "time_to_first_byte") * 1000.0
        for metric, vals in (("time_taken", tt), ("ttfb", ttfb)):
            self.sketches[f"{metric}_all"].add_many(vals[is_hit | is_miss])
            self.sketches[f"{metric}_hit"].add_many(vals[is_hit])
            self.sketches[f"{metric}_miss"].add_many(vals[is_miss])
        if self.bin_seconds:
            bin_codes, bin_keys = dims["bin"]
            cacheable = is_hit | is_miss
            for i, key in enumerate(bin_keys):
                sel = cacheable & (bin_codes == i)
                if sel.any():
                    self.bin_sketches.setdefault(key, LatencySketch()).add_many(tt[sel])

        if is_miss.any():
            missed = batch.filter(pa.array(is_miss))
            table = pa.table({
                "stem": _str_column(missed, "cs_uri_stem"),
                "query": _str_column(missed, "cs_uri_query"),
                "ctype": _str_column(missed, "sc_content_type"),
            }).group_by(["stem", "query", "ctype"]).aggregate([([], "count_all")])
            for stem, query, ctype, count in zip(*(table.column(c).to_pylist() for c in
                                                   ("stem", "query", "ctype", "count_all")), strict=True):
                self.missed_urls[(stem, query, ctype)] += int(count)
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
