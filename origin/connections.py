"""Connection limits for the origin's HTTP/1.1 server: what aiohttp does not bound by itself.

An origin on a public address meets clients that open a connection and never finish a request
(slowloris: a header byte every few seconds), keep-alive connections nobody reuses, and URLs far
longer than anything a CDN forwards. aiohttp 3.x has no header-read timeout, its idle keep-alive
timeout defaults to an hour, and an over-long request line gets a plain-text 400 that echoes the
URL back. This module adds, per connection (:class:`GuardedHandler`):

- a **header-read timeout** (``--header-timeout``, 10 s), as nginx's ``client_header_timeout``:
  the whole request line and headers must arrive within it, counted from the accept for the first
  request and from the first byte for later ones; past it the client gets a JSON 408 with
  ``Connection: close`` (or, if it sent nothing at all, the connection is just closed);
- an **idle keep-alive timeout** (``--keepalive-timeout``, 75 s, nginx's ``keepalive_timeout``
  default) between requests: aiohttp's own timer, closed silently. It is longer than CloudFront's
  origin keep-alive timeout (5 s by default, 120 s at most; Developer Guide, "Origin keep-alive
  timeout (custom and VPC origins only)"), so the edge, not the origin, closes an idle connection
  and never sends a request on a socket the origin is closing;
- a **URL limit** (``--max-url-bytes``, 8192 = CloudFront's "Maximum length of a URL", Developer
  Guide, "Quotas"): a longer request-target gets a JSON 414 that does not repeat the URL; other
  malformed requests get a JSON 400 (431 for an over-long header), never aiohttp's text that
  echoes the input. CloudFront honours ``no-store`` on a 414 (see
  :data:`edgeproof.cloudfront.ERROR_NO_STORE_HONOURED`), which every such answer carries.

:class:`GuardedSite` listens on a socket with this handler instead of aiohttp's own.

The handler reads three attributes of aiohttp's ``RequestHandler`` (``_request_count``: a request's
headers were parsed; ``_waiter``: the connection is waiting for its next request; ``max_line_size``)
because aiohttp offers no hook for "headers complete"; tests/test_origin_connections.py drives it
with real sockets, so an aiohttp change that breaks it fails there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from edgeproof.origin.responses import error_response

from edgeproof.errors import HeaderTooLarge, RequestError, RequestTimeout, UriTooLong

#: ``RequestTimeout``, ``UriTooLong`` (and ``HeaderTooLarge``) live in :mod:`edgeproof.errors`; importable here too
__all__ = ["GuardedHandler", "GuardedSite", "HeaderTooLarge", "RequestTimeout", "UriTooLong", "url_limit_middleware"]

#: room for the method and the protocol around the URL in a request line (``OPTIONS `` … `` HTTP/1.1``)
_REQUEST_LINE_SLACK = 32


def url_too_long(max_url_bytes: int) -> UriTooLong:
    return UriTooLong("URL too long", detail=f"the URL is over {max_url_bytes} bytes")


def url_limit_middleware(max_url_bytes: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    """414 for a request-target over ``max_url_bytes`` that the parser (with its slack) let through."""

    @web.middleware
    async def limit(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if len(request.raw_path) > max_url_bytes:
            response = error_response(url_too_long(max_url_bytes))
            response.force_close()
            return response
        return await handler(request)

    return limit


class GuardedHandler(web.RequestHandler):
    """aiohttp's per-connection protocol with a header-read timeout and JSON parse errors."""

    def __init__(self, manager: Any, *, header_timeout: float, max_url_bytes: int, **kwargs: Any) -> None:
        super().__init__(manager, max_line_size=max_url_bytes + _REQUEST_LINE_SLACK, **kwargs)
        self.header_timeout = header_timeout
        self.max_url_bytes = max_url_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_started = False  # some bytes of a request whose headers are not complete yet

    # ------------------------------------------------------------------ the header-read timer

    def _arm(self) -> None:
        if self.header_timeout > 0:
            self._header_timer = self._loop.call_later(self.header_timeout, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _waiting_for_request(self) -> bool:
        """No request is being handled: the connection waits for the next one's headers (aiohttp's
        request loop awaits ``_waiter`` then, and holds none while a handler runs)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # the first request's headers are due header_timeout after the accept

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._waiting_for_request():
            self._arm()  # the first byte of a new request on a kept-alive connection
        if data:
            self._header_started = True
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # the headers are complete (or refused): the timer is done
            self._disarm()
            self._header_started = False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport is None or not self._waiting_for_request():
            return  # a request is being handled: its headers arrived in time
        if self._header_started:
            err = RequestTimeout("request timeout",
                                 detail=f"the request headers did not arrive within {self.header_timeout:g}s")
            body = err.to_body()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\n"
                b"Cache-Control: no-store\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
        self.force_close()  # transport.close() sends what was written, then closes

    # ------------------------------------------------------------------ malformed requests

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """JSON for a request aiohttp's parser refused, without repeating what the client sent."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        err: RequestError
        if isinstance(exc, LineTooLong) and len(exc.args) > 1 and exc.args[1] == self.max_line_size:
            err = url_too_long(self.max_url_bytes)
        elif isinstance(exc, LineTooLong):
            err = HeaderTooLarge("request header too large", detail="a request header line is too long")
        else:
            err = RequestError("malformed HTTP request", detail="the request is not valid HTTP/1.1")
        response = error_response(err)
        response.force_close()
        return response


class GuardedSite(web.SockSite):
    """``web.SockSite`` whose connections are :class:`GuardedHandler` instead of aiohttp's default."""

    __slots__ = ("_handler_kwargs",)

    def __init__(self, runner: web.BaseRunner, sock: Any, *, header_timeout: float, keepalive_timeout: float,
                 max_url_bytes: int, backlog: int = 1024) -> None:
        super().__init__(runner, sock, backlog=backlog)
        self._handler_kwargs = {"header_timeout": header_timeout, "keepalive_timeout": keepalive_timeout,
                                "max_url_bytes": max_url_bytes, "access_log": None}

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner (SockSite.start would listen too)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def factory() -> GuardedHandler:
            return GuardedHandler(server, loop=loop, **self._handler_kwargs)

        self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)
