"""A lean HTTP/1.1 server for the viewer side of the edge (asyncio.Protocol, keep-alive).

The edge serves cache hits straight from ``data_received`` without creating a task, so a hit costs
one parse, one dict lookup and one ``transport.write``. A request that needs the origin is handed to
a task; further requests on that connection wait in the buffer until it is answered (requests are
answered in order; pipelining works but is not optimised).

Limits, as CloudFront's: a request head over ``max_head`` bytes (20,480) gets 494; a body on a
GET/HEAD is read and ignored; a chunked body closes the connection after the answer.

Timeouts, as nginx's (:class:`ViewerConnections`): a request must arrive whole (head, and a declared
body) within ``header_timeout`` of its first byte — or, for the first request, of the connection's
opening — else it is answered 408 and the connection closed (``client_header_timeout``; a
slowloris client that trickles its head is cut off however often it sends). A keep-alive connection
idle for ``idle_timeout`` between requests is closed (``keepalive_timeout``). A connection with
nothing received is closed silently: there is no request to answer or log. After a 408 the
connection closes lingering, as nginx's ``lingering_close``: FIN after the answer, what the viewer
still sends is read and dropped for up to ``LINGER`` seconds, so its kernel does not get a reset that
would throw the unread 408 away. One sweep a fraction of a second apart checks every connection,
so the hit path pays one ``perf_counter`` per response and no timer objects.

Drain (:meth:`ViewerConnections.drain`, on SIGTERM): idle connections close at once; a connection
answers what it has already received (pipelined requests included) and says ``Connection: close``
on its last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Protocol

__all__ = ["Request", "RequestHandler", "ViewerConnections", "ViewerProtocol"]

_perf = time.perf_counter
#: seconds a connection closed after a 408 keeps reading (and dropping) what the viewer still sends
LINGER = 2.0


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
    conns: ViewerConnections

    def handle(self, conn: ViewerProtocol, req: Request) -> None: ...

    def reject_raw(self, conn: ViewerProtocol, status: int, detail: str, head: bytes, t0: float) -> None: ...


class ViewerProtocol(asyncio.Protocol):
    """One viewer connection. The handler answers through :meth:`send` and :meth:`done`."""

    __slots__ = ("_buf", "busy", "client_ip", "client_port", "closing", "draining", "fresh", "handler",
                 "keep_alive", "lingering", "since", "transport")

    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler
        self._buf = bytearray()
        self.busy = False
        self.closing = False
        self.keep_alive = True
        self.transport: asyncio.Transport | None = None
        self.client_ip = "-"
        self.client_port = 0
        #: when the current wait began (perf_counter): for the request being received, or idle
        self.since = _perf()
        #: no request received yet (the first one gets the header timeout from the connection's start)
        self.fresh = True
        #: the edge is draining: the last request received gets ``Connection: close``
        self.draining = False
        #: close by FIN, then read and drop for LINGER seconds (after a 408)
        self.lingering = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.since = _perf()
        conns = self.handler.conns
        conns.open.add(self)
        if conns.draining:
            self.draining = True
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
        self.handler.conns.open.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # lingering after a 408: dropped
        buf = self._buf
        if self.busy:
            buf += data
            return
        t0 = _perf()
        if not buf and not self.fresh:
            self.since = t0  # a new request starts: its head must be whole within the header timeout
        self.fresh = False
        buf += data
        self._process(t0)

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
            if self.draining and b"\r\n\r\n" not in buf:
                self.keep_alive = False  # the last request this connection has: answer it, then close
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
            self.close()
            return
        self.since = _perf()  # idle from now, or the next (pipelined) request's wait starts
        if self._buf and self.transport is not None:
            asyncio.get_running_loop().call_soon(self._resume)

    def close(self) -> None:
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        if self.lingering and transport.can_write_eof():
            self._buf.clear()
            transport.write_eof()  # the answer, then FIN; the viewer's EOF (or LINGER) ends it
            asyncio.get_running_loop().call_later(LINGER, transport.close)
        else:
            transport.close()

    def _resume(self) -> None:
        if not self.busy:
            self._process(_perf())

    def time_out(self) -> None:
        """The request being received did not arrive whole in time: 408 (logged), then close."""
        self.keep_alive = False
        self.busy = True
        self.lingering = True
        self.handler.reject_raw(self, 408, "request not received within the header timeout",
                                bytes(self._buf[:8192]), self.since)


class ViewerConnections:
    """Every open viewer connection, with the header-read and idle keep-alive timeouts and the drain.

    :meth:`sweep` runs every ``interval`` seconds (a quarter of the shorter timeout, at most 1 s),
    so a timeout fires up to ``interval`` late; a connection busy with a request (its answer
    waiting on the origin) is never timed out here: the origin timeouts and the drain bound it.
    """

    def __init__(self, header_timeout: float, idle_timeout: float) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.interval = min(1.0, max(0.01, min(header_timeout, idle_timeout) / 4))
        self.open: set[ViewerProtocol] = set()
        self.draining = False
        #: requests answered 408, and idle connections closed (counters for /stats and /metrics)
        self.header_timeouts = 0
        self.idle_closed = 0

    def sweep(self, now: float | None = None) -> None:
        now = _perf() if now is None else now
        header_deadline = now - self.header_timeout
        idle_deadline = now - self.idle_timeout
        for conn in list(self.open):
            if conn.busy or conn.closing:
                continue
            if conn._buf:
                if conn.since < header_deadline:
                    self.header_timeouts += 1
                    conn.time_out()
            elif self.draining or conn.since < (header_deadline if conn.fresh else idle_deadline):
                self.idle_closed += 1
                conn.close()

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.sweep()

    def drain(self) -> None:
        """Stop keeping connections alive: idle ones close now, the others after what they received."""
        self.draining = True
        for conn in list(self.open):
            conn.draining = True
            if not conn._buf:
                if conn.busy:
                    conn.keep_alive = False  # the request being answered is its last
                else:
                    conn.close()
            # else: received requests are answered in turn (the last says close); a head still
            # arriving is answered when whole, or gets its 408

    def close_all(self) -> int:
        """End of the drain: a request still arriving gets its 408 (logged); every connection closes.
        Returns how many requests were cut off that way."""
        cut = 0
        for conn in list(self.open):
            if conn.closing:
                continue
            if not conn.busy and conn._buf:
                cut += 1
                self.header_timeouts += 1
                conn.time_out()  # answers, then closes
            else:
                conn.close()
        return cut
