"""``/metrics`` of the origin: written by prometheus_client over the shared-memory counters.

The output is read back with prometheus_client's own parser, so a value that loses digits, a family
without HELP/TYPE, or a line Prometheus cannot parse fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _origin_helpers import OriginProc, jpeg, metric, request, samples
from conftest import free_port
from edgeproof.origin.telemetry import LATENCY_BUCKETS, Metrics
from prometheus_client.parser import text_string_to_metric_families

P = "edgeproof_origin_"


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_large_counters_render_exactly() -> None:
    m = Metrics(2)
    m.inc("requests_total", "200", "derivative_store", value=1_000_002)  # worker 0
    m.worker = 1
    m.inc("requests_total", "200", "derivative_store", value=1_000_001)
    m.inc("transforms_total", "webp", value=123_456_789)
    m.set("local_cache_bytes", value=2**40 + 3)
    m.observe("transform_duration_seconds", 0.3)
    m._data[m._slot("transform_duration_seconds", ("sum",))] = 12_345_678.901234  # a long run's sum
    text = m.render()
    assert "2e+06" not in text  # what {:g} printed for 2,000,003
    got = {(name, tuple(sorted(labels.items()))): value
           for f in text_string_to_metric_families(text) for name, labels, value, *_ in f.samples}
    assert got[(P + "requests_total", (("source", "derivative_store"), ("status", "200")))] == 2_000_003
    assert got[(P + "transforms_total", (("format", "webp"),))] == 123_456_789
    assert got[(P + "worker_transforms_total", (("worker", "1"),))] == 123_456_789
    assert got[(P + "local_cache_bytes", ())] == 2**40 + 3
    assert got[(P + "transform_duration_seconds_sum", ())] == 12_345_678.901234
    assert got[(P + "transform_duration_seconds_count", ())] == 1
    assert got[(P + "transform_duration_seconds_bucket", (("le", "+Inf"),))] == 1
    assert got[(P + "transform_duration_seconds_bucket", (("le", "0.25"),))] == 0
    assert got[(P + "transform_duration_seconds_bucket", (("le", "0.5"),))] == 1


def test_every_family_has_help_and_type() -> None:
    text = Metrics(3).render()
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families}
    for name in ("requests", "transforms", "queue_depth", "request_duration_seconds",
                 "transform_duration_seconds", "store_reads", "worker_transforms", "worker_busy", "ready"):
        assert P + name in names
    for f in families:
        assert f.documentation and f.type in ("counter", "gauge", "histogram"), f.name
        exposed = f.name + ("_total" if f.type == "counter" else "")
        assert f"# HELP {exposed} " in text and f"# TYPE {exposed} {f.type}" in text
    # every sample line belongs to a family that has its HELP/TYPE lines (nothing the parser guessed)
    assert all(f.type != "unknown" for f in families)
    histogram = next(f for f in families if f.name == P + "request_duration_seconds")
    assert len([s for s in histogram.samples if s.name.endswith("_bucket")]) == len(LATENCY_BUCKETS) + 1


def test_metrics_on_a_separate_address(tmp_path: Path) -> None:
    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "images" / "a.jpg").write_bytes(jpeg(400, 300))
    mport = free_port()
    proc = OriginProc(free_port(), ["--sources", str(tmp_path / "src"), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "2", "--metrics-bind", f"127.0.0.1:{mport}"],
                      log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        elsewhere = request(proc.port, "/metrics")  # not on the image port
        assert elsewhere.status == 404 and elsewhere.json()["error"] == "not_found"
        scrape = request(mport, "/metrics")
        assert scrape.status == 200
        assert scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert metric(mport, "ready") == 2  # any worker answers for both (shared memory)
        before = metric(mport, "requests_total")
        for _ in range(3):
            assert request(proc.port, "/images/a.jpg?w=64&format=webp").status == 200
        assert metric(mport, "requests_total") == before + 3
        assert {labels["worker"] for name, labels, _ in samples(mport) if name == P + "worker_busy"} == {"0", "1"}
        assert request(mport, "/healthz").status == 200
        assert request(mport, "/images/a.jpg?w=64").status == 404  # no images on the metrics address
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1:99999", "127.0.0.1:"])
def test_bad_metrics_bind(tmp_path: Path, bind: str) -> None:
    done = subprocess.run([sys.executable, "-m", "edgeproof.cli", "origin", "serve", "--port", "0",
                           "--sources", str(tmp_path), "--derivatives", str(tmp_path / "d"), "--metrics-bind", bind],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--metrics-bind" in done.stderr
