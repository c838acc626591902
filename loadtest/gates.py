"""Gates: the one gate language (grammar, parser, formatter, judgement) and the load test's metrics.

A gate is ``METRIC[(FILTER,...)] OP NUMBER`` with ``OP`` one of ``<= >= < > ==``, e.g.
``hit_rate >= 0.96``, ``p99_ms(miss) <= 500``, ``repeat_transform_rate <= 0.1``. The grammar, its
error messages and the comparison (:func:`judge`, with the no-data rule) are written once, here; a
family of gates is only *data* on top of it: a :class:`GateMetrics` vocabulary naming the metrics it
knows, whether they take filters, and which of them pass over no data. Two families exist:

- :data:`LOAD_METRICS` (below), scored over the recorder's rows by :func:`evaluate`;
- the rehearsal's origin gates (:data:`edgeproof.rehearsal.config.ORIGIN_METRICS`), scored over the
  origin tasks' counters by :func:`evaluate_values`.

Both go through :func:`parse_gate` and :func:`judge`. (The rehearsal had a second, regex-only copy of
the grammar with its own message; it had already drifted: no filters, another wording.) The language
sits in the load package, the lowest layer that every user of gates imports (the rehearsal imports
it; analytics and the edge have no gates).

Load metrics (definitions from :mod:`edgeproof.analytics.metrics` where one exists):

- ``hit_rate``: hits / (hits + misses) from each response's ``X-Cache`` header
  (:func:`edgeproof.analytics.metrics.xcache_result` + :func:`~edgeproof.analytics.metrics.classify`; Error, generated and
  missing ``X-Cache`` are excluded, as in the logs);
- ``pNN_ms`` (``p50_ms``, ``p90_ms``, ``p99_ms``, ``p999_ms``, any ``pNN``): exact percentile
  (:func:`edgeproof.analytics.metrics.exact_quantiles`) of the coordinated-omission-corrected latency (from the
  intended start) over sent requests; ``pNN_raw_ms`` uses the latency from the actual start;
- ``mean_ms``; ``error_rate``: sent requests with no response or status >= 400 / sent requests;
- ``dropped_rate`` / ``late_rate``: dropped / late arrivals over all scheduled arrivals;
- ``requests``: scheduled arrivals (rows).

Filters narrow the rows: ``hit`` / ``miss`` (X-Cache class), a phase name (``baseline``, ``ramp``,
``peak``, ``decay``, ``step2`` …), a role (``thumb``, ``pdp``, ``zoom``), ``promoted`` / ``regular``,
``all`` (ignore the scope). Filters of the same kind are OR-ed, different kinds AND-ed.

Scope: with scope ``spike`` (the default) rows are first limited to the shape's spike phases (ramp,
peak and decay of a spike; everything for other shapes) unless the gate names a phase or ``all``.

No data: a percentile gate over no rows passes (e.g. no misses at all); any other gate over no rows
fails with the value shown as ``n/a``.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from edgeproof.analytics.metrics import classify, exact_quantiles, hit_rate, xcache_result

from edgeproof.errors import ConfigError

__all__ = [
    "GATE_COLUMNS",
    "LOAD_METRICS",
    "Gate",
    "GateMetrics",
    "GateResult",
    "Verdict",
    "evaluate",
    "evaluate_values",
    "format_gate",
    "judge",
    "parse_gate",
    "row_classes",
]

#: the recorder columns :func:`evaluate` reads (read only these for big runs)
GATE_COLUMNS = ["intended_start", "latency_ms", "latency_corrected_ms", "status", "bytes", "x_cache", "role",
                "promoted", "phase", "late", "dropped"]

#: the grammar, once: ``METRIC[(FILTER,...)] OP NUMBER``
GRAMMAR = "METRIC[(FILTER,...)] OP NUMBER"
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[a-z][a-z0-9_]*)\s*(?:\((?P<filters>[^)]*)\))?\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<value>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$"
)
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq,
}
_PCT_RE = re.compile(r"^p(\d+)(_raw)?_ms$")


@dataclass(frozen=True, slots=True)
class GateMetrics:
    """One family of gates as data: the metric names it knows (plain names and name patterns), whether
    a gate may narrow its rows with filters, and which metrics pass when there is no data."""

    #: what the family is called in messages ("gate metric", "origin metric")
    what: str
    names: frozenset[str]
    #: patterns of further names (``pNN_ms``), each with the spelling shown in messages
    patterns: tuple[tuple[re.Pattern[str], str], ...] = ()
    filters: bool = True
    #: metrics that pass over no data (a percentile of no misses: nothing was slow)
    no_data_passes: Callable[[str], bool] = field(default=lambda metric: False)

    def knows(self, metric: str) -> bool:
        return metric in self.names or any(p.match(metric) for p, _ in self.patterns)

    def known(self) -> str:
        return ", ".join([*sorted(self.names), *(spelling for _, spelling in self.patterns)])


#: the load test's gates, over the recorder's rows (:func:`evaluate`)
LOAD_METRICS = GateMetrics(
    "gate metric",
    frozenset({"hit_rate", "error_rate", "dropped_rate", "late_rate", "mean_ms", "requests"}),
    patterns=((re.compile(r"^p\d+_ms$"), "pNN_ms"), (re.compile(r"^p\d+_raw_ms$"), "pNN_raw_ms")),
    no_data_passes=lambda metric: bool(_PCT_RE.match(metric)),
)


@dataclass(frozen=True, slots=True)
class Gate:
    """A parsed gate. ``expr`` is the text as written (stripped): results and reports show it."""

    expr: str
    metric: str
    filters: tuple[str, ...]
    op: str
    threshold: float


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    value: float | None
    op: str
    threshold: float
    passed: bool
    rows: int


@dataclass(slots=True)
class Verdict:
    gates: list[GateResult] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "gates": [asdict(g) for g in self.gates], "totals": self.totals}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def table(self) -> str:
        """The verdict table as text: one line per gate, then the overall result."""
        rows = [("gate", "value", "threshold", "rows", "result")]
        for g in self.gates:
            value = "n/a" if g.value is None else _fmt(g.value)
            rows.append((g.gate, value, f"{g.op} {_fmt(g.threshold)}", str(g.rows), "PASS" if g.passed else "FAIL"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"verdict: {'PASS' if self.passed else 'FAIL'} ({sum(g.passed for g in self.gates)}"
                     f"/{len(self.gates)} gates)")
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"


def _number(x: float) -> str:
    """A threshold as the grammar spells it, exactly: the shortest repr that reads back the same
    float (``500``, ``0.96``, ``1e-05``), no ``.0`` on whole numbers."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def format_gate(gate: Gate) -> str:
    """The canonical spelling of ``gate``: ``p99_ms(miss,peak) <= 500``; :func:`parse_gate` reads it back
    to the same metric, filters, operator and threshold."""
    filters = f"({','.join(gate.filters)})" if gate.filters else ""
    return f"{gate.metric}{filters} {gate.op} {_number(gate.threshold)}"


