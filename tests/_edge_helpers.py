"""Helpers for the edge tests: a scriptable HTTP origin (real aiohttp server in a thread) and an edge
subprocess started through the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from conftest import free_port, wait_http

ETAG = '"v1"'


class ScriptedOrigin:
    """An origin whose answer is driven by the query: ``status=``, ``cc=`` (Cache-Control),
    ``retry=`` (Retry-After), ``delay=`` (seconds). ETag is always ``"v1"``; If-None-Match → 304.
    Counts requests per path+query and records the If-None-Match headers seen. ``force[path_qs]``
    (set by a test) overrides the status of that URL from then on (an origin that starts failing)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts: Counter[str] = Counter()
        self.conditional: list[str] = []
        self.force: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        self.counts[request.path_qs] += 1
        if "delay" in q:
            await asyncio.sleep(float(q["delay"]))
        status = self.force.get(request.path_qs, int(q.get("status", "200")))
        headers = {"ETag": ETAG}
        if "cc" in q:
            headers["Cache-Control"] = q["cc"]
        if "retry" in q:
            headers["Retry-After"] = q["retry"]
        inm = request.headers.get("If-None-Match")
        if inm:
            self.conditional.append(inm)
            if inm == ETAG and status == 200:
                return web.Response(status=304, headers=headers)
        body = f"origin {self.port} {request.path_qs}".encode()
        return web.Response(status=status, body=body, headers=headers, content_type="image/jpeg")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> ScriptedOrigin:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class HungServer:
    """A TCP server on 127.0.0.1 that accepts connections, reads what it is sent and never answers
    (a hung origin or store endpoint); counts the connections it accepted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)  # kept open, never answered

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self.sock.close()


@dataclass
class EdgeProc:
    proc: subprocess.Popen[str]
    port: int
    admin_port: int
    log_dir: Path
    out: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stats(self) -> dict[str, Any]:
        return self.admin("/stats")[1]

    def admin_text(self, path: str) -> tuple[str, str]:
        """GET an admin path that is not JSON: (Content-Type, body text)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=10) as resp:
            return resp.headers.get("Content-Type", ""), resp.read().decode()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@contextlib.contextmanager
def running_origin(sources: Path, derivatives: Path) -> Iterator[int]:
    """A real ``edgeproof origin serve`` (one worker) on a free port while the block runs, ready (its
    ``/readyz`` answered 200); yields the port, stops the origin after."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeproof.cli", "origin", "serve", "--port", str(port), "--sources", str(sources),
         "--derivatives", str(derivatives), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # /readyz answers 200 once the workers serve (not just any status)
            assert proc.poll() is None, f"origin exited with {proc.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "origin not ready in 60 s"
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_edge(tmp: Path, origin_group: str, *flags: str, env: dict[str, str] | None = None) -> EdgeProc:
    port, admin = free_port(), free_port()
    log_dir = tmp / f"logs-{port}"
    cmd = [
        sys.executable, "-m", "edgeproof.cli", "edge", "serve", "--port", str(port), "--admin-port", str(admin),
        f"--origin-group={origin_group}", "--log-dir", str(log_dir), *flags,
    ]
    if "--strategy" not in flags:
        cmd += ["--strategy", "passthrough"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    edge = EdgeProc(proc, port, admin, log_dir)
    try:
        wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=30, proc=proc)
    except Exception as err:
        edge.stop(signal.SIGKILL)
        raise RuntimeError("edge did not start:\n" + (proc.stdout.read() if proc.stdout else "")) from err
    return edge


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_len: int


def raw_request(port: int, request: bytes, timeout: float = 10.0) -> Reply:
    """Send ``request`` bytes on a fresh connection; read one response (Content-Length framed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        need = 0 if request.startswith(b"HEAD ") else int(headers.get("content-length", "0"))
        while len(rest) < need:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return Reply(status, headers, rest[:need], len(head) + 4 + need)


def get(port: int, target: str, pop: str | int | None = None, extra: str = "") -> Reply:
    pop_h = f"X-Edge-Pop: {pop}\r\n" if pop is not None else ""
    req = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{pop_h}{extra}Connection: close\r\n\r\n"
    return raw_request(port, req.encode())
