"""HTTP load on loopback against ``edgeproof origin serve``, with peers in the same run.

Measured, for edgeproof and its peers:

0. a reference: misses at 2/s (p50/p99 of one transform with no queueing).
1. **transforms/s at saturation**: a closed loop of ``--concurrency`` clients asking only for
   variants that do not exist yet (unique 720 px JPEG/WebP misses of a 2725×2225 JPEG).
   Peer: a node + sharp HTTP server (cluster of the same number of workers, the same number of
   concurrent transforms per worker: ``UV_THREADPOOL_SIZE`` = ``--max-concurrency``).
2. **p99 at 80 % of saturation**: an open-model load (Poisson arrivals at 0.8 × the saturation rate
   measured in step 1, latency counted from the *intended* send time) of unique misses.
   Target: p99 < 500 ms.
3. **requests/s for derivative-store hits**: ``--hit-keys`` variants made once, then read again and
   again (``--local-cache-mb 0``, so every request reads the derivative store folder). Driven by wrk
   when installed (else a Python client, which then is the bottleneck). Peer: nginx serving the same
   folder as static files (skipped when nginx is not installed).

The load generator runs on the same 2 shared cores as the servers (loopback only, bounded in time).

    python benchmarks/origin_bench.py [--seconds 6] [--rounds 3] [--workers 2] [--max-concurrency 1]

edgeproof and the sharp peer run side by side and are measured in alternating rounds (best
saturation, median p99), so that the shared machine's load drifts over both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORK = REPO / "benchmarks" / "_work" / "origin_bench"
SOURCES = 8

SHARP_SERVER_JS = r"""
const cluster = require('cluster');
const http = require('http');
const fs = require('fs');
const path = require('path');
const [,, port, root, workers] = process.argv;
if (cluster.isPrimary) {
  for (let i = 0; i < +workers; i++) cluster.fork();
  process.on('SIGTERM', () => { for (const id in cluster.workers) cluster.workers[id].kill(); process.exit(0); });
} else {
  const sharp = require('sharp');
  sharp.concurrency(1);
  sharp.cache(false);
  http.createServer(async (req, res) => {
    try {
      const url = decodeURIComponent(req.url.split('?')[0]);
      const i = url.lastIndexOf('/');
      const key = url.slice(1, i);
      const ops = Object.fromEntries(url.slice(i + 1).split(',').map((s) => s.split('=')));
      const input = await fs.promises.readFile(path.join(root, key));
      let p = sharp(input).rotate().resize(+ops.w || null, +ops.h || null, { fit: ops.fit || 'cover' });
      const q = +ops.q;
      if (ops.f === 'webp') p = p.webp({ quality: q, effort: 4 });
      else if (ops.f === 'avif') p = p.avif({ quality: q, effort: 4 });
      else p = p.jpeg({ quality: q });
      const buf = await p.toBuffer();
      res.writeHead(200, { 'Content-Type': 'image/' + (ops.f || 'jpeg'), 'Content-Length': buf.length });
      res.end(buf);
    } catch (e) { res.writeHead(500); res.end(String(e)); }
  }).listen(+port, '127.0.0.1');
}
"""

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-tmp;
  proxy_temp_path {work}/nginx-tmp;
  fastcgi_temp_path {work}/nginx-tmp;
  uwsgi_temp_path {work}/nginx-tmp;
  scgi_temp_path {work}/nginx-tmp;
  sendfile on;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ default_type image/webp; add_header Cache-Control "public, max-age=2592000, immutable"; }}
  }}
}}
"""

WRK_LUA = """
local paths = {{}}
for line in io.lines("{paths}") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ok(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_sources() -> Path:
    """SOURCES copies of the transform benchmark's 2725×2225 JPEG under distinct keys."""
    spec = importlib.util.spec_from_file_location("transform_bench", REPO / "benchmarks" / "transform_bench.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = bench.make_source()
    src = WORK / "src" / "images"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(SOURCES):
        path = src / f"bench-{i}.jpg"
        if not path.exists():
            path.write_bytes(data)
    return WORK / "src"


class MissPaths:
    """An endless supply of never-seen 720 px JPEG/WebP variants (unique w, q, format, source)."""

    def __init__(self, salt: int) -> None:
        rng = random.Random(salt)
        combos = [(w, q, f, s) for w in range(700, 741) for q in range(60, 96) for f in ("jpeg", "webp")
                  for s in range(SOURCES)]
        rng.shuffle(combos)
        self._it = iter(combos)

    def __next__(self) -> str:
        w, q, f, s = next(self._it)
        return f"/images/bench-{s}.jpg/w={w},h=0,fit=cover,q={q},f={f}"


async def _one(session: object, base: str, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    async with session.get(base + path) as resp:  # type: ignore[attr-defined]
        await resp.read()
        return resp.status, time.perf_counter() - t0


async def closed_loop(base: str, paths: MissPaths | itertools.cycle[str], concurrency: int,
                      seconds: float) -> tuple[int, int, list[float], float]:
    """``concurrency`` clients back to back for ``seconds``: (ok, errors, latencies, elapsed)."""
    import aiohttp

    ok = errors = 0
    lat: list[float] = []
    end = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def client() -> None:
            nonlocal ok, errors
            while time.perf_counter() < end:
                status, t = await _one(session, base, next(paths))
                if status == 200:
                    ok += 1
                    lat.append(t)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return ok, errors, lat, elapsed


async def open_loop(base: str, paths: MissPaths, rate: float, seconds: float) -> tuple[int, int, list[float]]:
    """Poisson arrivals at ``rate``/s for ``seconds``; latency from the intended send time."""
    import aiohttp

    rng = random.Random(5)
    ok = errors = 0
    lat: list[float] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def fire(intended: float, path: str) -> None:
            nonlocal ok, errors
            async with session.get(base + path) as resp:
                await resp.read()
                if resp.status == 200:
                    ok += 1
                    lat.append(time.perf_counter() - intended)
                else:
                    errors += 1

        tasks = []
        start = time.perf_counter()
        t = start
        while t - start < seconds:
            t += rng.expovariate(rate)
            delay = t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(t, next(paths))))
        await asyncio.gather(*tasks)
    return ok, errors, lat