def parse_gate(expr: Any, metrics: GateMetrics = LOAD_METRICS, *, where: str | None = None) -> Gate:
    """``p99_ms(miss) <= 500`` → :class:`Gate` of the family ``metrics`` (default: the load test's).

    Raises ConfigError, ``WHERE: `` in front when given, for a malformed gate, a metric the family does
    not know, or filters on a family without them; every family gets the same messages.
    """
    place = f"{where}: " if where else ""
    m = _GATE_RE.match(expr) if isinstance(expr, str) else None
    if not m:
        raise ConfigError(f"{place}malformed gate {expr!r}", detail=f"expected {GRAMMAR}, e.g. 'p99_ms <= 150'")
    metric = m.group("metric")
    if not metrics.knows(metric):
        raise ConfigError(f"{place}unknown {metrics.what} {metric!r} in gate {expr.strip()!r}",
                          detail=f"known: {metrics.known()}")
    filters = tuple(f.strip().lower() for f in (m.group("filters") or "").split(",") if f.strip())
    if filters and not metrics.filters:
        raise ConfigError(f"{place}gate {expr.strip()!r}: {metrics.what}s take no filters",
                          detail=f"expected METRIC OP NUMBER with METRIC one of {metrics.known()}")
    threshold = float(m.group("value"))
    if not math.isfinite(threshold):  # 1e999
        raise ConfigError(f"{place}gate {expr.strip()!r}: the threshold must be a finite number")
    return Gate(expr.strip(), metric, filters, m.group("op"), threshold)


