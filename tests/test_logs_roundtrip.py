"""Writer → reader round trips (hypothesis) and the metrics definitions."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from edgeproof.analytics import read_logs
from edgeproof.analytics.metrics import (
    LatencySketch,
    classify,
    exact_quantiles,
    hit_rate,
    quantile_label,
    xcache_result,
)
from edgeproof.analytics.schema import LEGACY_FIELDS_33
from edgeproof.analytics.writer import encode_columns, encode_line, encode_value, w3c_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40).filter(lambda s: s != "-")
_ident = st.from_regex(r"[A-Za-z0-9_=-]{8,56}", fullmatch=True).filter(lambda s: s != "-")

records = st.fixed_dictionaries(
    {
        "timestamp": st.integers(946_684_800, 1_900_000_000).map(lambda s: s * 1000),
        "x_edge_location": st.from_regex(r"[A-Z]{3}[0-9]{1,2}(-C[0-9])?", fullmatch=True),
        "sc_bytes": st.integers(0, 10**12),
        "c_ip": st.ip_addresses().map(str),
        "cs_method": st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
        "cs_host": _text,
        "cs_uri_stem": _text,
        "sc_status": st.sampled_from([0, 200, 206, 301, 304, 403, 404, 500, 502, 503]),
        "cs_referer": st.none() | _text,
        "cs_user_agent": _text,
        "cs_uri_query": st.none() | _text,
        "x_edge_result_type": st.sampled_from(
            ["Hit", "RefreshHit", "Miss", "OriginShieldHit", "Error", "Redirect", "LambdaGeneratedResponse"]
        ),
        "x_edge_request_id": _ident,
        "time_taken": st.integers(0, 600_000).map(lambda ms: ms / 1000),
        "c_port": st.none() | st.integers(1, 65535),
        "time_to_first_byte": st.none() | st.integers(0, 600_000).map(lambda ms: ms / 1000),
        "sc_content_type": st.none() | st.sampled_from(["image/webp", "image/jpeg", "text/html; charset=utf-8"]),
        "sc_range_end": st.none() | st.integers(0, 10**9),
    }
)


def _check(row: dict, got: dict) -> None:
    assert got["timestamp"] == datetime.fromtimestamp(row["timestamp"] / 1000, tz=UTC)
    assert got["pop"] == row["x_edge_location"][:3]
    for key, value in row.items():
        if key == "timestamp":
            continue
        expected = None if value == "" else value
        if isinstance(expected, float):
            assert got[key] == pytest.approx(expected, abs=5e-4), key
        else:
            assert got[key] == expected, key


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(records, min_size=1, max_size=20))
def test_writer_reader_round_trip(rows: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "E1.2020-01-01-00.x.gz"
    body = w3c_header() + "".join(encode_line(r) + "\n" for r in rows)
    path.write_bytes(gzip.compress(body.encode()))
    stream = read_logs(path)
    table = stream.read_all()
    assert stream.bad_lines == 0, stream.bad_line_examples
    got = sorted(table.to_pylist(), key=lambda r: r["x_edge_request_id"])
    want = sorted(rows, key=lambda r: r["x_edge_request_id"])
    assert len(got) == len(want)
    for row, g in zip(want, got, strict=True):
        _check(row, g)


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(records, min_size=1, max_size=10))
def test_bulk_encoder_matches_line_encoder(rows: list[dict]) -> None:
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    assert list(encode_columns(cols, len(rows))) == [encode_line(r) for r in rows]


def test_encoding_rules() -> None:
    assert encode_value("") == "-"
    assert encode_value("a b") == "a%20b"
    assert encode_value("%2C") == "%252C"  # what the client already encoded shows up double-encoded
    assert encode_value("é\t") == "%C3%A9%09"
    line = encode_line({"timestamp": datetime(2024, 5, 1, 13, 2, 3, tzinfo=UTC), "time_taken": 0.0125,
                        "cs_method": "GET", "sc_bytes": 10})
    parts = line.split("\t")
    assert len(parts) == 33
    assert parts[:6] == ["2024-05-01", "13:02:03", "-", "10", "-", "GET"]
    assert parts[LEGACY_FIELDS_33.index("time-taken")] in ("0.012", "0.013")


def test_classify_and_hit_rate() -> None:
    assert [classify(t, "GET") for t in ("Hit", "RefreshHit", "Miss", "OriginShieldHit")] == ["hit", "hit", "miss", "miss"]
    assert classify("Hit", "HEAD") == "hit"
    assert classify("Hit", "POST") == "method"
    assert classify("Error", "GET") == "error"
    assert classify("Redirect", "GET") == "redirect"
    assert classify("LimitExceeded", "GET") == "limit_exceeded"
    assert classify("CapacityExceeded", "GET") == "capacity_exceeded"
    assert classify("FunctionGeneratedResponse", "GET") == "generated"
    assert classify("SomethingNew", "GET") == "unknown"
    assert classify(None, "GET") == "unknown"
    assert hit_rate(0, 0) is None
    assert hit_rate(96, 4) == pytest.approx(0.96)
    assert xcache_result("Hit from cloudfront") == "Hit"
    assert xcache_result("RefreshHit from cloudfront") == "RefreshHit"
    assert xcache_result("Miss from cloudfront") == "Miss"
    assert xcache_result("Error from cloudfront") == "Error"
    assert xcache_result("LambdaGeneratedResponse from cloudfront") == "LambdaGeneratedResponse"
    assert xcache_result(None) is None
    assert [quantile_label(q) for q in (0.5, 0.9, 0.99, 0.999)] == ["p50", "p90", "p99", "p999"]


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=400),
    q=st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0]),
)
def test_sketch_quantile_within_one_percent_of_nearest_rank(values: list[float], q: float) -> None:
    sketch = LatencySketch()
    half = len(values) // 2
    sketch.add_many(np.array(values[:half]))
    other = LatencySketch()
    other.add_many(values[half:])
    sketch.merge(other)
    exact = exact_quantiles(values, [q], method="inverted_cdf")[quantile_label(q)]
    got = sketch.quantile(q)
    assert exact is not None and got is not None
    if exact <= sketch.min_value:
        assert got == 0.0
    else:
        assert math.isclose(got, exact, rel_tol=0.0101)


def test_sketch_serialises_and_ignores_nan() -> None:
    sketch = LatencySketch()
    sketch.add_many([1.0, 2.0, float("nan"), -3.0, 0.0, 500.0])
    assert sketch.n == 4
    again = LatencySketch.from_dict(sketch.to_dict())
    assert again.quantiles() == sketch.quantiles()
    assert LatencySketch().quantile(0.5) is None
    assert exact_quantiles([], [0.5]) == {"p50": None}
    assert exact_quantiles([1, 2, 3, 4], [0.5]) == {"p50": 2.5}
