"""Replay request logs through a per-POP cache model under candidate cache-key strategies.

>>> result = compare_strategies(["logs/"], ["passthrough", "aggressive"], ttl=30 * 86400, warmup=6 * 3600)
>>> result["strategies"]["aggressive"]["hit_rate"], result["calibration"]

Every GET/HEAD request that the log itself counts as a hit or a miss (:func:`edgeproof.analytics.metrics.classify`)
is re-keyed by each strategy and run, in time order, through one cache per edge location (as in the
log), optionally a regional cache per region and one Origin Shield (:mod:`edgeproof.analytics._cachesim`). The
warm-up period fills the caches but is not scored. Logs carry no ``Accept`` header, so the format a
browser accepted is *inferred* from the served ``sc-content-type`` (AVIF served → AVIF and WebP
accepted; WebP → WebP; JPEG/PNG → neither) and, when that is missing, from the user agent.

Speed: a strategy is applied once per distinct (URL, inferred Accept) — the batch is dictionary-encoded —
and the cache model runs compiled over integer arrays (POP by POP at the pop tier). One pass: each batch
is keyed and replayed before the next is read, so memory is bounded by distinct paths, queries and keys.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics._cachesim import CacheModel, PopCacheModel
from edgeproof.analytics._cachesim_ref import ReferenceModel
from edgeproof.analytics._replay_keys import KeyIndex
from edgeproof.analytics.metrics import CLASS_NAMES, EXCLUDED_REASONS, classify_arrays, hit_rate
from edgeproof.analytics.strategies import Strategy, get_strategy

from edgeproof.canonical import PARAM_ALIASES, format_for_content_type
from edgeproof.cloudfront import DEFAULT_TIER, TIERS, known_region, region_of
from edgeproof.errors import UsageError

__all__ = [
    "ACCEPT_BY_CLASS",
    "Calibration",
    "PopCounters",
    "ReplayResult",
    "StrategyPrediction",
    "ACCEPT_INFERENCE_NOTE",
    "COLUMNS",
    "TIERS",
    "accept_class_for_user_agent",
    "compare_strategies",
    "parse_bytes",
    "parse_duration",
    "region_of",
]

COLUMNS = ("timestamp", "x_edge_location", "pop", "sc_bytes", "cs_method", "cs_uri_stem", "cs_uri_query",
           "cs_user_agent", "x_edge_result_type", "sc_content_type", "cs_accept")
#: how the Accept header of a request is found when the log has none: ``user-agent`` (the browser and
#: its version first, the served content type where the user agent says nothing) or ``content-type``
#: (the served content type first); the prediction is given under both, as a range
INFERENCES = ("user-agent", "content-type")
#: the Accept header the replay hands a strategy for each inferred class
ACCEPT_BY_CLASS = ("image/jpeg,image/png,image/*;q=0.8", "image/webp,image/jpeg,image/*;q=0.8",
                   "image/avif,image/webp,image/jpeg,image/*;q=0.8")
ACCEPT_INFERENCE_NOTE = (
    "the Accept header is taken from the log's cs-accept field (real-time logs) where present; elsewhere it "
    "is inferred from the user agent (Chrome/Edge >= 85, Firefox >= 93, Safari >= 16: avif+webp; older "
    "Chrome, Firefox >= 65, Safari 14-15: webp; other known browsers: neither) and, where the user agent "
    "says nothing, from the served sc-content-type when the URL let the format be negotiated (avif -> "
    "avif+webp, webp -> webp, jpeg/png -> neither); the prediction is also given with the content type "
    "first, and the two make its range"
)
_CLASS_BY_FORMAT = {"avif": 2, "webp": 1, "jpeg": 0, "png": 0}
_CHROME = re.compile(r"(?:Chrome|CriOS|Edg|EdgA|EdgiOS)/(\d+)")
_FIREFOX = re.compile(r"(?:Firefox|FxiOS)/(\d+)")
_SAFARI = re.compile(r"Version/(\d+)[.\d]*(?:%20|\s|\+)+(?:Mobile/\S+(?:%20|\s|\+)+)?Safari/")

def accept_class_for_user_agent(user_agent: str | None) -> int:
    """0 = neither AVIF nor WebP, 1 = WebP, 2 = AVIF and WebP (by browser and version); -1 = the user
    agent names no browser we know (it says nothing about the formats accepted)."""
    ua = user_agent or ""
    m = _CHROME.search(ua)
    if m:
        return 2 if int(m.group(1)) >= 85 else 1
    m = _FIREFOX.search(ua)
    if m:
        major = int(m.group(1))
        return 2 if major >= 93 else (1 if major >= 65 else 0)
    m = _SAFARI.search(ua)
    if m:
        major = int(m.group(1))
        return 2 if major >= 16 else (1 if major >= 14 else 0)
    return -1


class PopCounters(TypedDict):
    """One edge location's counters (the cache model's, :data:`edgeproof.analytics._cachesim.COUNTERS`)."""

    requests: int
    hits: int
    refresh_hits: int
    misses: int
    regional_hits: int
    shield_hits: int
    cold: int
    expired: int
    evicted: int
    fragmented: int
    origin_requests: int
    transforms: int
    hit_rate: float | None


class StrategyPrediction(TypedDict):
    """One strategy's predicted behaviour over the scored window (docs/strategies.md, "Output")."""

    hit_rate: float | None
    hit_rate_range: list[float] | None
    meets_target: bool
    requests: int
    hits: int
    refresh_hits: int
    misses: int
    origin_requests: int
    regional_hits: int
    shield_hits: int
    transforms: int
    unique_keys: int
    unique_variants: int
    keys_per_variant: float | None
    refused: int
    cold: int
    expired: int
    evicted: int
    fragmented: int
    #: bytes of the distinct variants (each at the largest response logged for it, warm-up included):
    #: what a derivative store holds for them
    variant_bytes: int
    by_pop: dict[str, PopCounters]


