"""The rehearsal report: PNG charts, a self-contained ``report.html`` (+ ``report.md``) and the verdict table."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgeproof.analytics.report import charts
from edgeproof.analytics.report.document import Document, fmt_count, fmt_ms, fmt_pct

if TYPE_CHECKING:
    from edgeproof.rehearsal.analysis import RehearsalSummary

__all__ = ["print_verdict", "write_report"]

#: the chart files a section shows, by name (None: the chart had nothing to draw)
_Charts = dict[str, Path | None]


def _charts(s: RehearsalSummary, out: Path) -> _Charts:
    tl = s["timeline"]
    xs = [row["t"] for row in tl]
    phases = [(p["start"], p["end"], p["name"]) for p in s["phases"]]
    target = s["hit_rate_target"]
    markers = [(e["t"], e["action"].replace("_", " ")) for e in s.get("events") or []]
    made: _Charts = {}
    made["traffic"] = charts.time_series(
        out / "requests_and_hit_rate.png", xs,
        {"edge requests/s": [r["edge_requests_per_s"] for r in tl],
         "scheduled requests/s": [r["client_scheduled_per_s"] for r in tl]},
        title="Requests per second and hit rate over time (spike phases shaded)", ylabel="requests/s",
        phases=phases, markers=markers, right={"edge hit rate": [r["edge_hit_rate"] if r["edge_requests_per_s"] else
                                                 r["client_hit_rate"] for r in tl]},
        right_label="hit rate", right_percent=True, right_target=target)
    made["latency"] = charts.time_series(
        out / "latency_over_time.png", xs,
        {"client p99 (corrected)": [r["client_p99_corrected_ms"] for r in tl],
         "client p99 (uncorrected)": [r["client_p99_uncorrected_ms"] for r in tl],
         "client p50 (corrected)": [r["client_p50_corrected_ms"] for r in tl],
         "edge p99 time-taken": [r["edge_p99_ms"] for r in tl]},
        title="Latency percentiles over time (ms, log scale)", ylabel="ms", phases=phases, log_y=True,
        markers=markers)
    pops = s.get("by_pop") or []
    made["pops"] = charts.bars(out / "hit_rate_by_pop.png", [p["pop"] for p in pops], [p["hit_rate"] for p in pops],
                               title="Hit rate per POP (edge logs, spike phases)", percent=True, target=target)
    ot = s.get("origin_timeline") or []
    made["origin"] = charts.time_series(
        out / "origin_transforms.png", [r["t"] for r in ot],
        {"transforms/s": [r.get("transforms_per_s") for r in ot],
         "origin 503/s": [r.get("origin_503_per_s") for r in ot]},
        title="Origin transforms/s and 503s (right: origin tasks)", ylabel="per second", phases=phases,
        markers=markers,
        right={"origin tasks": [r.get("origin_tasks") for r in ot]}, right_label="tasks")
    made["scaling"] = _scaling_chart(s, out, phases, markers)
    anatomy = s.get("miss_anatomy") or {}
    made["anatomy"] = charts.bars(
        out / "miss_anatomy.png", list(anatomy), [anatomy[k] for k in anatomy],
        title=f"Miss anatomy ({s['strategy']}, replay of the edge logs)", ylabel="misses")
    rows = (s.get("what_if") or {}).get("strategies") or []
    made["what_if"] = charts.bars(
        out / "hit_rate_by_strategy.png", [r["strategy"] for r in rows], [r["hit_rate"] for r in rows],
        title="Hit rate by strategy (replay what-if on the same traffic)", percent=True, target=target,
        highlight=s["strategy"])
    return made


#: the per-task series the scaling chart draws for each autoscaling metric: (timeline key, label, unit)
_SCALING_SERIES = {"cpu": ("task_cpu_pct", "CPU %", "% of the task's vCPUs"),
                   "requests": ("task_rps", "requests/s", "requests/s per task"),
                   "inflight": ("task_inflight", "in-flight transforms", "transforms running or queued")}


def _scaling_chart(s: RehearsalSummary, out: Path, phases: list[tuple[float, float, str]],
                   markers: list[tuple[float, str]]) -> Path | None:
    """The tracked metric per task with its target, the origin 503s (left), and tasks wanted / serving
    (right) over time: where the service lagged the load. Without autoscaling: CPU per task."""
    ot = s.get("origin_timeline") or []
    auto = s.get("autoscaling")
    metric = auto["config"]["metric"] if auto else "cpu"
    key, label, unit = _SCALING_SERIES[metric]
    names = sorted({k for r in ot for k in r.get(key) or {}}, key=int)
    if not names:
        return None
    series = {f"task {n} {label}": [(r.get(key) or {}).get(n) for r in ot] for n in names}
    if auto:
        series[f"target {auto['config']['target']:g}"] = [auto["config"]["target"]] * len(ot)
    series["origin 503/s"] = [r.get("origin_503_per_s") for r in ot]
    return charts.time_series(
        out / "autoscaling.png", [r["t"] for r in ot], series,
        title=f"Origin tasks: {label} per task and 503s (left), tasks wanted vs serving (right)",
        ylabel=f"{unit}, 503/s", phases=phases, markers=markers,
        right={"tasks wanted": [r.get("tasks_wanted") for r in ot],
               "tasks serving": [r.get("origin_tasks") for r in ot]}, right_label="tasks")


def _scaling_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """The origin service over time: tasks wanted and serving, each task's CPU, the autoscaler's decisions."""
    if not made.get("scaling"):
        return
    auto = s.get("autoscaling")
    doc.heading("Origin scaling")
    metric = auto["config"]["metric"] if auto else "cpu"
    what = {"cpu": "CPU (% of its vCPUs, from /proc)", "requests": "requests per second",
            "inflight": "transforms running or queued"}[metric]
    doc.figure(made["scaling"], f"Each origin task's {what}{' against the target' if auto else ''} and the origin "
                                "503s; on the right the tasks the service wanted and the tasks serving (a task "
                                "serves once started and warm).")
    if auto:
        c = auto["config"]
        doc.paragraph(f"Target tracking on {c['metric']} at {c['target']:g}, {c['period_s']:g} s datapoints: time "
                      f"constants compressed ×{auto['compression']:g} against ECS's 1-minute metric period.",
                      muted=True)
        rows = [[m["breach_t"], m["decided_t"], m["serving_t"] if m["serving_t"] is not None else "–", m["wanted"],
                 m["lag_s"] if m["lag_s"] is not None else "–", m["origin_503"],
                 fmt_ms(m["client_p99_ms_max"])] for m in auto["scale_outs"]]
        if rows:
            doc.table(["metric above target from t (s)", "decided t (s)", "serving t (s)", "tasks wanted", "lag (s)",
                       "origin 503s in lag", "worst client p99 in lag"], rows,
                      caption="Each scale-out of the autoscaler: from the first datapoint over target to the new "
                              "tasks taking traffic")
    tasks = s.get("tasks") or []
    if tasks:
        doc.table(["task", "started by", "launched t (s)", "serving t (s)", "stopped t (s)", "requests",
                   "transforms", "private-cache hits", "private-cache hits when it began serving"],
                  [[t["task"], t["by"], t["launched_t"], "–" if t["serving_t"] is None else t["serving_t"],
                    "–" if t["stopped_t"] is None else t["stopped_t"], t["requests"], t["transforms"],
                    t["local_cache_hits"], t["local_cache_hits_at_start"]] for t in tasks],
                  caption="Every origin task of the run (times from the first request)")


def write_report(s: RehearsalSummary, out: Path) -> list[Path]:
    """Write the PNG charts, ``report.html`` and ``report.md`` into ``out``; returns the files written.

    The report is the ordered :data:`_SECTIONS`, each a short step that adds its part to the document.
    """
    made = _charts(s, out)
    doc = _document(s)
    for section in _SECTIONS:
        section(doc, s, made)
    doc.paragraph(f"Files: summary.json, report.md, the PNG charts, logs/ (edge CloudFront logs), loadtest/ "
                  f"(recorder rows, Locust output), stack/ (process logs) in {out}.", muted=True)
    html_path, md_path = doc.write(out)
    return [p for p in made.values() if p is not None] + [html_path, md_path]


def _document(s: RehearsalSummary) -> Document:
    """The document titled with the scenario, where it ran and the load it put."""
    where = "embedded stack on loopback" if s["embedded"] else f"target {s['target_url']}"
    return Document(f"Spike rehearsal — {s['scenario']}",
                    subtitle=f"{s['started'][:19]}Z · {where} · strategy {s['strategy']} · {s['duration']:g}s, "
                             f"peak {s['peak_rps']:g} req/s")


def _headline_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """The verdict, the headline numbers and the reasons behind them: what a reader who stops here needs."""
    gates = s["gates"]["gates"]
    failed = [g["gate"] for g in gates if not g["passed"]]
    if s["passed"]:
        doc.verdict(True, f"PASS — all {len(gates)} gates passed",
                    f" Spike hit rate {fmt_pct(s['spike_hit_rate'])} (target {fmt_pct(s['hit_rate_target'], 1)}).")
    else:
        doc.verdict(False, f"FAIL — {len(failed)} of {len(gates)} gates failed", " Failed: " + "; ".join(failed))
    for line in _generator_lines(s, problems_only=True):
        doc.paragraph(line)
    if s.get("description"):
        doc.paragraph(s["description"])
    lat = s["latency_ms"]
    doc.metrics([
        ("hit rate (edge logs)" if s.get("edge") else "hit rate (client)", fmt_pct(s["hit_rate"])),
        ("spike hit rate", fmt_pct(s["spike_hit_rate"])),
        ("requests", fmt_count((s.get("edge") or {}).get("requests", s["client"]["sent"]))),
        ("p99 hit (client)", fmt_ms(lat["client"]["hit"]["p99"])),
        ("p99 miss (client)", fmt_ms(lat["client"]["miss"]["p99"])),
        ("transforms", fmt_count(s.get("transforms"))),
    ])
    if s.get("why"):
        doc.heading("Why")
        for line in s["why"]:
            doc.paragraph(line)


def _gates_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """Every gate with its value, threshold and the rows it was judged on (origin gates have none)."""
    gates = s["gates"]["gates"]
    doc.heading("Gates")
    origin_gates = {g.strip() for g in s.get("origin_gates") or []}
    doc.table(["gate", "value", "threshold", "rows", "result"],
              [[g["gate"], "n/a" if g["value"] is None else round(g["value"], 4), f"{g['op']} {g['threshold']:g}",
                "–" if g["gate"] in origin_gates else g["rows"], "PASS" if g["passed"] else "FAIL"] for g in gates],
              caption="From the recorder rows (X-Cache per response), scored over the spike phases unless a gate "
                      "names a phase; origin gates (no rows) from the origin tasks' counters and stores, whole run", row_classes=["pass" if g["passed"] else "fail" for g in gates])


def _traffic_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """Requests and hit rate over time, and the scenario events (scale-out, scale-in) played."""
    doc.heading("Traffic and hit rate")
    doc.figure(made["traffic"], "Requests per second (edge logs and the schedule) and the hit rate over time; "
                                "shaded: baseline, ramp, peak, decay.")
    events = s.get("events") or []
    if events:
        doc.table(["t (s)", "event", "by", "tasks wanted", "tasks serving", "why"],
                  [[e["t"], e["action"].replace("_", " "), e.get("by", "script"), e.get("wanted", e["origin_tasks"]),
                    e["origin_tasks"], e.get("reason", "")] for e in events],
                  caption="Origin scaling events: the scenario's scripted ones and the autoscaler's (a task it "
                          "launched serves once started: \"task serving\")")


def _latency_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """Client latency, corrected and not for coordinated omission, beside the edge's time-taken."""
    doc.heading("Latency")
    doc.figure(made["latency"], "Client latency (corrected: from the intended start, i.e. with coordinated "
                                "omission accounted for; uncorrected: from the actual send) and the edge's "
                                "time-taken.")
    lat = s["latency_ms"]
    edge_lat = lat.get("edge") or {}
    rows = []
    for cls in ("hit", "miss", "all"):
        rows.append([cls, fmt_ms(lat["client"][cls]["p50"]), fmt_ms(lat["client"][cls]["p99"]),
                     fmt_ms(lat["client_uncorrected"][cls]["p99"]),
                     fmt_ms(edge_lat.get(cls, {}).get("p50")), fmt_ms(edge_lat.get(cls, {}).get("p99"))])
    doc.table(["class", "client p50", "client p99", "client p99 uncorrected", "edge p50", "edge p99"], rows)


