"""Analyse a finished rehearsal: the edge's CloudFront logs together with the load recorder's rows.

Every definition comes from its one home: hit rate, result classes and percentiles from
:mod:`edgeproof.analytics.metrics` (through :class:`edgeproof.analytics.aggregate.LogAggregate` over the
logs, read once, and :func:`exact_quantiles` over rows), gates from :mod:`edgeproof.loadtest.gates`, the
what-if from :func:`edgeproof.analytics.replay.compare_strategies`.
The result is the ``summary.json`` dict; its ``timeline`` (per-bin series) feeds the charts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import pyarrow.compute as pc
from edgeproof.analytics.metrics import exact_quantiles, hit_rate
from edgeproof.rehearsal.autoscaler import scaling_summary, why_lines
from edgeproof.rehearsal.calibration import (
    ReplaySettings,
    calibration_lines,
    replay_input,
    replay_settings,
    self_calibration,
    what_if_logs,
)
from edgeproof.rehearsal.config import RehearsalScenario
from edgeproof.rehearsal.generator import GeneratorSummary, generator_schedule

if TYPE_CHECKING:
    from edgeproof.edge.config import EdgeConfig
    from edgeproof.edge.stats import EdgeStats

__all__ = ["RehearsalSummary", "analyse", "explain", "slow_stack_line"]

ORIGIN_SOURCES = ("from_local_cache", "from_derivative_store", "from_transform")
WHAT_IF = ("passthrough", "sorted", "allowlist", "aggressive", "breakpoints")


def _bin_seconds(duration: float) -> float:
    return 1.0 if duration <= 90 else 2.0 if duration <= 240 else 5.0


def _client(out: Path, t0: datetime | None) -> tuple[dict[str, Any], Any, datetime | None]:
    """Client-side numbers from the recorder rows (exact percentiles)."""
    from edgeproof.loadtest.gates import row_classes
    from edgeproof.loadtest.recorder import read_records

    table = read_records(out / "loadtest")
    classes = np.array(row_classes(table.column("x_cache").to_pylist()), dtype=object)
    dropped = np.array(pc.fill_null(table.column("dropped"), False).to_pylist(), dtype=bool)
    status = np.array(pc.fill_null(table.column("status"), 0).to_pylist(), dtype=np.int64)
    corr = table.column("latency_corrected_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    raw = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    sent = ~dropped
    answered = sent & (status > 0)
    hits = int((classes[sent] == "hit").sum())
    misses = int((classes[sent] == "miss").sum())
    lat: dict[str, Any] = {}
    for name, mask in (("all", sent), ("hit", sent & (classes == "hit")), ("miss", sent & (classes == "miss"))):
        lat[name] = {"corrected": exact_quantiles(corr[mask]), "uncorrected": exact_quantiles(raw[mask])}
    intended = table.column("intended_start")
    first = pc.min(intended).as_py()
    client = {
        "rows": table.num_rows,
        "sent": int(sent.sum()),
        "responses": int(answered.sum()),
        "dropped": int(dropped.sum()),
        "late": int(np.array(pc.fill_null(table.column("late"), False).to_pylist(), dtype=bool).sum()),
        "hits": hits,
        "misses": misses,
        "hit_rate": hit_rate(hits, misses),
        "errors": int((sent & ((status == 0) | (status >= 400))).sum()),
        "status": {str(k): int(v) for k, v in zip(*np.unique(status[sent], return_counts=True), strict=True)},
        "latency_ms": lat,
    }
    return client, table, t0 or first


def _client_timeline(table: Any, t0: datetime, bin_s: float) -> dict[str, dict[str, Any]]:
    from edgeproof.loadtest.recorder import per_bin

    return {str(b): row for b, row in per_bin(table, int(t0.timestamp() * 1_000_000), bin_s).items()}


def _edge(logs: list[str], t0: datetime | None, bin_s: float, spike: tuple[float, float] | None,
          window: tuple[datetime, datetime] | None = None, keep: Sequence[str] = ()
          ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Edge-log numbers in ONE pass over the logs: the summary overall and over the spike, per-POP
    groups and per-bin series (two :class:`~edgeproof.analytics.aggregate.LogAggregate` fed the same
    batches); with ``keep``, also those columns of every batch (the what-if's input, so that a real
    distribution's logs are not read a second time)."""
    from edgeproof.analytics.aggregate import MISSING, LogAggregate
    from edgeproof.analytics.reader import read_logs
    from edgeproof.analytics.summary import summary_json

    start, end = window if window is not None else (None, None)
    agg = LogAggregate(dims=("pop", "bin"), latency_dims=("pop", "bin"), bin_seconds=bin_s)
    spike_agg = None
    if spike is not None and t0 is not None:
        # log times have 1 s resolution: the window is widened to whole seconds
        a = (t0 + timedelta(seconds=spike[0])).replace(microsecond=0)
        b = (t0 + timedelta(seconds=spike[1])).replace(microsecond=0) + timedelta(seconds=1)
        spike_agg = LogAggregate(dims=("pop",), latency_dims=("pop",), start=a, end=b)
    kept: list[Any] = []
    stream = read_logs(logs, columns=list(dict.fromkeys([*agg.columns, *keep])), start=start, end=end)
    for batch in stream:
        agg.add_batch(batch)
        if spike_agg is not None:
            spike_agg.add_batch(batch)
        if keep:  # in the reader's column order, as a read of just those columns gives them
            kept.append(batch.select([n for n in batch.schema.names if n in keep]))
    agg.add_accounting(stream)
    overall = summary_json(agg, "pop")
    spike_summary = None if spike_agg is None else summary_json(spike_agg, "pop")
    bins = {key: counts for key, counts in agg.groups["bin"].items() if key != MISSING}
    timeline: dict[str, dict[str, Any]] = {}
    t0_s = t0.timestamp() if t0 is not None else float(min((float(k) for k in bins), default=0))
    for key, counts in bins.items():
        idx = int(np.floor((float(key) - t0_s) / bin_s + 1e-9))
        q = counts.sketch("time_taken", "cacheable").quantiles([0.5, 0.99])
        cell = timeline.setdefault(str(idx), {"requests": 0, "hits": 0, "misses": 0, "errors": 0})
        cell.update(requests=cell["requests"] + counts.requests, hits=cell["hits"] + counts.hits,
                    misses=cell["misses"] + counts.misses, errors=cell["errors"] + counts.errors,
                    p50_time_taken=q["p50"], p99_time_taken=q["p99"])
        cell["hit_rate"] = hit_rate(cell["hits"], cell["misses"])
    status = {str(k): v for k, v in sorted(agg.status.items())}
    edge = {
        "requests": overall["requests"],
        "cacheable": overall["cacheable"],
        "hits": overall["hits"],
        "misses": overall["misses"],
        "hit_rate": overall["hit_rate"],
        "excluded": overall["excluded"],
        "bad_lines": overall["bad_lines"],
        "latency_ms": overall["latency_ms"],
        "status": status,
        "errors_5xx": agg.total.errors,
        "spike": None if spike_summary is None else {
            "requests": spike_summary["requests"], "hits": spike_summary["hits"],
            "misses": spike_summary["misses"], "hit_rate": spike_summary["hit_rate"]},
    }
    by_pop = []
    # per POP over the scored (spike) window, as the gates are; the whole run when there is none
    for key, group in sorted(((spike_summary or overall).get("groups") or {}).items()):
        by_pop.append({"pop": key, "requests": group.get("requests"), "hits": group.get("hits"),
                       "misses": group.get("misses"), "hit_rate": group.get("hit_rate"), "bytes": group.get("bytes")})
    return edge, timeline, by_pop, kept