class ObservedCounts(TypedDict):
    hits: int
    misses: int
    hit_rate: float | None
    #: response bytes (``sc-bytes``) of the scored requests, as logged
    bytes: int


class Calibration(TypedDict):
    strategy: str
    observed_hit_rate: float | None
    predicted_hit_rate: float | None
    difference: float | None
    #: the calibration replay's origin work (what the observed deployment's origin rendered and stored,
    #: which the log does not say): ``transforms``, ``unique_variants``, ``variant_bytes``; None when
    #: no calibration replay ran
    transforms: int | None
    unique_variants: int | None
    variant_bytes: int | None


class ReplayResult(TypedDict, total=False):
    """What :func:`compare_strategies` returns (``bad_lines`` and ``bad_line_examples`` for path input)."""

    settings: dict[str, Any]
    window: dict[str, int | None]
    requests: int
    replayed: int
    scored: int
    excluded: dict[str, int]
    no_timestamp: int
    out_of_order: int
    distinct_paths: int
    distinct_queries: int
    accept_inference: dict[str, Any]
    observed: ObservedCounts
    observed_by_pop: dict[str, ObservedCounts]
    calibration: Calibration
    strategies: dict[str, StrategyPrediction]
    pops_without_region: list[str]
    bad_lines: int
    bad_line_examples: list[str]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """``30d``, ``6h``, ``90m``, ``45s``, ``250ms`` or a number of seconds → seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"bad duration {text!r}", detail="use e.g. 30d, 6h, 90m, 45s or seconds")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_bytes(text: str | int) -> int:
    """``500MB``, ``2GiB``, ``1e6``-free plain integers → bytes (k/m/g/t = powers of 1000, ki/mi/gi = 1024)."""
    if isinstance(text, int):
        return text
    m = _BYTES.match(text)
    if not m:
        raise UsageError(f"bad byte size {text!r}", detail="use e.g. 500MB, 2GiB or a number of bytes")
    unit = (m.group(2) or "b").lower().rstrip("b")
    power = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1]]
    base = 1024 if unit.endswith("i") else 1000
    return int(float(m.group(1)) * base**power)


class _Run:
    """One strategy's replay under one Accept inference: its key/variant ids and its cache model."""

    def __init__(self, strategy: Strategy, inference: str, model: Any, *, wants_twin: bool = False) -> None:
        self.strategy = strategy
        self.inference = inference
        self.model = model
        self.index = KeyIndex(strategy)
        self.refused = 0
        #: per variant id, the largest response size logged for it (a derivative store's object size)
        self.variant_bytes = np.zeros(0, dtype=np.int64)
        #: the run under the other Accept inference, for the hit-rate range: made (as a copy of this run's
        #: state) at the first batch where the two inferences give a row different cache keys; until
        #: then its hit rate would equal this run's
        self.wants_twin = wants_twin
        self.twin: _Run | None = None

    def fork(self, inference: str) -> _Run:
        """A run in this run's exact state (caches, ids, counts) that goes on under ``inference``."""
        twin = copy.deepcopy(self, memo={id(self.strategy): self.strategy})
        twin.inference, twin.wants_twin, twin.twin = inference, False, None
        return twin

    def note_sizes(self, var: np.ndarray, size: np.ndarray) -> None:
        """Keep, per variant id of ``var`` (-1: not a variant), the largest of its ``size``."""
        n = self.index.unique_variants
        if self.variant_bytes.size < n:
            grown = np.zeros(max(n, 2 * self.variant_bytes.size), dtype=np.int64)
            grown[: self.variant_bytes.size] = self.variant_bytes
            self.variant_bytes = grown
        keep = var >= 0
        np.maximum.at(self.variant_bytes, var[keep], size[keep])


