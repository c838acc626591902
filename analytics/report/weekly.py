"""The weekly hit-rate report: one ISO week of CloudFront logs against the hit-rate target.

:func:`build_weekly` streams the week's logs once (record batches from :func:`analytics.read_logs`
into a :class:`~edgeproof.analytics.aggregate.LogAggregate`, bounded memory, with a progress line), runs
the replay what-if (:func:`edgeproof.analytics.replay.compare_strategies`) for the miss anatomy and the best
strategy, compares with last week's summary from the history store, and writes ``summary.json``,
``report.html`` (self-contained), ``report.md`` and the PNG charts into ``out``.

The window is an ISO week or any ``start``/``end`` range. Before judging it, the report works out
its coverage (:mod:`edgeproof.analytics.coverage`): which hours of the window have no request at all, plus the
damaged files and lost lines the log stream reported. A missing day is indistinguishable from a quiet
one, and when it was the bad day a verdict on the rest would say MET for a week that missed, so:

* every hour covered: MET when the hit rate (DESIGN.md's definition, :mod:`edgeproof.analytics.metrics`) is at
  least ``target``, MISSED otherwise (exit 0 / 1);
* hours missing or a file damaged: INCOMPLETE (exit 4), unless ``allow_gaps`` accepts a known outage, and then MET /
  MISSED on the data there is; the gaps are listed in every output either way;
* no request at all in the window: a usage error (exit 2).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from edgeproof.analytics.aggregate import MISSING, REPORT_DIMENSIONS, LogAggregate
from edgeproof.analytics.coverage import coverage, parse_stamp
from edgeproof.analytics.report.store import publish_dir, read_json, write_json
from edgeproof.analytics.report.weekly_render import render_weekly

from edgeproof.errors import EXIT_INCOMPLETE, EXIT_MISSED, EXIT_OK, UsageError
from edgeproof.progress import Progress

__all__ = ["EXIT_CODES", "VERDICTS", "WeeklyResult", "build_weekly", "iso_week_bounds", "previous_week",
           "week_of"]

#: strategies replayed by the what-if (those that exist in the registry)
WHAT_IF_STRATEGIES = ("passthrough", "sorted", "allowlist", "aggressive", "breakpoints")
TOP_N = 10
VERDICTS = ("MET", "MISSED", "INCOMPLETE")
#: verdict → exit status, from the one contract in edgeproof.errors (no data at all is a UsageError: 2)
EXIT_CODES = {"MET": EXIT_OK, "MISSED": EXIT_MISSED, "INCOMPLETE": EXIT_INCOMPLETE}


def iso_week_bounds(week: str) -> tuple[datetime, datetime]:
    """``2026-W47`` → (Monday 00:00 UTC, next Monday 00:00 UTC)."""
    try:
        year_s, week_s = week.upper().split("-W")
        monday = date.fromisocalendar(int(year_s), int(week_s), 1)
    except ValueError as err:
        raise UsageError(f"bad week {week!r}", detail="expected an ISO week such as 2026-W47") from err
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return start, start + timedelta(days=7)


def week_of(moment: date | datetime) -> str:
    iso = moment.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def previous_week(week: str) -> str:
    start, _ = iso_week_bounds(week)
    return week_of(start - timedelta(days=1))


def report_window(week: str | None, start: str | datetime | None,
                  end: str | datetime | None) -> tuple[datetime, datetime, str | None]:
    """(start, end, ISO week or None) of the requested window: ``week``, or ``start``/``end`` (UTC).

    ``week`` defaults to the last complete ISO week. A ``start``/``end`` range that is exactly an ISO
    week is named as that week (so the history store and week-over-week deltas work for it).
    """
    if start is None and end is None:
        week = week or week_of(datetime.now(UTC) - timedelta(days=7))
        return (*iso_week_bounds(week), week)
    if week is not None:
        raise UsageError("give --week or --from/--to, not both")
    if start is None or end is None:
        raise UsageError("--from and --to go together", detail="e.g. --from 2026-11-16 --to 2026-11-23")
    from edgeproof.analytics.reader import parse_time

    t0, t1 = parse_time(start), parse_time(end)
    if t0 is None or t1 is None:
        raise UsageError("--from and --to go together", detail="e.g. --from 2026-11-16 --to 2026-11-23")
    if t1 <= t0:
        raise UsageError(f"empty window {t0:%Y-%m-%d %H:%M} .. {t1:%Y-%m-%d %H:%M}",
                         detail="--to is exclusive and must be after --from")
    iso = week_of(t0)
    return (t0, t1, iso) if iso_week_bounds(iso) == (t0, t1) else (t0, t1, None)


def window_label(start: datetime, end: datetime, week: str | None) -> str:
    """``2026-W47`` for a week, ``2026-11-16 00:00 – 2026-11-19 00:00 UTC`` for another window."""
    return week or f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


@dataclass
class WeeklyResult:
    summary: dict[str, Any]
    out_dir: Path
    files: list[Path]
    published: list[str]

    @property
    def met_target(self) -> bool:
        """True only for a MET verdict (never for an INCOMPLETE week, whatever its hit rate)."""
        return self.summary["verdict"] == "MET"

    @property
    def verdict(self) -> str:
        return str(self.summary["verdict"])

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


MAX_EXAMPLES = 10


def _damage(stream: Any) -> dict[str, Any]:
    """What the stream lost: ``count`` bad lines, their ``examples`` (``file:line: reason``),
    ``excerpts`` (the same with the reader's escaped excerpt of the line, where it gives one) and
    ``files`` it could not read, or read only up to a break (``FileStats.error``)."""
    excerpts: list[str] = []
    for f in stream.files:
        # FileStats.bad_examples (file, line, reason, excerpt) where the reader keeps them, else the strings
        for item in getattr(f, "bad_examples", None) or f.examples:
            text = str(item)
            if getattr(item, "excerpt", ""):
                text += f' — line: "{item.excerpt}"'
            if len(excerpts) < MAX_EXAMPLES:
                excerpts.append(text)
    return {"count": stream.bad_lines, "examples": stream.bad_line_examples, "excerpts": excerpts,
            "files": [{"file": f.name, "error": f.error} for f in stream.files if f.error]}


def _merge_damage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {"count": a["count"] + b["count"], "examples": (a["examples"] + b["examples"])[:MAX_EXAMPLES],
            "excerpts": (a["excerpts"] + b["excerpts"])[:MAX_EXAMPLES],
            "files": sorted(a["files"] + b["files"], key=lambda d: d["file"])}


def _week_aggregate(start: datetime, end: datetime) -> LogAggregate:
    """The report's aggregate: per day, hour, POP, content type and path family, with the missed URLs."""
    return LogAggregate(dims=REPORT_DIMENSIONS, missed_urls=True, start=start, end=end)


def _aggregate_files(names: list[str], start: datetime, end: datetime,
                     reader_options: dict[str, Any]) -> tuple[LogAggregate, dict[str, Any]]:
    """One worker's share: its files into one aggregate (run in a child process with --jobs)."""
    from edgeproof.analytics.reader import read_logs

    agg = _week_aggregate(start, end)
    stream = read_logs(names, start=start, end=end, columns=agg.columns, **reader_options)
    for batch in stream:
        agg.add_batch(batch)
    return agg, _damage(stream)


def _stream(logs: list[str], start: datetime, end: datetime, progress: bool,
            reader_options: dict[str, Any], jobs: int = 1) -> tuple[LogAggregate, dict[str, Any]]:
    """One pass over the week's batches; returns the aggregate and the reader's damage report.

    The damage report is :func:`_damage`'s.

    With ``jobs > 1`` the week's files are spread over that many processes, each building its own
    aggregate, merged here as they finish (aggregates merge by addition).
    """
    from edgeproof.analytics.reader import read_logs

    agg = _week_aggregate(start, end)
    stream = read_logs(logs, start=start, end=end, columns=agg.columns, **reader_options)
    bar = Progress("reading logs", total=len(stream.inputs), unit=" files", enabled=progress)
    if jobs > 1 and len(stream.inputs) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        names = [i.name for i in stream.inputs]
        chunk = max(1, min(16, len(names) // (jobs * 4) or 1))
        damage: dict[str, Any] = {"count": 0, "examples": [], "excerpts": [], "files": []}
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_aggregate_files, names[i:i + chunk], start, end, reader_options): len(
                names[i:i + chunk]) for i in range(0, len(names), chunk)}
            for future in as_completed(futures):
                part, part_damage = future.result()
                agg.merge(part)
                damage = _merge_damage(damage, part_damage)
                bar.update(futures[future], extra=f"{agg.rows_seen:,} lines, hit rate so far {_pct(agg.total.hit_rate)}")
        bar.close()
        return agg, damage
    for inp in stream.inputs:
        for batch in stream.read_one(inp):
            agg.add_batch(batch)
            bar.update(extra=f"{agg.rows_seen:,} lines, hit rate so far {_pct(agg.total.hit_rate)}")
        bar.update(1)
    bar.close()
    return agg, _damage(stream)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.2f}%"


