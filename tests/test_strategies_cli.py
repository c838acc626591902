"""``edgeproof strategies …`` driven end to end as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeproof.cli", "strategies", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_list_and_show() -> None:
    out = cli("list")
    assert out.returncode == 0
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names == ["passthrough", "sorted", "allowlist", "canonical", "breakpoints", "aggressive"]
    show = cli("show", "aggressive")
    assert show.returncode == 0
    shown = tomllib.loads(show.stdout)  # valid TOML (tomli_w), the declaration as loaded
    assert shown["canonical"]["breakpoints"] == [160, 320, 480, 640, 800, 1024, 1280, 1600, 2000]
    assert shown["canonical"]["on_invalid"] == "fallback"


def test_apply_prints_one_key_per_line() -> None:
    out = cli("apply", "aggressive", "https://d1.cloudfront.net/images/a.jpg?width=600&utm_source=x&format=auto",
              "/images/a.jpg?f=auto&w=640", "-H", "Accept: image/avif,image/webp")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["/images/a.jpg/w=640,h=0,fit=cover,q=80,f=avif"] * 2
    refused = cli("apply", "canonical", "/images/a.jpg?w=abc", "/images/a.jpg?w=1")
    assert refused.returncode == 2  # a refused URL is bad input
    assert refused.stdout.splitlines() == ["400 malformed w", "/images/a.jpg/w=1,h=0,fit=cover,q=80,f=jpeg"]
    js = cli("apply", "passthrough", "--json", "/a.jpg?b=1&a=2")
    assert json.loads(js.stdout)["cache_key"] == "/a.jpg?b=1&a=2"


def test_compare_on_samples(samples_dir: Path, tmp_path: Path) -> None:
    custom = tmp_path / "mine.toml"
    custom.write_text('mode = "canonical"\n[canonical]\nbreakpoints = [400, 800]\non_invalid = "fallback"\n')
    out = cli("compare", "--logs", str(samples_dir), "--strategy", "passthrough", "--strategy", str(custom),
              "--ttl", "1d", "--capacity", "1GB", "--tier", "regional", "--json")
    result = json.loads(out.stdout)
    met = any(r["meets_target"] for r in result["strategies"].values())
    assert out.returncode == (0 if met else 1), out.stderr  # 1: no strategy meets the target
    assert set(result["strategies"]) == {"passthrough", "mine"}
    for fields in result["strategies"].values():
        for name in ("hit_rate", "origin_requests", "transforms", "unique_keys", "keys_per_variant",
                     "meets_target", "cold", "expired", "evicted", "fragmented"):
            assert name in fields
    text = cli("compare", "--logs", str(samples_dir), "--warmup", "0", "--target", "0")
    assert text.returncode == 0, text.stderr
    below = cli("compare", "--logs", str(samples_dir), "--strategy", "passthrough", "--target", "1.01")
    assert below.returncode == 1 and "below" in below.stdout
    assert "calibration: observed hit rate" in text.stdout and "inferred" in text.stdout
    assert "aggressive" in text.stdout


def test_errors_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    from edgeproof.cli import main

    out = cli("show", "nope")  # one end-to-end: message on stderr, exit code 2
    assert out.returncode == 2 and "unknown strategy 'nope'" in out.stderr
    for argv, message in (
        (["compare", "--logs", "/nonexistent/logs", "--strategy", "passthrough"], "edgeproof: error:"),
        (["compare", "--logs", "/tmp", "--ttl", "soon"], "bad duration"),
        (["compare", "--logs", "/tmp", "--capacity", "lots"], "bad byte size"),
        (["export-cf-function", "passthrough"], "query-mode"),
        (["apply", "aggressive", "/a.jpg", "-H", "no colon"], "bad header"),
    ):
        assert main(["strategies", *argv]) == 2
        assert message in capsys.readouterr().err