def _generator_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """Did the load generator keep its schedule? A late send is in the corrected latency, not the stack's doing."""
    g = s.get("generator")
    if not g:
        return
    doc.heading("Load generator")
    for line in _generator_lines(s):
        doc.paragraph(line)
    doc.table(["arrivals (scored)", f"left > {g['late_ms']:g} ms late", "dropped", "p99 send lag", "kept schedule"],
              [[g["arrivals"], fmt_pct(g["late_share"]), fmt_pct(g["dropped_share"]), fmt_ms(g["send_lag_p99_ms"]),
                "yes" if g["kept_schedule"] else "NO"]],
              caption=f"Send lag = actual start - intended start, from the recorder rows; rule: {g['rule']}",
              row_classes=["pass" if g["kept_schedule"] else "fail"])
    behind = [b for b in g["by_bin"] if b["behind"]]
    if behind:
        doc.table(["t (s)", "arrivals", "left late", "dropped", "p99 send lag"],
                  [[b["t"], b["arrivals"], fmt_pct(b["late_share"]), fmt_pct(b["dropped_share"]),
                    fmt_ms(b["send_lag_p99_ms"])] for b in behind], caption="Time bins where the generator fell behind")


def _generator_lines(s: RehearsalSummary, *, problems_only: bool = False) -> list[str]:
    """The generator's one line (behind, or on time) and, when it kept the schedule but a latency gate
    failed, the slow-stack line: the two causes of a high latency told apart."""
    from edgeproof.rehearsal.analysis import slow_stack_line

    g = s.get("generator")
    if not g:
        return []
    slow = slow_stack_line(s)
    if problems_only:
        return [line for line in (None if g["kept_schedule"] else g["line"], slow) if line]
    return [line for line in (g["line"], slow) if line]


