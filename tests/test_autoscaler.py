"""Load-driven autoscaling: the target-tracking policy on its own, and a real rehearsal driven by a load step.

The policy tests feed datapoints by hand (the policy is plain values in, decisions out). The rehearsal
test starts the real stack on 127.0.0.1 (origin tasks, edge emulator, Locust) with a step from almost no
load to a load of misses, and checks what the autoscaler did against its own configuration: no decision
before ``scale_out_periods`` datapoints over the target, no second scale-out inside the cooldown, each new
task taking traffic only after its start-up time, and every added task starting cold.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from edgeproof.rehearsal.autoscaler import AutoscalingConfig, TargetTracking, group_cpu_seconds
from edgeproof.rehearsal.config import rehearsal_from_dict

from edgeproof.errors import ConfigError

CFG = AutoscalingConfig(enabled=True, target=50.0, period_s=10.0, scale_out_periods=3, scale_in_periods=5,
                        scale_out_cooldown_s=30.0, scale_in_cooldown_s=40.0, min_tasks=1, max_tasks=6)


def feed(policy: TargetTracking, values: list[float], capacity: int | None = None, t0: float = 0.0) -> list:
    out = []
    for i, v in enumerate(values):
        t = t0 + (i + 1) * policy.config.period_s
        d = policy.observe(t, v, capacity if capacity is not None else policy.desired)
        if d is not None:
            out.append(d)
    return out


def test_scale_out_needs_consecutive_datapoints_over_target() -> None:
    p = TargetTracking(CFG, 1)
    # two over, one under, two over: never three in a row
    assert feed(p, [80, 80, 40, 80, 80]) == []
    [d] = feed(p, [80], t0=50)  # the third in a row
    assert d.direction == "out" and d.t == 60 and d.desired == math.ceil(1 * 80 / 50) == 2
    assert d.breach_t == 30  # the run began with the period ending at 40


def test_proportional_capacity_bounded_by_max() -> None:
    p = TargetTracking(CFG, 2)
    [d] = feed(p, [400, 400, 400])
    assert d.desired == CFG.max_tasks  # ceil(2 × 400 / 50) = 16, capped
    assert feed(p, [400] * 20, t0=30) == []  # at the maximum nothing more happens


def test_scale_out_cooldown_holds_the_next_scale_out() -> None:
    p = TargetTracking(CFG, 1)
    [first] = feed(p, [80, 80, 80])
    # still over target with the new capacity counted: the next scale-out waits for the cooldown (30 s)
    later = feed(p, [120] * 6, capacity=2, t0=first.t)
    assert later, "the metric stayed over target after the cooldown: a second scale-out is due"
    assert later[0].t - first.t >= CFG.scale_out_cooldown_s
    assert later[0].desired == math.ceil(2 * 120 / 50)


def test_scale_in_is_slow_one_step_and_respects_cooldowns() -> None:
    p = TargetTracking(CFG, 4)
    assert feed(p, [10] * 4) == []  # four low datapoints: the low alarm needs five
    [d] = feed(p, [10], t0=40)
    assert d.direction == "in" and d.desired == 3  # one step at a time
    more = feed(p, [10] * 10, t0=50)
    assert all(b.t - a.t >= CFG.scale_in_cooldown_s for a, b in zip([d, *more], more, strict=False))
    assert all(x.desired >= CFG.min_tasks for x in more)
    # between the target's 90 % and the target: neither alarm
    q = TargetTracking(CFG, 3)
    assert feed(q, [47] * 30) == []


def test_scale_out_right_after_scale_in_is_not_held() -> None:
    p = TargetTracking(CFG, 3)
    [d_in] = feed(p, [10] * 5)
    [d_out] = feed(p, [90] * 3, t0=d_in.t)
    assert d_out.direction == "out" and d_out.t - d_in.t == 3 * CFG.period_s


def test_config_is_checked_against_the_stack() -> None:
    with pytest.raises(ConfigError, match="min_tasks <= stack.origin_processes <= max_tasks"):
        rehearsal_from_dict({"stack": {"origin_processes": 1}, "autoscaling": {"enabled": True, "min_tasks": 3}})
    with pytest.raises(ConfigError, match="metric"):
        rehearsal_from_dict({"autoscaling": {"metric": "memory"}})
    with pytest.raises(ConfigError, match="unknown key"):
        rehearsal_from_dict({"autoscaling": {"cooldown": 3}})


def test_group_cpu_seconds_counts_a_busy_process_group() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                             "while time.process_time() - t < 0.6: pass\nimport sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, start_new_session=True)
    try:
        seen = 0.0
        for _ in range(100):
            seen = group_cpu_seconds(busy.pid) or 0.0
            if seen >= 0.5:
                break
            subprocess.run(["sleep", "0.1"])
        assert seen >= 0.5
        assert group_cpu_seconds(2**22 + 12345) == 0.0  # no such group
    finally:
        busy.communicate(b"")


STEP = """
name = "autoscale-step"
strategy = "allowlist"
duration = 30
peak_rps = 50

