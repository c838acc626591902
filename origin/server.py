"""The origin's aiohttp application (one worker process).

Request path for ``GET /{source_key}/{ops}`` or ``GET /{source_key}?w=…&format=…``:

1. resolve the request's preset and path policy (:mod:`edgeproof.origin.presets_table`): from
   memory, or, when the presets table must be read, that read and the source read start together
   and both are awaited (the source bytes go on to step 4); parse with
   :func:`edgeproof.canonical.parse_request` (the raw path is percent-decoded here, so ``..%2f`` is
   caught as traversal), check output limits, check the signature when signing is on, apply the policy;
2. the per-process local LRU cache (``--local-cache-mb``);
3. single-flight on the derivative key: the first request for a variant starts one *producer*
   task, concurrent requests for the same variant join it;
4. the producer reads the derivative store (hit → done), else takes a transform slot (bounded
   concurrency + queue; past the queue: 503 at once), reads the source, runs the pyvips pipeline in
   a thread (pyvips releases the GIL), and schedules the derivative write in the background;
5. the response carries Content-Type, Cache-Control, a strong ETag (MD5 of the bytes, as S3 gives),
   Content-Length, ``Vary: Accept`` when the format was negotiated, and ``X-Origin-Source``
   (``local_cache``, ``derivative_store`` or ``transform``), and ``X-Origin-Preset`` /
   ``X-Origin-Policy`` saying where the preset and policy came from. ``If-None-Match`` gets a 304.

Every refusal is an :class:`~edgeproof.errors.EdgeproofError` rendered as JSON
``{"error", "detail"}`` with its status (and ``Retry-After`` for 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from edgeproof.origin.config import OriginConfig
from edgeproof.origin.flow import Admission, CachedObject, LocalCache, SingleFlight
from edgeproof.origin.presets import load_preset_file, match_policy
from edgeproof.origin.presets_table import PresetResolver, PresetsTable
from edgeproof.origin.responses import error_response, json_error
from edgeproof.origin.signing import format_negotiated, signed_message, verify
from edgeproof.origin.stores import etag_for, open_store
from edgeproof.origin.telemetry import Metrics
from edgeproof.origin.transform import Deadline, configure_vips, transform

from edgeproof.canonical import Variant, parse_request, peek_request
from edgeproof.errors import (
    BadPresetItem,
    BadRequest,
    EdgeproofError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PresetsUnavailable,
    StoreError,
    Unprocessable,
)

__all__ = ["Origin", "error_response"]

log = logging.getLogger("edgeproof.origin")
T = TypeVar("T")

_WARMUP_FORMATS = ("jpeg", "webp", "avif", "png")


def _first_values(query: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    for k, v in query.items():
        params.setdefault(k, v)
    return params


class Timings:
    """``--server-timing``: when this request's presets-table and source reads ran, as a
    ``Server-Timing`` header (W3C Server Timing: ``name;dur=MS``, plus ``start``/``end`` on the
    worker's monotonic clock in ms, so two reads can be seen to overlap)."""

    __slots__ = ("spans",)

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    def add(self, name: str, start: float, end: float) -> None:
        self.spans.append((name, start, end))

    def header(self) -> str:
        return ", ".join(f"{name};start={s * 1000:.3f};end={e * 1000:.3f};dur={(e - s) * 1000:.3f}"
                         for name, s, e in self.spans)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (asyncio logs one that never was)."""
    if not future.cancelled():
        future.exception()


async def _timed(awaitable: Any, timings: Timings | None, name: str) -> Any:
    start = time.monotonic()
    try:
        return await awaitable
    finally:
        if timings is not None:
            timings.add(name, start, time.monotonic())


class Origin:
    """One worker's state: stores, pools, flow control, metrics; :meth:`app` builds the aiohttp app."""

    def __init__(self, config: OriginConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics(1)
        self.limits = config.limits
        self.preset_file = load_preset_file(config.presets)
        table = PresetsTable(config.presets_table) if config.presets_table else None
        self.resolver = PresetResolver(self.preset_file, table, ttl=config.presets_ttl)
        self.sources = open_store(config.sources, create=False)
        self.derivatives = open_store(config.derivatives)
        self.signing_keys = config.signing_keys
        self.admission = Admission(config.max_concurrency, config.queue_limit, self._on_admission)
        self.flight: SingleFlight[tuple[CachedObject, str]] = SingleFlight()
        self.cache = LocalCache(config.local_cache_mb * 1024 * 1024)
        self.cpu = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="vips")
        self.io = ThreadPoolExecutor(config.io_threads, thread_name_prefix="store")
        self.ready = False
        self.draining = False
        self.active = 0
        self.background: set[asyncio.Task[None]] = set()
        self.max_pending_writes = 8 * config.io_threads
        configure_vips(concurrency=config.vips_threads or None)

    # ------------------------------------------------------------------ helpers

    def _on_admission(self, queued: int, running: int) -> None:
        self.metrics.set("queue_depth", value=queued)
        self.metrics.set("in_flight", value=running)

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def _parse(self, request: web.Request, deadline: Deadline, timings: Timings | None
                     ) -> tuple[str, Variant, bool, dict[str, str], asyncio.Future[bytes] | None]:
        """(key, variant, negotiated, headers naming the preset's and policy's origin, the source read
        started alongside the presets table, if one was)."""
        raw_path = request.raw_path.split("?", 1)[0]
        path = urllib.parse.unquote(raw_path, errors="strict")
        params = _first_values(request.query)
        accept = request.headers.get("Accept")
        key, name = peek_request(path, params)
        resolved = self.resolver.ready(name)
        prefetched: asyncio.Future[bytes] | None = None
        if resolved is None:  # the table must be read: start that and the source read, await both
            resolving, led = self.resolver.fetch(name)
            fetch = asyncio.ensure_future(_timed(resolving, timings, "preset"))
            reads: list[asyncio.Future[Any]] = [fetch]
            if led:  # a request that joined a read in flight leaves the early source read to the first
                prefetched = asyncio.ensure_future(self._read_source(key, timings))
                reads.append(prefetched)
            for read in reads:  # an outcome nobody awaits (the deadline passed, the other one failed)
                read.add_done_callback(_retrieved)
            remaining = None if deadline.at is None else max(0.0, deadline.at - time.monotonic())
            _done, pending = await asyncio.wait(reads, timeout=remaining)
            if pending:
                raise Overloaded("deadline exceeded", detail="the presets table or the source did not answer in time")
            resolved = fetch.result()
        key, variant = parse_request(path, params, accept, resolved.presets)
        negotiated = format_negotiated(path, params)
        self.limits.check_variant(variant)
        if self.signing_keys:  # over the request as the client made it, before the policy
            verify(signed_message(key, variant, negotiated=negotiated), params.get("sig"), self.signing_keys)
        headers: dict[str, str] = {}
        if resolved.preset is not None:
            headers["X-Origin-Preset"] = f"{resolved.preset[0]}; from={resolved.preset[1]}"
        rule = match_policy(resolved.policies, key)
        if rule is not None:
            if isinstance(rule.policy, BadPresetItem):
                raise BadPresetItem(rule.policy.message, detail=rule.policy.detail)
            variant = rule.policy.apply(variant, negotiated=negotiated, accept=accept, prefix=rule.prefix)
            self.limits.check_variant(variant)
            headers["X-Origin-Policy"] = f"{urllib.parse.quote(rule.prefix, safe='/')}; from={rule.source}"
        return key, variant, negotiated, headers, prefetched

    async def _read_source(self, key: str, timings: Timings | None) -> bytes:
        """The source's bytes (at most the byte limit), counted; NotFound when there is none."""
        started = time.monotonic()
        try:
            data = await self._run(self.io, self.sources.get, key, self.limits.max_source_bytes)
        except StoreError:
            self.metrics.inc("store_reads_total", "source", "error")
            raise
        except EdgeproofError:
            self.metrics.inc("store_reads_total", "source", "hit")
            raise
        finally:
            if timings is not None:
                timings.add("source", started, time.monotonic())
        if data is None:
            self.metrics.inc("store_reads_total", "source", "miss")
            raise NotFound("source not found", detail=f"no source image {key!r}")
        self.metrics.inc("store_reads_total", "source", "hit")
        return data

    # ------------------------------------------------------------------ producing a variant

    async def _produce(self, key: str, variant: Variant, dkey: str, deadline: Deadline,
                       prefetched: asyncio.Future[bytes] | None = None,
                       timings: Timings | None = None) -> tuple[CachedObject, str]:
        """Derivative store, else transform (in a slot). Runs once per variant at a time. The source
        is ``prefetched`` when the request read it alongside the presets table (done by now)."""
        try:
            stored = await self._run(self.io, self.derivatives.get, dkey)
        except StoreError as err:
            log.warning("derivative read failed for %s: %s", dkey, err.detail or err.message)
            self.metrics.inc("store_reads_total", "derivative", "error")
            stored = None
        else:
            self.metrics.inc("store_reads_total", "derivative", "hit" if stored is not None else "miss")
        if stored is not None:
            return CachedObject(stored, variant.content_type, etag_for(stored)), "derivative_store"

        await self.admission.acquire(deadline.at)
        try:
            deadline.check("queue")
            data = prefetched.result() if prefetched is not None else await self._read_source(key, timings)
            started = time.perf_counter()
            try:
                rendition = await self._run(self.cpu, self._transform, data, variant, key, deadline)
            except Overloaded:
                self.metrics.inc("transform_failures_total", "deadline")
                raise
            except Unprocessable:
                self.metrics.inc("transform_failures_total", "unprocessable")
                raise
            except EdgeproofError:
                self.metrics.inc("transform_failures_total", "bad_request")
                raise
            self.metrics.observe("transform_duration_seconds", time.perf_counter() - started)
            self.metrics.inc("transforms_total", variant.f)
        finally:
            self.admission.release()
        obj = CachedObject(rendition.data, rendition.content_type, etag_for(rendition.data))
        if self.config.write_derivatives:
            if len(self.background) >= self.max_pending_writes:  # a slow store must not grow memory
                log.warning("derivative write skipped for %s: %d writes pending", dkey, len(self.background))
                self.metrics.inc("store_writes_total", "error")
            else:
                self.flight.hold(dkey)  # late arrivals join this result until the write lands
                self._spawn(self._write(dkey, obj))
        return obj, "transform"

    def _transform(self, data: bytes, variant: Variant, key: str, deadline: Deadline) -> Any:
        return transform(data, variant, key=key, limits=self.limits, deadline=deadline,
                         avif_effort=self.config.avif_effort)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _write(self, dkey: str, obj: CachedObject) -> None:
        await asyncio.sleep(0)  # let the response go out first
        try:
            await self._run(self.io, self.derivatives.put, dkey, obj.data, obj.content_type)
        except EdgeproofError as err:
            log.warning("derivative write failed for %s: %s %s", dkey, err.message, err.detail or "")
            self.metrics.inc("store_writes_total", "error")
        else:
            self.metrics.inc("store_writes_total", "ok")
        finally:
            self.flight.forget(dkey)

    async def _lookup(self, key: str, variant: Variant, deadline: Deadline,
                      prefetched: asyncio.Future[bytes] | None = None,
                      timings: Timings | None = None) -> tuple[CachedObject, str]:
        dkey = variant.path(key)[1:]
        if self.cache.capacity:
            cached = self.cache.get(dkey)
            if cached is not None:
                self.metrics.inc("local_cache_hits_total")
                return cached, "local_cache"
            self.metrics.inc("local_cache_misses_total")
        task, joined = self.flight.run(dkey, lambda: self._produce(key, variant, dkey, deadline, prefetched, timings))
        if joined:
            self.metrics.inc("singleflight_joins_total")
        remaining = None if deadline.at is None else max(0.0, deadline.at - time.monotonic()) + 0.25
        try:
            obj, source = await asyncio.wait_for(asyncio.shield(task), remaining)
        except TimeoutError as err:
            raise Overloaded("deadline exceeded", detail="the variant was not ready in time") from err
        if self.cache.capacity:
            self.cache.put(dkey, obj)
            self.metrics.set("local_cache_bytes", value=self.cache.bytes)
        return obj, source

    # ------------------------------------------------------------------ handlers

    async def handle_image(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        self.active += 1
        source = "none"
        try:
            deadline = Deadline(self.config.deadline_ms / 1000)
            timings = Timings() if self.config.server_timing else None
            key, variant, negotiated, resolved_from, prefetched = await self._parse(request, deadline, timings)
            obj, source = await self._lookup(key, variant, deadline, prefetched, timings)
            headers = {
                "Content-Type": obj.content_type,
                "Cache-Control": self.config.cache_control,
                "ETag": obj.etag,
                "X-Origin-Source": source,
                **resolved_from,
            }
            if timings is not None and timings.spans:
                headers["Server-Timing"] = timings.header()
            if negotiated:
                headers["Vary"] = "Accept"
            inm = request.headers.get("If-None-Match")
            if inm and obj.etag in [t.strip() for t in inm.split(",")]:
                response: web.StreamResponse = web.Response(status=304, headers=headers)
            else:
                response = web.Response(body=obj.data, headers=headers)
        except (BadPresetItem, PresetsUnavailable) as err:  # the public detail names the item, not the endpoint
            log.warning("presets for %s: %s", request.raw_path, err.message)
            response = error_response(err)
        except StoreError as err:  # internal detail (paths, endpoints) goes to the log, not the client
            log.warning("store error for %s: %s %s", request.raw_path, err.message, err.detail or "")
            response = error_response(StoreError("image store unavailable", detail="the image store failed; retry later"))
        except EdgeproofError as err:
            if isinstance(err, Overloaded):
                self.metrics.inc("shed_total", "queue" if err.message == "server busy" else "deadline")
            response = error_response(err)
        except UnicodeDecodeError:
            response = json_error(BadRequest("bad path", detail="the path is not valid percent-encoded UTF-8"))
        except Exception:  # pragma: no cover - a bug; still answer with JSON, never hang
            log.exception("unexpected error for %s", request.raw_path)
            response = json_error(EdgeproofError("unexpected error"))
        finally:
            self.active -= 1
        if self.draining or self.metrics.busier_than_others():
            # keep-alive clients reconnect, and SO_REUSEPORT hashes the new connection to a worker
            # afresh: away from one that is stopping, or (usually) from one busier than the rest
            response.force_close()
        self.metrics.request(response.status, source, time.monotonic() - started)
        return response

    async def handle_healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def handle_readyz(self, _request: web.Request) -> web.Response:
        workers_ready = int(self.metrics.total("ready"))
        ok = self.ready and not self.draining and workers_ready >= self.metrics.workers
        body = {"ready": ok, "workers_ready": workers_ready, "workers": self.metrics.workers,
                "draining": self.draining}
        return web.json_response(body, status=200 if ok else 503)

    async def handle_metrics(self, _request: web.Request) -> web.Response:
        from edgeproof.origin.telemetry import CONTENT_TYPE

        return web.Response(body=self.metrics.render().encode(),
                            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    async def handle_metrics_elsewhere(self, _request: web.Request) -> web.Response:
        return error_response(NotFound("not found", detail="metrics are served on the --metrics-bind address"))

    def app(self) -> web.Application:
        from edgeproof.origin.connections import url_limit_middleware

        app = web.Application(client_max_size=1024, middlewares=[url_limit_middleware(self.config.max_url_bytes)])
        app.router.add_get("/healthz", self.handle_healthz)
        app.router.add_get("/readyz", self.handle_readyz)
        app.router.add_get("/metrics", self.handle_metrics_elsewhere if self.config.metrics_bind else self.handle_metrics)
        app.router.add_get("/{tail:.*}", self.handle_image)
        app.router.add_route("*", "/{tail:.*}", self.handle_method_not_allowed)
        return app

    def metrics_app(self) -> web.Application:
        """The ``--metrics-bind`` listener: ``/metrics`` (and ``/healthz``) only, so a scraper's address
        need not reach the image port and the image port does not expose the counters."""
        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/healthz", self.handle_healthz)
        return app

    async def handle_method_not_allowed(self, _request: web.Request) -> web.Response:
        return json_error(MethodNotAllowed("method not allowed", detail="only GET and HEAD are served"),
                            {"Allow": "GET, HEAD"})

    # ------------------------------------------------------------------ lifecycle

    async def remove_orphans(self) -> None:
        """Temp files of derivative writes a killed process left (folder store); worker 0 only, in
        the background: walking a large store must delay neither the port nor readiness."""
        try:
            removed = await self._run(self.io, self.derivatives.remove_orphans)
        except OSError as err:  # an unreadable folder: the writes will report it, nothing to clean
            log.warning("orphan clean-up of %s failed: %s", self.derivatives.describe(), err.strerror or err)
            return
        if removed:
            log.info("removed %d orphan temp files from %s", removed, self.derivatives.describe())

    async def warm_up(self) -> None:
        """Ready once the stores answer and one tiny transform per format has run (codecs loaded)."""
        from edgeproof.origin.transform import warmup_image

        if self.metrics.worker == 0:
            self._spawn(self.remove_orphans())
        while not self.draining:
            try:
                await self._run(self.io, self.sources.exists, "__edgeproof_readyz__")
                await self._run(self.io, self.derivatives.exists, "__edgeproof_readyz__")
                data = await self._run(self.cpu, warmup_image)
                for fmt in _WARMUP_FORMATS:
                    await self._run(self.cpu, transform, data, Variant(w=16, h=16, f=fmt))
            except EdgeproofError as err:
                log.warning("not ready yet: %s %s", err.message, err.detail or "")
                await asyncio.sleep(2)
                continue
            self.ready = True
            self.metrics.set("ready", value=1)
            return

    async def drain(self) -> None:
        """Wait (up to ``drain_seconds``) for in-flight requests and background writes."""
        self.draining = True
        self.metrics.set("ready", value=0)
        end = time.monotonic() + self.config.drain_seconds
        while (self.active or self.background or len(self.flight)) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        if self.background:
            with contextlib.suppress(Exception):
                await asyncio.wait(self.background, timeout=max(0.0, end - time.monotonic()))

    def close(self) -> None:
        self.resolver.close()
        self.cpu.shutdown(wait=False, cancel_futures=True)
        self.io.shutdown(wait=False, cancel_futures=True)