def _model(kind: str, *, tier: str, ttl_ms: int, capacity: int, revalidate: bool) -> Any:
    """The cache model: ``fast`` (compiled; POP by POP at the pop tier) or ``reference`` (the oracle)."""
    if kind == "reference":
        return ReferenceModel(ttl_ms=ttl_ms, capacity=capacity, revalidate=revalidate)
    if kind != "fast":
        raise UsageError(f"unknown cache model {kind!r}", detail="use fast or reference")
    cls = PopCacheModel if tier == "pop" else CacheModel
    return cls(ttl_ms=ttl_ms, capacity=capacity, revalidate=revalidate)


def _string_column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    if name in batch.schema.names:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        return pc.fill_null(col.cast(pa.string()), "")
    return pa.array([""] * batch.num_rows, pa.string())


def _classes(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """Per row: 0 hit, 1 miss, 2.. excluded reason (codes into ``CLASS_NAMES``), by the one definition
    (:func:`edgeproof.analytics.metrics.classify_arrays`, equal to ``classify`` row by row)."""
    names = batch.schema.names
    return classify_arrays(batch.column("x_edge_result_type") if "x_edge_result_type" in names else None,
                           batch.column("cs_method") if "cs_method" in names else None).astype(np.int64)


def _uniform(values: pa.Array) -> str | None:
    """The value of every row when all rows are equal (no nulls; cheaper than hashing every row)."""
    if len(values) == 0:
        return None
    first = values[0].as_py()
    if not pc.all(pc.equal(values.slice(0, 64), first)).as_py():
        return None
    return first if pc.all(pc.equal(values, first)).as_py() else None


def _encode(values: pa.Array) -> tuple[np.ndarray, list[str]]:
    enc = values.dictionary_encode()
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    """``first`` then ``rest``, holding no reference to ``first`` once it is handed over."""
    box = [first]
    del first
    yield box.pop()
    yield from rest


def _batches(source: Any) -> tuple[Iterable[pa.RecordBatch | pa.Table], Any]:
    """(batches, the LogStream for bad-line accounting or None); iterables are consumed lazily."""
    if isinstance(source, pa.Table | pa.RecordBatch):
        return [source], None
    if isinstance(source, str | Path):
        source = [source]
    if not isinstance(source, list | tuple):  # an iterator: of paths (few; collected) or of batches (lazy)
        it = iter(source)
        head = next(it, None)
        if head is None:
            return [], None
        if not isinstance(head, str | Path):
            return _prepend(head, it), source if hasattr(source, "bad_lines") else None
        source = [head, *it]
    if source and all(isinstance(i, str | Path) for i in source):
        from edgeproof.analytics.reader import read_logs

        stream = read_logs([str(i) for i in source], columns=list(COLUMNS), batch_rows=1 << 18)
        return stream, stream
    return source, source if hasattr(source, "bad_lines") else None


def compare_strategies(
    batches_or_paths: Any,
    strategies: Sequence[str | Strategy] = ("passthrough", "aggressive"),
    *,
    ttl: float | str = 30 * 86400,
    capacity: int | str | None = None,
    warmup: float | str = 0,
    tier: str = DEFAULT_TIER,
    target: float = 0.96,
    calibrate: bool = True,
    revalidate: bool = True,
    accept_range: bool = True,
    model: str = "fast",
) -> ReplayResult:
    """Replay logs under each strategy; see the module docstring and docs/strategies.md for the fields.

    ``batches_or_paths``: record batches / tables in :data:`edgeproof.analytics.schema.LOG_SCHEMA`, or log paths
    (files, folders, globs, ``s3://``) read with :func:`edgeproof.analytics.reader.read_logs`. ``ttl`` and
    ``warmup`` are seconds (or ``"30d"``, ``"6h"``; a ``ttl`` of 0 means no expiry); ``capacity`` is bytes
    per cache (None: unbounded). ``tier``: ``pop``, ``regional`` (the default: every CloudFront
    distribution has regional edge caches) or ``shield``. ``revalidate``: an expired copy is revalidated
    (a ``RefreshHit``) rather than fetched again. ``accept_range``: also replay with the other Accept
    inference (requests whose log line has no Accept) and give the range. ``calibrate`` replays
    ``passthrough`` too when it is not among ``strategies``, for the observed-vs-predicted calibration.
    ``model``: ``fast`` or ``reference`` (the plain Python oracle; slow).
    """
    if tier not in TIERS:
        raise UsageError(f"unknown tier {tier!r}", detail=f"use one of {', '.join(TIERS)}")
    ttl_s, warmup_s = parse_duration(ttl), parse_duration(warmup)
    cap = 0 if capacity in (None, 0, "") else parse_bytes(capacity)  # type: ignore[arg-type]
    chosen = [s if isinstance(s, Strategy) else get_strategy(s) for s in strategies]
    if not chosen:
        raise UsageError("no strategy to compare")
    names = [s.name for s in chosen]
    if len(set(names)) != len(names):
        raise UsageError("a strategy is named twice", detail=", ".join(names))
    opts = {"tier": tier, "ttl_ms": int(ttl_s * 1000), "capacity": cap, "revalidate": revalidate}
    runs = [_Run(s, INFERENCES[0], _model(model, **opts), wants_twin=accept_range) for s in chosen]
    calibration = next((r for r in runs if r.strategy.name == "passthrough"), None)
    if calibration is None and calibrate:
        calibration = _Run(get_strategy("passthrough"), INFERENCES[0], _model(model, **opts))
        runs.append(calibration)

    source, stream = _batches(batches_or_paths)
    state = _State()
    for batch in source:
        _replay_batch(batch, runs, state, tier=tier, warmup_ms=int(warmup_s * 1000))

    totals = state.totals
    observed = hit_rate(totals["observed_hits"], totals["observed_misses"])
    locations = {cid: name[4:] for name, cid in state.cache_ids.items() if name.startswith("pop:")}
    results = {}
    for run in runs[: len(chosen)]:
        mine = [run] + ([run.twin] if run.twin is not None else [])
        results[run.strategy.name] = _summary(mine, target, locations,
                                              inferred=accept_range and totals["accept_inferred"] > 0)
    cal = _summary([calibration], target, locations, inferred=False) if calibration is not None else None
    cal_rate = cal["hit_rate"] if cal is not None else None
    out: ReplayResult = {
        "settings": {"ttl_seconds": ttl_s, "capacity_bytes": cap or None, "warmup_seconds": warmup_s,
                     "tier": tier, "target": target, "revalidate": revalidate, "model": model},
        "window": {"start_ms": state.t_first, "end_ms": state.t_last, "scored_from_ms": state.warm_end},
        "requests": totals["rows"],
        "replayed": totals["replayed"],
        "scored": totals["scored"],
        "excluded": state.excluded,
        "no_timestamp": totals["no_timestamp"],
        "out_of_order": totals["out_of_order"],
        "distinct_paths": len(state.paths),
        "distinct_queries": len(state.queries),
        "accept_inference": {
            "note": ACCEPT_INFERENCE_NOTE,
            "from_log": totals["accept_from_log"],
            "from_user_agent": totals["accept_from_user_agent"],
            "from_content_type": totals["accept_from_content_type"],
            "unknown": totals["accept_unknown"],
            "avif_webp": state.accept_counts[2], "webp": state.accept_counts[1], "neither": state.accept_counts[0],
        },
        "observed": {"hits": totals["observed_hits"], "misses": totals["observed_misses"], "hit_rate": observed,
                     "bytes": totals["observed_bytes"]},
        "observed_by_pop": {locations[c]: {"hits": h, "misses": m, "hit_rate": hit_rate(h, m), "bytes": b}
                            for c, (h, m, b) in sorted(state.observed_by_pop.items())},
        "calibration": {
            "strategy": "passthrough",
            "observed_hit_rate": observed,
            "predicted_hit_rate": cal_rate,
            "difference": None if observed is None or cal_rate is None else cal_rate - observed,
            "transforms": cal["transforms"] if cal is not None else None,
            "unique_variants": cal["unique_variants"] if cal is not None else None,
            "variant_bytes": cal["variant_bytes"] if cal is not None else None,
        },
        "strategies": results,
        "pops_without_region": sorted(state.no_region) if tier != "pop" else [],
    }
    if stream is not None:
        out["bad_lines"] = stream.bad_lines
        out["bad_line_examples"] = stream.bad_line_examples
    return out


class _State:
    """What the replay keeps between batches: ids of paths, queries, Accept values and caches; totals."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.known_paths = pa.array([], pa.string())  # the same paths, for pc.index_in
        self.query_ids: dict[tuple[str, str], int] = {}
        self.queries: list[tuple[str, str]] = []
        self.accept_ids: dict[str, int] = {a: i for i, a in enumerate(ACCEPT_BY_CLASS)}
        self.accepts: list[str] = list(ACCEPT_BY_CLASS)
        self.cache_ids: dict[str, int] = {}
        self.no_region: set[str] = set()
        self.excluded = dict.fromkeys(EXCLUDED_REASONS, 0)
        self.totals = dict.fromkeys(
            ("rows", "replayed", "scored", "observed_hits", "observed_misses", "observed_bytes", "out_of_order",
             "no_timestamp",
             "accept_from_log", "accept_from_user_agent", "accept_from_content_type", "accept_unknown",
             "accept_inferred"), 0)
        self.accept_counts = [0, 0, 0]
        self.observed_by_pop: dict[int, tuple[int, int, int]] = {}  # POP cache id -> (hits, misses, bytes)
        self.t_first: int | None = None
        self.t_last: int | None = None
        self.warm_end: int | None = None


def _replay_batch(batch: pa.RecordBatch | pa.Table, runs: list[_Run], state: _State, *, tier: str,
                  warmup_ms: int) -> None:
    """Classify, key and replay one batch under every run (the steps below, in order)."""
    totals = state.totals
    n = batch.num_rows
    totals["rows"] += n
    if n == 0:
        return
    picked = _scored_rows(batch, state, warmup_ms)
    if picked is None:
        return
    sub, t, scored, hit_obs = picked
    c0, c1, c2 = _caches(sub, state, tier)
    size = pc.fill_null(sub.column("sc_bytes"), 0).to_numpy(zero_copy_only=False).astype(np.int64) \
        if "sc_bytes" in sub.schema.names else np.zeros(t.size, dtype=np.int64)
    total = np.bincount(c0[scored])
    hits = np.bincount(c0[scored], weights=hit_obs[scored]).astype(np.int64)
    nbytes = np.zeros(total.size, dtype=np.int64)
    np.add.at(nbytes, c0[scored], size[scored])  # exact integer sums (bincount weights are floats)
    totals["observed_bytes"] += int(nbytes.sum())
    for c in np.nonzero(total)[0].tolist():
        old = state.observed_by_pop.get(c, (0, 0, 0))
        state.observed_by_pop[c] = (old[0] + int(hits[c]), old[1] + int(total[c] - hits[c]), old[2] + int(nbytes[c]))
    row_path, new_paths = _path_ids(sub, state)
    # the second Accept inference only when a run can use it (the range)
    both = any(run.wants_twin for run in runs)
    row_query, new_queries = _query_ids(sub, state, INFERENCES if both else INFERENCES[:1])
    n_caches = len(state.cache_ids)
    for run in runs:
        if new_paths:
            run.index.add_paths(new_paths)
        if new_queries:
            run.index.add_queries(new_queries)
    # the other inference gives a row another cache key: from here on it is a run of its own. Only the
    # twin's hit rate is used (the range), and that depends on the keys alone, not on the variants.
    for run in list(runs) if both else ():
        if run.wants_twin and run.twin is None and \
                not run.index.same_keys(row_query[INFERENCES[0]], row_query[INFERENCES[1]]):
            run.twin = run.fork(INFERENCES[1])
            runs.append(run.twin)
    for run in runs:
        key, var = run.index.ids(row_path, row_query[run.inference], state.paths, state.queries)
        if run.inference == INFERENCES[0]:  # a twin's variants are not reported (only its hit rate)
            run.note_sizes(var, size)
        ok = key >= 0
        if not ok.all():
            run.refused += int((~ok & scored).sum())
            run.model.run(t[ok], c0[ok], c1[ok], c2[ok], key[ok], var[ok], size[ok], scored[ok],
                          n_caches=n_caches, n_variants=run.index.unique_variants)
        else:
            run.model.run(t, c0, c1, c2, key, var, size, scored, n_caches=n_caches,
                          n_variants=run.index.unique_variants)


def _scored_rows(batch: pa.RecordBatch | pa.Table, state: _State, warmup_ms: int) -> Any:
    """The replayed rows in time order: (rows, times, scored mask, observed-hit mask), or None.

    Only GET/HEAD rows the log counts as a hit or a miss are replayed (:func:`edgeproof.analytics.metrics.classify`);
    the warm-up fills the caches but is not scored."""
    totals = state.totals
    n = batch.num_rows
    cls = _classes(batch)
    for code, count in enumerate(np.bincount(cls, minlength=len(CLASS_NAMES))):
        if code >= 2 and count:
            state.excluded[CLASS_NAMES[code]] += int(count)
    ts_col = batch.column("timestamp")
    if isinstance(ts_col, pa.ChunkedArray):
        ts_col = ts_col.combine_chunks()
    has_ts = ~np.asarray(ts_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    keep = (cls < 2) & has_ts
    totals["no_timestamp"] += int(((cls < 2) & ~has_ts).sum())
    rows = np.nonzero(keep)[0]
    if rows.size == 0:
        return None
    t = ts_col.cast(pa.int64()).to_numpy(zero_copy_only=False)[rows]
    order = np.argsort(t, kind="stable") if rows.size > 1 and (np.diff(t) < 0).any() else None
    if order is not None:
        rows, t = rows[order], t[order]
    if state.t_last is not None:
        totals["out_of_order"] += int((t < state.t_last).sum())
    if state.t_first is None:
        state.t_first = int(t[0])
        state.warm_end = state.t_first + warmup_ms
    state.t_last = int(t[-1]) if state.t_last is None else max(state.t_last, int(t[-1]))
    assert state.warm_end is not None
    scored = t >= state.warm_end if warmup_ms > 0 else np.ones(t.size, dtype=bool)
    sub = batch if order is None and rows.size == n else batch.take(pa.array(rows))
    hit_obs = cls[rows] == 0
    totals["replayed"] += int(rows.size)
    totals["scored"] += int(scored.sum())
    totals["observed_hits"] += int((hit_obs & scored).sum())
    totals["observed_misses"] += int((~hit_obs & scored).sum())
    return sub, t, scored, hit_obs


def _caches(sub: pa.RecordBatch | pa.Table, state: _State, tier: str) -> tuple[np.ndarray, ...]:
    """Cache ids per row: its POP (the edge location), its regional edge cache, the Origin Shield (-1: none).

    Regions come from the one table in :mod:`edgeproof.cloudfront`; a code it does not know is its own
    regional cache, and is listed in ``pops_without_region``."""
    loc_col = _string_column(sub, "x_edge_location")
    loc_idx, loc_vals = _encode(loc_col)
    if "" in loc_vals and "pop" in sub.schema.names:  # no edge location: fall back to the POP code
        loc = pc.if_else(pc.equal(loc_col, ""), _string_column(sub, "pop"), loc_col)
        loc_idx, loc_vals = _encode(loc)
    ids = state.cache_ids
    c0_lut = np.empty(len(loc_vals), dtype=np.int64)
    c1_lut = np.full(len(loc_vals), -1, dtype=np.int64)
    for i, name in enumerate(loc_vals):
        c0_lut[i] = ids.setdefault("pop:" + name, len(ids))
        if tier != "pop":
            if not known_region(name):
                state.no_region.add(name[:3].upper())
            c1_lut[i] = ids.setdefault("regional:" + region_of(name), len(ids))
    c2 = np.full(len(loc_idx), ids.setdefault("shield", len(ids)) if tier == "shield" else -1, dtype=np.int64)
    return c0_lut[loc_idx], c1_lut[loc_idx], c2


def _path_ids(sub: pa.RecordBatch | pa.Table, state: _State) -> tuple[np.ndarray, list[str]]:
    """Global path ids per row, and the paths first seen in this batch."""
    p_enc = _string_column(sub, "cs_uri_stem").dictionary_encode()
    p_idx = p_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    p_lut = pc.fill_null(pc.index_in(p_enc.dictionary, value_set=state.known_paths), -1) \
        .to_numpy(zero_copy_only=False).astype(np.int64)
    fresh = np.nonzero(p_lut < 0)[0]  # new paths (the values of a dictionary are distinct)
    new_paths: list[str] = p_enc.dictionary.take(pa.array(fresh)).to_pylist() if fresh.size else []
    if new_paths:
        p_lut[fresh] = np.arange(len(state.paths), len(state.paths) + len(new_paths))
        state.paths.extend(new_paths)
        state.known_paths = pa.concat_arrays([state.known_paths, pa.array(new_paths, pa.string())])
    return p_lut[p_idx], new_paths


_FORMAT_NAMES = frozenset(name for name, op in PARAM_ALIASES.items() if op == "f")


def _pins_format(query: str) -> bool:
    """Whether a query string names a format other than ``auto`` (the served type then follows the URL,
    not the viewer's Accept)."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name.strip().lower() in _FORMAT_NAMES and value.strip().lower() not in ("", "auto"):
            return True
    return False


def _query_ids(sub: pa.RecordBatch | pa.Table, state: _State, inferences: Sequence[str] = INFERENCES,
               ) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Per inference (of ``inferences``), global (query, Accept) ids per row; and the pairs first seen in
    this batch.

    The Accept of a row is the logged one (``cs_accept``) when present; otherwise inferred (see
    :data:`INFERENCES`): from the user agent and from the served content type, in either order. The
    content type counts only where the URL let the format be negotiated."""
    totals = state.totals
    n = sub.num_rows
    q_idx, q_vals = _encode(_string_column(sub, "cs_uri_query"))
    # logged Accept values → global accept ids
    acc_log = np.full(n, -1, dtype=np.int64)
    if "cs_accept" in sub.schema.names:
        a_idx, a_vals = _encode(_string_column(sub, "cs_accept"))
        lut = np.array([-1 if v in ("", "-") else state.accept_ids.setdefault(v, len(state.accept_ids))
                        for v in a_vals] or [-1], dtype=np.int64)
        acc_log = lut[a_idx]
        state.accepts.extend(list(state.accept_ids)[len(state.accepts):])
    inferred = acc_log < 0
    n_inferred = int(inferred.sum())
    totals["accept_from_log"] += n - n_inferred
    totals["accept_inferred"] += n_inferred
    by_inference = {inf: acc_log.copy() for inf in inferences}
    if n_inferred:
        mask = pa.array(inferred)
        ua_idx, ua_vals = _encode(_string_column(sub, "cs_user_agent").filter(mask))
        ua = np.array([accept_class_for_user_agent(v) for v in ua_vals] or [-1], dtype=np.int64)[ua_idx]
        ct_col = _string_column(sub, "sc_content_type").filter(mask)
        ct0 = _uniform(ct_col)
        ct_i, ct_vals = (np.zeros(len(ct_col), dtype=np.int64), [ct0]) if ct0 is not None else _encode(ct_col)
        ct = np.array([_CLASS_BY_FORMAT.get(format_for_content_type(v) or "", -1) for v in ct_vals] or [-1],
                      dtype=np.int64)[ct_i]
        pinned = np.array([_pins_format(v) for v in q_vals] or [False], dtype=bool)[q_idx[inferred]]
        ct = np.where(pinned, -1, ct)
        first_ua = np.where(ua >= 0, ua, np.where(ct >= 0, ct, 0))
        first_ct = np.where(ct >= 0, ct, np.where(ua >= 0, ua, 0))
        by_inference["user-agent"][inferred] = first_ua
        if "content-type" in by_inference:
            by_inference["content-type"][inferred] = first_ct
        totals["accept_from_user_agent"] += int((ua >= 0).sum())
        totals["accept_from_content_type"] += int(((ua < 0) & (ct >= 0)).sum())
        totals["accept_unknown"] += int(((ua < 0) & (ct < 0)).sum())
        for k in range(3):
            state.accept_counts[k] += int((first_ua == k).sum())
    # (query, accept) pairs → global ids; each strategy applied once per new pair
    n_acc = len(state.accepts)
    new_queries: list[tuple[str, str]] = []
    out: dict[str, np.ndarray] = {}
    for inf, acc in by_inference.items():
        same = next((out[o] for o in out if np.array_equal(by_inference[o], acc)), None)
        if same is not None:  # the inferences agree on every row of this batch
            out[inf] = same
            continue
        local = q_idx * n_acc + acc
        codes, inverse = np.unique(local, return_inverse=True)
        gids = np.empty(codes.size, dtype=np.int64)
        for j, code in enumerate(codes.tolist()):
            q = q_vals[code // n_acc]
            item = ("" if q == "-" else q, state.accepts[code % n_acc])
            gid = state.query_ids.get(item)
            if gid is None:
                gid = state.query_ids[item] = len(state.queries)
                state.queries.append(item)
                new_queries.append(item)
            gids[j] = gid
        out[inf] = gids[inverse.reshape(-1)]
    return out, new_queries


def _summary(runs: list[_Run], target: float, locations: dict[int, str], *, inferred: bool) -> StrategyPrediction:
    """A strategy's prediction (its first run's inference), with the range over the other inferences."""
    run = runs[0]
    c = run.model.result()
    rate = hit_rate(c["hits"] + c["refresh_hits"], c["misses"])
    variants = run.index.unique_variants
    rates = [hit_rate(r["hits"] + r["refresh_hits"], r["misses"]) for r in (x.model.result() for x in runs)]
    known = [r for r in rates if r is not None]
    by_pop: dict[str, PopCounters] = {}
    if hasattr(run.model, "result_by_pop"):
        for cid, p in sorted(run.model.result_by_pop().items()):
            by_pop[locations.get(cid, str(cid))] = {
                **p, "hit_rate": hit_rate(p["hits"] + p["refresh_hits"], p["misses"])}
    return {
        "hit_rate": rate,
        "hit_rate_range": [min(known), max(known)] if known and inferred else None,
        "meets_target": rate is not None and rate >= target,
        "requests": c["requests"],
        "hits": c["hits"],
        "refresh_hits": c["refresh_hits"],
        "misses": c["misses"],
        "origin_requests": c["origin_requests"],
        "regional_hits": c["regional_hits"],
        "shield_hits": c["shield_hits"],
        "transforms": c["transforms"],
        "unique_keys": run.index.unique_keys,
        "unique_variants": variants,
        "keys_per_variant": run.index.keys_with_variant / variants if variants else None,
        "refused": run.refused,
        "cold": c["cold"],
        "expired": c["expired"],
        "evicted": c["evicted"],
        "fragmented": c["fragmented"],
        "variant_bytes": int(run.variant_bytes.sum()),
        "by_pop": by_pop,
    }
