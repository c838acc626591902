"""Render a weekly summary dict (from :mod:`edgeproof.analytics.report.weekly`) into charts, HTML and Markdown.

Hours without log data are shown wherever time is: the verdict banner names them, a coverage
section lists them as ranges with the damaged files and skipped lines, the daily table and chart keep
a hatched "no data" slot for a missing day, and the hourly chart breaks its line over a gap and hatches
it, so that a missing day can never pass for a good one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edgeproof.analytics.coverage import parse_stamp
from edgeproof.analytics.report import charts
from edgeproof.analytics.report.document import Document, fmt_bytes, fmt_count, fmt_delta_pp, fmt_ms, fmt_pct

__all__ = ["render_weekly"]


_MAX_GAPS_NAMED = 4  # in the verdict banner; the coverage section lists them all
#: the chart files a section shows, by name (None: the chart had nothing to draw)
_Charts = dict[str, Path | None]


def _days(s: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, float]]:
    """(day, its daily row or None, hours of it without data) for every day with data or a gap."""
    daily = {d["key"]: d for d in s["daily"]}
    missing = (s.get("coverage") or {}).get("missing_by_day") or {}
    return [(k, daily.get(k), float(missing.get(k, 0))) for k in sorted(set(daily) | set(missing))]


def _hourly_series(s: dict[str, Any]) -> tuple[list[datetime], list[dict[str, Any] | None]]:
    """Every hour from the first to the last of the data and gaps, None where an hour has no row.

    A line drawn only through the hours with data would bridge a missing day with a straight segment;
    with None there the line breaks.
    """
    rows = {parse_stamp(h["key"]).replace(tzinfo=None): h for h in s["hourly"]}
    gaps = [(_naive(g["start"]), _naive(g["end"])) for g in (s.get("coverage") or {}).get("missing") or []]
    edges = list(rows) + [a for a, _ in gaps] + [b - timedelta(hours=1) for _, b in gaps]
    if not edges:
        return [], []
    at, last = min(edges), max(edges)
    xs: list[datetime] = []
    while at <= last:
        xs.append(at)
        at += timedelta(hours=1)
    return xs, [rows.get(x) for x in xs]


def _naive(iso: str) -> datetime:
    """A UTC ISO stamp as the naive datetime the charts' hourly axis uses."""
    return datetime.fromisoformat(iso).replace(tzinfo=None)


def _charts(s: dict[str, Any], out: Path) -> dict[str, Path | None]:
    target = s["target"]
    daily = s["daily"]
    lat = s["latency_ms"]["time_taken"]
    made: dict[str, Path | None] = {}
    days = _days(s)
    made["daily"] = charts.bars(
        out / "daily_hit_rate.png", [k for k, _, _ in days], [d["hit_rate"] if d else None for _, d, _ in days],
        title="Daily hit rate vs target", percent=True, target=target,
        missing=[k for k, d, _ in days if d is None])
    xs, hourly = _hourly_series(s)
    gaps = [(_naive(g["start"]), _naive(g["end"])) for g in (s.get("coverage") or {}).get("missing") or []]
    made["hourly"] = charts.time_series(
        out / "hourly_hit_rate.png", xs, {"hit rate": [h["hit_rate"] if h else None for h in hourly]},
        title="Hourly hit rate (right: requests per hour)", percent=True, target=target,
        right={"requests/h": [h["requests"] if h else None for h in hourly]}, right_label="requests per hour",
        gaps=gaps)
    made["pop"] = charts.bars(
        out / "hit_rate_by_pop.png", [p["key"] for p in s["by_pop"]], [p["hit_rate"] for p in s["by_pop"]],
        title="Hit rate by POP", percent=True, target=target)
    made["content_type"] = charts.bars(
        out / "hit_rate_by_content_type.png", [c["key"] for c in s["by_content_type"]],
        [c["hit_rate"] for c in s["by_content_type"]], title="Hit rate by content type", percent=True,
        target=target, horizontal=True)
    made["latency"] = charts.grouped_bars(
        out / "latency_hits_misses.png", ["p50", "p90", "p99", "p999"],
        {cls: [lat[cls].get(q) for q in ("p50", "p90", "p99", "p999")] for cls in ("hit", "miss")},
        title="Edge time-taken for hits and misses (ms)", ylabel="ms", log_y=True)
    peak = max((d["bytes"] for d in daily), default=0)
    unit, scale = next(((u, float(f)) for u, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
                        if peak >= f), ("bytes", 1.0))
    made["bytes"] = charts.stacked_bars(
        out / "bytes_cache_vs_origin.png", [d["key"][5:] for d in daily],
        {"from cache (hits)": [d["bytes_hit"] / scale for d in daily],
         "from origin (misses)": [d["bytes_miss"] / scale for d in daily]},
        title="Bytes served per day", ylabel=unit)
    what_if = s.get("what_if") or {}
    anatomy = s.get("miss_anatomy") or {}
    classes = [k for k in ("cold", "expired", "evicted", "fragmented") if k in anatomy]
    made["anatomy"] = charts.bars(
        out / "miss_anatomy.png", classes, [anatomy[k] for k in classes],
        title="Miss anatomy (replay of the week as logged)", ylabel="misses")
    rows = what_if.get("strategies") or []
    made["what_if"] = charts.bars(
        out / "what_if_strategies.png", [r["strategy"] for r in rows], [r.get("hit_rate") for r in rows],
        title="Predicted hit rate by cache-key strategy (replay what-if)", percent=True, target=target,
        highlight=what_if.get("best"))
    return made


