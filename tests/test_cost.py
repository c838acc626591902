"""The cost model: a small case worked by hand, the price table and its overrides, the replay's counts,
the CLI's columns and JSON, and the weekly report's cost object."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from edgeproof.analytics.cost import GB, Traffic, monthly_cost, replay_costs, saving, tiered
from edgeproof.analytics.prices import builtin_prices, load_prices
from edgeproof.analytics.replay import compare_strategies
from edgeproof.analytics.schema import LOG_SCHEMA

from edgeproof.cloudfront import geographies, geography_of, regions
from edgeproof.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
TB = 1024 * GB  # AWS's TB: 1,024 GB of 2^30 bytes


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeproof.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


# -- the table of geographies -----------------------------------------------------------------------

def test_every_edge_location_code_has_one_geography_and_price_class() -> None:
    geos = geographies()
    assert set(regions()) == {code for g in geos.values() for code in g.codes}
    assert geography_of("IAD89-C1") == "us" and geography_of("YUL62-C1") == "us"  # Canada: the US geography
    assert geography_of("TLV50-C1") == "europe"  # Israel, though its REC is ap-south-1
    assert geography_of("GRU3-C1") == "south_america" and geos["south_america"].price_class == "PriceClass_All"
    assert geography_of("NRT57-P2") == "japan" and geos["japan"].price_class == "PriceClass_200"
    assert geography_of("ZZZ1") is None


# -- a small case worked by hand --------------------------------------------------------------------

MONTH_S = 730 * 3600.0


def small_case(window: float = MONTH_S, **extra: Any) -> Traffic:
    """10 requests in two geographies (us 5, europe 5), 12 TB out of the US (over the first 10 TB tier) and
    100 GB out of Europe, 5 origin requests, 6 shield requests, 10 function runs, 3 transforms of 1 GB each."""
    return Traffic(window_seconds=window,
                   requests_by_pop={"IAD89-C1": 3, "JFK50-P3": 2, "FRA56-P1": 4, "LHR61-C1": 1},
                   bytes_by_pop={"IAD89-C1": int(11 * TB), "JFK50-P3": int(1 * TB), "FRA56-P1": int(100 * GB),
                                 "LHR61-C1": 0},
                   origin_requests=5, shield_requests=6, function_invocations=10, transforms=3, stored_variants=3,
                   stored_bytes=int(3 * GB), **extra)


def test_each_line_item_and_the_total_by_hand() -> None:
    p = builtin_prices()
    https, dto = p["cloudfront.https_requests_per_10k"], p["cloudfront.data_transfer_per_gb"]
    cost = monthly_cost(small_case(transform_cpu_ms=200.0, cpu_source="test"), p)
    assert cost["scale"] == pytest.approx(1.0)
    want = {
        "cloudfront_requests": 5 / 10_000 * https["us"] + 5 / 10_000 * https["europe"],
        # the US: 12 TB = the first 10 TB at the first price, 2 TB at the second; Europe: 100 GB in tier one
        "cloudfront_data_transfer": 10 * 1024 * dto["us"][0] + 2 * 1024 * dto["us"][1] + 100 * dto["europe"][0],
        "cloudfront_functions": 10 / 1e6 * p["cloudfront"]["functions_per_million"],
        "origin_shield": 6 / 10_000 * p["cloudfront.origin_shield_requests_per_10k"]["us"],
        # a GET per origin request and per transform (the source), a PUT per transform
        "s3_requests": (5 + 3) / 1000 * p["s3"]["get_per_1000"] + 3 / 1000 * p["s3"]["put_per_1000"],
        "s3_storage": 3 * p["s3"]["storage_per_gb_month"][0],
        # 3 × 0.2 CPU-s on 1 vCPU / 2 GB tasks at full use: 0.6 vCPU-s and 1.2 GB-s
        "transformer_compute": 0.6 / 3600 * p["fargate"]["x86_vcpu_per_hour"]
        + 1.2 / 3600 * p["fargate"]["x86_gb_per_hour"],
    }
    assert cost["items"] == pytest.approx(want)
    assert cost["total"] == pytest.approx(sum(want.values()))
    assert cost["transformer"]["vcpu_seconds"] == pytest.approx(0.6)
    assert cost["transformer"]["gb_seconds"] == pytest.approx(1.2)
    assert cost["transformer"]["cpu_source"] == "test"
    us = next(line for line in cost["lines"] if line["item"] == "cloudfront_data_transfer" and line["geography"] == "us")
    assert [t["gb"] for t in us["tiers"]] == pytest.approx([10 * 1024, 2 * 1024])
    assert cost["by_price_class"]["PriceClass_100"]["requests"] == pytest.approx(10)
    assert set(cost["by_price_class"]) == {"PriceClass_100"}


def test_the_window_is_scaled_to_a_month_and_storage_is_not() -> None:
    p = builtin_prices()
    month, week = monthly_cost(small_case(), p), monthly_cost(small_case(window=MONTH_S / 4), p)
    assert week["scale"] == pytest.approx(4.0)
    https = p["cloudfront.https_requests_per_10k"]
    assert week["items"]["cloudfront_requests"] == pytest.approx(20 / 10_000 * (https["us"] + https["europe"]))
    assert week["items"]["s3_storage"] == pytest.approx(month["items"]["s3_storage"])  # a stock, not a flow
    assert week["items"]["transformer_compute"] == pytest.approx(4 * month["items"]["transformer_compute"])
    # 48 TB out of the US a month: 10 TB, 38 TB of the next tier
    dto = p["cloudfront.data_transfer_per_gb"]["us"]
    us_gb = next(line for line in week["lines"] if line.get("geography") == "us"
                 and line["item"] == "cloudfront_data_transfer")
    assert us_gb["dollars"] == pytest.approx(10 * 1024 * dto[0] + 38 * 1024 * dto[1])


def test_graviton_default_cpu_unknown_transforms_and_unknown_pops() -> None:
    p = builtin_prices()
    x86 = monthly_cost(small_case(), p)
    arm = monthly_cost(small_case(), p.with_values("transformer", architecture="graviton"))
    cpu_s = 3 * p["transformer"]["cpu_ms"] / 1000  # the price table's default CPU per transform
    assert x86["transformer"]["cpu_ms"] == p["transformer"]["cpu_ms"]
    assert arm["items"]["transformer_compute"] == pytest.approx(
        cpu_s / 3600 * p["fargate"]["graviton_vcpu_per_hour"] + 2 * cpu_s / 3600 * p["fargate"]["graviton_gb_per_hour"])
    assert arm["items"]["transformer_compute"] < x86["items"]["transformer_compute"]
    odd = monthly_cost(Traffic(window_seconds=MONTH_S, requests_by_pop={"ZZZ9-C1": 10_000}, bytes_by_pop={},
                               origin_requests=0), p)
    assert odd["pops_without_geography"] == ["ZZZ"]
    assert odd["items"]["cloudfront_requests"] == pytest.approx(p["cloudfront.https_requests_per_10k"]["us"])
    assert odd["items"]["transformer_compute"] == 0 and any("transforms unknown" in n for n in odd["notes"])


def test_tiers_and_saving() -> None:
    assert tiered(25, [10, 10], [3.0, 2.0, 1.0]) == [(10, 3.0), (10, 2.0), (5, 1.0)]
    assert tiered(0, [10], [1.0, 0.5]) == []
    p = builtin_prices()
    a, b = monthly_cost(small_case(), p), monthly_cost(small_case(window=MONTH_S / 2), p)
    assert saving(b, a) == pytest.approx(b["total"] - a["total"]) and saving(b, a) > 0


# -- the price table --------------------------------------------------------------------------------

def test_every_priced_table_names_its_page_and_date() -> None:
    p = builtin_prices()
    for table, src in p.sources().items():
        assert src["source"].startswith("https://aws.amazon.com/"), table
        datetime.strptime(src["taken"], "%Y-%m-%d")
    for geo in geographies():  # every geography has its prices, one per data-transfer tier
        assert len(p["cloudfront.data_transfer_per_gb"][geo]) == len(p["cloudfront"]["data_transfer_tiers_tb"]) + 1
        assert p["cloudfront.https_requests_per_10k"][geo] > 0


def test_a_user_file_overrides_any_figure(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[cloudfront.data_transfer_per_gb]\nus = [0.05, 0.04, 0.03, 0.02, 0.02, 0.01, 0.01]\n"
                    "[transformer]\ncpu_ms = 40\n")
    base, p = builtin_prices(), load_prices(mine)
    assert p["cloudfront.data_transfer_per_gb"]["us"] == (0.05, 0.04, 0.03, 0.02, 0.02, 0.01, 0.01)
    assert p["cloudfront.data_transfer_per_gb"]["europe"] == base["cloudfront.data_transfer_per_gb"]["europe"]
    assert p["transformer"]["cpu_ms"] == 40.0 and p["transformer"]["vcpu"] == base["transformer"]["vcpu"]
    assert p.files[-1] == str(mine)
    cost = monthly_cost(small_case(), p)
    us = next(line for line in cost["lines"] if line.get("geography") == "us" and line["item"] == "cloudfront_data_transfer")
    assert us["dollars"] == pytest.approx(10 * 1024 * 0.05 + 2 * 1024 * 0.04)
    assert cost["transformer"]["cpu_ms"] == 40.0


@pytest.mark.parametrize(("text", "message"), [
    ("[cloudfront]\ncolour = 1\n", "[cloudfront] colour: unknown key"),
    ("[cloudfront.https_requests_per_10k]\nmars = 0.01\n", "[cloudfront.https_requests_per_10k] mars: unknown key"),
    ("[discounts]\nall = 0.1\n", "[discounts]: unknown table"),
    ("[s3]\nput_per_1000 = -1\n", "[s3] put_per_1000: must be >= 0"),
    ("[transformer]\narchitecture = \"risc-v\"\n", "[transformer] architecture: must be one of"),
    ("[cloudfront.data_transfer_per_gb]\nus = [0.05]\n", "us: needs 7 prices"),
])
def test_a_bad_user_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_prices(bad)
    assert str(bad) in str(err.value) and message in str(err.value)


# -- the replay's counts, end to end ----------------------------------------------------------------

T0 = datetime(2026, 11, 16, tzinfo=UTC)


def log(rows: list[tuple[float, str, str, str, int]]) -> pa.Table:
    """A LOG_SCHEMA table of (seconds, edge location, uri, result type, bytes)."""
    cols: dict[str, list[Any]] = {n: [] for n in LOG_SCHEMA.names}
    for t, pop, uri, rt, nbytes in rows:
        path, _, query = uri.partition("?")
        values = {"timestamp": T0 + timedelta(seconds=t), "x_edge_location": pop, "pop": pop[:3], "cs_method": "GET",
                  "cs_uri_stem": path, "cs_uri_query": query or None, "x_edge_result_type": rt,
                  "sc_content_type": "image/webp", "sc_bytes": nbytes}
        for name in LOG_SCHEMA.names:
            cols[name].append(values.get(name))
    return pa.table(cols, schema=LOG_SCHEMA)


def test_replay_counts_bytes_by_pop_and_variant_bytes() -> None:
    rows = [(0, "IAD89-C1", "/a.jpg?w=640&f=webp", "Miss", 1000), (1, "IAD89-C1", "/a.jpg?w=640&f=webp", "Hit", 1200),
            (2, "FRA56-P1", "/a.jpg?w=600&f=webp", "Miss", 900), (3600, "FRA56-P1", "/b.jpg?w=320&f=webp", "Miss", 500)]
    result = compare_strategies(log(rows), ["passthrough", "aggressive"])
    assert result["observed_by_pop"]["IAD89-C1"]["bytes"] == 2200 and result["observed"]["bytes"] == 3600
    p, a = result["strategies"]["passthrough"], result["strategies"]["aggressive"]
    assert p["variant_bytes"] == 1200 + 900 + 500  # three variants, each at its largest response
    assert a["variant_bytes"] == 1200 + 500  # w=600 snaps to 640: one variant fewer
    assert result["calibration"]["variant_bytes"] == p["variant_bytes"]
    costs = replay_costs(result, builtin_prices(), functions=["aggressive"])
    scale = 730 * 3600 / 3600.0  # the scored window is the hour from the first to the last request
    observed, agg = costs["observed"], costs["strategies"]["aggressive"]
    assert observed["scale"] == pytest.approx(scale)
    assert observed["items"]["cloudfront_functions"] == 0
    assert agg["items"]["cloudfront_functions"] == pytest.approx(
        4 * scale / 1e6 * builtin_prices()["cloudfront"]["functions_per_million"])
    assert agg["items"]["cloudfront_data_transfer"] == pytest.approx(observed["items"]["cloudfront_data_transfer"])
    assert agg["saving_over"]["observed"] == pytest.approx(observed["total"] - agg["total"])
    assert agg["saving_over"]["passthrough"] == pytest.approx(costs["strategies"]["passthrough"]["total"] - agg["total"])


# -- the CLI and the weekly report ------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeproof.analytics.synthetic import generate_logs

    out = tmp_path_factory.mktemp("cost-logs")
    generate_logs(out, "2026-11-16T00:00:00Z", hours=2, requests_per_hour=600, hit_rate=0.9, seed=7)
    return out


def test_compare_shows_cost_columns_and_json(synthetic_logs: Path, tmp_path: Path) -> None:
    text = cli("strategies", "compare", "--logs", str(synthetic_logs), "--strategy", "passthrough",
               "--strategy", "aggressive", "--tier", "shield")
    assert text.returncode in (0, 1), text.stderr
    header = next(line for line in text.stdout.splitlines() if line.startswith("strategy "))
    assert header.split()[-2:] == ["$/month", "saving_vs_observed"]
    assert "scaled ×" in text.stdout and "https://aws.amazon.com/cloudfront/pricing/" in text.stdout
    out = cli("strategies", "compare", "--logs", str(synthetic_logs), "--strategy", "passthrough",
              "--strategy", "aggressive", "--tier", "shield", "--json", "--graviton", "--transform-cpu-ms", "80")
    result = json.loads(out.stdout)
    cost = result["strategies"]["aggressive"]["cost"]
    observed = result["cost"]["observed"]
    assert cost["transformer"] == {**cost["transformer"], "architecture": "graviton", "cpu_ms": 80.0,
                                   "cpu_source": "--transform-cpu-ms"}
    assert cost["items"]["origin_shield"] > 0 and cost["items"]["cloudfront_functions"] > 0
    assert result["strategies"]["passthrough"]["cost"]["items"]["cloudfront_functions"] == 0
    assert cost["total"] == pytest.approx(sum(cost["items"].values()))
    assert cost["saving_over"]["observed"] == pytest.approx(observed["total"] - cost["total"])
    assert result["cost"]["prices"]["fargate"]["source"] == "https://aws.amazon.com/fargate/pricing/"
    # the row's dollars are the JSON's
    row = next(line for line in text.stdout.splitlines() if line.startswith("aggressive "))
    plain = json.loads(cli("strategies", "compare", "--logs", str(synthetic_logs), "--strategy", "passthrough",
                           "--strategy", "aggressive", "--tier", "shield", "--json").stdout)
    assert f"${plain['strategies']['aggressive']['cost']['total']:,.2f}" in row


def test_compare_refuses_a_bad_price_file(synthetic_logs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text("[fargate]\nx86_vcpu_per_hr = 0.04\n")
    out = cli("strategies", "compare", "--logs", str(synthetic_logs), "--prices", str(bad))
    assert out.returncode == 2
    assert "[fargate] x86_vcpu_per_hr: unknown key" in out.stderr


def test_weekly_summary_has_the_cost_object(synthetic_logs: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[transformer]\ncpu_ms = 55\n")
    out = cli("report", "weekly", "--logs", str(synthetic_logs), "--from", "2026-11-16", "--to", "2026-11-16T02:00",
              "--out", str(tmp_path / "wk"), "--quiet", "--prices", str(mine))
    assert out.returncode in (0, 1), out.stderr
    summary = json.loads((tmp_path / "wk" / "summary.json").read_text())
    cost = summary["cost"]
    assert set(cost["strategies"]) == {r["strategy"] for r in summary["what_if"]["strategies"]}
    assert cost["observed"]["transformer"]["cpu_ms"] == 55.0 and cost["price_files"][-1] == str(mine)
    window = cost["observed"]["window_seconds"]  # the first to the last request of the two hours
    assert 7000 < window <= 7200 and cost["observed"]["scale"] == pytest.approx(730 * 3600 / window)
    requests = sum(line["quantity"] for line in cost["observed"]["lines"] if line["item"] == "cloudfront_requests")
    assert requests == pytest.approx(summary["cacheable"] * cost["observed"]["scale"])
    assert "Cost per month" in (tmp_path / "wk" / "report.md").read_text()
    assert "cost: observed $" in out.stdout


def test_rehearsal_cost_from_its_summary() -> None:
    from edgeproof.analytics.cost import rehearsal_cost

    summary = {
        "strategy": "aggressive", "duration": 300.0, "spike_phases": ["spike"],
        "phases": [{"name": "warm", "start": 0.0, "end": 60.0}, {"name": "spike", "start": 60.0, "end": 240.0}],
        "by_pop": [{"pop": "IAD", "requests": 900, "hits": 850, "misses": 50, "bytes": 9_000_000},
                   {"pop": "NRT", "requests": 100, "hits": 90, "misses": 10, "bytes": 1_000_000}],
        "transforms": 40, "origin_work": {"distinct_variants": 30, "transform_seconds": 6.0, "timed_transforms": 40},
    }
    p = builtin_prices()
    cost = rehearsal_cost(summary, p)
    assert cost is not None
    scale = 730 * 3600 / 180.0  # the spike's 180 s
    assert cost["scale"] == pytest.approx(scale)
    assert cost["transformer"]["cpu_ms"] == pytest.approx(150.0)  # 6 s over 40 transforms, measured
    assert cost["transformer"]["cpu_source"].startswith("measured")
    https = p["cloudfront.https_requests_per_10k"]
    assert cost["items"]["cloudfront_requests"] == pytest.approx(scale * (900 * https["us"] + 100 * https["japan"]) / 1e4)
    assert cost["items"]["cloudfront_functions"] == pytest.approx(1000 * scale / 1e6 * 0.10)  # canonical mode
    assert cost["items"]["s3_requests"] == pytest.approx(
        (60 + 40) * scale / 1000 * p["s3"]["get_per_1000"] + 40 * scale / 1000 * p["s3"]["put_per_1000"])
    assert cost["items"]["s3_storage"] == pytest.approx(30 * 10_000 / GB * p["s3"]["storage_per_gb_month"][0])
    summary["origin_work"] = {"distinct_variants": 30}  # no histogram: the price table's default CPU
    assert rehearsal_cost(summary, p)["transformer"]["cpu_source"] == "price table [transformer] cpu_ms"
    assert rehearsal_cost({**summary, "by_pop": []}, p) is None
