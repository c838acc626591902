"""``edgeproof rehearse compare`` and ``edgeproof loadtest compare`` on folders the real commands wrote.

Run A is the session's one short real rehearsal (:func:`_rehearsal_helpers.small_rehearsal`); its
``loadtest/`` subfolder is the ``edgeproof loadtest run`` output the rehearsal drove, so it serves as the
real load-test run. Each B is a copy of A with one thing made worse — the summary's hit rate or p99 for
a rehearsal, the recorder rows themselves for a load test — so every expected delta is computed here
from the edit, and the exit status is checked at the threshold (0) and just beyond it (1).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _rehearsal_helpers import small_rehearsal
from edgeproof.analytics.metrics import classify, exact_quantiles, xcache_result
from edgeproof.loadtest.recorder import read_records

pytestmark = pytest.mark.slow

EDGEPROOF = [sys.executable, "-m", "edgeproof.cli"]


def _edgeproof(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGEPROOF, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run_a() -> Path:
    out, proc = small_rehearsal()
    assert (out / "summary.json").is_file(), proc.stderr[-3000:]
    return out


def _copy(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    # the logs, store and realtime logs are not read by a comparison; copying them would only cost time
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("logs", "realtime-logs", "store"))
    if edit is not None:
        path = dst / "summary.json"
        summary = json.loads(path.read_text())
        edit(summary)
        path.write_text(json.dumps(summary))
    return dst


def _compare_json(kind: str, a: Path, b: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = _edgeproof(kind, "compare", a, b, "--json", *extra)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _metric(result: dict[str, Any], key: str) -> dict[str, Any]:
    return next(m for m in result["metrics"] if m["key"] == key)


def test_rehearsal_compare_deltas_and_html(run_a: Path, tmp_path: Path) -> None:
    summary = json.loads((run_a / "summary.json").read_text())
    drop, slower = 0.012, 1.5

    def worse(s: dict[str, Any]) -> None:
        s["spike_hit_rate"] -= drop
        s["latency_ms"]["client"]["miss"]["p99"] *= slower
        s["transforms"] += 7
        s["origin_work"]["repeat_transforms"] += 5
        s["origin_timeline"][-1]["origin_tasks"] += 2
        s["gates"]["gates"][0]["value"] -= drop
        for row in s["timeline"]:
            if row["edge_hit_rate"] is not None:
                row["edge_hit_rate"] = max(0.0, row["edge_hit_rate"] - drop)

    b = _copy(run_a, tmp_path / "b", worse)
    html = tmp_path / "cmp" / "compare.html"
    proc = _edgeproof("rehearse", "compare", run_a, b, "--html", html)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the text: every figure and every gate side by side, the two regressions named
    assert "B REGRESSED" in proc.stdout
    assert "hit rate (scored phases) fell 1.20 pp" in proc.stdout
    assert "p99 miss (client, corrected) rose +50.0%" in proc.stdout
    for gate in summary["gates"]["gates"]:
        assert f"gate {gate['gate']}" in proc.stdout
    assert "p99 hit (client, corrected)" in proc.stdout and "transforms (origin)" in proc.stdout
    assert "503s (origin tasks)" in proc.stdout

    code, result = _compare_json("rehearse", run_a, b)
    assert code == 1
    hr = _metric(result, "scored_hit_rate")
    assert hr["a"] == pytest.approx(summary["spike_hit_rate"])
    assert hr["delta"] == pytest.approx(-drop) and hr["regressed"]
    whole = _metric(result, "hit_rate")
    assert whole["delta"] == 0 and not whole["regressed"]
    miss = _metric(result, "p99_miss_ms")
    a_miss = summary["latency_ms"]["client"]["miss"]["p99"]
    assert miss["a"] == pytest.approx(a_miss) and miss["delta"] == pytest.approx(a_miss * (slower - 1))
    assert miss["delta_pct"] == pytest.approx(50.0) and miss["regressed"]
    assert not _metric(result, "p99_hit_ms")["regressed"]
    assert _metric(result, "transforms")["delta"] == 7
    assert _metric(result, "repeat_transforms")["delta"] == 5
    tasks = _metric(result, "origin_tasks_max")
    most = max(r["origin_tasks"] for r in summary["origin_timeline"])
    assert tasks["a"] == most and tasks["b"] == max(most, summary["origin_timeline"][-1]["origin_tasks"] + 2)
    assert _metric(result, "origin_503")["a"] == summary["errors"]["origin_503"]
    first = result["gates"][0]
    assert first["gate"] == summary["gates"]["gates"][0]["gate"] and first["delta"] == pytest.approx(-drop)
    assert [g["gate"] for g in result["gates"]] == [g["gate"] for g in summary["gates"]["gates"]]

    # the HTML section: written, self-contained, three charts with both runs
    assert proc.stdout.rstrip().endswith(f"html: {html}")
    text = html.read_text()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(pngs) == 3 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    assert "B REGRESSED" in text and "Hit rate per bin of A and B on the same axes" in text
    assert "http://" not in text and "<link" not in text


@pytest.mark.parametrize(("drop_pp", "limit", "code"), [
    (0.0, None, 0), (0.5, None, 0), (0.6, None, 1), (0.6, "0.6", 0), (1.0, "0.6", 1),
])
def test_rehearsal_hit_rate_threshold(run_a: Path, tmp_path: Path, drop_pp: float, limit: str | None,
                                      code: int) -> None:
    def lower(s: dict[str, Any]) -> None:
        s["hit_rate"] -= drop_pp / 100

    b = _copy(run_a, tmp_path / "b", lower)
    got, result = _compare_json("rehearse", run_a, b, *(["--max-hit-rate-drop-pp", limit] if limit else []))
    assert got == code, result["regressions"]
    assert _metric(result, "hit_rate")["delta"] == pytest.approx(-drop_pp / 100)
    assert result["regressed"] is bool(code)


@pytest.mark.parametrize(("factor", "limit", "code"), [
    (1.2, None, 0), (1.25, None, 1), (1.25, "30%", 0), (1.25, "25", 0), (0.5, None, 0),
])
def test_rehearsal_p99_threshold(run_a: Path, tmp_path: Path, factor: float, limit: str | None, code: int) -> None:
    def slower(s: dict[str, Any]) -> None:
        s["latency_ms"]["client"]["hit"]["p99"] *= factor

    b = _copy(run_a, tmp_path / "b", slower)
    got, result = _compare_json("rehearse", run_a, b, *(["--max-p99-increase", limit] if limit else []))
    assert got == code, result["regressions"]
    assert _metric(result, "p99_hit_ms")["delta_pct"] == pytest.approx((factor - 1) * 100)


def test_rehearsal_compare_refuses_unreadable_and_other_kinds(run_a: Path, tmp_path: Path) -> None:
    broken = _copy(run_a, tmp_path / "broken")
    (broken / "summary.json").write_text("{not json")
    stale = _copy(run_a, tmp_path / "stale", lambda s: s.pop("latency_ms"))
    for b, message in ((broken, "cannot read"), (stale, "lacks what a comparison needs"),
                       (tmp_path / "missing", "no summary.json"),
                       (run_a / "loadtest", "is a load-test run, not a rehearsal")):
        proc = _edgeproof("rehearse", "compare", run_a, b)
        assert proc.returncode == 2, (b, proc.stdout + proc.stderr)
        assert message in proc.stderr
    proc = _edgeproof("rehearse", "compare", run_a, run_a, "--max-p99-increase", "lots")
    assert proc.returncode == 2 and "not a percentage" in proc.stderr
    # a rehearsal is not a load-test run, either way round
    proc = _edgeproof("loadtest", "compare", run_a / "loadtest", run_a)
    assert proc.returncode == 2 and "rehearsal folder, not a load-test run" in proc.stderr


def _rewrite_rows(run: Path, edit: Callable[[pa.Table], pa.Table]) -> None:
    for part in (run / "records").glob("*.parquet"):
        pq.write_table(edit(pq.read_table(part)), part)


def _row_figures(table: pa.Table) -> tuple[float, float]:
    """Whole-run hit rate and the miss p99 (corrected), counted here from the rows."""
    sent = [not d for d in table.column("dropped").to_pylist()]
    classes = [classify(xcache_result(x), "GET") for x in table.column("x_cache").to_pylist()]
    hits = sum(1 for c, s in zip(classes, sent, strict=True) if s and c == "hit")
    misses = sum(1 for c, s in zip(classes, sent, strict=True) if s and c == "miss")
    lat = np.array([v for v, c, s in zip(table.column("latency_corrected_ms").to_pylist(), classes, sent, strict=True)
                    if s and c == "miss" and v is not None])
    return hits / (hits + misses), exact_quantiles(lat, [0.99])["p99"]


def test_loadtest_compare_on_edited_rows(run_a: Path, tmp_path: Path) -> None:
    a = run_a / "loadtest"
    rows = read_records(a)
    hits = [i for i, x in enumerate(rows.column("x_cache").to_pylist()) if classify(xcache_result(x), "GET") == "hit"]
    assert len(hits) >= 10, "the rehearsal's rows should hold some hits"
    turned = set(hits[: len(hits) // 2])

    def fewer_hits_slower_misses(t: pa.Table) -> pa.Table:
        xc = t.column("x_cache").to_pylist()
        start = t.column("intended_start").to_pylist()
        index = {s: i for i, s in enumerate(rows.column("intended_start").to_pylist())}
        xc = ["Miss from cloudfront" if index[s] in turned else x for x, s in zip(xc, start, strict=True)]
        lat = [None if v is None else v * 2 if classify(xcache_result(x), "GET") == "miss" else v
               for v, x in zip(t.column("latency_corrected_ms").to_pylist(), xc, strict=True)]
        t = t.set_column(t.schema.get_field_index("x_cache"), "x_cache", pa.array(xc, pa.string()))
        return t.set_column(t.schema.get_field_index("latency_corrected_ms"), "latency_corrected_ms",
                            pa.array(lat, pa.float64()))

    b = tmp_path / "b"
    shutil.copytree(a, b)
    _rewrite_rows(b, fewer_hits_slower_misses)
    same, result = _compare_json("loadtest", a, a)
    assert same == 0 and not result["regressed"]
    assert all(m["delta"] in (0, None) for m in result["metrics"]) and all(g["delta"] == 0 for g in result["gates"])

    html = tmp_path / "lt.html"
    proc = _edgeproof("loadtest", "compare", a, b, "--html", html)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "B REGRESSED" in proc.stdout and "hit rate (whole run) fell" in proc.stdout
    assert "transforms" not in proc.stdout  # a plain load test has no origin counters
    code, result = _compare_json("loadtest", a, b)
    a_hr, a_miss = _row_figures(rows)
    b_hr, b_miss = _row_figures(read_records(b))
    assert b_hr < a_hr
    hr = _metric(result, "hit_rate")
    assert (hr["a"], hr["b"]) == (pytest.approx(a_hr), pytest.approx(b_hr)) and hr["regressed"]
    miss = _metric(result, "p99_miss_ms")
    assert (miss["a"], miss["b"]) == (pytest.approx(a_miss), pytest.approx(b_miss))
    # the run's own gates are compared as judged (verdict.json), and B's was not re-judged
    verdict = json.loads((a / "verdict.json").read_text())
    assert [g["gate"] for g in result["gates"]] == [g["gate"] for g in verdict["gates"]]
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html.read_text())
    assert len(pngs) == 3

    # the same drops are within a limit wide enough for them (whole run and scored phases)
    worst = max(-m["delta"] for m in result["metrics"] if m["key"] in ("hit_rate", "scored_hit_rate"))
    wide = f"{worst * 100 + 0.01:.2f}"
    code, _ = _compare_json("loadtest", a, b, "--max-hit-rate-drop-pp", wide, "--max-p99-increase", "1000")
    assert code == 0
