"""The edge's limits, each against a real `edgeproof edge serve` process and a real origin on 127.0.0.1:
SIGTERM under load drains every request (answered and logged one to one, standard and real-time
logs), the drain limit answers the rest 503 AbortedOrigin, slow viewers get a 408 (header timeout)
or are closed (idle keep-alive timeout), and /metrics is valid Prometheus text with escaped labels."""

from __future__ import annotations

import http.client
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _edge_helpers import ScriptedOrigin, get, start_edge
from edgeproof.analytics.reader import read_logs
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def origin() -> Iterator[ScriptedOrigin]:
    with ScriptedOrigin() as o:
        yield o


def _rows(log_dir: Path) -> list[dict[str, object]]:
    stream = read_logs(str(log_dir))
    rows = stream.read_all().to_pylist()
    assert stream.bad_lines == 0, stream.bad_line_examples
    return rows


@dataclass
class Answers:
    """What the viewers saw: a complete response (status, X-Amz-Cf-Id, headers) per answered request,
    the requests that failed before any response byte (connection refused or reset: the edge never
    got them), and any response cut short (a defect)."""

    answered: list[tuple[int, str, dict[str, str], str]] = field(default_factory=list)
    not_received: int = 0
    broken: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, conn: http.client.HTTPConnection, target: str) -> bool:
        """One GET on a keep-alive connection; False when the connection is unusable now."""
        try:
            conn.request("GET", target, headers={"X-Edge-Pop": "0"})
            resp = conn.getresponse()
        except OSError:  # refused, reset, or closed before a status line (RemoteDisconnected)
            with self.lock:
                self.not_received += 1
            conn.close()
            return False
        try:
            resp.read()
        except (http.client.HTTPException, OSError) as err:
            with self.lock:
                self.broken.append(f"{target}: {type(err).__name__}")
            conn.close()
            return False
        headers = {k.lower(): v for k, v in resp.getheaders()}
        with self.lock:
            self.answered.append((resp.status, headers.get("x-amz-cf-id", ""), headers, target))
        if resp.will_close:
            conn.close()
        return True


