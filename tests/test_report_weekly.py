"""The weekly hit-rate report on a generated week with known hit rates per day (local and S3)."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import random
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from edgeproof.analytics.reader import FileStats
from edgeproof.analytics.writer import encode_line, w3c_header

WEEK = "2026-W47"  # Monday 2026-11-16
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
POPS = ("IAD89-C1", "FRA56-P5", "NRT57-P2")


def write_week(out: Path, rates: list[float], *, per_file: int = 50, seed: int = 7) -> dict[str, tuple[int, int]]:
    """Hourly gz logs for one week (every hour has data); exactly round(rate * n) hits per day.

    Returns day -> (hits, misses)."""
    rnd = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    known: dict[str, tuple[int, int]] = {}
    for day, rate in enumerate(rates):
        hours = range(24)
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
    assert "coverage: all 168 hours have log data" in res.stdout
    s = json.loads((out / "summary.json").read_text())
    hits = sum(h for h, _ in known.values())
    misses = sum(m for _, m in known.values())
    assert (s["hits"], s["misses"]) == (hits, misses)
    assert s["hit_rate"] == pytest.approx(hits / (hits + misses))
    assert s["excluded"] == {"method": 1}
    assert s["verdict"] == "MET" and s["met_target"] is True
    assert (s["coverage"]["hours_expected"], s["coverage"]["hours_with_data"], s["coverage"]["missing"]) == (168, 168, [])
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
                                                    "bytes": {"from_origin": 0}, "latency_ms": {},
                                                    "coverage": {"hours_missing": 24}}))
    out = tmp_path / "out"
    res = run_cli("--logs", str(tmp_path / "logs"), "--week", WEEK, "--out", str(out), "--no-what-if",
                  "--history", str(hist))
    assert res.returncode == 1, res.stderr
    assert "MISSED" in res.stdout
    s = json.loads((out / "summary.json").read_text())
    assert not s["met_target"]
    assert s["days_below_target"] == ["2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"]
    assert s["verdict"] == "MISSED" and s["coverage"]["complete"]
    assert any("2026-W46 had 24 hour(s) without log data" in n for n in s["notes"])
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
    from edgeproof.analytics import read_logs, summarize
    from edgeproof.analytics.aggregate import REPORT_DIMENSIONS, LogAggregate
    from edgeproof.analytics.synthetic import generate_logs

    files = generate_logs(tmp_path, "2026-11-16T00:00:00Z", hours=6, requests_per_hour=800, hit_rate=0.93, seed=4)

    def weekly() -> LogAggregate:  # the weekly report's shape
        return LogAggregate(dims=REPORT_DIMENSIONS, missed_urls=True)

    whole = weekly()
    parts = [weekly(), weekly()]
    for i, path in enumerate(files):
        for batch in read_logs([str(path)], columns=whole.columns):
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
    assert (merged.total.sketch("time_taken", "cacheable").counts.tolist()
            == whole.total.sketch("time_taken", "cacheable").counts.tolist())


# -- coverage: a week with a day of logs missing ---------------------------------------------------

#: Wednesday 2026-11-18 is the bad day; every other day is well above the 0.96 target
SYNTH_RATES = "0.98,0.98,0.70,0.98,0.98,0.98,0.98"
BAD_DAY, GOOD_DAY = "2026-11-18", "2026-11-16"
BAD_DAY_GAP = "2026-11-18 00:00–23:59 UTC (24 h)"


@pytest.fixture(scope="module")
def synth_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A week of realistic logs from ``edgeproof logs synth`` (200 requests an hour, 168 hourly files)."""
    out = tmp_path_factory.mktemp("synth") / "logs"
    res = subprocess.run([sys.executable, "-m", "edgeproof.cli", "logs", "synth", "--out", str(out),
                          "--start", "2026-11-16", "--days", "7", "--requests-per-hour", "200",
                          "--hit-rate", SYNTH_RATES, "--seed", "11"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("*.gz"))) == 168
    return out


def _without_day(src: Path, dst: Path, day: str) -> Path:
    """A copy of ``src`` with one day's hourly files (``DIST.YYYY-MM-DD-HH.*.gz``) deleted."""
    shutil.copytree(src, dst)
    doomed = list(dst.glob(f"*.{day}-??.*.gz"))
    assert len(doomed) == 24
    for path in doomed:
        path.unlink()
    return dst


def _reference_rate(logs: Path) -> float:
    """The hit rate of what is on disk, by analytics.summarize (the one definition), to judge the CLI by."""
    from edgeproof.analytics import summarize

    ref = summarize([str(logs)])
    return ref["hits"] / (ref["hits"] + ref["misses"])