def _variants_of_missed(agg: LogAggregate) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Top missed variants and top fragmenting families, from the distinct missed URLs.

    Each distinct missed URL is mapped to its true canonical request by a strategy's ``variant``
    (strategy-independent by contract); the served content type stands in for ``Accept``.
    """
    from edgeproof.analytics.aggregate import path_family
    from edgeproof.analytics.strategies import get_strategy

    from edgeproof.errors import EdgeproofError

    strategy = get_strategy("aggressive")
    by_variant: Counter[str] = Counter()
    spellings: dict[str, set[str]] = defaultdict(set)
    family_urls: dict[str, set[str]] = defaultdict(set)
    family_variants: dict[str, set[str]] = defaultdict(set)
    family_misses: Counter[str] = Counter()
    for (stem, query, ctype), count in agg.missed_urls.items():
        raw = stem + (f"?{query}" if query and query != "-" else "")
        try:
            variant = strategy.apply("GET", stem, "" if query == "-" else query, {"accept": ctype}).variant
        except EdgeproofError:
            variant = None
        key = variant or raw
        by_variant[key] += count
        spellings[key].add(raw)
        fam = path_family(stem)
        family_urls[fam].add(raw)
        family_variants[fam].add(key)
        family_misses[fam] += count
    top_variants = [
        {"variant": v, "misses": n, "spellings": len(spellings[v])} for v, n in by_variant.most_common(TOP_N)
    ]
    families = []
    for fam, urls in family_urls.items():
        n_var = len(family_variants[fam])
        families.append({
            "family": fam,
            "missed_urls": len(urls),
            "variants": n_var,
            "spellings_per_variant": round(len(urls) / n_var, 3) if n_var else None,
            "extra_spellings": len(urls) - n_var,
            "misses": family_misses[fam],
        })
    families.sort(key=lambda f: (-f["extra_spellings"], -f["misses"]))
    return top_variants, families[:TOP_N]


def _what_if(week_inputs: list[str], target: float, observed: float | None,
             cost: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replay the week under each strategy (edgeproof.analytics.replay); the best one and its predicted gain,
    and (``cost``: options of :func:`edgeproof.analytics.cost.replay_costs`) each one's bill per month.

    ``week_inputs`` are the log objects whose names place them in the week (``expand_inputs``), so the
    replay streams exactly the week's files (a second pass over them).
    """
    from edgeproof.analytics.cost import replay_costs, uses_viewer_function
    from edgeproof.analytics.prices import load_prices
    from edgeproof.analytics.replay import compare_strategies
    from edgeproof.analytics.strategies import get_strategy, list_strategies

    names = [s for s in WHAT_IF_STRATEGIES if s in set(list_strategies())]
    result = compare_strategies(week_inputs, names, target=target)
    options = dict(cost or {})
    options.setdefault("prices", load_prices())
    costs = replay_costs(result, functions=[n for n in names if uses_viewer_function(get_strategy(n))], **options) \
        if result["scored"] else None
    rows = _strategy_rows(result)
    for row in rows:
        row["miss_anatomy"] = {k: row.get(k) for k in ("cold", "expired", "evicted", "fragmented")}
    scored = [r for r in rows if r.get("hit_rate") is not None]
    best = max(scored, key=lambda r: r["hit_rate"]) if scored else None
    baseline = next((r for r in rows if r["strategy"] == "passthrough"), None)
    accept = (result.get("accept_inference") or {}).get("note")
    return {
        "strategies": rows,
        "best": best["strategy"] if best else None,
        "best_hit_rate": best["hit_rate"] if best else None,
        "observed_hit_rate": observed,
        "predicted_gain": (best["hit_rate"] - observed) if best and observed is not None else None,
        "calibration": result.get("calibration"),
        "miss_anatomy": (baseline or {}).get("miss_anatomy"),
        "notes": [n for n in (accept,) if n],
        "cost": costs,
    }


