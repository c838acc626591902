"""Connection limits of the origin, with real sockets on 127.0.0.1 against ``edgeproof origin serve``.

A slowloris client (a header byte every second), an idle keep-alive connection, and over-long or
malformed requests. Short ``--header-timeout`` / ``--keepalive-timeout`` keep the run brief; every
wait is bounded, and no test asserts how long anything took.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _origin_helpers import OriginProc, jpeg
from conftest import free_port

HEADER_TIMEOUT = 1
KEEPALIVE_TIMEOUT = 3
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-client/1.0\r\nAccept: */*\r\n\r\n"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProc]:
    root = tmp_path_factory.mktemp("connections")
    (root / "src" / "images").mkdir(parents=True)
    (root / "src" / "images" / "a.jpg").write_bytes(jpeg(400, 300))
    proc = OriginProc(free_port(), ["--sources", str(root / "src"), "--derivatives", str(root / "der"),
                                    "--workers", "1", "--header-timeout", str(HEADER_TIMEOUT),
                                    "--keepalive-timeout", str(KEEPALIVE_TIMEOUT)], log=root / "log.txt")
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0


def _connect(port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(timeout)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _closed(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset) within the socket's timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slowloris_is_closed_with_408(origin: OriginProc) -> None:
    sock = _connect(origin.port, timeout=1.0)  # recv waits 1 s: one header byte a second
    received = b""
    sent = 0
    try:
        for byte in REQUEST[:20]:  # bounded: the whole header would take len(REQUEST) seconds
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            received += chunk
            if not chunk or b"\r\n\r\n" in received:
                break
        assert sent < 20, "the server kept a connection that sent one header byte a second"
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"connection: close" in head.lower()
        assert json.loads(body)["error"] == "request_timeout"
        sock.settimeout(10)
        assert _closed(sock)
    finally:
        sock.close()


def test_connection_that_sends_nothing_is_closed(origin: OriginProc) -> None:
    sock = _connect(origin.port, timeout=15)  # bounded; the server closes after --header-timeout
    try:
        assert sock.recv(65536) == b""  # closed without a response: there was no request to answer
    finally:
        sock.close()


def test_headers_in_pieces_within_the_timeout_are_served(origin: OriginProc) -> None:
    sock = _connect(origin.port, timeout=10)
    try:
        sock.sendall(REQUEST[:30])
        time.sleep(HEADER_TIMEOUT / 4)
        sock.sendall(REQUEST[30:])
        status, _, body = _read_response(sock)
        assert status == 200 and json.loads(body) == {"status": "ok"}
    finally:
        sock.close()


def test_idle_keepalive_connection_is_closed(origin: OriginProc) -> None:
    sock = _connect(origin.port, timeout=10)
    try:
        sock.sendall(REQUEST)
        assert _read_response(sock)[0] == 200
        # idle longer than the header timeout: the next request's header timer starts at its first byte
        time.sleep(HEADER_TIMEOUT * 1.5)
        sock.sendall(REQUEST)
        status, headers, _ = _read_response(sock)
        assert status == 200 and headers.get("connection", "").lower() != "close"
        sock.settimeout(KEEPALIVE_TIMEOUT * 5)  # bounded wait for the idle close
        assert _closed(sock), "an idle keep-alive connection stayed open"
    finally:
        sock.close()


@pytest.mark.parametrize("length", [20_000, 8_193 + 40])
def test_long_url_is_json_414_without_echo(origin: OriginProc, length: int) -> None:
    url = "/images/a.jpg?w=100&pad=" + "z" * (length - len("/images/a.jpg?w=100&pad="))
    sock = _connect(origin.port, timeout=10)
    try:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status, headers, body = _read_response(sock)
    finally:
        sock.close()
    assert status == 414
    assert headers["content-type"].startswith("application/json") and headers["cache-control"] == "no-store"
    reply = json.loads(body)
    assert reply["error"] == "uri_too_long" and "8192" in reply["detail"]
    assert b"zzzzzzzz" not in body


def test_url_at_the_limit_is_served(origin: OriginProc) -> None:
    url = "/images/a.jpg?w=100&format=png&pad="
    url += "z" * (8192 - len(url))
    sock = _connect(origin.port, timeout=30)
    try:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status, headers, _ = _read_response(sock)
    finally:
        sock.close()
    assert status == 200 and headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "raw, status, error",
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"q" * 9000 + b"\r\n\r\n", 431, "request_header_fields_too_large"),
        (b"G\x01T /qqqqqqqq HTTP/1.1\r\n\r\n", 400, "bad_request"),
        (b"GET /qqqqqqqq HTTP/9.9\r\nHost: a\r\n\r\n", 400, "bad_request"),
    ],
)
def test_malformed_requests_are_json(origin: OriginProc, raw: bytes, status: int, error: str) -> None:
    sock = _connect(origin.port, timeout=10)
    try:
        sock.sendall(raw)
        got, headers, body = _read_response(sock)
    finally:
        sock.close()
    assert got == status and headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == error and b"qqqqqqqq" not in body


def test_options_are_validated(tmp_path: Path) -> None:
    import subprocess
    import sys

    for bad in (["--header-timeout", "-1"], ["--keepalive-timeout", "0"], ["--max-url-bytes", "3"]):
        done = subprocess.run([sys.executable, "-m", "edgeproof.cli", "origin", "serve", "--port", "0",
                               "--sources", str(tmp_path), "--derivatives", str(tmp_path / "d"), *bad],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "--" in done.stderr, (bad, done.stderr)
