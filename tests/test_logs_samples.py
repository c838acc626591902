"""Every real CloudFront sample in ../shared/samples/cloudfront is read with the right layout and values,
or its bad lines are reported with file:line and a reason."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest
from edgeproof.analytics import read_logs, summarize

# file → (format, field count, rows read, bad lines)
EXPECTED = {
    "aws-samples-amazon-cloudfront-log-analysis__sample-cloudfront-access-logs.gz": ("w3c", 26, 66, 0),
    "aws-samples-amazon-cloudfront-log-analysis__sample-cloudfront-access-logs.log": ("w3c", 26, 66, 0),
    "awsdocs-cloudfront-devguide__AccessLogs-2017-12-07_24field.log": ("w3c", 24, 2, 0),
    "awsdocs-cloudfront-devguide__AccessLogs-2018-2019_26field-header.log": ("w3c", 26, 2, 0),
    "awsdocs-cloudfront-devguide__AccessLogs-2019-12-12_33field-spaces-doubleenc.log": ("w3c", 33, 3, 0),
    "awsdocs-cloudfront-devguide__AccessLogs-2023-03-31_33field.log": ("w3c", 33, 6, 0),
    "claygregory-node-cloudfront-log-parser__kinesis-1-0.txt": ("realtime", 40, 1, 0),
    "claygregory-node-cloudfront-log-parser__web-1-0-2019-12.txt": ("w3c", 33, 3, 0),
    "claygregory-node-cloudfront-log-parser__web-1-0.txt": ("w3c", 24, 2, 0),
    "datadog-pipeline-via-shashoul-Getting-Started-Terraform__realtime.log": ("realtime", 40, 2, 0),
    "datadog-pipeline-via-shashoul-Getting-Started-Terraform__standard.log": ("w3c", 33, 1, 1),
    "jsherz-cloudfront-logs-to-elasticsearch__file.gz": ("w3c", 33, 2, 0),
    "jsherz-cloudfront-logs-to-elasticsearch__file.log": ("w3c", 33, 2, 0),
    "matomo-log-analytics__amazon_cloudfront_web.2014-ee9064d.log": ("w3c", 19, 1, 0),
    "matomo-log-analytics__amazon_cloudfront_web.log": ("w3c", 26, 1, 0),
    "snowplow__cf-lines-2012-2013.log": ("w3c", 15, 6, 0),
    "webreadr__log.aws": ("w3c", 23, 2, 0),
    "webreadr__log.aws.2015-5c2f846": ("w3c", 19, 2, 0),
}


def _read(samples_dir: Path, name: str):
    stream = read_logs(samples_dir / name)
    table = stream.read_all()
    return stream, table


def test_every_sample_is_known(samples_dir: Path) -> None:
    present = {p.name for p in samples_dir.iterdir() if p.name != "README.md"}
    assert present == set(EXPECTED), "a sample was added or removed: extend EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_layout_rows_and_bad_lines(samples_dir: Path, name: str) -> None:
    fmt, fields, rows, bad = EXPECTED[name]
    stream, table = _read(samples_dir, name)
    (stats,) = stream.files
    assert (stats.format, stats.fields, table.num_rows, stream.bad_lines) == (fmt, fields, rows, bad)
    assert stats.rows == rows
    # every row has a timestamp and an edge location; no row is silently half-read
    assert table["timestamp"].null_count == 0
    assert table["x_edge_location"].null_count == 0
    assert all(len(p) == 3 for p in table["pop"].to_pylist())
    for example in stream.bad_line_examples:
        assert example.startswith(f"{samples_dir / name}:")


def test_lambda_generated_responses_are_kept_and_excluded(samples_dir: Path) -> None:
    name = "aws-samples-amazon-cloudfront-log-analysis__sample-cloudfront-access-logs.gz"
    _, table = _read(samples_dir, name)
    counts = {d["values"]: d["counts"] for d in pc.value_counts(table["x_edge_result_type"]).to_pylist()}
    assert counts == {"LambdaGeneratedResponse": 41, "Hit": 23, "Miss": 2}
    result = summarize(samples_dir / name)
    assert (result["requests"], result["hits"], result["misses"]) == (66, 23, 2)
    assert result["excluded"]["generated"] == 41
    assert result["hit_rate"] == pytest.approx(23 / 25, abs=1e-6)
    # the plain and gzipped copies give the same table
    _, plain = _read(samples_dir, name.replace(".gz", ".log"))
    assert plain.equals(table)


def test_double_encoded_user_agent_raw_and_decoded(samples_dir: Path) -> None:
    _, table = _read(samples_dir, "claygregory-node-cloudfront-log-parser__web-1-0-2019-12.txt")
    row = table.slice(0, 1).to_pylist()[0]
    assert row["cs_user_agent_raw"].startswith("Mozilla/5.0%2520(Windows%2520NT%252010.0;")
    assert row["cs_user_agent"].startswith("Mozilla/5.0%20(Windows%20NT%2010.0;")  # decoded exactly once
    _, single = _read(samples_dir, "jsherz-cloudfront-logs-to-elasticsearch__file.log")
    assert single["cs_user_agent"][0].as_py() == "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def test_trailing_tab_line_and_error_rows(samples_dir: Path) -> None:
    _, table = _read(samples_dir, "awsdocs-cloudfront-devguide__AccessLogs-2023-03-31_33field.log")
    rows = table.to_pylist()
    request_ids = [r["x_edge_request_id"] for r in rows]
    assert "f37nTMVvnKvV2ZSvEsivup_c2kZ7VXzYdjC-GUQZ5qNs-89BlWazbw==" in request_ids  # the trailing-tab line
    trailing = rows[request_ids.index("f37nTMVvnKvV2ZSvEsivup_c2kZ7VXzYdjC-GUQZ5qNs-89BlWazbw==")]
    assert (trailing["c_port"], trailing["sc_content_len"], trailing["sc_range_end"]) == (11040, 78, None)
    errors = [r for r in rows if r["x_edge_result_type"] == "Error"]
    assert {r["x_edge_detailed_result_type"] for r in errors} == {"OriginDnsError"}
    assert {r["sc_status"] for r in errors} == {502}
    assert errors[0]["time_taken"] == pytest.approx(0.102)
    assert {r["pop"] for r in errors} == {"SEA"}


def test_whitespace_separated_and_old_layouts(samples_dir: Path) -> None:
    stream, table = _read(samples_dir, "matomo-log-analytics__amazon_cloudfront_web.2014-ee9064d.log")
    row = table.to_pylist()[0]
    assert stream.files[0].whitespace_lines == 1
    assert row["cs_bytes"] is None and row["time_taken"] == pytest.approx(0.001)
    assert row["timestamp"] == datetime(2014, 5, 23, 1, 13, 11, tzinfo=UTC)
    assert row["cs_cookie"] == "zip=98101" and row["x_edge_result_type"] == "RefreshHit"
    _, spaced = _read(samples_dir, "awsdocs-cloudfront-devguide__AccessLogs-2019-12-12_33field-spaces-doubleenc.log")
    assert spaced["c_port"].to_pylist() == [11040] * 3
    assert spaced["sc_content_type"].to_pylist() == ["text/html"] * 3


def test_headerless_historic_lines_use_the_layout_of_their_field_count(samples_dir: Path) -> None:
    stream, table = _read(samples_dir, "snowplow__cf-lines-2012-2013.log")
    rows = sorted(table.to_pylist(), key=lambda r: r["timestamp"])
    assert [r["timestamp"].year for r in rows] == [2012, 2012, 2013, 2013, 2013, 2013]
    twelve = rows[1]  # 2012-06-09: 12 fields, no result type column yet
    assert twelve["x_edge_location"] == "EWR2" and twelve["x_edge_result_type"] is None
    eighteen = rows[-1]  # 2013-10-22: 18 fields, whitespace-separated
    assert (eighteen["cs_protocol"], eighteen["cs_bytes"]) == ("http", 1119)
    assert stream.files[0].whitespace_lines == 3


def test_redirect_and_header_with_trailing_space(samples_dir: Path) -> None:
    _, table = _read(samples_dir, "webreadr__log.aws")
    rows = table.to_pylist()
    assert [(r["x_edge_result_type"], r["sc_status"]) for r in rows] == [("Redirect", 301), ("Miss", 302)]
    _, old = _read(samples_dir, "webreadr__log.aws.2015-5c2f846")
    assert old["sc_bytes"].to_pylist() == [182, 2390282]


def test_realtime_records(samples_dir: Path) -> None:
    _, table = _read(samples_dir, "claygregory-node-cloudfront-log-parser__kinesis-1-0.txt")
    row = table.to_pylist()[0]
    assert row["timestamp"] == datetime(2020, 12, 7, 20, 52, 1, 541000, tzinfo=UTC)
    assert row["cs_uri_stem"].startswith("/i?stm=1607374321563&e=pp&url=http%3A%2F%2Flocalhost")
    assert (row["x_edge_location"], row["time_to_first_byte"], row["sc_status"]) == ("EWR52-C4", 0.042, 200)
    _, dd = _read(samples_dir, "datadog-pipeline-via-shashoul-Getting-Started-Terraform__realtime.log")
    rows = dd.to_pylist()
    assert [r["x_edge_result_type"] for r in rows] == ["RefreshHit", "Miss"]
    assert rows[0]["sc_content_type"] is None and rows[0]["sc_status"] == 304
    assert rows[0]["c_country"] == "US" and rows[1]["sc_content_type"] == "font/woff2"


def test_realtime_fields_named_by_the_caller(samples_dir: Path) -> None:
    from edgeproof.analytics.reader_w3c import REALTIME_FIELDS

    fields = [f for f in REALTIME_FIELDS[:41] if f != "s-ip"]
    stream = read_logs(samples_dir / "datadog-pipeline-via-shashoul-Getting-Started-Terraform__realtime.log",
                       fmt="realtime", realtime_fields=",".join(fields))
    assert stream.read_all()["cs_bytes"].to_pylist() == [637, 82]
    wrong = read_logs(samples_dir / "datadog-pipeline-via-shashoul-Getting-Started-Terraform__realtime.log",
                      fmt="realtime", realtime_fields=fields[:10])
    assert wrong.read_all().num_rows == 0
    assert wrong.bad_lines == 2
    assert "40 tab-separated fields, expected 10" in wrong.bad_line_examples[0]


def test_mixed_tab_and_space_line_is_reported_not_dropped(samples_dir: Path) -> None:
    name = "datadog-pipeline-via-shashoul-Getting-Started-Terraform__standard.log"
    stream, table = _read(samples_dir, name)
    assert table["cs_method"].to_pylist() == ["POST"]
    assert stream.bad_line_examples == [
        f"{samples_dir / name}:2: 2 tab-separated fields, expected 33 (tabs and spaces mixed)"
    ]


def test_truncated_gzip_keeps_the_lines_before_the_break(samples_dir: Path, tmp_path: Path) -> None:
    full = (samples_dir / "aws-samples-amazon-cloudfront-log-analysis__sample-cloudfront-access-logs.log").read_bytes()
    data = gzip.compress(full)
    cut = tmp_path / "E1.2018-11-07-00.cut.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    stream = read_logs(cut)
    table = stream.read_all()
    assert 0 < table.num_rows < 66
    assert stream.bad_lines == 1
    (example,) = stream.bad_line_examples
    assert example.startswith(str(cut)) and "truncated gzip" in example
    # what was kept is exactly the first complete lines of the file
    ids = table["x_edge_request_id"].to_pylist()
    full_ids = read_logs(samples_dir / "aws-samples-amazon-cloudfront-log-analysis__sample-cloudfront-access-logs.log").read_all()["x_edge_request_id"].to_pylist()
    assert ids == full_ids[: len(ids)]
    # a corrupt file never stops the others
    both = read_logs([cut, samples_dir / "jsherz-cloudfront-logs-to-elasticsearch__file.gz"])
    assert both.read_all().num_rows == table.num_rows + 2
