"""End-to-end rehearsal on the embedded stack: logs, rows and summary agree; the bad strategy fails its gate."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from _rehearsal_helpers import small_rehearsal
from edgeproof.analytics.metrics import classify, xcache_result
from edgeproof.analytics.reader import read_logs
from edgeproof.loadtest.recorder import read_records
from edgeproof.rehearsal.config import dump_toml, load_rehearsal, rehearsal_from_dict

from edgeproof.errors import ConfigError

pytestmark = pytest.mark.slow


def test_bad_strategy_rehearsal_end_to_end() -> None:
    out, proc = small_rehearsal()
    # passthrough behind noisy URLs: the hit-rate gate fails and so does the exit code
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "report:" in proc.stdout and "FAIL" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    gates = {g["gate"]: g for g in summary["gates"]["gates"]}
    assert gates["hit_rate >= 0.96"]["passed"] is False
    assert summary["passed"] is False

    # edge logs vs recorder rows, each counted here from the files themselves
    log_classes: Counter[str] = Counter()
    log_requests = 0
    for batch in read_logs([str(out / "logs")], columns=["x_edge_result_type", "cs_method"]):
        log_requests += batch.num_rows
        for rt, method in zip(batch.column("x_edge_result_type").to_pylist(),
                              batch.column("cs_method").to_pylist(), strict=True):
            log_classes[classify(rt, method)] += 1
    rows = read_records(out / "loadtest")
    answered = [x for x, s in zip(rows.column("x_cache").to_pylist(), rows.column("status").to_pylist(), strict=True)
                if s]
    row_classes = Counter(classify(xcache_result(x), "GET") for x in answered)
    assert log_requests > 100
    assert log_requests == len(answered)
    assert log_classes["hit"] == row_classes["hit"] and log_classes["miss"] == row_classes["miss"]
    edge = summary["edge"]
    assert (edge["requests"], edge["hits"], edge["misses"]) == (log_requests, log_classes["hit"], log_classes["miss"])
    assert summary["client"]["hits"] == row_classes["hit"]
    assert summary["consistency"]["match"] is True
    assert summary["hit_rate"] == pytest.approx(log_classes["hit"] / (log_classes["hit"] + log_classes["miss"]), abs=1e-6)
    assert 0 <= summary["spike_hit_rate"] <= 1

    # the whole schedule was sent (fewer arrivals than the default sender pool: no early drain)
    intended = rows.column("intended_start").to_pylist()
    assert summary["client"]["dropped"] == 0 and summary["client"]["sent"] == rows.num_rows
    assert (max(intended) - min(intended)).total_seconds() > 15

    # the scale-out event was played and the origin did real work
    assert [e["action"] for e in summary["events"]] == ["scale_out"]
    assert summary["transforms"] > 0
    # origin gates: transforms vs the distinct variants the run wrote to the shared store
    work = summary["origin_work"]
    written = {f.relative_to(out / "store" / "derivatives").as_posix()
               for f in (out / "store" / "derivatives").rglob("*") if f.is_file() and not f.name.startswith(".")}
    assert work["transforms"] == summary["transforms"] and work["distinct_variants"] == len(written) > 0
    assert work["repeat_transforms"] == max(0, work["transforms"] - len(written))
    origin_gate = gates["repeat_transform_rate <= 0.5"]
    assert origin_gate["value"] == pytest.approx(work["repeat_transform_rate"])
    assert origin_gate["passed"] == (work["repeat_transform_rate"] <= 0.5)
    assert gates["origin_503 <= 1000"]["value"] == summary["errors"]["origin_503"]
    # the report says why: most misses are other spellings of cached variants
    assert any("fragmented" in line and "aggressive" in line for line in summary["why"])
    assert "why: " in proc.stdout
    # the what-if on the same traffic: a normalizing strategy folds the noise passthrough keeps
    rates = {r["strategy"]: r["hit_rate"] for r in summary["what_if"]["strategies"]}
    assert rates["aggressive"] > rates["passthrough"]
    assert summary["miss_anatomy"]["fragmented"] > 0
    for key in ("p50", "p99"):
        assert summary["latency_ms"]["client"]["hit"][key] is not None
        assert summary["latency_ms"]["edge"]["miss"][key] is not None

    # the scripted scale-out played (no autoscaler in this scenario), its task counted
    scripted = [e for e in summary["events"] if e["action"] == "scale_out"]
    assert scripted and all(e["by"] == "script" for e in scripted) and summary["autoscaling"] is None
    assert [t["by"] for t in summary["tasks"]][:2] == ["initial", "script"]
    # report files, charts embedded in the HTML
    for name in ("report.html", "report.md", "requests_and_hit_rate.png", "latency_over_time.png",
                 "hit_rate_by_pop.png", "origin_transforms.png", "autoscaling.png", "miss_anatomy.png",
                 "hit_rate_by_strategy.png"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(pngs) == 7 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    assert "FAIL" in html and "http://" not in html.replace("http://127.0.0.1", "")
    # every child is gone: the stack's process logs end and no port is still served
    assert (out / "stack" / "edge.log").is_file() and (out / "stack" / "origin-1.log").is_file()


def test_rehearsal_scenarios_validate(tmp_path: Path) -> None:
    default = load_rehearsal("default")
    assert default.strategy == "aggressive" and default.prewarm == "both" and default.autoscaling.enabled
    # 8 POPs in 4 regions (the demo's wall time is measured, not asserted: docs/rehearsal.md, RESULTS.md)
    from edgeproof.cloudfront import region_of

    assert len(default.stack.pop_ids) == 8 and len({region_of(p) for p in default.stack.pop_ids}) == 4
    with pytest.raises(ConfigError, match="unknown key"):
        rehearsal_from_dict({"strategy": "aggressive", "colour": "red"})
    with pytest.raises(ConfigError, match="events\\[0\\].action"):
        rehearsal_from_dict({"events": [{"at": 3, "action": "explode"}]})
    with pytest.raises(ConfigError, match="origin_gates"):
        rehearsal_from_dict({"origin_gates": ["hit_rate >= 0.9"]})
    with pytest.raises(ConfigError, match="shared derivative store"):
        rehearsal_from_dict({"stack": {"shared_derivatives": False, "prescale_launch": True}})
    # the problem and the fix are judged by the same gates, on the same traffic
    ephemeral = load_rehearsal("ephemeral")
    assert ephemeral.loadtest["gates"] == default.loadtest["gates"]
    assert ephemeral.origin_gates == default.origin_gates
    assert ephemeral.strategy != default.strategy and not ephemeral.stack.shared_derivatives
    assert "p99_ms(miss) <= 500" in default.loadtest["gates"]["rules"]
    table = {"name": "x", "catalog": {"zipf": 1.2, "roles": {"thumb": {"widths": [320], "share": 1.0}}}}
    import tomllib

    assert tomllib.loads(dump_toml(table)) == table


def test_prescale_plan_is_the_launch_and_the_hottest(tmp_path: Path) -> None:
    from edgeproof.rehearsal.run import _loadtest_table, prescale_plan

    keys = tmp_path / "catalog.txt"
    keys.write_text("".join(f"images/sku-{s:05d}-{i}.jpg\n" for s in range(1, 9) for i in (1, 2)))
    scenario = load_rehearsal("default")
    table = _loadtest_table(scenario, keys)
    file = tmp_path / "lt.toml"
    file.write_text(dump_toml(table))
    got_keys, ops, skus = prescale_plan(scenario, file)
    new = table["promotion"]["new_skus"]
    hottest = scenario.stack.prescale_hottest
    assert skus == [*range(1, hottest + 1), *range(9 - new, 9)]
    assert got_keys == [f"images/sku-{s:05d}-{i}.jpg" for s in skus for i in (1, 2)]
    # the variants the edge asks the store for: each role width, WebP for Safari and JPEG for legacy
    widths = sorted(w for role in table["catalog"]["roles"].values() for w in role["widths"])
    assert sorted({op.split(",")[0] for op in ops}) == sorted(f"w={w}" for w in set(widths))
    assert {op.rsplit("f=", 1)[1] for op in ops} == {"webp", "jpeg"}
    no_prescale = rehearsal_from_dict({"stack": {"prescale_launch": False}})
    assert prescale_plan(no_prescale, file) == ([], [], [])


def _processes_mentioning(text: str) -> list[int]:
    import os

    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from _rehearsal_helpers import BAD_SCENARIO

    scenario = tmp_path / "s.toml"
    scenario.write_text(BAD_SCENARIO.replace("duration = 20", "duration = 60"))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeproof.cli", "rehearse", "--scenario", str(scenario), "--out", str(out),
         "--cache-dir", str(tmp_path / "cache"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "stack" / "loadtest.log").exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the load never started"
            time.sleep(0.2)
        time.sleep(2)
        children = _processes_mentioning(str(out))
        assert len(children) >= 3  # origin task, edge, load generator
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()[-2000:]
    time.sleep(0.5)
    assert _processes_mentioning(str(out)) == []


def test_target_mode_analyses_client_rows(tmp_path: Path) -> None:
    """--target: no stack; the load goes to the URL and the client rows are analysed (no edge logs)."""
    import subprocess
    import sys

    from _rehearsal_helpers import BAD_SCENARIO
    from conftest import free_port, wait_http

    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "loadtest_target.py"), "--port", str(port),
                               "--miss-every", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc=server)
        scenario = tmp_path / "s.toml"
        scenario.write_text(BAD_SCENARIO)
        out = tmp_path / "out"
        res = subprocess.run(
            [sys.executable, "-m", "edgeproof.cli", "rehearse", "--scenario", str(scenario), "--out", str(out),
             "--target", f"http://127.0.0.1:{port}", "--duration", "10", "--quiet"],
            capture_output=True, text=True, timeout=180,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert res.returncode == 1, res.stderr[-2000:]  # every 10th request a miss: 90% < 96%
    summary = json.loads((out / "summary.json").read_text())
    assert summary["embedded"] is False and summary["edge"] is None
    rows = read_records(out / "loadtest")
    assert summary["client"]["rows"] == rows.num_rows > 50
    assert summary["hit_rate"] == pytest.approx(0.9, abs=0.03)
    assert any("no CloudFront logs" in n for n in summary["notes"])
    assert (out / "report.html").is_file() and not (out / "stack" / "edge.log").exists()
