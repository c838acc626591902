"""Replay request logs through a per-POP cache model under candidate cache-key strategies.

>>> result = compare_strategies(["logs/"], ["passthrough", "aggressive"], ttl=30 * 86400, warmup=6 * 3600)
>>> result["strategies"]["aggressive"]["hit_rate"], result["calibration"]

Every GET/HEAD request that the log itself counts as a hit or a miss (:func:`analytics.metrics.classify`)
is re-keyed by each strategy and run, in time order, through one cache per edge location (as in the
log), optionally a regional cache per region and one Origin Shield (:mod:`analytics._cachesim`). The
warm-up period fills the caches but is not scored. Logs carry no ``Accept`` header, so the format a
browser accepted is *inferred* from the served ``sc-content-type`` (AVIF served → AVIF and WebP
accepted; WebP → WebP; JPEG/PNG → neither) and, when that is missing, from the user agent.

Speed: a strategy is applied once per distinct (URL, inferred Accept) — the batch is dictionary-encoded —
and the cache model runs compiled over integer arrays (POP by POP at the pop tier). One pass: each batch
is keyed and replayed before the next is read, so memory is bounded by distinct paths, queries and keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics._cachesim import CacheModel, PopCacheModel
from analytics._replay_keys import KeyIndex
from analytics.metrics import EXCLUDED_REASONS, classify, hit_rate
from analytics.strategies import Strategy, get_strategy
from edgeproof.canonical import format_for_content_type
from edgeproof.errors import UsageError

__all__ = [
    "ACCEPT_BY_CLASS",
    "ACCEPT_INFERENCE_NOTE",
    "COLUMNS",
    "TIERS",
    "accept_class_for_user_agent",
    "compare_strategies",
    "parse_bytes",
    "parse_duration",
    "region_of",
]

TIERS = ("pop", "regional", "shield")
COLUMNS = ("timestamp", "x_edge_location", "pop", "sc_bytes", "cs_method", "cs_uri_stem", "cs_uri_query",
           "cs_user_agent", "x_edge_result_type", "sc_content_type")
#: the Accept header the replay hands a strategy for each inferred class
ACCEPT_BY_CLASS = ("image/jpeg,image/png,image/*;q=0.8", "image/webp,image/jpeg,image/*;q=0.8",
                   "image/avif,image/webp,image/jpeg,image/*;q=0.8")
ACCEPT_INFERENCE_NOTE = (
    "logs carry no Accept header: the accepted formats are inferred from the served sc-content-type "
    "(avif -> avif+webp, webp -> webp, jpeg/png -> neither) and, where that is missing or not an image, "
    "from the user agent (Chrome/Edge >= 85, Firefox >= 93, Safari >= 16: avif+webp; older Chrome, "
    "Firefox >= 65, Safari 14-15: webp)"
)
_CLASS_NAMES = ("hit", "miss", *EXCLUDED_REASONS)
_CLASS_CODES = {name: i for i, name in enumerate(_CLASS_NAMES)}
_CLASS_BY_FORMAT = {"avif": 2, "webp": 1, "jpeg": 0, "png": 0}
_CHROME = re.compile(r"(?:Chrome|CriOS|Edg|EdgA|EdgiOS)/(\d+)")
_FIREFOX = re.compile(r"(?:Firefox|FxiOS)/(\d+)")
_SAFARI = re.compile(r"Version/(\d+)[.\d]*(?:%20|\s|\+)+(?:Mobile/\S+(?:%20|\s|\+)+)?Safari/")

#: CloudFront regional edge caches by POP airport code (the common ones; others are their own region)
_REGIONS: dict[str, tuple[str, ...]] = {
    "us-east-1": ("IAD", "JFK", "EWR", "BOS", "ATL", "MIA", "PHL", "CLT", "JAX", "TPA", "MCI", "YUL", "YTO", "YYZ"),
    "us-east-2": ("ORD", "DTW", "MSP", "CMH", "IND", "PIT", "CLE", "STL"),
    "us-west-1": ("SFO", "LAX", "SJC", "LAS", "PHX", "SAN"),
    "us-west-2": ("SEA", "PDX", "DEN", "SLC", "YVR", "DFW", "HOU", "IAH", "AUS"),
    "eu-west-1": ("DUB", "ORK", "MAN", "EDI", "BCN", "MAD", "LIS", "MRS"),
    "eu-west-2": ("LHR", "LON", "CDG", "PAR", "BRU", "AMS"),
    "eu-central-1": ("FRA", "MUC", "BER", "TXL", "HAM", "DUS", "ZRH", "VIE", "PRG", "WAW", "MXP", "FCO",
                     "MIL", "ARN", "CPH", "OSL", "HEL", "BUD", "SOF", "ATH", "OTP", "ZAG"),
    "ap-south-1": ("BOM", "DEL", "MAA", "BLR", "HYD", "CCU", "PNQ", "CMB", "DXB", "FJR", "BAH", "TLV"),
    "ap-northeast-1": ("NRT", "HND", "KIX", "TPE"),
    "ap-northeast-2": ("ICN", "GMP"),
    "ap-southeast-1": ("SIN", "KUL", "BKK", "MNL", "CGK", "HKG", "SGN", "HAN"),
    "ap-southeast-2": ("SYD", "MEL", "PER", "BNE", "AKL"),
    "sa-east-1": ("GRU", "GIG", "EZE", "SCL", "BOG", "LIM", "FOR", "POA", "QRO"),
}
_REGION_BY_CODE = {code: region for region, codes in _REGIONS.items() for code in codes}


def region_of(edge_location: str) -> str | None:
    """The regional edge cache of a POP (``IAD89-C1`` → ``us-east-1``), None when not in the table."""
    return _REGION_BY_CODE.get(edge_location[:3].upper())


def accept_class_for_user_agent(user_agent: str | None) -> int:
    """0 = neither AVIF nor WebP, 1 = WebP, 2 = AVIF and WebP (by browser and version)."""
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
    return 0


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
    """One strategy's replay state: its key/variant ids and its cache model."""

    def __init__(self, strategy: Strategy, *, ttl_ms: int, capacity: int, tier: str) -> None:
        self.strategy = strategy
        model = PopCacheModel if tier == "pop" else CacheModel  # POP caches only: run POP by POP
        self.model: CacheModel | PopCacheModel = model(ttl_ms=ttl_ms, capacity=capacity)
        self.index = KeyIndex(strategy)
        self.refused = 0