def _load(port: int, answers: Answers, stop: threading.Event, worker: int) -> None:
    """Hits on a few warm keys and a fast miss now and then, on one keep-alive connection, until the
    edge refuses connections (it stopped listening) or ``stop``; bounded."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for i in range(4000):
        if stop.is_set():
            break
        target = f"/images/warm{i % 4}.jpg?w=1" if i % 10 else f"/images/cold-{worker}-{i}.jpg?w=1"
        if not answers.fetch(conn, target):
            try:
                probe = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                break  # no longer listening: the drain has started
            probe.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.close()


@pytest.mark.parametrize(
    ("drain_timeout", "delay", "status", "detailed"),
    [("20", 1.0, 200, ["Hit"] * 4 + ["Miss"] * 8), ("0.5", 4.0, 503, ["AbortedOrigin"] * 12)],
    ids=["drained", "drain-limit"],
)
def test_sigterm_under_load_answers_and_logs_every_request(
    origin: ScriptedOrigin, tmp_path: Path, drain_timeout: str, delay: float, status: int, detailed: list[str]
) -> None:
    rt_dir = tmp_path / "realtime"
    edge = start_edge(tmp_path, f"none,{origin.url}", "--pops", "1", "--tier", "pop", "--drain-timeout",
                      drain_timeout, "--realtime-logs", str(rt_dir), "--log-flush-interval", "3600")
    answers = Answers()
    stop = threading.Event()
    slow_keys = [f"/images/slow-{drain_timeout}-{i}.jpg?delay={delay}" for i in range(8)]
    slow_targets = slow_keys + slow_keys[:4]  # 4 of them collapse onto another viewer's fetch
    try:
        for i in range(4):
            assert get(edge.port, f"/images/warm{i}.jpg?w=1", pop=0).status == 200
        load = [threading.Thread(target=_load, args=(edge.port, answers, stop, w)) for w in range(3)]
        slow_threads = [
            threading.Thread(target=lambda t=t: answers.fetch(
                http.client.HTTPConnection("127.0.0.1", edge.port, timeout=30), t))
            for t in slow_targets
        ]
        for t in load + slow_threads:
            t.start()
        deadline = time.monotonic() + 20
        # every slow miss is at the origin, and the 4 others wait for those fetches
        while not all(origin.counts[t] for t in slow_keys) or edge.stats()["collapsed"] < 4:
            assert time.monotonic() < deadline, "the slow misses never reached the origin"
            time.sleep(0.02)
        edge.proc.send_signal(signal.SIGTERM)
        for t in slow_threads:
            t.join(30)
        assert edge.proc.wait(timeout=60) == 0  # it exits by itself once drained and flushed
        stop.set()
        for t in load:
            t.join(30)
    finally:
        stop.set()
        edge.stop(signal.SIGKILL)
    assert not answers.broken
    slow = [(st, rid, h, t) for st, rid, h, t in answers.answered if t in slow_keys]
    # every slow request in flight at SIGTERM was answered: finished, or 503 at the drain limit
    assert sorted(st for st, _, _, _ in slow) == [status] * len(slow_targets)
    ids = [rid for _, rid, _, _ in answers.answered]
    assert len(set(ids)) == len(ids) and all(len(i) == 56 for i in ids)
    std = _rows(edge.log_dir)
    realtime = _rows(rt_dir)
    warmup = 4
    # one log line per answer, matched by x-edge-request-id, in both logs; no line without an answer
    assert len(std) == len(realtime) == len(ids) + warmup
    std_ids = {r["x_edge_request_id"] for r in std}
    assert set(ids) <= std_ids and std_ids == {r["x_edge_request_id"] for r in realtime}
    by_id = {r["x_edge_request_id"]: r for r in std}
    assert sorted(str(by_id[rid]["x_edge_detailed_result_type"]) for _, rid, _, _ in slow) == detailed
    for _, rid, headers, t in slow:
        row = by_id[rid]
        assert (row["sc_status"], row["cs_uri_stem"]) == (status, t.split("?")[0])
        assert headers["connection"] == "close"  # the last answer on a draining connection
        if status == 503:
            assert row["x_edge_result_type"] == "Error" and headers["x-cache"] == "Error from cloudfront"
            assert headers["retry-after"] == "1"
    assert len(answers.answered) > len(slow_targets)  # the load was answered too, not only the slow misses


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slowloris_heads_get_408_logged_and_closed(origin: ScriptedOrigin, tmp_path: Path) -> None:
    edge = start_edge(tmp_path, f"none,{origin.url}", "--pops", "1", "--header-timeout", "0.5",
                      "--log-flush-interval", "3600")
    socks: list[socket.socket] = []
    replies: dict[int, bytes] = {}
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
            s.sendall(b"GET /images/loris.jpg?w=1 HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        cut = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
        cut.sendall(b"GE")  # not even a whole request line
        socks.append(cut)
        # trickle one header line per connection every 0.1 s (bytes must not reset the header
        # timeout), until each connection has its answer; bounded
        for _ in range(300):
            waiting = [s for s in socks if s.fileno() not in replies]
            if not waiting:
                break
            readable, _, _ = select.select(waiting, [], [], 0.1)
            for s in readable:
                replies[s.fileno()] = _recv_all(s)  # the answer, then the edge's FIN
            for s in waiting:
                if s is not cut and s not in readable:
                    s.sendall(b"X-Slow: 1\r\n")
        assert len(replies) == len(socks), f"{len(socks) - len(replies)} slow connections never answered"
        assert edge.stats()["viewers"]["header_timeouts"] == len(socks)
        # a request that arrives whole in time is still served
        assert get(edge.port, "/images/loris.jpg?w=2", pop=0).status == 200
    finally:
        for s in socks:
            s.close()
        assert edge.stop() == 0
    ids = []
    for data in replies.values():
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 408 ") and "Connection: close" in head
        assert "X-Cache: Error from cloudfront" in head
        ids.append(next(ln.split(": ", 1)[1] for ln in head.split("\r\n") if ln.startswith("X-Amz-Cf-Id:")))
    rows = {r["x_edge_request_id"]: r for r in _rows(edge.log_dir) if r["sc_status"] == 408}
    assert sorted(rows) == sorted(ids)
    methods = sorted(r["cs_method"] or "-" for r in rows.values())  # type: ignore[misc]
    assert methods == ["-"] + ["GET"] * 20  # the cut one had no whole request line
    for r in rows.values():
        assert (r["x_edge_result_type"], r["x_edge_detailed_result_type"]) == ("Error", "ClientHungUpRequest")
        if r["cs_method"] == "GET":
            assert r["cs_uri_stem"] == "/images/loris.jpg" and r["cs_uri_query"] == "w=1"


def test_idle_keep_alive_and_silent_connections_are_closed_unlogged(origin: ScriptedOrigin, tmp_path: Path) -> None:
    edge = start_edge(tmp_path, f"none,{origin.url}", "--pops", "1", "--idle-timeout", "0.5",
                      "--header-timeout", "0.5", "--log-flush-interval", "3600")
    try:
        kept = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
        kept.sendall(b"GET /images/idle.jpg?w=1 HTTP/1.1\r\nHost: x\r\nX-Edge-Pop: 0\r\n\r\n")
        data = b""
        while b"origin" not in data:  # the whole answer (its body names the origin)
            chunk = kept.recv(65536)
            assert chunk, data
            data += chunk
        assert b"Connection: keep-alive" in data
        silent = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
        # the edge closes both: EOF, and nothing more sent (a recv timeout would fail the test)
        assert _recv_all(kept) == b"" and _recv_all(silent) == b""
        kept.close()
        silent.close()
        viewers = edge.stats()["viewers"]
        assert viewers["idle_closed"] >= 2 and viewers["header_timeouts"] == 0
    finally:
        assert edge.stop() == 0
    rows = _rows(edge.log_dir)
    assert [(r["cs_uri_stem"], r["sc_status"]) for r in rows] == [("/images/idle.jpg", 200)]


def test_metrics_is_prometheus_text_with_help_type_and_escaped_labels(origin: ScriptedOrigin, tmp_path: Path) -> None:
    weird = tmp_path / 'we"ird\\dir\nname'
    weird.mkdir()
    strategy = weird / "mine.toml"
    strategy.write_text('name = "mine"\nmode = "query"\n')
    edge = start_edge(tmp_path, f"none,{origin.url}", "--pops", "2", "--strategy", str(strategy))
    backend = 'http://127.0.0.1:9/a"b\\c\nd'
    try:
        assert edge.admin("/backends", "POST", {"url": backend})[0] == 201
        for i in range(3):
            get(edge.port, f"/images/m{i % 2}.jpg?w=1", pop=i % 2)
        content_type, text = edge.admin_text("/metrics")
        stats = edge.stats()
    finally:
        edge.stop()
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    families = list(text_string_to_metric_families(text))  # the whole text parses
    assert len(families) >= 10
    for fam in families:
        assert fam.type in ("counter", "gauge"), fam.name
        assert fam.documentation, fam.name
    helps = [ln for ln in text.splitlines() if ln.startswith("# HELP ")]
    types = [ln for ln in text.splitlines() if ln.startswith("# TYPE ")]
    assert len(helps) == len(types) == len(families)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    assert samples[("edge_requests_total", ())] == stats["requests"] == 3
    for url in (backend, origin.url):  # the quote, backslash and newline come back as they were
        assert samples[("edge_backend_requests_total", (("backend", url),))] == stats["origin"]["backends"][url]
    info = next(s for f in families if f.name == "edge_info" for s in f.samples)
    assert info.labels["strategy"] == str(strategy) and info.labels["tier"] == "regional"
    for pop, p in stats["pops"].items():
        for result, n in p["results"].items():
            assert samples[("edge_pop_results_total", (("pop", pop), ("result", result)))] == n


def test_drain_timeout_and_viewer_timeouts_are_options(tmp_path: Path) -> None:
    from edgeproof.edge import EdgeConfig

    from edgeproof.errors import ConfigError

    config = EdgeConfig()
    assert (config.header_timeout, config.idle_timeout, config.drain_timeout) == (10.0, 75.0, 5.0)
    for bad in ({"header_timeout": 0}, {"idle_timeout": -1}, {"drain_timeout": -1}):
        with pytest.raises(ConfigError):
            EdgeConfig(**bad)  # type: ignore[arg-type]