[stack]
pops = 2
origin_processes = 1
local_cache_mb = 64
shared_derivatives = false
catalog_images = 16

[autoscaling]
enabled = true
metric = "cpu"
target = 10
period_s = 2
scale_out_periods = 2
scale_in_periods = 60
scale_out_cooldown_s = 6
startup_s = 3
min_tasks = 1
max_tasks = 3

[loadtest]
seed = 1
timeout_s = 10.0

[loadtest.shape]
kind = "step"
steps = [0.02, 1.0]

[loadtest.clients]
population = 2000

[loadtest.gates]
rules = ["error_rate <= 0.5"]
scope = "all"

[loadtest.clients.browsers.safari]
share = 1.0
accept = "image/webp,image/png,image/*;q=0.8"
user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 15_8 like Mac OS X) Version/15.6 Mobile/15E148 Safari/604.1"
"""


@pytest.mark.slow
def test_load_step_scales_out_after_period_and_cooldown_with_cold_tasks(tmp_path: Path) -> None:
    scenario = tmp_path / "step.toml"
    scenario.write_text(STEP)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgeproof.cli", "rehearse", "--scenario", str(scenario),
                           "--out", str(out), "--no-what-if", "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    auto = s["autoscaling"]
    cfg = auto["config"]
    outs = [e for e in s["events"] if e.get("by") == "autoscaler" and e["action"] == "scale_out"]
    assert outs, "a step to 50 req/s of misses against a 10 % CPU target must scale out"
    step2 = next(p["start"] for p in s["phases"] if p["name"] == "step2")
    # the alarm needs scale_out_periods datapoints over the target, each a whole period
    for e in outs:
        assert e["t"] - e["breach_t"] >= cfg["scale_out_periods"] * cfg["period_s"] - 1e-6
    assert outs[0]["t"] >= cfg["scale_out_periods"] * cfg["period_s"]
    for a, b in zip(outs, outs[1:], strict=False):
        assert b["t"] - a["t"] >= cfg["scale_out_cooldown_s"] - 1e-6
    assert all(e["wanted"] <= cfg["max_tasks"] for e in outs)
    # each added task took traffic only after its start-up time, and started cold
    added = [t for t in s["tasks"] if t["by"] == "autoscaler"]
    assert added and {t["url"] for t in added} <= {u for e in outs for u in e["urls"]}
    serving = [t for t in added if t["serving_t"] is not None]
    assert serving
    for t in serving:
        assert t["serving_t"] - t["launched_t"] >= cfg["startup_s"] - 1e-6
        assert t["local_cache_hits_at_start"] == 0 and t["transforms_at_start"] == 0
    assert auto["added_tasks_cold"] is True
    assert sum(t["transforms"] for t in serving) > 0  # they transformed what their empty caches lacked
    # the timeline shows tasks wanted above tasks serving while they started
    ot = s["origin_timeline"]
    assert any(r["tasks_wanted"] > r["origin_tasks"] for r in ot)
    assert max(r["origin_tasks"] for r in ot) == 1 + len(serving)
    assert any(r["cpu_pct_mean"] is not None for r in ot if r["t"] >= step2)
    # and the report says where scaling lagged
    assert any("Scaling lagged the load" in line for line in s["why"])
    assert (out / "autoscaling.png").is_file()
    assert "Origin scaling" in (out / "report.html").read_text()