def _string_column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    if name in batch.schema.names:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        return pc.fill_null(col.cast(pa.string()), "")
    return pa.array([""] * batch.num_rows, pa.string())


_FAST_TYPES = pa.array(["Hit", "RefreshHit", "Miss", "OriginShieldHit"])
_FAST_METHODS = pa.array(["GET", "HEAD"])


def _classes(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """Per row: 0 hit, 1 miss, 2.. excluded reason (index into _CLASS_NAMES), by metrics.classify.

    Exact ``Hit``/``RefreshHit``/``Miss``/``OriginShieldHit`` with ``GET``/``HEAD`` (nearly every row) are
    looked up directly; any other combination goes through :func:`analytics.metrics.classify`."""
    rt, method = _string_column(batch, "x_edge_result_type"), _string_column(batch, "cs_method")
    rt0, m0 = _uniform(rt), _uniform(method)
    if rt0 is not None and m0 is not None:  # one result type and one method in the whole batch
        return np.full(len(rt), _CLASS_CODES[classify(rt0, m0)], dtype=np.int64)
    rt_code = pc.fill_null(pc.index_in(rt, value_set=_FAST_TYPES), 9).to_numpy(zero_copy_only=False)
    m_code = pc.fill_null(pc.index_in(method, value_set=_FAST_METHODS), 9).to_numpy(zero_copy_only=False)
    fast_lut = np.array([_CLASS_CODES[classify(t, m)] for t in _FAST_TYPES.to_pylist()
                         for m in _FAST_METHODS.to_pylist()], dtype=np.int64)
    slow = (rt_code > 3) | (m_code > 1)
    cls = fast_lut[np.where(slow, 0, rt_code * 2 + m_code)]
    if slow.any():
        mask = pa.array(slow)
        rt_idx, rt_vals = _encode(rt.filter(mask))
        m_idx, m_vals = _encode(method.filter(mask))
        lut = np.array([_CLASS_CODES[classify(t, m)] for t in rt_vals for m in m_vals] or [0], dtype=np.int64)
        cls[slow] = lut[rt_idx * len(m_vals) + m_idx]
    return cls


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
        from analytics.reader import read_logs

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
    tier: str = "pop",
    target: float = 0.96,
    calibrate: bool = True,
) -> dict[str, Any]:
    """Replay logs under each strategy; see the module docstring and docs/strategies.md for the fields.

    ``batches_or_paths``: record batches / tables in :data:`analytics.schema.LOG_SCHEMA`, or log paths
    (files, folders, globs, ``s3://``) read with :func:`analytics.reader.read_logs`. ``ttl`` and
    ``warmup`` are seconds (or ``"30d"``, ``"6h"``; a ``ttl`` of 0 means no expiry); ``capacity`` is bytes
    per cache (None: unbounded). ``calibrate`` replays ``passthrough`` too when it is not among
    ``strategies``, for the observed-vs-predicted calibration.
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
    runs = [_Run(s, ttl_ms=int(ttl_s * 1000), capacity=cap, tier=tier) for s in chosen]
    calibration = next((r for r in runs if r.strategy.name == "passthrough"), None)
    if calibration is None and calibrate:
        calibration = _Run(get_strategy("passthrough"), ttl_ms=int(ttl_s * 1000), capacity=cap, tier=tier)
        all_runs = [*runs, calibration]
    else:
        all_runs = runs

    source, stream = _batches(batches_or_paths)
    paths: list[str] = []
    known_paths = pa.array([], pa.string())  # the same paths, for pc.index_in
    query_ids: dict[tuple[str, str], int] = {}
    queries: list[tuple[str, str]] = []
    cache_ids: dict[str, int] = {}
    no_region: set[str] = set()
    excluded = dict.fromkeys(EXCLUDED_REASONS, 0)
    totals = {"rows": 0, "replayed": 0, "scored": 0, "observed_hits": 0, "observed_misses": 0,
              "out_of_order": 0, "no_timestamp": 0, "accept_from_content_type": 0, "accept_from_user_agent": 0}
    accept_counts = [0, 0, 0]
    t_first: int | None = None
    t_last: int | None = None
    warm_end: int | None = None

    for batch in source:
        n = batch.num_rows
        totals["rows"] += n
        if n == 0:
            continue
        # 1. the log's own classes: only hits and misses are replayed and scored
        cls = _classes(batch)
        for code, count in enumerate(np.bincount(cls, minlength=len(_CLASS_NAMES))):
            if code >= 2 and count:
                excluded[_CLASS_NAMES[code]] += int(count)
        ts_col = batch.column("timestamp")
        if isinstance(ts_col, pa.ChunkedArray):
            ts_col = ts_col.combine_chunks()
        has_ts = ~np.asarray(ts_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        keep = (cls < 2) & has_ts
        totals["no_timestamp"] += int(((cls < 2) & ~has_ts).sum())
        rows = np.nonzero(keep)[0]
        if rows.size == 0:
            continue
        t = ts_col.cast(pa.int64()).to_numpy(zero_copy_only=False)[rows]
        order = np.argsort(t, kind="stable") if rows.size > 1 and (np.diff(t) < 0).any() else None
        if order is not None:
            rows, t = rows[order], t[order]
        if t_last is not None:
            totals["out_of_order"] += int((t < t_last).sum())
        if t_first is None:
            t_first = int(t[0])
            warm_end = t_first + int(warmup_s * 1000)
        t_last = int(t[-1]) if t_last is None else max(t_last, int(t[-1]))
        assert warm_end is not None
        scored = t >= warm_end if warmup_s > 0 else np.ones(t.size, dtype=bool)
        sub = batch if order is None and rows.size == n else batch.take(pa.array(rows))
        hit_obs = cls[rows] == 0
        totals["replayed"] += int(rows.size)
        totals["scored"] += int(scored.sum())
        totals["observed_hits"] += int((hit_obs & scored).sum())
        totals["observed_misses"] += int((~hit_obs & scored).sum())

        # 2. caches: one per edge location; its regional cache; the shield
        loc_idx, loc_vals = _encode(_string_column(sub, "x_edge_location"))
        if "" in loc_vals and "pop" in sub.schema.names:  # no edge location: fall back to the POP code
            loc = pc.if_else(pc.equal(_string_column(sub, "x_edge_location"), ""), _string_column(sub, "pop"),
                             _string_column(sub, "x_edge_location"))
            loc_idx, loc_vals = _encode(loc)
        c0_lut = np.empty(len(loc_vals), dtype=np.int64)
        c1_lut = np.full(len(loc_vals), -1, dtype=np.int64)
        for i, name in enumerate(loc_vals):
            c0_lut[i] = cache_ids.setdefault("pop:" + name, len(cache_ids))
            if tier != "pop":
                region = region_of(name)
                if region is None:
                    no_region.add(name[:3])
                region = region or "pop:" + name[:3]
                c1_lut[i] = cache_ids.setdefault("regional:" + region, len(cache_ids))
        c0, c1 = c0_lut[loc_idx], c1_lut[loc_idx]
        c2 = np.full(rows.size, cache_ids.setdefault("shield", len(cache_ids)) if tier == "shield" else -1,
                     dtype=np.int64)

        # 3. the accepted formats, inferred (the log has no Accept header)
        ct = _string_column(sub, "sc_content_type")
        ct0 = _uniform(ct)
        ct_idx, ct_vals = (np.zeros(len(ct), dtype=np.int64), [ct0]) if ct0 is not None else _encode(ct)
        ct_lut = np.array([_CLASS_BY_FORMAT.get(format_for_content_type(v) or "", -1) for v in ct_vals] or [0],
                          dtype=np.int64)
        acc = ct_lut[ct_idx]
        need_ua = acc < 0
        totals["accept_from_content_type"] += int((~need_ua).sum())
        if need_ua.any():
            ua_idx, ua_vals = _encode(_string_column(sub, "cs_user_agent").filter(pa.array(need_ua)))
            ua_lut = np.array([accept_class_for_user_agent(v) for v in ua_vals], dtype=np.int64)
            acc[need_ua] = ua_lut[ua_idx]
            totals["accept_from_user_agent"] += int(need_ua.sum())
        for k in range(3):
            accept_counts[k] += int((acc == k).sum())

        # 4. global ids of paths and of (query, accept); each strategy applied once per new one
        p_enc = _string_column(sub, "cs_uri_stem").dictionary_encode()
        p_idx = p_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        p_lut = pc.fill_null(pc.index_in(p_enc.dictionary, value_set=known_paths), -1) \
            .to_numpy(zero_copy_only=False).astype(np.int64)
        fresh = np.nonzero(p_lut < 0)[0]  # new paths (the values of a dictionary are distinct)
        new_paths: list[str] = p_enc.dictionary.take(pa.array(fresh)).to_pylist() if fresh.size else []
        if new_paths:
            p_lut[fresh] = np.arange(len(paths), len(paths) + len(new_paths))
            paths.extend(new_paths)
            known_paths = pa.concat_arrays([known_paths, pa.array(new_paths, pa.string())])
        q_idx, q_vals = _encode(_string_column(sub, "cs_uri_query"))
        local = q_idx * 3 + acc
        present = np.zeros(3 * max(len(q_vals), 1), dtype=bool)
        present[local] = True
        q_lut = np.full(present.shape[0], -1, dtype=np.int64)
        new_queries: list[tuple[str, str]] = []
        for code in np.nonzero(present)[0]:
            q = q_vals[code // 3]
            item = ("" if q == "-" else q, ACCEPT_BY_CLASS[code % 3])
            gid = query_ids.get(item)
            if gid is None:
                gid = query_ids[item] = len(queries)
                queries.append(item)
                new_queries.append(item)
            q_lut[code] = gid
        row_path, row_query = p_lut[p_idx], q_lut[local]
        size = pc.fill_null(sub.column("sc_bytes"), 0).to_numpy(zero_copy_only=False).astype(np.int64) \
            if "sc_bytes" in sub.schema.names else np.zeros(rows.size, dtype=np.int64)
        for run in all_runs:
            if new_paths:
                run.index.add_paths(new_paths)
            if new_queries:
                run.index.add_queries(new_queries)
            key, var = run.index.ids(row_path, row_query, paths, queries)
            ok = key >= 0
            if not ok.all():
                run.refused += int((~ok & scored).sum())
                run.model.run(t[ok], c0[ok], c1[ok], c2[ok], key[ok], var[ok], size[ok], scored[ok],
                              n_caches=len(cache_ids), n_variants=run.index.unique_variants)
            else:
                run.model.run(t, c0, c1, c2, key, var, size, scored,
                              n_caches=len(cache_ids), n_variants=run.index.unique_variants)

    observed = hit_rate(totals["observed_hits"], totals["observed_misses"])
    results = {run.strategy.name: _summary(run, target) for run in runs}
    cal = _summary(calibration, target) if calibration is not None else {"hit_rate": None}
    out: dict[str, Any] = {
        "settings": {"ttl_seconds": ttl_s, "capacity_bytes": cap or None, "warmup_seconds": warmup_s,
                     "tier": tier, "target": target},
        "window": {"start_ms": t_first, "end_ms": t_last, "scored_from_ms": warm_end},
        "requests": totals["rows"],
        "replayed": totals["replayed"],
        "scored": totals["scored"],
        "excluded": excluded,
        "no_timestamp": totals["no_timestamp"],
        "out_of_order": totals["out_of_order"],
        "distinct_paths": len(paths),
        "distinct_queries": len(queries),
        "accept_inference": {
            "note": ACCEPT_INFERENCE_NOTE,
            "from_content_type": totals["accept_from_content_type"],
            "from_user_agent": totals["accept_from_user_agent"],
            "avif_webp": accept_counts[2], "webp": accept_counts[1], "neither": accept_counts[0],
        },
        "observed": {"hits": totals["observed_hits"], "misses": totals["observed_misses"], "hit_rate": observed},
        "calibration": {
            "strategy": "passthrough",
            "observed_hit_rate": observed,
            "predicted_hit_rate": cal["hit_rate"],
            "difference": None if observed is None or cal["hit_rate"] is None else cal["hit_rate"] - observed,
        },
        "strategies": results,
    }
    if tier != "pop":
        out["pops_without_region"] = sorted(no_region)
    if stream is not None:
        out["bad_lines"] = stream.bad_lines
        out["bad_line_examples"] = stream.bad_line_examples
    return out


def _summary(run: _Run, target: float) -> dict[str, Any]:
    c = run.model.result()
    rate = hit_rate(c["hits"], c["misses"])
    variants = run.index.unique_variants
    return {
        "hit_rate": rate,
        "meets_target": rate is not None and rate >= target,
        "requests": c["requests"],
        "hits": c["hits"],
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
    }
