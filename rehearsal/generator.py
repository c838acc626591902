"""The load generator's own lateness in a rehearsal: did it keep its open-model schedule?

A slow stack holds the generator's senders (the engine's pool is bounded), and a starved generator
(CPU, gevent loop) sends late on its own: either way the arrivals leave after their intended start,
and the corrected latency then counts the generator's delay as the stack's. These numbers say
whether the schedule was kept, so a reader does not blame the stack for the generator
(:mod:`edgeproof.rehearsal.analysis` puts them in ``summary.json`` as ``generator``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

import numpy as np
import pyarrow.compute as pc
from edgeproof.analytics.metrics import exact_quantiles

__all__ = ["GENERATOR_LATE_MS", "GeneratorBin", "GeneratorSummary", "GeneratorWindow", "generator_line",
           "generator_schedule"]

#: an arrival sent more than this after its intended start left late (the engine's own ``late_ms``
#: of 10 ms is a count; 50 ms is where a p99 target of 150-500 ms starts to be the generator's)
GENERATOR_LATE_MS = 50.0
#: the rule: the generator kept the schedule when at most this share of the scored arrivals left late
#: or were dropped ...
GENERATOR_KEPT_SHARE = 0.01
#: ... and no scored time bin of at least GENERATOR_BIN_MIN_ARRIVALS arrivals had more than this share
GENERATOR_BIN_SHARE = 0.05
GENERATOR_BIN_MIN_ARRIVALS = 20


class GeneratorBin(TypedDict):
    """One time bin (by intended start) of the generator's lateness."""

    t: float
    arrivals: int
    late_share: float
    dropped_share: float
    send_lag_p99_ms: float | None
    scored: bool
    behind: bool


class GeneratorWindow(TypedDict):
    """The worst stretch of consecutive behind bins (or the whole scored span when lateness was diffuse)."""

    start: float
    end: float
    arrivals: int
    late_share: float
    dropped_share: float


class GeneratorSummary(TypedDict):
    """``summary.json`` ``generator``: did the load generator keep its open-model schedule?

    Shares are over the scored arrivals (the spike phases, as the gates), sent late and dropped
    counted apart; ``send_lag_p99_ms`` is ``actual_start - intended_start`` over the arrivals sent."""

    late_ms: float
    arrivals: int
    late_share: float | None
    send_lag_p99_ms: float | None
    dropped_share: float | None
    kept_schedule: bool
    rule: str
    window: GeneratorWindow | None
    by_bin: list[GeneratorBin]
    line: str


