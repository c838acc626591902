"""The rehearsal's what-if is calibrated: it models the edge that ran, scores the gates' rows, and its
prediction for another strategy matches a rehearsal under that strategy on the same traffic."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from _rehearsal_helpers import BAD_SCENARIO, small_rehearsal
from edgeproof.analytics.replay import compare_strategies
from edgeproof.edge.cache import TtlPolicy
from edgeproof.edge.logsink import ROW_COLUMNS, LogSink
from edgeproof.edge.pops import pop_ids
from edgeproof.rehearsal.calibration import edge_config, edge_serve_args, replay_input, replay_settings
from edgeproof.rehearsal.config import rehearsal_from_dict

from edgeproof.cloudfront import region_of

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def test_the_edge_flags_and_the_replay_settings_come_from_one_config(tmp_path: Path) -> None:
    from edgeproof.edge.cli import register

    scenario = rehearsal_from_dict({"strategy": "allowlist", "stack": {"pops": 5}})
    config = edge_config(scenario, tmp_path)
    args = edge_serve_args(config, port=1, admin_port=2, origin_group="-,http://127.0.0.1:3", log_dir=tmp_path / "l")
    parser = argparse.ArgumentParser()
    register(parser)
    ns = parser.parse_args(args[1:])  # what `edgeproof edge serve` will run with
    assert (ns.strategy, ns.pops, ns.tier, ns.capacity_mb) == (config.strategy, config.pops, config.tier,
                                                                config.capacity_mb)
    assert TtlPolicy(ns.min_ttl, ns.default_ttl, ns.max_ttl, ns.error_ttl) == config.ttl
    assert ns.realtime_logs == config.realtime_log_dir == str(tmp_path / "realtime-logs")
    settings = replay_settings(config)
    # the origin's Cache-Control (max-age 30 days) under the edge's cache policy, as the emulator computes it
    assert settings.ttl == config.ttl.ttl(200, {"cache-control": "public, max-age=2592000, immutable"}) == 2592000
    assert (settings.tier, settings.capacity) == (config.tier, config.capacity_bytes)
    assert settings.pops == tuple(pop_ids(5)) and settings.regions == {p: region_of(p) for p in pop_ids(5)}


def _log_row(t_ms: float, pop: str, query: str, result: str, taken: float, accept: str) -> tuple:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(timestamp=t_ms, x_edge_location=pop, sc_bytes=1000, c_ip="127.0.0.1", cs_method="GET",
                  cs_host="d1.cloudfront.net", cs_uri_stem="/images/a.jpg", sc_status=200, cs_uri_query=query,
                  x_edge_result_type=result, x_edge_request_id="r", cs_protocol="http", cs_bytes=100,
                  time_taken=taken, x_edge_response_result_type=result, cs_protocol_version="HTTP/1.1",
                  c_port=1, time_to_first_byte=taken, x_edge_detailed_result_type=result,
                  sc_content_type="image/webp", sc_content_len=900, cs_accept=accept)
    return tuple(values[c] for c in ROW_COLUMNS)


def test_replay_input_keys_rows_by_intended_start_and_scores_the_gates_rows(tmp_path: Path) -> None:
    """Real-time log lines written by the edge's own log sink, paired with recorder-shaped rows.

    Request 2 (a spelling of request 1's variant) starts during the warm-up but is logged after the
    spike started (a slow miss): by log time it would be scored, by its start it is not. Request 5
    starts after the spike and must not be scored at all."""
    webp = "image/webp,image/*;q=0.8"
    # (intended start s, POP, query, logged result, time-taken s, phase)
    reqs = [(0.0, "IAD89-C1", "w=320&f=auto", "Miss", 0.05, "baseline"),
            (9.0, "IAD89-C1", "width=320&format=auto", "Miss", 2.5, "baseline"),
            (10.2, "IAD89-C1", "w=320&f=auto", "Hit", 0.001, "peak"),
            (11.0, "IAD89-C1", "width=320&format=auto", "Hit", 0.001, "peak"),
            (25.0, "IAD89-C1", "w=320&f=auto&utm_source=x", "Miss", 0.01, "drain")]
    sink = LogSink(tmp_path / "std", "ETEST1", realtime_dir=tmp_path / "rt")
    for start, pop, query, result, taken, _ in reqs:
        sink.add(_log_row(T0_MS + start * 1000 + 2 + taken * 1000, pop, query, result, taken, webp))
    sink.close()
    starts = [T0_MS * 1000 + int(r[0] * 1e6) for r in reqs]
    records = pa.table({
        "intended_start": pa.array(starts, pa.timestamp("us", tz="UTC")),
        "actual_start": pa.array([s + 1000 for s in starts], pa.timestamp("us", tz="UTC")),
        "status": [200] * len(reqs), "pop": [r[1] for r in reqs],
        "url": ["/images/a.jpg?" + r[2] for r in reqs], "phase": [r[5] for r in reqs]})
    prepared = replay_input([str(tmp_path / "rt")], load_start=T0, spike=(10.0, 20.0), records=records,
                            spike_phases=["peak"])
    assert prepared.info["order"].startswith("intended start")
    assert prepared.info["after_spike"] == 1  # request 5
    got = prepared.table.column("timestamp").cast(pa.int64()).to_pylist()
    assert got == [T0_MS + int(r[0] * 1000) for r in reqs[:4]]
    result = compare_strategies(prepared.table, ["allowlist", "aggressive"], warmup=prepared.warmup, ttl=0)
    assert result["scored"] == 2 and result["observed"]["hit_rate"] == 1.0
    assert result["accept_inference"]["from_log"] == 4
    assert result["strategies"]["aggressive"]["hit_rate"] == 1.0
    # by log time (the replay's own order), request 2 would have been scored: the window was wrong
    by_log = compare_strategies([str(tmp_path / "rt")], ["allowlist"], warmup=10.0, ttl=0)
    assert by_log["scored"] == 4

    # without recorder rows: keyed by arrival at the edge (log time - time-taken)
    arrival = replay_input([str(tmp_path / "rt")], load_start=T0, spike=(10.0, 20.0))
    assert arrival.info["order"].startswith("arrival")
    assert arrival.table.column("timestamp").cast(pa.int64()).to_pylist() == \
        [T0_MS + int(r[0] * 1000) + 2 for r in reqs[:4]]


def _hit_rate_gate(summary: dict) -> float:
    return next(g["value"] for g in summary["gates"]["gates"] if g["gate"].startswith("hit_rate"))


@pytest.mark.slow
def test_a_rehearsal_pair_predicts_what_the_other_strategy_measures(tmp_path: Path) -> None:
    """passthrough (the shared small rehearsal) and aggressive on the same traffic.

    Tolerances: the replay of a run's own strategy must reproduce its logged hit rate within 0.1 pp
    (it scores the same requests through a model of the same cache); the prediction for the other
    strategy must match that strategy's measured hit-rate gate within 1 request of the spike's."""
    source, proc = small_rehearsal()
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    scenario = tmp_path / "bad.toml"
    scenario.write_text(BAD_SCENARIO)
    other = tmp_path / "other"
    res = subprocess.run(
        [sys.executable, "-m", "edgeproof.cli", "rehearse", "--scenario", str(scenario), "--strategy", "aggressive",
         "--out", str(other), "--cache-dir", str(source.parent / "cache"), "--quiet"],
        capture_output=True, text=True, timeout=240)
    assert res.returncode in (0, 1), res.stderr[-3000:]
    runs = {}
    for out in (source, other):
        s = json.loads((out / "summary.json").read_text())
        w = s["what_if"]
        assert w["logs"] == "realtime" and w["input"]["order"].startswith("intended start")
        cal = w["self_calibration"]
        assert cal["scored"] == next(g["rows"] for g in s["gates"]["gates"] if g["gate"].startswith("hit_rate"))
        assert abs(cal["difference"]) <= 0.001, cal
        assert any(line.startswith("Calibration:") for line in w["calibration_notes"])
        runs[s["strategy"]] = s
    predicted = {r["strategy"]: r["hit_rate"] for r in runs["passthrough"]["what_if"]["strategies"]}["aggressive"]
    observed = _hit_rate_gate(runs["aggressive"])
    scored = runs["aggressive"]["what_if"]["self_calibration"]["scored"]
    assert predicted is not None and observed is not None
    assert abs(predicted - observed) <= 1 / scored + 1e-9, (predicted, observed, scored)


def test_calibration_notes_name_each_cause_that_remains() -> None:
    from edgeproof.rehearsal.calibration import calibration_lines

    what_if = {"self_calibration": {"strategy": "allowlist", "predicted_hit_rate": 0.8, "observed_hit_rate": 0.8,
                                    "difference": 0.0, "scored": 970},
               "settings": {"tier": "regional", "ttl_seconds": 2592000.0, "capacity_bytes": 256 * 2**20},
               "logs": "realtime", "excluded": {"error": 30, "method": 0}, "input": {"order": "arrival (…)"}}
    lines = calibration_lines(what_if, dropped=5, evictions=3, edge_spike_hit_rate=0.79)
    assert lines[0].startswith("Calibration:") and "exactly what the edge logged" in lines[0]
    assert "TTL 30 d" in lines[0] and "Accept the viewers sent" in lines[0]
    assert any("79.00%" in line and "80.00%" in line for line in lines)
    assert any(line.startswith("30 requests") and "3.00 pp" in line for line in lines)  # 30 / (970 + 30)
    assert any(line.startswith("5 arrivals") for line in lines)
    assert any("arrival at the edge" in line for line in lines)
    assert any("evicted 3 objects" in line for line in lines)
    off = calibration_lines({**what_if, "self_calibration": {**what_if["self_calibration"],
                                                            "predicted_hit_rate": 0.81, "difference": 0.01},
                             "excluded": {}, "input": {}})
    assert "+1.00 pp" in off[0] and len(off) == 1
