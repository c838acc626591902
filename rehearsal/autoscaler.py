"""Load-driven autoscaling of the origin tasks, modelled on ECS service auto scaling (target tracking).

ECS scales a service through Application Auto Scaling. A *target tracking* policy (Application Auto
Scaling User Guide, "How target tracking scaling for Application Auto Scaling works",
target-tracking-scaling-policy-overview.html) names a metric (``ECSServiceAverageCPUUtilization``: the
tasks' CPU averaged over the service, or ``ALBRequestCountPerTarget``: requests per task) and a target
value, and creates two CloudWatch alarms on it:

- a *high* alarm: the metric above the target for 3 consecutive 1-minute periods → scale out to the
  capacity that brings the metric back to the target, ``ceil(capacity × metric / target)``;
- a *low* alarm: the metric below 90 % of the target for 15 consecutive periods → scale in (one step
  toward the same formula, never below the minimum);

bounded by the scalable target's minimum and maximum capacity. After a scale-out, the *scale-out
cooldown* holds further scale-outs; after a scale-in, the *scale-in cooldown* holds further scale-ins,
and a scale-out ends a scale-in cooldown at once ("if another alarm triggers a scale out policy during
the cooldown period after a scale-in, application auto scaling scales out your scalable target
immediately", ScaleInCooldown in the API reference). Scale-in also waits out a running scale-out
cooldown. One simplification, on the side of showing more lag: Application Auto Scaling may scale out
again during a scale-out cooldown when the computed capacity exceeds what was already added; this
model waits for the cooldown to end.

A new task takes traffic only after its *start-up time* (ECS: image pull, container start, health
check grace; here at least the real start of ``edgeproof origin serve`` and its warm-up). The time
constants are the scenario's: a short rehearsal compresses them (the report says by how much against
ECS's 1-minute metric period).

:class:`TargetTracking` is the policy alone (plain values in, decisions out; the rehearsal feeds it one
datapoint per period). The rehearsal (:mod:`edgeproof.rehearsal.embedded`) measures the datapoints — each
serving task's CPU from ``/proc`` (utime + stime of its process group, over the period, as a share of
``origin_workers`` vCPUs), its requests per second (the origin's ``requests_total``) or its in-flight
transforms (the origin's ``queue_depth + in_flight`` gauges)
— launches and registers the tasks, and records the timeline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproof.settings import Settings, above, at_least, between, setting

__all__ = ["AUTOSCALING_SETTINGS", "ECS_PERIOD_S", "AutoscalingConfig", "Decision", "TargetTracking",
           "group_cpu_seconds", "scaling_summary", "why_lines"]

#: CloudWatch's period for the ECS service metrics that target tracking alarms on (1 minute)
ECS_PERIOD_S = 60.0
METRICS = ("cpu", "requests", "inflight")


@dataclass(frozen=True, slots=True)
class AutoscalingConfig:
    """``[autoscaling]``: target tracking of the origin tasks (off unless ``enabled``)."""

    enabled: bool = setting(False, "scale the origin tasks on load (target tracking, as ECS does)")
    metric: str = setting("cpu", "cpu: the serving tasks' average CPU, % of origin_workers vCPUs; requests: "
                                 "requests per second per task (ECS's ALBRequestCountPerTarget, per second); "
                                 "inflight: transforms running or queued per task", choices=METRICS)
    target: float = setting(60.0, "the metric's target value (cpu: percent; requests: per second per task; "
                                  "inflight: transforms per task)", check=above(0))
    period_s: float = setting(5.0, "seconds per datapoint (ECS: 60; a rehearsal compresses it)", check=above(0))
    scale_out_periods: int = setting(3, "consecutive datapoints above the target before a scale-out (ECS: 3)",
                                     check=at_least(1))
    scale_in_periods: int = setting(15, "consecutive datapoints below scale_in_ratio × target before a "
                                        "scale-in (ECS: 15)", check=at_least(1))
    scale_in_ratio: float = setting(0.9, "the low alarm's threshold as a share of the target (ECS: 0.9)",
                                    check=between(0.01, 1.0))
    scale_out_cooldown_s: float = setting(15.0, "seconds after a scale-out before the next one (ECS default 300)",
                                          check=at_least(0))
    scale_in_cooldown_s: float = setting(30.0, "seconds after a scale-in before the next one (ECS default 300)",
                                         check=at_least(0))
    startup_s: float = setting(5.0, "seconds from a task's launch until it takes traffic (at least its real "
                                    "start and warm-up)", check=at_least(0))
    min_tasks: int = setting(1, "minimum tasks (the case study keeps 3 warm)", check=at_least(1))
    max_tasks: int = setting(4, "maximum tasks", check=at_least(1))

    @property
    def compression(self) -> float:
        """How much faster than ECS's 1-minute metric period this scenario's period runs."""
        return ECS_PERIOD_S / self.period_s


AUTOSCALING_SETTINGS: Settings[AutoscalingConfig] = Settings.of(AutoscalingConfig, "autoscaling")


@dataclass(frozen=True, slots=True)
class Decision:
    """A change of the desired task count, and why."""

    t: float
    direction: str  # "out" | "in"
    desired_before: int
    desired: int
    metric: float
    #: when the run of datapoints that raised the alarm began (the first one's period start)
    breach_t: float
    reason: str


@dataclass
class TargetTracking:
    """The policy: feed one datapoint per period (:meth:`observe`); it returns a :class:`Decision` or None."""

    config: AutoscalingConfig
    desired: int
    datapoints: list[tuple[float, float]] = field(default_factory=list)  # (period end t, value)
    last_out: float = -math.inf
    last_in: float = -math.inf

    def __post_init__(self) -> None:
        self.desired = self._clamp(self.desired)

    def _clamp(self, n: int) -> int:
        return max(self.config.min_tasks, min(self.config.max_tasks, n))

    def _run(self, test: Callable[[float], bool]) -> tuple[int, float]:
        """Length of the trailing run of datapoints passing ``test`` and the start of that run."""
        n, start = 0, math.inf
        for t, v in reversed(self.datapoints):
            if not test(v):
                break
            n += 1
            start = t - self.config.period_s
        return n, start

    def observe(self, t: float, value: float, capacity: int) -> Decision | None:
        """The datapoint of the period ending at ``t``; ``capacity`` = the tasks serving in it."""
        c = self.config
        self.datapoints.append((t, value))
        del self.datapoints[:-max(c.scale_out_periods, c.scale_in_periods)]
        capacity = max(capacity, 1)
        high, high_from = self._run(lambda v: v > c.target)
        if high >= c.scale_out_periods and t - self.last_out >= c.scale_out_cooldown_s:
            want = self._clamp(math.ceil(capacity * value / c.target))
            if want > self.desired:
                high_from = max(high_from, self.last_out)  # the breach since the last scale-out
                before, self.desired, self.last_out = self.desired, want, t
                self.last_in = -math.inf  # a scale-out ends a scale-in cooldown
                return Decision(t, "out", before, want, value, high_from,
                                f"{c.metric} {value:.1f} > target {c.target:g} for {high} periods")
        low, low_from = self._run(lambda v: v < c.target * c.scale_in_ratio)
        if (low >= c.scale_in_periods and t - self.last_in >= c.scale_in_cooldown_s
                and t - self.last_out >= c.scale_out_cooldown_s):
            want = self._clamp(max(math.ceil(capacity * value / c.target), self.desired - 1))
            if want < self.desired:
                before, self.desired, self.last_in = self.desired, want, t
                return Decision(t, "in", before, want, value, low_from,
                                f"{c.metric} {value:.1f} < {c.scale_in_ratio:g} × target for {low} periods")
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int, proc: Path = Path("/proc")) -> float | None:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid`` (Linux
    ``/proc/PID/stat``; None where there is no ``/proc``). A task is one process group (the rehearsal
    starts each in its own session), its worker processes included."""
    if not proc.is_dir():
        return None
    total = 0.0
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may contain spaces: split after the last ')'
        fields = raw[raw.rfind(b")") + 2:].split()
        if len(fields) > 13 and int(fields[2]) == pgid:  # fields[2] = pgrp (field 5)
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)
    return total


