"""Benchmark the edgeproof load generator against plain Locust on the same endpoint, in one run.

Both run in ONE Locust process (one core's worth of generator) against the same fast endpoint: nginx
(``return 200`` with a 1000-byte body and CloudFront-like headers, one worker) when ``nginx`` is on
PATH, else a small aiohttp server in another process. With ``taskset`` available the generator is
pinned to CPU 0 and the server to CPU 1.

- plain Locust: a ``FastHttpUser`` with ``wait_time = constant(0)`` and ``--users`` users (closed loop),
  GETting one fixed URL; rate = Locust's own Aggregated ``Requests/s`` (locust_stats.csv);
- edgeproof: ``edgeproof loadtest run`` machinery (``loadtest.runner.run``), one lane, the built-in
  spike scenario's workload (Zipf catalog, clients, URL noise, POP hints) on a flat shape whose target
  rate is far above what one process can send, ``pool`` = ``--users`` and no dropping, so the lane runs
  saturated; rate = completed requests / (last response − first start) from the recorder's rows.

The two alternate ``--rounds`` times; the best rate of each is kept. Prints both and the ratio
(target: edgeproof ≥ 0.8× plain Locust per core).

    .venv/bin/python benchmarks/loadgen_bench.py [--seconds 15] [--users 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from loadtest.recorder import read_records  # noqa: E402
from loadtest.runner import run  # noqa: E402
from loadtest.scenario import load_scenario, scenario_from_dict  # noqa: E402

BODY = "x" * 1000

PLAIN_LOCUSTFILE = '''
from locust import FastHttpUser, constant, task


class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/images/sku-00001-1.jpg?width=640&format=auto&q=80",
                        headers={"Accept": "image/webp,*/*", "X-Edge-Pop": "0"}, name="image")
'''

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type image/webp;
            add_header X-Cache "Hit from cloudfront";
            add_header X-Amz-Cf-Pop "IAD89-C1";
            return 200 "{body}";
        }}
    }}
}}
"""

AIOHTTP_SERVER = '''
import sys
from aiohttp import web
body = b"x" * 1000
async def h(request):
    return web.Response(body=body, content_type="image/webp",
                        headers={"X-Cache": "Hit from cloudfront", "X-Amz-Cf-Pop": "IAD89-C1"})
app = web.Application()
app.router.add_get("/{tail:.*}", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def start_server(work: Path) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=work, port=port, body=BODY))
        proc = subprocess.Popen([*pin(1), nginx, "-c", str(conf), "-p", str(work)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peer = "nginx (1 worker)"
    else:
        script = work / "server.py"
        script.write_text(AIOHTTP_SERVER)
        proc = subprocess.Popen([*pin(1), sys.executable, str(script), str(port)])
        peer = "aiohttp (1 process)"
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/")
    return proc, url, peer


def plain_locust(url: str, work: Path, seconds: float, users: int) -> float:
    lf = work / "plain_locustfile.py"
    lf.write_text(PLAIN_LOCUSTFILE)
    prefix = work / "plain"
    subprocess.run(
        [*pin(0), sys.executable, "-m", "locust", "-f", str(lf), "--headless", "--host", url, "-u", str(users),
         "-r", str(users * 10), "--run-time", f"{int(seconds)}s", "--csv", str(prefix), "--only-summary",
         "--loglevel", "WARNING", "--exit-code-on-error", "0"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 60)
    with open(f"{prefix}_stats.csv") as f:
        agg = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if int(agg["Failure Count"]):
        print(f"  plain Locust: {agg['Failure Count']} failures", file=sys.stderr)
    return float(agg["Requests/s"])


def edgeproof_worker(url: str, work: Path, seconds: float, users: int, target_rps: float) -> tuple[float, dict]:
    raw = dict(load_scenario("spike").raw)
    raw["shape"] = {"kind": "soak", "ramp": 0}
    raw["run"] = {"pool": users, "max_lateness_s": 3600.0, "drain_s": 2.0, "late_ms": 10.0}
    raw["gates"] = {"rules": ["error_rate <= 0.01"], "scope": "all"}
    sc = scenario_from_dict(raw, where="loadgen_bench")
    out = work / "edgeproof"
    shutil.rmtree(out, ignore_errors=True)
    # the Locust subprocess inherits this process's CPU affinity (CPU 0, see main)
    verdict = run(sc, url, seconds, target_rps, out, 0, events_callback=None)
    table = read_records(out)
    ok = [(s, lat) for s, lat, st in zip(table.column("actual_start").to_pylist(),
                                          table.column("latency_ms").to_pylist(),
                                          table.column("status").to_pylist(), strict=True)
          if lat is not None and st == 200]
    first = min(s for s, _ in ok).timestamp()
    last = max(s.timestamp() + lat / 1000 for s, lat in ok)
    return len(ok) / (last - first), verdict.totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--users", type=int, default=50, help="plain Locust users = edgeproof pool size")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if pin(0):
        os.sched_setaffinity(0, {0})  # this process and the Locust it starts for edgeproof: CPU 0
    with tempfile.TemporaryDirectory(prefix="loadgen_bench_") as tmp:
        work = Path(tmp)
        proc, url, peer = start_server(work)
        try:
            plain_best = edge_best = 0.0
            for r in range(args.rounds):
                plain = plain_locust(url, work, args.seconds, args.users)
                target = max(plain * 3, 1000.0)
                edge, totals = edgeproof_worker(url, work, args.seconds, args.users, target)
                print(f"round {r + 1}: plain Locust {plain:8.0f} req/s   edgeproof {edge:8.0f} req/s "
                      f"(target {target:.0f}/s, sent {totals['sent']}, errors {totals['errors']})")
                plain_best, edge_best = max(plain_best, plain), max(edge_best, edge)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"peer endpoint: {peer}; generator pinned to CPU 0: {bool(pin(0))}; {args.users} users / pool")
    print(f"plain Locust FastHttpUser: {plain_best:.0f} req/s")
    print(f"edgeproof worker (spike workload, open model, recorder): {edge_best:.0f} req/s")
    ratio = edge_best / plain_best if plain_best else float("nan")
    print(f"ratio edgeproof / plain Locust: {ratio:.2f}x (target >= 0.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