def _rate_row_class(row: dict[str, Any]) -> str:
    return "" if row.get("met_target") is None else ("pass" if row["met_target"] else "fail")


def _group_table(doc: Document, rows: list[dict[str, Any]], label: str, caption: str, limit: int = 30) -> None:
    rows = sorted(rows, key=lambda r: -r["requests"])[:limit]
    doc.table(
        [label, "requests", "hits", "misses", "hit rate", "from cache", "from origin", "5xx"],
        [[r["key"], r["requests"], r["hits"], r["misses"], fmt_pct(r["hit_rate"]), fmt_bytes(r["bytes_hit"]),
          fmt_bytes(r["bytes_miss"]), r["errors"]] for r in rows],
        caption=caption, row_classes=[_rate_row_class(r) for r in rows])


def _gap_summary(cov: dict[str, Any]) -> str:
    """``No log data for 24 of 168 hours: 2026-11-18 00:00–23:59 UTC (24 h).`` (the first few ranges),
    and the damaged files; empty for a complete window."""
    gaps = cov.get("missing") or []
    text = ""
    if gaps:
        named = "; ".join(g["label"] for g in gaps[:_MAX_GAPS_NAMED])
        more = f"; and {len(gaps) - _MAX_GAPS_NAMED} more range(s)" if len(gaps) > _MAX_GAPS_NAMED else ""
        text = f" No log data for {cov['hours_missing']} of {cov['hours_expected']} hours: {named}{more}."
    damaged = cov.get("damaged_files") or []
    if damaged:
        text += f" {len(damaged)} damaged log file(s), read up to the break or not at all (see Log coverage)."
    return text


def _verdict(doc: Document, s: dict[str, Any]) -> None:
    target, rate = s["target"], s["hit_rate"]
    cov = s.get("coverage") or {}
    below = s.get("days_below_target") or []
    gaps = _gap_summary(cov)
    if s["verdict"] == "INCOMPLETE":
        what = "some hours have no log data" if cov.get("missing") else "some log files are damaged"
        doc.verdict(None, f"INCOMPLETE: no verdict, {what}",
                    f"{gaps} The data there is shows {fmt_pct(rate)} against a target of {fmt_pct(target, 1)}, "
                    "but the lost data could change that. Find the missing logs and re-run, or pass "
                    "--allow-gaps to judge a known outage on the data there is.")
        return
    on_data = f" Judged on the data there is (--allow-gaps).{gaps}" if gaps else ""
    if s["verdict"] == "MET":
        doc.verdict(True, f"Target met: {fmt_pct(rate)} ≥ {fmt_pct(target, 1)}",
                    (f" {len(below)} day(s) below target." if below else " Every day with data met the target.")
                    + on_data)
    else:
        doc.verdict(False, f"Target missed: {fmt_pct(rate)} < {fmt_pct(target, 1)}",
                    f" Days below target: {', '.join(below) or 'none'}.{on_data}")


