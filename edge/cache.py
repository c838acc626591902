"""Cache entries, the byte-bounded LRU cache of one POP (or tier), and the TTL policy.

TTL policy (like a CloudFront cache policy with min / default / max TTL):

- ``Cache-Control: s-maxage`` (else ``max-age``) → that many seconds, clamped to [min, max];
- ``no-store``, ``no-cache`` or ``private`` → min TTL (0 means: not cached);
- ``Expires`` (and no max-age) → seconds until then, clamped to [min, max];
- nothing → default TTL.

Error responses (4xx/5xx) follow :func:`edgeproof.cloudfront.error_caching_ttl`, CloudFront's rules
from "How CloudFront processes HTTP 4xx and 5xx status codes from your origin" (HTTPStatusCodes.html)
and "Control how long CloudFront caches errors" (custom-error-pages-expiration.html): which statuses
are cached at all, which need a ``max-age``, the greater of the origin's ``max-age``/``Expires`` and
the error-caching minimum TTL (``error_ttl``, 10 s by default), ``no-store`` honoured for 404, 410,
414 and 501 only. The origin's ``Age`` header is honoured.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field

from edgeproof.cloudfront import (
    DEFAULT_TTL,
    ERROR_CACHING_MIN_TTL,
    MAX_TTL,
    cache_directives,
    error_caching_ttl,
)
from edgeproof.lru import ByteLru

__all__ = ["Entry", "LruCache", "TtlPolicy"]

_ENTRY_OVERHEAD = 256  # bytes charged per entry for key, headers and bookkeeping


@dataclass(slots=True)
class Entry:
    """One cached (or just fetched) response."""

    status: int
    body: bytes
    content_type: str
    etag: str | None
    #: pre-rendered ``Name: value\r\n`` lines for Content-Type, Content-Length, ETag, Cache-Control …
    head: bytes
    #: monotonic time the origin produced the object (minus its Age): the Age header counts from here
    born: float
    #: monotonic time after which the entry must be revalidated
    expires: float
    #: x-edge-detailed-result-type for an error entry (Error, OriginError, OriginConnectError …)
    detail: str = "Error"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    @property
    def size(self) -> int:
        return len(self.body) + len(self.head) + _ENTRY_OVERHEAD


def _entry_size(entry: Entry) -> int:
    return entry.size


class LruCache(ByteLru[str, Entry]):
    """The cache of one POP or tier: the kernel's byte-bounded LRU (:mod:`edgeproof.lru`), each entry
    charged :attr:`Entry.size` (body, pre-rendered head and a fixed overhead)."""

    __slots__ = ()

    def __init__(self, name: str, capacity_bytes: int) -> None:
        super().__init__(capacity_bytes, _entry_size, name=name)


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TtlPolicy:
    """min / default / max TTL and the error-caching TTL, in seconds."""

    min_ttl: float = 0.0
    default_ttl: float = DEFAULT_TTL
    max_ttl: float = MAX_TTL
    #: the error-caching minimum TTL
    error_ttl: float = ERROR_CACHING_MIN_TTL

    def __post_init__(self) -> None:
        if not 0 <= self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ValueError("TTLs must satisfy 0 <= min <= default <= max")
        if self.error_ttl < 0:
            raise ValueError("the error-caching TTL must be >= 0")

    def ttl(self, status: int, headers: dict[str, str], now: float | None = None) -> float:
        """Seconds to cache a response with ``status`` and (lower-case) ``headers``; 0 = do not cache."""
        cc_header = headers.get("cache-control", "")
        if status >= 400:
            expires_in = self._expires_in(headers, now) if "expires" in headers else None
            return error_caching_ttl(status, cc_header, expires_in, min_ttl=self.error_ttl, max_ttl=self.max_ttl)
        cc = cache_directives(cc_header)
        if status not in (200, 203, 206, 300, 301, 410):
            return 0.0
        if "no-store" in cc or "no-cache" in cc or "private" in cc:
            return self.min_ttl
        age = _seconds(cc.get("s-maxage", cc.get("max-age")))
        if age is None and "expires" in headers:
            age = int(self._expires_in(headers, now))
        if age is None:
            return self.default_ttl
        return float(min(max(age, self.min_ttl), self.max_ttl))

    @staticmethod
    def _expires_in(headers: dict[str, str], now: float | None) -> float:
        """Seconds from now to the ``Expires`` header (0 when invalid or past)."""
        try:
            when = email.utils.parsedate_to_datetime(headers["expires"]).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            when = 0.0  # an invalid Expires means "already expired" (RFC 9111)
        return max(0.0, when - (time.time() if now is None else now))
