"""``edgeproof origin serve`` settings, declared once: each field made with
:func:`edgeproof.settings.setting` is a ``--flag`` (underscores become dashes) with its default, check
and help (:data:`ORIGIN_SETTINGS`).

That one table builds the flags (:func:`add_arguments`; ``--help`` shows every default), turns them
into the frozen :class:`OriginConfig` (:func:`from_args`) and checks every value, also of an
``OriginConfig(...)`` built in code: a boolean is never a number, and an error names the flag and
what was expected (``--queue-limit: must be >= 0, got -1``; exit status 2). docs/origin.md lists the
same defaults (tests/test_settings_tables.py checks both).

The output and source limits default to :data:`edgeproof.origin.limits.DEFAULT_LIMITS`'s, so the
one checker and the flags cannot disagree. ``--max-url-bytes`` 8192 is CloudFront's "Maximum length
of a URL" (Developer Guide, "Quotas", cloudfront-limits.html); ``--header-timeout`` and
``--keepalive-timeout`` follow nginx (``client_header_timeout`` shortened to 10 s,
``keepalive_timeout`` 75 s, longer than CloudFront's 5 s origin keep-alive so the edge closes first).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from edgeproof.origin.limits import DEFAULT_LIMITS, Limits

from edgeproof.cloudfront import MAX_URL_LENGTH
from edgeproof.errors import UsageError
from edgeproof.settings import Settings, above, at_least, between, setting

__all__ = ["DEFAULT_CACHE_CONTROL", "ORIGIN_SETTINGS", "OriginConfig", "add_arguments", "from_args"]

DEFAULT_CACHE_CONTROL = "public, max-age=2592000, immutable"
_MB = 1024 * 1024
_BIND_EXAMPLE = "127.0.0.1:9464"


def _split_bind(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:9464``; ``:9464`` = no host) as (host, port), None when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.removeprefix("[").removesuffix("]"), int(port)


def _host_port(text: str) -> str | None:
    return None if _split_bind(text) else f"must be HOST:PORT with a port 0..65535, e.g. {_BIND_EXAMPLE}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginConfig:
    """Everything the server needs; one field per ``--flag``."""

    sources: str = setting("./sources", "source store: a folder or s3://bucket/prefix")
    derivatives: str = setting("./derivatives", "derivative store: a folder or s3://bucket/prefix")
    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(8080, "port to listen on (shared by all workers with SO_REUSEPORT)", check=between(0, 65535))
    workers: int = setting(0, "worker processes sharing the port; 0 = one per core", check=at_least(0))
    max_concurrency: int = setting(1, "transforms running at once per worker (1 per core: best tail latency)",
                                   check=at_least(1))
    queue_limit: int = setting(32, "transforms waiting per worker; past it: 503 + Retry-After at once",
                               check=at_least(0))
    deadline_ms: int = setting(10_000, "per-request deadline (queue wait + transform); past it: 503",
                               check=at_least(1))
    local_cache_mb: int = setting(0, "per-worker in-memory LRU cache of variants, MB (0 = off)", check=at_least(0))
    signing_key: tuple[str, ...] = setting(
        (), "HMAC-SHA256 URL signing key; repeat for rotation (env EDGEPROOF_SIGNING_KEYS, comma-separated)",
        metavar="KEY")
    presets: str | None = setting(None, "TOML file with [presets.NAME] tables (added to thumb/card/pdp/zoom) "
                                        "and [policies.\"/prefix/\"] tables", metavar="FILE")
    presets_table: str | None = setting(None, "DynamoDB table of presets and path policies, read alongside the "
                                              "source; --presets is the fallback", metavar="TABLE")
    presets_ttl: float = setting(60.0, "seconds a worker keeps what it read from --presets-table "
                                       "(0 = read it for every request)", check=at_least(0))
    server_timing: bool = setting(False, "add a Server-Timing header: start/end (monotonic ms) of the presets-table "
                                         "and source reads of the request")
    cache_control: str = setting(DEFAULT_CACHE_CONTROL, "Cache-Control header of image responses")
    write_derivatives: bool = setting(True, "store each new variant in the derivative store")
    max_width: int = setting(DEFAULT_LIMITS.max_width, "largest output width (400 above)", check=at_least(1))
    max_height: int = setting(DEFAULT_LIMITS.max_height, "largest output height (400 above)", check=at_least(1))
    max_source_mp: float = setting(DEFAULT_LIMITS.max_source_pixels / 1_000_000,
                                   "largest source, megapixels from the header (422 above)", check=above(0))
    max_source_mb: float = setting(DEFAULT_LIMITS.max_source_bytes / _MB, "largest source, MB (413 above)",
                                   check=above(0))
    avif_effort: int = setting(4, "AVIF encoder effort 0..9 (4 = sharp's default; 3 is ~4x faster, files ~same size)",
                               check=between(0, 9))
    vips_threads: int = setting(1, "libvips threads per transform (parallelism comes from workers x concurrency)",
                                check=at_least(0))
    io_threads: int = setting(16, "threads per worker for store reads and writes", check=at_least(1))
    drain_seconds: float = setting(30.0, "on SIGTERM, how long to wait for in-flight requests and writes",
                                   check=at_least(0))
    header_timeout: float = setting(10.0, "seconds for a request's line and headers to arrive; past it: 408 + close "
                                          "(nginx client_header_timeout; 0 = off)", check=at_least(0))
    keepalive_timeout: float = setting(75.0, "seconds an idle keep-alive connection stays open "
                                             "(nginx keepalive_timeout)", check=above(0))
    max_url_bytes: int = setting(MAX_URL_LENGTH, "longest URL (request-target) in bytes; longer: 414 (CloudFront's URL quota)",
                                 check=at_least(16))
    metrics_bind: str | None = setting(None, "serve /metrics on this HOST:PORT only, not on the image port "
                                             "(like imgproxy's IMGPROXY_PROMETHEUS_BIND)", check=_host_port,
                                       metavar="HOST:PORT", shown_default="the image port")

    def __post_init__(self) -> None:
        # every setting through the table's one validator, the errors naming the flag (keyword
        # construction too); the value kept is the checked one (a whole number as a float, a list as a tuple)
        for r in ORIGIN_SETTINGS:
            object.__setattr__(self, r.name, r.validate(getattr(self, r.name), table="", key=r.option))
        if self.metrics_bind is not None and self.metrics_address == (self.host, self.port):
            raise UsageError("--metrics-bind must differ from --host/--port")

    @property
    def metrics_address(self) -> tuple[str, int]:
        """``--metrics-bind HOST:PORT`` (``[::1]:9464``; ``:9464`` = on ``--host``) as (host, port)."""
        text = self.metrics_bind or ""
        split = _split_bind(text)
        if split is None:
            raise UsageError(f"bad --metrics-bind {text!r}", detail=f"expected HOST:PORT, e.g. {_BIND_EXAMPLE}")
        return split[0] or self.host, split[1]

    @property
    def worker_count(self) -> int:
        """``--workers``, or one per core this process may run on."""
        if self.workers:
            return self.workers
        try:
            return len(os.sched_getaffinity(0)) or 1
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    @property
    def limits(self) -> Limits:
        return Limits(
            max_width=self.max_width,
            max_height=self.max_height,
            max_source_pixels=int(self.max_source_mp * 1_000_000),
            max_source_bytes=int(self.max_source_mb * _MB),
        )

    @property
    def signing_keys(self) -> tuple[str, ...]:
        env = tuple(k for k in os.environ.get("EDGEPROOF_SIGNING_KEYS", "").split(",") if k)
        return tuple(self.signing_key) + env


#: every ``origin serve`` flag: its default, check and help
ORIGIN_SETTINGS: Settings[OriginConfig] = Settings.of(OriginConfig, "origin")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """One ``--flag`` per :class:`OriginConfig` setting, its help ending with its default."""
    ORIGIN_SETTINGS.add_arguments(parser)


def from_args(args: argparse.Namespace) -> OriginConfig:
    """The config of the flags given (the others at their defaults), every value checked."""
    return OriginConfig(**ORIGIN_SETTINGS.from_args(args))
