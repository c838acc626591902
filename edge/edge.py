"""The edge: strategy → POP → cache tiers → origin group, with CloudFront's headers and logs.

Request flow (see docs/edge.md):

1. method other than GET/HEAD → 403 (``InvalidRequestMethod``); malformed percent-encoding → 400,
   URL over 8,192 bytes → 414 (``InvalidRequest``); the strategy refuses → 400
   (``FunctionGeneratedResponse``: the strategy is the viewer-request function).
2. The POP (``X-Edge-Pop`` or client-address hash) looks the cache key up. Fresh → ``Hit`` served from
   ``data_received`` with no task. Otherwise one task per key per tier (request collapsing: later
   requests for the key wait for it and are served as ``Hit``).
3. Tiers above the POP (regional edge cache, Origin Shield) are looked up in turn; the top tier asks
   the origin group, conditionally (``If-None-Match``) when it holds a stale copy. What the viewer's
   log line says is :func:`edgeproof.cloudfront.viewer_result` (standard-logs-reference.html): a
   regional-edge-cache hit is ``Hit``; an expired copy confirmed by a 304 or by the tier above is
   ``RefreshHit``; an Origin Shield hit is ``Miss`` with detailed type ``OriginShieldHit``
   (``X-Cache: Miss from cloudfront``); collapsed requests are ``Hit`` ("Request and response behavior
   for custom origins", RequestAndResponseBehaviorCustomOrigin.html, request collapsing).
4. Responses of 4xx/5xx are ``Error`` (``X-Cache: Error from cloudfront``), cached as
   :func:`edgeproof.cloudfront.error_caching_ttl` says; an expired copy whose revalidation gets a 5xx
   (or a timeout) is served instead and kept for the error-caching minimum TTL (HTTPStatusCodes.html,
   "The requested object is in the edge cache"; logged ``RefreshHit``: found expired, origin asked).
5. A viewer that closes its connection before the answer is logged once, status ``000``, result
   ``Error``, detailed ``ClientHungUpRequest`` (standard-logs-reference.html, ``sc-status``); the POP
   does not cache the object it was fetching for that viewer alone ("Request and response behavior
   for custom origins", Canceled requests: "CloudFront does not cache the object in the edge
   location"); the tiers above, whose own requester (the POP) did not go away, keep it.
6. A request head not received whole within the header timeout gets 408, logged ``Error`` with
   detailed type ``ClientHungUpRequest`` ("The viewer stopped prematurely while sending the
   request", standard-logs-reference.html, ``x-edge-detailed-result-type``), and the connection
   closes (the timeouts themselves are :class:`~edgeproof.edge.http.ViewerConnections`).
7. Drain (:meth:`Edge.drain`, on SIGTERM): every request already received is answered and logged.
   Those still waiting on the origin when the drain limit is reached get 503 (JSON, ``Retry-After:
   1``, ``Connection: close``), logged ``Error`` with detailed type ``AbortedOrigin`` ("The server
   encountered an issue with the origin", same page): the edge gave up its origin request, the
   origin did not fail, so none of the origin's types (``OriginCommError`` is a timeout the origin
   caused) fit; 503 rather than 504 because it is this server that is going away, and the
   object is not cached anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import os
import re
import time
from dataclasses import replace

from edgeproof.analytics.metrics import classify, hit_rate

from edgeproof.cloudfront import region_of, serves_stale_on, viewer_result
from edgeproof.errors import BadRequest, error_body
from edgeproof.singleflight import SingleFlight

from .cache import Entry, LruCache, TtlPolicy
from .config import EdgeConfig
from .http import Request, ViewerConnections, ViewerProtocol
from .logsink import LogSink
from .origin_group import KEPT_HEADERS, OriginGroup, OriginResponse
from .pops import PopSelector
from .stats import EdgeStats, PopStats, TierStats

__all__ = ["Edge", "Pop", "Tier"]

_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_REASONS = {
    200: "OK", 203: "Non-Authoritative Information", 206: "Partial Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 410: "Gone", 413: "Payload Too Large", 414: "URI Too Long",
    416: "Range Not Satisfiable", 422: "Unprocessable Entity", 429: "Too Many Requests",
    494: "Request Header Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}
#: X-Cache by x-edge-result-type (an Origin Shield hit is a "Miss from cloudfront")
_X_CACHE = {
    "Hit": b"Hit from cloudfront", "RefreshHit": b"RefreshHit from cloudfront", "Miss": b"Miss from cloudfront",
}
#: how a tier obtained an entry: (the tier kind whose fresh copy answered or None for the origin,
#: whether an expired copy on the way was confirmed) — the arguments of ``viewer_result``
Served = tuple[str | None, bool]
_perf = time.perf_counter
_mono = time.monotonic
_now = time.time


class Tier:
    """One cache (a POP's, a regional edge cache or the Origin Shield) and its in-flight fetches."""

    __slots__ = ("cache", "flights", "kind", "name", "viewers")

    def __init__(self, name: str, kind: str, capacity: int) -> None:
        self.name = name
        self.kind = kind  # pop | regional | shield
        self.cache = LruCache(name, capacity)
        #: one fetch per key at a time (request collapsing), the kernel's single-flight
        self.flights: SingleFlight[tuple[Entry, Served]] = SingleFlight()
        #: POP tier only: the viewers waiting for each in-flight fetch (cached only if one is still there)
        self.viewers: dict[str, list[ViewerProtocol]] = {}


class Pop:
    """A POP: its cache tier chain and its counters."""

    __slots__ = ("chain", "const", "counts", "detailed", "id", "id_b", "requests", "sc_bytes", "tier")

    def __init__(self, pop_id: str, chain: list[Tier]) -> None:
        self.id = pop_id
        self.id_b = pop_id.encode()
        #: the constant response headers of this POP (Server, Via, X-Amz-Cf-Pop), up to X-Cache's value
        self.const = b""
        self.tier = chain[0]
        self.chain = chain
        self.requests = 0
        self.sc_bytes = 0
        #: requests by x-edge-result-type, and by x-edge-detailed-result-type
        self.counts: dict[str, int] = {}
        self.detailed: dict[str, int] = {}


class _RequestIds:
    """Random 56-character ids ending in ``==`` like AWS's, made 256 at a time (cheap per request)."""

    __slots__ = ("_block", "_i")

    def __init__(self) -> None:
        self._block = ""
        self._i = 256

    def __call__(self) -> str:
        i = self._i
        if i >= 256:
            self._block = base64.urlsafe_b64encode(os.urandom(54 * 256 * 3 // 4)).decode()  # 54 chars each
            i = 0
        self._i = i + 1
        return self._block[i * 54 : i * 54 + 54] + "=="


_request_id = _RequestIds()
_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "Unknown").encode())
    return line


def _render_head(headers: dict[str, str], body_len: int) -> bytes:
    lines = [f"Content-Length: {body_len}\r\n"]
    for name in KEPT_HEADERS:
        value = headers.get(name)
        if value is not None:
            lines.append(f"{name.title()}: {value}\r\n")
    return "".join(lines).replace("Etag:", "ETag:").encode("latin-1", "replace")


def _json_error(error: str, detail: str) -> tuple[bytes, dict[str, str]]:
    """An answer the edge makes itself: the error tree's body (:func:`edgeproof.errors.error_body`)."""
    return error_body(error, detail), {"content-type": "application/json"}


class Edge:
    """The whole edge in one process: POPs, tiers, origin group, log sink, counters."""

    def __init__(self, config: EdgeConfig, group: OriginGroup, logs: LogSink | None) -> None:
        from edgeproof.analytics.strategies import get_strategy

        self.config = config
        self.strategy = get_strategy(config.strategy)
        self.group = group
        self.logs = logs
        self.ttl: TtlPolicy = config.ttl
        self.max_head = config.max_head
        self.max_uri = config.max_uri
        self.host = config.host
        ids = config.pop_list
        self.selector = PopSelector(ids)
        shield = Tier("shield", "shield", config.tier_capacity_bytes) if config.tier == "shield" else None
        regional: dict[str, Tier] = {}
        self.pops: list[Pop] = []
        via = f"1.1 {os.urandom(16).hex()}.cloudfront.net (CloudFront)".encode()
        for pid in ids:
            chain = [Tier(pid, "pop", config.capacity_bytes)]
            if config.tier in ("regional", "shield"):
                region = region_of(pid)
                if region not in regional:
                    regional[region] = Tier(region, "regional", config.tier_capacity_bytes)
                chain.append(regional[region])
            if shield is not None:
                chain.append(shield)
            pop = Pop(pid, chain)
            pop.const = b"\r\nServer: CloudFront\r\nVia: %s\r\nX-Amz-Cf-Pop: %s\r\nX-Cache: " % (via, pop.id_b)
            self.pops.append(pop)
        self.regional = regional
        self.shield = shield
        self._date_sec = 0
        self._date = b""
        self.collapsed = 0
        self.ready = False
        self._tasks: set[asyncio.Future[None]] = set()
        #: the viewer connections and their timeouts (http.py)
        self.conns = ViewerConnections(config.header_timeout, config.idle_timeout)
        #: draining past its limit: requests waiting on the origin are answered 503 AbortedOrigin
        self.aborting = False
        self.aborted = 0

    @property
    def pending(self) -> int:
        """Requests waiting for a fetch (misses in flight)."""
        return len(self._tasks)

    # -- small helpers --------------------------------------------------------------------------
    def _http_date(self) -> bytes:
        sec = int(_now())
        if sec != self._date_sec:
            self._date_sec = sec
            self._date = email.utils.formatdate(sec, usegmt=True).encode()
        return self._date

    def _write(
        self,
        conn: ViewerProtocol,
        req: Request | None,
        pop: Pop,
        status: int,
        head: bytes,
        body: bytes,
        x_cache: bytes,
        age: int | None,
        rid: str,
        extra: bytes = b"",
    ) -> int:
        """Send one response; returns the bytes sent."""
        out = b"".join(
            (
                _status_line(status),
                head,
                extra,
                b"Connection: keep-alive\r\nDate: " if conn.keep_alive else b"Connection: close\r\nDate: ",
                self._http_date(),
                pop.const,
                x_cache,
                b"\r\nX-Amz-Cf-Id: ",
                rid.encode(),
                b"\r\nAge: %d\r\n\r\n" % age if age is not None else b"\r\n\r\n",
                body if req is None or req.method != "HEAD" else b"",
            )
        )
        conn.send(out)
        return len(out)

    def _log(
        self,
        conn: ViewerProtocol,
        req: Request | None,
        pop: Pop,
        status: int,
        sent: int,
        result: str,
        detail: str,
        rid: str,
        content_type: str | None,
        content_len: int | None,
        t_first: float,
        t_last: float,
        method: str = "-",
        target: str = "-",
        cs_bytes: int = 0,
        resp_result: str | None = None,
        t_start: float | None = None,
    ) -> None:
        pop.requests += 1
        pop.sc_bytes += sent
        counts = pop.counts
        counts[result] = counts.get(result, 0) + 1
        detailed = pop.detailed
        detailed[detail] = detailed.get(detail, 0) + 1
        if self.logs is None:
            return
        if req is not None:
            h = req.headers
            method, path, query = req.method, req.path, req.query
            cs_bytes = req.head_len + req.body_len
            t0 = req.t0
            host_h = h.get("host")
            referer, ua, xff, version = h.get("referer"), h.get("user-agent"), h.get("x-forwarded-for"), req.version
            accept, accept_enc = h.get("accept"), h.get("accept-encoding")
        else:
            path, _, query = target.partition("?")
            t0 = t_first if t_start is None else t_start
            host_h = referer = ua = xff = accept = accept_enc = None
            version = "HTTP/1.1"
        resp_result = resp_result or result
        self.logs.add(
            (
                _now() * 1000.0, pop.id, sent, conn.client_ip, method, self.host, path or "-", status, referer,
                ua, query, None, result, rid, host_h or self.host, "http", cs_bytes,
                t_last - t0, xff, resp_result, version, conn.client_port,
                t_first - t0, detail, content_type, content_len, accept, accept_enc,
            )
        )

    # -- edge-generated answers -----------------------------------------------------------------
    def _generated(
        self,
        conn: ViewerProtocol,
        req: Request | None,
        pop: Pop,
        status: int,
        result: str,
        detail: str,
        message: str,
        t0: float,
        method: str = "-",
        target: str = "-",
        cs_bytes: int = 0,
    ) -> None:
        body, headers = _json_error("bad_request" if status < 500 else "edge", message)
        head = _render_head(headers, len(body))
        rid = _request_id()
        x_cache = b"Error from cloudfront" if result == "Error" else result.encode() + b" from cloudfront"
        sent = self._write(conn, req, pop, status, head, body, x_cache, None, rid)
        t = _perf()
        self._log(conn, req, pop, status, sent, result, detail, rid, "application/json", len(body), t, t,
                  method=method, target=target, cs_bytes=cs_bytes, t_start=t0)
        conn.done()

    def reject_raw(self, conn: ViewerProtocol, status: int, detail: str, head: bytes, t0: float) -> None:
        """A request that could not be parsed (494 head too large, 400 malformed) or that did not
        arrive whole in time (408; ``head`` is what was received)."""
        line, crlf, _ = head.partition(b"\r\n")
        first = line.decode("latin-1", "replace").split(" ")
        complete = len(first) == 3 and (bool(crlf) or status != 408)  # a 408's first line may be cut
        method = first[0] if complete and first[0] else "-"
        target = first[1] if complete and first[1] else "-"
        pop = self.pops[self.selector.pick(None, conn.client_ip)]
        kind = {494: "InvalidRequestHeader", 408: "ClientHungUpRequest"}.get(status, "InvalidRequest")
        self._generated(conn, None, pop, status, "Error", kind, detail, t0, method, target[: self.max_uri], len(head))

    # -- the request path -----------------------------------------------------------------------
    def handle(self, conn: ViewerProtocol, req: Request) -> None:
        headers = req.headers
        pop = self.pops[self.selector.pick(headers.get("x-edge-pop"), conn.client_ip)]
        method = req.method
        if method != "GET" and method != "HEAD":
            conn.keep_alive = conn.keep_alive and req.body_len == 0 and "transfer-encoding" not in headers
            self._generated(conn, req, pop, 403, "Error", "InvalidRequestMethod",
                            f"method {method} is not allowed (GET, HEAD)", req.t0)
            return
        target = req.target
        if len(target) > self.max_uri:
            self._generated(conn, req, pop, 414, "Error", "InvalidRequest", f"URL longer than {self.max_uri} bytes", req.t0)
            return
        if "%" in target and _BAD_PCT.search(target):
            self._generated(conn, req, pop, 400, "Error", "InvalidRequest", "malformed percent-encoding", req.t0)
            return
        if not target.startswith("/"):
            self._generated(conn, req, pop, 400, "Error", "InvalidRequest", "the request target must be a path",
                            req.t0)
            return
        try:
            kr = self.strategy.apply(method, req.path, req.query, headers)
        except BadRequest as err:
            self._generated(conn, req, pop, 400, "FunctionGeneratedResponse", "FunctionGeneratedResponse",
                            err.detail or err.message, req.t0)
            return
        key = kr.cache_key
        entry = pop.tier.cache.get(key)
        if entry is not None and entry.expires > _mono():
            self._serve(conn, req, pop, entry, ("pop", False), None)
            conn.done()
            return
        if self.aborting:  # a pipelined request read after the drain limit: the origin is not asked
            self._serve(conn, req, pop, self._aborted_entry(), (None, False), None)
            conn.done()
            return
        task = asyncio.ensure_future(self._miss(conn, req, pop, key, kr.origin_uri))
        self._tasks.add(task)  # keep a reference until it is done (the loop holds only a weak one)
        task.add_done_callback(self._tasks.discard)

    def _serve(
        self, conn: ViewerProtocol, req: Request, pop: Pop, entry: Entry, served: Served, rid: str | None
    ) -> None:
        rid = rid or _request_id()
        status = entry.status
        if status >= 400:
            result_type, detail, x_cache = "Error", entry.detail, b"Error from cloudfront"
            if entry.detail == "CapacityExceeded":
                result_type = "CapacityExceeded"
        else:
            result_type, detail = viewer_result(*served)
            x_cache = _X_CACHE[result_type]
        age = int(_mono() - entry.born) if result_type in ("Hit", "RefreshHit") else None
        head = entry.head
        body = entry.body
        if status == 200 and entry.etag is not None and req.headers.get("if-none-match") == entry.etag:
            status, body = 304, b""
            head = b"ETag: " + entry.etag.encode() + b"\r\n"
        sent = self._write(conn, req, pop, status, head, body, x_cache, age, rid)
        t = _perf()
        self._log(conn, req, pop, status, sent, result_type, detail, rid, entry.content_type,
                  len(entry.body), t, t)

    async def _miss(self, conn: ViewerProtocol, req: Request, pop: Pop, key: str, origin_uri: str) -> None:
        rid = _request_id()
        served: Served
        try:
            entry, served = await self._resolve(pop.chain, 0, key, origin_uri, rid, conn)
        except asyncio.CancelledError:
            if not self.aborting:
                raise
            # the drain limit passed (see the module docstring, 7.): answered and logged, not lost
            entry, served = self._aborted_entry(), (None, False)
        except Exception as err:  # never a hang or a bare 500: answer 502 and log it
            body, headers = _json_error("edge", f"edge failure: {type(err).__name__}")
            entry = self._entry(OriginResponse(502, headers, body, detail="OriginError"), 0.0)
            served = (None, False)
        if conn.closing:
            # the viewer went away before the answer: nothing sent, logged once with status 000
            # (standard-logs-reference.html, sc-status "000": the viewer closed the connection before
            # the server could respond) as an Error, detailed ClientHungUpRequest
            t = _perf()
            self._log(conn, req, pop, "000", 0, "Error", "ClientHungUpRequest", rid, None, None, t, t,  # type: ignore[arg-type]
                      resp_result="Error")
            return
        self._serve(conn, req, pop, entry, served, rid)
        conn.done()

    def _aborted_entry(self) -> Entry:
        self.aborted += 1
        body, headers = _json_error("edge", "the edge is shutting down: the origin request was abandoned")
        headers["retry-after"] = "1"
        return self._entry(OriginResponse(503, headers, body, detail="AbortedOrigin"), 0.0)

    # -- drain (SIGTERM) --------------------------------------------------------------------------
    async def drain(self, timeout: float) -> None:
        """Answer and log every request received, then close every viewer connection.

        New connections must already be refused (the caller closed the listening socket). Idle
        keep-alive connections close now; the others close after their last received request.
        Requests still waiting on the origin after ``timeout`` seconds get 503 ``AbortedOrigin``;
        a request head still arriving at the end gets its 408. Returns when no connection is left
        (a viewer that does not read its answer is cut off after one more second)."""
        self.ready = False
        conns = self.conns
        conns.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._tasks or conns.open) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._tasks:
            self.aborting = True
            for task in list(self._tasks):
                task.cancel()
            for tier in {id(t): t for p in self.pops for t in p.chain}.values():
                tier.flights.cancel()  # the origin requests are given up, not left running
        # aborted tasks answer on their next step; pipelined requests behind them are answered
        # through call_soon; then a head still arriving gets its 408 and everything closes
        grace = loop.time() + 1.0
        while self._tasks and loop.time() < grace:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        conns.close_all()
        while conns.open and loop.time() < grace + 1.0:
            await asyncio.sleep(0.01)
        for conn in list(conns.open):  # the viewer stopped reading: nothing more can reach it
            if conn.transport is not None:
                conn.transport.abort()

    # -- tiers and origin -----------------------------------------------------------------------
    def _entry(self, resp: OriginResponse, ttl: float) -> Entry:
        now = _mono()
        born = now - resp.age
        headers = resp.headers
        ct = headers.get("content-type") or "application/octet-stream"
        if resp.status == 304:
            raise AssertionError("a 304 is not an entry")
        return Entry(
            status=resp.status,
            body=resp.body,
            content_type=ct,
            etag=headers.get("etag"),
            head=_render_head(headers, len(resp.body)),
            born=born,
            expires=born + ttl,
            detail=resp.detail or ("OriginError" if resp.status >= 500 else "Error"),
            headers=headers,
        )

    async def _resolve(
        self, chain: list[Tier], i: int, key: str, uri: str, rid: str, conn: ViewerProtocol | None = None
    ) -> tuple[Entry, Served]:
        """The entry for ``key`` as seen from tier ``i``, and how it was served there (see ``Served``):
        a fresh copy here (or a fetch it collapsed onto) is served by this tier; otherwise by the tier
        above or the origin, and ``revalidated`` when this tier's expired copy was confirmed.
        ``conn``: the viewer, given for the POP tier (``i == 0``).

        The fetch is the tier's single-flight task (:mod:`edgeproof.singleflight`): a viewer that
        goes away, or is cancelled, leaves it running for the viewers that collapsed onto it."""
        tier = chain[i]
        stale = tier.cache.get(key)
        if stale is not None and stale.expires > _mono():
            return stale, (tier.kind, False)
        task, joined = tier.flights.run(key, lambda: self._fill(chain, i, key, uri, rid, stale, conn is not None))
        if conn is not None:
            tier.viewers.setdefault(key, []).append(conn)
        if joined:
            self.collapsed += 1
            entry, _ = await asyncio.shield(task)
            return entry, (tier.kind, False)
        return await asyncio.shield(task)

    async def _fill(
        self, chain: list[Tier], i: int, key: str, uri: str, rid: str, stale: Entry | None, for_viewers: bool
    ) -> tuple[Entry, Served]:
        """Tier ``i``'s one fetch of ``key`` (from the tier above or the origin), stored in its cache.
        ``for_viewers``: the POP tier, which caches only for a viewer still there."""
        tier = chain[i]
        try:
            served: Served
            if i + 1 < len(chain):
                entry, served = await self._resolve(chain, i + 1, key, uri, rid)
                if (stale is not None and stale.etag and stale.status == 200 and entry.status == 200
                        and stale.etag == entry.etag):
                    served = (served[0], True)  # this tier's expired copy is the one above: confirmed
                elif stale is not None and stale.status < 400 and serves_stale_on(entry.status):
                    entry, served = self._keep_stale(stale), (tier.kind, True)
            else:
                entry, served = await self._from_origin(key, uri, stale, rid)
            # an expired copy kept after a 5xx stays cached even when the error-caching TTL is 0
            kept = stale is not None and entry.body is stale.body and entry.born == stale.born
            # a POP caches only for a viewer still there (Canceled requests, see the module docstring)
            if not for_viewers or any(not c.closing for c in tier.viewers.get(key, ())):
                if entry.expires > _mono() or kept:
                    tier.cache.put(key, entry)
                elif stale is not None:
                    tier.cache.discard(key)
            return entry, served
        finally:
            if for_viewers:
                tier.viewers.pop(key, None)

    def _keep_stale(self, stale: Entry) -> Entry:
        """The expired copy served after its revalidation got a 5xx, fresh for the error-caching
        minimum TTL (HTTPStatusCodes.html, "The requested object is in the edge cache")."""
        return replace(stale, expires=_mono() + self.ttl.error_ttl)

    async def _from_origin(self, key: str, uri: str, stale: Entry | None, rid: str) -> tuple[Entry, Served]:
        if self.group.inflight >= self.config.max_origin_inflight:
            body, headers = _json_error("capacity", "the edge has too many origin requests in flight")
            headers["retry-after"] = "1"
            return self._entry(OriginResponse(503, headers, body, detail="CapacityExceeded"), 0.0), (None, False)
        etag = stale.etag if stale is not None and stale.status == 200 else None
        resp = await self.group.fetch(uri, etag, rid)
        if resp.status == 304:
            if stale is None or etag is None:
                body, headers = _json_error("origin", "unexpected 304 from the origin")
                resp = OriginResponse(502, headers, body, detail="OriginInvalidResponseError")
                return self._entry(resp, self.ttl.error_ttl), (None, False)
            merged = dict(stale.headers)
            merged.update(resp.headers)
            ttl = self.ttl.ttl(200, merged)
            now = _mono()
            fresh = replace(stale, born=now - resp.age, expires=now - resp.age + ttl, headers=merged,
                            head=_render_head(merged, len(stale.body)))
            return fresh, (None, True)
        if stale is not None and stale.status < 400 and serves_stale_on(resp.status):
            return self._keep_stale(stale), (None, True)
        ttl = self.ttl.ttl(resp.status, resp.headers)
        return self._entry(resp, ttl), (None, False)

    # -- admin ------------------------------------------------------------------------------------
    def invalidate(self, paths: list[str] | None = None) -> int:
        """Drop cached objects everywhere (all, or the given cache keys / ``prefix*``)."""
        tiers = {id(t): t for p in self.pops for t in p.chain}.values()
        dropped = 0
        for tier in tiers:
            if not paths or "/*" in paths:
                dropped += tier.cache.clear()
                continue
            for p in paths:
                if p.endswith("*"):
                    for k in tier.cache.ordered_keys():
                        if k.startswith(p[:-1]):
                            tier.cache.discard(k)
                            dropped += 1
                elif tier.cache.discard(p):
                    dropped += 1
        return dropped

    def stats(self) -> EdgeStats:
        """Counters for the admin API (``GET /stats``): an :class:`EdgeStats`."""
        pops: dict[str, PopStats] = {}
        totals: dict[str, int] = {}
        for p in self.pops:
            p_hits = sum(v for k, v in p.counts.items() if classify(k, "GET") == "hit")
            p_misses = sum(v for k, v in p.counts.items() if classify(k, "GET") == "miss")
            pops[p.id] = {
                "requests": p.requests,
                "hits": p_hits,
                "misses": p_misses,
                "hit_rate": hit_rate(p_hits, p_misses),
                "results": dict(p.counts),
                "detailed": dict(p.detailed),
                "sc_bytes": p.sc_bytes,
                "cache_objects": len(p.tier.cache),
                "cache_bytes": p.tier.cache.bytes,
                "evictions": p.tier.cache.evictions,
            }
            for k, v in p.counts.items():
                totals[k] = totals.get(k, 0) + v
        detailed: dict[str, int] = {}
        for p in self.pops:
            for k, v in p.detailed.items():
                detailed[k] = detailed.get(k, 0) + v
        classes = {k: classify(k, "GET") for k in totals}
        hits = sum(v for k, v in totals.items() if classes[k] == "hit")
        misses = sum(v for k, v in totals.items() if classes[k] == "miss")
        tiers: dict[str, TierStats] = {
            t.name: {"kind": t.kind, "objects": len(t.cache), "bytes": t.cache.bytes, "evictions": t.cache.evictions}
            for t in [*self.regional.values(), *([self.shield] if self.shield else [])]
        }
        g = self.group
        return {
            "requests": sum(p.requests for p in self.pops),
            "hits": hits,
            "misses": misses,
            "excluded": sum(v for k, v in totals.items() if classes[k] not in ("hit", "miss")),
            "results": totals,
            "detailed": detailed,
            "hit_rate": hit_rate(hits, misses),
            "collapsed": self.collapsed,
            "origin_requests": g.requests["primary"] + g.requests["secondary"],
            "origin": {
                "primary": g.requests["primary"],
                "secondary": g.requests["secondary"],
                "failovers": g.failovers,
                "retries": g.retries,
                "inflight": g.inflight,
                "backends": dict(g.backends.requests),
            },
            "pops": pops,
            "tiers": tiers,
            "viewers": {
                "open": len(self.conns.open),
                "header_timeouts": self.conns.header_timeouts,
                "idle_closed": self.conns.idle_closed,
            },
            "drain_aborted": self.aborted,
            "logs": {
                "pending": self.logs.pending if self.logs else 0,
                "written": self.logs.lines_written if self.logs else 0,
                "errors": list(self.logs.upload_errors[-5:]) if self.logs else [],
                "realtime_written": self.logs.realtime_lines_written if self.logs else 0,
            },
        }
