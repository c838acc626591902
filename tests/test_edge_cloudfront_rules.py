"""The edge follows CloudFront's cache rules (edgeproof.cloudfront), each against a real edge process
and a real origin on 127.0.0.1: RefreshHit from the tier above, error caching per status, an expired
copy served on a 5xx, origin attempts and response timeouts with failover (HTTP and store primaries),
a viewer that hangs up, and real-time logs read back with cs-accept."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _edge_helpers import EdgeProc, HungServer, ScriptedOrigin, get, start_edge
from edgeproof.analytics.reader import read_logs


@pytest.fixture(scope="module")
def origin() -> Iterator[ScriptedOrigin]:
    with ScriptedOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def edge(origin: ScriptedOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProc]:
    # 9 POPs: LHR61-C2 and CDG50-C1 share the eu-west-2 regional edge cache (default tier: regional)
    e = start_edge(tmp_path_factory.mktemp("rules"), f"-,{origin.url}", "--pops", "9", "--error-ttl", "2")
    yield e
    e.stop()


def _rows(log_dir: Path) -> list[dict[str, object]]:
    stream = read_logs(str(log_dir))
    rows = stream.read_all().to_pylist()
    assert stream.bad_lines == 0, stream.bad_line_examples
    return rows


def _row(edge: EdgeProc, request_id: str) -> dict[str, object]:
    edge.admin("/flush", "POST")
    return next(r for r in _rows(edge.log_dir) if r["x_edge_request_id"] == request_id)


def test_refresh_hit_from_a_fresh_copy_in_the_regional_cache(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/rh.jpg?cc=max-age%3D1"
    assert get(edge.port, target, pop="LHR61-C2").headers["x-cache"] == "Miss from cloudfront"
    time.sleep(1.3)  # both the LHR POP's copy and the REC's are expired now
    # CDG (same REC) has no copy; the REC revalidates with the origin (304): RefreshHit
    cdg = get(edge.port, target, pop="CDG50-C1")
    assert cdg.headers["x-cache"] == "RefreshHit from cloudfront"
    assert origin.counts[target] == 2 and origin.conditional[-1] == '"v1"'
    # LHR's expired copy is confirmed by the REC's fresh one, without the origin: RefreshHit too
    lhr = get(edge.port, target, pop="LHR61-C2")
    assert lhr.headers["x-cache"] == "RefreshHit from cloudfront" and lhr.body == cdg.body
    assert origin.counts[target] == 2
    row = _row(edge, lhr.headers["x-amz-cf-id"])
    assert (row["x_edge_result_type"], row["x_edge_detailed_result_type"]) == ("RefreshHit", "RefreshHit")


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("status=404", True),                        # always cached (HTTPStatusCodes.html)
        ("status=503", True),
        ("status=500&cc=no-store", True),            # no-store ignored for 500 (custom-error-pages-expiration.html)
        ("status=404&cc=no-store", False),           # ... honoured for 404, 410, 414, 501
        ("status=501&cc=private", False),
        ("status=403", False),                       # 400/403/405/412/415: only with max-age / s-maxage
        ("status=403&cc=max-age%3D60", True),
        ("status=400&cc=s-maxage%3D60", True),
        ("status=416", False),                       # never cached
        ("status=429", False),
    ],
)
def test_error_caching_per_status(edge: EdgeProc, origin: ScriptedOrigin, query: str, cached: bool) -> None:
    target = f"/images/err-{query.replace('=', '').replace('&', '-').replace('%', '')}.jpg?{query}"
    first = get(edge.port, target, pop="IAD89-C1")
    again = get(edge.port, target, pop="IAD89-C1")
    assert first.status == again.status == int(query.split("&")[0].split("=")[1])
    assert again.headers["x-cache"] == "Error from cloudfront"
    assert origin.counts[target] == (1 if cached else 2)


def test_error_cached_for_the_greater_of_max_age_and_the_minimum(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/err-short.jpg?status=500&cc=max-age%3D0"  # max-age below --error-ttl 2: 2 s
    get(edge.port, target, pop="SEA19-C1")
    time.sleep(0.6)
    get(edge.port, target, pop="SEA19-C1")
    assert origin.counts[target] == 1
    time.sleep(2.0)
    get(edge.port, target, pop="SEA19-C1")
    assert origin.counts[target] == 2


def test_expired_copy_served_when_the_origin_answers_5xx(edge: EdgeProc, origin: ScriptedOrigin) -> None:
    target = "/images/stale.jpg?cc=max-age%3D1"
    first = get(edge.port, target, pop="NRT57-P2")
    assert first.status == 200
    time.sleep(1.3)
    origin.force[target] = 502  # the origin breaks
    stale = get(edge.port, target, pop="NRT57-P2")
    assert stale.status == 200 and stale.body == first.body
    assert stale.headers["x-cache"] == "RefreshHit from cloudfront"
    assert origin.counts[target] == 2
    # kept for the error-caching minimum TTL (2 s): served without asking the origin
    assert get(edge.port, target, pop="NRT57-P2").headers["x-cache"] == "Hit from cloudfront"
    assert origin.counts[target] == 2
    time.sleep(2.3)
    origin.force[target] = 404  # a 4xx is returned to the viewer, not the expired copy
    gone = get(edge.port, target, pop="NRT57-P2")
    assert gone.status == 404 and gone.headers["x-cache"] == "Error from cloudfront"


def test_hung_http_primary_fails_over_after_attempts_of_the_response_timeout(
    origin: ScriptedOrigin, tmp_path: Path
) -> None:
    with HungServer() as hung:
        edge = start_edge(tmp_path, f"{hung.url}/bucket,{origin.url}", "--pops", "1",
                          "--origin-response-timeout", "0.3", "--origin-connection-attempts", "2")
        try:
            reply = get(edge.port, "/images/hung.jpg?x=1")
            assert reply.status == 200 and reply.body.startswith(f"origin {origin.port}".encode())
            assert reply.headers["x-cache"] == "Miss from cloudfront"
            assert hung.accepted == 2  # two attempts, each dropped after the response timeout
            st = edge.stats()["origin"]
            assert (st["primary"], st["secondary"], st["failovers"], st["retries"]) == (2, 1, 1, 1)
        finally:
            edge.stop()


def test_connection_attempts_on_a_refusing_origin(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead = s.getsockname()[1]  # bound, then closed: connections to it are refused
    for attempts in (1, 3):
        edge = start_edge(tmp_path, f"-,http://127.0.0.1:{dead}", "--pops", "1",
                          "--origin-connection-attempts", str(attempts))
        try:
            reply = get(edge.port, f"/images/refused{attempts}.jpg")
            assert reply.status == 502 and reply.headers["x-cache"] == "Error from cloudfront"
            st = edge.stats()["origin"]
            assert (st["secondary"], st["retries"]) == (attempts, attempts - 1)
        finally:
            edge.stop()
        row = next(r for r in _rows(edge.log_dir) if r["cs_uri_stem"] == f"/images/refused{attempts}.jpg")
        assert row["x_edge_detailed_result_type"] == "OriginConnectError"


def test_hung_store_primary_fails_over_to_the_transformer(origin: ScriptedOrigin, tmp_path: Path) -> None:
    store = tmp_path / "derivatives"
    (store / "images").mkdir(parents=True)
    fifo = store / "images" / "fifo.jpg"
    os.mkfifo(fifo)  # reading it blocks until a writer comes: a store read that never returns
    edge = start_edge(tmp_path, f"{store},{origin.url}", "--pops", "1",
                      "--origin-response-timeout", "0.3", "--origin-connection-attempts", "1")
    try:
        reply = get(edge.port, "/images/fifo.jpg")
        assert reply.status == 200 and reply.body.startswith(f"origin {origin.port}".encode())
        st = edge.stats()["origin"]
        assert (st["primary"], st["secondary"], st["failovers"]) == (1, 1, 1)
    finally:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # release the blocked store read
        os.close(fd)
        edge.stop()


def _hang_up(port: int, target: str, pop: str) -> None:
    """Send a request and close the connection before the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nX-Edge-Pop: {pop}\r\n\r\n".encode())
        time.sleep(0.1)  # the edge has started the origin fetch


