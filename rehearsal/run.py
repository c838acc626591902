"""The spike rehearsal end to end: start the stack, play the spike and its events, stop, analyse, report.

``run_rehearsal(options)`` is what ``edgeproof rehearse`` calls:

1. the sample catalog (generated once with ``edgeproof origin sample-catalog`` and kept under
   ``.edgeproof-cache/``);
2. the embedded stack on loopback, each part through its own CLI: origin tasks (``edgeproof origin
   serve``, with a shared derivative-store folder or, in local-cache mode, private ones), the edge
   emulator (``edgeproof edge serve``: several POPs, the chosen strategy, standard logs in ``OUT/logs``
   and real-time logs in ``OUT/realtime-logs``, its flags from one ``EdgeConfig``);
   with ``--target URL`` no stack is started and the load goes to that distribution;
3. the load (``edgeproof loadtest run``, its own process since Locust must be), while this process
   polls the edge's and origins' counters once a second, plays the scenario's events (origin
   scale-out/in through the edge's admin API) and prints a live progress line;
4. a clean stop of everything (:class:`~edgeproof.rehearsal.stack.Processes`), even on Ctrl-C or
   failure;
5. the analysis (:mod:`edgeproof.rehearsal.analysis`) and the report
   (:mod:`edgeproof.rehearsal.report`): ``summary.json``, ``report.html``, PNG charts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeproof.rehearsal.autoscaler import TargetTracking, group_cpu_seconds
from edgeproof.rehearsal.calibration import edge_config, edge_serve_args
from edgeproof.rehearsal.config import SCENARIO_SETTINGS, RehearsalScenario, dump_toml, load_rehearsal
from edgeproof.rehearsal.stack import (
    Child,
    Processes,
    RehearsalError,
    edgeproof_cmd,
    free_port,
    http_get,
    http_post_json,
    wait_ready,
)

from edgeproof.errors import ConfigError, UsageError
from edgeproof.progress import Progress

if TYPE_CHECKING:
    from edgeproof.edge.config import EdgeConfig
    from edgeproof.rehearsal.analysis import RehearsalSummary

__all__ = ["RehearsalOptions", "RehearsalResult", "catalog_dir", "run_rehearsal"]


@dataclass
class RehearsalOptions:
    """What ``edgeproof rehearse`` was asked; ``strategy``, ``duration`` and ``peak_rps`` override the
    scenario's keys of the same name (None: the scenario's), checked by the scenario's table."""

    scenario: str | None = None
    strategy: str | None = None
    duration: float | None = None
    peak_rps: float | None = None
    out: str | None = None
    target: str | None = None
    logs: str | None = None
    cache_dir: str | None = None
    what_if: bool = True
    quiet: bool = False


@dataclass
class RehearsalResult:
    out_dir: Path
    summary: RehearsalSummary
    exit_code: int
    files: list[Path] = field(default_factory=list)


