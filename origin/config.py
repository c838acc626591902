"""``edgeproof origin serve`` settings, declared once: each field is a CLI flag, a default, and help.

:func:`add_arguments` builds the argparse flags from the fields, :func:`from_args` makes the
frozen :class:`OriginConfig`; docs/origin.md lists the same table (a test checks every flag is
documented).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from edgeproof.origin.limits import Limits

from edgeproof.errors import UsageError

__all__ = ["DEFAULT_CACHE_CONTROL", "OriginConfig", "add_arguments", "from_args"]

DEFAULT_CACHE_CONTROL = "public, max-age=2592000, immutable"


def _opt(default: Any, help_text: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginConfig:
    """Everything the server needs; one field per ``--flag`` (underscores become dashes)."""

    sources: str = _opt("./sources", "source store: a folder or s3://bucket/prefix")
    derivatives: str = _opt("./derivatives", "derivative store: a folder or s3://bucket/prefix")
    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8080, "port to listen on (shared by all workers with SO_REUSEPORT)")
    workers: int = _opt(0, "worker processes sharing the port; 0 = one per core")
    max_concurrency: int = _opt(1, "transforms running at once per worker (1 per core: best tail latency)")
    queue_limit: int = _opt(32, "transforms waiting per worker; past it: 503 + Retry-After at once")
    deadline_ms: int = _opt(10_000, "per-request deadline (queue wait + transform); past it: 503")
    local_cache_mb: int = _opt(0, "per-worker in-memory LRU cache of variants, MB (0 = off)")
    signing_key: tuple[str, ...] = _opt(
        (), "HMAC-SHA256 URL signing key; repeat for rotation (env EDGEPROOF_SIGNING_KEYS, comma-separated)",
        action="append",
    )
    presets: str | None = _opt(None, "TOML file with [presets.NAME] tables (added to thumb/card/pdp/zoom)")
    cache_control: str = _opt(DEFAULT_CACHE_CONTROL, "Cache-Control header of image responses")
    write_derivatives: bool = _opt(True, "store each new variant in the derivative store", kind="bool")
    max_width: int = _opt(4096, "largest output width (400 above)")
    max_height: int = _opt(4096, "largest output height (400 above)")
    max_source_mp: float = _opt(50.0, "largest source, megapixels from the header (422 above)")
    max_source_mb: float = _opt(50.0, "largest source, MB (413 above)")
    avif_effort: int = _opt(4, "AVIF encoder effort 0..9 (4 = sharp's default; 3 is ~4x faster, files ~same size)")
    vips_threads: int = _opt(1, "libvips threads per transform (parallelism comes from workers x concurrency)")
    io_threads: int = _opt(16, "threads per worker for store reads and writes")
    drain_seconds: float = _opt(30.0, "on SIGTERM, how long to wait for in-flight requests and writes")
    header_timeout: float = _opt(10.0, "seconds for a request's line and headers to arrive; past it: 408 + close "
                                       "(nginx client_header_timeout; 0 = off)")
    keepalive_timeout: float = _opt(75.0, "seconds an idle keep-alive connection stays open (nginx keepalive_timeout)")
    max_url_bytes: int = _opt(8192, "longest URL (request-target) in bytes; longer: 414 (CloudFront's URL quota)")
    metrics_bind: str | None = _opt(None, "serve /metrics on this HOST:PORT only, not on the image port "
                                          "(like imgproxy's IMGPROXY_PROMETHEUS_BIND); default: the image port")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"bad port {self.port}")
        if self.workers < 0 or self.max_concurrency < 1 or self.queue_limit < 0 or self.deadline_ms < 1:
            raise UsageError("--workers must be >= 0, --max-concurrency >= 1, --queue-limit >= 0, --deadline-ms >= 1")
        if not 0 <= self.avif_effort <= 9:
            raise UsageError("--avif-effort must be 0..9")
        if self.local_cache_mb < 0 or self.io_threads < 1 or self.vips_threads < 0:
            raise UsageError("--local-cache-mb must be >= 0, --io-threads >= 1, --vips-threads >= 0")
        if self.header_timeout < 0 or self.keepalive_timeout <= 0 or self.max_url_bytes < 16:
            raise UsageError("--header-timeout must be >= 0, --keepalive-timeout > 0, --max-url-bytes >= 16")
        if self.metrics_bind is not None:
            host, port = self.metrics_address  # raises UsageError when malformed
            if (host, port) == (self.host, self.port):
                raise UsageError("--metrics-bind must differ from --host/--port")

    @property
    def metrics_address(self) -> tuple[str, int]:
        """``--metrics-bind HOST:PORT`` (``[::1]:9464``; ``:9464`` = on ``--host``) as (host, port)."""
        text = self.metrics_bind or ""
        host, sep, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]") or self.host
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise UsageError(f"bad --metrics-bind {text!r}", detail="expected HOST:PORT, e.g. 127.0.0.1:9464")
        return host, int(port)

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
            max_source_bytes=int(self.max_source_mb * 1024 * 1024),
        )

    @property
    def signing_keys(self) -> tuple[str, ...]:
        env = tuple(k for k in os.environ.get("EDGEPROOF_SIGNING_KEYS", "").split(",") if k)
        return tuple(self.signing_key) + env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`OriginConfig` field."""
    for f in fields(OriginConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = str(f.metadata.get("help", ""))
        if f.metadata.get("kind") == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif f.metadata.get("action") == "append":
            parser.add_argument(flag, action="append", default=None, metavar="KEY", help=help_text)
        else:
            typ = type(default) if default is not None else str
            parser.add_argument(flag, type=typ, default=default, help=f"{help_text} (default: {default})")


def from_args(args: argparse.Namespace) -> OriginConfig:
    values = {f.name: getattr(args, f.name) for f in fields(OriginConfig) if hasattr(args, f.name)}
    values["signing_key"] = tuple(values.get("signing_key") or ())
    return OriginConfig(**values)
