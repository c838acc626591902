"""The weekly hit-rate report on a generated week with known hit rates per day (local and S3)."""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.writer import encode_line, w3c_header

WEEK = "2026-W47"  # Monday 2026-11-16
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
POPS = ("IAD89-C1", "FRA56-P5", "NRT57-P2")


def write_week(out: Path, rates: list[float], *, per_file: int = 200, seed: int = 7) -> dict[str, tuple[int, int]]:
    """Hourly-ish gz logs for one week; exactly round(rate * n) hits per day. Returns day -> (hits, misses)."""
    rnd = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    known: dict[str, tuple[int, int]] = {}
    for day, rate in enumerate(rates):
        hours = range(0, 24, 4)
        n = per_file * len(hours)
        hits = round(rate * n)
        flags = [True] * hits + [False] * (n - hits)
        rnd.shuffle(flags)
        known[(MONDAY + timedelta(days=day)).strftime("%Y-%m-%d")] = (hits, n - hits)
        k = 0
        for hour in hours:
            t0 = MONDAY + timedelta(days=day, hours=hour)
            with gzip.open(out / f"E2TEST.{t0:%Y-%m-%d-%H}.{day}{hour}.gz", "wt") as f:
                f.write(w3c_header())
                for i in range(per_file):
                    hit = flags[k]
                    k += 1
                    rt = "Hit" if hit else "Miss"
                    sku = rnd.randint(1, 40)
                    query = f"w={rnd.choice([320, 640])}&f=webp" + ("&utm_source=mail" if rnd.random() < 0.3 else "")
                    f.write(encode_line({
                        "timestamp": t0 + timedelta(seconds=i * 10), "x_edge_location": rnd.choice(POPS),
                        "sc_bytes": 20_000, "c_ip": "192.0.2.1", "cs_method": "GET", "cs_host": "d1.cloudfront.net",
                        "cs_uri_stem": f"/images/sku-{sku:05d}-1.jpg", "sc_status": 200, "cs_uri_query": query,
                        "x_edge_result_type": rt, "x_edge_response_result_type": rt, "x_edge_detailed_result_type": rt,
                        "x_edge_request_id": f"r{day}-{hour}-{i}", "cs_protocol": "https",
                        "time_taken": 0.002 if hit else 0.150, "time_to_first_byte": 0.001 if hit else 0.120,
                        "sc_content_type": "image/webp",
                    }) + "\n")
            # a line outside the week and a POST (excluded) in the first file only
        if day == 0:
            with gzip.open(out / "E2TEST.2026-11-16-00.extra.gz", "wt") as f:
                f.write(w3c_header())
                f.write(encode_line({"timestamp": MONDAY + timedelta(minutes=5), "x_edge_location": POPS[0],
                                     "cs_method": "POST", "cs_uri_stem": "/api", "sc_status": 403,
                                     "x_edge_result_type": "Error", "sc_bytes": 10}) + "\n")
                f.write("this is not a log line\n")
    return known


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeproof.cli", "report", "weekly", "--quiet", *args],
                          capture_output=True, text=True, timeout=240)


GOOD = [0.97, 0.98, 0.965, 0.97, 0.99, 0.975, 0.97]
BAD = [0.97, 0.98, 0.90, 0.93, 0.95, 0.94, 0.92]