def _strategy_rows(result: Any) -> list[dict[str, Any]]:
    """Normalize compare_strategies' result to a list of per-strategy dicts with a ``strategy`` key."""
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    items = result.get("strategies", result) if isinstance(result, dict) else result
    rows: list[dict[str, Any]] = []
    if isinstance(items, dict):
        for name, row in items.items():
            row = row.to_dict() if hasattr(row, "to_dict") else dict(row)
            rows.append({"strategy": name, **row})
    else:
        for row in items:
            row = row.to_dict() if hasattr(row, "to_dict") else dict(row)
            row.setdefault("strategy", row.get("name"))
            rows.append(row)
    return rows


def _latency(agg: LogAggregate) -> dict[str, Any]:
    """Percentiles of hits, misses and both (``cacheable``: hit ⊕ miss), the aggregate's labels."""
    return {metric: {kind: agg.total.sketch(metric, kind).quantiles() for kind in ("cacheable", "hit", "miss")}
            for metric in ("time_taken", "ttfb")}


def _group_list(agg: LogAggregate, dim: str, target: float) -> list[dict[str, Any]]:
    rows = []
    for key, counts in agg.group_rows(dim):
        row = {"key": key, **counts.to_dict()}  # the aggregate's labels (an hour: 2026-11-18T05:00Z)
        rate = counts.hit_rate
        row["met_target"] = None if rate is None else rate >= target
        rows.append(row)
    return rows


