"""The edge's settings, declared once: each field made with :func:`edgeproof.settings.setting` is a
``edge serve`` flag with its default, check and help (:data:`EDGE_SETTINGS`, :data:`TTL_SETTINGS`,
:data:`SERVE_SETTINGS`; the CLI builds its flags and an :class:`EdgeConfig` from them, docs/edge.md
lists the same defaults and a test checks both).

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
from typing import Any

from edgeproof.cloudfront import (
    DEFAULT_TIER,
    MAX_URL_LENGTH,
    ORIGIN_CONNECTION_ATTEMPTS,
    ORIGIN_CONNECTION_TIMEOUT,
    ORIGIN_RESPONSE_TIMEOUT,
    TIERS,
)
from edgeproof.errors import ConfigError
from edgeproof.settings import Settings, above, at_least, between, setting

from .cache import TtlPolicy

__all__ = ["EDGE_SETTINGS", "SERVE_SETTINGS", "TTL_SETTINGS", "EdgeConfig", "ServeOptions"]


def _seconds_up_to(hi: float) -> Any:
    return lambda v: None if 0 < v <= hi else f"must be > 0 and <= {hi:g} seconds (as CloudFront)"


def _pop_id(text: str) -> str | None:
    ok = len(text) >= 4 and text[:3].isalpha() and text[:3].isupper() and text[3:].replace("-", "").isalnum()
    return None if ok else "must look like an edge location id (IAD89-C1: three capital letters, then digits)"


def _alnum(text: str) -> str | None:
    return None if text.isalnum() else "must be letters and digits (like E2QWRUHEXAMPLE)"


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    strategy: str = setting("canonical", "cache-key strategy name or TOML file (edgeproof strategies list)")
    pops: int = setting(4, "number of POPs, each with its own cache", check=between(1, 1000))
    #: explicit POP ids (then ``pops`` is their number); default: the first ``pops`` of the built-in list
    pop_ids: tuple[str, ...] = setting((), "a POP id such as IAD12-C2, repeatable: these POPs instead of the first "
                                           "--pops of the built-in list (its region from the airport code)",
                                       flag="--pop-id", metavar="ID", item_check=_pop_id)
    #: ``pop`` (POP caches only), ``regional`` (+ regional edge caches, CloudFront's default),
    #: ``shield`` (+ Origin Shield); :data:`edgeproof.cloudfront.TIERS`
    tier: str = setting(DEFAULT_TIER, "cache tiers: pop (POP caches only), regional (+ regional edge caches, which "
                                      "every CloudFront distribution has), shield (+ one Origin Shield)",
                        choices=TIERS)
    capacity_mb: float = setting(256.0, "cache size per POP in MiB", check=above(0))
    #: regional / shield cache size; default: 4 × the POP capacity
    tier_capacity_mb: float | None = setting(None, "cache size per regional cache / Origin Shield in MiB",
                                             check=above(0), shown_default="4 x --capacity-mb")
    ttl: TtlPolicy = field(default_factory=TtlPolicy)
    distribution_id: str = setting("EDGEPROOF00001", "the distribution id: log file prefix", check=_alnum)
    #: the distribution's domain (cs(Host) in logs); default dXXXXXXXXXXXXX.cloudfront.net from the id
    domain: str | None = setting(None, "distribution domain for cs(Host)", shown_default="dXXXX.cloudfront.net")
    #: origin fetches in flight above which new misses get 503 CapacityExceeded
    max_origin_inflight: int = setting(1024, "origin requests in flight above which misses get 503 CapacityExceeded",
                                       check=at_least(1))
    #: CloudFront's quotas (not flags): the longest URL and request head ("Quotas", cloudfront-limits.html)
    max_uri: int = MAX_URL_LENGTH
    max_head: int = 20480
    #: tries per origin (connection failures and, for GET/HEAD, response timeouts), 1..3
    origin_connection_attempts: int = setting(
        ORIGIN_CONNECTION_ATTEMPTS, "tries per origin after a connection failure or a response timeout (as "
                                    "CloudFront, 1-3)", check=between(1, 3))
    #: seconds to establish a connection to an origin
    origin_connection_timeout: float = setting(
        ORIGIN_CONNECTION_TIMEOUT, "seconds to connect to an origin (AWS allows 1-10)",
        check=_seconds_up_to(10), aliases=("--origin-connect-timeout",))
    #: seconds to wait for the origin's answer, and between two packets of it; also bounds a
    #: derivative-store read of the primary
    origin_response_timeout: float = setting(
        ORIGIN_RESPONSE_TIMEOUT, "seconds to wait for an origin's answer and between its packets; also bounds a "
                                 "derivative-store read (AWS allows 1-60)",
        check=_seconds_up_to(60), aliases=("--origin-read-timeout",))
    #: folder for real-time log records (CloudFront's real-time log format), None for none
    realtime_log_dir: str | None = setting(
        None, "also write CloudFront real-time log records (tab-separated, AWS's 40 canonical fields incl. "
              "cs-accept) to hourly .gz files in DIR", flag="--realtime-logs", metavar="DIR")
    #: seconds a viewer has to send a whole request head (from its first byte, or from the
    #: connection's opening for the first request) before a 408 and close (nginx client_header_timeout)
    header_timeout: float = setting(10.0, "seconds a viewer has to send a whole request head, else 408 and close, "
                                          "logged (nginx client_header_timeout)", check=above(0))
    #: seconds a keep-alive connection may sit idle between requests before it is closed (nginx
    #: keepalive_timeout); nothing is logged, as no request was made
    idle_timeout: float = setting(75.0, "seconds an idle keep-alive viewer connection stays open between requests "
                                        "(nginx keepalive_timeout)", check=above(0))
    #: seconds SIGTERM waits for requests in flight before answering the rest 503 (``AbortedOrigin``)
    drain_timeout: float = setting(5.0, "on SIGTERM, seconds to wait for requests in flight; the rest are answered "
                                        "503 (AbortedOrigin) and logged", check=at_least(0))

    def __post_init__(self) -> None:
        # every setting through its table's check, the errors naming the flag (keyword construction too)
        for r in EDGE_SETTINGS:
            r.validate(getattr(self, r.name), table="", key=r.option)
        if self.pop_ids:
            if len(set(self.pop_ids)) != len(self.pop_ids):
                raise ConfigError("--pop-id: each POP id once")
            object.__setattr__(self, "pops", len(self.pop_ids))

    @property
    def pop_list(self) -> list[str]:
        """The POP ids this edge runs (:func:`edgeproof.edge.pops.pop_ids` unless given)."""
        from .pops import pop_ids

        return list(self.pop_ids) if self.pop_ids else pop_ids(self.pops)

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


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """``edge serve``'s flags that are not the edge's behaviour: where it listens, its origins, its logs."""

    port: int | None = setting(None, "viewer port")
    host: str = setting("127.0.0.1", "viewer (and admin) bind address")
    origin_group: str | None = setting(
        None, "primary = derivative store (folder, s3://bucket/prefix or http:// endpoint; 'none' for none), then "
              "one or more transformer URLs (http://127.0.0.1:8081), round-robin",
        metavar="PRIMARY,BACKEND[,BACKEND...]")
    backend: tuple[str, ...] = setting((), "another transformer backend (repeatable); same as listing it in "
                                           "--origin-group", metavar="URL")
    log_dir: str | None = setting(None, "folder for the hourly gzipped standard logs")
    log_bucket: str | None = setting(None, "also upload each log file there (boto3; honours AWS_ENDPOINT_URL)",
                                     metavar="s3://BUCKET[/PREFIX]")
    log_flush_interval: float = setting(1.0, "seconds between log flushes", check=above(0))
    admin_port: int | None = setting(None, "port of the admin API (/readyz, /stats, /backends …)")


#: the edge's behaviour (:class:`EdgeConfig`), the cache policy's TTLs (:class:`~.cache.TtlPolicy`,
#: defaults from edgeproof.cloudfront), and the serve options: together every ``edge serve`` flag
EDGE_SETTINGS: Settings[EdgeConfig] = Settings.of(EdgeConfig, "edge")
TTL_SETTINGS: Settings[TtlPolicy] = Settings.of(
    TtlPolicy, "ttl",
    min_ttl={"help": "cache policy minimum TTL, seconds"},
    default_ttl={"help": "cache policy default TTL, seconds"},
    max_ttl={"help": "cache policy maximum TTL, seconds"},
    error_ttl={"help": "error caching minimum TTL, seconds: how long a cached 4xx/5xx (or an expired copy served "
                       "after a 5xx) is kept when the origin gives no longer max-age"},
)
SERVE_SETTINGS: Settings[ServeOptions] = Settings.of(ServeOptions, "serve")
