"""Benchmark the edgeproof load generator against plain Locust on the same endpoint, in one run.

Both run in ONE Locust process (one core's worth of generator) against the same fast endpoint: nginx
(``return 200`` with a 1000-byte body and CloudFront-like headers, one worker) when ``nginx`` is on
PATH, else a small aiohttp server in another process. With ``taskset`` available the generator is
pinned to CPU 0 and the server to CPU 1.

- plain Locust: a ``FastHttpUser`` with ``wait_time = constant(0)`` and ``--users`` users (closed loop),
  GETting one fixed URL;
- edgeproof: ``edgeproof loadtest run`` machinery (``edgeproof.loadtest.runner.run``), one lane, the built-in
  spike scenario's workload (Zipf catalog, clients, URL noise, POP hints) on a flat shape whose target
  rate is far above what one process can send, ``pool`` = ``--users`` and no dropping, so the lane runs
  saturated (the same ``python -m locust`` command ``edgeproof loadtest run`` starts).

Both rates are measured the same way over the steady part of each run (from 3 s after the first
request to 1 s before the last): requests from Locust's own ``*_stats_history.csv``, and CPU seconds
(user + system) of the generator process sampled from /proc. The two alternate ``--rounds`` times.
Because the machine is shared, wall-clock rates swing with other people's work; the headline figure
is requests per CPU-second (per core), whose median ratio over the rounds is printed (target:
edgeproof ≥ 0.9× plain Locust, issue 13; 0.8× before), next to each round's wall-rate ratio.

    .venv/bin/python benchmarks/loadgen_bench.py [--seconds 15] [--users 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from edgeproof.loadtest.config import RunConfig  # noqa: E402
from edgeproof.loadtest.runner import judge, locust_command  # noqa: E402
from edgeproof.loadtest.scenario import load_scenario, scenario_from_dict  # noqa: E402

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


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def supervise(cmd: list[str], env: dict[str, str] | None, timeout: float) -> list[tuple[float, float]]:
    """Run ``cmd``; sample (wall time, CPU seconds) of the process every 0.25 s until it exits."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, float]] = []
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        cpu = proc_cpu(proc.pid)
        if cpu is not None:
            samples.append((time.time(), cpu))
        time.sleep(0.25)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return samples


def steady_rate(prefix: Path, samples: list[tuple[float, float]], skip: float = 3.0) -> tuple[float, float]:
    """Requests per wall second and per CPU second over the steady part of a run.

    Request counts come from Locust's own ``*_stats_history.csv`` (cumulative, once a second) for both
    generators; the window starts ``skip`` s after the first request and ends 1 s before the count stops
    rising; CPU time over the same window is interpolated from the samples.
    """
    with open(f"{prefix}_stats_history.csv") as f:
        rows = [(float(r["Timestamp"]), int(r["Total Request Count"])) for r in csv.DictReader(f)
                if r["Name"] == "Aggregated"]
    first = next(t for t, n in rows if n > 0)
    final = max(n for _, n in rows)
    last = next(t for t, n in rows if n == final)
    window = [(t, n) for t, n in rows if first + skip <= t <= last - 1]
    (t0, n0), (t1, n1) = window[0], window[-1]

    def cpu_at(t: float) -> float:
        for (ta, ca), (tb, cb) in zip(samples, samples[1:], strict=False):
            if ta <= t <= tb:
                return ca + (cb - ca) * (t - ta) / (tb - ta)
        raise ValueError(f"no CPU sample around {t}")

    return (n1 - n0) / (t1 - t0), (n1 - n0) / (cpu_at(t1) - cpu_at(t0))


def plain_locust(url: str, work: Path, seconds: float, users: int) -> tuple[float, float]:
    lf = work / "plain_locustfile.py"
    lf.write_text(PLAIN_LOCUSTFILE)
    prefix = work / "plain"
    samples = supervise(
        [*pin(0), sys.executable, "-m", "locust", "-f", str(lf), "--headless", "--host", url, "-u", str(users),
         "-r", str(users * 10), "--run-time", f"{int(seconds)}s", "--csv", str(prefix), "--only-summary",
         "--loglevel", "WARNING", "--exit-code-on-error", "0"], None, seconds + 60)
    return steady_rate(prefix, samples)


def edgeproof_worker(url: str, work: Path, seconds: float, users: int, target_rps: float) -> tuple[float, float, dict]:
    """The same command ``edgeproof loadtest run`` starts (runner.locust_command), then its judge."""
    raw = dict(load_scenario("spike").raw)
    raw["shape"] = {"kind": "soak", "ramp": 0}
    raw["run"] = {"pool": users, "max_lateness_s": 3600.0, "drain_s": 2.0, "late_ms": 10.0}
    raw["gates"] = {"rules": ["error_rate <= 0.01"], "scope": "all"}
    sc = scenario_from_dict(raw, where="loadgen_bench")
    out = work / "edgeproof"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    RunConfig(sc, str(out), seconds, target_rps).write(out / "run.json")
    cmd = locust_command(url, out, run_time_s=seconds + 20)
    samples = supervise([*pin(0), *cmd], {**os.environ, "EDGEPROOF_CONFIG": str(out / "run.json")}, seconds + 60)
    wall, per_cpu = steady_rate(out / "locust", samples)
    return wall, per_cpu, judge(out).totals


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
            wall: list[tuple[float, float]] = []
            per_cpu: list[tuple[float, float]] = []
            for r in range(args.rounds):
                plain, plain_cpu = plain_locust(url, work, args.seconds, args.users)
                target = max(plain * 3, 1000.0)
                edge, edge_cpu, totals = edgeproof_worker(url, work, args.seconds, args.users, target)
                wall.append((plain, edge))
                per_cpu.append((plain_cpu, edge_cpu))
                print(f"round {r + 1}: plain Locust {plain:6.0f} req/s, {plain_cpu:6.0f} req/CPU-s   "
                      f"edgeproof {edge:6.0f} req/s, {edge_cpu:6.0f} req/CPU-s   "
                      f"(target {target:.0f}/s, {totals['sent']} sent, {totals['errors']} errors)", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"peer endpoint: {peer}; generator pinned to CPU 0: {bool(pin(0))}; {args.users} users / pool; "
          f"{args.seconds:g} s per run; {args.rounds} rounds")
    wall_ratios = sorted(e / p for p, e in wall)
    cpu_ratios = sorted(e / p for p, e in per_cpu)
    print(f"plain Locust FastHttpUser: best {max(p for p, _ in wall):.0f} req/s, "
          f"median {statistics.median(p for p, _ in per_cpu):.0f} req/CPU-s")
    print(f"edgeproof worker (spike workload, open model, recorder): best {max(e for _, e in wall):.0f} req/s, "
          f"median {statistics.median(e for _, e in per_cpu):.0f} req/CPU-s")
    print(f"ratio per CPU-second (median of rounds): {statistics.median(cpu_ratios):.2f}x  (target >= 0.9x)")
    print(f"ratio of wall rates per round: {', '.join(f'{x:.2f}' for x in wall_ratios)}  "
          "(noisy on a shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
