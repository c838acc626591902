"""The edge's admin API (aiohttp, on its own port): readiness, counters, origin backends, logs.

==========================  =====================================================================
``GET /healthz``            200 ``{"status": "ok"}`` while the process runs
``GET /readyz``             200 ``{"ready": true, ...}`` once the viewer port accepts requests, else 503
``GET /stats``              JSON counters: requests, hits, misses, hit_rate, results by type,
                            origin requests (primary/secondary/per backend), collapsed, per POP
``GET /metrics``            the same counters in Prometheus text format (``telemetry.py``)
``GET /backends``           ``{"primary": SPEC, "backends": [URL...], "requests": {URL: n}}``
``POST /backends``          body ``{"url": "http://127.0.0.1:8082"}``: add a transformer backend
``DELETE /backends``        ``?url=...`` (or the same JSON body): remove a backend
``PUT /backends``           body ``{"backends": [URL...]}``: replace the whole set
``POST /invalidate``        body ``{"paths": ["/*"]}`` (cache keys, ``prefix*``, or ``/*``): drop objects
``POST /flush``             write buffered log lines now (and upload to the log bucket)
==========================  =====================================================================

Errors are ``{"error", "detail"}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from edgeproof.errors import BadRequest, ConfigError, error_json

from .edge import Edge
from .telemetry import CONTENT_TYPE, render

__all__ = ["make_admin_app"]


def _error(status: int, detail: str) -> web.Response:
    return web.json_response(error_json("bad_request" if status < 500 else "admin", detail), status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise web.HTTPBadRequest(
            text=BadRequest("bad body", detail=f"body is not JSON: {err}").to_body().decode(),
            content_type="application/json",
        ) from err
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=BadRequest("bad body", detail="body must be a JSON object").to_body().decode(),
            content_type="application/json",
        )
    return data


def make_admin_app(edge: Edge) -> web.Application:
    app = web.Application()
    group = edge.group

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        body = {"ready": edge.ready, "pops": [p.id for p in edge.pops], **group.describe()}
        return web.json_response(body, status=200 if edge.ready else 503)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(edge.stats())

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=render(edge), headers={"Content-Type": CONTENT_TYPE})

    def _backends(status: int = 200) -> web.Response:
        pool = group.backends
        body = {"primary": group.primary_spec, "backends": list(pool.urls), "requests": dict(pool.requests)}
        return web.json_response(body, status=status)

    async def get_backends(request: web.Request) -> web.Response:
        return _backends()

    async def add_backend(request: web.Request) -> web.Response:
        url = (await _body(request)).get("url") or request.query.get("url")
        if not isinstance(url, str):
            return _error(400, 'give {"url": "http://HOST:PORT"}')
        try:
            added = group.backends.add(url)
        except ConfigError as err:
            return _error(400, err.detail or err.message)
        return _backends(201 if added else 200)

    async def remove_backend(request: web.Request) -> web.Response:
        url = request.query.get("url") or (await _body(request)).get("url")
        if not isinstance(url, str):
            return _error(400, "give ?url=http://HOST:PORT")
        try:
            removed = group.backends.remove(url)
        except ConfigError as err:
            return _error(400, err.detail or err.message)
        return _backends() if removed else _error(404, f"{url} is not a backend")

    async def put_backends(request: web.Request) -> web.Response:
        urls = (await _body(request)).get("backends")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            return _error(400, 'give {"backends": ["http://HOST:PORT", ...]}')
        try:
            group.backends.replace(urls)
        except ConfigError as err:
            return _error(400, err.detail or err.message)
        return _backends()

    async def invalidate(request: web.Request) -> web.Response:
        paths = (await _body(request)).get("paths") or ["/*"]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return _error(400, 'give {"paths": ["/*"]}')
        return web.json_response({"dropped": edge.invalidate(paths)})

    async def flush(request: web.Request) -> web.Response:
        if edge.logs is None:
            return web.json_response({"lines": 0, "files": []})
        lines = await asyncio.get_running_loop().run_in_executor(None, lambda: edge.logs.flush(upload=True))
        return web.json_response({"lines": lines, "files": [str(p) for p in edge.logs.files()]})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/backends", get_backends)
    app.router.add_post("/backends", add_backend)
    app.router.add_delete("/backends", remove_backend)
    app.router.add_put("/backends", put_backends)
    app.router.add_post("/invalidate", invalidate)
    app.router.add_post("/flush", flush)
    return app