def test_weekly_met_target_local(tmp_path: Path) -> None:
    known = write_week(tmp_path / "logs", GOOD)
    out = tmp_path / "out"
    # two processes, each aggregating its share of the files; the merged counts must be exact
    res = run_cli("--logs", str(tmp_path / "logs"), "--week", WEEK, "--out", str(out),
                  "--history", str(tmp_path / "hist"), "--jobs", "2")
    assert res.returncode == 0, res.stderr
    assert "MET" in res.stdout and "report:" in res.stdout
    s = json.loads((out / "summary.json").read_text())
    hits = sum(h for h, _ in known.values())
    misses = sum(m for _, m in known.values())
    assert (s["hits"], s["misses"]) == (hits, misses)
    assert s["hit_rate"] == pytest.approx(hits / (hits + misses))
    assert s["excluded"] == {"method": 1}
    assert s["bad_lines"]["count"] == 1 and ".extra.gz:4:" in s["bad_lines"]["examples"][0]
    daily = {d["key"]: d for d in s["daily"]}
    assert set(daily) == set(known)
    for day, (h, m) in known.items():
        assert (daily[day]["hits"], daily[day]["misses"]) == (h, m)
    assert s["days_below_target"] == []
    assert {p["key"] for p in s["by_pop"]} == {"IAD", "FRA", "NRT"}
    assert s["latency_ms"]["time_taken"]["hit"]["p50"] == pytest.approx(2.0, rel=0.02)
    assert s["latency_ms"]["time_taken"]["miss"]["p99"] == pytest.approx(150.0, rel=0.02)
    assert s["bytes"]["from_cache"] == hits * 20_000
    # utm noise makes extra spellings of the same variant: the family fragments
    fam = s["top_fragmenting_families"][0]
    assert fam["family"] == "/images/*.jpg" and fam["missed_urls"] > fam["variants"]
    assert s["top_missed_variants"][0]["variant"].startswith("/images/sku-")
    # replay what-if: utm noise fragments passthrough's keys; a normalizing strategy folds them
    what_if = s["what_if"]
    rates = {r["strategy"]: r["hit_rate"] for r in what_if["strategies"]}
    assert rates["aggressive"] > rates["passthrough"]
    assert what_if["best"] in rates
    assert what_if["predicted_gain"] == pytest.approx(what_if["best_hit_rate"] - s["hit_rate"])
    assert s["miss_anatomy"]["fragmented"] > 0
    assert "best strategy by replay" in res.stdout
    html = (out / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(pngs) >= 5 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    assert "Target met" in html
    md = (out / "report.md").read_text()
    assert "daily_hit_rate.png" in md and (out / "daily_hit_rate.png").exists()
    assert json.loads((tmp_path / "hist" / f"{WEEK}.json").read_text())["hit_rate"] == s["hit_rate"]


def test_weekly_missed_target_exit_1_and_week_over_week(tmp_path: Path) -> None:
    write_week(tmp_path / "logs", BAD)
    hist = tmp_path / "hist"
    hist.mkdir()
    (hist / "2026-W46.json").write_text(json.dumps({"week": "2026-W46", "hit_rate": 0.97, "requests": 1000,
                                                    "bytes": {"from_origin": 0}, "latency_ms": {}}))
    out = tmp_path / "out"
    res = run_cli("--logs", str(tmp_path / "logs"), "--week", WEEK, "--out", str(out), "--no-what-if",
                  "--history", str(hist))
    assert res.returncode == 1, res.stderr
    assert "MISSED" in res.stdout
    s = json.loads((out / "summary.json").read_text())
    assert not s["met_target"]
    assert s["days_below_target"] == ["2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"]
    assert s["week_over_week"]["hit_rate"] == pytest.approx(s["hit_rate"] - 0.97)
    assert "Target missed" in (out / "report.html").read_text()


def test_weekly_empty_week_is_a_usage_error(tmp_path: Path) -> None:
    write_week(tmp_path / "logs", [0.97])
    res = run_cli("--logs", str(tmp_path / "logs"), "--week", "2026-W30", "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "no log lines in week 2026-W30" in res.stderr


def test_weekly_on_s3_with_history_and_publish(tmp_path: Path, s3_env: dict[str, str], s3_bucket: str) -> None:
    import boto3

    logs = tmp_path / "logs"
    write_week(logs, GOOD, per_file=60)
    s3 = boto3.client("s3")
    for path in sorted(logs.iterdir()):
        s3.upload_file(str(path), s3_bucket, f"cf/{path.name}")
    # an object from another week is listed but never downloaded (filtered by its name)
    s3.put_object(Bucket=s3_bucket, Key="cf/E2TEST.2026-10-01-00.old.gz", Body=b"garbage")
    res = run_cli("--logs", f"s3://{s3_bucket}/cf/", "--week", WEEK, "--out", str(tmp_path / "out"), "--no-what-if",
                  "--history", f"s3://{s3_bucket}/history", "--publish", f"s3://{s3_bucket}/reports/{WEEK}")
    assert res.returncode == 0, res.stderr
    assert f"published: s3://{s3_bucket}/reports/{WEEK}/report.html" in res.stdout
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="reports/")["Contents"]}
    assert {f"reports/{WEEK}/report.html", f"reports/{WEEK}/report.md", f"reports/{WEEK}/summary.json"} <= keys
    assert any(k.endswith(".png") for k in keys)
    stored = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"history/{WEEK}.json")["Body"].read())
    local = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert stored["hit_rate"] == local["hit_rate"] and local["bad_lines"]["count"] == 1


def test_aggregate_agrees_with_summarize_and_merges(tmp_path: Path) -> None:
    from analytics import read_logs, summarize
    from analytics.report.aggregate import AGGREGATE_COLUMNS, LogAggregate
    from analytics.synthetic import generate_logs

    files = generate_logs(tmp_path, "2026-11-16T00:00:00Z", hours=6, requests_per_hour=800, hit_rate=0.93, seed=4)
    whole = LogAggregate()
    parts = [LogAggregate(), LogAggregate()]
    for i, path in enumerate(files):
        for batch in read_logs([str(path)], columns=list(AGGREGATE_COLUMNS)):
            whole.add_batch(batch)
            parts[i % 2].add_batch(batch)
    merged = parts[0].merge(parts[1])
    reference = summarize([str(p) for p in files], by="pop")
    assert (whole.total.hits, whole.total.misses) == (reference["hits"], reference["misses"])
    assert {k: v for k, v in whole.excluded.items()} == {k: v for k, v in reference["excluded"].items() if v}
    assert whole.sketches["time_taken_miss"].quantiles()["p99"] == reference["latency_ms"]["time_taken"]["miss"]["p99"]
    for pop, group in reference["groups"].items():
        assert whole.groups["pop"][pop].hits == group["hits"]
    assert merged.total == whole.total
    assert merged.groups["hour"] == whole.groups["hour"] and len(whole.groups["hour"]) == 6
    assert merged.missed_urls == whole.missed_urls
    assert merged.sketches["time_taken_all"].counts.tolist() == whole.sketches["time_taken_all"].counts.tolist()