def _pop_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """The hit rate per POP from the edge logs: one cold or split POP hides in the average."""
    doc.heading("Per POP")
    doc.figure(made["pops"], "Hit rate per POP from the edge logs.")
    pops = s.get("by_pop") or []
    if pops:
        doc.table(["POP", "requests", "hits", "misses", "hit rate"],
                  [[p["pop"], p["requests"], p["hits"], p["misses"], fmt_pct(p["hit_rate"])] for p in pops])


def _origin_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """What reached the origin: errors, transforms, the origin group's members, repeated work and reuse."""
    doc.heading("Origin")
    doc.figure(made["origin"], "Transforms per second and 503 (load shedding) per second at the origin tasks, "
                               "with the number of tasks.")
    errors = s["errors"]
    group = s.get("origin_group") or {}
    doc.table(["client errors", "edge 5xx", "origin 503s", "transforms", "edge → derivative store",
               "edge → transformers", "failovers"],
              [[errors["client"], errors["edge_5xx"], errors["origin_503"], s.get("transforms"),
                group.get("primary"), group.get("secondary"), group.get("failovers")]])
    work = s.get("origin_work")
    if work:
        doc.table(["transforms", "distinct variants made", "repeated transforms", "repeat rate"],
                  [[work["transforms"], work["distinct_variants"], work["repeat_transforms"],
                    fmt_pct(work["repeat_transform_rate"])]],
                  caption="A variant transformed more than once (by another task's private cache, or concurrently) "
                          "is work a shared derivative store saves")
    answers = s.get("origin_answers")
    if answers:
        doc.table(["origin answers from local cache", "from derivative store", "transformed", "reuse rate"],
                  [[answers["local_cache"], answers["derivative_store"], answers["transform"],
                    fmt_pct(answers["reuse_rate"])]],
                  caption="Origin tasks: requests answered without a transform (private cache or shared store) "
                          "vs transformed")


