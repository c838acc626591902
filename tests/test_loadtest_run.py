"""End to end: ``edgeproof loadtest run`` drives real Locust (a subprocess) against a loopback server.

Every run is bounded (short durations, the runner's own timeout, pytest-timeout). Locust is never
imported into pytest.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
from conftest import free_port, wait_http
from edgeproof.loadtest.recorder import read_records
from edgeproof.loadtest.shapes import build_shape

TARGET = Path(__file__).resolve().parent / "loadtest_target.py"
EDGEPROOF = [sys.executable, "-m", "edgeproof.cli"]


@pytest.fixture
def target() -> Iterator[Callable[..., str]]:
    """Start ``tests/loadtest_target.py`` with the given options; returns its base URL."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> str:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(TARGET), "--port", str(port), *args])
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/ready", proc=proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _edgeproof(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEPROOF, *args], capture_output=True, text=True, timeout=timeout)


def _why(res: subprocess.CompletedProcess, out: Path) -> str:
    log = out / "locust.log"
    return res.stdout + res.stderr + (log.read_text()[-3000:] if log.is_file() else "")


def _t0(out: Path) -> float:
    m = re.search(r"edgeproof: start t0=([0-9.]+)", (out / "locust.log").read_text())
    assert m, "the Locust process did not announce its start"
    return float(m.group(1))


def test_rate_follows_the_shape_and_gates_pass(tmp_path: Path, target: Callable[..., str]) -> None:
    url = target()
    scenario = tmp_path / "steps.toml"
    scenario.write_text(
        'name = "steps"\n[shape]\nkind = "step"\nsteps = [0.5, 1.0]\n'
        '[run]\nmax_lateness_s = 30.0\n'
        '[gates]\nscope = "all"\nrules = ["hit_rate >= 0.96", "error_rate <= 0.01", "dropped_rate <= 0.01",'
        ' "requests == 1500"]\n'
    )
    out = tmp_path / "run"
    res = _edgeproof("loadtest", "run", str(scenario), "--host", url, "--duration", "20", "--peak-rps", "100",
                     "--out", str(out))
    assert res.returncode == 0, _why(res, out)
    assert "verdict: PASS" in res.stdout and "edgeproof: progress" in res.stdout
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["passed"] and verdict["totals"]["requests"] == 1500
    # Locust's own reports are there too, and saw the same requests
    stats = (out / "locust_stats.csv").read_text().splitlines()
    agg = next(line for line in stats if ",Aggregated," in line).split(",")
    assert int(agg[2]) == 1500
    assert (out / "locust.html").stat().st_size > 1000
    # achieved rate per 10 s window (by actual start) within 5 % of the shape's target
    table = read_records(out)
    t0 = _t0(out)
    starts = [t.timestamp() - t0 for t in table.column("actual_start").to_pylist()]
    shape = build_shape({"kind": "step", "steps": [0.5, 1.0]}, duration=20, peak_rps=100)
    for w in (0, 10):
        got = sum(w <= s < w + 10 for s in starts)
        want = shape.expected(w, w + 10)
        assert abs(got - want) <= 0.05 * want, (w, got, want)
    assert set(table.column("phase").to_pylist()) == {"step1", "step2"}
    assert set(table.column("pop").to_pylist()) >= {"IAD89-C1", "FRA56-P5"}


def test_slow_server_shows_coordinated_omission_and_fails_gates(tmp_path: Path, target: Callable[..., str]) -> None:
    # 100 ms per response and at most 4 requests in flight: capacity 40/s against 60/s offered
    url = target("--delay-ms", "100", "--miss-every", "5")
    scenario = tmp_path / "slow.toml"
    scenario.write_text(
        'name = "slow"\n[shape]\nkind = "soak"\nramp = 0\n'
        '[run]\npool = 4\nmax_lateness_s = 1.0\nlate_ms = 10\ndrain_s = 3\n'
        '[gates]\nscope = "all"\nrules = ["dropped_rate <= 0.01", "p99_ms <= 150"]\n'
    )
    out = tmp_path / "run"
    res = _edgeproof("loadtest", "run", str(scenario), "--host", url, "--duration", "5", "--peak-rps", "60",
                     "--out", str(out), "--json", "--quiet")
    assert res.returncode == 1, res.stdout + res.stderr
    verdict = json.loads(res.stdout)
    assert not verdict["passed"]
    assert {g["gate"]: g["passed"] for g in verdict["gates"]} == {"dropped_rate <= 0.01": False, "p99_ms <= 150": False}
    totals = verdict["totals"]
    assert totals["requests"] == 300 and totals["late"] > 0 and totals["dropped"] > 0
    assert totals["latency_corrected_ms"]["p99"] > totals["latency_ms"]["p99"]
    table = read_records(out)
    sent = table.filter(pc.invert(table.column("dropped")))
    assert pc.min(pc.subtract(sent.column("latency_corrected_ms"), sent.column("latency_ms"))).as_py() >= -0.5
    dropped = table.filter(table.column("dropped"))
    assert dropped.num_rows == totals["dropped"] and dropped.column("latency_ms").null_count == dropped.num_rows
    # the verdict subcommand re-judges the same rows with other gates (hit rate 0.8 from --miss-every 5)
    ok = _edgeproof("loadtest", "verdict", str(out), "--gate", "hit_rate >= 0.75", "--gate", "p99_raw_ms <= 60000")
    assert ok.returncode == 0 and "verdict: PASS" in ok.stdout, ok.stdout + ok.stderr
    bad = _edgeproof("loadtest", "verdict", str(out), "--gate", "hit_rate >= 0.85")
    assert bad.returncode == 1 and "FAIL" in bad.stdout