def test_missing_day_is_incomplete_in_every_output(synth_week: Path, tmp_path: Path) -> None:
    logs = _without_day(synth_week, tmp_path / "logs", GOOD_DAY)
    out = tmp_path / "out"
    res = run_cli("--logs", str(logs), "--week", WEEK, "--out", str(out))  # with the what-if replay
    assert res.returncode == 4, res.stdout + res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith(f"week {WEEK}:") and first.endswith("INCOMPLETE") and "MET" not in first
    assert "coverage: 144 of 168 hours have log data; no log data for 24 h:" in res.stdout
    assert "    2026-11-16 00:00–23:59 UTC (24 h)" in res.stdout
    assert re.search(r"^  2026-11-16 .*no log data for 24 h$", res.stdout, re.M)

    s = json.loads((out / "summary.json").read_text())
    assert s["verdict"] == "INCOMPLETE" and s["met_target"] is None
    cov = s["coverage"]
    assert (cov["hours_expected"], cov["hours_with_data"], cov["hours_missing"], cov["complete"]) == (168, 144, 24, False)
    assert cov["missing"] == [{"start": "2026-11-16T00:00:00+00:00", "end": "2026-11-17T00:00:00+00:00",
                               "hours": 24, "label": "2026-11-16 00:00–23:59 UTC (24 h)"}]
    assert cov["missing_by_day"] == {GOOD_DAY: 24} and cov["damaged_files"] == [] and cov["lost_lines"] == 0
    assert GOOD_DAY not in {d["key"] for d in s["daily"]}

    md = (out / "report.md").read_text()
    assert "> **INCOMPLETE: no verdict, some hours have no log data**" in md
    assert "No log data for 24 of 168 hours: 2026-11-16 00:00–23:59 UTC (24 h)." in md
    assert "| 2026-11-16 | no log data | – | – | – | – | 24 |" in md
    html = (out / "report.html").read_text()
    assert 'class="verdict warn"' in html and "Target met" not in html and "Target missed" not in html
    assert "2026-11-16 00:00–23:59 UTC (24 h)" in html and "<tr class=gap><td>2026-11-16</td>" in html
    assert s["what_if"]["strategies"]  # the replay ran on the week with a hole in it


def test_missing_bad_day_does_not_flip_the_verdict_to_met(synth_week: Path, tmp_path: Path) -> None:
    full_rate, holed = _reference_rate(synth_week), _without_day(synth_week, tmp_path / "logs", BAD_DAY)
    assert full_rate < 0.96 <= _reference_rate(holed)  # the premise: the bad day alone sinks the week

    full = run_cli("--logs", str(synth_week), "--week", WEEK, "--out", str(tmp_path / "full"), "--no-what-if")
    assert full.returncode == 1 and full.stdout.splitlines()[0].endswith("MISSED"), full.stdout + full.stderr

    res = run_cli("--logs", str(holed), "--week", WEEK, "--out", str(tmp_path / "gap"), "--no-what-if")
    assert res.returncode == 4, res.stdout + res.stderr  # not 0: the missing day was the bad one
    assert res.stdout.splitlines()[0].endswith("INCOMPLETE") and BAD_DAY_GAP in res.stdout
    for name in ("report.md", "report.html"):
        text = (tmp_path / "gap" / name).read_text()
        assert BAD_DAY_GAP in text and "INCOMPLETE" in text and "Target met" not in text, name
    s = json.loads((tmp_path / "gap" / "summary.json").read_text())
    assert s["verdict"] == "INCOMPLETE" and s["met_target"] is None
    assert [g["label"] for g in s["coverage"]["missing"]] == [BAD_DAY_GAP]

    # --allow-gaps accepts the outage: judged on the data there is, gaps still listed everywhere
    ok = run_cli("--logs", str(holed), "--week", WEEK, "--out", str(tmp_path / "ok"), "--no-what-if", "--allow-gaps")
    assert ok.returncode == 0 and ok.stdout.splitlines()[0].endswith("MET"), ok.stdout + ok.stderr
    assert BAD_DAY_GAP in ok.stdout and "gaps allowed (--allow-gaps)" in ok.stdout
    s = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert s["verdict"] == "MET" and s["met_target"] is True and s["coverage"]["gaps_allowed"]
    assert s["hit_rate"] == pytest.approx(_reference_rate(holed))
    assert [g["label"] for g in s["coverage"]["missing"]] == [BAD_DAY_GAP]
    for name in ("report.md", "report.html"):
        text = (tmp_path / "ok" / name).read_text()
        assert BAD_DAY_GAP in text and "Judged on the data there is (--allow-gaps)" in text, name


def test_allow_gaps_still_misses_when_the_data_misses(synth_week: Path, tmp_path: Path) -> None:
    holed = _without_day(synth_week, tmp_path / "logs", GOOD_DAY)
    assert _reference_rate(holed) < 0.96
    res = run_cli("--logs", str(holed), "--week", WEEK, "--out", str(tmp_path / "o"), "--no-what-if", "--allow-gaps")
    assert res.returncode == 1 and res.stdout.splitlines()[0].endswith("MISSED"), res.stdout + res.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["verdict"] == "MISSED" and s["coverage"]["hours_missing"] == 24
    assert "Target missed" in (tmp_path / "o" / "report.html").read_text()


