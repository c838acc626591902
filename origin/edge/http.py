"""A lean HTTP/1.1 server for the viewer side of the edge (asyncio.Protocol, keep-alive).

The edge serves cache hits straight from ``data_received`` without creating a task, so a hit costs
one parse, one dict lookup and one ``transport.write``. A request that needs the origin is handed to
a task; further requests on that connection wait in the buffer until it is answered (requests are
answered in order; pipelining works but is not optimised).

Limits, as CloudFront's: a request head over ``max_head`` bytes (20,480) gets 494; a body on a
GET/HEAD is read and ignored; a chunked body closes the connection after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Protocol

__all__ = ["Request", "RequestHandler", "ViewerProtocol"]

_perf = time.perf_counter


class Request:
    """One parsed viewer request."""

    __slots__ = ("body_len", "head_len", "headers", "method", "path", "query", "t0", "target", "version")

    def __init__(
        self, method: str, target: str, version: str, headers: dict[str, str], head_len: int, t0: float
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.head_len = head_len
        self.body_len = 0
        self.t0 = t0
        path, sep, query = target.partition("?")
        self.path = path
        self.query = query


class RequestHandler(Protocol):
    max_head: int

    def handle(self, conn: ViewerProtocol, req: Request) -> None: ...

    def reject_raw(self, conn: ViewerProtocol, status: int, detail: str, head: bytes, t0: float) -> None: ...


class ViewerProtocol(asyncio.Protocol):
    """One viewer connection. The handler answers through :meth:`send` and :meth:`done`."""

    __slots__ = ("_buf", "busy", "client_ip", "client_port", "closing", "handler", "keep_alive", "transport")

    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler
        self._buf = bytearray()
        self.busy = False
        self.closing = False
        self.keep_alive = True
        self.transport: asyncio.Transport | None = None
        self.client_ip = "-"
        self.client_port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip, self.client_port = peer[0], int(peer[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self.busy:
            self._process(_perf())

    # -- parsing ---------------------------------------------------------------------------------
    def _process(self, t0: float) -> None:
        buf = self._buf
        while buf and not self.busy and not self.closing:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.handler.max_head:
                    self.keep_alive = False
                    self.busy = True
                    self.handler.reject_raw(self, 494, "request header too large", bytes(buf[:8192]), t0)
                return
            head_len = end + 4
            if head_len > self.handler.max_head:
                self.keep_alive = False
                self.busy = True
                self.handler.reject_raw(self, 494, "request header too large", bytes(buf[:8192]), t0)
                return
            req = self._parse(bytes(buf[:end]), head_len, t0)
            if req is None:
                return
            body = 0
            cl = req.headers.get("content-length")
            if cl is not None:
                if not cl.isdigit() or int(cl) > 10 * 1024 * 1024:
                    self.keep_alive = False
                    self.busy = True
                    self.handler.reject_raw(self, 400, "bad content-length", bytes(buf[:end]), t0)
                    return
                body = int(cl)
                if len(buf) < head_len + body:
                    return  # wait for the body
            if "chunked" in req.headers.get("transfer-encoding", ""):
                self.keep_alive = False  # we do not read chunked bodies: answer, then close
            req.body_len = body
            del buf[: head_len + body]
            conn_hdr = req.headers.get("connection", "").lower()
            if req.version == "HTTP/1.0":
                self.keep_alive = self.keep_alive and conn_hdr == "keep-alive"
            elif conn_hdr == "close":
                self.keep_alive = False
            self.busy = True
            self.handler.handle(self, req)

    def _parse(self, head: bytes, head_len: int, t0: float) -> Request | None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.keep_alive = False
            self.busy = True
            self.handler.reject_raw(self, 400, "malformed request line", head, t0)
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[-1] in " \t" or name[0] in " \t":
                self.keep_alive = False
                self.busy = True
                self.handler.reject_raw(self, 400, "malformed header line", head, t0)
                return None
            key = name.lower()
            if key in headers:
                headers[key] = headers[key] + ", " + value.strip()
            else:
                headers[key] = value.strip()
        return Request(parts[0], parts[1], parts[2], headers, head_len, t0)

    # -- answering (called by the handler) ------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def done(self) -> None:
        """The current request is answered: close, or go on with buffered requests."""
        self.busy = False
        if not self.keep_alive:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        if self._buf and self.transport is not None:
            asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        if not self.busy:
            self._process(_perf())