def test_processes_split_the_schedule_into_lanes(tmp_path: Path, target: Callable[..., str]) -> None:
    url = target()
    out = tmp_path / "run"
    res = _edgeproof("loadtest", "run", "soak", "--host", url, "--duration", "5", "--peak-rps", "40",
                     "--processes", "2", "--out", str(out), "--gate", "requests(all) >= 1", "--quiet")
    assert res.returncode == 0, _why(res, out)
    parts = sorted((out / "records").glob("part-*.parquet"))
    assert len(parts) == 2, _why(res, out)
    table = read_records(out)
    shape = build_shape({"kind": "soak"}, duration=5, peak_rps=40)
    assert table.num_rows == len(list(shape.arrivals())), _why(res, out)
    lanes = table.column("lane").to_pylist()
    assert set(lanes) == {0, 1} and abs(lanes.count(0) - lanes.count(1)) <= 1
    t0 = _t0(out)
    offsets = sorted(t.timestamp() - t0 for t in table.column("intended_start").to_pylist())
    assert max(abs(a - b) for a, b in zip(offsets, shape.arrivals(), strict=True)) < 0.001


def test_bad_cli_input_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a refused run must not leave an output folder behind
    res = _edgeproof("loadtest", "run", "nope", "--host", "http://127.0.0.1:1")
    assert res.returncode == 2 and "unknown scenario" in res.stderr and "Traceback" not in res.stderr
    res = _edgeproof("loadtest", "run", "spike", "--host", "http://127.0.0.1:1", "--gate", "p99 < 3")
    assert res.returncode == 2 and "gate" in res.stderr
    res = _edgeproof("loadtest", "run", "spike", "--host", "127.0.0.1:1")
    assert res.returncode == 2 and "--host" in res.stderr
    assert not (tmp_path / "loadtest-runs").exists()
    res = _edgeproof("loadtest", "scenarios")
    assert res.returncode == 0 and "spike" in res.stdout and "soak" in res.stdout
    res = _edgeproof("loadtest", "show", "spike", "--duration", "60", "--peak-rps", "10", "--sample", "3")
    assert res.returncode == 0 and "/images/sku-" in res.stdout and "ramp" in res.stdout


def test_replay_reproduces_the_log_url_sequence(tmp_path: Path, target: Callable[..., str]) -> None:
    pytest.importorskip("edgeproof.analytics.reader")
    from datetime import UTC, datetime, timedelta

    from edgeproof.analytics.writer import encode_line, w3c_header

    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    rows, expected = [], []
    for i in range(60):
        stem = f"/images/sku-{i % 7:05d}-1.jpg"
        query = f"width={160 * (1 + i % 4)}&format=auto&utm_source=r{i}" if i % 5 else ""
        method = "POST" if i == 13 else "GET"
        rows.append({"timestamp": start + timedelta(seconds=i * 10), "x_edge_location": "IAD89-C1",
                     "cs_method": method, "cs_uri_stem": stem, "cs_uri_query": query, "sc_status": 200,
                     "x_edge_result_type": "Hit", "cs_user_agent": "Mozilla/5.0 test",
                     "sc_content_type": "image/webp", "time_taken": 0.002})
        if method == "GET":
            expected.append(f"{stem}?{query}" if query else stem)
    log = tmp_path / "E2EXAMPLE.2026-11-20-10.abcd.log"
    log.write_text(w3c_header() + "".join(encode_line(r) + "\n" for r in rows))
    urls_seen = tmp_path / "urls.txt"
    url = target("--urls", str(urls_seen))
    out = tmp_path / "run"
    # 590 s of log → 5 s of test
    res = _edgeproof("loadtest", "run", "spike", "--host", url, "--replay", str(log), "--duration", "5",
                     "--out", str(out), "--gate", "error_rate <= 0", "--gate", "requests == 59", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    table = read_records(out).sort_by("intended_start")
    assert table.column("url").to_pylist() == expected
    assert set(table.column("phase").to_pylist()) == {"replay"}
    assert sorted(u for u in urls_seen.read_text().split() if u != "/ready") == sorted(expected)
    t0 = _t0(out)
    offsets = [t.timestamp() - t0 for t in table.column("intended_start").to_pylist()]
    assert offsets[-1] == pytest.approx(5.0, abs=0.01)
    assert offsets[1] - offsets[0] == pytest.approx(10 * 5 / 590, rel=0.01)


def test_short_low_rate_run_sends_across_its_whole_duration(tmp_path: Path, target: Callable[..., str]) -> None:
    # far fewer arrivals (~60) than the default sender pool (1000): every arrival is handed to a sender
    # at once, but the lane must still wait for the last one's intended start before it drains
    url = target()
    out = tmp_path / "run"
    res = _edgeproof("loadtest", "run", "soak", "--host", url, "--duration", "10", "--peak-rps", "6",
                     "--out", str(out), "--gate", "requests(all) >= 1", "--quiet")
    assert res.returncode == 0, _why(res, out)
    table = read_records(out)
    shape = build_shape({"kind": "soak"}, duration=10, peak_rps=6)
    arrivals = list(shape.arrivals())
    assert len(arrivals) < 1000 and max(arrivals) > 9
    assert table.num_rows == len(arrivals), _why(res, out)
    t0 = _t0(out)
    sent = table.filter(pc.invert(table.column("dropped")))
    assert sent.num_rows == len(arrivals)
    assert set(sent.column("status").to_pylist()) == {200}, _why(res, out)
    starts = sorted(t.timestamp() - t0 for t in sent.column("actual_start").to_pylist())
    assert starts[-1] > 8.5, starts[-5:]  # an early drain (5 s) stops well before
