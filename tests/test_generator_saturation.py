"""The rehearsal tells "the generator fell behind" from "the stack was slow".

Recorder-row tables built here (in :data:`edgeproof.loadtest.recorder.RECORD_SCHEMA`, with chosen
intended and actual starts) go through :func:`edgeproof.rehearsal.generator.generator_schedule`; no clock
is read: every time is a fixed offset from ``T0``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from edgeproof.loadtest.recorder import RECORD_SCHEMA
from edgeproof.rehearsal.analysis import slow_stack_line
from edgeproof.rehearsal.generator import GENERATOR_LATE_MS, generator_schedule
from edgeproof.rehearsal.report import print_verdict

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _rows(seconds: int, rate: int, lag_ms: Callable[[float, int], float | None],
          phase: Callable[[float], str] = lambda t: "peak") -> pa.Table:
    """``rate`` arrivals a second for ``seconds``; ``lag_ms(t, i)`` is arrival i's send lag (None: dropped)."""
    rows: list[dict[str, Any]] = []
    for i in range(seconds * rate):
        t = i / rate
        intended = T0 + timedelta(seconds=t)
        lag = lag_ms(t, i)
        dropped = lag is None
        actual = None if dropped else intended + timedelta(milliseconds=lag)
        rows.append({"intended_start": intended, "actual_start": actual,
                     "latency_ms": None if dropped else 20.0, "latency_corrected_ms": None if dropped else 20.0 + lag,
                     "status": 0 if dropped else 200, "bytes": 0 if dropped else 1000, "x_cache": None if dropped
                     else "Hit from cloudfront", "pop": "IAD89-C1", "url": f"/images/sku-{i % 7}.jpg", "role": "browse",
                     "sku": i % 7, "promoted": False, "phase": phase(t), "lane": 0, "late": bool(lag and lag > 10),
                     "dropped": dropped, "error": "too late" if dropped else None})
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def test_generator_that_kept_the_schedule() -> None:
    # every send within 0-9 ms of its intended start, one in a hundred at 45 ms (under the 50 ms threshold)
    table = _rows(30, 20, lambda t, i: 45.0 if i % 100 == 0 else float(i % 10))
    g = generator_schedule(table, t0=T0, bin_s=5.0)
    assert g["kept_schedule"] is True and g["window"] is None
    assert g["arrivals"] == 600 and g["late_share"] == 0.0 and g["dropped_share"] == 0.0
    assert 9.0 <= g["send_lag_p99_ms"] <= 45.0
    assert [b["t"] for b in g["by_bin"]] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert all(b["arrivals"] == 100 and not b["behind"] for b in g["by_bin"])
    assert g["line"].startswith("the load generator kept the schedule")


def test_generator_that_fell_behind_in_one_window() -> None:
    # 30 % of the arrivals between t=30 s and t=45 s leave 200 ms late; the rest on time
    table = _rows(60, 40, lambda t, i: 200.0 if 30 <= t < 45 and i % 10 < 3 else 1.0)
    g = generator_schedule(table, t0=T0, bin_s=5.0)
    assert g["kept_schedule"] is False
    assert g["late_share"] == pytest.approx(0.3 * 15 / 60)
    assert g["dropped_share"] == 0.0
    assert g["send_lag_p99_ms"] == pytest.approx(200.0)
    assert [b["t"] for b in g["by_bin"] if b["behind"]] == [30.0, 35.0, 40.0]
    assert g["window"] == {"start": 30.0, "end": 45.0, "arrivals": 600, "late_share": pytest.approx(0.3),
                           "dropped_share": 0.0}
    assert g["line"].startswith("the load generator fell behind: 30% of arrivals left > 50 ms late at t=30–45 s;")
    assert "the stack may not be the cause" in g["line"]


def test_dropped_arrivals_are_their_own_share() -> None:
    # from t=10 s on, one arrival in five is dropped (never sent), the others leave on time
    table = _rows(20, 50, lambda t, i: None if t >= 10 and i % 5 == 0 else 2.0)
    g = generator_schedule(table, t0=T0, bin_s=5.0)
    assert g["dropped_share"] == pytest.approx(0.1) and g["late_share"] == 0.0
    assert g["send_lag_p99_ms"] == pytest.approx(2.0)  # over the arrivals sent only
    assert g["kept_schedule"] is False
    assert g["window"] is not None and (g["window"]["start"], g["window"]["end"]) == (10.0, 20.0)
    assert g["window"]["dropped_share"] == pytest.approx(0.2)
    assert "0% of arrivals left > 50 ms late and 20% were dropped at t=10–20 s" in g["line"]