# ---------------------------------------------------------------------------------------------- the story

def scaling_summary(config: AutoscalingConfig, events: list[dict[str, Any]], tasks: list[dict[str, Any]],
                    origin_timeline: list[dict[str, Any]], timeline: list[dict[str, Any]],
                    datapoints: Sequence[tuple[float, float, int]] = ()) -> dict[str, Any] | None:
    """What the autoscaler did and where it lagged the load: each scale-out's breach (the first datapoint of
    the run that raised the alarm), decision and first serving task, with the origin 503s and the worst
    client p99 (corrected) between breach and serving; and the seconds with more tasks wanted than serving."""
    if not config.enabled:
        return None
    serving_at = {t["url"]: t.get("serving_t") for t in tasks}
    moments = []
    for ev in events:
        if ev.get("by") != "autoscaler" or ev["action"] != "scale_out":
            continue
        served = [serving_at.get(u) for u in ev.get("urls") or []]
        served_t = max((s for s in served if s is not None), default=None)
        end = served_t if served_t is not None else (origin_timeline[-1]["t"] if origin_timeline else ev["t"])
        start = ev.get("breach_t", ev["t"])
        shed = sum(r.get("origin_503_per_s", 0.0) * r.get("dt", 0.0) for r in origin_timeline if start <= r["t"] <= end)
        p99 = [r.get("client_p99_corrected_ms") for r in timeline if start <= r["t"] <= end]
        p99 = [v for v in p99 if v is not None]
        moments.append({"breach_t": start, "decided_t": ev["t"], "serving_t": served_t, "wanted": ev.get("wanted"),
                        "metric": ev.get("metric"), "lag_s": None if served_t is None else round(served_t - start, 2),
                        "origin_503": round(shed), "client_p99_ms_max": max(p99) if p99 else None})
    short_s = sum(r.get("dt", 0.0) for r in origin_timeline
                  if (r.get("tasks_wanted") or 0) > (r.get("origin_tasks") or 0))
    added = [t for t in tasks if t.get("by") == "autoscaler"]
    return {"config": {k: getattr(config, k) for k in AUTOSCALING_SETTINGS.names},
            "compression": round(config.compression, 2), "scale_outs": moments,
            "datapoints": [{"t": t, "value": v, "serving": n} for t, v, n in datapoints],
            "max_datapoint": max((v for _t, v, _n in datapoints), default=None),
            "scale_ins": [ev for ev in events if ev.get("by") == "autoscaler" and ev["action"] == "scale_in"],
            "seconds_short_of_wanted": round(short_s, 1),
            "tasks_added": len(added),
            "added_tasks_cold": all(t.get("local_cache_hits_at_start", 0) == 0 for t in added),
            "added_tasks_transforms": sum(t.get("transforms", 0) for t in added)}


