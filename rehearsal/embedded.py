"""The running embedded stack of a rehearsal: the origin service (tasks launched, started, registered
with the edge, drained) and the edge, polled once a second.

:class:`EmbeddedStack` starts every part through its public CLI in :class:`~edgeproof.rehearsal.stack.Processes`,
plays scale events (scripted, or the autoscaler's decisions: :mod:`edgeproof.rehearsal.autoscaler` is the
policy, this module measures its datapoints and carries them out), and keeps what the analysis reads: the
samples of the edge's ``/stats`` and each task's ``/metrics`` (:func:`parse_prometheus`), the events, and
every task's record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeproof.rehearsal.autoscaler import TargetTracking, group_cpu_seconds
from edgeproof.rehearsal.calibration import edge_serve_args
from edgeproof.rehearsal.config import RehearsalScenario
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

from edgeproof.progress import Progress

if TYPE_CHECKING:
    from edgeproof.edge.config import EdgeConfig

__all__ = ["EmbeddedStack", "parse_prometheus"]


@dataclass(frozen=True, slots=True)
class _Reading:
    """A task's cumulative counters at one moment of the rehearsal clock."""

    t: float
    cpu_seconds: float | None  # None where there is no /proc
    requests: float

    def rates_to(self, later: _Reading) -> tuple[float | None, float | None]:
        """(CPU seconds per second, requests per second) from this reading to ``later``; None without time."""
        dt = later.t - self.t
        if dt <= 0:
            return None, None
        cpu = None if self.cpu_seconds is None or later.cpu_seconds is None else \
            (later.cpu_seconds - self.cpu_seconds) / dt
        return cpu, (later.requests - self.requests) / dt


@dataclass(slots=True)
class _Meter:
    """A serving task's readings at its last poll and at the start of the autoscaler's current period."""

    last: _Reading
    period: _Reading


@dataclass
class EmbeddedStack:
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
    #: per serving task: its CPU and requests at its last poll and at the current period's start
    meters: dict[int, _Meter] = field(default_factory=dict)
    inflight_period: list[float] = field(default_factory=list)
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
        reading = self._reading(child)
        self.meters[n] = _Meter(reading, reading)

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
        self._desired_is_current()
        return added

    def scale_in(self, count: int) -> list[str]:
        removed = []
        for _ in range(min(count, len(self.origins) - 1)):  # keep at least one task
            removed.append(self._stop_task(self.origins[-1]))
        self._desired_is_current()
        return removed

    def _desired_is_current(self) -> None:
        """After a scripted change, the autoscaler's desired count is the tasks there are."""
        if self.policy is not None:
            self.policy.desired = len(self.origins) + len(self.pending)

    def _stop_task(self, child: Child) -> str:
        """Deregister a serving task from the edge, take its last counters, stop it (it drains)."""
        self.origins.remove(child)
        http_post_json(f"{self.admin_url}/backends", {"url": child.url}, method="DELETE")
        self._poll_origin(child)  # its counters up to its removal
        self.procs.stop(child)
        n = child.meta["task"]
        self.tasks[n]["stopped_t"] = round(self.clock, 2)
        self.meters.pop(n, None)
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

    def _reading(self, child: Child) -> _Reading:
        counters = self.task_counters.get(child.url or child.name, {})
        return _Reading(self.clock, group_cpu_seconds(child.proc.pid), counters.get("requests_total", 0.0))

    def _task_load(self, sample: dict[str, Any]) -> None:
        """Each serving task's load since the last poll: CPU (% of its ``origin_workers`` vCPUs), requests
        per second, and transforms in flight now."""
        vcpus = self.scenario.stack.origin_workers
        per_task: dict[str, Any] = {}
        for child in self.origins:
            counters = self.task_counters.get(child.url or child.name, {})
            row: dict[str, Any] = {"inflight": counters.get("queue_depth", 0.0) + counters.get("in_flight", 0.0)}
            meter = self.meters[child.meta["task"]]
            now = self._reading(child)
            cpu, rps = meter.last.rates_to(now)
            if cpu is not None:
                row["cpu_pct"] = round(100.0 * cpu / vcpus, 1)
            if rps is not None:
                row["rps"] = round(rps, 2)
            meter.last = now
            per_task[str(child.meta["task"])] = row
        sample["tasks"] = per_task
        if self.origins:
            self.inflight_period.append(sum(r["inflight"] for r in per_task.values()) / len(self.origins))

    def _datapoint(self) -> float | None:
        """The finished period's metric, averaged over the serving tasks (ECS: the service average)."""
        auto = self.scenario.autoscaling
        if auto.metric == "inflight":
            values, self.inflight_period = self.inflight_period, []
            return sum(values) / len(values) if values else None
        values = []
        for child in self.origins:
            meter = self.meters[child.meta["task"]]
            cpu, rps = meter.period.rates_to(meter.last)
            meter.period = meter.last
            if auto.metric == "requests" and rps is not None:
                values.append(rps)
            elif auto.metric == "cpu" and cpu is not None:
                values.append(100.0 * cpu / self.scenario.stack.origin_workers)
        return sum(values) / len(values) if values else None

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
        self._task_load(sample)
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