@pytest.mark.parametrize(("tier", "second"), [("pop", "Miss from cloudfront"), ("regional", "Hit from cloudfront")])
def test_viewer_that_hangs_up_is_logged_once_and_not_cached_at_the_pop(
    origin: ScriptedOrigin, tmp_path: Path, tier: str, second: str
) -> None:
    target = f"/images/hangup-{tier}.jpg?delay=0.5"
    edge = start_edge(tmp_path, f"-,{origin.url}", "--pops", "1", "--tier", tier)
    try:
        _hang_up(edge.port, target, "0")
        deadline = time.monotonic() + 10
        while edge.stats()["requests"] < 1:
            assert time.monotonic() < deadline, "the hung-up request was never logged"
            time.sleep(0.1)
        # "Canceled requests" (RequestAndResponseBehaviorCustomOrigin.html): the POP does not cache
        # it; the regional cache above, whose requester (the POP) stayed, does
        reply = get(edge.port, target, pop=0)
        assert reply.status == 200 and reply.headers["x-cache"] == second
        assert origin.counts[target] == (2 if tier == "pop" else 1)
    finally:
        edge.stop()
    rows = [r for r in _rows(edge.log_dir) if r["cs_uri_stem"] == target.split("?")[0]]
    hung = [r for r in rows if r["sc_status"] == 0]
    assert len(rows) == 2 and len(hung) == 1  # one line for the hung-up request, one for the next
    assert (hung[0]["x_edge_result_type"], hung[0]["x_edge_response_result_type"],
            hung[0]["x_edge_detailed_result_type"], hung[0]["sc_bytes"]) == ("Error", "Error", "ClientHungUpRequest", 0)