def why_lines(auto: dict[str, Any] | None, shared_derivatives: bool) -> list[str]:
    """The report's "why" lines for the autoscaler: where scaling lagged the load, and what cold tasks cost."""
    if not auto:
        return []
    c = auto["config"]
    lines = [f"Autoscaling tracked {c['metric']} at {c['target']:g} with {c['period_s']:g} s datapoints "
             f"(ECS: 60 s, so time runs ×{auto['compression']:g} faster here), {c['scale_out_periods']} above target "
             f"to scale out, {c['scale_out_cooldown_s']:g} s cooldown, tasks taking traffic {c['startup_s']:g} s after "
             f"launch, {c['min_tasks']}–{c['max_tasks']} tasks."]
    for m in auto["scale_outs"]:
        serving = "never served before the end" if m["serving_t"] is None else f"served from t={m['serving_t']:.0f}s"
        text = (f"Scaling lagged the load from t={m['breach_t']:.0f}s: {c['metric']} above target from then, the "
                f"autoscaler asked for {m['wanted']} tasks at t={m['decided_t']:.0f}s, the new task(s) {serving}")
        if m["lag_s"] is not None:
            text += f" ({m['lag_s']:.0f} s after the load rose)"
        extra = []
        if m["origin_503"]:
            extra.append(f"{m['origin_503']} origin 503s")
        if m["client_p99_ms_max"] is not None:
            extra.append(f"client p99 up to {m['client_p99_ms_max']:.0f} ms")
        lines.append(text + (": " + ", ".join(extra) if extra else "") + " in that window.")
    if auto["tasks_added"] and not shared_derivatives:
        lines.append(f"The {auto['tasks_added']} task(s) the autoscaler added started with empty private caches "
                     f"({'no' if auto['added_tasks_cold'] else 'some'} private-cache hits when they began serving) and "
                     f"made {auto['added_tasks_transforms']} transforms, each of a variant their own cache did not "
                     f"hold.")
    if not auto["scale_outs"]:
        peak = auto.get("max_datapoint")
        seen = "" if peak is None else f" (its highest datapoint: {peak:g})"
        lines.append(f"The autoscaler did not scale out: {c['metric']} never stayed above the target {c['target']:g} "
                     f"for {c['scale_out_periods']} datapoints{seen}.")
    return lines