def _cost_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """What this run's traffic would cost a month on AWS (edgeproof.analytics.cost.rehearsal_cost)."""
    from edgeproof.analytics.cost import ITEMS, money, rehearsal_cost, scale_line

    cost = rehearsal_cost(s)  # type: ignore[arg-type]
    if cost is None:
        return
    doc.heading("Cost per month")
    doc.table(["item", "$/month"], [[label, money(cost["items"][k])] for k, label in ITEMS if cost["items"][k]]
              + [["total", money(cost["total"])]], caption=scale_line(cost))
    for note in cost["notes"]:
        doc.paragraph(note, muted=True)


def _misses_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """The miss anatomy and the what-if: why the misses happened and what another cache key would score."""
    doc.heading("Where the misses come from")
    if s.get("miss_anatomy"):
        doc.figure(made["anatomy"], "Each miss classified: cold (first request for the key at that POP), expired, "
                                    "evicted, fragmented (another spelling of the same variant was cached).")
    else:
        doc.paragraph("Miss anatomy unavailable (no edge logs or replay disabled).", muted=True)
    what_if = s.get("what_if") or {}
    if what_if.get("strategies"):
        doc.heading("Hit rate by strategy (what-if)")
        doc.figure(made["what_if"], "The same requests replayed under each cache-key strategy (green: the strategy "
                                    "this rehearsal ran); the caches warm up before the spike, which is scored.")
        doc.table(["strategy", "hit rate", "origin requests", "transforms", "unique keys", "keys/variant"],
                  [[r["strategy"], fmt_pct(r["hit_rate"]), r["origin_requests"], r["transforms"], r["unique_keys"],
                    r["keys_per_variant"]] for r in what_if["strategies"]],
                  row_classes=["pass" if r.get("meets_target") else "fail" for r in what_if["strategies"]])
        for line in what_if.get("calibration_notes") or []:
            doc.paragraph(line)


