"""``edgeproof rehearse compare RUN_A RUN_B``: two rehearsal folders side by side, and whether B regressed.

A rehearsal folder's numbers are already in its ``summary.json`` (the analysis of the edge logs, the
recorder rows and the origin tasks' counters), so this module only reads them into the shared
:class:`edgeproof.loadtest.compare.RunFigures`; the deltas, the thresholds, the text and the HTML are
the load package's (one comparison for both commands: the rehearsal is the layer above it).

What is read, and why from there: the hit rates are the edge logs' (``hit_rate`` whole run,
``spike_hit_rate`` over the spike phases: what the report shows), or the client rows' when the run had
no logs; p99 by class is the client's coordinated-omission-corrected latency (exact over the rows);
transforms and 503s are the origin tasks' counters; every gate (load gates and origin gates) with its
value as judged; the timeline is the report's (per 1–5 s bin, seconds after the load's first arrival).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeproof.loadtest.compare import GateValue, RunFigures, TimelinePoint

from edgeproof.errors import UsageError

__all__ = ["load_rehearsal_run"]


def _num(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else float(value)


def load_rehearsal_run(path: str | Path) -> RunFigures:
    """Read a ``rehearsals/<timestamp>/`` folder's ``summary.json`` (UsageError, exit 2, when it cannot)."""
    folder = Path(path)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        if (folder / "verdict.json").is_file():
            raise UsageError(f"{folder} is a load-test run, not a rehearsal folder",
                             detail="compare load-test runs with 'edgeproof loadtest compare'")
        raise UsageError(f"{folder} is not a rehearsal folder: no summary.json",
                         detail="give folders written by 'edgeproof rehearse' (rehearsals/<timestamp>/)")
    try:
        s = json.loads(summary_path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {summary_path}: {err}") from err
    if not isinstance(s, dict) or s.get("kind", "rehearsal") != "rehearsal":
        raise UsageError(f"{summary_path} is not a rehearsal summary")
    try:
        client_lat = s["latency_ms"]["client"]
        errors = s.get("errors") or {}
        metrics: dict[str, float | None] = {
            "hit_rate": _num(s["hit_rate"]),
            "scored_hit_rate": _num(s["spike_hit_rate"]),
            "p99_hit_ms": _num(client_lat["hit"]["p99"]),
            "p99_miss_ms": _num(client_lat["miss"]["p99"]),
            "p99_all_ms": _num(client_lat["all"]["p99"]),
            "requests": _num((s.get("client") or {}).get("rows")),
            "transforms": _num(s.get("transforms")),
            "origin_503": _num(errors.get("origin_503")),
            "status_503": _num(((s.get("client") or {}).get("status") or {}).get("503", 0)),
            "repeat_transforms": _num((s.get("origin_work") or {}).get("repeat_transforms")),
            "origin_tasks_max": _num(max((r.get("origin_tasks") or 0 for r in s.get("origin_timeline") or []),
                                         default=None)),
            "edge_warm_requests": _num(((s.get("prewarmed") or {}).get("edge") or {}).get("sent")),
        }
        gates = tuple(GateValue(str(g["gate"]), _num(g.get("value")), bool(g["passed"]))
                      for g in s["gates"]["gates"])
        timeline = tuple(
            TimelinePoint(float(r["t"]),
                          r["edge_requests_per_s"] if r.get("edge_requests_per_s") else r.get("client_scheduled_per_s"),
                          r["edge_hit_rate"] if r.get("edge_requests_per_s") else r.get("client_hit_rate"),
                          r.get("client_p99_corrected_ms"))
            for r in s.get("timeline") or [])
        phases = tuple((float(p["start"]), float(p["end"]), str(p["name"])) for p in s.get("phases") or [])
        title = f"{s['scenario']}, {s['strategy']}"
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{summary_path} lacks what a comparison needs ({type(err).__name__}: {err})",
                         detail="written by another edgeproof version? run the rehearsal again") from err
    return RunFigures("rehearsal", folder, title, metrics, gates, timeline, phases,
                      _num(s.get("hit_rate_target")), bool(s.get("passed")))
