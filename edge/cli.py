"""``edgeproof edge serve``: run the edge emulator (see docs/edge.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from edgeproof import cloudfront
from edgeproof.errors import ConfigError, UsageError

from .cache import TtlPolicy
from .config import EdgeConfig

__all__ = ["parse_origin_group", "register", "serve"]


def parse_origin_group(spec: str, extra_backends: list[str] | None = None) -> tuple[str | None, list[str]]:
    """``PRIMARY,BACKEND[,BACKEND...]`` (``;`` also separates) → (primary or None, backends).

    PRIMARY is a folder, ``s3://bucket/prefix`` or an ``http://`` S3-compatible endpoint; ``-`` or
    ``none`` (or empty) means no primary (every request goes to the transformer). Each BACKEND is a transformer
    base URL (``http://127.0.0.1:8081``), balanced round-robin.
    """
    items = [s.strip() for s in spec.replace(";", ",").split(",")]
    if not items or (len(items) == 1 and not items[0]):
        raise UsageError("--origin-group is empty", detail="expected PRIMARY,http://HOST:PORT[,http://HOST:PORT...]")
    primary = items[0] if items[0].lower() not in ("", "-", "none") else None
    if primary is not None and "://" in primary and not primary.startswith(("s3://", "http://", "https://")):
        raise UsageError(f"bad primary origin {primary!r}", detail="use a folder, s3://bucket/prefix or http://HOST:PORT/...")
    backends = [s for s in items[1:] if s] + list(extra_backends or [])
    for b in backends:
        if not b.startswith(("http://", "https://")):
            raise UsageError(f"bad transformer backend {b!r}", detail="backends are http://HOST:PORT URLs")
    if primary is None and not backends:
        raise UsageError("--origin-group needs a primary, a transformer backend, or both")
    return primary, backends


def register(parser: argparse.ArgumentParser) -> None:
    defaults = EdgeConfig()
    sub = parser.add_subparsers(dest="edge_command", metavar="SUBCOMMAND")
    p = sub.add_parser("serve", help="serve viewer requests like CloudFront (caches per POP, writes logs)",
                       description="Run the local CloudFront stand-in. See docs/edge.md.")
    p.add_argument("--port", type=int, required=True, help="viewer port")
    p.add_argument("--host", default="127.0.0.1", help="viewer bind address (default 127.0.0.1)")
    p.add_argument("--origin-group", required=True, metavar="PRIMARY,BACKEND[,BACKEND...]",
                   help="primary = derivative store (folder, s3://bucket/prefix or http:// endpoint; 'none' "
                        "for none), then one or more transformer URLs (http://127.0.0.1:8081), round-robin")
    p.add_argument("--backend", action="append", default=[], metavar="URL",
                   help="another transformer backend (repeatable); same as listing it in --origin-group")
    p.add_argument("--strategy", required=True, help="cache-key strategy name or TOML file (edgeproof strategies list)")
    p.add_argument("--pops", type=int, default=4, help="number of POPs, each with its own cache (default 4)")
    p.add_argument("--tier", choices=cloudfront.TIERS, default=cloudfront.DEFAULT_TIER,
                   help="cache tiers: pop (POP caches only), regional (+ regional edge caches, which every "
                        "CloudFront distribution has), shield (+ one Origin Shield) (default regional)")
    p.add_argument("--capacity-mb", type=float, default=256.0, help="cache size per POP in MiB (default 256)")
    p.add_argument("--tier-capacity-mb", type=float, default=None,
                   help="cache size per regional cache / Origin Shield in MiB (default 4 x --capacity-mb)")
    p.add_argument("--min-ttl", type=float, default=0.0, help="cache policy minimum TTL, seconds (default 0)")
    p.add_argument("--default-ttl", type=float, default=cloudfront.DEFAULT_TTL,
                   help="default TTL, seconds (default 86400)")
    p.add_argument("--max-ttl", type=float, default=cloudfront.MAX_TTL,
                   help="maximum TTL, seconds (default 31536000)")
    p.add_argument("--error-ttl", type=float, default=cloudfront.ERROR_CACHING_MIN_TTL,
                   help="error caching minimum TTL, seconds (default 10): how long a cached 4xx/5xx (or an "
                        "expired copy served after a 5xx) is kept when the origin gives no longer max-age")
    p.add_argument("--log-dir", required=True, help="folder for the hourly gzipped standard logs")
    p.add_argument("--realtime-logs", default=None, metavar="DIR",
                   help="also write CloudFront real-time log records (tab-separated, AWS's 40 canonical "
                        "fields incl. cs-accept) to hourly .gz files in DIR")
    p.add_argument("--log-bucket", default=None, metavar="s3://BUCKET[/PREFIX]",
                   help="also upload each log file there (boto3; honours AWS_ENDPOINT_URL)")
    p.add_argument("--log-flush-interval", type=float, default=1.0, help="seconds between log flushes (default 1)")
    p.add_argument("--distribution-id", default="EDGEPROOF00001", help="log file prefix (default EDGEPROOF00001)")
    p.add_argument("--domain", default=None, help="distribution domain for cs(Host) (default dXXXX.cloudfront.net)")
    p.add_argument("--admin-port", type=int, default=None,
                   help="port of the admin API (/readyz, /stats, /backends …); default: none")
    p.add_argument("--origin-connection-attempts", type=int, default=cloudfront.ORIGIN_CONNECTION_ATTEMPTS,
                   help="tries per origin after a connection failure or a response timeout, 1-3 (default 3)")
    p.add_argument("--origin-connection-timeout", "--origin-connect-timeout", type=float,
                   default=cloudfront.ORIGIN_CONNECTION_TIMEOUT, dest="origin_connection_timeout",
                   help="seconds to connect to an origin (default 10; AWS allows 1-10)")
    p.add_argument("--origin-response-timeout", "--origin-read-timeout", type=float,
                   default=cloudfront.ORIGIN_RESPONSE_TIMEOUT, dest="origin_response_timeout",
                   help="seconds to wait for an origin's answer and between its packets; also bounds a "
                        "derivative-store read (default 30; AWS allows 1-60)")
    p.add_argument("--max-origin-inflight", type=int, default=1024,
                   help="origin requests in flight above which misses get 503 CapacityExceeded (default 1024)")
    p.add_argument("--header-timeout", type=float, default=defaults.header_timeout,
                   help="seconds a viewer has to send a whole request head, else 408 and close, logged "
                        f"(nginx client_header_timeout; default {defaults.header_timeout:g})")
    p.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout,
                   help="seconds an idle keep-alive viewer connection stays open between requests "
                        f"(nginx keepalive_timeout; default {defaults.idle_timeout:g})")
    p.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout,
                   help="on SIGTERM, seconds to wait for requests in flight; the rest are answered 503 "
                        f"(AbortedOrigin) and logged (default {defaults.drain_timeout:g})")
    p.set_defaults(func=_cmd_serve)
    parser.set_defaults(func=None)


def _cmd_serve(args: argparse.Namespace) -> int:
    primary, backends = parse_origin_group(args.origin_group, args.backend)
    try:
        ttl = TtlPolicy(args.min_ttl, args.default_ttl, args.max_ttl, args.error_ttl)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    config = EdgeConfig(
        strategy=args.strategy,
        pops=args.pops,
        tier=args.tier,
        capacity_mb=args.capacity_mb,
        tier_capacity_mb=args.tier_capacity_mb,
        ttl=ttl,
        distribution_id=args.distribution_id,
        domain=args.domain,
        max_origin_inflight=args.max_origin_inflight,
        origin_connection_attempts=args.origin_connection_attempts,
        origin_connection_timeout=args.origin_connection_timeout,
        origin_response_timeout=args.origin_response_timeout,
        realtime_log_dir=args.realtime_logs,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        drain_timeout=args.drain_timeout,
    )
    opts: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "admin_port": args.admin_port,
        "log_dir": args.log_dir,
        "log_bucket": args.log_bucket,
        "log_flush_interval": args.log_flush_interval,
    }
    return asyncio.run(serve(config, primary, backends, **opts))


async def serve(
    config: EdgeConfig,
    primary: str | None,
    backends: list[str],
    *,
    host: str,
    port: int,
    admin_port: int | None,
    log_dir: str,
    log_bucket: str | None = None,
    log_flush_interval: float = 1.0,
) -> int:
    """Run until SIGTERM/SIGINT; then stop accepting, answer and log every request received
    (:meth:`Edge.drain`, bounded by ``config.drain_timeout``), flush the logs (standard and real-time)."""
    from aiohttp import web

    from .admin import make_admin_app
    from .edge import Edge
    from .http import ViewerProtocol
    from .logsink import LogSink
    from .origin_group import OriginGroup

    sys.setswitchinterval(0.001)  # the log writer thread must not hold the loop up for 5 ms
    logs = LogSink(log_dir, config.distribution_id, log_bucket=log_bucket, flush_interval=log_flush_interval,
                   realtime_dir=config.realtime_log_dir)
    group = OriginGroup(primary, backends, connection_attempts=config.origin_connection_attempts,
                        connect_timeout=config.origin_connection_timeout,
                        response_timeout=config.origin_response_timeout)
    edge = Edge(config, group, logs)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await group.start()
    logs.start()
    runner: web.AppRunner | None = None
    sweeper = asyncio.ensure_future(edge.conns.run())  # header and idle timeouts
    try:
        try:
            server = await loop.create_server(
                lambda: ViewerProtocol(edge), host, port, backlog=2048, reuse_address=True
            )
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port}", detail=str(err)) from err
        if admin_port is not None:
            runner = web.AppRunner(make_admin_app(edge), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, host, admin_port).start()
            except OSError as err:
                raise ConfigError(f"cannot listen on {host}:{admin_port} (admin)", detail=str(err)) from err
        edge.ready = True
        admin = f", admin http://{host}:{admin_port}" if admin_port is not None else ""
        print(
            f"edgeproof edge: serving http://{host}:{port}{admin}; {config.pops} POPs "
            f"({', '.join(p.id for p in edge.pops)}), tier {config.tier}, strategy {config.strategy}, "
            f"origin {group.describe()}, logs {log_dir}"
            + (f", real-time logs {config.realtime_log_dir}" if config.realtime_log_dir else ""),
            flush=True,
        )
        await stop.wait()
        edge.ready = False
        server.close()  # stop accepting
        await edge.drain(config.drain_timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
    finally:
        sweeper.cancel()
        if runner is not None:
            await runner.cleanup()
        await group.close()
        logs.close()
        aborted = f", {edge.aborted} answered 503 at the drain limit" if edge.aborted else ""
        print(f"edgeproof edge: stopped; {logs.lines_written} log lines in {len(logs.files())} file(s)"
              f"{aborted}", flush=True)
    return 0
