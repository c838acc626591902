"""The origin group: primary = the derivative store, secondary = the transformer backends.

- Primary: a folder or ``s3://bucket/prefix`` (read through :func:`origin.stores.open_store`; the
  key is the request path without its leading ``/``, URL-decoded, query ignored as S3 does), or an
  ``http://host:port/bucket[/prefix]`` S3-compatible (or any HTTP) endpoint, fetched with GET.
- Secondary: one or more transformer base URLs (``http://127.0.0.1:8081``) balanced round-robin
  like an ALB; the set can change at run time (:class:`BackendPool`, driven by the admin API).
- Failover from primary to secondary on 403, 404, 500, 502, 503, 504 and on connection errors or
  timeouts, as a CloudFront origin group does. The secondary's answer is final, except that a
  refused connection to one backend is tried once on the next one (as an ALB stops routing to a
  target its health checks found dead).

Connection failures become a 502 (``OriginConnectError``), timeouts a 504 (``OriginCommError``),
other broken responses a 502 (``OriginError``/``OriginInvalidResponseError``): the
``x-edge-detailed-result-type`` values AWS logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from edgeproof.errors import BadRequest, ConfigError, EdgeproofError

__all__ = ["FAILOVER_STATUSES", "BackendPool", "OriginGroup", "OriginResponse"]

FAILOVER_STATUSES = frozenset({403, 404, 500, 502, 503, 504})

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
    body = json.dumps({"error": "origin", "detail": message}).encode()
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


def _store_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


class OriginGroup:
    """Fetch one object: primary first, failover to a secondary backend."""

    def __init__(
        self,
        primary: str | None,
        backends: list[str],
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.primary_spec = primary or None
        self.backends = BackendPool(list(backends))
        self._store: Any = None
        self._http_primary: str | None = None
        if self.primary_spec and self.primary_spec.startswith(("http://", "https://")):
            self._http_primary = self.primary_spec.rstrip("/")
        elif self.primary_spec:
            from origin.stores import open_store  # the one store implementation

            self._store = open_store(self.primary_spec)
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.requests = {"primary": 0, "secondary": 0}
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

    def describe(self) -> dict[str, Any]:
        return {"primary": self.primary_spec, "secondary": list(self.backends.urls)}

    async def fetch(self, origin_uri: str, etag: str | None = None, request_id: str = "") -> OriginResponse:
        """GET ``origin_uri`` through the group; with ``etag``, conditionally (304 = still valid)."""
        self.inflight += 1
        try:
            if self.primary_spec is not None:
                self.requests["primary"] += 1
                resp = await self._fetch_primary(origin_uri, etag, request_id)
                if resp.status not in FAILOVER_STATUSES or not self.backends.urls:
                    return resp
                self.failovers += 1
            # like an ALB whose health checks dropped a dead target: a refused connection is tried
            # once more on the next backend (only connection failures; nothing was sent yet)
            attempts = 2 if len(self.backends.urls) > 1 else 1
            resp = _error(502, "OriginConnectError", "no origin backend configured", "secondary", None)
            for _ in range(attempts):
                backend = self.backends.next()
                if backend is None:
                    break
                self.requests["secondary"] += 1
                resp = await self._fetch_http(backend + origin_uri, etag, request_id, "secondary", backend)
                if resp.detail != "OriginConnectError":
                    break
            return resp
        finally:
            self.inflight -= 1

    async def _fetch_primary(self, origin_uri: str, etag: str | None, request_id: str) -> OriginResponse:
        path = origin_uri.split("?", 1)[0]
        if self._http_primary is not None:
            return await self._fetch_http(self._http_primary + path, etag, request_id, "primary", None)
        key = unquote(path).lstrip("/")
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, self._store.get, key)
        except BadRequest:
            body = None  # not a valid store key: the store would answer 404
        except EdgeproofError as err:
            return _error(502, "OriginError", err.message, "primary", None)
        if body is None:
            return _error(404, "Error", "not in the derivative store", "primary", None)
        from origin.stores import content_type_for_key

        tag = _store_etag(body)
        headers = {"content-type": content_type_for_key(key), "etag": tag}
        if etag is not None and etag == tag:
            return OriginResponse(304, headers, b"", member="primary")
        return OriginResponse(200, headers, body, member="primary")

    async def _fetch_http(
        self, url: str, etag: str | None, request_id: str, member: str, backend: str | None
    ) -> OriginResponse:
        assert self._session is not None, "OriginGroup.start() not called"
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