def test_thin_lateness_over_the_whole_spike_is_behind_too() -> None:
    # 3 % late in every bin: no bin crosses 5 %, but the spike's 3 % is over the 1 % rule
    table = _rows(20, 100, lambda t, i: 80.0 if i % 100 < 3 else 0.5)
    g = generator_schedule(table, t0=T0, bin_s=5.0)
    assert not any(b["behind"] for b in g["by_bin"])
    assert g["late_share"] == pytest.approx(0.03) and g["kept_schedule"] is False
    assert g["window"] is not None and (g["window"]["start"], g["window"]["end"]) == (0.0, 20.0)


def test_only_the_scored_phases_decide() -> None:
    # the generator starts late in the baseline (not scored), then keeps the schedule over the peak
    table = _rows(20, 40, lambda t, i: 300.0 if t < 5 else 1.0, phase=lambda t: "baseline" if t < 5 else "peak")
    g = generator_schedule(table, t0=T0, bin_s=5.0, scored_phases=["peak"])
    assert g["kept_schedule"] is True and g["arrivals"] == 600 and g["late_share"] == 0.0
    first = g["by_bin"][0]
    assert first["late_share"] == 1.0 and first["scored"] is False and first["behind"] is False
    # over every phase the same rows are behind
    assert generator_schedule(table, t0=T0, bin_s=5.0)["kept_schedule"] is False


def test_threshold_is_the_stated_one() -> None:
    table = _rows(10, 40, lambda t, i: GENERATOR_LATE_MS + 1.0 if i % 4 == 0 else GENERATOR_LATE_MS)
    g = generator_schedule(table, t0=T0, bin_s=5.0)
    assert g["late_ms"] == 50.0 and g["late_share"] == pytest.approx(0.25)  # exactly 50 ms is not late
    assert "50 ms" in g["rule"] and "1%" in g["rule"] and "5%" in g["rule"]
    assert generator_schedule(table, t0=T0, bin_s=5.0, late_ms=60.0)["kept_schedule"] is True


def _summary(generator: Any, gates: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scenario": "s", "strategy": "aggressive", "hit_rate": 0.97, "spike_hit_rate": 0.97,
            "hit_rate_source": "edge logs", "verdict_table": "gate table", "why": [], "generator": generator,
            "gates": {"gates": gates}, "consistency": None, "what_if": None,
            "latency_ms": {"edge": {"hit": {"p50": 3.0, "p99": 9.0}, "miss": {"p50": 300.0, "p99": 1400.0}}}}


def test_verdict_lines_tell_a_slow_stack_from_a_late_generator(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    failed_p99 = [{"gate": "p99_ms(miss) <= 500", "passed": False}, {"gate": "hit_rate >= 0.96", "passed": True}]
    on_time = generator_schedule(_rows(10, 40, lambda t, i: 1.0), t0=T0, bin_s=5.0)
    behind = generator_schedule(_rows(10, 40, lambda t, i: 500.0 if t >= 5 else 1.0), t0=T0, bin_s=5.0)

    slow = _summary(on_time, failed_p99)
    line = slow_stack_line(slow)  # type: ignore[arg-type]
    assert line is not None and line.startswith("the stack was slow: p99_ms(miss) <= 500 failed while the load "
                                                "generator kept the schedule")
    assert "miss 1400 ms" in line
    print_verdict(slow, tmp_path)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "generator: the stack was slow" in out and "fell behind" not in out

    late = _summary(behind, failed_p99)
    assert slow_stack_line(late) is None  # type: ignore[arg-type]
    print_verdict(late, tmp_path)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "generator: the load generator fell behind: 100% of arrivals left > 50 ms late at t=5–10 s" in out
    assert "stack was slow" not in out
    # a run whose latency gates passed needs no slow-stack line
    assert slow_stack_line(_summary(on_time, [{"gate": "p99_ms <= 150", "passed": True}])) is None  # type: ignore[arg-type]


def test_report_section_says_the_generator_fell_behind(tmp_path: Path) -> None:
    from edgeproof.analytics.report.document import Document
    from edgeproof.rehearsal.report import _generator_section

    behind = generator_schedule(_rows(60, 40, lambda t, i: 200.0 if 30 <= t < 45 and i % 10 < 3 else 1.0),
                                t0=T0, bin_s=5.0)
    doc = Document("t")
    _generator_section(doc, _summary(behind, []), {})  # type: ignore[arg-type]
    _, md = doc.write(tmp_path)
    text = md.read_text()
    assert "Load generator" in text and behind["line"] in text
    assert "NO" in text and "Time bins where the generator fell behind" in text