def _origin_timeline(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-interval rates from the polled counters (transforms/s, 503/s, origin tasks)."""
    out = []
    prev: dict[str, Any] | None = None
    for s in samples:
        origin = s.get("origin") or {}
        tasks = s.get("tasks") or {}
        cpus = [r["cpu_pct"] for r in tasks.values() if r.get("cpu_pct") is not None]
        row = {"t": round(s["t"], 2), "origin_tasks": s.get("origin_tasks"),
               "tasks_wanted": s.get("tasks_wanted", s.get("origin_tasks")),
               "tasks_starting": s.get("tasks_starting", 0),
               "task_cpu_pct": {k: r.get("cpu_pct") for k, r in tasks.items()},
               "task_inflight": {k: r.get("inflight") for k, r in tasks.items()},
               "task_rps": {k: r.get("rps") for k, r in tasks.items()},
               "cpu_pct_mean": round(sum(cpus) / len(cpus), 1) if cpus else None,
               "transforms_total": origin.get("transforms_total", 0.0),
               "responses_503_total": origin.get("responses_503", 0.0),
               **{k: origin.get(k, 0.0) for k in ORIGIN_SOURCES}}
        if prev is not None:
            for k in ORIGIN_SOURCES:  # per-interval increments, kept across scale-in
                row[f"{k}_delta"] = max(0.0, row[k] - prev[k])
        if prev is not None and s["t"] > prev["t"]:
            dt = s["t"] - prev["t"]
            row["dt"] = dt
            # counters of a stopped task vanish from the sum: never show a negative rate
            row["transforms_per_s"] = max(0.0, (row["transforms_total"] - prev["transforms_total"]) / dt)
            row["origin_503_per_s"] = max(0.0, (row["responses_503_total"] - prev["responses_503_total"]) / dt)
            out.append(row)
        prev = row
    return out


def _origin_answers(totals: dict[str, float]) -> dict[str, Any] | None:
    """Where the origin tasks' answers came from, and the share they did not have to transform."""
    if not totals:
        return None
    counts = {k.removeprefix("from_"): round(totals.get(k, 0.0)) for k in ORIGIN_SOURCES}
    answered = sum(counts.values())
    return {**counts, "reuse_rate": (answered - counts["transform"]) / answered if answered else None}


def _what_if(source: Any, strategy: str, target: float, warmup: float, settings: ReplaySettings | None = None,
             log_kind: str = "standard", prepared: dict[str, Any] | None = None) -> dict[str, Any]:
    """The replay of ``source`` (log paths, or the prepared rows of :func:`replay_input`) under every
    built-in strategy and the run's own; the warm-up fills the caches but is not scored, as the gates."""
    from edgeproof.analytics.replay import compare_strategies
    from edgeproof.analytics.strategies import list_strategies

    known = set(list_strategies())
    names = [s for s in WHAT_IF if s in known]
    if strategy not in names and (strategy in known or strategy.endswith(".toml")):
        names.append(strategy)
    model: dict[str, Any] = {"ttl": 0}  # a real distribution: no expiry within a rehearsal, CloudFront's tiers
    if settings is not None:  # the embedded edge: the replay models the very cache that ran
        model = {"tier": settings.tier, "ttl": settings.ttl, "capacity": settings.capacity}
    result = compare_strategies(source, names, target=target, warmup=warmup, **model)
    rows = []
    for name, row in result["strategies"].items():
        rows.append({"strategy": name, **{k: row.get(k) for k in (
            "hit_rate", "hit_rate_range", "origin_requests", "transforms", "unique_keys", "keys_per_variant",
            "meets_target", "cold", "expired", "evicted", "fragmented")}})
    accept = result.get("accept_inference") or {}
    return {"strategies": rows, "calibration": result.get("calibration"),
            "self_calibration": self_calibration(result, strategy),
            "observed": result.get("observed"), "scored": result.get("scored"), "excluded": result.get("excluded"),
            "logs": log_kind, "settings": None if settings is None else settings.to_json(),
            "input": prepared, "accept_from_log": accept.get("from_log"),
            # the inference note only where some Accept was inferred (not logged)
            "note": accept.get("note") if (accept.get("from_log") or 0) < (result.get("replayed") or 0) else None}


def _replay(out: Path, logs: list[str], scenario: RehearsalScenario, scope: str, target: float,
            phases: list[tuple[str, float, float]], spike_names: list[str], spike: tuple[float, float],
            t0: datetime | None, records: Any, window: tuple[datetime, datetime] | None,
            edge_config: EdgeConfig | None, window_batches: list[Any] | None = None) -> dict[str, Any]:
    """The what-if, its input prepared for the run it replays.

    Embedded stack: the edge's real-time logs, keyed by each request's intended start and cut at the
    spike's end (:func:`edgeproof.rehearsal.calibration.replay_input`), through a cache model with the
    edge config's tier, TTL and capacity: it scores exactly the requests the gates score. A real
    distribution: its standard logs over the run's window, the warm-up counted from its first line."""
    warmup = spike[0] if scope == "spike" else 0.0
    if window is not None or edge_config is None or t0 is None:
        source: Any = logs
        if window is not None:  # only the run's window of a real distribution's logs (small: a list is fine)
            source = window_batches  # kept by _edge's one pass over them: not read a second time
        return _what_if(source, scenario.strategy, target, warmup)
    replay_logs, log_kind = what_if_logs(out, edge_config)
    scored = spike_names if scope == "spike" else [n for n, _, _ in phases]
    span = spike if scope == "spike" else (0.0, max(b for _, _, b in phases))
    prepared = replay_input(replay_logs, load_start=t0, spike=span, records=records, spike_phases=scored)
    return _what_if(prepared.table, scenario.strategy, target, prepared.warmup, replay_settings(edge_config),
                    log_kind, prepared.info)


def _variants_written(out: Path, since: float) -> int:
    """Distinct variants written to the derivative store(s) since ``since`` (shared folder or every task's)."""
    store = out / "store"
    seen: set[str] = set()
    for folder in sorted(store.iterdir()) if store.is_dir() else []:
        for f in folder.rglob("*"):
            if f.is_file() and not f.name.startswith(".") and f.stat().st_mtime >= since:
                seen.add(f.relative_to(folder).as_posix())
    return len(seen)


def _origin_work(out: Path, totals: dict[str, float], since: float) -> dict[str, Any]:
    """Transforms vs distinct variants made: a variant made twice is work a shared store would have saved."""
    transforms = round(totals.get("transforms_total", 0.0))
    distinct = _variants_written(out, since)
    repeats = max(0, transforms - distinct)
    return {"transforms": transforms, "distinct_variants": distinct, "repeat_transforms": repeats,
            "repeat_transform_rate": repeats / transforms if transforms else 0.0,
            # the origin's transform_duration_seconds histogram (sum, count): the cost model's CPU per transform
            "transform_seconds": totals.get("transform_duration_seconds_sum"),
            "timed_transforms": round(totals.get("transform_duration_seconds_count", 0.0))}


def _origin_gates(rules: tuple[str, ...], values: dict[str, float | None]) -> list[Any]:
    """The origin gates, judged by the one gate language over the origin counters (rows 0)."""
    from edgeproof.loadtest.gates import evaluate_values
    from edgeproof.rehearsal.config import ORIGIN_METRICS

    return evaluate_values(rules, values, ORIGIN_METRICS, where="origin_gates")


def explain(s: RehearsalSummary) -> list[str]:
    """Plain-language reasons behind the numbers: where the misses came from and what the origin did."""
    why: list[str] = []
    anatomy = s.get("miss_anatomy") or {}
    total = sum(v for v in anatomy.values() if v)
    rows = {r["strategy"]: r for r in (s.get("what_if") or {}).get("strategies") or []}
    mine = rows.get(s["strategy"])
    if total:
        parts = [f"{anatomy[k]} {k}" for k in ("cold", "fragmented", "expired", "evicted") if anatomy.get(k)]
        why.append(f"Misses over the spike (replay of the edge logs under {s['strategy']}): {', '.join(parts)}.")
        frag = anatomy.get("fragmented") or 0
        if frag and frag >= 0.25 * total:
            best = max(rows.values(), key=lambda r: r["hit_rate"] or 0.0) if rows else None
            text = (f"{frag / total:.0%} of the misses are fragmented: the variant was already cached at that POP "
                    f"under another spelling of its URL (parameter order, aliases, case, tracking parameters), "
                    f"so the '{s['strategy']}' cache key splits one image into ")
            text += f"{mine['keys_per_variant']:.1f} keys on average." if mine and mine.get("keys_per_variant") \
                else "several keys."
            if best and best["strategy"] != s["strategy"]:
                text += (f" Replayed with a normalizing key ('{best['strategy']}'), the same traffic scores "
                         f"{best['hit_rate']:.1%}.")
            why.append(text)
        cold = anatomy.get("cold") or 0
        if cold and cold >= 0.5 * total:
            why.append(f"{cold / total:.0%} of the misses are cold: the first request for a variant at a POP "
                       f"(new SKUs at the launch, the long tail). No cache key avoids them; a shared derivative "
                       f"store (and prescaling the launch) makes them cheap.")
        if anatomy.get("expired"):
            why.append(f"{anatomy['expired']} misses are expired objects: raise the TTL for immutable variants.")
    pre = s.get("prescaled")
    if pre:
        why.append(f"Before the load, {pre['written']} variants of {len(pre['skus'])} SKUs (the launch and the "
                   f"hottest) were prescaled into the shared derivative store in {pre['seconds']:.0f}s.")
    warm = (s.get("prewarmed") or {}).get("edge")
    if warm:
        why.append(f"Before the load, the edge was pre-warmed with {warm['sent']} requests ({warm['keys']} cache keys of "
                   f"{len(warm['skus'])} SKUs × {warm['pops']} POPs, every Accept the clients send) in "
                   f"{warm['seconds']:.0f}s: {warm['misses']} filled a POP from the origin group, {warm['hits']} from "
                   f"their regional edge cache, so that the first viewer of those keys at a POP finds them cached "
                   f"(`edgeproof rehearse compare` against a run with prewarm = \"store\" measures the gain).")
    work = s.get("origin_work") or {}
    stack = s.get("stack") or {}
    if work.get("transforms"):
        text = (f"The origin made {work['transforms']} transforms for {work['distinct_variants']} distinct variants "
                f"({work['repeat_transform_rate']:.0%} repeated work).")
        if not stack.get("shared_derivatives"):
            text += (" Each task keeps its variants in a private cache and on its own disk: a task added by "
                     "scale-out starts cold and transforms again what the others already made.")
        why.append(text)
    why.extend(why_lines(s.get("autoscaling"), bool(stack.get("shared_derivatives"))))
    ot = s.get("origin_timeline") or []
    for ev in s.get("events") or []:
        if ev["action"] != "scale_out" or ev.get("by") == "autoscaler" or not ot:
            continue
        before = sum(r.get("transforms_per_s", 0.0) * r["dt"] for r in ot if ev["t"] - 10 <= r["t"] < ev["t"])
        after = sum(r.get("transforms_per_s", 0.0) * r["dt"] for r in ot if ev["t"] <= r["t"] < ev["t"] + 10)
        why.append(f"Scale-out at t={ev['t']:.0f}s (→ {ev['origin_tasks']} tasks): {after:.0f} transforms in the "
                   f"10 s after it, {before:.0f} in the 10 s before.")
        break
    group = s.get("origin_group") or {}
    if group.get("primary"):
        served = group["primary"] - group.get("failovers", 0)
        why.append(f"The edge's misses went to the derivative store first: {served} of {group['primary']} were "
                   f"served from it without a transform.")
    return why


def _hit_rate_target(rules: tuple[str, ...]) -> float:
    from edgeproof.loadtest.gates import parse_gate

    for rule in rules:
        g = parse_gate(rule)
        if g.metric == "hit_rate" and g.op in (">=", ">"):
            return g.threshold
    return 0.96


class RehearsalSummary(TypedDict):
    """The ``summary.json`` of a rehearsal: what :func:`analyse` returns, the report
    (:mod:`edgeproof.rehearsal.report`) and the CLI read, and a later run compares against.

    Typed because it crosses packages and outlives the run; the keys are the JSON's, in its order.
    The nested records stay plain dicts: they are the JSON of their own producers (the client rows,
    :func:`edgeproof.analytics.summary.summarize` for ``edge``, the gates' ``to_json``, the replay).
    """

    kind: str
    scenario: str
    description: str
    strategy: str
    duration: float
    peak_rps: float
    embedded: bool
    target_url: str | None
    stack: dict[str, Any] | None
    started: str
    finished: str
    load_start: str | None
    phases: list[dict[str, Any]]
    spike_phases: list[str]
    hit_rate_target: float
    hit_rate: float | None
    spike_hit_rate: float | None
    hit_rate_source: str
    latency_ms: dict[str, Any]
    errors: dict[str, Any]
    transforms: int | None
    origin_work: dict[str, Any] | None
    prescaled: dict[str, Any] | None
    origin_requests: int | None
    origin_group: dict[str, Any] | None
    origin_answers: dict[str, Any] | None
    miss_anatomy: dict[str, Any] | None
    edge: dict[str, Any] | None
    client: dict[str, Any]
    generator: GeneratorSummary | None
    by_pop: list[dict[str, Any]]
    what_if: dict[str, Any] | None
    events: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    autoscaling: dict[str, Any] | None
    prewarmed: dict[str, Any] | None
    origin_timeline: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    bin_seconds: float
    consistency: dict[str, Any] | None
    gates: dict[str, Any]
    origin_gates: list[str]
    verdict_table: str
    passed: bool
    notes: list[str]
    why: list[str]


def analyse(*, out: Path, scenario: RehearsalScenario, phases: list[tuple[str, float, float]], embedded: bool,
            samples: list[dict[str, Any]], events: list[dict[str, Any]], real_logs: str | None, what_if: bool,
            started: float, finished: float, target_url: str | None, prescaled: dict[str, Any] | None = None,
            load_began: float | None = None, edge_config: EdgeConfig | None = None,
            tasks: list[dict[str, Any]] | None = None, prewarmed: dict[str, Any] | None = None,
            datapoints: list[tuple[float, float, int]] | None = None) -> RehearsalSummary:
    """The summary of a finished run, in named steps: client rows and gates, edge logs, what-if,
    timeline, origin, cross-check, then the summary and the reasons behind its numbers."""
    from edgeproof.loadtest.gates import evaluate
    from edgeproof.loadtest.scenario import load_scenario

    sc = load_scenario(out / "loadtest-scenario.toml")
    bin_s = _bin_seconds(scenario.duration)
    client, table, t0 = _client(out, None)
    spike_names, spike = _spike(phases)
    verdict = evaluate(table, sc.gates.rules, scored_phases=spike_names, scope=sc.gates.scope)
    target = _hit_rate_target(sc.gates.rules)
    notes: list[str] = []
    logs = [str(out / "logs")] if embedded else [real_logs] if real_logs else []
    # a real distribution's log bucket holds more than this run: keep the rehearsal's window only
    window = None if embedded or not logs else (datetime.fromtimestamp(started - 60, UTC),
                                                datetime.fromtimestamp(finished + 60, UTC))
    warm_until = ((prewarmed or {}).get("edge") or {}).get("until")
    if embedded and warm_until:  # the edge pre-warm's requests precede the load: not the run's traffic
        window = (datetime.fromtimestamp(warm_until, UTC), datetime.fromtimestamp(finished + 60, UTC))
    edge, edge_timeline, by_pop, window_batches = _edge_side(logs, t0, bin_s, spike, window, what_if, notes)
    replay = None
    if what_if and logs and edge and edge["requests"]:
        replay = _advisory_replay(notes, lambda: _replay(
            out, logs, scenario, sc.gates.scope, target, phases, spike_names, spike, t0, table,
            None if embedded else window, edge_config, window_batches))
    client_timeline = _client_timeline(table, t0, bin_s) if t0 is not None else {}
    timeline = _timeline(edge_timeline, client_timeline, bin_s)
    latest = samples[-1] if samples else {}
    edge_stats = latest.get("edge") or {}
    origin_totals = latest.get("origin") or {}
    origin_work = _origin_work(out, origin_totals, load_began or started) if embedded and samples else None
    if embedded and scenario.origin_gates:
        verdict.gates.extend(_origin_gates(scenario.origin_gates, _origin_values(origin_totals, origin_work)))
    if replay:
        replay["calibration_notes"] = calibration_lines(
            replay, dropped=client["dropped"], evictions=_evictions(edge_stats),
            edge_spike_hit_rate=((edge or {}).get("spike") or {}).get("hit_rate"))
    anatomy = _anatomy(replay, scenario.strategy)
    if edge is not None and not edge["requests"]:
        notes.append("the CloudFront logs hold no request in this run's window (CloudFront delivers standard "
                     "logs minutes after the requests): hit rates below come from the client rows")
        edge = None
    consistency = _consistency(edge, client, notes) if edge is not None and embedded else None
    summary: RehearsalSummary = {
        "kind": "rehearsal",
        "scenario": scenario.name,
        "description": scenario.description,
        "strategy": scenario.strategy,
        "duration": scenario.duration,
        "peak_rps": scenario.peak_rps,
        "embedded": embedded,
        "target_url": target_url,
        "stack": _stack(scenario) if embedded else None,
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished": datetime.fromtimestamp(finished, UTC).isoformat(),
        "load_start": t0.isoformat() if t0 else None,
        "phases": [{"name": n, "start": a, "end": b} for n, a, b in phases],
        "spike_phases": spike_names,
        "hit_rate_target": target,
        "hit_rate": edge["hit_rate"] if edge else client["hit_rate"],
        "spike_hit_rate": _spike_hit_rate(edge, verdict),
        "hit_rate_source": "edge logs" if edge else "client rows (X-Cache)",
        "latency_ms": _latency(edge, client),
        "errors": {"client": client["errors"], "client_status": client["status"],
                   "edge_5xx": None if edge is None else edge["errors_5xx"],
                   "origin_503": round(origin_totals.get("responses_503", 0.0)) if origin_totals else None},
        # the polled sums cover every task started, a stopped one up to its removal
        "transforms": round(origin_totals["transforms_total"]) if "transforms_total" in origin_totals else None,
        "origin_work": origin_work,
        "prescaled": prescaled,
        # the edge's fetches from its origin group: primary (derivative store) + secondary (transformers)
        "origin_requests": edge_stats.get("origin_requests") if edge_stats else None,
        "origin_group": {k: v for k, v in (edge_stats.get("origin") or {}).items() if k != "inflight"}
        if edge_stats else None,
        "origin_answers": _origin_answers(origin_totals),
        "miss_anatomy": anatomy,
        "edge": edge,
        "client": client,
        # the generator's own lateness: a late send is counted in the corrected latency, not the stack's fault
        "generator": None if t0 is None else generator_schedule(
            table, t0=t0, bin_s=bin_s, scored_phases=spike_names if sc.gates.scope == "spike" else None),
        "by_pop": by_pop,
        "what_if": replay,
        "events": events,
        "tasks": tasks or [],
        "autoscaling": None,
        "prewarmed": prewarmed,
        "origin_timeline": _origin_timeline(samples),
        "timeline": timeline,
        "bin_seconds": bin_s,
        "consistency": consistency,
        "gates": verdict.to_json(),
        "origin_gates": list(scenario.origin_gates) if embedded else [],
        "verdict_table": verdict.table(),
        "passed": verdict.passed,
        "notes": notes,
        "why": [],
    }
    if embedded:
        summary["autoscaling"] = scaling_summary(scenario.autoscaling, events, tasks or [],
                                                 summary["origin_timeline"], timeline, datapoints or [])
    summary["why"] = explain(summary)
    return summary


def _spike(phases: list[tuple[str, float, float]]) -> tuple[list[str], tuple[float, float]]:
    """The scored phases (the spike's, else every phase) and the span they cover, in seconds from the start."""
    from edgeproof.loadtest.shapes import SPIKE_PHASES

    names = [n for n, _, _ in phases if n in SPIKE_PHASES] or [n for n, _, _ in phases]
    return names, (min(a for n, a, _ in phases if n in names), max(b for n, _, b in phases if n in names))


def _edge_side(logs: list[str], t0: datetime | None, bin_s: float, spike: tuple[float, float],
               window: tuple[datetime, datetime] | None, what_if: bool, notes: list[str]
               ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """The edge-log numbers of :func:`_edge`, or a note saying why there are none."""
    if not logs:
        notes.append("no CloudFront logs (give --logs s3://… with --target): edge-side numbers are absent")
        return None, {}, [], []
    keep: tuple[str, ...] = ()
    if what_if and window is not None:  # one pass: a real distribution's what-if replays the rows kept
        from edgeproof.analytics.replay import COLUMNS

        keep = COLUMNS
    return _edge(logs, t0, bin_s, spike, window, keep)


def _advisory_replay(notes: list[str], run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """The what-if replay ``run`` (:func:`_replay`); its failure is a note, not a failed run: the
    what-if is advisory, the run's verdict and report stand without it."""
    try:
        replay = run()
    except Exception as err:  # noqa: BLE001 - the what-if is advisory: keep the run's verdict and report
        notes.append(f"the what-if replay failed ({type(err).__name__}: {str(err)[:300]}): no miss anatomy "
                     f"or strategy comparison in this report")
        return None
    if replay and replay.get("note"):
        notes.append(replay["note"])
    return replay


def _timeline(edge_timeline: dict[str, dict[str, Any]], client_timeline: dict[str, dict[str, Any]],
              bin_s: float) -> list[dict[str, Any]]:
    """Edge-log and client-row series side by side, one row per time bin either has (the charts' input)."""
    keys = sorted({int(k) for k in (*edge_timeline, *client_timeline)})
    timeline = []
    for k in keys:
        e, c = edge_timeline.get(str(k), {}), client_timeline.get(str(k), {})
        timeline.append({
            "t": k * bin_s,
            "edge_requests_per_s": e.get("requests", 0) / bin_s, "edge_hit_rate": e.get("hit_rate"),
            "edge_p50_ms": e.get("p50_time_taken"), "edge_p99_ms": e.get("p99_time_taken"),
            "edge_5xx": e.get("errors", 0),
            "client_scheduled_per_s": c.get("scheduled", 0) / bin_s, "client_hit_rate": c.get("hit_rate"),
            "client_p50_corrected_ms": c.get("p50_corrected"), "client_p99_corrected_ms": c.get("p99_corrected"),
            "client_p99_uncorrected_ms": c.get("p99_raw"),
        })
    return timeline


def _origin_values(origin_totals: dict[str, float], origin_work: dict[str, Any] | None) -> dict[str, float | None]:
    """The values the origin gates judge: 503s from the polled counters, transforms and repeats from the stores."""
    values: dict[str, float | None] = {"origin_503": origin_totals.get("responses_503", 0.0)}
    if origin_work is not None:
        values.update(transforms=origin_work["transforms"], repeat_transform_rate=origin_work["repeat_transform_rate"])
    return values


def _evictions(edge_stats: EdgeStats | dict[str, Any]) -> int:
    """Evictions in every POP cache and shared tier (from the edge's last /stats): a capacity the replay
    must match to agree with the run."""
    pops, tiers = edge_stats.get("pops") or {}, edge_stats.get("tiers") or {}
    return sum(int(v.get("evictions") or 0) for part in (pops, tiers) for v in part.values())


def _anatomy(replay: dict[str, Any] | None, strategy: str) -> dict[str, Any] | None:
    """The run's own strategy's miss classes, from the what-if replay."""
    if not replay:
        return None
    mine = next((r for r in replay["strategies"] if r["strategy"] == strategy), None)
    return {k: mine[k] for k in ("cold", "expired", "evicted", "fragmented")} if mine else None


def _consistency(edge: dict[str, Any], client: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Edge-log counts against recorder rows: on the embedded stack both saw every request, so they agree."""
    consistency: dict[str, Any] = {
        "edge_log_requests": edge["requests"], "client_responses": client["responses"],
        "edge_log_hits": edge["hits"], "client_hits": client["hits"],
        "edge_log_misses": edge["misses"], "client_misses": client["misses"],
    }
    consistency["match"] = (edge["requests"] == client["responses"] and edge["hits"] == client["hits"]
                            and edge["misses"] == client["misses"])
    if not consistency["match"]:
        notes.append("edge logs and recorder rows disagree (see consistency); a request may have been "
                     "answered by a connection error without reaching the edge")
    return consistency


def _stack(scenario: RehearsalScenario) -> dict[str, Any]:
    """The embedded stack's shape, as the report and a comparison of two runs need it."""
    st = scenario.stack
    return {"pops": st.pop_count, "pop_ids": list(st.pop_ids), "origin_processes": st.origin_processes, "origin_workers": st.origin_workers,
            "local_cache_mb": st.local_cache_mb, "shared_derivatives": st.shared_derivatives,
            "catalog_images": st.catalog_images, "prescale_launch": st.prescale_launch,
            "prescale_hottest": st.prescale_hottest}


def _spike_hit_rate(edge: dict[str, Any] | None, verdict: Any) -> float | None:
    """The spike's hit rate: from the edge logs where they have it, else the hit-rate gate's value."""
    if edge and edge.get("spike"):
        return edge["spike"].get("hit_rate")
    return next((g.value for g in verdict.gates if g.gate.replace(" ", "").startswith("hit_rate>")),
                verdict.totals.get("hit_rate"))


def _latency(edge: dict[str, Any] | None, client: dict[str, Any]) -> dict[str, Any]:
    """p50/p99 by class: the edge's time-taken, the client's corrected and uncorrected latency."""
    return {
        "edge": None if edge is None else {c: {q: edge["latency_ms"]["time_taken"][c][q] for q in ("p50", "p99")}
                                           for c in ("hit", "miss") if c in edge["latency_ms"]["time_taken"]},
        "client": {c: {q: client["latency_ms"][c]["corrected"][q] for q in ("p50", "p99")}
                   for c in ("hit", "miss", "all")},
        "client_uncorrected": {c: {q: client["latency_ms"][c]["uncorrected"][q] for q in ("p50", "p99")}
                               for c in ("hit", "miss", "all")},
    }


_LATENCY_GATE = re.compile(r"^\s*(p\d+(?:\.\d+)?_ms|mean_ms)\b")


def slow_stack_line(s: RehearsalSummary) -> str | None:
    """When a latency gate failed while the generator kept the schedule, the time was the stack's: say so,
    with the edge's server-side time-taken where the logs have it."""
    g = s.get("generator")
    failed = [r["gate"] for r in s["gates"]["gates"] if not r["passed"] and _LATENCY_GATE.match(r["gate"])]
    if not g or not g["kept_schedule"] or not failed:
        return None
    edge = (s["latency_ms"].get("edge") or {})
    p99 = [f"{c} {v['p99']:.0f} ms" for c, v in edge.items() if v.get("p99") is not None]
    text = f"the stack was slow: {', '.join(failed)} failed while the load generator kept the schedule"
    if p99:
        text += f"; edge time-taken p99 (server side) {', '.join(p99)}"
    return text
