"""The origin group: primary = the derivative store, secondary = the transformer backends.

- Primary: a folder or ``s3://bucket/prefix`` (read through :func:`edgeproof.origin.stores.open_store`; the
  key is the request path without its leading ``/``, URL-decoded, query ignored as S3 does), or an
  ``http://host:port/bucket[/prefix]`` S3-compatible (or any HTTP) endpoint, fetched with GET.
- Secondary: one or more transformer base URLs (``http://127.0.0.1:8081``) balanced round-robin
  like an ALB; the set can change at run time (:class:`BackendPool`, driven by the admin API).
- Failover from primary to secondary on :data:`edgeproof.cloudfront.FAILOVER_STATUSES` (403, 404, 500, 502,
  503, 504), on connection failures and on
  timeouts ("Optimizing high availability with CloudFront origin failover",
  high_availability_origin_failover.html: "CloudFront fails to connect to the primary origin" / "the
  response from the primary origin takes too long (times out)"). The secondary's answer is final.
- Attempts and timeouts, as CloudFront's origin settings (DownloadDistValuesOrigin.html; "Request and
  response behavior for custom origins", RequestAndResponseBehaviorCustomOrigin.html, "Origin
  connection timeout and attempts", "Origin response timeout"): each origin is tried up to
  ``connection_attempts`` times (default 3) when the connection cannot be made within
  ``connection_timeout`` (default 10 s) or is refused, and — GET/HEAD only, which is all the edge
  sends — when no answer comes within ``response_timeout`` (default 30 s; also the longest wait
  between two packets of the answer). By default a dead primary therefore costs up to 3 × 10 s
  before failover. The secondary is the transformer pool behind one "ALB": each attempt goes to the
  next backend round-robin, so a refused backend is followed by a live one.
- The response timeout bounds a derivative-store read of the primary (folder or ``s3://``) too: a
  hung store fails over to the transformer. (An S3 REST origin's timeout is a fixed 30 s with the
  same retries in AWS, "Request and response behavior for Amazon S3 origins"; the emulator uses the
  configured value so that tests can shorten it.) The read runs on the group's own thread pool; a
  read that never returns keeps its thread until it does.

Connection failures become a 502 (``OriginConnectError``), timeouts a 504 (``OriginCommError``: "The
request timed out while connecting to the origin, or reading data from the origin"), other broken
responses a 502 (``OriginReadError``/``OriginError``/``OriginInvalidResponseError``): the
``x-edge-detailed-result-type`` values AWS logs (standard-logs-reference.html).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from edgeproof.cloudfront import (
    FAILOVER_STATUSES,
    ORIGIN_CONNECTION_ATTEMPTS,
    ORIGIN_CONNECTION_TIMEOUT,
    ORIGIN_RESPONSE_TIMEOUT,
)
from edgeproof.errors import BadRequest, ConfigError, EdgeproofError, error_body

__all__ = ["FAILOVER_STATUSES", "BackendPool", "OriginGroup", "OriginResponse"]

#: edge-made answers after which the same origin is tried again (connection failure, timeout)
_RETRIED = frozenset({"OriginConnectError", "OriginCommError"})

#: origin response headers the edge keeps (and returns to the viewer)
KEPT_HEADERS = ("content-type", "cache-control", "etag", "last-modified", "expires", "retry-after", "vary")


@dataclass(slots=True)
class OriginResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    #: x-edge-detailed-result-type when the edge itself made this answer (connect error, timeout)
    detail: str | None = None
    #: which member answered: "primary" or "secondary"
    member: str = "primary"
    backend: str | None = None
    #: the origin's own Age
    age: float = 0.0


def _error(status: int, detail: str, message: str, member: str, backend: str | None) -> OriginResponse:
    """An answer the edge makes for a failed origin request (the error tree's body, code ``origin``)."""
    body = error_body("origin", message)
    headers = {"content-type": "application/json"}
    return OriginResponse(status, headers, body, detail=detail, member=member, backend=backend)


def _normalize_backend(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"bad origin backend {url!r}", detail="expected http://HOST:PORT")
    return url


@dataclass
class BackendPool:
    """Transformer base URLs, chosen round-robin; add/remove at run time."""

    urls: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    _rr: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.urls = [_normalize_backend(u) for u in self.urls]
        for u in self.urls:
            self.requests.setdefault(u, 0)

    def next(self) -> str | None:
        if not self.urls:
            return None
        url = self.urls[next(self._rr) % len(self.urls)]
        self.requests[url] = self.requests.get(url, 0) + 1
        return url

    def add(self, url: str) -> bool:
        url = _normalize_backend(url)
        if url in self.urls:
            return False
        self.urls.append(url)
        self.requests.setdefault(url, 0)
        return True

    def remove(self, url: str) -> bool:
        url = _normalize_backend(url)
        if url not in self.urls:
            return False
        self.urls.remove(url)
        return True

    def replace(self, urls: list[str]) -> None:
        new = [_normalize_backend(u) for u in urls]
        self.urls = list(dict.fromkeys(new))
        for u in self.urls:
            self.requests.setdefault(u, 0)


class OriginGroup:
    """Fetch one object: primary first, failover to a secondary backend."""

    def __init__(
        self,
        primary: str | None,
        backends: list[str],
        *,
        connection_attempts: int = ORIGIN_CONNECTION_ATTEMPTS,
        connect_timeout: float = ORIGIN_CONNECTION_TIMEOUT,
        response_timeout: float = ORIGIN_RESPONSE_TIMEOUT,
        store_threads: int = 16,
    ) -> None:
        self.primary_spec = primary or None
        self.backends = BackendPool(list(backends))
        self._store: Any = None
        self._http_primary: str | None = None
        if self.primary_spec and self.primary_spec.startswith(("http://", "https://")):
            self._http_primary = self.primary_spec.rstrip("/")
        elif self.primary_spec:
            from edgeproof.origin.stores import open_store  # the one store implementation

            self._store = open_store(self.primary_spec)
        self.attempts = connection_attempts
        self.response_timeout = response_timeout
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=response_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._store_threads = store_threads
        #: origin requests sent (every attempt counts), by member
        self.requests = {"primary": 0, "secondary": 0}
        #: attempts after the first (connection failures, response timeouts)
        self.retries = 0
        self.failovers = 0
        self.inflight = 0

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=512, ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, auto_decompress=False
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def describe(self) -> dict[str, Any]:
        return {"primary": self.primary_spec, "secondary": list(self.backends.urls)}

    async def fetch(self, origin_uri: str, etag: str | None = None, request_id: str = "") -> OriginResponse:
        """GET ``origin_uri`` through the group; with ``etag``, conditionally (304 = still valid)."""
        self.inflight += 1
        try:
            if self.primary_spec is not None:
                resp = await self._attempts("primary", lambda: self._fetch_primary(origin_uri, etag, request_id))
                if resp.status not in FAILOVER_STATUSES or not self.backends.urls:
                    return resp
                self.failovers += 1

            async def secondary() -> OriginResponse:
                backend = self.backends.next()  # one ALB in front of the pool: each attempt is balanced
                if backend is None:
                    return _error(502, "OriginConnectError", "no origin backend configured", "secondary", None)
                return await self._fetch_http(backend + origin_uri, etag, request_id, "secondary", backend)

            return await self._attempts("secondary", secondary)
        finally:
            self.inflight -= 1

    async def _attempts(self, member: str, once: Callable[[], Awaitable[OriginResponse]]) -> OriginResponse:
        """Up to ``attempts`` tries of one origin: again after a connection failure or a timeout."""
        resp = _error(502, "OriginConnectError", "no attempt made", member, None)
        for attempt in range(self.attempts):
            if attempt:
                self.retries += 1
            resp = await once()
            if resp.detail not in _RETRIED:
                break
            if member == "secondary" and not self.backends.urls:
                break
        return resp

    async def _fetch_primary(self, origin_uri: str, etag: str | None, request_id: str) -> OriginResponse:
        path = origin_uri.split("?", 1)[0]
        if self._http_primary is not None:
            return await self._fetch_http(self._http_primary + path, etag, request_id, "primary", None)
        self.requests["primary"] += 1
        key = unquote(path).lstrip("/")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._store_threads, thread_name_prefix="edge-store")
        read = asyncio.get_running_loop().run_in_executor(self._pool, self._store.get, key)
        try:
            body = await asyncio.wait_for(read, self.response_timeout)
        except TimeoutError:
            return _error(504, "OriginCommError", "the derivative store did not answer in time", "primary", None)
        except BadRequest:
            body = None  # not a valid store key: the store would answer 404
        except EdgeproofError as err:
            return _error(502, "OriginError", err.message, "primary", None)
        if body is None:
            return _error(404, "Error", "not in the derivative store", "primary", None)
        from edgeproof.origin.stores import content_type_for_key, etag_for

        tag = etag_for(body)  # the ETag the origin itself sends for these bytes (and S3 for the object)
        headers = {"content-type": content_type_for_key(key), "etag": tag}
        if etag is not None and etag == tag:
            return OriginResponse(304, headers, b"", member="primary")
        return OriginResponse(200, headers, body, member="primary")

    async def _fetch_http(
        self, url: str, etag: str | None, request_id: str, member: str, backend: str | None
    ) -> OriginResponse:
        assert self._session is not None, "OriginGroup.start() not called"
        self.requests[member] += 1
        headers = {"User-Agent": "Amazon CloudFront", "Via": "1.1 edgeproof (CloudFront)"}
        if request_id:
            headers["X-Amz-Cf-Id"] = request_id
        if etag:
            headers["If-None-Match"] = etag
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                body = await resp.read()
                kept = {h: resp.headers[h] for h in KEPT_HEADERS if h in resp.headers}
                try:
                    age = float(resp.headers.get("Age", "0"))
                except ValueError:
                    age = 0.0
                return OriginResponse(resp.status, kept, body, member=member, backend=backend, age=age)
        except TimeoutError:
            return _error(504, "OriginCommError", "origin timed out", member, backend)
        except aiohttp.ClientConnectionError as err:
            if isinstance(err, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
                return _error(502, "OriginReadError", "origin closed the connection", member, backend)
            return _error(502, "OriginConnectError", "cannot connect to origin", member, backend)
        except aiohttp.ClientResponseError:
            return _error(502, "OriginInvalidResponseError", "invalid origin response", member, backend)
        except aiohttp.ClientError:
            return _error(502, "OriginError", "origin request failed", member, backend)