def _cross_check_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """Edge logs against recorder rows: two independent counts of the same requests must agree."""
    cons = s.get("consistency")
    if cons:
        doc.heading("Cross-check: edge logs vs client rows")
        doc.table(["", "edge logs", "client rows"],
                  [["requests / responses", cons["edge_log_requests"], cons["client_responses"]],
                   ["hits", cons["edge_log_hits"], cons["client_hits"]],
                   ["misses", cons["edge_log_misses"], cons["client_misses"]]],
                  caption="They agree" if cons["match"] else "They DISAGREE", row_classes=[
                      "pass" if cons["match"] else "fail"] * 3)


def _notes_section(doc: Document, s: RehearsalSummary, made: _Charts) -> None:
    """The analysis's notes (what is missing or disagrees, and why)."""
    for note in s.get("notes") or []:
        doc.paragraph(note, muted=True)


#: the report's sections, in order: each adds its headings, figures and tables to the document
_SECTIONS: tuple[Callable[[Document, RehearsalSummary, _Charts], None], ...] = (
    _headline_section, _gates_section, _traffic_section, _latency_section, _generator_section, _pop_section,
    _origin_section, _scaling_section, _cost_section,
    _misses_section, _cross_check_section, _notes_section,
)


def print_verdict(s: RehearsalSummary, out: Path) -> None:
    print()
    print(f"rehearsal {s['scenario']} ({s['strategy']}): hit rate {fmt_pct(s['hit_rate'])} over the "
          f"{s.get('hit_rate_source', 'edge logs')}, "
          f"spike {fmt_pct(s['spike_hit_rate'])}")
    print(s["verdict_table"])
    for line in _generator_lines(s):
        print(f"  generator: {line}")
    for line in s.get("why") or []:
        print(f"  why: {line}")
    for line in (s.get("what_if") or {}).get("calibration_notes") or []:
        print(f"  what-if: {line}")
    cons = s.get("consistency")
    if cons and not cons["match"]:
        print("warning: edge logs and recorder rows disagree (see summary.json consistency)")
    print(f"report: {out / 'report.html'}")
    sys.stdout.flush()
