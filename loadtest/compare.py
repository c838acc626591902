"""Compare two runs side by side (A, B, Δ) and say whether B regressed: the shared part of
``edgeproof loadtest compare`` and ``edgeproof rehearse compare``.

Why a comparison and not two verdicts: a gate says whether one run met a target, not whether a change
(another strategy, a new origin build, a bigger instance) made things worse than last time. A run can
pass every gate and still have lost a point of hit rate or a fifth of its miss latency, which is what a
team wants to catch before the spike. So this module puts the numbers of two runs next to each other —
every gate value, the hit rates, p99 by class (hit / miss), transforms and 503s — and flags B as
regressed when its hit rate fell by more than ``max_hit_rate_drop_pp`` percentage points or a p99 rose
by more than ``max_p99_increase_pct`` percent over A's.

The module is in the load package because both commands need it and the load package may not import
the rehearsal (layers: loadtest → rehearsal). A run is read into one :class:`RunFigures`;
:func:`load_loadtest_run` reads an ``edgeproof loadtest run`` folder here, and
:mod:`edgeproof.rehearsal.compare` reads a rehearsal folder's ``summary.json`` into the same shape.
Everything after that — :func:`compare_runs`, :meth:`Comparison.table`, :func:`write_html` — is one
code path for both. Numbers over recorder rows come from the gate language
(:func:`edgeproof.loadtest.gates.evaluate`: exact percentiles of the corrected latency, the one hit-rate
definition), so a compared value is the value a gate would score.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproof.errors import EXIT_MISSED, EXIT_OK, ConfigError, UsageError

__all__ = [
    "DEFAULT_MAX_HIT_RATE_DROP_PP",
    "DEFAULT_MAX_P99_INCREASE_PCT",
    "Comparison",
    "GateDelta",
    "GateValue",
    "MetricDelta",
    "RunFigures",
    "Thresholds",
    "TimelinePoint",
    "add_arguments",
    "compare_runs",
    "load_loadtest_run",
    "parse_percent",
    "run_command",
    "timeline_from_records",
    "write_html",
]

DEFAULT_MAX_HIT_RATE_DROP_PP = 0.5
DEFAULT_MAX_P99_INCREASE_PCT = 20.0
#: a value exactly at a threshold is not beyond it; float noise of the subtraction must not make it so
_EPS = 1e-9

#: the compared figures, in display order: (key, label, kind) with kind "rate", "ms" or "count"
METRICS: tuple[tuple[str, str, str], ...] = (
    ("hit_rate", "hit rate (whole run)", "rate"),
    ("scored_hit_rate", "hit rate (scored phases)", "rate"),
    ("p99_hit_ms", "p99 hit (client, corrected)", "ms"),
    ("p99_miss_ms", "p99 miss (client, corrected)", "ms"),
    ("p99_all_ms", "p99 all (client, corrected)", "ms"),
    ("requests", "requests (scheduled)", "count"),
    ("transforms", "transforms (origin)", "count"),
    ("origin_503", "503s (origin tasks)", "count"),
    ("status_503", "503 responses (client)", "count"),
    # rehearsals only (a load test has none of these: the rows are left out)
    ("repeat_transforms", "repeated transforms (origin)", "count"),
    ("origin_tasks_max", "origin tasks (most serving)", "count"),
    ("edge_warm_requests", "edge pre-warm requests", "count"),
)
_RATE_KEYS = {k for k, _, kind in METRICS if kind == "rate"}
_P99_KEYS = ("p99_hit_ms", "p99_miss_ms")


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One bin of a run's timeline; ``t`` is seconds after the load's first arrival (offset 0 of the shape)."""

    t: float
    requests_per_s: float | None
    hit_rate: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class GateValue:
    gate: str
    value: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What a comparison reads from one run folder, whatever command wrote it."""

    kind: str  # "loadtest" or "rehearsal": only runs of one kind are compared
    path: Path
    title: str  # scenario (and strategy) for the headings
    metrics: dict[str, float | None]
    gates: tuple[GateValue, ...]
    timeline: tuple[TimelinePoint, ...] = ()
    phases: tuple[tuple[float, float, str], ...] = ()
    hit_rate_target: float | None = None
    passed: bool | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How much worse B may be than A before the comparison exits 1."""

    max_hit_rate_drop_pp: float = DEFAULT_MAX_HIT_RATE_DROP_PP
    max_p99_increase_pct: float = DEFAULT_MAX_P99_INCREASE_PCT

    def __post_init__(self) -> None:
        for name in ("max_hit_rate_drop_pp", "max_p99_increase_pct"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise UsageError(f"--{name.replace('_', '-').removesuffix('-pct')} must be a number >= 0, not {value}")


@dataclass(frozen=True, slots=True)
class MetricDelta:
    key: str
    label: str
    kind: str
    a: float | None
    b: float | None
    #: B − A (a rate in fractions; the text shows percentage points)
    delta: float | None
    #: B − A over A, in percent (ms and counts; None when A is 0 or missing)
    delta_pct: float | None
    #: the threshold that applies, as shown ("−0.50 pp", "+20%"), or "" for a figure only shown
    limit: str = ""
    regressed: bool = False


@dataclass(frozen=True, slots=True)
class GateDelta:
    gate: str
    a: float | None
    b: float | None
    delta: float | None
    a_passed: bool | None  # None: the gate is not in that run
    b_passed: bool | None


@dataclass(slots=True)
class Comparison:
    a: RunFigures
    b: RunFigures
    thresholds: Thresholds
    metrics: list[MetricDelta] = field(default_factory=list)
    gates: list[GateDelta] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        """One sentence per figure where B is worse than A beyond its threshold."""
        out = []
        for m in self.metrics:
            if not m.regressed:
                continue
            if m.kind == "rate":
                out.append(f"{m.label} fell {-(m.delta or 0) * 100:.2f} pp (limit {self.thresholds.max_hit_rate_drop_pp:g} pp)")
            else:
                out.append(f"{m.label} rose {m.delta_pct:+.1f}% (limit +{self.thresholds.max_p99_increase_pct:g}%)")
        return out

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def exit_code(self) -> int:
        return EXIT_MISSED if self.regressed else EXIT_OK

    def table(self) -> str:
        """The side-by-side text: figures, then gates, then the verdict line."""
        rows = [("", "A", "B", "Δ", "limit", "")]
        for m in self.metrics:
            rows.append((m.label, _fmt(m.a, m.kind), _fmt(m.b, m.kind), _fmt_delta(m), m.limit,
                         "REGRESSED" if m.regressed else ("ok" if m.limit else "")))
        for g in self.gates:
            rows.append((f"gate {g.gate}", _fmt_gate(g.a), _fmt_gate(g.b),
                         "–" if g.delta is None else f"{g.delta:+.4g}", "", _flip(g.a_passed, g.b_passed)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) if i < 4 else c.ljust(w)
                           for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        head = [f"A: {self.a.path}  ({self.a.title})", f"B: {self.b.path}  ({self.b.title})"]
        if self.regressed:
            tail = "compare: B REGRESSED — " + "; ".join(self.regressions)
        else:
            tail = (f"compare: no regression (hit rate drop ≤ {self.thresholds.max_hit_rate_drop_pp:g} pp, "
                    f"p99 increase ≤ {self.thresholds.max_p99_increase_pct:g}%)")
        return "\n".join([*head, "", *lines, "", tail])

    def to_json(self) -> dict[str, Any]:
        return {
            "a": str(self.a.path), "b": str(self.b.path), "kind": self.a.kind,
            "thresholds": {"max_hit_rate_drop_pp": self.thresholds.max_hit_rate_drop_pp,
                           "max_p99_increase_pct": self.thresholds.max_p99_increase_pct},
            "metrics": [{"key": m.key, "a": m.a, "b": m.b, "delta": m.delta, "delta_pct": m.delta_pct,
                         "regressed": m.regressed} for m in self.metrics],
            "gates": [{"gate": g.gate, "a": g.a, "b": g.b, "delta": g.delta, "a_passed": g.a_passed,
                       "b_passed": g.b_passed} for g in self.gates],
            "regressed": self.regressed, "regressions": self.regressions,
        }


def parse_percent(text: str) -> float:
    """``"20"``, ``"20%"`` or ``"20 %"`` → 20.0 (an argparse type for ``--max-p99-increase``)."""
    try:
        return float(text.strip().removesuffix("%").strip())
    except ValueError as err:
        raise UsageError(f"not a percentage: {text!r}", detail="give e.g. 20 or 20%") from err


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def compare_runs(a: RunFigures, b: RunFigures, thresholds: Thresholds | None = None) -> Comparison:
    """Deltas of every figure and gate of two runs of the same kind; B's regressions against the thresholds."""
    th = thresholds or Thresholds()
    if a.kind != b.kind:
        raise UsageError(f"cannot compare a {a.kind} run ({a.path}) with a {b.kind} run ({b.path})",
                         detail=f"use 'edgeproof {'rehearse' if a.kind == 'rehearsal' else 'loadtest'} compare' "
                                "with two runs of that command")
    out = Comparison(a, b, th)
    for key, label, kind in METRICS:
        va, vb = _number(a.metrics.get(key)), _number(b.metrics.get(key))
        if va is None and vb is None:
            continue  # a figure neither run has (transforms of a plain load test)
        delta = None if va is None or vb is None else vb - va
        pct = None if delta is None or kind == "rate" or not va else delta / va * 100
        limit, regressed = "", False
        if key in _RATE_KEYS:
            limit = f"−{th.max_hit_rate_drop_pp:.2f} pp"
            regressed = delta is not None and -delta * 100 > th.max_hit_rate_drop_pp + _EPS
        elif key in _P99_KEYS:
            limit = f"+{th.max_p99_increase_pct:g}%"
            regressed = pct is not None and pct > th.max_p99_increase_pct + _EPS
        out.metrics.append(MetricDelta(key, label, kind, va, vb, delta, pct, limit, regressed))
    by_a = {g.gate: g for g in a.gates}
    by_b = {g.gate: g for g in b.gates}
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        ga, gb = by_a.get(name), by_b.get(name)
        va = _number(ga.value) if ga else None
        vb = _number(gb.value) if gb else None
        out.gates.append(GateDelta(name, va, vb, None if va is None or vb is None else vb - va,
                                   ga.passed if ga else None, gb.passed if gb else None))
    return out


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        return f"{value * 100:.2f}%"
    if kind == "ms":
        return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"
    return f"{value:,.0f}"


def _fmt_delta(m: MetricDelta) -> str:
    if m.delta is None:
        return "–"
    if m.kind == "rate":
        return f"{m.delta * 100:+.2f} pp"
    base = f"{m.delta:+.1f} ms" if m.kind == "ms" else f"{m.delta:+,.0f}"
    return base + ("" if m.delta_pct is None else f" ({m.delta_pct:+.1f}%)")


def _fmt_gate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _word(passed: bool | None) -> str:
    return "–" if passed is None else "PASS" if passed else "FAIL"


def _flip(a: bool | None, b: bool | None) -> str:
    return _word(a) if a == b else f"{_word(a)} → {_word(b)}"


# -- a load-test run folder ------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path}: {err}") from err


def load_loadtest_run(path: str | Path) -> RunFigures:
    """Read an ``edgeproof loadtest run`` output folder (``verdict.json``, ``run.json``, ``records/``).

    The gates are the run's own (``verdict.json``, as judged); the hit rates, p99s by class, 503s and
    the timeline are computed again from the rows, through the gate language, so both runs are scored by
    the same code whatever version wrote their verdicts.
    """
    from edgeproof.loadtest.config import RunConfig
    from edgeproof.loadtest.gates import GATE_COLUMNS, evaluate, parse_gate
    from edgeproof.loadtest.recorder import read_records

    folder = Path(path)
    if (folder / "summary.json").is_file() and not (folder / "verdict.json").is_file():
        raise UsageError(f"{folder} is a rehearsal folder, not a load-test run",
                         detail="compare rehearsals with 'edgeproof rehearse compare'")
    for name in ("verdict.json", "run.json"):
        if not (folder / name).is_file():
            raise UsageError(f"{folder} is not a load-test run folder: no {name}",
                             detail="give folders written by 'edgeproof loadtest run --out DIR'")
    verdict = _read_json(folder / "verdict.json")
    try:
        config = RunConfig.read(folder / "run.json")
        gates = tuple(GateValue(str(g["gate"]), _number(g.get("value")), bool(g["passed"]))
                      for g in verdict["gates"])
        table = read_records(folder, columns=GATE_COLUMNS)
    except ConfigError as err:
        raise UsageError(f"cannot read the run in {folder}: {err}") from err
    except (KeyError, TypeError, OSError) as err:
        raise UsageError(f"cannot read the run in {folder}: {type(err).__name__}: {err}") from err
    if not table.num_rows:
        raise UsageError(f"{folder} has no recorder rows (records/*.parquet)")
    shape = config.shape()
    scored = ("replay",) if config.is_replay else shape.scored
    probe = evaluate(table, ["hit_rate >= 0", "hit_rate(all) >= 0", "p99_ms(hit,all) >= 0", "p99_ms(miss,all) >= 0",
                             "p99_ms(all) >= 0"], scored_phases=scored, scope=config.scenario.gates.scope)
    scored_hr, whole_hr, p99_hit, p99_miss, p99_all = (g.value for g in probe.gates)
    import pyarrow.compute as pc

    status_503 = int(pc.sum(pc.equal(pc.fill_null(table.column("status"), 0), 503)).as_py() or 0)
    metrics: dict[str, float | None] = {
        "hit_rate": whole_hr, "scored_hit_rate": scored_hr, "p99_hit_ms": p99_hit, "p99_miss_ms": p99_miss,
        "p99_all_ms": p99_all, "requests": float(table.num_rows), "status_503": float(status_503),
    }
    parsed = [parse_gate(rule) for rule in config.scenario.gates.rules]
    hit_target = next((g.threshold for g in parsed if g.metric == "hit_rate" and g.op in (">=", ">")), None)
    phases = () if config.is_replay else tuple((start, end, name) for name, start, end in shape.phases())
    return RunFigures("loadtest", folder, config.scenario.name, metrics, gates, timeline_from_records(table),
                      phases, hit_target, bool(verdict.get("passed")))


def timeline_from_records(table: Any, bin_s: float | None = None) -> tuple[TimelinePoint, ...]:
    """Per-bin scheduled requests/s, hit rate and corrected p99 of recorder rows (t from the first arrival).

    The bin is 1 s up to 90 s of schedule, then 2 s, then 5 s (as the rehearsal's timeline), so two runs
    of one duration share their bins.
    """
    import numpy as np
    from edgeproof.loadtest.recorder import per_bin

    if not table.num_rows:
        return ()
    start = table.column("intended_start").to_numpy(zero_copy_only=False).astype("datetime64[us]").astype(np.int64)
    first = int(start.min())
    span = (int(start.max()) - first) / 1e6
    width = bin_s or (1.0 if span <= 90 else 2.0 if span <= 240 else 5.0)
    points = [TimelinePoint(b * width, row["scheduled"] / width, row["hit_rate"], row["p99_corrected"])
              for b, row in sorted(per_bin(table, first, width).items())]
    return tuple(points)


# -- the HTML section ------------------------------------------------------------------------------


def _aligned(a: Sequence[TimelinePoint], b: Sequence[TimelinePoint], attr: str) -> tuple[list[float], list[float | None],
                                                                                          list[float | None]]:
    """Both timelines on one x axis: the union of their bin starts, each series held at its last bin's
    value inside its own time range (so two runs with different bins still draw two unbroken lines)."""
    xs = sorted({p.t for p in a} | {p.t for p in b})

    def held(points: Sequence[TimelinePoint]) -> list[float | None]:
        out: list[float | None] = []
        ordered = sorted(points, key=lambda p: p.t)
        i, current = 0, None
        for x in xs:
            while i < len(ordered) and ordered[i].t <= x:
                current = getattr(ordered[i], attr)
                i += 1
            out.append(current if ordered and ordered[0].t <= x <= ordered[-1].t else None)
        return out

    return xs, held(a), held(b)


def write_html(comparison: Comparison, path: str | Path) -> Path:
    """Write the side-by-side comparison as one self-contained HTML file (charts embedded as data URIs).

    Through the report modules (:class:`~edgeproof.analytics.report.document.Document`,
    :mod:`edgeproof.analytics.report.charts`): both timelines on the same axes, phases of run A shaded.
    """
    from edgeproof.analytics.report import charts
    from edgeproof.analytics.report.document import Document

    c, a, b = comparison, comparison.a, comparison.b
    out = Path(path)
    kind = "Rehearsal" if a.kind == "rehearsal" else "Load test"
    doc = Document(f"{kind} comparison — A: {a.title} · B: {b.title}", subtitle=f"A = {a.path} · B = {b.path}")
    if c.regressed:
        doc.verdict(False, "B REGRESSED", " " + "; ".join(c.regressions))
    else:
        doc.verdict(True, "No regression",
                    f" Hit rate drop ≤ {c.thresholds.max_hit_rate_drop_pp:g} pp and p99 increase ≤ "
                    f"{c.thresholds.max_p99_increase_pct:g}% for hits and misses.")
    doc.heading("Side by side")
    doc.table(["figure", "A", "B", "Δ (B − A)", "limit", "result"],
              [[m.label, _fmt(m.a, m.kind), _fmt(m.b, m.kind), _fmt_delta(m), m.limit or "–",
                "REGRESSED" if m.regressed else ("ok" if m.limit else "–")] for m in c.metrics],
              caption="Hit rates and client p99s (coordinated-omission corrected, exact from the rows) of both runs",
              row_classes=["fail" if m.regressed else "pass" if m.limit else "" for m in c.metrics])
    if c.gates:
        doc.heading("Gates")
        doc.table(["gate", "A", "B", "Δ (B − A)", "A result", "B result"],
                  [[g.gate, _fmt_gate(g.a), _fmt_gate(g.b), "–" if g.delta is None else f"{g.delta:+.4g}",
                    _word(g.a_passed), _word(g.b_passed)] for g in c.gates],
                  caption="Each run's gates as it judged them (B's result colours the row)",
                  row_classes=["" if g.b_passed is None else "pass" if g.b_passed else "fail" for g in c.gates])
    target = a.hit_rate_target if a.hit_rate_target is not None else b.hit_rate_target
    with tempfile.TemporaryDirectory(prefix="edgeproof-compare-") as tmp:
        xs, ha, hb = _aligned(a.timeline, b.timeline, "hit_rate")
        _, pa_, pb = _aligned(a.timeline, b.timeline, "p99_ms")
        _, ra, rb = _aligned(a.timeline, b.timeline, "requests_per_s")
        doc.heading("Timelines (same axes)")
        doc.figure(charts.time_series(Path(tmp) / "hit_rate.png", xs, {"A hit rate": ha, "B hit rate": hb},
                                      title="Hit rate over time: A and B", ylabel="hit rate", percent=True,
                                      target=target, phases=a.phases, step=True),
                   "Hit rate per bin of A and B on the same axes (seconds after the first arrival; A's phases shaded).")
        doc.figure(charts.time_series(Path(tmp) / "p99.png", xs, {"A p99": pa_, "B p99": pb},
                                      title="Client p99 over time (corrected, ms, log scale): A and B", ylabel="ms",
                                      phases=a.phases, log_y=True, step=True),
                   "Client p99 latency per bin (from the intended start) of A and B.")
        doc.figure(charts.time_series(Path(tmp) / "rps.png", xs, {"A requests/s": ra, "B requests/s": rb},
                                      title="Requests per second: A and B", ylabel="requests/s", phases=a.phases,
                                      step=True),
                   "Requests per second of A and B (the same schedule gives the same line).")
        if not a.timeline and not b.timeline:
            doc.paragraph("Neither run has a timeline.", muted=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(doc.to_html(), encoding="utf-8")  # while the PNGs exist: they are embedded here
    return out


# -- the command, for both CLIs --------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``compare`` arguments, declared once for ``loadtest compare`` and ``rehearse compare``."""
    parser.add_argument("run_a", metavar="RUN_A", help="the baseline run folder")
    parser.add_argument("run_b", metavar="RUN_B", help="the run judged against it")
    parser.add_argument("--max-hit-rate-drop-pp", type=float, default=DEFAULT_MAX_HIT_RATE_DROP_PP, metavar="PP",
                        help="B regresses when a hit rate fell by more than this many percentage points "
                             f"(default {DEFAULT_MAX_HIT_RATE_DROP_PP:g})")
    parser.add_argument("--max-p99-increase", type=parse_percent, default=DEFAULT_MAX_P99_INCREASE_PCT,
                        metavar="PCT", help="B regresses when p99 of hits or of misses rose by more than this "
                                            f"(percent, e.g. 20 or 20%%; default {DEFAULT_MAX_P99_INCREASE_PCT:g}%%)")
    parser.add_argument("--html", metavar="OUT.html", help="also write the side-by-side HTML section here")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of the table")


def run_command(args: argparse.Namespace, load: Callable[[str], RunFigures]) -> int:
    """Load both folders with ``load``, print the comparison, write ``--html``; 0, or 1 when B regressed."""
    thresholds = Thresholds(args.max_hit_rate_drop_pp, args.max_p99_increase)
    comparison = compare_runs(load(args.run_a), load(args.run_b), thresholds)
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2))
    else:
        print(comparison.table())
    if args.html:
        print(f"html: {write_html(comparison, args.html)}")
    return comparison.exit_code