def judge(gate: Gate, value: float | None, rows: int, metrics: GateMetrics = LOAD_METRICS) -> GateResult:
    """The one comparison: ``value OP threshold``; no value (no data) passes only for the metrics the
    family says may (a percentile of no misses), any other gate over no data fails."""
    passed = metrics.no_data_passes(gate.metric) if value is None else bool(OPS[gate.op](value, gate.threshold))
    return GateResult(gate.expr, None if value is None else float(value), gate.op, gate.threshold, passed, rows)


def evaluate_values(gates: Sequence[str | Gate], values: Mapping[str, float | None],
                    metrics: GateMetrics, *, where: str | None = None) -> list[GateResult]:
    """Gates of a family whose metrics are plain numbers (``values[metric]``; absent or None = no
    data), e.g. the rehearsal's origin gates over the origin tasks' counters. ``rows`` is 0: the
    values are counters, not rows."""
    parsed = [g if isinstance(g, Gate) else parse_gate(g, metrics, where=where) for g in gates]
    return [judge(g, values.get(g.metric), 0, metrics) for g in parsed]


def row_classes(x_cache: Iterable[str | None]) -> list[str]:
    """Each row's X-Cache → ``hit`` / ``miss`` / excluded reason (edgeproof.analytics.metrics definitions)."""
    memo: dict[str | None, str] = {}
    out = []
    for xc in x_cache:
        cls = memo.get(xc)
        if cls is None:
            cls = memo[xc] = classify(xcache_result(xc), "GET")
        out.append(cls)
    return out


def _quantile(metric: str) -> tuple[float, bool]:
    m = _PCT_RE.match(metric)
    assert m is not None
    digits = m.group(1)
    if digits == "100":  # p100 is the maximum, not p10.0
        return 1.0, bool(m.group(2))
    return float("0." + digits) if len(digits) > 2 else int(digits) / 100, bool(m.group(2))