def _coverage_section(doc: Document, s: dict[str, Any]) -> None:
    """Which hours of the window had no request, which files were damaged, which lines were skipped."""
    cov = s.get("coverage")
    if not cov:
        return
    doc.heading("Log coverage")
    if cov["missing"]:
        doc.paragraph(f"{cov['hours_with_data']} of {cov['hours_expected']} hours of the window have log data "
                      "(at least one request). An hour without any request is a gap in the logs: the files "
                      "were not delivered, not collected, or not readable.")
        doc.table(["no log data (UTC)", "hours"], [[g["label"], g["hours"]] for g in cov["missing"]],
                  caption="Missing hours, as ranges", row_classes=["gap"] * len(cov["missing"]))
    else:
        doc.paragraph(f"All {cov['hours_expected']} hours of the window have log data.")
    if cov["damaged_files"]:
        doc.table(["file", "problem"], [[d["file"], d["error"]] for d in cov["damaged_files"]],
                  caption="Damaged log files (read up to the break, or not at all)",
                  row_classes=["fail"] * len(cov["damaged_files"]))
    if cov["lost_lines"]:
        doc.paragraph(f"{cov['lost_lines']:,} log line(s) could not be read and were skipped, e.g.:")
        doc.table(["file:line: reason — the line, escaped by the reader"], [[ex] for ex in cov["lost_line_examples"][:10]])


def render_weekly(s: dict[str, Any], out: Path) -> list[Path]:
    """Write the PNGs, ``report.html`` and ``report.md`` into ``out``; returns the files written.

    The report is the ordered :data:`_SECTIONS`, each a short step that adds its part to the document.
    """
    made = _charts(s, out)
    doc = _document(s)
    for section in _SECTIONS:
        section(doc, s, made)
    html_path, md_path = doc.write(out)
    return [p for p in made.values() if p is not None] + [html_path, md_path]


def _document(s: dict[str, Any]) -> Document:
    """The document with its title and the definition of the hit rate it reports, so none is assumed."""
    period = s.get("period") or s["week"]
    return Document(
        f"Weekly hit-rate report — {period}",
        subtitle=f"{s['start'][:16].replace('T', ' ')} to {s['end'][:16].replace('T', ' ')} (UTC), "
                 f"target {fmt_pct(s['target'], 1)} "
                 f"· hit rate = (Hit + RefreshHit) / (Hit + RefreshHit + Miss + OriginShieldHit) over GET/HEAD",
    )


def _headline_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """The verdict, the headline numbers and the best strategy: what a reader who stops here must know."""
    wow = s.get("week_over_week") or {}
    rate = s["hit_rate"]
    cov = s.get("coverage") or {}
    _verdict(doc, s)
    doc.metrics([
        ("verdict", s["verdict"]),
        ("hit rate", fmt_pct(rate)),
        ("hours with data", f"{cov.get('hours_with_data', '–')} / {cov.get('hours_expected', '–')}"),
        ("vs last week", fmt_delta_pp(wow.get("hit_rate")) if wow else "no history"),
        ("requests", fmt_count(s["requests"])),
        ("p99 hit", fmt_ms(s["latency_ms"]["time_taken"]["hit"]["p99"])),
        ("p99 miss", fmt_ms(s["latency_ms"]["time_taken"]["miss"]["p99"])),
        ("from origin", fmt_bytes(s["bytes"]["from_origin"])),
    ])
    what_if = s.get("what_if") or {}
    if what_if.get("best"):
        gain = what_if.get("predicted_gain")
        doc.paragraph(
            f"Best strategy by replay: {what_if['best']} with a predicted hit rate of "
            f"{fmt_pct(what_if['best_hit_rate'])} ({fmt_delta_pp(gain)} vs the observed {fmt_pct(rate)}).")


