"""The edge's log writer encodes a flush in chunks (yielding the GIL between them): the files it writes
are byte-identical to one encoding of the whole batch, standard and real-time, across hours."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from edgeproof.edge import logsink
from edgeproof.edge.logsink import ROW_COLUMNS, LogSink

T0_MS = 1_764_590_000_000.0  # 2025-12-01 11:53:20 UTC; the rows below cross into the next hour


def _rows(n: int) -> list[tuple]:
    out = []
    for i in range(n):
        values = dict.fromkeys(ROW_COLUMNS)
        result = ("Hit", "Miss", "RefreshHit")[i % 3]
        values.update(timestamp=T0_MS + i * 997.3, x_edge_location=("IAD89-C1", "FRA56-P2")[i % 2],
                      sc_bytes=1000 + i, c_ip="127.0.0.1" if i % 5 else "::1", cs_method="GET",
                      cs_host="d1.cloudfront.net", cs_uri_stem=f"/images/sku-{i % 40:05d}-1.jpg", sc_status=200,
                      cs_uri_query=f"w={160 * (1 + i % 4)}&f=auto" if i % 7 else None, x_edge_result_type=result,
                      x_edge_request_id=f"req{i}", cs_protocol="http", cs_bytes=100 + i % 9,
                      time_taken=0.001 * (i % 13), x_edge_response_result_type=result,
                      cs_protocol_version="HTTP/1.1", c_port=40000 + i, time_to_first_byte=0.0005 * (i % 11),
                      x_edge_detailed_result_type=result, sc_content_type="image/webp", sc_content_len=900 + i,
                      cs_user_agent="Mozilla/5.0 (X11; Linux) a b", cs_accept="image/webp,*/*",
                      cs_accept_encoding="gzip")
        out.append(tuple(values[c] for c in ROW_COLUMNS))
    return out


def _written(tmp_path: Path, name: str, rows: list[tuple]) -> dict[str, list[str]]:
    sink = LogSink(tmp_path / name / "std", "ECHUNK", realtime_dir=tmp_path / name / "rt", flush_interval=3600)
    for row in rows:
        sink.add(row)
    assert sink.flush() == len(rows)
    out = {}
    for path in sorted((tmp_path / name).rglob("*.gz")):
        kind = "rt" if "realtime" in path.name else "std"
        hour = path.name.split(".")[-3]  # DIST.[realtime.]YYYY-MM-DD-HH.UNIQUE.gz
        out[f"{kind}:{hour}"] = gzip.decompress(path.read_bytes()).decode().splitlines()
    return out


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_chunked_flush_writes_the_same_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    rows = _rows(1300)  # ~21 minutes of rows from 11:53: two hours
    monkeypatch.setattr(logsink, "_ENCODE_CHUNK", 10**9)
    whole = _written(tmp_path, "whole", rows)
    monkeypatch.setattr(logsink, "_ENCODE_CHUNK", chunk)
    chunked = _written(tmp_path, f"chunk{chunk}", rows)
    assert sorted(whole) == ["rt:2025-12-01-11", "rt:2025-12-01-12", "std:2025-12-01-11", "std:2025-12-01-12"]
    assert chunked == whole
    assert sum(len(v) for k, v in whole.items() if k.startswith("rt")) == len(rows)