def generator_schedule(table: Any, *, t0: datetime, bin_s: float, scored_phases: Sequence[str] | None = None,
                       late_ms: float = GENERATOR_LATE_MS) -> GeneratorSummary:
    """The load generator's lateness from recorder rows (:data:`edgeproof.loadtest.recorder.RECORD_SCHEMA`):
    per bin of ``bin_s`` seconds from ``t0`` (the timeline's bins) and over the ``scored_phases`` (all rows
    when None), and the verdict of the stated rule (:data:`GENERATOR_KEPT_SHARE`, :data:`GENERATOR_BIN_SHARE`)."""
    import pyarrow as pa

    intended = pc.cast(table.column("intended_start"), pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
    actual = pc.cast(table.column("actual_start"), pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
    dropped = np.array(pc.fill_null(table.column("dropped"), False).to_pylist(), dtype=bool)
    phase = np.array(table.column("phase").to_pylist(), dtype=object)
    sent = ~dropped & ~np.isnan(actual)
    lag = np.where(sent, (actual - intended) / 1000.0, np.nan)
    late = sent & (lag > late_ms)
    scored = np.isin(phase, list(scored_phases)) if scored_phases else np.ones(len(phase), dtype=bool)
    bins = np.floor((intended - t0.timestamp() * 1e6) / (bin_s * 1e6)).astype(np.int64)
    by_bin: list[GeneratorBin] = []
    for b in np.unique(bins):
        m = bins == b
        n = int(m.sum())
        late_share, dropped_share = float((m & late).sum() / n), float((m & dropped).sum() / n)
        in_score = bool((m & scored).any())
        by_bin.append({"t": float(b) * bin_s, "arrivals": n, "late_share": late_share,
                       "dropped_share": dropped_share, "send_lag_p99_ms": exact_quantiles(lag[m], [0.99])["p99"],
                       "scored": in_score, "behind": in_score and n >= GENERATOR_BIN_MIN_ARRIVALS
                       and late_share + dropped_share > GENERATOR_BIN_SHARE})
    n = int(scored.sum())
    late_share = float((scored & late).sum() / n) if n else None
    dropped_share = float((scored & dropped).sum() / n) if n else None
    behind_share = (late_share or 0.0) + (dropped_share or 0.0)
    kept = behind_share <= GENERATOR_KEPT_SHARE and not any(row["behind"] for row in by_bin)
    rule = (f"kept the schedule: at most {GENERATOR_KEPT_SHARE:.0%} of the scored arrivals left > {late_ms:g} ms "
            f"late or were dropped, and no scored {bin_s:g} s bin of >= {GENERATOR_BIN_MIN_ARRIVALS} arrivals "
            f"had more than {GENERATOR_BIN_SHARE:.0%}")
    summary: GeneratorSummary = {
        "late_ms": late_ms, "arrivals": n, "late_share": late_share,
        "send_lag_p99_ms": exact_quantiles(lag[scored], [0.99])["p99"], "dropped_share": dropped_share,
        "kept_schedule": kept, "rule": rule,
        "window": None if kept else _generator_window(by_bin, bin_s), "by_bin": by_bin, "line": ""}
    summary["line"] = generator_line(summary)
    return summary


def _generator_window(by_bin: list[GeneratorBin], bin_s: float) -> GeneratorWindow | None:
    """The run of consecutive behind bins with the most arrivals behind; the scored span when no bin
    alone was behind (lateness spread thin over the spike)."""
    runs: list[list[GeneratorBin]] = []
    for row in by_bin:
        if row["behind"]:
            if runs and abs(runs[-1][-1]["t"] + bin_s - row["t"]) < 1e-9:
                runs[-1].append(row)
            else:
                runs.append([row])
    if not runs:
        runs = [[row for row in by_bin if row["scored"]]]
    best = max(runs, key=lambda run: sum(r["arrivals"] * (r["late_share"] + r["dropped_share"]) for r in run))
    if not best:
        return None
    n = sum(r["arrivals"] for r in best)
    return {"start": best[0]["t"], "end": best[-1]["t"] + bin_s, "arrivals": n,
            "late_share": sum(r["arrivals"] * r["late_share"] for r in best) / n,
            "dropped_share": sum(r["arrivals"] * r["dropped_share"] for r in best) / n}


def generator_line(g: GeneratorSummary) -> str:
    """The one verdict line about the generator: behind (the latencies there are partly its own), or on time."""
    lag = "n/a" if g["send_lag_p99_ms"] is None else f"{g['send_lag_p99_ms']:.0f} ms"
    if g["kept_schedule"]:
        return (f"the load generator kept the schedule: {g['late_share'] or 0.0:.1%} of arrivals left "
                f"> {g['late_ms']:g} ms late, {g['dropped_share'] or 0.0:.1%} dropped, p99 send lag {lag}")
    w = g["window"]
    where = "" if w is None else f" at t={w['start']:g}–{w['end']:g} s"
    late, dropped = (w["late_share"], w["dropped_share"]) if w else (g["late_share"] or 0.0, g["dropped_share"] or 0.0)
    text = f"the load generator fell behind: {late:.0%} of arrivals left > {g['late_ms']:g} ms late"
    if dropped:
        text += f" and {dropped:.0%} were dropped"
    return (text + f"{where}; latencies there include the generator's own delay; the corrected latency counts "
            f"it, the stack may not be the cause (p99 send lag {lag} over the spike)")
