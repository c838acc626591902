"""Load-test model without Locust: scenarios, shapes, workload noise, recorder, gates, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from edgeproof.loadtest.gates import evaluate, parse_gate
from edgeproof.loadtest.recorder import RECORD_SCHEMA, Recorder, merge_parts, read_records
from edgeproof.loadtest.scenario import list_builtin_scenarios, load_scenario, scenario_from_dict
from edgeproof.loadtest.shapes import build_shape
from edgeproof.loadtest.workload import Workload

from edgeproof.errors import ConfigError


def test_builtin_scenarios_load_and_spike_scales() -> None:
    assert {"spike", "waves", "step", "soak"} <= set(list_builtin_scenarios())
    for name in list_builtin_scenarios():
        sc = load_scenario(name)
        assert build_shape(sc.shape).duration > 0
    sc = load_scenario("spike")
    shape = build_shape(sc.shape, duration=60, peak_rps=200)
    assert shape.duration == pytest.approx(60)
    assert shape.peak_rps == pytest.approx(200)
    assert [p[0] for p in shape.phases()] == ["baseline", "ramp", "peak", "decay"]
    assert shape.scored == ("ramp", "peak", "decay")
    assert shape.rate(0) == pytest.approx(20)  # baseline 0.1 × peak
    assert shape.rate(30) == pytest.approx(200)


@pytest.mark.parametrize("kind", ["spike", "waves", "step", "soak"])
@pytest.mark.parametrize("mode", ["uniform", "poisson"])
def test_arrivals_follow_the_rate(kind: str, mode: str) -> None:
    shape = build_shape({"kind": kind}, duration=100, peak_rps=80)
    times = list(shape.arrivals(mode, seed=3))
    assert times == sorted(times) and times[0] >= 0 and times[-1] < shape.duration
    for start in range(0, 100, 10):
        got = sum(start <= t < start + 10 for t in times)
        want = shape.expected(start, start + 10)
        if mode == "uniform":  # exact to ±1 per window
            assert abs(got - want) <= 1.0, (start, got, want)
        else:  # Poisson: within 5 standard deviations
            assert abs(got - want) <= 5 * want**0.5 + 1, (start, got, want)


def test_stages_shape_and_scaling() -> None:
    t = {"kind": "stages", "stages": [{"name": "a", "seconds": 10, "rps": 10},
                                      {"name": "b", "seconds": 10, "rps": 10, "to_rps": 30}]}
    shape = build_shape(t)
    assert shape.expected(0, 20) == pytest.approx(100 + 200)
    assert len(list(shape.arrivals())) == 300
    scaled = build_shape(t, duration=40, peak_rps=60)
    assert scaled.duration == pytest.approx(40) and scaled.peak_rps == pytest.approx(60)


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"catalog": {"skus": 0}}, "[catalog] skus"),
        ({"catalog": {"zipf": "high"}}, "[catalog] zipf"),
        ({"shape": {"kind": "sawtooth"}}, "[shape] kind"),
        ({"shape": {"kind": "step", "steps": []}}, "[shape] steps: must not be empty"),
        ({"shape": {"kind": "soak", "ramp": 1}}, "[shape] ramp: must be >= 0 and below 1"),
        ({"shape": {"phases": {"peak": -1}}}, "[shape.phases] peak: must be >= 0, got -1"),
        ({"shape": {"kind": "stages", "stages": [{"rps": 5, "secs": 3}]}}, "[shape.stages[0]] secs: unknown key"),
        ({"shape": {"duration": 0}}, "[shape] duration: must be > 0, got 0"),
        ({"noise": {"shuffle": 2}}, "[noise] shuffle"),
        ({"gates": {"scope": "some"}}, "[gates] scope"),
        ({"catalog": {"path_template": "/images/{product}.jpg"}}, "[catalog] path_template"),
        ({"clients": {"devices": {"phone": {"dpr": 9}}}}, "[clients.devices.phone] dpr"),
        ({"promotion": {"new_skus": 5000}}, "[promotion] new_skus"),
        ({"surprise": 1}, "surprise"),
        ({"gates": {"rules": ["p99 < 3"]}}, "[gates] rules[0]"),  # a gate is parsed when the scenario is read
        ({"run": {"pool": True}}, "[run] pool: expected a whole number, got true"),
        ({"catalog": {"roles": {"thumb": {"widths": [True, 640]}}}}, "[catalog.roles.thumb] widths[0]"),  # a bool is not a width
    ],
)
def test_bad_scenarios_name_the_key(table: dict, needle: str) -> None:
    """Every error names the file, then the table and key in the one style of edgeproof.settings."""
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(table, where="bad.toml")
    assert needle in err.value.message and "bad.toml" in err.value.message


def test_unknown_scenario_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("no-such-scenario")
    bad = tmp_path / "bad.toml"
    bad.write_text("[shape\nkind=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(bad)


def test_workload_is_deterministic_zipfian_and_promotes_at_the_spike() -> None:
    sc = load_scenario("spike")
    wa, wb, wc = (Workload(sc, lane=lane, spike_start=50.0) for lane in (0, 0, 1))
    a = [wa.next(float(i) / 100) for i in range(6000)]
    b = [wb.next(float(i) / 100) for i in range(6000)]
    assert [r.url for r in a] == [r.url for r in b]
    other = [wc.next(0.0).url for _ in range(50)]
    assert other != [r.url for r in a[:50]]
    before, after = a[:5000], a[5000:]
    assert not any(r.promoted or r.sku > sc.catalog.skus - sc.promotion.new_skus for r in before)
    share = sum(r.promoted for r in after) / len(after)
    assert 0.2 < share < 0.4  # promotion.share = 0.3
    assert all(r.sku > sc.catalog.skus - sc.promotion.new_skus for r in after if r.promoted)
    ranks = Counter(r.sku for r in before)
    assert ranks[1] > ranks[10] > ranks[200]  # Zipf: rank 1 is the hottest
    roles = Counter(r.role for r in a)
    assert roles["thumb"] > roles["pdp"] > roles["zoom"] > 0
    assert {r.headers["X-Edge-Pop"] for r in a} == {str(i) for i in range(sc.clients.pops)}
    accepts = {r.headers["Accept"] for r in a}
    assert any("avif" in x for x in accepts) and any("webp" in x and "avif" not in x for x in accepts)
    assert any("webp" not in x for x in accepts)


def test_keys_file_catalog(tmp_path: Path) -> None:
    keys = tmp_path / "catalog.txt"
    keys.write_text("".join(f"images/sku-{s:05d}-{n}.{'png' if n == 2 else 'jpg'}\n" for s in range(1, 31)
                            for n in (1, 2)))
    sc = scenario_from_dict({"catalog": {"keys_file": str(keys)}, "promotion": {"new_skus": 5}})
    wl = Workload(sc, spike_start=0.0)
    urls = {wl.next(1.0).url.split("?")[0] for _ in range(2000)}
    assert urls <= {"/" + k for k in keys.read_text().split()}
    assert any(u.endswith(".png") for u in urls)


def test_url_noise_is_folded_back_by_the_aggressive_strategy() -> None:
    strategies = pytest.importorskip("edgeproof.analytics.strategies")
    aggressive = strategies.get_strategy("aggressive")
    sc = load_scenario("spike")
    wl = Workload(sc, spike_start=0.0)
    reqs = [wl.next(1.0) for _ in range(4000)]
    raw = {r.url for r in reqs}
    clean = {r.clean_url for r in reqs}
    assert len(raw) > 1.5 * len(clean)  # the noise really fragments the raw URLs

    def key(url: str, accept: str) -> str:
        path, _, query = url.partition("?")
        return aggressive.apply("GET", path, query, {"accept": accept}).cache_key

    # every kind of noise folds back exactly, except odd DPRs: CSS width × 2.625 lands between
    # breakpoints and rounds up, a real fragmentation the strategy cannot undo (kept in the workload)
    plain = [r for r in reqs if "dpr=" not in r.url]
    assert len(plain) > 0.9 * len(reqs)
    assert all(key(r.url, r.headers["Accept"]) == key(r.clean_url, r.headers["Accept"]) for r in plain)
    noisy = [r for r in plain if r.url != r.clean_url]
    assert len(noisy) > 0.5 * len(plain)
    raw_plain = {r.url for r in plain}
    keys_plain = {key(r.url, r.headers["Accept"]) for r in plain}
    assert len(keys_plain) < len(raw_plain) / 1.3  # fewer cache keys than raw spellings


def _rows(n: int, **over: object) -> dict[str, list]:
    base = {
        "intended": [1_700_000_000.0 + i * 0.01 for i in range(n)],
        "latency_ms": [10.0] * n,
        "corrected_ms": [12.0] * n,
        "status": [200] * n,
        "x_cache": ["Hit from cloudfront"] * n,
        "phase": ["peak"] * n,
        "dropped": [False] * n,
        "late": [False] * n,
    }
    base.update(over)  # type: ignore[arg-type]
    return base


def _write(tmp: Path, cols: dict[str, list], name: str = "part-a.parquet", row_group: int = 7) -> Path:
    rec = Recorder(tmp, row_group=row_group, name=name)
    for i in range(len(cols["intended"])):
        dropped = cols["dropped"][i]
        rec.add(intended=cols["intended"][i], actual=None if dropped else cols["intended"][i] + 0.001,
                latency_ms=None if dropped else cols["latency_ms"][i],
                corrected_ms=None if dropped else cols["corrected_ms"][i], status=cols["status"][i],
                nbytes=100, x_cache=cols["x_cache"][i], pop="IAD89-C1", url=f"/images/a.jpg?w={i}",
                role="thumb", sku=1, promoted=False, phase=cols["phase"][i], lane=0, late=cols["late"][i],
                dropped=dropped, error=None)
    rec.close()
    return rec.path


def test_recorder_writes_bounded_row_groups_and_merges(tmp_path: Path) -> None:
    p1 = _write(tmp_path, _rows(50), "part-1.parquet", row_group=7)
    _write(tmp_path, _rows(20), "part-2.parquet", row_group=7)
    meta = pq.ParquetFile(p1).metadata
    assert meta.num_rows == 50 and meta.num_row_groups == 8
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 7
    table = read_records(tmp_path)
    assert table.num_rows == 70 and table.schema.equals(RECORD_SCHEMA)
    assert merge_parts(tmp_path, tmp_path / "merged.parquet") == 70
    assert pq.read_table(tmp_path / "merged.parquet").num_rows == 70


def test_gates_pass_and_fail_with_exact_values(tmp_path: Path) -> None:
    n = 200
    lat = [float(i) for i in range(1, n + 1)]  # corrected 1..200 ms
    xc = ["Miss from cloudfront" if i % 10 == 0 else "Hit from cloudfront" for i in range(n)]
    status = [503 if i < 3 else 200 for i in range(n)]
    dropped = [i >= n - 4 for i in range(n)]
    phase = ["baseline"] * 50 + ["peak"] * 150
    _write(tmp_path, _rows(n, corrected_ms=lat, x_cache=xc, status=status, dropped=dropped, phase=phase))
    table = read_records(tmp_path)
    v = evaluate(table, ["hit_rate >= 0.9", "hit_rate >= 0.95", "p99_ms <= 200", "p50_ms < 100",
                         "error_rate <= 0.01", "dropped_rate <= 0.01", "p99_ms(miss) <= 500",
                         "requests(all) == 200", "p99_raw_ms <= 10"],
                 scored_phases=["peak"], scope="spike")
    by = {g.gate: g for g in v.gates}
    # scored: peak rows 50..199, of which 196..199 were dropped; misses at 50, 60, ..., 190
    assert by["hit_rate >= 0.9"].value == pytest.approx(131 / 146)
    assert not by["hit_rate >= 0.9"].passed and not by["hit_rate >= 0.95"].passed
    assert evaluate(table, ["hit_rate >= 0.89"], scored_phases=["peak"]).passed
    peak_corr = [x for i, x in enumerate(lat) if i >= 50 and not dropped[i]]
    import numpy as np

    assert by["p99_ms <= 200"].value == pytest.approx(float(np.quantile(peak_corr, 0.99)))
    assert by["error_rate <= 0.01"].passed and by["error_rate <= 0.01"].value == 0.0  # errors were in baseline
    assert by["dropped_rate <= 0.01"].value == pytest.approx(4 / 150) and not by["dropped_rate <= 0.01"].passed
    assert by["requests(all) == 200"].passed
    assert by["p99_raw_ms <= 10"].value == pytest.approx(10.0)
    assert not v.passed and v.exit_code == 1
    all_scope = evaluate(table, ["error_rate <= 0.01"], scope="all")
    assert all_scope.gates[0].value == pytest.approx(3 / 196) and not all_scope.passed
    ok = evaluate(table, ["p99_ms(baseline) <= 60", "p99_ms(miss, hit) <= 1000"], scored_phases=["peak"])
    assert ok.passed and ok.exit_code == 0
    assert "PASS" in ok.table() and "verdict: PASS" in ok.table()
    hit_miss = {g.gate: g for g in ok.gates}["p99_ms(miss, hit) <= 1000"]
    assert hit_miss.rows == 146  # hit OR miss within the peak, sent rows only


def test_gate_parsing_errors_and_no_data() -> None:
    for bad in ["hit_rate => 0.9", "p99 <= 3", "latency <= 4", "hit_rate >= ninety"]:
        with pytest.raises(ConfigError):
            parse_gate(bad)
    g = parse_gate(" p999_ms(miss,peak)<=1e3 ")
    assert (g.metric, g.filters, g.op, g.threshold) == ("p999_ms", ("miss", "peak"), "<=", 1000.0)
    empty = pa.Table.from_pylist([], schema=RECORD_SCHEMA)
    v = evaluate(empty, ["p99_ms(miss) <= 5", "hit_rate >= 0.5"])
    assert [g.passed for g in v.gates] == [True, False]
    with pytest.raises(ConfigError, match="unknown filter"):
        evaluate(empty, ["p99_ms(nonsense) <= 5"])


def test_shared_modules_import_without_locust_or_boto3() -> None:
    code = (
        "import sys\n"
        "import edgeproof.loadtest, edgeproof.loadtest.cli, edgeproof.loadtest.runner, edgeproof.loadtest.gates\n"
        "import edgeproof.loadtest.recorder, edgeproof.loadtest.traffic\n"
        "import edgeproof.loadtest.scenario, edgeproof.loadtest.shapes, edgeproof.loadtest.workload, edgeproof.loadtest.config\n"
        "from edgeproof.cli import build_parser; build_parser(only='loadtest')\n"
        "bad = [m for m in ('locust', 'gevent', 'boto3', 'botocore') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
