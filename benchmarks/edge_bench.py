"""Edge emulator vs nginx on cache hits: requests/s per core, and p99 latency at half that rate.

    .venv/bin/python benchmarks/edge_bench.py [--duration 8] [--connections 32] [--body-kb 10]

Both servers serve the same bytes: nginx from disk (sendfile, one worker, access log buffered), the
edge from its POP cache (a warm hit, strategy ``canonical`` applied on every request, standard logs
written). Each server is pinned to core 0 (``sched_setaffinity``), the load generator to core 1, and
they run one after the other in the same run. Steps:

1. throughput: ``wrk -t1 -cN`` (or, without wrk, the built-in Python generator — then the generator,
   not the server, may be the limit) → requests/s of each (best of ``--rounds`` alternating runs:
   interference from other work only lowers a run), and the ratio;
2. latency at half the edge's rate, against both servers: ``wrk --latency`` with a per-connection
   delay (Lua ``delay()``) that offers about that rate, or without wrk an open-loop paced Python
   generator (latency from each request's *scheduled* send time, no coordinated omission) → p50/p99
   of each (median of ``--rounds`` alternating runs), and the edge's added p99 (edge − nginx at the
   same offered rate);
3. the server-side view: p50/p99/p99.9 of the edge's own logged ``time-taken`` on hits (request head
   received → last byte handed to the socket; the log has millisecond resolution).

nginx is skipped when absent (``apt-get install -y nginx wrk`` to measure). Timing is noisy on a
shared machine: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY = "images/bench.jpg/w=640,h=0,fit=cover,q=80,f=webp"
VIEWER_PATH = "/images/bench.jpg?w=640&format=webp&utm_source=bench"
SERVER_CORE, LOAD_CORE = 0, 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(core: int):  # type: ignore[no-untyped-def]
    def run() -> None:
        if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {core})
    return run


def _wait(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


# -- servers ---------------------------------------------------------------------------------------
def start_edge(tmp: Path, store: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, admin = free_port(), free_port()
    cmd = [sys.executable, "-m", "edgeproof.cli", "edge", "serve", "--port", str(port), "--admin-port", str(admin),
           f"--origin-group={store}", "--strategy", "canonical", "--pops", "4", "--log-dir", str(tmp / "edge-logs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_pin(SERVER_CORE),
                            cwd=REPO)
    _wait(f"http://127.0.0.1:{admin}/readyz")
    url = f"http://127.0.0.1:{port}{VIEWER_PATH}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"X-Edge-Pop": "0"})) as r:
        assert r.headers["X-Cache"].startswith(("Miss", "Hit")), r.headers
    return proc, url


def start_nginx(tmp: Path, store: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return None
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/nginx-access.log combined buffer=64k flush=1s;
    sendfile on; tcp_nopush on; keepalive_requests 1000000;
    types {{ image/webp webp; }}
    default_type image/webp;
    server {{
        listen 127.0.0.1:{port};
        root {store};
        location / {{ }}
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=_pin(SERVER_CORE))
    url = f"http://127.0.0.1:{port}/{KEY}"
    _wait(url)
    with urllib.request.urlopen(url) as r:
        assert r.status == 200
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- load generators -------------------------------------------------------------------------------
def run_wrk(url: str, connections: int, duration: float) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "-H", "X-Edge-Pop: 0", url]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_pin(LOAD_CORE), check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None or "Non-2xx" in out or "Socket errors" in out and "timeout" in out:
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    return float(m.group(1))


class _Conn(asyncio.Protocol):
    """One keep-alive connection sending one request at a time and timing each response."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        m = re.search(rb"(?i)content-length:\s*(\d+)", self.buf[:end])
        need = end + 4 + (int(m.group(1)) if m else 0)
        if len(self.buf) >= need:
            status = int(self.buf[9:12])
            del self.buf[:need]
            if self.waiter is not None and not self.waiter.done():
                if status != 200:
                    self.waiter.set_exception(RuntimeError(f"status {status}"))
                else:
                    self.waiter.set_result(None)

    async def get(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(self.request)
        await self.waiter


async def _open(url: str, n: int) -> list[_Conn]:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    req = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Edge-Pop: 0\r\nUser-Agent: edge-bench\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _, proto = await loop.create_connection(lambda: _Conn(req), parts.hostname, parts.port)
        conns.append(proto)
    return conns


async def _closed_loop(url: str, n: int, duration: float) -> float:
    conns = await _open(url, n)
    end = time.perf_counter() + duration
    count = 0

    async def worker(c: _Conn) -> None:
        nonlocal count
        while time.perf_counter() < end:
            await c.get()
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    return count / elapsed


async def _paced(url: str, n: int, rate: float, duration: float) -> list[float]:
    """Open loop at ``rate`` req/s over ``n`` connections; latency from the scheduled send time (ms)."""
    conns = await _open(url, n)
    lat: list[float] = []
    interval = n / rate
    start = time.perf_counter() + 0.05
    total = int(rate * duration)

    async def worker(i: int, c: _Conn) -> None:
        k = 0
        while True:
            due = start + i / rate + k * interval
            if (i + k * n) >= total:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await c.get()
            lat.append((time.perf_counter() - due) * 1000.0)
            k += 1

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    return lat


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def throughput(url: str, loader: str, connections: int, duration: float) -> float:
    if loader == "wrk":
        return run_wrk(url, connections, duration)
    _pin(LOAD_CORE)()
    return asyncio.run(_closed_loop(url, connections, duration))


_PACE_LUA = """
wrk.headers["X-Edge-Pop"] = "0"
function delay()
   return %d
end
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_latency(url: str, rate: float, duration: float, connections: int, tmp: Path) -> dict[str, float]:
    """wrk with a per-connection delay (Lua ``delay()``) so the offered rate is about ``rate``."""
    interval_ms = max(1, round(1000.0 * connections / rate))
    script = tmp / "pace.lua"
    script.write_text(_PACE_LUA % interval_ms)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_pin(LOAD_CORE), check=True).stdout
    pct = {m.group(1): _ms(m.group(2), m.group(3))
           for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if "99" not in pct or rps is None:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{out}")
    return {"p50_ms": round(pct["50"], 3), "p99_ms": round(pct["99"], 3), "rate": round(float(rps.group(1)))}


def latency(url: str, rate: float, duration: float, connections: int) -> dict[str, float]:
    _pin(LOAD_CORE)()
    lat = asyncio.run(_paced(url, connections, rate, duration))
    return {"p50_ms": round(_pct(lat, 0.5), 3), "p99_ms": round(_pct(lat, 0.99), 3),
            "max_ms": round(max(lat), 3), "requests": len(lat)}


def edge_log_latency(log_dir: Path) -> dict[str, object]:
    """Server-side view: the edge's logged time-taken of its hits (request head in → last byte out)."""
    sys.path.insert(0, str(REPO))
    from edgeproof.analytics.metrics import exact_quantiles
    from edgeproof.analytics.reader import read_logs

    table = read_logs(str(log_dir), columns=["x_edge_result_type", "time_taken"]).read_all()
    rows = table.to_pydict()
    hits = [t * 1000.0 for r, t in zip(rows["x_edge_result_type"], rows["time_taken"], strict=True) if r == "Hit"]
    q = exact_quantiles(hits, (0.5, 0.99, 0.999), method="inverted_cdf")
    return {"hits": len(hits), **{k: v for k, v in q.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per throughput run (default 8)")
    ap.add_argument("--latency-duration", type=float, default=6.0, help="seconds per latency run (default 6)")
    ap.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    ap.add_argument("--latency-connections", type=int, default=16, help="connections of the paced run (default 16)")
    ap.add_argument("--body-kb", type=int, default=10, help="size of the served object in KiB (default 10)")
    ap.add_argument("--loader", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--no-nginx", action="store_true", help="measure the edge only")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs per server (default 2)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    loader = args.loader if args.loader != "auto" else ("wrk" if shutil.which("wrk") else "python")
    results: dict[str, object] = {"loader": loader, "connections": args.connections, "body_kb": args.body_kb,
                                  "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        store = tmp / "store"
        (store / KEY).parent.mkdir(parents=True)
        (store / KEY).write_bytes(os.urandom(args.body_kb * 1024))
        for p in [store, *store.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        edge, edge_url = start_edge(tmp, store)
        nginx = None if args.no_nginx else start_nginx(tmp, store)
        try:
            servers = [("edge", edge_url)] + ([("nginx", nginx[1])] if nginx is not None else [])
            # throughput: alternate the servers, keep each one's best run (interference only lowers it)
            rps: dict[str, list[float]] = {name: [] for name, _ in servers}
            for _ in range(args.rounds):
                for name, url in servers:
                    rps[name].append(throughput(url, loader, args.connections, args.duration))
            results["runs_rps"] = {k: [round(v) for v in vs] for k, vs in rps.items()}
            edge_rps = max(rps["edge"])
            results["edge_rps"] = round(edge_rps)
            print(f"edge  hits: {edge_rps:10.0f} req/s  (1 core, {loader}, {args.connections} connections, "
                  f"best of {args.rounds}: {results['runs_rps']['edge']})")
            if nginx is not None:
                nginx_rps = max(rps["nginx"])
                results["nginx_rps"] = round(nginx_rps)
                results["ratio"] = round(edge_rps / nginx_rps, 3)
                print(f"nginx file: {nginx_rps:10.0f} req/s  (1 core, best of {args.rounds}: "
                      f"{results['runs_rps']['nginx']})")
                print(f"ratio edge/nginx: {edge_rps / nginx_rps:.2f}  (target >= 0.30)")
            else:
                why = "--no-nginx" if args.no_nginx else "nginx not found (apt-get install -y nginx)"
                print(f"ratio skipped: {why}")
            rate = edge_rps / 2
            results["latency_rate"] = round(rate)

            def lat(url: str) -> dict[str, float]:
                if loader == "wrk":
                    return wrk_latency(url, rate, args.latency_duration, args.latency_connections, tmp)
                return latency(url, rate, args.latency_duration, args.latency_connections)

            # latency: alternate the servers; report each one's median run (by p99)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
            for _ in range(args.rounds):
                for name, url in servers:
                    runs[name].append(lat(url))
            med = {k: sorted(v, key=lambda r: r["p99_ms"])[len(v) // 2] for k, v in runs.items()}
            results["latency_runs"] = runs
            results["edge_latency"] = med["edge"]
            print(f"at ~{rate:.0f} req/s offered (half the edge's rate), median of {args.rounds} runs:")
            print(f"  edge  p50 {med['edge']['p50_ms']} ms, p99 {med['edge']['p99_ms']} ms  {med['edge']}")
            if nginx is not None:
                results["nginx_latency"] = med["nginx"]
                added = med["edge"]["p99_ms"] - med["nginx"]["p99_ms"]
                results["added_p99_ms"] = round(added, 3)
                print(f"  nginx p50 {med['nginx']['p50_ms']} ms, p99 {med['nginx']['p99_ms']} ms  {med['nginx']}")
                print(f"  edge added p99: {added:.3f} ms (target < 2 ms)")
        finally:
            stop(edge)
            if nginx is not None:
                stop(nginx[0])
        server_side = edge_log_latency(tmp / "edge-logs")
        results["edge_log_time_taken_ms"] = server_side
        print(f"edge's own time-taken on hits (its logs, ms resolution, all runs): {server_side}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
