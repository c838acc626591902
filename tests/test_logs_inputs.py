"""Inputs (folders, globs, s3:// on a moto server), v2 JSON/Parquet, bad values with exact line numbers,
time filtering, strict mode."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from edgeproof.analytics import read_logs, summarize
from edgeproof.analytics.synthetic import generate_logs
from edgeproof.analytics.writer import encode_line, w3c_header

from edgeproof.errors import StrictModeError, UsageError

ROW = {
    "timestamp": datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC), "x_edge_location": "IAD89-C1", "sc_bytes": 100,
    "cs_method": "GET", "cs_uri_stem": "/images/a.jpg", "sc_status": 200, "x_edge_result_type": "Hit",
    "time_taken": 0.005, "x_edge_request_id": "id",
}


def _lines(n: int) -> list[str]:
    return [encode_line({**ROW, "x_edge_request_id": f"id{i}"}) for i in range(n)]


def test_bad_values_are_reported_with_their_physical_line(tmp_path: Path) -> None:
    lines = _lines(8)
    lines[2] = lines[2].replace("\t100\t", "\tabc\t", 1)  # sc-bytes not a number
    lines[5] = "2024-13-45" + lines[5][10:]  # impossible date
    body = w3c_header() + lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n"  # an empty line shifts numbering
    path = tmp_path / "bad.log"
    path.write_text(body)
    stream = read_logs(path)
    table = stream.read_all()
    assert table.num_rows == 6
    assert stream.bad_lines == 2
    # header is lines 1-2, lines[0] is line 3, the empty line is 4, lines[k] is line k + 4
    assert stream.bad_line_examples == [
        f"{path}:6: unparsable sc-bytes 'abc'",
        f"{path}:9: unparsable date/time '2024-13-45T10:00:00'",
    ]
    with pytest.raises(StrictModeError) as err:
        read_logs(path, strict=True).read_all()
    assert f"{path}:6: unparsable sc-bytes" in err.value.message


def test_folder_glob_and_time_range_on_file_names(tmp_path: Path) -> None:
    generate_logs(tmp_path / "logs", "2024-05-01T00:00Z", 4, 30, hit_rate=0.5, seed=3)
    # a corrupt file whose name is outside the range: never opened
    (tmp_path / "logs" / "E2EDGEPROOF1.2024-04-01-00.bad.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    everything = read_logs(tmp_path / "logs")
    assert everything.read_all().num_rows == 120
    # a damaged file is a file error, not a bad line: its bytes are not lines
    assert everything.bad_lines == 0 and everything.lines == everything.requests == 120
    (error,) = everything.file_errors
    assert error.startswith(str(tmp_path / "logs" / "E2EDGEPROOF1.2024-04-01-00.bad.gz")) and "corrupt gzip" in error
    ranged = read_logs(tmp_path / "logs", start="2024-05-01T01:00Z", end="2024-05-01T03:00Z")
    table = ranged.read_all()
    assert table.num_rows == 60 and ranged.bad_lines == 0
    assert len(ranged.files) == 2
    assert table["timestamp"].to_pylist()[0] >= datetime(2024, 5, 1, 1, tzinfo=UTC)
    globbed = read_logs(str(tmp_path / "logs" / "*2024-05-01-0[02]*.gz"))
    assert len(globbed.inputs) == 2
    with pytest.raises(UsageError):
        read_logs(tmp_path / "missing")


def test_v2_json_lines_and_parquet(tmp_path: Path) -> None:
    rows = [
        {"timestamp(ms)": "1714557600123", "DistributionId": "E123", "x-edge-location": "FRA56-P1",
         "sc-bytes": "2048", "cs-method": "GET", "cs-uri-stem": "/images/a%20b.jpg", "sc-status": "200",
         "x-edge-result-type": "Miss", "time-taken": "0.150", "time-to-first-byte": "-", "asn": "16509",
         "c-country": "DE", "origin-fbl": "0.1"},
        {"timestamp(ms)": "1714557601000", "DistributionId": "E123", "x-edge-location": "FRA56-P1",
         "sc-bytes": "many", "cs-method": "GET", "cs-uri-stem": "/x", "sc-status": "200",
         "x-edge-result-type": "Hit", "time-taken": "0.001"},
    ]
    path = tmp_path / "v2.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    stream = read_logs(path)
    got = stream.read_all().to_pylist()
    assert stream.files[0].format == "json"
    assert len(got) == 1 and stream.bad_lines == 2
    assert got[0]["timestamp"] == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert (got[0]["distribution_id"], got[0]["asn"], got[0]["c_country"]) == ("E123", 16509, "DE")
    assert got[0]["cs_uri_stem"] == "/images/a b.jpg" and got[0]["time_to_first_byte"] is None
    assert sorted(stream.bad_line_examples) == [f"{path}:2: unparsable sc-bytes 'many'",
                                                f"{path}:3: not JSON: Expecting value"]
    pq.write_table(pa.Table.from_pylist(rows[:1]), tmp_path / "v2.parquet")
    pstream = read_logs(tmp_path / "v2.parquet")
    assert pstream.read_all().to_pylist() == got
    assert pstream.files[0].format == "parquet"


def test_summarize_jobs_and_groups_agree(tmp_path: Path) -> None:
    generate_logs(tmp_path, "2024-05-01", 6, 200, hit_rate=lambda d: 0.8, seed=5)
    one = summarize(tmp_path, by="hour")
    two = summarize(tmp_path, by="hour", jobs=2)
    assert one == two
    assert list(one["groups"]) == [f"2024-05-01T{h:02d}:00Z" for h in range(6)]
    assert sum(g["requests"] for g in one["groups"].values()) == one["requests"] == 1200
    assert one["hit_rate"] == pytest.approx(0.8, abs=0.05)
    assert one["cacheable"] + sum(one["excluded"].values()) == one["requests"]
    table = read_logs(tmp_path).read_all()
    from_table = summarize(table)
    for key in ("requests", "hits", "misses", "bytes", "latency_ms", "excluded"):
        assert from_table[key] == one[key]


def _put_logs(bucket: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    for path in generate_logs(tmp_path, "2024-05-01T00:00Z", 6, 40, hit_rate=0.9, seed=7):
        s3.upload_file(str(path), bucket, f"cf/{path.name}")
    # objects outside the range that would break the read if they were ever downloaded
    s3.put_object(Bucket=bucket, Key="cf/E2EDGEPROOF1.2024-04-30-23.corrupt.gz", Body=b"\x1f\x8bgarbage")
    s3.put_object(Bucket=bucket, Key="cf/E2EDGEPROOF1.2024-05-02-00.corrupt.gz", Body=b"\x1f\x8bgarbage")


def test_s3_prefix_with_time_range_never_downloads_other_keys(s3_bucket: str, tmp_path: Path) -> None:
    _put_logs(s3_bucket, tmp_path)
    ranged = read_logs(f"s3://{s3_bucket}/cf/", start="2024-05-01T02:00Z", end="2024-05-01T05:00Z")
    assert ranged.read_all().num_rows == 120
    assert [f.name.rsplit("/", 1)[1][:26] for f in ranged.files] == [
        f"E2EDGEPROOF1.2024-05-01-0{h}" for h in (2, 3, 4)
    ]
    assert ranged.bad_lines == 0
    everything = read_logs(f"s3://{s3_bucket}/cf/")
    assert everything.read_all().num_rows == 240
    assert everything.bad_lines == 0 and len(everything.file_errors) == 2
    assert all("corrupt gzip" in e for e in everything.file_errors)
    assert [f.errors[0].kind for f in everything.files if f.errors] == ["corrupt", "corrupt"]


def test_gzip_of_many_members(tmp_path: Path) -> None:
    lines = _lines(10)
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress((w3c_header() + "\n".join(lines[:4]) + "\n").encode())
                     + gzip.compress(("\n".join(lines[4:]) + "\n").encode()))
    stream = read_logs(path)
    assert stream.read_all().num_rows == 10 and stream.bad_lines == 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("compress", [False, True])
def test_many_small_blocks_keep_exact_line_numbers_and_header_switches(
    tmp_path: Path, threads: int, compress: bool
) -> None:
    from edgeproof.analytics.schema import LEGACY_FIELDS_33

    old = LEGACY_FIELDS_33[:26]
    lines = w3c_header(old).rstrip("\n").split("\n")  # physical lines 1-2; lines[k] is line k + 1
    lines += [encode_line({**ROW, "x_edge_request_id": f"a{i}"}, old) for i in range(300)]
    lines[101] = lines[101].replace("\t100\t", "\tx1\t", 1)  # physical line 102
    lines += w3c_header().rstrip("\n").split("\n")  # a concatenated newer file: lines 303-304
    lines += [encode_line({**ROW, "x_edge_request_id": f"b{i}", "c_port": 443}) for i in range(300)]
    lines[451] = lines[451] + "\textra"  # physical line 452: 34 fields
    lines.insert(500, "")  # an empty line becomes physical line 501
    body = ("\n".join(lines) + "\n").encode()
    path = tmp_path / ("cat.log.gz" if compress else "cat.log")
    path.write_bytes(gzip.compress(body) if compress else body)
    stream = read_logs(path, threads=threads, block_bytes=2048)
    table = stream.read_all()
    assert table.num_rows == 598
    assert sorted(stream.bad_line_examples) == [
        f"{path}:102: unparsable sc-bytes 'x1'",
        f"{path}:452: 34 tab-separated fields, expected 33",
    ]
    ports = dict(zip(table["x_edge_request_id"].to_pylist(), table["c_port"].to_pylist(), strict=True))
    assert ports["a5"] is None and ports["b5"] == 443 and ports["b299"] == 443