def wrk_rps(base: str, paths_file: Path, seconds: float, connections: int) -> tuple[float, float | None]:
    """Requests/s and p99 (ms) from wrk rotating over the paths in ``paths_file``."""
    lua = WORK / "paths.lua"
    lua.write_text(WRK_LUA.format(paths=paths_file))
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(lua),
                          base], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = None
    if m:
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    if "Non-2xx" in out:
        print("  wrk saw non-2xx responses:", re.search(r"Non-2xx.*", out).group(0))  # type: ignore[union-attr]
    return rps, p99


def p99_ms(lat: list[float]) -> float | None:
    from edgeproof.analytics.metrics import exact_quantiles

    value = exact_quantiles(lat, (0.99,))["p99"]
    return None if value is None else value * 1000


def saturation(name: str, base: str, paths: MissPaths, args: argparse.Namespace) -> float:
    ok, err, lat, elapsed = asyncio.run(closed_loop(base, paths, args.concurrency, args.seconds))
    sat = ok / elapsed
    print(f"  {name:9} saturation {sat:5.1f} transforms/s ({ok} ok, {err} errors, closed loop x{args.concurrency}, "
          f"p99 {p99_ms(lat) or 0:.0f} ms)", flush=True)
    return sat


def p99_at(name: str, base: str, paths: MissPaths, rate: float, args: argparse.Namespace) -> float | None:
    ok, err, lat = asyncio.run(open_loop(base, paths, rate, args.seconds))
    p99 = p99_ms(lat)
    print(f"  {name:9} open model at {rate:5.1f}/s: p99 {p99 or 0:.0f} ms ({ok} ok, {err} errors)", flush=True)
    return p99


def reference(name: str, base: str, paths: MissPaths) -> None:
    from edgeproof.analytics.metrics import exact_quantiles

    ok, _err, lat = asyncio.run(open_loop(base, paths, 2.0, 5.0))
    q = exact_quantiles(lat, (0.5, 0.99))
    print(f"  {name:9} reference at 2/s: p50 {1000 * (q['p50'] or 0):.0f} ms, p99 {1000 * (q['p99'] or 0):.0f} ms "
          f"({ok} ok): one miss at a time", flush=True)


