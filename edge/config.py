"""The edge's settings, declared once (the CLI builds an :class:`EdgeConfig` from its flags).

Defaults are CloudFront's, from :mod:`edgeproof.cloudfront`: regional edge caches on (``tier``
``regional``; "How CloudFront works with regional edge caches", HowCloudFrontWorks.html), origin
connection attempts 3, connection timeout 10 s, response timeout 30 s ("Values that you specify when
you create or update a distribution", DownloadDistValuesOrigin.html). AWS accepts 1–3 attempts, a
1–10 s connection timeout and a 1–60 s response timeout; the emulator keeps the attempt range and
allows shorter (sub-second) timeouts so that tests can drive them.

The viewer-side limits are not CloudFront settings (AWS does not publish its edge servers' client
timeouts); they follow nginx's, the peer the edge is benchmarked against: ``header_timeout`` is
``client_header_timeout`` shortened from nginx's 60 s to 10 s (a browser sends its head in one
packet; a slowloris connection should not hold a slot for a minute), ``idle_timeout`` 75 s is
nginx's ``keepalive_timeout``. ``drain_timeout`` (5 s) is how long a
SIGTERM waits for requests still in flight: below the 10 s grace the rehearsal gives a child before
SIGKILL (``edgeproof.rehearsal.stack``), so the edge still answers the rest and flushes its logs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from edgeproof.cloudfront import (
    DEFAULT_TIER,
    ORIGIN_CONNECTION_ATTEMPTS,
    ORIGIN_CONNECTION_TIMEOUT,
    ORIGIN_RESPONSE_TIMEOUT,
    TIERS,
)
from edgeproof.errors import ConfigError

from .cache import TtlPolicy

__all__ = ["EdgeConfig"]


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    strategy: str = "canonical"
    pops: int = 4
    #: ``pop`` (POP caches only), ``regional`` (+ regional edge caches, CloudFront's default),
    #: ``shield`` (+ Origin Shield); :data:`edgeproof.cloudfront.TIERS`
    tier: str = DEFAULT_TIER
    capacity_mb: float = 256.0
    #: regional / shield cache size; default: 4 × the POP capacity
    tier_capacity_mb: float | None = None
    ttl: TtlPolicy = field(default_factory=TtlPolicy)
    distribution_id: str = "EDGEPROOF00001"
    #: the distribution's domain (cs(Host) in logs); default dXXXXXXXXXXXXX.cloudfront.net from the id
    domain: str | None = None
    #: origin fetches in flight above which new misses get 503 CapacityExceeded
    max_origin_inflight: int = 1024
    max_uri: int = 8192
    max_head: int = 20480
    #: tries per origin (connection failures and, for GET/HEAD, response timeouts), 1..3
    origin_connection_attempts: int = ORIGIN_CONNECTION_ATTEMPTS
    #: seconds to establish a connection to an origin
    origin_connection_timeout: float = ORIGIN_CONNECTION_TIMEOUT
    #: seconds to wait for the origin's answer, and between two packets of it; also bounds a
    #: derivative-store read of the primary
    origin_response_timeout: float = ORIGIN_RESPONSE_TIMEOUT
    #: folder for real-time log records (CloudFront's real-time log format), None for none
    realtime_log_dir: str | None = None
    #: seconds a viewer has to send a whole request head (from its first byte, or from the
    #: connection's opening for the first request) before a 408 and close (nginx client_header_timeout)
    header_timeout: float = 10.0
    #: seconds a keep-alive connection may sit idle between requests before it is closed (nginx
    #: keepalive_timeout); nothing is logged, as no request was made
    idle_timeout: float = 75.0
    #: seconds SIGTERM waits for requests in flight before answering the rest 503 (``AbortedOrigin``)
    drain_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.pops < 1 or self.pops > 1000:
            raise ConfigError("--pops must be 1..1000")
        if self.tier not in TIERS:
            raise ConfigError(f"unknown tier {self.tier!r}", detail=f"--tier must be one of {', '.join(TIERS)}")
        if self.capacity_mb <= 0 or (self.tier_capacity_mb is not None and self.tier_capacity_mb <= 0):
            raise ConfigError("cache capacities must be > 0 MB")
        if not self.distribution_id.isalnum():
            raise ConfigError("--distribution-id must be letters and digits (like E2QWRUHEXAMPLE)")
        if self.max_origin_inflight < 1:
            raise ConfigError("--max-origin-inflight must be >= 1")
        if not 1 <= self.origin_connection_attempts <= 3:
            raise ConfigError("--origin-connection-attempts must be 1, 2 or 3 (as CloudFront)")
        if not (0 < self.origin_connection_timeout <= 10):
            raise ConfigError("--origin-connection-timeout must be > 0 and <= 10 seconds (as CloudFront)")
        if not (0 < self.origin_response_timeout <= 60):
            raise ConfigError("--origin-response-timeout must be > 0 and <= 60 seconds (as CloudFront)")
        for flag, value in (("--header-timeout", self.header_timeout), ("--idle-timeout", self.idle_timeout)):
            if not value > 0:
                raise ConfigError(f"{flag} must be > 0 seconds")
        if not self.drain_timeout >= 0:
            raise ConfigError("--drain-timeout must be >= 0 seconds")

    @property
    def host(self) -> str:
        if self.domain:
            return self.domain
        digest = hashlib.sha1(self.distribution_id.encode(), usedforsecurity=False).hexdigest()[:13]
        return f"d{digest}.cloudfront.net"

    @property
    def capacity_bytes(self) -> int:
        return int(self.capacity_mb * 1024 * 1024)

    @property
    def tier_capacity_bytes(self) -> int:
        mb = self.tier_capacity_mb if self.tier_capacity_mb is not None else 4 * self.capacity_mb
        return int(mb * 1024 * 1024)
