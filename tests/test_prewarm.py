"""``edgeproof prewarm plan|run``: one warm request per cache key, Accept classes and DPRs from the logs,
order by expected share, the replay's predicted gain; and a run against a real edge emulator and origin
on 127.0.0.1 after which every POP answers the same requests from its cache (X-Cache Hit)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _edge_helpers import EdgeProc, get, running_origin, start_edge
from edgeproof.analytics.reader import read_logs
from edgeproof.analytics.replay import ACCEPT_BY_CLASS
from edgeproof.analytics.strategies import get_strategy
from edgeproof.analytics.writer import encode_line, w3c_header
from edgeproof.edge.pops import pop_ids
from edgeproof.rehearsal.prewarm import USER_AGENT, read_plan

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
FIREFOX_60 = "Mozilla/5.0 (X11; Linux x86_64; rv:60.0) Gecko/20100101 Firefox/60.0"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeproof.cli", *args], capture_output=True, text=True, timeout=300)


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def synth_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "logs"
    done = cli("logs", "synth", "--out", str(out), "--days", "0.05", "--requests-per-hour", "3000", "--seed", "3")
    assert done.returncode == 0, done.stderr
    return out


def test_plan_from_synthetic_logs_one_line_per_key_ordered_by_share(synth_logs: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.jsonl"
    done = cli("prewarm", "plan", "--launch", "1-10", "--strategy", "aggressive", "--logs", str(synth_logs),
               "-o", str(plan), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    rows = lines(plan)
    keys = [r["cache_key"] for r in rows]
    assert len(keys) == len(set(keys)) == out["requests"] > 0
    strategy = get_strategy("aggressive")
    for r in rows:  # each line's key is what the strategy makes of its URL and Accept
        path, _, query = r["url"].partition("?")
        assert strategy.apply("GET", path, query, r["headers"]).cache_key == r["cache_key"]
        assert r["url"].startswith("/images/sku-000") and "format=auto" in query
    shares = [r["expected_share"] for r in rows]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    # the synthetic log's browsers (Chrome, Safari 17, Firefox 125) all take AVIF and WebP
    assert {r["headers"]["Accept"] for r in rows} == {ACCEPT_BY_CLASS[2]}
    assert set(out["accept"]) == {ACCEPT_BY_CLASS[2]}
    # 10 SKUs x 3 images; the scenario's 15 srcset widths fold into fewer breakpoints under aggressive
    assert len({r["url"].split("?")[0] for r in rows}) == 30
    assert out["pops"] and out["prediction"]["warm_rows"] == len(rows) * len(out["pops"])
    pred = out["prediction"]
    assert pred["hit_rate_with"] > pred["hit_rate_without"]  # the log asks for the launch SKUs (Zipf head)
    assert pred["difference"] == pytest.approx(pred["hit_rate_with"] - pred["hit_rate_without"])


def _mixed_log(folder: Path) -> Path:
    """A small standard log: Chrome 124 (AVIF+WebP) 6x, Chrome 80 (WebP) 3x, Firefox 60 (neither) 1x,
    half of the Chrome 124 rows from a front end sending dpr=2."""
    folder.mkdir()
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    uas = [CHROME.format(v=124)] * 6 + [CHROME.format(v=80)] * 3 + [FIREFOX_60]
    out = [w3c_header()]
    for i, ua in enumerate(uas * 4):
        query = "width=320&format=auto&q=75" + ("&dpr=2" if ua.endswith("124.0.0.0 Safari/537.36") and i % 2 else "")
        out.append(encode_line({
            "timestamp": t0 + timedelta(seconds=i), "x_edge_location": "IAD89-C1" if i % 2 else "FRA56-P5",
            "sc_bytes": 2000, "cs_method": "GET", "cs_uri_stem": f"/images/sku-0000{1 + i % 3}-1.jpg",
            "cs_uri_query": query, "sc_status": 200, "cs_user_agent": ua, "x_edge_result_type": "Miss",
            "sc_content_type": "image/webp",
        }))
    path = folder / "E2TEST.2024-05-01-00.abcdef12.gz"
    path.write_bytes(gzip.compress(("\n".join(out) + "\n").encode()))
    return folder


def test_plan_accept_classes_and_dprs_from_user_agents(tmp_path: Path) -> None:
    logs = _mixed_log(tmp_path / "logs")
    plan = tmp_path / "plan.jsonl"
    done = cli("prewarm", "plan", "--launch", "1", "--strategy", "canonical", "--logs", str(logs),
               "--widths", "320,640", "-o", str(plan), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["accept"] == pytest.approx({ACCEPT_BY_CLASS[2]: 0.6, ACCEPT_BY_CLASS[1]: 0.3, ACCEPT_BY_CLASS[0]: 0.1})
    assert out["dpr"] == pytest.approx({"1": 0.7, "2": 0.3})
    assert sorted(out["pops"]) == ["FRA56-P5", "IAD89-C1"]
    rows = lines(plan)
    # canonical: one key per image x width x format; a DPR-2 spelling is the same pixel width (folded)
    assert len(rows) == len({r["cache_key"] for r in rows}) == 3 * 2 * 3
    assert not any("dpr=" in r["url"] for r in rows)
    by_accept = {a: sum(r["expected_share"] for r in rows if r["headers"]["Accept"] == a) for a in ACCEPT_BY_CLASS}
    assert by_accept == pytest.approx({ACCEPT_BY_CLASS[2]: 0.6, ACCEPT_BY_CLASS[1]: 0.3, ACCEPT_BY_CLASS[0]: 0.1})
    assert rows[0]["headers"]["Accept"] == ACCEPT_BY_CLASS[2] and rows[-1]["headers"]["Accept"] == ACCEPT_BY_CLASS[0]
    shares = [r["expected_share"] for r in rows]
    assert shares == sorted(shares, reverse=True)
    # passthrough keys by the URL alone: the DPR spelling is a key of its own, the Accept is not
    done = cli("prewarm", "plan", "--launch", "1", "--strategy", "passthrough", "--logs", str(logs),
               "--widths", "320,640", "-o", str(plan))
    assert done.returncode == 0, done.stderr
    rows = lines(plan)
    assert len(rows) == len({r["cache_key"] for r in rows}) == 3 * 2 * 2
    assert {r["headers"]["Accept"] for r in rows} == {ACCEPT_BY_CLASS[2]}  # the most popular spelling stands
    dpr2 = [r for r in rows if r["url"].endswith("&dpr=2")]
    assert len(dpr2) == 6 and all(r["expected_share"] == pytest.approx(0.3 / 6) for r in dpr2)
    assert any(r["url"].endswith("?width=160&format=auto&q=80&dpr=2") for r in dpr2)  # CSS width of 320 px
    assert [r["expected_share"] for r in rows] == sorted((r["expected_share"] for r in rows), reverse=True)


def test_plan_and_run_bad_input_exit_2(tmp_path: Path) -> None:
    assert cli("prewarm", "plan", "--launch", "0-3", "--strategy", "canonical", "-o", str(tmp_path / "p")).returncode == 2
    assert cli("prewarm", "plan", "--launch", "1", "--strategy", "nope", "-o", str(tmp_path / "p")).returncode == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"url": "no-slash"}\n')
    assert cli("prewarm", "run", str(bad), "--target", "http://127.0.0.1:9").returncode == 2
    assert cli("prewarm", "run", str(tmp_path / "missing"), "--target", "http://127.0.0.1:9").returncode == 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProc, Path]]:
    """The real origin (pyvips) behind the edge emulator (canonical strategy, 2 POPs), both on loopback."""
    import pyvips

    tmp = tmp_path_factory.mktemp("stack")
    sources, derivatives = tmp / "sources", tmp / "derivatives"
    (sources / "images").mkdir(parents=True)
    derivatives.mkdir()
    for sku in (1, 2):
        image = (pyvips.Image.black(96, 64) + [200, 40 * sku, 40]).cast("uchar").copy(interpretation="srgb")
        image.write_to_file(str(sources / "images" / f"sku-{sku:05d}-1.jpg"))
    with running_origin(sources, derivatives) as port:
        edge = start_edge(tmp, f"{derivatives},http://127.0.0.1:{port}", "--strategy", "canonical", "--pops", "2")
        try:
            yield edge, tmp
        finally:
            edge.stop()


def test_run_warms_every_pop(stack: tuple[EdgeProc, Path], tmp_path: Path) -> None:
    edge, _ = stack
    scenario = tmp_path / "one.toml"
    scenario.write_text("[catalog]\nskus = 2\nimages_per_sku = 1\n[promotion]\nnew_skus = 1\n")
    plan = tmp_path / "plan.jsonl"
    done = cli("prewarm", "plan", "--launch", "1-2", "--scenario", str(scenario), "--strategy", "canonical",
               "--widths", "32,48", "-o", str(plan))
    assert done.returncode == 0, done.stderr
    rows = read_plan(plan)
    assert len(rows) == 2 * 2 * 3  # no logs: every Accept class
    done = cli("prewarm", "run", str(plan), "--target", edge.url, "--pops", "2", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["planned"], result["sent"], result["ok"]) == (24, 24, 24)
    assert result["misses"] == 24 and not result["failures"]  # every key was cold at every POP
    for pop in pop_ids(2):  # the same requests, at each POP: answered from its cache
        for r in rows:
            accept = r.headers["Accept"]
            reply = get(edge.port, r.url, pop=pop, extra=f"Accept: {accept}\r\n")
            assert reply.status == 200 and reply.headers["x-cache"] == "Hit from cloudfront", (pop, r.url, accept)
    assert edge.admin("/flush", "POST")[0] == 200
    table = read_logs([str(edge.log_dir)], columns=["x_edge_location", "cs_uri_stem", "cs_user_agent",
                                                    "x_edge_result_type"]).read_all()
    warm = [row for row in table.to_pylist() if row["cs_user_agent"] == USER_AGENT]
    assert len(warm) == 24
    assert {row["x_edge_location"] for row in warm} == set(pop_ids(2))
    assert {row["x_edge_result_type"] for row in warm} == {"Miss"}
    # a second run finds every key cached: all hits, still exit 0
    again = json.loads(cli("prewarm", "run", str(plan), "--target", edge.url, "--pops", "2", "--json").stdout)
    assert again["hits"] == 24


def test_run_exit_1_when_a_request_fails(stack: tuple[EdgeProc, Path], tmp_path: Path) -> None:
    edge, _ = stack
    plan = tmp_path / "plan.jsonl"
    plan.write_text(json.dumps({"url": "/images/sku-00001-1.jpg?width=40&format=jpeg", "headers": {},
                                "cache_key": "", "expected_share": 0.5}) + "\n" +
                    json.dumps({"url": "/images/no-such.jpg?width=40&format=jpeg", "headers": {},
                                "cache_key": "", "expected_share": 0.5}) + "\n")
    done = cli("prewarm", "run", str(plan), "--target", edge.url, "--pop-header", "0", "--rate", "50")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "sent 2 of 2" in done.stdout and "no-such.jpg" in done.stderr
    bounded = cli("prewarm", "run", str(plan), "--target", edge.url, "--pops", "2", "--max-requests", "1", "--json")
    assert bounded.returncode == 1
    assert json.loads(bounded.stdout)["sent"] == 1