def _coverage_step(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """The log coverage, right after the headline: a gap qualifies every number below it."""
    _coverage_section(doc, s)


def _time_sections(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """Hit rate by day (a day without data keeps its row, marked) and by hour."""
    doc.heading("Hit rate by day")
    doc.figure(made["daily"], "Daily hit rate; red bars are below the target, hatched grey slots have no log data.")
    days = _days(s)
    doc.table(
        ["day", "requests", "hits", "misses", "hit rate", "met target", "hours without data"],
        [[k, d["requests"], d["hits"], d["misses"], fmt_pct(d["hit_rate"]),
          "–" if d["met_target"] is None else ("yes" if d["met_target"] else "no"), gap or "–"] if d else
         [k, "no log data", "–", "–", "–", "–", gap] for k, d, gap in days],
        row_classes=[_rate_row_class(d) if d else "gap" for _, d, _ in days])
    doc.heading("Hit rate by hour")
    doc.figure(made["hourly"], "Hourly hit rate against the target, with the request volume; hatched spans "
                               "have no log data.")


def _group_sections(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """Per POP, content type and path family: where the hit rate is lost."""
    doc.heading("By POP")
    doc.figure(made["pop"], "Hit rate per edge location (3-letter POP code).")
    _group_table(doc, s["by_pop"], "POP", "Per POP")
    doc.heading("By content type")
    doc.figure(made["content_type"], "Hit rate per response content type.")
    _group_table(doc, s["by_content_type"], "content type", "Per content type")
    doc.heading("By path family")
    _group_table(doc, s["by_family"], "path family", "Per path family (folder and extension, ops removed)")


def _latency_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """Edge time-taken and time-to-first-byte percentiles for hits, misses and all requests."""
    doc.heading("Latency")
    lat = s["latency_ms"]
    doc.figure(made["latency"], "Edge time-taken percentiles for hits and misses (log scale).")
    doc.table(
        ["measure", "class", "p50", "p90", "p99", "p999"],
        [[m.replace("_", "-"), c, *(fmt_ms(lat[m][c][q]) for q in ("p50", "p90", "p99", "p999"))]
         for m in ("time_taken", "ttfb") for c in ("hit", "miss", "cacheable")],
        caption="From CloudFront's time-taken and time-to-first-byte (mergeable sketch, ≤ 1% relative error)")


def _bytes_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """Bytes from the caches vs through to the origin: the origin's share is what the misses cost."""
    doc.heading("Bytes: cache vs origin")
    doc.figure(made["bytes"], "Bytes served from the POP caches (hits) and fetched through to the origin (misses).")
    b = s["bytes"]
    doc.table(["total", "from cache", "from origin", "origin share"],
              [[fmt_bytes(b["total"]), fmt_bytes(b["from_cache"]), fmt_bytes(b["from_origin"]),
                fmt_pct(b["from_origin"] / b["total"] if b["total"] else None)]])


def _errors_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """4xx/5xx statuses and the requests the hit rate excludes, by reason (they are counted, not lost)."""
    doc.heading("Errors and excluded requests")
    errors = {k: v for k, v in s["status"].items() if int(k) >= 400}
    doc.table(["status", "requests"], [[k, v] for k, v in errors.items()] or [["none", 0]],
              caption="HTTP status 4xx/5xx")
    doc.table(["reason", "requests"], [[k, v] for k, v in sorted(s["excluded"].items())] or [["none", 0]],
              caption="Excluded from the hit rate (not cacheable), by reason")


def _misses_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """The miss anatomy and the families and variants that fragment the cache most."""
    doc.heading("Where the misses come from")
    anatomy = s.get("miss_anatomy")
    if anatomy:
        doc.figure(made["anatomy"], "Every miss of the week classified by the replay of the logged behaviour.")
        doc.table(["class", "misses"], [[k, anatomy.get(k)] for k in ("cold", "expired", "evicted", "fragmented")
                                        if k in anatomy])
    else:
        doc.paragraph("Miss anatomy unavailable (the replay what-if did not run).", muted=True)
    fam = s.get("top_fragmenting_families") or []
    doc.table(["path family", "missed URLs", "variants", "spellings/variant", "misses"],
              [[f["family"], f["missed_urls"], f["variants"], f["spellings_per_variant"], f["misses"]] for f in fam],
              caption="Top fragmenting URL families: distinct missed URL spellings per true variant")
    top = s.get("top_missed_variants") or []
    doc.table(["variant (canonical request)", "misses", "spellings"],
              [[t["variant"], t["misses"], t["spellings"]] for t in top], caption="Top missed variants")


def _what_if_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """The replay's predicted hit rate per cache-key strategy on the same week's requests."""
    doc.heading("What if: cache-key strategies")
    what_if = s.get("what_if") or {}
    rows = what_if.get("strategies") or []
    if rows:
        doc.figure(made["what_if"], "Predicted hit rate of each strategy on this week's requests (green: best).")
        doc.table(
            ["strategy", "hit rate", "origin requests", "transforms", "unique keys", "keys/variant", "meets target"],
            [[r["strategy"], fmt_pct(r.get("hit_rate")), r.get("origin_requests"), r.get("transforms"),
              r.get("unique_keys"), r.get("keys_per_variant"), "yes" if r.get("meets_target") else "no"]
             for r in rows],
            row_classes=["pass" if r.get("meets_target") else "fail" for r in rows])
        for note in what_if.get("notes") or []:
            doc.paragraph(str(note), muted=True)
    else:
        doc.paragraph("Replay what-if not run.", muted=True)


def _cost_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """Dollars per month: the observed traffic and each strategy by line item, the CloudFront bill per
    geography, how the window was scaled and where the prices came from (edgeproof.analytics.cost)."""
    from edgeproof.analytics.cost import geography_table, items_table, money, price_line, scale_line

    doc.heading("Cost per month")
    cost = s.get("cost")
    if not cost:
        doc.paragraph("Cost not computed: it needs the replay what-if.", muted=True)
        return
    observed = cost["observed"]
    doc.paragraph(f"The observed traffic costs {money(observed['total'])} a month; each strategy's bill is its "
                  "replay of the same requests (saving > 0: cheaper than observed).")
    header, rows = items_table(cost)
    doc.table(header, rows, caption=scale_line(observed))
    header, rows = geography_table(observed)
    doc.table(header, rows, caption="CloudFront requests (HTTPS) and data transfer out of the observed traffic, by "
                                    "pricing geography of the edge location; data transfer tiered per geography")
    doc.paragraph(price_line(cost), muted=True)
    for note in observed["notes"]:
        doc.paragraph(note, muted=True)


def _week_over_week_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """The change against last week's summary from the history store."""
    doc.heading("Week over week")
    wow = s.get("week_over_week") or {}
    if wow:
        doc.table(["measure", "change"], [
            ["hit rate", fmt_delta_pp(wow.get("hit_rate"))],
            ["requests", f"{wow['requests']:+,.0f}" if wow.get("requests") is not None else "–"],
            ["p99 hit", f"{wow['p99_hit_ms']:+.1f} ms" if wow.get("p99_hit_ms") is not None else "–"],
            ["p99 miss", f"{wow['p99_miss_ms']:+.1f} ms" if wow.get("p99_miss_ms") is not None else "–"],
            ["bytes from origin", fmt_bytes(wow.get("bytes_from_origin"))],
        ], caption=f"Compared with {wow.get('previous_week')}")
    else:
        doc.paragraph("No previous week in the history store.", muted=True)


def _notes_section(doc: Document, s: dict[str, Any], made: _Charts) -> None:
    """The summary's notes; for a summary from before coverage, its skipped lines too."""
    notes = list(s.get("notes") or [])
    bad = s.get("bad_lines") or {}
    if bad.get("count") and not s.get("coverage"):  # a summary from before coverage: the skipped lines go here
        notes.append(f"{bad['count']:,} malformed log lines were skipped, e.g. " + "; ".join(bad["examples"][:3]))
    if notes:
        doc.heading("Notes")
        for note in notes:
            doc.paragraph(note, muted=True)


#: the report's sections, in order: each adds its headings, figures and tables to the document
_SECTIONS: tuple[Callable[[Document, dict[str, Any], _Charts], None], ...] = (
    _headline_section, _coverage_step, _time_sections, _group_sections, _latency_section, _bytes_section,
    _errors_section, _misses_section, _what_if_section, _cost_section, _week_over_week_section, _notes_section,
)