def measure_hits(name: str, base: str, paths: list[str], args: argparse.Namespace) -> tuple[float, float | None]:
    paths_file = WORK / "hit-paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    if shutil.which("wrk"):
        rps, p99 = wrk_rps(base, paths_file, args.seconds, 32)
        tool = "wrk -t2 -c32"
    else:
        ok, _err, lat, elapsed = asyncio.run(closed_loop(base, itertools.cycle(paths), 32, args.seconds))
        rps, p99 = ok / elapsed, p99_ms(lat)
        tool = "python client x32 (client-bound)"
    print(f"  {name:9} derivative hits {rps:.0f} requests/s, p99 {p99 or 0:.1f} ms ({tool})", flush=True)
    return rps, p99


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each measured phase (default 6)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per server (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    ap.add_argument("--max-concurrency", type=int, default=1,
                    help="transforms at once per worker, the server's default (default 1)")
    ap.add_argument("--concurrency", type=int, default=0,
                    help="closed-loop clients (default max(8, 4 x workers x max-concurrency))")
    ap.add_argument("--hit-keys", type=int, default=200, help="distinct derivatives for the hit phase (default 200)")
    ap.add_argument("--no-peers", action="store_true", help="edgeproof only")
    args = ap.parse_args(argv)
    args.concurrency = args.concurrency or max(8, 4 * args.workers * args.max_concurrency)

    shutil.rmtree(WORK / "der", ignore_errors=True)
    src = make_sources()
    print(f"origin_bench: {args.workers} workers x {args.max_concurrency} transforms, {args.rounds} alternating "
          f"rounds of {args.seconds:.0f}s, cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start "
          "(shared machine)")
    servers: dict[str, str] = {}
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, float | None]] = {}
    hit_paths: list[str] = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "edgeproof.cli", "origin", "serve", "--port", str(port), "--sources", str(src),
             "--derivatives", str(WORK / "der"), "--workers", str(args.workers), "--max-concurrency",
             str(args.max_concurrency), "--queue-limit", "256", "--local-cache-mb", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        servers["edgeproof"] = f"http://127.0.0.1:{port}"
        wait_ok(servers["edgeproof"] + "/readyz", proc=procs[-1])
        sharp_js = REPO / "benchmarks" / "_work" / "sharp"
        if args.no_peers:
            pass
        elif shutil.which("node") and (sharp_js / "node_modules" / "sharp").is_dir():
            (sharp_js / "server.js").write_text(SHARP_SERVER_JS)
            port = free_port()
            env = {**os.environ, "UV_THREADPOOL_SIZE": str(args.max_concurrency)}
            procs.append(subprocess.Popen(["node", str(sharp_js / "server.js"), str(port), str(src), str(args.workers)],
                                          cwd=sharp_js, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            servers["sharp"] = f"http://127.0.0.1:{port}"
            wait_ok(servers["sharp"] + "/images/bench-0.jpg/w=16,h=0,fit=cover,q=80,f=jpeg", proc=procs[-1])
        else:
            print("sharp peer: skipped (run benchmarks/transform_bench.py once with node present to install sharp)")
        paths = {name: MissPaths(salt) for salt, name in enumerate(servers, start=1)}
        for name, base in servers.items():  # warm up (codecs, connections), not counted
            asyncio.run(closed_loop(base, paths[name], args.concurrency, 1.0))
            reference(name, base, paths[name])
        print("misses: saturation (alternating rounds, best kept)")
        sats: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, base in servers.items():
                sats[name].append(saturation(name, base, paths[name], args))
        print("misses: p99 at 80% of each server's best saturation (alternating rounds, median kept)")
        p99s: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, base in servers.items():
                value = p99_at(name, base, paths[name], 0.8 * max(sats[name]), args)
                if value is not None:
                    p99s[name].append(value)
        for name in servers:
            ordered = sorted(p99s[name])
            results[name] = {"saturation": max(sats[name]),
                             "p99_80": ordered[len(ordered) // 2] if ordered else None}
        print("derivative-store hits")
        gen = MissPaths(99)
        hit_paths = [next(gen) for _ in range(args.hit_keys)]
        for path in hit_paths:  # make them once (and let the background writes land)
            urllib.request.urlopen(servers["edgeproof"] + path, timeout=60).read()
        time.sleep(1.0)
        rps, p99 = measure_hits("edgeproof", servers["edgeproof"], hit_paths, args)
        results["edgeproof"].update({"hits_rps": rps, "hits_p99": p99})
    finally:
        for proc in procs:
            stop(proc)

    if not args.no_peers:
        if shutil.which("nginx") and hit_paths:
            port = free_port()
            (WORK / "nginx-tmp").mkdir(parents=True, exist_ok=True)
            conf = WORK / "nginx.conf"
            conf.write_text(NGINX_CONF.format(workers=args.workers, work=WORK, port=port, root=WORK / "der"))
            peer = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(WORK)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                wait_ok(f"http://127.0.0.1:{port}" + hit_paths[0], proc=peer)
                rps, p99 = measure_hits("nginx", f"http://127.0.0.1:{port}", hit_paths, args)
                results["nginx"] = {"hits_rps": rps, "hits_p99": p99}
            finally:
                stop(peer)
        else:
            print("nginx peer: skipped (nginx not installed)")

    ours = results["edgeproof"]
    print("\nsummary")
    print(f"  transforms/s at saturation: edgeproof {ours['saturation']:.1f}", end="")
    if "sharp" in results:
        theirs = results["sharp"]
        print(f", sharp {theirs['saturation']:.1f}, ratio {ours['saturation'] / theirs['saturation']:.2f}x")  # type: ignore[operator]
    else:
        print()
    p99 = ours["p99_80"]
    print(f"  p99 at 80% of saturation: edgeproof {p99 or 0:.0f} ms (target < 500 ms: "
          f"{'yes' if p99 is not None and p99 < 500 else 'NO'})", end="")
    if "sharp" in results:
        print(f", sharp {results['sharp']['p99_80'] or 0:.0f} ms")
    else:
        print()
    print(f"  derivative-store hits: edgeproof {ours['hits_rps']:.0f} requests/s", end="")
    if "nginx" in results:
        ng = results["nginx"]["hits_rps"]
        print(f", nginx static {ng:.0f} requests/s, ratio {ours['hits_rps'] / ng:.2f}x")  # type: ignore[operator]
    else:
        print()
    print(f"  load average {os.getloadavg()[0]:.1f} at the end (other work shares this machine)")
    with contextlib.suppress(OSError):
        shutil.rmtree(WORK / "der")
    return 0


if __name__ == "__main__":
    sys.exit(main())
