"""The edge emulator end to end: `edgeproof edge serve` as a subprocess in front of a real HTTP origin.

The origin here is a scriptable aiohttp server (its answers follow the query: status, Cache-Control,
Retry-After, delay) so that TTLs, errors and revalidation can be driven; tests with the real
transformer are in test_edge_origin.py.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from _edge_helpers import ETAG, EdgeProc, ScriptedOrigin, get, raw_request, start_edge
from edgeproof.analytics.reader import read_logs


@pytest.fixture(scope="module")
def origin() -> Iterator[ScriptedOrigin]:
    with ScriptedOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def edge(origin: ScriptedOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProc]:
    tmp = tmp_path_factory.mktemp("edge")
    e = start_edge(tmp, f"-,{origin.url}", "--pops", "3", "--error-ttl", "2", "--domain", "d1test.cloudfront.net")
    yield e
    e.stop()


def _rows(stream: object) -> list[dict[str, object]]:
    """Every row a LogStream read (asserting it found no bad line)."""
    table = stream.read_all()  # type: ignore[attr-defined]
    assert stream.bad_lines == 0, stream.bad_line_examples  # type: ignore[attr-defined]
    return table.to_pylist()


def _word(reply_x_cache: str) -> str:
    return reply_x_cache.split(" ", 1)[0]


def test_hit_after_miss_per_pop_not_across_pops(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/a.jpg?w=1&t=perpop"
    first = get(edge.port, target, pop=0)
    assert first.status == 200 and _word(first.headers["x-cache"]) == "Miss"
    assert first.headers["x-amz-cf-pop"] == "IAD89-C1"
    assert first.body == f"origin {origin.port} {target}".encode()
    second = get(edge.port, target, pop=0)
    assert second.headers["x-cache"] == "Hit from cloudfront" and second.body == first.body
    assert second.headers["x-amz-cf-id"] != first.headers["x-amz-cf-id"]
    assert len(second.headers["x-amz-cf-id"]) == 56 and second.headers["via"].endswith("(CloudFront)")
    assert int(second.headers["age"]) >= 0
    # another POP has its own cache: a miss there, then a hit (by POP id, and by index modulo N)
    other = get(edge.port, target, pop="FRA56-P5")
    assert _word(other.headers["x-cache"]) == "Miss" and other.headers["x-amz-cf-pop"] == "FRA56-P5"
    assert _word(get(edge.port, target, pop=4).headers["x-cache"]) == "Hit"  # 4 % 3 == 1 → FRA56-P5
    assert origin.counts[target] == 2
    # without X-Edge-Pop the client address picks one POP, always the same
    pops = {get(edge.port, target).headers["x-amz-cf-pop"] for _ in range(3)}
    assert len(pops) == 1
    stats = edge.stats()
    assert stats["pops"]["IAD89-C1"]["results"]["Hit"] >= 1 and stats["pops"]["IAD89-C1"]["hits"] >= 1
    assert 0 < stats["pops"]["FRA56-P5"]["hit_rate"] < 1
    assert stats["origin"]["secondary"] >= 2


def test_head_and_conditional_viewer_request(edge: EdgeProc) -> None:
    target = "/images/head.jpg?t=head"
    get(edge.port, target, pop=0)
    head = raw_request(edge.port, f"HEAD {target} HTTP/1.1\r\nHost: x\r\nX-Edge-Pop: 0\r\n\r\n".encode())
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0
    cond = get(edge.port, target, pop=0, extra=f"If-None-Match: {ETAG}\r\n")
    assert cond.status == 304 and cond.body == b"" and cond.headers["x-cache"] == "Hit from cloudfront"


def test_ttl_expiry_then_refresh_hit(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/ttl.jpg?cc=max-age%3D2"
    assert _word(get(edge.port, target, pop=2).headers["x-cache"]) == "Miss"
    time.sleep(2.3)  # past the 2 s TTL
    refreshed = get(edge.port, target, pop=2)
    assert refreshed.headers["x-cache"] == "RefreshHit from cloudfront"
    edge.admin("/flush", "POST")
    row = next(r for r in _rows(read_logs(str(edge.log_dir)))
               if r["x_edge_request_id"] == refreshed.headers["x-amz-cf-id"])
    assert (row["x_edge_result_type"], row["x_edge_detailed_result_type"]) == ("RefreshHit", "RefreshHit")
    assert refreshed.status == 200 and refreshed.body.startswith(b"origin ")
    assert origin.conditional[-1] == ETAG  # revalidated with If-None-Match (answered 304)
    assert origin.counts[target] == 2
    # fresh again (a RefreshHit only if this machine stalled for 2 s in between)
    assert _word(get(edge.port, target, pop=2).headers["x-cache"]) in ("Hit", "RefreshHit")


def test_no_store_is_not_cached(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/nostore.jpg?cc=no-store"
    for _ in range(3):
        assert _word(get(edge.port, target, pop=0).headers["x-cache"]) == "Miss"
    assert origin.counts[target] == 3


def test_errors_cached_briefly(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/err.jpg?status=500"  # 500 is always cached, for the error-caching minimum TTL
    first = get(edge.port, target, pop=1)
    assert first.status == 500 and first.headers["x-cache"] == "Error from cloudfront"
    again = get(edge.port, target, pop=1)
    assert again.status == 500 and again.headers["x-cache"] == "Error from cloudfront"
    assert origin.counts[target] == 1  # served from the error cache (--error-ttl 2)
    time.sleep(2.3)
    get(edge.port, target, pop=1)
    assert origin.counts[target] == 2


def test_503_retry_after_passed_to_viewer(edge: EdgeProc) -> None:
    reply = get(edge.port, "/images/busy.jpg?status=503&retry=7&cc=no-store", pop=0)
    assert reply.status == 503 and reply.headers["retry-after"] == "7"
    assert reply.headers["x-cache"] == "Error from cloudfront"


def test_request_collapsing(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/cold.jpg?delay=0.5"

    async def burst() -> list[tuple[int, str]]:
        async with aiohttp.ClientSession() as s:
            async def one() -> tuple[int, str]:
                async with s.get(edge.url + target, headers={"X-Edge-Pop": "0"}) as r:
                    await r.read()
                    return r.status, r.headers["X-Cache"]
            return await asyncio.gather(*(one() for _ in range(100)))

    before = edge.stats()["collapsed"]
    results = asyncio.run(burst())
    assert all(status == 200 for status, _ in results)
    assert origin.counts[target] == 1
    assert sum(1 for _, xc in results if xc.startswith("Miss")) == 1
    # the others waited for that one fetch (or, if they arrived after it, hit the cache)
    assert edge.stats()["collapsed"] - before >= 1


def test_malformed_requests_get_status_and_log_line(edge: EdgeProc) -> None:
    bad_pct = get(edge.port, "/images/a.jpg?w=%zz", pop=0)
    assert bad_pct.status == 400 and b"percent" in bad_pct.body
    huge = get(edge.port, "/images/a.jpg?q=" + "x" * 9000, pop=0)
    assert huge.status == 414
    post = raw_request(edge.port, b"POST /images/a.jpg HTTP/1.1\r\nHost: x\r\nX-Edge-Pop: 0\r\n"
                                  b"Content-Length: 3\r\nConnection: close\r\n\r\nabc")
    assert post.status == 403 and post.headers["x-cache"] == "Error from cloudfront"
    big_head = raw_request(edge.port, b"GET / HTTP/1.1\r\nX-Junk: " + b"j" * 21000 + b"\r\n\r\n")
    assert big_head.status == 494
    garbage = raw_request(edge.port, b"BLAH\r\n\r\n")
    assert garbage.status == 400
    refused = get(edge.port, "/images/x.jpg/w=abc,f=webp?", pop=0)  # canonical-looking but malformed
    assert refused.status in (200, 400, 404, 500)  # passthrough forwards it; the origin decides
    code, body = edge.admin("/flush", "POST")
    assert code == 200
    rows = _rows(read_logs(str(edge.log_dir)))
    details = {(r["sc_status"], r["x_edge_detailed_result_type"], r["cs_method"]) for r in rows}
    assert (400, "InvalidRequest", "GET") in details
    assert (414, "InvalidRequest", "GET") in details
    assert (403, "InvalidRequestMethod", "POST") in details
    assert (494, "InvalidRequestHeader", "GET") in details
    assert (400, "InvalidRequest", "-") in details or (400, "InvalidRequest", None) in details


def test_strategy_refusal_is_a_function_generated_400(origin: ScriptedOrigin, tmp_path: Path) -> None:
    edge = start_edge(tmp_path, f"-,{origin.url}", "--strategy", "canonical", "--pops", "1")
    try:
        reply = get(edge.port, "/images/a.jpg?w=abc", pop=0)
        assert reply.status == 400 and reply.headers["x-cache"].startswith("FunctionGeneratedResponse")
        assert b'"error"' in reply.body and b'"detail"' in reply.body
        ok = get(edge.port, "/images/a.jpg?w=640&format=webp", pop=0)
        assert ok.status == 200  # the origin got the canonical request
        assert ok.body.endswith(b"/images/a.jpg/w=640,h=0,fit=cover,q=80,f=webp")
    finally:
        assert edge.stop() == 0


def test_admin_backends_round_robin_add_remove(origin: ScriptedOrigin, tmp_path: Path) -> None:
    with ScriptedOrigin() as second:
        edge = start_edge(tmp_path, f"-,{origin.url}", "--pops", "1")
        try:
            code, body = edge.admin("/backends", "POST", {"url": second.url})
            assert code == 201 and body["backends"] == [origin.url, second.url]
            seen = {get(edge.port, f"/rr/{i}.jpg?cc=no-store").body.split(b" ")[1] for i in range(4)}
            assert seen == {str(origin.port).encode(), str(second.port).encode()}
            code, body = edge.admin(f"/backends?url={origin.url}", "DELETE")
            assert code == 200 and body["backends"] == [second.url]
            assert {get(edge.port, f"/rr2/{i}.jpg").body.split(b" ")[1] for i in range(3)} == {
                str(second.port).encode()}
            assert edge.admin("/backends?url=http://127.0.0.1:1", "DELETE")[0] == 404
            assert edge.admin("/backends", "POST", {"url": "ftp://x"})[0] == 400
            # no backend left: a connection-level error, logged as such
            edge.admin("/backends", "PUT", {"backends": []})
            gone = get(edge.port, "/rr3/a.jpg")
            assert gone.status == 502 and gone.headers["x-cache"] == "Error from cloudfront"
            # a backend that refuses connections: 502 OriginConnectError …
            edge.admin("/backends", "PUT", {"backends": ["http://127.0.0.1:1"]})
            assert get(edge.port, "/rr4/a.jpg").status == 502
            # … unless another backend is there: tried once more on the next one, like an ALB
            edge.admin("/backends", "PUT", {"backends": ["http://127.0.0.1:1", second.url]})
            assert all(get(edge.port, f"/rr5/{i}.jpg").status == 200 for i in range(3))
            assert edge.admin("/readyz")[0] == 200
            assert edge.admin("/invalidate", "POST", {"paths": ["/*"]})[1]["dropped"] >= 1
        finally:
            edge.stop()
        rows = _rows(read_logs(str(edge.log_dir)))
        assert "OriginConnectError" in {r["x_edge_detailed_result_type"] for r in rows}


def test_failover_to_secondary_and_primary_store(origin: ScriptedOrigin, tmp_path: Path) -> None:
    store = tmp_path / "derivatives"
    (store / "images").mkdir(parents=True)
    (store / "images" / "stored.jpg").write_bytes(b"from the store")
    edge = start_edge(tmp_path, f"{store},{origin.url}", "--pops", "2")
    try:
        stored = get(edge.port, "/images/stored.jpg?any=1", pop=0)
        assert stored.status == 200 and stored.body == b"from the store"
        assert stored.headers["content-type"] == "image/jpeg" and stored.headers["etag"].startswith('"')
        failed_over = get(edge.port, "/images/missing.jpg", pop=0)
        assert failed_over.status == 200 and failed_over.body.startswith(b"origin ")
        st = edge.stats()["origin"]
        assert st["primary"] == 2 and st["secondary"] == 1 and st["failovers"] == 1
    finally:
        edge.stop()
    # an unreachable HTTP primary fails over too (connection error)
    edge = start_edge(tmp_path, f"http://127.0.0.1:1/bucket,{origin.url}", "--pops", "1")
    try:
        assert get(edge.port, "/images/conn.jpg").body.startswith(b"origin ")
    finally:
        edge.stop()


def test_shield_hit_is_a_miss_detailed_origin_shield_hit(origin: ScriptedOrigin, tmp_path: Path) -> None:
    # IAD89-C1 and FRA56-P5 are in different regions: the second request passes its own REC and is
    # answered by the Origin Shield (standard-logs-reference.html: x-edge-result-type Miss,
    # x-edge-detailed-result-type OriginShieldHit)
    edge = start_edge(tmp_path, f"-,{origin.url}", "--pops", "3", "--tier", "shield")
    try:
        target = "/images/shield.jpg?t=1"
        assert get(edge.port, target, pop=0).headers["x-cache"] == "Miss from cloudfront"
        assert get(edge.port, target, pop=1).headers["x-cache"] == "Miss from cloudfront"  # from the shield
        assert origin.counts[target] == 1
        stats = edge.stats()
        assert stats["results"] == {"Miss": 2} and stats["detailed"] == {"Miss": 1, "OriginShieldHit": 1}
        assert stats["hits"] == 0 and stats["misses"] == 2  # edgeproof.analytics.metrics.classify: both misses
    finally:
        edge.stop()
    rows = _rows(read_logs(str(edge.log_dir)))
    assert [(r["x_edge_result_type"], r["x_edge_response_result_type"], r["x_edge_detailed_result_type"])
            for r in rows] == [("Miss", "Miss", "Miss"), ("Miss", "Miss", "OriginShieldHit")]


def test_sigterm_flushes_logs_and_round_trip(origin: ScriptedOrigin, tmp_path: Path) -> None:
    edge = start_edge(tmp_path, f"-,{origin.url}", "--pops", "2", "--log-flush-interval", "3600",
                      "--domain", "d1test.cloudfront.net", "--distribution-id", "E2TESTDIST")
    sent = []
    ua = "Mozilla/5.0 (X11; Linux) Test/1.0 \"quoted\""
    for i in range(30):
        target = f"/images/rt{i % 4}.jpg?w={i % 4}&x=a%2Cb"
        req = (f"GET {target} HTTP/1.1\r\nHost: shop.example\r\nX-Edge-Pop: {i % 2}\r\nUser-Agent: {ua}\r\n"
               f"Referer: http://ref.example/p?q=1\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
        t0 = time.time()
        reply = raw_request(edge.port, req.encode())
        sent.append((target, len(req), reply, t0, time.time()))
    assert edge.stop(signal.SIGTERM) == 0  # the flush interval is an hour: only shutdown writes them
    files = sorted(edge.log_dir.glob("E2TESTDIST.*.gz"))
    assert len(files) >= 1 and all(len(f.name.split(".")) == 4 for f in files)
    rows = _rows(read_logs([str(f) for f in files]))
    assert len(rows) == 30
    by_id = {r["x_edge_request_id"]: r for r in rows}
    for target, req_len, reply, t0, t1 in sent:
        row = by_id[reply.headers["x-amz-cf-id"]]
        path, _, query = target.partition("?")
        result = reply.headers["x-cache"].split(" ")[0]
        expected = {
            "x_edge_location": reply.headers["x-amz-cf-pop"], "pop": reply.headers["x-amz-cf-pop"][:3],
            "sc_bytes": reply.raw_len, "c_ip": "127.0.0.1", "cs_method": "GET",
            "cs_host": "d1test.cloudfront.net", "cs_uri_stem": path, "sc_status": 200,
            "cs_referer": "http://ref.example/p?q=1", "cs_user_agent": ua, "cs_uri_query": query,
            "cs_cookie": None, "x_edge_result_type": result, "x_host_header": "shop.example",
            "cs_protocol": "http", "cs_bytes": req_len, "x_forwarded_for": "203.0.113.9",
            "ssl_protocol": None, "ssl_cipher": None, "x_edge_response_result_type": result,
            "cs_protocol_version": "HTTP/1.1", "fle_status": None, "fle_encrypted_fields": None,
            "x_edge_detailed_result_type": result, "sc_content_type": "image/jpeg",
            "sc_content_len": len(reply.body), "sc_range_start": None, "sc_range_end": None,
            "cs_accept": None,  # a standard log has no cs-accept (the real-time log does)
        }
        for col, value in expected.items():
            assert row[col] == value, (col, row[col], value)
        # the log line's times lie inside the client's own view of the request (time-taken in ms, hence
        # 1 ms; the standard log's date and time are whole seconds)
        assert 0 <= row["time_to_first_byte"] <= row["time_taken"] <= (t1 - t0) + 0.001
        assert int(t0) <= row["timestamp"].timestamp() <= t1
        assert 1024 < row["c_port"] < 65536
    # every column of the schema is accounted for
    assert set(expected) | {"timestamp", "time_taken", "time_to_first_byte", "c_port", "x_edge_request_id",
                            "cs_user_agent_raw", "c_country", "asn", "distribution_id"} >= set(rows[0])