def _deltas(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if not previous:
        return None

    def diff(a: Any, b: Any) -> float | None:
        return None if a is None or b is None else a - b

    lat_now = current["latency_ms"]["time_taken"]
    lat_then = previous.get("latency_ms", {}).get("time_taken", {})
    return {
        "previous_week": previous.get("week"),
        "hit_rate": diff(current["hit_rate"], previous.get("hit_rate")),
        "requests": diff(current["requests"], previous.get("requests")),
        "requests_ratio": (current["requests"] / previous["requests"]) if previous.get("requests") else None,
        "p99_hit_ms": diff(lat_now["hit"]["p99"], lat_then.get("hit", {}).get("p99")),
        "p99_miss_ms": diff(lat_now["miss"]["p99"], lat_then.get("miss", {}).get("p99")),
        "bytes_from_origin": diff(current["bytes"]["from_origin"], previous.get("bytes", {}).get("from_origin")),
    }


def _coverage(agg: LogAggregate, start: datetime, end: datetime, bad: dict[str, Any],
              allow_gaps: bool) -> dict[str, Any]:
    """The window's coverage: hours with at least one request (the aggregate's hour groups) and damage.

    ``complete`` is False when an hour has no data or a file is damaged (unreadable, or cut short:
    its lost tail is of unknown size); malformed single lines are counted but do not make the window
    incomplete (a few turn up in real logs every week).
    """
    have = [parse_stamp(key) for key, counts in agg.groups["hour"].items() if counts.requests and key != MISSING]
    cov = coverage(have, start, end)
    damaged = list(bad.get("files") or [])
    return {
        **cov.to_dict(),
        "complete": cov.complete and not damaged,
        "missing_by_day": cov.days_missing(),
        "gaps_allowed": allow_gaps,
        "damaged_files": damaged,
        "lost_lines": int(bad.get("count") or 0),
        "lost_line_examples": list(bad.get("excerpts") or bad.get("examples") or []),
    }


def _verdict(complete: bool, rate: float | None, target: float, allow_gaps: bool) -> str:
    """MET / MISSED on a complete window (or one whose gaps are allowed), INCOMPLETE otherwise."""
    if not complete and not allow_gaps:
        return "INCOMPLETE"
    return "MET" if rate is not None and rate >= target else "MISSED"


def build_weekly(
    logs: list[str],
    *,
    week: str | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    allow_gaps: bool = False,
    out: str | Path | None = None,
    target: float = 0.96,
    history: str | None = None,
    publish: str | None = None,
    what_if: bool = True,
    progress: bool = True,
    reader_options: dict[str, Any] | None = None,
    jobs: int = 1,
    cost: dict[str, Any] | None = None,
) -> WeeklyResult:
    """Build the weekly report (see the module docstring).

    The window is ``week`` (default: the last complete ISO week) or ``start``/``end`` (UTC, end
    exclusive). ``allow_gaps`` accepts hours without data (a known outage): the verdict is then MET or
    MISSED on the data there is instead of INCOMPLETE. ``cost``: the cost model's options
    (:func:`edgeproof.analytics.cost.cost_options`: prices, transform CPU; default the built-in prices),
    used with the what-if's replay (the ``cost`` object of summary.json; None without the what-if).
    """
    if not 0.0 < target <= 1.0:
        raise UsageError(f"bad target {target}", detail="the hit-rate target is a fraction such as 0.96")
    t0, t1, week = report_window(week, start, end)
    period = window_label(t0, t1, week)
    if history and week is None:
        raise UsageError("--history needs an ISO week", detail="the history store keeps one summary per week; "
                         "use --week (or a --from/--to that is exactly one ISO week)")
    out_dir = Path(out) if out is not None else Path("reports") / (week or f"{t0:%Y%m%dT%H%M}-{t1:%Y%m%dT%H%M}")
    out_dir.mkdir(parents=True, exist_ok=True)
    options = dict(reader_options or {})

    agg, bad = _stream(logs, t0, t1, progress, options, jobs=max(1, jobs))
    if agg.total.requests == 0:
        what = f"week {week}" if week else "the window"
        raise UsageError(
            f"no log lines in {what} ({t0:%Y-%m-%d %H:%M} .. {t1:%Y-%m-%d %H:%M} UTC)",
            detail=f"read {agg.rows_seen:,} lines from {', '.join(logs)}; pass --week or --from/--to for another "
                   "window",
        )
    overall = agg.total.hit_rate
    cov_dict = _coverage(agg, t0, t1, bad, allow_gaps)
    verdict = _verdict(cov_dict["complete"], overall, target, allow_gaps)
    summary: dict[str, Any] = {
        "kind": "weekly",
        "week": week,
        "period": period,
        "start": t0.isoformat(),
        "end": t1.isoformat(),
        "first_request": agg.first.isoformat() if agg.first else None,
        "last_request": agg.last.isoformat() if agg.last else None,
        "logs": logs,
        "target": target,
        "requests": agg.total.requests,
        "cacheable": agg.total.hits + agg.total.misses,
        "hits": agg.total.hits,
        "misses": agg.total.misses,
        "hit_rate": overall,
        "verdict": verdict,
        # None when INCOMPLETE: the target was neither met nor missed on a week with holes in it
        "met_target": None if verdict == "INCOMPLETE" else verdict == "MET",
        "coverage": cov_dict,
        "excluded": dict(agg.excluded),
        "status": {str(k): v for k, v in sorted(agg.status.items())},
        "errors_5xx": agg.total.errors,
        "bytes": {"total": agg.total.bytes, "from_cache": agg.total.bytes_hit, "from_origin": agg.total.bytes_miss},
        "latency_ms": _latency(agg),
        "daily": _group_list(agg, "day", target),
        "hourly": _group_list(agg, "hour", target),
        "by_pop": _group_list(agg, "pop", target),
        "by_content_type": _group_list(agg, "content_type", target),
        "by_family": _group_list(agg, "family", target),
        "bad_lines": {"count": bad["count"], "examples": bad["examples"]},
        "rows_outside_week": agg.rows_outside,
    }
    summary["days_below_target"] = [d["key"] for d in summary["daily"] if d["met_target"] is False]
    notes: list[str] = []
    try:
        top_variants, families = _variants_of_missed(agg)
    except ImportError:
        top_variants, families = [], []
        notes.append("top missed variants skipped: edgeproof.analytics.strategies is not available")
    if agg.missed_urls_truncated:
        notes.append("more distinct missed URLs than the report keeps; the rarest were dropped")
    summary["top_missed_variants"] = top_variants
    summary["top_fragmenting_families"] = families
    if what_if:
        try:
            from edgeproof.analytics.inputs import expand_inputs

            week_inputs = [i.name for i in expand_inputs(logs, start=t0, end=t1)]
            summary["what_if"] = _what_if(week_inputs, target, overall, cost)
        except ImportError:
            summary["what_if"] = None
            notes.append("replay what-if skipped: edgeproof.analytics.replay is not available")
    else:
        summary["what_if"] = None
    summary["miss_anatomy"] = (summary["what_if"] or {}).get("miss_anatomy")
    summary["cost"] = (summary["what_if"] or {}).pop("cost", None)
    if summary["cost"] is None:
        notes.append("cost per month skipped: it is computed from the what-if's replay (off or empty)")

    previous = read_json(history, f"{previous_week(week)}.json") if history and week else None
    summary["week_over_week"] = _deltas(summary, previous)
    if history and week and not previous:
        notes.append(f"no history for {previous_week(week)} in {history}: no week-over-week deltas yet")
    prev_cov = (previous or {}).get("coverage") or {}
    if prev_cov.get("hours_missing"):
        notes.append(f"{(previous or {}).get('week')} had {prev_cov['hours_missing']} hour(s) without log data: "
                     "the week-over-week deltas compare against a partial week")
    summary["notes"] = notes

    files = render_weekly(summary, out_dir)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str, ensure_ascii=False),
                                          encoding="utf-8")
    files.append(out_dir / "summary.json")
    if history and week:
        # an INCOMPLETE week is stored too (with its coverage): next week's deltas say they compare
        # against a partial week, and a re-run once late logs arrive overwrites it
        write_json(history, f"{week}.json", summary)
    published = publish_dir(out_dir, publish) if publish else []
    return WeeklyResult(summary, out_dir, files, published)
