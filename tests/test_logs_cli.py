"""``edgeproof logs …`` driven end to end as a user would, through the installed console script."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EDGEPROOF = Path(sys.executable).with_name("edgeproof")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEPROOF), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("week")
    done = run("logs", "synth", "--out", str(out), "--days", "2", "--requests-per-hour", "60",
               "--hit-rate", "0.7,0.95", "--seed", "11")
    assert done.returncode == 0, done.stderr
    return out


def test_help_of_every_subcommand() -> None:
    for sub in ([], ["summarize"], ["convert"], ["synth"]):
        done = run("logs", *sub, "--help")
        assert done.returncode == 0
        assert "usage: edgeproof logs" in done.stdout
    assert "hit rate" in run("logs", "summarize", "--help").stdout


def test_synth_is_deterministic(week: Path, tmp_path: Path) -> None:
    again = run("logs", "synth", "--out", str(tmp_path), "--days", "2", "--requests-per-hour", "60",
                "--hit-rate", "0.7,0.95", "--seed", "11")
    assert again.returncode == 0
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in week.iterdir()}
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert len(digest) == 48


def test_summarize_json_keys_and_day_groups(week: Path) -> None:
    done = run("logs", "summarize", str(week), "--json", "--by", "day", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    for key in ("requests", "cacheable", "hits", "misses", "hit_rate", "excluded", "bad_lines",
                "bad_line_examples", "bytes", "latency_ms", "groups"):
        assert key in r
    assert r["requests"] == 48 * 60 and r["bad_lines"] == 0
    for metric in ("time_taken", "ttfb"):
        for kind in ("overall", "hit", "miss"):
            assert set(r["latency_ms"][metric][kind]) == {"p50", "p90", "p99", "p999"}
    assert r["latency_ms"]["time_taken"]["hit"]["p50"] < r["latency_ms"]["time_taken"]["miss"]["p50"]
    days = r["groups"]
    assert list(days) == ["2024-05-01", "2024-05-02"]
    assert days["2024-05-01"]["hit_rate"] < days["2024-05-02"]["hit_rate"]  # 0.7 then 0.95
    table = run("logs", "summarize", str(week), "--by", "pop")
    assert table.returncode == 0
    assert "hit rate" in table.stdout and "IAD" in table.stdout and "p99" in table.stdout


def test_from_to_filters_rows(week: Path) -> None:
    done = run("logs", "summarize", str(week), "--json", "--from", "2024-05-01T06:00Z", "--to", "2024-05-01T08:00Z")
    r = json.loads(done.stdout)
    assert r["requests"] == 120 and r["files"] == 2
    assert r["first"].startswith("2024-05-01T06") and r["last"].startswith("2024-05-01T07")


def test_bad_lines_reported_and_strict_exit_2(tmp_path: Path, samples_dir: Path) -> None:
    bad = samples_dir / "datadog-pipeline-via-shashoul-Getting-Started-Terraform__standard.log"
    done = run("logs", "summarize", str(bad), "--json")
    assert done.returncode == 0
    r = json.loads(done.stdout)
    assert r["bad_lines"] == 1 and r["bad_line_examples"][0].startswith(f"{bad}:2: ")
    strict = run("logs", "summarize", str(bad), "--strict")
    assert strict.returncode == 2
    assert strict.stderr.startswith("edgeproof: error: 1 bad line(s)") and f"{bad}:2:" in strict.stderr
    assert "Traceback" not in strict.stderr
    missing = run("logs", "summarize", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such log file" in missing.stderr


def test_convert_to_parquet_by_date(week: Path, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    done = run("logs", "convert", str(week), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["date=2024-05-01", "date=2024-05-02"]
    back = json.loads(run("logs", "summarize", str(out), "--json").stdout)
    orig = json.loads(run("logs", "summarize", str(week), "--json").stdout)
    for key in ("requests", "hits", "misses", "bytes", "excluded", "latency_ms"):
        assert back[key] == orig[key]


def test_summarize_s3_through_the_cli(s3_bucket: str, s3_env: dict[str, str], week: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    for p in sorted(week.iterdir())[:4]:
        s3.upload_file(str(p), s3_bucket, f"logs/{p.name}")
    done = run("logs", "summarize", f"s3://{s3_bucket}/logs/", "--json", "--from", "2024-05-01T01:00Z",
               env=s3_env)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert (r["files"], r["requests"]) == (3, 180)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a good log, one with a binary line, one with a damaged CRC, and random bytes as .gz."""
    import gzip
    import random

    out = tmp_path_factory.mktemp("damaged")
    done = run("logs", "synth", "--out", str(out), "--days", "0.125", "--requests-per-hour", "500", "--seed", "3")
    assert done.returncode == 0, done.stderr
    first, second, third = sorted(out.iterdir())[:3]
    lines = gzip.decompress(second.read_bytes()).split(b"\n")
    lines[100] = b"\xff\xfe\x00\x1b[31m binary \x07 line"  # invalid UTF-8, NUL, an ANSI escape, a bell
    second.write_bytes(gzip.compress(b"\n".join(lines)))
    data = bytearray(third.read_bytes())
    data[-8] ^= 1  # the CRC-32 of the gzip trailer
    third.write_bytes(bytes(data))
    (out / "E2EDGEPROOF1.2024-05-01-23.random.gz").write_bytes(random.Random(1).randbytes(4000))
    return out