def test_realtime_logs_with_the_viewers_accept(origin: ScriptedOrigin, tmp_path: Path) -> None:
    rt_dir = tmp_path / "realtime"
    edge = start_edge(tmp_path, f"-,{origin.url}", "--pops", "2", "--realtime-logs", str(rt_dir),
                      "--distribution-id", "E2REALTIME", "--log-flush-interval", "3600")
    accept = "image/avif,image/webp,image/apng,*/*;q=0.8"
    ua = "Mozilla/5.0 (Test) Safari/605.1.15"
    sent = []
    try:
        for i in range(6):
            extra = f"Accept: {accept}\r\nUser-Agent: {ua}\r\nAccept-Encoding: gzip\r\n" if i % 2 == 0 else ""
            sent.append((i % 2 == 0, get(edge.port, f"/images/rt{i % 3}.jpg?w={i % 3}", pop=i % 2, extra=extra)))
    finally:
        assert edge.stop() == 0  # an hour's flush interval: only shutdown writes the records
    files = sorted(rt_dir.glob("E2REALTIME.realtime.*.gz"))
    assert len(files) == 1
    line = gzip.decompress(files[0].read_bytes()).decode().splitlines()[0]
    assert not line.startswith("#") and len(line.split("\t")) == 40  # headerless, 40 canonical fields
    realtime = {r["x_edge_request_id"]: r for r in _rows(rt_dir)}
    standard = {r["x_edge_request_id"]: r for r in _rows(edge.log_dir)}
    assert set(realtime) == set(standard) and len(realtime) == 6
    for with_accept, reply in sent:
        rt = realtime[reply.headers["x-amz-cf-id"]]
        std = standard[reply.headers["x-amz-cf-id"]]
        assert rt["cs_accept"] == (accept if with_accept else None)
        assert rt["cs_user_agent"] == (ua if with_accept else None)
        assert rt["x_edge_location"] == reply.headers["x-amz-cf-pop"]
        assert rt["x_edge_result_type"] == reply.headers["x-cache"].split(" ")[0]
        assert rt["sc_content_type"] == "image/jpeg" and rt["sc_status"] == 200
        # real-time: epoch seconds with milliseconds; standard: whole seconds
        assert rt["timestamp"].replace(microsecond=0) == std["timestamp"]  # type: ignore[union-attr]
        for col in ("sc_bytes", "cs_uri_stem", "cs_uri_query", "x_edge_detailed_result_type",
                    "x_edge_response_result_type", "time_taken", "time_to_first_byte", "c_ip", "c_port",
                    "sc_content_len", "cs_protocol_version"):
            assert rt[col] == std[col], col
        assert std["cs_accept"] is None  # the standard log has no such field


def test_collapsed_viewers_keep_the_pop_copy_when_one_hangs_up(origin: ScriptedOrigin, tmp_path: Path) -> None:
    target = "/images/collapse-hangup.jpg?delay=0.6"
    edge = start_edge(tmp_path, f"-,{origin.url}", "--pops", "1", "--tier", "pop")
    try:
        hang = threading.Thread(target=_hang_up, args=(edge.port, target, "0"))
        hang.start()
        time.sleep(0.05)
        stayed = get(edge.port, target, pop=0)  # collapses onto the hung-up viewer's fetch
        hang.join(10)
        assert stayed.status == 200
        assert get(edge.port, target, pop=0).headers["x-cache"] == "Hit from cloudfront"
        assert origin.counts[target] == 1
    finally:
        edge.stop()
