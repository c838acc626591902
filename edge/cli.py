"""``edgeproof edge serve``: run the edge emulator (see docs/edge.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from edgeproof.errors import ConfigError, UsageError

from .cache import TtlPolicy
from .config import EDGE_SETTINGS, SERVE_SETTINGS, TTL_SETTINGS, EdgeConfig, ServeOptions

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
    sub = parser.add_subparsers(dest="edge_command", metavar="SUBCOMMAND")
    p = sub.add_parser("serve", help="serve viewer requests like CloudFront (caches per POP, writes logs)",
                       description="Run the local CloudFront stand-in. See docs/edge.md.")
    # every flag, its default and help from the settings tables of edgeproof.edge.config
    SERVE_SETTINGS.add_arguments(p, only=("port", "host", "origin_group", "backend"),
                                 required=("port", "origin_group"))
    EDGE_SETTINGS.add_arguments(p, only=("strategy", "pops", "pop_ids", "tier", "capacity_mb", "tier_capacity_mb"),
                                required=("strategy",))
    TTL_SETTINGS.add_arguments(p)
    SERVE_SETTINGS.add_arguments(p, only=("log_dir",), required=("log_dir",))
    EDGE_SETTINGS.add_arguments(p, only=("realtime_log_dir",))
    SERVE_SETTINGS.add_arguments(p, only=("log_bucket", "log_flush_interval"))
    EDGE_SETTINGS.add_arguments(p, only=("distribution_id", "domain"))
    SERVE_SETTINGS.add_arguments(p, only=("admin_port",))
    EDGE_SETTINGS.add_arguments(p, only=("origin_connection_attempts", "origin_connection_timeout",
                                         "origin_response_timeout", "max_origin_inflight", "header_timeout",
                                         "idle_timeout", "drain_timeout"))
    p.set_defaults(func=_cmd_serve)
    parser.set_defaults(func=None)


def _cmd_serve(args: argparse.Namespace) -> int:
    options = ServeOptions(**SERVE_SETTINGS.from_args(args))
    primary, backends = parse_origin_group(options.origin_group or "", list(options.backend))
    try:
        ttl = TtlPolicy(**TTL_SETTINGS.from_args(args))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    config = EdgeConfig(**EDGE_SETTINGS.from_args(args), ttl=ttl)
    opts: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "admin_port": options.admin_port,
        "log_dir": options.log_dir,
        "log_bucket": options.log_bucket,
        "log_flush_interval": options.log_flush_interval,
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