def test_summarize_accounts_for_every_line(damaged: Path) -> None:
    done = run("logs", "summarize", str(damaged), "--jobs", "1")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "lines          1,500 read = 1,499 requests + 1 bad line   (+6 header lines)" in text
    assert "file errors    2" in text and "damaged files  3 of 4" in text
    binary = next(p for p in sorted(damaged.iterdir()) if "-01." in p.name)
    assert f"  {binary}:101: " in text
    assert "| \\xff\\xfe\\x00\\x1b[31m binary \\x07 line" in text  # escaped, never raw
    assert not any(c in text for c in ("\x00", "\x1b", "\x07", "\ufffd"))
    assert "file error (checksum)" in text and "file error (not_gzip)" in text
    assert "Traceback" not in done.stderr
    r = json.loads(run("logs", "summarize", str(damaged), "--json", "--jobs", "2").stdout)
    acc = r["accounting"]
    assert (acc["lines"], acc["requests"], acc["bad_lines"], acc["file_errors"]) == (1500, 1499, 1, 2)
    assert acc["balanced"] and acc["readable"] and r["requests"] == 1499 and r["lines"] == 1500
    by_file = {Path(f["file"]).name: f for f in acc["per_file"]}
    assert sorted((f["lines"], f["requests"], f["bad_lines"]) for f in by_file.values()) == [
        (0, 0, 0), (500, 499, 1), (500, 500, 0), (500, 500, 0)]
    assert acc["examples"][0]["excerpt"].startswith("\\xff\\xfe\\x00")
    strict = run("logs", "summarize", str(damaged), "--strict", "--jobs", "1")
    assert strict.returncode == 2 and "(--strict)" in strict.stderr


def test_nothing_readable_exits_2(damaged: Path, tmp_path: Path) -> None:
    junk = damaged / "E2EDGEPROOF1.2024-05-01-23.random.gz"
    done = run("logs", "summarize", str(junk), "--json")
    assert done.returncode == 2
    assert "none of the 1 input file(s) could be read" in done.stderr
    assert json.loads(done.stdout)["accounting"]["unreadable_files"] == 1
    converted = run("logs", "convert", str(damaged), "--out", str(tmp_path / "pq"))
    assert converted.returncode == 0, converted.stderr
    assert "wrote 1499 rows" in converted.stdout and "1 bad line" in converted.stderr
    assert run("logs", "convert", str(junk), "--out", str(tmp_path / "none")).returncode == 2


def test_summarize_by_hour_names_the_hours_without_data(week: Path, tmp_path: Path) -> None:
    """A gap inside the logs is named (console and --json); --from/--to widen the window to check."""
    import shutil

    gap = tmp_path / "gap"
    gap.mkdir()
    for f in sorted(week.iterdir()):
        if ".2024-05-02-1" not in f.name:  # drop 10:00–19:59 on the second day
            shutil.copy(f, gap / f.name)
    out = run("logs", "summarize", str(gap), "--by", "hour", "--json")
    assert out.returncode == 0, out.stderr
    cov = json.loads(out.stdout)["coverage"]
    assert not cov["complete"] and cov["hours_missing"] == 10
    assert [g["label"] for g in cov["missing"]] == ["2024-05-02 10:00–19:59 UTC (10 h)"]
    text = run("logs", "summarize", str(gap), "--by", "day", "--from", "2024-04-30", "--to", "2024-05-02")
    assert "2024-04-30 00:00–23:59 UTC (24 h)" in text.stdout  # a day before the logs start
    full = json.loads(run("logs", "summarize", str(week), "--by", "hour", "--json").stdout)["coverage"]
    assert full["complete"] and full["missing"] == []
