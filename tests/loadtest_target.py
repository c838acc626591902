"""A tiny CDN-like target for the load-test tests: aiohttp on 127.0.0.1, run as a subprocess.

    python tests/loadtest_target.py --port P [--delay-ms D] [--miss-every N] [--status-every N:CODE]
                                    [--urls FILE]

Answers every GET with a small body, ``X-Cache: Hit from cloudfront`` (or ``Miss …`` for every Nth
request), ``X-Amz-Cf-Pop`` from the ``X-Edge-Pop`` hint, after ``--delay-ms``; ``--urls`` appends each
raw path?query it receives (one per line).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

from aiohttp import web

POPS = ("IAD89-C1", "FRA56-P5", "NRT57-P2", "GRU3-C1", "SYD1-C1", "LHR61-C2", "CDG50-P1", "SIN2-P3")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--miss-every", type=int, default=0)
    ap.add_argument("--status-every", default="")
    ap.add_argument("--urls", default="")
    args = ap.parse_args()
    counter = itertools.count(1)
    every, code = (int(x) for x in args.status_every.split(":")) if args.status_every else (0, 200)
    urls = open(args.urls, "a", buffering=1) if args.urls else None  # noqa: SIM115 - lives as long as the server
    body = b"x" * 1000

    async def handle(request: web.Request) -> web.Response:
        n = next(counter)
        if urls is not None:
            urls.write(request.raw_path + "\n")
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        miss = bool(args.miss_every) and n % args.miss_every == 0
        hint = request.headers.get("X-Edge-Pop", "0")
        pop = POPS[int(hint) % len(POPS)] if hint.isdigit() else POPS[0]
        status = code if every and n % every == 0 else 200
        return web.Response(body=body, status=status, content_type="image/webp", headers={
            "X-Cache": "Miss from cloudfront" if miss else "Hit from cloudfront", "X-Amz-Cf-Pop": pop})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
