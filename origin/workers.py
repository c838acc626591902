"""Run the origin: N worker processes sharing one port through ``SO_REUSEPORT``.

The parent process forks the workers (before any pyvips work happens in it), forwards SIGTERM /
SIGINT to them, restarts a worker that dies unexpectedly, and exits once every worker has drained.
With one worker, the server runs in the calling process. Each worker:

- binds its own listening socket on ``host:port`` with ``SO_REUSEPORT`` (the kernel spreads new
  connections over the workers);
- warms up (stores reachable + one tiny transform per format), then reports ready on ``/readyz``;
- on SIGTERM: ``/readyz`` turns 503, the listening socket closes (no new connections), in-flight
  and queued requests finish and background derivative writes complete (up to ``--drain-seconds``),
  then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time

from edgeproof.origin.config import OriginConfig
from edgeproof.origin.telemetry import Metrics

__all__ = ["serve", "make_socket"]

log = logging.getLogger("edgeproof.origin")


def make_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with SO_REUSEADDR and SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _worker_main(config: OriginConfig, metrics: Metrics) -> None:
    from aiohttp import web
    from edgeproof.origin.connections import GuardedSite
    from edgeproof.origin.server import Origin

    origin = Origin(config, metrics)
    runner = web.AppRunner(origin.app(), handle_signals=False, access_log=None,
                           shutdown_timeout=config.drain_seconds)
    await runner.setup()
    site = GuardedSite(runner, make_socket(config.host, config.port), header_timeout=config.header_timeout,
                       keepalive_timeout=config.keepalive_timeout, max_url_bytes=config.max_url_bytes)
    await site.start()
    metrics_runner = None
    if config.metrics_bind:  # every worker listens (SO_REUSEPORT); any of them reports the whole server
        metrics_runner = web.AppRunner(origin.metrics_app(), handle_signals=False, access_log=None)
        await metrics_runner.setup()
        await GuardedSite(metrics_runner, make_socket(*config.metrics_address), header_timeout=config.header_timeout,
                          keepalive_timeout=config.keepalive_timeout, max_url_bytes=config.max_url_bytes).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    warm = loop.create_task(origin.warm_up())
    await stop.wait()
    warm.cancel()
    origin.draining = True
    await site.stop()  # no new connections
    await origin.drain()
    await runner.cleanup()
    if metrics_runner is not None:  # scrapeable until the drain is over
        await metrics_runner.cleanup()
    origin.close()


def _run_worker(config: OriginConfig, metrics: Metrics, index: int) -> None:
    metrics.worker = index
    metrics.set("ready", value=0)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s origin[{index}] %(levelname)s %(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    asyncio.run(_worker_main(config, metrics))


def _die_with_parent() -> None:
    """Linux: get SIGTERM if the parent dies (even by SIGKILL), so no orphan keeps the port."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child(config: OriginConfig, metrics: Metrics, index: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    _die_with_parent()
    with contextlib.suppress(KeyboardInterrupt):
        _run_worker(config, metrics, index)
    sys.exit(0)


def serve(config: OriginConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    n = config.worker_count
    if n > 1 and config.port == 0:
        from edgeproof.errors import UsageError

        raise UsageError("--port 0 needs --workers 1", detail="several workers must share one known port")
    # fail fast (in the parent) on a busy port or a bad store spec
    make_socket(config.host, config.port).close()
    if config.metrics_bind:
        if n > 1 and config.metrics_address[1] == 0:
            from edgeproof.errors import UsageError

            raise UsageError("--metrics-bind with port 0 needs --workers 1",
                             detail="several workers must share one known port")
        make_socket(*config.metrics_address).close()
    from edgeproof.origin.stores import open_store

    open_store(config.sources, create=False)
    open_store(config.derivatives)
    metrics = Metrics(n)
    print(
        f"edgeproof origin: http://{config.host}:{config.port}  workers={n} "
        f"concurrency={config.max_concurrency} queue={config.queue_limit} "
        f"sources={config.sources} derivatives={config.derivatives}"
        + (f" metrics=http://{config.metrics_bind}/metrics" if config.metrics_bind else ""),
        file=sys.stderr, flush=True,
    )
    if n == 1:
        _run_worker(config, metrics, 0)
        return 0
    ctx = multiprocessing.get_context("fork")
    procs: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False

    def start(i: int) -> None:
        p = ctx.Process(target=_child, args=(config, metrics, i), name=f"origin-{i}", daemon=False)
        p.start()
        procs[i] = p

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs.values():
            if p.is_alive() and p.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(n):
        start(i)
    restarts: list[float] = []
    kill_at: float | None = None
    while True:
        alive = [p for p in procs.values() if p.is_alive()]
        if stopping and not alive:
            break
        if stopping:
            kill_at = kill_at or time.monotonic() + config.drain_seconds + 10
            if time.monotonic() > kill_at:  # a worker that does not drain in time is killed
                for p in alive:
                    p.kill()
        for i, p in list(procs.items()):
            if not p.is_alive() and not stopping:
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > 5 * n:
                    log.error("workers keep dying; stopping")
                    on_signal(signal.SIGTERM, None)
                    break
                print(f"edgeproof origin: worker {i} exited with {p.exitcode}; restarting", file=sys.stderr)
                start(i)
        time.sleep(0.1)
    codes = [p.exitcode or 0 for p in procs.values()]
    return 0 if all(c == 0 for c in codes) else 1