def test_window_with_partial_gap_and_damaged_files(synth_week: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for hour in range(12):
        (src,) = synth_week.glob(f"*.2026-11-20-{hour:02d}.*.gz")
        if hour in (3, 4, 5):
            continue  # three hours never delivered
        shutil.copy(src, logs / src.name)
    # one file cut short (its tail lost), one with a line carrying terminal control characters
    (cut,) = logs.glob("*.2026-11-20-07.*.gz")
    cut.write_bytes(cut.read_bytes()[:2000])
    (noisy,) = logs.glob("*.2026-11-20-09.*.gz")
    text = gzip.decompress(noisy.read_bytes()).decode()
    noisy.write_bytes(gzip.compress((text + "\x1b[2J\x1b[31mnot\ta log line\x07\n").encode()))

    out = tmp_path / "out"
    args = ("--logs", str(logs), "--from", "2026-11-20T00:00", "--to", "2026-11-20T12:00", "--no-what-if")
    res = run_cli(*args, "--out", str(out))
    assert res.returncode == 4, res.stdout + res.stderr
    assert res.stdout.startswith("2026-11-20 00:00 – 2026-11-20 12:00 UTC: ")
    assert "coverage: 9 of 12 hours have log data; no log data for 3 h:" in res.stdout
    assert "    2026-11-20 03:00–05:59 UTC (3 h)" in res.stdout
    assert f"damaged file: {cut}: truncated gzip" in res.stdout
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout  # nothing drives the terminal
    if "bad_examples" in {f.name for f in dataclasses.fields(FileStats)}:  # a reader that keeps excerpts
        assert "\\x1b[2J\\x1b[31mnot\\ta log line\\x07" in res.stdout  # shown, escaped by the reader
    s = json.loads((out / "summary.json").read_text())
    cov = s["coverage"]
    assert s["week"] is None and s["verdict"] == "INCOMPLETE"
    assert [g["label"] for g in cov["missing"]] == ["2026-11-20 03:00–05:59 UTC (3 h)"]
    assert [d["file"] for d in cov["damaged_files"]] == [str(cut)]
    assert cov["lost_lines"] >= 2 and any(f"{noisy.name}:" in ex for ex in cov["lost_line_examples"])
    for name in ("report.md", "report.html"):
        body = (out / name).read_text()
        assert "2026-11-20 03:00–05:59 UTC (3 h)" in body and cut.name in body and noisy.name in body, name
        assert "\x1b" not in body, name

    # the damaged file alone keeps a window with every hour present INCOMPLETE
    only_cut = run_cli("--logs", str(cut), "--from", "2026-11-20T07:00", "--to", "2026-11-20T08:00",
                       "--no-what-if", "--out", str(tmp_path / "cut"))
    assert only_cut.returncode == 4 and "coverage: all 1 hours have log data" in only_cut.stdout
    assert "INCOMPLETE: no verdict, some log files are damaged" in (tmp_path / "cut" / "report.md").read_text()
    allowed = run_cli(*args, "--out", str(tmp_path / "allowed"), "--allow-gaps")
    expected = 0 if _reference_rate(logs) >= 0.96 else 1
    assert allowed.returncode == expected, allowed.stdout + allowed.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (("--week", WEEK, "--from", "2026-11-16", "--to", "2026-11-23"), "give --week or --from/--to, not both"),
    (("--from", "2026-11-16"), "--from and --to go together"),
    (("--from", "2026-11-17", "--to", "2026-11-16"), "empty window"),
    (("--from", "2026-11-16", "--to", "2026-11-18", "--history", "HIST"), "--history needs an ISO week"),
    (("--week", "2026-W30", "--allow-gaps"), "no log lines in week 2026-W30"),
])
def test_window_usage_errors_exit_2(synth_week: Path, tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    extra = tuple(str(tmp_path / "h") if a == "HIST" else a for a in extra)
    res = run_cli("--logs", str(synth_week), "--out", str(tmp_path / "o"), "--no-what-if", *extra)
    assert res.returncode == 2 and message in res.stderr, res.stdout + res.stderr


def test_from_to_of_exactly_one_iso_week_is_that_week(synth_week: Path, tmp_path: Path) -> None:
    res = run_cli("--logs", str(synth_week), "--from", "2026-11-16", "--to", "2026-11-23", "--no-what-if",
                  "--out", str(tmp_path / "o"), "--history", str(tmp_path / "h"))
    assert res.returncode == 1 and res.stdout.startswith(f"week {WEEK}:"), res.stdout + res.stderr
    assert json.loads((tmp_path / "h" / f"{WEEK}.json").read_text())["coverage"]["complete"] is True
