"""Edge policies that need their own settings: the regional tier (CloudFront's default), origin
timeouts, CapacityExceeded, and the log sink's hourly files (rotation) read back by the analytics reader."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from _edge_helpers import EdgeProc, ScriptedOrigin, get, start_edge
from edgeproof.analytics.reader import read_logs
from edgeproof.edge import ROW_COLUMNS, LogSink


@pytest.fixture(scope="module")
def origin() -> Iterator[ScriptedOrigin]:
    with ScriptedOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def edge(origin: ScriptedOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProc]:
    # no --tier: regional edge caches are on by default, as in every CloudFront distribution
    e = start_edge(tmp_path_factory.mktemp("edge"), f"none,{origin.url}", "--pops", "9",
                   "--origin-read-timeout", "0.5", "--max-origin-inflight", "1")
    yield e
    e.stop()


def test_regional_tier_is_shared_within_a_region(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/regional.jpg?t=1"
    first = get(edge.port, target, pop="LHR61-C2")
    assert first.headers["x-cache"] == "Miss from cloudfront"
    # CDG50-C1 uses the same regional edge cache (eu-west-2, edgeproof.cloudfront.region_of): a POP miss
    # answered by the REC, which the viewer's log calls a Hit (standard-logs-reference.html)
    second = get(edge.port, target, pop="CDG50-C1")
    assert second.headers["x-cache"] == "Hit from cloudfront" and second.body == first.body
    assert origin.counts[target] == 1
    assert get(edge.port, target, pop="CDG50-C1").headers["x-cache"] == "Hit from cloudfront"  # its POP now
    assert get(edge.port, target, pop="FRA56-P5").headers["x-cache"] == "Miss from cloudfront"
    assert origin.counts[target] == 2  # eu-central-1 has its own regional cache
    tiers = edge.stats()["tiers"]
    assert tiers["eu-west-2"]["objects"] >= 1 and tiers["eu-central-1"]["objects"] >= 1
    edge.admin("/flush", "POST")
    rows = {r["x_edge_request_id"]: r for r in read_logs(str(edge.log_dir)).read_all().to_pylist()}
    row = rows[second.headers["x-amz-cf-id"]]
    assert (row["x_edge_location"], row["x_edge_result_type"], row["x_edge_detailed_result_type"]) == (
        "CDG50-C1", "Hit", "Hit")


def test_origin_timeout_is_a_504(edge: EdgeProc) -> None:
    reply = get(edge.port, "/images/slow.jpg?delay=1.5&cc=no-store", pop=0)
    assert reply.status == 504 and reply.headers["x-cache"] == "Error from cloudfront"


def test_capacity_exceeded_when_too_many_origin_fetches(edge: EdgeProc) -> None:
    async def two() -> list[tuple[int, str]]:
        async with aiohttp.ClientSession() as s:
            async def one(i: int, delay: float) -> tuple[int, str]:
                await asyncio.sleep(delay)
                async with s.get(f"{edge.url}/images/cap{i}.jpg?delay=0.4", headers={"X-Edge-Pop": "0"}) as r:
                    await r.read()
                    return r.status, r.headers["X-Cache"]
            return await asyncio.gather(one(1, 0), one(2, 0.1))

    replies = sorted(asyncio.run(two()))
    assert replies == [(200, "Miss from cloudfront"), (503, "Error from cloudfront")]
    edge.admin("/flush", "POST")
    rows = read_logs(str(edge.log_dir)).read_all().to_pylist()
    cap = [r for r in rows if r["cs_uri_stem"] in ("/images/cap1.jpg", "/images/cap2.jpg")]
    assert sorted((r["x_edge_result_type"], r["sc_status"]) for r in cap) == [("CapacityExceeded", 503),
                                                                              ("Miss", 200)]


def _values(ts_ms: float, rid: str) -> tuple[object, ...]:
    row = {c: None for c in ROW_COLUMNS}
    row.update(timestamp=ts_ms, x_edge_location="IAD89-C1", sc_bytes=10, c_ip="127.0.0.1", cs_method="GET",
               cs_host="d1.cloudfront.net", cs_uri_stem="/a b.jpg", sc_status=200, x_edge_result_type="Hit",
               x_edge_request_id=rid, cs_protocol="http", cs_bytes=5, time_taken=0.0014,
               x_edge_response_result_type="Hit", cs_protocol_version="HTTP/1.1", c_port=4000,
               time_to_first_byte=0.0004, x_edge_detailed_result_type="Hit")
    return tuple(row[c] for c in ROW_COLUMNS)


def test_log_sink_hourly_files_and_flushes(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, "E2HOURS", flush_interval=3600)
    hour = 1_763_812_800_000  # 2025-11-22 12:00:00 UTC
    sink.add(_values(hour + 1_000, "r1"))
    sink.add(_values(hour + 3_600_000 + 5, "r2"))  # the next hour: another file
    assert sink.flush() == 2
    sink.add(_values(hour + 2_000, "r3"))  # a late line for the first hour: appended as a new gzip member
    sink.close()
    files = sorted(tmp_path.glob("E2HOURS.*.gz"))
    assert [f.name.split(".")[1] for f in files] == ["2025-11-22-12", "2025-11-22-13"]
    text = gzip.decompress(files[0].read_bytes()).decode()
    assert text.count("#Version: 1.0") == 1 and text.count("\n") == 4
    rows = read_logs([str(f) for f in files]).read_all().to_pylist()
    assert sorted(r["x_edge_request_id"] for r in rows) == ["r1", "r2", "r3"]
    r1 = next(r for r in rows if r["x_edge_request_id"] == "r1")
    assert r1["cs_uri_stem"] == "/a b.jpg" and r1["time_taken"] == 0.001 and r1["time_to_first_byte"] == 0.0
    assert r1["timestamp"].timestamp() == (hour + 1_000) / 1000


def test_keep_alive_and_pipelined_requests_answered_in_order(edge: EdgeProc) -> None:
    import socket

    reqs = b"".join(
        f"GET /images/pipe{i}.jpg?t=1 HTTP/1.1\r\nHost: x\r\nX-Edge-Pop: 0\r\n\r\n".encode() for i in range(3)
    )
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as s:
        s.sendall(reqs)  # three requests in one write; each a miss that needs the origin
        data = b""
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"/images/pipe2.jpg?t=1"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        s.sendall(b"GET /images/pipe0.jpg?t=1 HTTP/1.1\r\nHost: x\r\nX-Edge-Pop: 0\r\nConnection: close\r\n\r\n")
        tail = b""
        while chunk := s.recv(65536):
            tail += chunk
    bodies = [part.split(b"\r\n\r\n", 1)[1][:40] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert [b.rsplit(b" ", 1)[1] for b in bodies] == [f"/images/pipe{i}.jpg?t=1".encode() for i in range(3)]
    assert b"X-Cache: Hit from cloudfront" in tail and b"Connection: close" in tail


def test_sigterm_answers_and_logs_requests_waiting_for_the_origin(origin: ScriptedOrigin, tmp_path: Path) -> None:
    import threading
    import time

    e = start_edge(tmp_path, f"none,{origin.url}", "--pops", "1", "--log-flush-interval", "3600")
    replies = []
    t = threading.Thread(target=lambda: replies.append(get(e.port, "/images/drain.jpg?delay=1")))
    t.start()
    time.sleep(0.3)  # the request is now waiting for the origin
    assert e.stop() == 0
    t.join(10)
    assert [r.status for r in replies] == [200]
    rows = read_logs(str(e.log_dir)).read_all().to_pylist()
    assert [(r["cs_uri_stem"], r["sc_status"], r["x_edge_result_type"]) for r in rows] == [
        ("/images/drain.jpg", 200, "Miss")]