def evaluate(table: pa.Table, gates: Sequence[str | Gate], *, scored_phases: Sequence[str] | None = None,
             scope: str = "spike") -> Verdict:
    """Evaluate ``gates`` over recorder rows (:data:`edgeproof.loadtest.recorder.RECORD_SCHEMA`)."""
    parsed = [g if isinstance(g, Gate) else parse_gate(g) for g in gates]
    phase, phases = _strings(table.column("phase"))
    role, roles = _strings(table.column("role"))
    classes = _classes(table.column("x_cache"))
    promoted = _bools(table.column("promoted"))
    dropped = _bools(table.column("dropped"))
    late = _bools(table.column("late"))
    status = pc.fill_null(table.column("status"), 0).to_numpy().astype(np.int64)
    lat = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    corr = table.column("latency_corrected_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    scored = set(scored_phases or []) if scope == "spike" and scored_phases else None

    results = []
    for g in parsed:
        mask = np.ones(len(phase), dtype=bool)
        kinds: dict[str, np.ndarray] = {}
        named_phase = False
        for f in g.filters:
            if f == "all":
                named_phase = True
                continue
            if f in ("hit", "miss"):
                kind, m = "class", classes == f
            elif f in ("promoted", "regular"):
                kind, m = "promo", promoted if f == "promoted" else ~promoted
            elif f in phases or f in (scored_phases or ()):
                kind, m, named_phase = "phase", phase == f, True
            elif f in roles:
                kind, m = "role", role == f
            else:
                raise ConfigError(f"gate {g.expr!r}: unknown filter {f!r}",
                                  detail=f"use hit, miss, promoted, regular, all, a phase ({', '.join(sorted(phases))}) "
                                         f"or a role ({', '.join(sorted(roles))})")
            kinds[kind] = kinds[kind] | m if kind in kinds else m
        for m in kinds.values():
            mask &= m
        if scored is not None and not named_phase:
            mask &= np.isin(phase, list(scored))
        sent = mask & ~dropped
        value: float | None
        rows = int(mask.sum())
        if g.metric == "hit_rate":
            hits, misses = int((classes[sent] == "hit").sum()), int((classes[sent] == "miss").sum())
            value, rows = hit_rate(hits, misses), hits + misses
        elif g.metric == "error_rate":
            n = int(sent.sum())
            errs = int((sent & ((status == 0) | (status >= 400))).sum())
            value, rows = (errs / n if n else None), n
        elif g.metric == "dropped_rate":
            value = float((mask & dropped).sum() / rows) if rows else None
        elif g.metric == "late_rate":
            value = float((mask & late).sum() / rows) if rows else None
        elif g.metric == "requests":
            value = float(rows)
        elif g.metric == "mean_ms":
            vals = corr[sent & ~np.isnan(corr)]
            value, rows = (float(vals.mean()) if vals.size else None), int(vals.size)
        else:
            q, raw = _quantile(g.metric)
            vals = (lat if raw else corr)[sent]
            vals = vals[~np.isnan(vals)]
            rows = int(vals.size)
            value = next(iter(exact_quantiles(vals, [q]).values())) if vals.size else None
        results.append(judge(g, value, rows, LOAD_METRICS))
    return Verdict(results, totals(table, classes, dropped, late, status, corr, lat))


def _encoded(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """A string column as (indices, values): ``values[indices[i]]`` is row i (None for null)."""
    if len(column) == 0:
        return np.array([], dtype=np.int64), [None]
    enc = pc.dictionary_encode(column.combine_chunks())
    values: list[str | None] = [*enc.dictionary.to_pylist(), None]
    idx = pc.fill_null(enc.indices, len(values) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
    return idx, values


def _strings(column: pa.ChunkedArray) -> tuple[np.ndarray, set[str | None]]:
    """A string column as a numpy object array and its set of distinct values."""
    idx, values = _encoded(column)
    present = set(np.unique(idx).tolist())
    return np.array(values, dtype=object)[idx], {values[i] for i in present}


def _classes(column: pa.ChunkedArray) -> np.ndarray:
    """Each row's X-Cache → ``hit`` / ``miss`` / excluded reason (classified once per distinct value)."""
    idx, values = _encoded(column)
    return np.array([classify(xcache_result(v), "GET") for v in values], dtype=object)[idx]


def _bools(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)


def totals(table: pa.Table, classes: np.ndarray, dropped: np.ndarray, late: np.ndarray, status: np.ndarray,
           corr: np.ndarray, lat: np.ndarray) -> dict[str, Any]:
    """Whole-run counts and percentiles (not gated), for the verdict JSON."""
    sent = ~dropped
    hits, misses = int((classes[sent] == "hit").sum()), int((classes[sent] == "miss").sum())
    counts = pc.value_counts(table.column("phase")).to_pylist() if table.num_rows else []
    by_phase = {c["values"]: int(c["counts"]) for c in counts}
    return {
        "requests": int(len(dropped)),
        "sent": int(sent.sum()),
        "dropped": int(dropped.sum()),
        "late": int(late.sum()),
        "errors": int((sent & ((status == 0) | (status >= 400))).sum()),
        "hits": hits,
        "misses": misses,
        "hit_rate": hit_rate(hits, misses),
        "bytes": int(pc.sum(table.column("bytes")).as_py() or 0),
        "latency_corrected_ms": exact_quantiles(corr[sent & ~np.isnan(corr)]),
        "latency_ms": exact_quantiles(lat[sent & ~np.isnan(lat)]),
        "by_phase": by_phase,
    }