def catalog_dir(images: int, cache_dir: str | None = None, distinct: int = 0) -> Path:
    base = Path(cache_dir or os.environ.get("EDGEPROOF_CACHE") or ".edgeproof-cache")
    return base / (f"catalog-{images}-of-{distinct}" if 0 < distinct < images else f"catalog-{images}")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def ensure_catalog(images: int, cache_dir: str | None, quiet: bool, distinct: int = 0) -> Path:
    """The sample catalog folder (generated once, then reused); returns it (with ``catalog.txt``)."""
    folder = catalog_dir(images, cache_dir, distinct)
    if (folder / "catalog.txt").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shared = f", {distinct} drawn, the rest sharing their pixels" if 0 < distinct < images else ""
    _say(quiet, f"generating the sample catalog ({images} images{shared}) in {folder} (once; kept for later runs)…")
    proc = subprocess.run(edgeproof_cmd("origin", "sample-catalog", "--count", str(images), "--out", str(tmp),
                                        "--distinct", str(distinct)),
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (tmp / "catalog.txt").is_file():
        raise RehearsalError("could not generate the sample catalog",
                             detail=(proc.stderr or proc.stdout)[-2000:] or "no catalog.txt written")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


@dataclass
class _Stack:
    """The running embedded stack: origin tasks, the edge, and what the poller collected."""

    procs: Processes
    scenario: RehearsalScenario
    out: Path
    sources: Path
    #: the edge that runs (its flags and the what-if's cache model both come from it)
    edge_config: EdgeConfig
    edge: Child | None = None
    edge_url: str = ""
    admin_url: str = ""
    origins: list[Child] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    task_seq: int = 0
    task_counters: dict[str, dict[str, float]] = field(default_factory=dict)
    #: every task ever started: launch, serving and stop times, who asked for it, its counters then
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: launched tasks not yet taking traffic (start-up time), with their launch time (rehearsal clock)
    pending: list[tuple[Child, float]] = field(default_factory=list)
    policy: TargetTracking | None = None
    #: per serving task: (rehearsal t, CPU seconds) at its last poll and at the current period's start
    cpu_last: dict[int, tuple[float, float]] = field(default_factory=dict)
    cpu_period: dict[int, tuple[float, float]] = field(default_factory=dict)
    inflight_period: list[float] = field(default_factory=list)
    #: per serving task: (rehearsal t, requests answered) at its last poll and at the period's start
    req_last: dict[int, tuple[float, float]] = field(default_factory=dict)
    req_period: dict[int, tuple[float, float]] = field(default_factory=dict)
    next_period: float | None = None
    #: every datapoint the policy got: (period end t, value, tasks serving)
    datapoints: list[tuple[float, float, int]] = field(default_factory=list)
    clock: float = 0.0  # the rehearsal clock (s since the first request; 0 before), set by the load loop

    def derivatives_for(self, n: int) -> Path:
        store = self.out / "store"
        return store / "derivatives" if self.scenario.stack.shared_derivatives else store / f"task-{n}"

    def launch_origin(self, by: str) -> Child:
        """Start one origin task process (not yet registered with the edge nor waited for)."""
        self.task_seq += 1
        n = self.task_seq
        port = free_port()
        deriv = self.derivatives_for(n)
        deriv.mkdir(parents=True, exist_ok=True)
        args = ["origin", "serve", "--port", str(port), "--sources", str(self.sources), "--derivatives", str(deriv),
                "--workers", str(self.scenario.stack.origin_workers)]
        if self.scenario.stack.local_cache_mb:
            args += ["--local-cache-mb", str(self.scenario.stack.local_cache_mb)]
        child = self.procs.start(f"origin-{n}", edgeproof_cmd(*args), url=f"http://127.0.0.1:{port}", task=n)
        self.tasks[n] = {"task": n, "url": child.url, "by": by, "launched_t": round(self.clock, 2),
                         "serving_t": None, "stopped_t": None}
        return child

    def start_origin(self, by: str = "initial") -> Child:
        """Start a task and wait until it is ready (the stack's first tasks, scripted events)."""
        child = self.launch_origin(by)
        wait_ready(child, f"{child.url}/readyz", timeout=90)
        self._serving(child)
        return child

    def _serving(self, child: Child) -> None:
        """The task takes traffic: counted as serving, its counters at that moment kept (a cold task: no
        private-cache hit yet), its CPU clock started."""
        self.origins.append(child)
        n = child.meta["task"]
        self._poll_origin(child)
        info = self.tasks[n]
        info["serving_t"] = round(self.clock, 2)
        info["at_start"] = dict(self.task_counters.get(child.url or child.name, {}))
        cpu = group_cpu_seconds(child.proc.pid)
        if cpu is not None:
            self.cpu_last[n] = self.cpu_period[n] = (self.clock, cpu)

    def start_edge(self) -> None:
        port, admin = free_port(), free_port()
        primary = str(self.out / "store" / "derivatives") if self.scenario.stack.shared_derivatives else "-"
        group = ",".join([primary, *(o.url or "" for o in self.origins)])
        args = edge_serve_args(self.edge_config, port=port, admin_port=admin, origin_group=group,
                               log_dir=self.out / "logs")
        self.edge = self.procs.start("edge", edgeproof_cmd(*args), url=f"http://127.0.0.1:{port}")
        self.edge_url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin}"
        wait_ready(self.edge, f"{self.admin_url}/readyz", timeout=60)

    def _register(self, child: Child) -> None:
        status, body = http_post_json(f"{self.admin_url}/backends", {"url": child.url})
        if status >= 300:
            raise RehearsalError(f"the edge refused the new origin backend {child.url}: {body}")

    def scale_out(self, count: int) -> list[str]:
        """A scripted scale-out: ``count`` tasks started, waited for and registered at once."""
        added = []
        for _ in range(count):
            child = self.start_origin("script")
            self._register(child)
            added.append(child.url or "")
        if self.policy is not None:
            self.policy.desired = len(self.origins) + len(self.pending)
        return added

    def scale_in(self, count: int) -> list[str]:
        removed = []
        for _ in range(min(count, len(self.origins) - 1)):  # keep at least one task
            removed.append(self._stop_task(self.origins[-1]))
        if self.policy is not None:
            self.policy.desired = len(self.origins) + len(self.pending)
        return removed

    def _stop_task(self, child: Child) -> str:
        """Deregister a serving task from the edge, take its last counters, stop it (it drains)."""
        self.origins.remove(child)
        http_post_json(f"{self.admin_url}/backends", {"url": child.url}, method="DELETE")
        self._poll_origin(child)  # its counters up to its removal
        self.procs.stop(child)
        n = child.meta["task"]
        self.tasks[n]["stopped_t"] = round(self.clock, 2)
        for table in (self.cpu_last, self.cpu_period, self.req_last, self.req_period):
            table.pop(n, None)
        return child.url or ""

    def task_records(self) -> list[dict[str, Any]]:
        """Every task started, with its counters at the end (a stopped task's at its removal)."""
        out = []
        for _n, info in sorted(self.tasks.items()):
            end = self.task_counters.get(info["url"] or "", {})
            start = info.get("at_start") or {}
            out.append({**{k: v for k, v in info.items() if k != "at_start"},
                        "local_cache_hits_at_start": round(start.get("local_cache_hits_total", 0.0)),
                        "transforms_at_start": round(start.get("transforms_total", 0.0)),
                        "transforms": round(end.get("transforms_total", 0.0)),
                        "local_cache_hits": round(end.get("local_cache_hits_total", 0.0)),
                        "requests": round(end.get("requests_total", 0.0)),
                        "responses_503": round(end.get("responses_503", 0.0))})
        return out

    # ------------------------------------------------------------------ load-driven autoscaling

    def start_autoscaling(self) -> None:
        auto = self.scenario.autoscaling
        if auto.enabled:
            self.policy = TargetTracking(auto, len(self.origins))

    def _task_cpu(self, sample: dict[str, Any]) -> None:
        """Each serving task's CPU since the last poll, % of its vCPUs (``origin_workers``)."""
        vcpus = self.scenario.stack.origin_workers
        per_task: dict[str, Any] = {}
        for child in self.origins:
            n = child.meta["task"]
            cpu = group_cpu_seconds(child.proc.pid)
            counters = self.task_counters.get(child.url or child.name, {})
            row: dict[str, Any] = {"inflight": counters.get("queue_depth", 0.0) + counters.get("in_flight", 0.0)}
            last = self.cpu_last.get(n)
            if cpu is not None and last is not None and self.clock > last[0]:
                row["cpu_pct"] = round(100.0 * (cpu - last[1]) / (self.clock - last[0]) / vcpus, 1)
            if cpu is not None:
                self.cpu_last[n] = (self.clock, cpu)
            served = counters.get("requests_total", 0.0)
            before = self.req_last.get(n)
            if before is not None and self.clock > before[0]:
                row["rps"] = round((served - before[1]) / (self.clock - before[0]), 2)
            self.req_last[n] = (self.clock, served)
            self.req_period.setdefault(n, self.req_last[n])
            per_task[str(n)] = row
        sample["tasks"] = per_task
        if self.origins:
            self.inflight_period.append(sum(r["inflight"] for r in per_task.values()) / len(self.origins))

    def _datapoint(self) -> float | None:
        """The finished period's metric over the serving tasks (ECS: the service average)."""
        auto = self.scenario.autoscaling
        if auto.metric == "inflight":
            values, self.inflight_period = self.inflight_period, []
            return sum(values) / len(values) if values else None
        if auto.metric == "requests":  # requests per second per task over the period
            rates = []
            for child in self.origins:
                n = child.meta["task"]
                start, now = self.req_period.get(n), self.req_last.get(n)
                if start is not None and now is not None and now[0] > start[0]:
                    rates.append((now[1] - start[1]) / (now[0] - start[0]))
                if now is not None:
                    self.req_period[n] = now
            return sum(rates) / len(rates) if rates else None
        vcpus = self.scenario.stack.origin_workers
        utils = []
        for child in self.origins:
            n = child.meta["task"]
            start, now = self.cpu_period.get(n), self.cpu_last.get(n)
            if start is not None and now is not None and now[0] > start[0]:
                utils.append(100.0 * (now[1] - start[1]) / (now[0] - start[0]) / vcpus)
            if now is not None:
                self.cpu_period[n] = now
        return sum(utils) / len(utils) if utils else None

    def autoscale(self, line: Progress) -> None:
        """One tick of the service: pending tasks that finished starting take traffic; at each period's
        end the policy gets its datapoint and the task count follows its decision."""
        if self.policy is None:
            return
        auto = self.scenario.autoscaling
        t = self.clock
        for child, launched in list(self.pending):
            if t - launched < auto.startup_s:
                continue
            if not child.alive():
                raise RehearsalError(f"{child.name} exited with status {child.proc.returncode} while starting",
                                     detail=child.tail())
            try:
                ready = http_get(f"{child.url}/readyz", timeout=2.0)[0] == 200
            except OSError:
                ready = False
            if ready:
                self.pending.remove((child, launched))
                self._serving(child)
                self._register(child)
                self.events.append({"t": round(t, 2), "action": "task_serving", "by": "autoscaler",
                                    "urls": [child.url], "origin_tasks": len(self.origins),
                                    "wanted": self.policy.desired})
                line.note(f"  t={t:.1f}s: task {child.meta['task']} serving → {len(self.origins)} serving, "
                          f"{self.policy.desired} wanted")
        if self.next_period is None:
            self.next_period = auto.period_s
        if t < self.next_period:
            return
        self.next_period += auto.period_s * max(1, int((t - self.next_period) // auto.period_s) + 1)
        value = self._datapoint()
        if value is None:
            return
        self.datapoints.append((round(t, 2), round(value, 2), len(self.origins)))
        decision = self.policy.observe(t, value, len(self.origins))
        if decision is None:
            return
        changed: list[str] = []
        if decision.direction == "out":
            for _ in range(decision.desired - len(self.origins) - len(self.pending)):
                child = self.launch_origin("autoscaler")
                self.pending.append((child, t))
                changed.append(child.url or "")
        else:
            surplus = len(self.origins) + len(self.pending) - decision.desired
            while surplus > 0 and self.pending:  # a task still starting goes first
                child, _ = self.pending.pop()
                self.procs.stop(child)
                self.tasks[child.meta["task"]]["stopped_t"] = round(t, 2)
                changed.append(child.url or "")
                surplus -= 1
            while surplus > 0 and len(self.origins) > 1:
                changed.append(self._stop_task(self.origins[-1]))
                surplus -= 1
        self.events.append({"t": round(t, 2), "action": f"scale_{decision.direction}", "by": "autoscaler",
                            "urls": changed, "origin_tasks": len(self.origins), "wanted": decision.desired,
                            "metric": round(decision.metric, 2), "breach_t": round(decision.breach_t, 2),
                            "reason": decision.reason})
        line.note(f"  t={t:.1f}s: autoscaler {decision.reason} → {decision.desired} wanted "
                  f"({len(self.origins)} serving)")

    def _poll_origin(self, child: Child) -> None:
        try:
            status, body = http_get(f"{child.url}/metrics", timeout=2.0)
        except OSError:
            return
        if status == 200:
            self.task_counters[child.url or child.name] = parse_prometheus(body.decode(errors="replace"))

    def poll(self, t: float) -> dict[str, Any]:
        """One sample of the edge's /stats and every origin's /metrics (counters, summed)."""
        sample: dict[str, Any] = {"t": t, "origin_tasks": len(self.origins), "tasks_starting": len(self.pending),
                                  "tasks_wanted": self.policy.desired if self.policy else len(self.origins)}
        try:
            status, body = http_get(f"{self.admin_url}/stats", timeout=2.0)
            if status == 200:
                sample["edge"] = json.loads(body)
        except (OSError, ValueError):
            pass
        for child in self.origins:
            self._poll_origin(child)
        self._task_cpu(sample)
        totals: dict[str, float] = {}
        # every task ever started, a stopped one frozen at its last poll: the sums never go backwards
        for counters in self.task_counters.values():
            for key, value in counters.items():
                totals[key] = totals.get(key, 0.0) + value
        sample["origin"] = totals
        self.samples.append(sample)
        return sample


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """The origin's counters we chart: transforms, 503s, requests, shed (summed over labels)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        short = name.removeprefix("edgeproof_origin_")
        if short in ("transforms_total", "shed_total", "local_cache_hits_total", "store_writes_total",
                     "queue_depth", "in_flight",
                     # the histogram's sum and count: CPU per transform (the cost model)
                     "transform_duration_seconds_sum", "transform_duration_seconds_count"):
            out[short] = out.get(short, 0.0) + value
        elif short == "requests_total":
            out["requests_total"] = out.get("requests_total", 0.0) + value
            if 'status="503"' in labels:
                out["responses_503"] = out.get("responses_503", 0.0) + value
            m_source = re.search(r'source="([a-z_]+)"', labels)
            if m_source:  # where the origin's answer came from: local_cache, derivative_store, transform
                key = f"from_{m_source.group(1)}"
                out[key] = out.get(key, 0.0) + value
    return out


def prescale_plan(scenario: RehearsalScenario, scenario_file: Path) -> tuple[list[str], list[str], list[int]]:
    """What a prescaling rehearsal writes to the shared store before the load: ``(keys, ops, skus)``.

    The SKUs are the promotion's new ones (known before a launch) and the ``prescale_hottest`` most
    popular (rank 1 is the hottest); the variants are the ones the edge will ask the store for: each
    role's widths and quality under each browser's ``Accept``, through the run's own strategy.
    """
    from edgeproof.analytics.strategies import get_strategy
    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.loadtest.workload import load_keys

    st = scenario.stack
    if not (st.prescale_launch or st.prescale_hottest):
        return [], [], []
    sc = load_scenario(scenario_file)
    groups = load_keys(sc.catalog.keys_file) if sc.catalog.keys_file else []
    promoted = min(sc.promotion.new_skus, max(len(groups) - 1, 0))
    regular = len(groups) - promoted
    skus = list(range(1, min(st.prescale_hottest, regular) + 1))
    if st.prescale_launch:
        skus += list(range(regular + 1, len(groups) + 1))
    keys = [k.lstrip("/") for n in skus for k in groups[n - 1]]
    strategy = get_strategy(scenario.strategy)
    ops: set[str] = set()
    for key in keys:
        for role in sc.catalog.roles:
            for width in role.widths:
                for browser in sc.clients.browsers:
                    found = strategy.apply("GET", "/" + key, f"width={width}&format=auto&q={role.quality}",
                                           {"accept": browser.accept})
                    variant = getattr(found, "variant", None)
                    if variant and variant.startswith(f"/{key}/"):
                        ops.add(variant[len(key) + 2:])
    return keys, sorted(ops), skus


def run_prescale(scenario: RehearsalScenario, scenario_file: Path, sources: Path, out: Path,
                 quiet: bool) -> dict[str, Any] | None:
    """``edgeproof origin prescale`` of the launch / hottest SKUs into the shared derivative store."""
    keys, ops, skus = prescale_plan(scenario, scenario_file)
    if not keys or not ops:
        return None
    store = out / "store" / "derivatives"
    store.mkdir(parents=True, exist_ok=True)
    keys_file = out / "prescale-keys.txt"
    keys_file.write_text("".join(k + "\n" for k in keys))
    _say(quiet, f"prescaling {len(ops) * len(keys)} variants ({len(ops)} per image × {len(keys)} images of "
                f"{len(skus)} SKUs: the launch and the hottest) into the derivative store…")
    began = time.monotonic()
    proc = subprocess.run(edgeproof_cmd("origin", "prescale", "--sources", str(sources), "--derivatives", str(store),
                                        "--variants", ";".join(ops), "--keys", str(keys_file), "--quiet"),
                          capture_output=True, text=True)
    seconds = time.monotonic() - began
    if proc.returncode != 0:
        raise RehearsalError("prescaling failed", detail=(proc.stderr or proc.stdout)[-2000:])
    made = sum(1 for f in store.rglob("*") if f.is_file())
    return {"skus": skus, "images": len(keys), "variants": ops, "written": made, "seconds": round(seconds, 2),
            "line": (proc.stdout or proc.stderr).strip().splitlines()[-1:]}


def edge_warm_plan(scenario: RehearsalScenario, scenario_file: Path, pops: list[str]) -> tuple[list[Any], list[int]]:
    """The edge pre-warm's plan: one request per cache key of :func:`prescale_plan`'s SKUs × the pages'
    variants × the clients' Accept values (:func:`edgeproof.rehearsal.prewarm.build_plan`), and the SKUs."""
    from edgeproof.loadtest.scenario import load_scenario
    from edgeproof.rehearsal import prewarm

    keys, _ops, skus = prescale_plan(scenario, scenario_file)
    if not keys:
        return [], []
    sc = load_scenario(scenario_file)
    plan = prewarm.build_plan(["/" + k for k in keys], prewarm.page_variants(sc), prewarm.scenario_traffic(sc, pops),
                              scenario.strategy)
    return plan, skus


def run_edge_prewarm(stack: _Stack, scenario_file: Path, quiet: bool) -> dict[str, Any] | None:
    """Warm the edge before the load: one request per cache key of the launch and hottest SKUs
    (:func:`prescale_plan`'s SKUs) × the pages' variants × the clients' Accept values, sent to every
    POP of the emulator (:mod:`edgeproof.rehearsal.prewarm`)."""
    from edgeproof.rehearsal import prewarm

    pops = stack.edge_config.pop_list
    plan, skus = edge_warm_plan(stack.scenario, scenario_file, pops)
    if not plan:
        return None
    _say(quiet, f"pre-warming the edge: {len(plan)} cache keys of {len(skus)} SKUs × {len(pops)} POPs…")
    began = time.monotonic()
    result = prewarm.run_plan(plan, stack.edge_url, pops=pops, concurrency=4, max_seconds=300)
    if result.failures:
        raise RehearsalError(f"edge pre-warming failed for {len(result.failures)} of {result.planned} requests",
                             detail="\n".join(result.failures[:10]))
    seconds = round(time.monotonic() - began, 2)
    # the load starts in the next whole second (log times have 1 s resolution): the analysis of the edge
    # logs counts from there, so the warm requests fill the caches but are not the run's traffic
    until = int(time.time()) + 1
    time.sleep(max(0.0, until - time.time()) + 0.01)
    return {"skus": skus, "keys": len(plan), "pops": len(pops), "planned": result.planned, "sent": result.sent,
            "ok": result.ok, "hits": result.hits, "misses": result.misses, "x_cache": dict(result.x_cache),
            "stopped": result.stopped or None, "seconds": seconds, "until": until}


def _resolve(options: RehearsalOptions) -> RehearsalScenario:
    """The scenario with the options' overrides, checked by the scenario's own table
    (:data:`SCENARIO_SETTINGS`), so a value the file refuses is refused as an option too."""
    scenario = load_rehearsal(options.scenario)
    given = {"strategy": options.strategy, "duration": options.duration, "peak_rps": options.peak_rps}
    changes = SCENARIO_SETTINGS.validate({k: v for k, v in given.items() if v is not None})
    return replace(scenario, **changes) if changes else scenario


def _loadtest_table(scenario: RehearsalScenario, keys_file: Path | None) -> dict[str, Any]:
    table = json.loads(json.dumps(scenario.loadtest))  # deep copy
    table.setdefault("name", f"rehearsal-{scenario.name}")
    if keys_file is not None:
        catalog = table.setdefault("catalog", {})
        for key in ("skus", "images_per_sku", "path_template"):
            catalog.pop(key, None)
        catalog["keys_file"] = str(keys_file.resolve())
        table.setdefault("clients", {}).setdefault("pops", scenario.stack.pop_count)
    return table


def _phases(table: dict[str, Any], where: Path, duration: float, peak: float) -> list[tuple[str, float, float]]:
    """The load shape's phases (name, start, end) in seconds from the first arrival."""
    from edgeproof.loadtest.scenario import scenario_from_dict
    from edgeproof.loadtest.shapes import build_shape

    sc = scenario_from_dict(table, where=str(where), base_dir=where.parent)
    shape = build_shape({**sc.shape, "duration": duration, "peak_rps": peak}, where=str(where))
    return shape.phases()


def _event_times(scenario: RehearsalScenario, phases: list[tuple[str, float, float]]) -> list[tuple[float, Any]]:
    starts = {name: start for name, start, _ in phases}
    out = []
    for ev in scenario.events:
        if isinstance(ev.at, str):
            if ev.at not in starts:
                raise ConfigError(f"{scenario.source}: event at {ev.at!r}: no such phase",
                                  detail=f"phases: {', '.join(starts)}")
            out.append((starts[ev.at], ev))
        else:
            out.append((float(ev.at), ev))
    return sorted(out, key=lambda p: p[0])


def _progress_line(t: float, duration: float, sample: dict[str, Any], phase: str) -> str:
    edge = sample.get("edge") or {}
    origin = sample.get("origin") or {}
    rate = edge.get("hit_rate")
    rate_s = "–" if rate is None else f"{rate * 100:5.1f}%"
    return (f"  t={t:5.1f}s/{duration:.0f}s [{phase:<8}] edge requests {edge.get('requests', 0):>7,}  "
            f"hit rate {rate_s}  origin tasks {sample.get('origin_tasks', 0)}  "
            f"transforms {int(origin.get('transforms_total', 0)):>5,}  503s {int(origin.get('responses_503', 0))}")


def _run_load(stack: _Stack | None, scenario: RehearsalScenario, host: str, out: Path, scenario_file: Path,
              phases: list[tuple[str, float, float]], procs: Processes, quiet: bool) -> int:
    """Run ``edgeproof loadtest run`` and, meanwhile, poll, play events and show progress."""
    load_out = out / "loadtest"
    args = ["loadtest", "run", str(scenario_file), "--host", host, "--duration", f"{scenario.duration:g}",
            "--peak-rps", f"{scenario.peak_rps:g}", "--out", str(load_out)]
    load = procs.start("loadtest", edgeproof_cmd(*args))
    events = _event_times(scenario, phases) if stack is not None else []
    t_start: float | None = None  # when the first request reached the edge
    deadline = time.monotonic() + scenario.duration + 180
    line = Progress(enabled=not quiet)  # redrawn on a terminal, a plain line every 10 s in a log
    while load.alive():
        if time.monotonic() > deadline:
            raise RehearsalError("the load test did not finish in time", detail=load.tail())
        now = time.monotonic()
        t = 0.0 if t_start is None else now - t_start
        if stack is not None:
            stack.clock = t
            sample = stack.poll(t)
            if t_start is None and (sample.get("edge") or {}).get("requests", 0) > 0:
                t_start = now
                sample["t"] = 0.0
            while events and t_start is not None and t >= events[0][0]:
                at, ev = events.pop(0)
                changed = stack.scale_out(ev.count) if ev.action == "scale_out" else stack.scale_in(ev.count)
                stack.events.append({"t": round(now - t_start, 2), "at": at, "action": ev.action, "by": "script",
                                     "urls": changed, "origin_tasks": len(stack.origins)})
                line.note(f"  event at t={now - t_start:.1f}s: {ev.action} {ev.count} → "
                          f"{len(stack.origins)} origin task(s)")
            if t_start is not None:
                stack.autoscale(line)
            phase = "starting" if t_start is None else next((name for name, a, b in phases if a <= t < b), "drain")
            line.show(_progress_line(t, scenario.duration, sample, phase))
        time.sleep(1.0)
    if stack is not None and stack.samples:
        line.close()
    if stack is not None:
        stack.poll(0.0 if t_start is None else time.monotonic() - t_start)
    return load.proc.returncode or 0


def run_rehearsal(options: RehearsalOptions) -> RehearsalResult:
    from edgeproof.rehearsal.analysis import analyse
    from edgeproof.rehearsal.report import print_verdict, write_report

    scenario = _resolve(options)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(options.out or Path("rehearsals") / stamp)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"output folder {out} is not empty", detail="choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    quiet = options.quiet
    embedded = options.target is None
    _say(quiet, f"rehearsal {scenario.name!r}: strategy {scenario.strategy}, {scenario.duration:g}s, "
                f"peak {scenario.peak_rps:g} req/s → {out}")
    keys_file = None
    sources = None
    if embedded:
        sources = ensure_catalog(scenario.stack.catalog_images, options.cache_dir, quiet,
                                 scenario.stack.catalog_distinct)
        keys_file = sources / "catalog.txt"
    table = _loadtest_table(scenario, keys_file)
    scenario_file = out / "loadtest-scenario.toml"
    scenario_file.write_text(dump_toml(table))
    phases = _phases(table, scenario_file, scenario.duration, scenario.peak_rps)

    prescaled = None
    if embedded and sources is not None and scenario.stack.shared_derivatives and scenario.prewarm in ("store", "both"):
        prescaled = run_prescale(scenario, scenario_file, sources, out, quiet)
    edge_warm = None

    stack: _Stack | None = None
    started = time.time()
    with Processes(out / "stack") as procs:
        if embedded:
            assert sources is not None
            stack = _Stack(procs, scenario, out, sources, edge_config(scenario, out))
            _say(quiet, f"starting {scenario.stack.origin_processes} origin task(s) and the edge "
                        f"({scenario.stack.pop_count} POPs)…")
            for _ in range(scenario.stack.origin_processes):
                stack.start_origin()
            stack.start_edge()
            if scenario.prewarm in ("edge", "both"):
                edge_warm = run_edge_prewarm(stack, scenario_file, quiet)
            stack.start_autoscaling()
            host = stack.edge_url
        else:
            host = str(options.target).rstrip("/")
            if scenario.prewarm != "none" or scenario.autoscaling.enabled:
                _say(quiet, "with --target nothing is started: the scenario's prewarm and autoscaling are the "
                            "distribution's own (warm its POPs first with `edgeproof prewarm run --target URL`)")
        _say(quiet, f"load: {host} (phases: " + ", ".join(f"{n} {a:.0f}-{b:.0f}s" for n, a, b in phases) + ")")
        load_began = time.time()
        load_rc = _run_load(stack, scenario, host, out, scenario_file, phases, procs, quiet)
        if stack is not None and stack.edge is not None:
            http_post_json(f"{stack.admin_url}/flush", {})
        _say(quiet, "stopping the stack…")
    finished = time.time()
    if load_rc not in (0, 1):
        tail = (out / "stack" / "loadtest.log").read_text(errors="replace")[-2000:]
        raise RehearsalError(f"the load test failed (exit {load_rc})", detail=tail)

    _say(quiet, "analysing edge logs and recorder rows…")
    summary = analyse(
        out=out, scenario=scenario, phases=phases, embedded=embedded,
        samples=stack.samples if stack else [], events=stack.events if stack else [],
        tasks=stack.task_records() if stack else [], datapoints=stack.datapoints if stack else [],
        prewarmed={"store": prescaled, "edge": edge_warm} if embedded else None,
        real_logs=options.logs, what_if=options.what_if, started=started, finished=finished,
        target_url=options.target, prescaled=prescaled, load_began=load_began,
        edge_config=stack.edge_config if stack else None,
    )
    files = write_report(summary, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not quiet:
        print_verdict(summary, out)
    return RehearsalResult(out, summary, 0 if summary["passed"] else 1, files)
