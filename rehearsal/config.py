"""Rehearsal scenario files: the stack to start, the events to play, and the load scenario to run.

A rehearsal scenario is a TOML file (built-ins live in ``rehearsal/scenarios``; ``default`` is what
``make demo`` runs)::

    name = "default"
    strategy = "aggressive"
    origin_gates = ["repeat_transform_rate <= 0.1"]

    [stack]
    pops = 2

    [[events]]                     # played during the load, in time order
    at = "peak"                    # seconds after the load starts, or a phase name (its start)
    action = "scale_out"           # scale_out | scale_in
    count = 1

    [loadtest]                     # a load scenario table (docs/loadtest.md); its catalog is
    ...                            # replaced by the sample catalog's keys file

The top-level keys and the ``[stack]`` keys, their defaults, checks and meanings are declared once,
in :class:`RehearsalScenario` and :class:`StackConfig` (:data:`SCENARIO_SETTINGS`,
:data:`STACK_SETTINGS`, :mod:`edgeproof.settings`); docs/rehearsal.md shows the same defaults (a test
checks). ``origin_gates`` are gates of the one gate language (:mod:`edgeproof.loadtest.gates`) over
the origin metrics :data:`ORIGIN_METRICS`.

Unknown keys are errors (:class:`~edgeproof.errors.ConfigError` naming the file, table and key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproof.loadtest.gates import GateMetrics, parse_gate
from edgeproof.rehearsal.autoscaler import AUTOSCALING_SETTINGS, AutoscalingConfig

from edgeproof.errors import ConfigError
from edgeproof.settings import Settings, at_least, expect, setting
from edgeproof.tomlfile import builtin_names, dump_toml, load_named_toml  # dump_toml: re-exported

__all__ = [
    "AUTOSCALING_SETTINGS",
    "BUILTIN_DIR",
    "ORIGIN_METRICS",
    "SCENARIO_SETTINGS",
    "STACK_SETTINGS",
    "Event",
    "RehearsalScenario",
    "StackConfig",
    "dump_toml",
    "list_rehearsal_scenarios",
    "load_rehearsal",
    "rehearsal_from_dict",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"
ACTIONS = ("scale_out", "scale_in")
PREWARM = ("store", "edge", "both", "none")
#: the origin gates' metrics (computed by the rehearsal from the origin tasks and their stores), as
#: data on the one gate language: ``repeat_transform_rate`` = share of the run's transforms that re-made
#: a variant already made during the run (by another task with a private cache, or concurrently);
#: ``transforms``; ``origin_503``. They take no filters (they are counters, not rows), and a gate
#: without its value (no origin polled) fails.
ORIGIN_METRICS = GateMetrics("origin metric", frozenset({"repeat_transform_rate", "transforms", "origin_503"}),
                             filters=False)


@dataclass(frozen=True, slots=True)
class StackConfig:
    """``[stack]``: the embedded stack the rehearsal starts."""

    pops: int = setting(4, "POP caches in the edge emulator", check=at_least(1))
    origin_processes: int = setting(1, "origin tasks at the start (one `edgeproof origin serve` each)",
                                    check=at_least(1))
    origin_workers: int = setting(1, "worker processes per origin task", check=at_least(1))
    local_cache_mb: int = setting(0, "> 0: each origin task keeps a private in-process cache (local-cache mode)",
                                  check=at_least(0))
    shared_derivatives: bool = setting(True, "false: no shared derivative store in the origin group "
                                             "(ephemeral tasks with private disks)")
    catalog_images: int = setting(60, "sample catalog size (generated once, kept in .edgeproof-cache/)",
                                  check=at_least(2))
    catalog_distinct: int = setting(0, "> 0: only that many images drawn, the other catalog keys share their pixels "
                                       "(cheap thousands of SKUs; every key still its own source and transforms)",
                                    check=at_least(0))
    prescale_launch: bool = setting(False, "before the load: prescale the promotion's new SKUs (the launch)")
    prescale_hottest: int = setting(0, "... and the N most popular SKUs (needs shared_derivatives)",
                                    check=at_least(0))
    pop_ids: tuple[str, ...] = setting((), "explicit POP ids (e.g. [\"IAD89-C1\", \"IAD12-C2\"]); default: "
                                           "the first `pops` of the emulator's list")


    @property
    def pop_count(self) -> int:
        """The POPs the edge runs: ``pop_ids`` when given, else ``pops``."""
        return len(self.pop_ids) or self.pops


@dataclass(frozen=True, slots=True)
class Event:
    at: float | str  # seconds after the load starts, or a phase name
    action: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class RehearsalScenario:
    """A rehearsal scenario; the fields declared with :func:`setting` are its top-level keys."""

    name: str = setting("custom", "the scenario's name (reports, the load scenario's name)")
    description: str = setting("", "one line on what it rehearses")
    strategy: str = setting("aggressive", "the edge's cache-key strategy (edgeproof strategies list)")
    duration: float = setting(70.0, "seconds of load (the spike shape scales to it)", check=at_least(5))
    peak_rps: float = setting(60.0, "requests/s at the peak", check=at_least(0.1))
    origin_gates: tuple[str, ...] = setting((), "gates on the origin tier, METRIC OP NUMBER (embedded stack only)")
    prewarm: str = setting("store", "before the load, warm the launch and hottest SKUs (stack.prescale_*) into: "
                                    "store (prescale the derivative store), edge (every POP through the edge, "
                                    "every Accept class and DPR the clients use), both, or none",
                           choices=PREWARM)
    stack: StackConfig = field(default_factory=StackConfig)
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)
    events: tuple[Event, ...] = ()
    loadtest: dict[str, Any] = field(default_factory=dict)
    source: str = ""


#: the top-level keys and the ``[stack]`` keys, from their dataclasses
SCENARIO_SETTINGS: Settings[RehearsalScenario] = Settings.of(RehearsalScenario, "")
STACK_SETTINGS: Settings[StackConfig] = Settings.of(StackConfig, "stack")


def _events(where: str, raw_events: Any) -> tuple[Event, ...]:
    if not isinstance(raw_events, list):
        raise ConfigError(f"{where}: events must be an array of tables ([[events]])")
    events = []
    for i, ev in enumerate(raw_events):
        if not isinstance(ev, dict):
            raise ConfigError(f"{where}: events[{i}] must be a table")
        extra = sorted(set(ev) - {"at", "action", "count"})
        if extra:
            raise ConfigError(f"{where}: events[{i}].{extra[0]}: unknown key", detail="known keys: action, at, count")
        at = ev.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float | str) or (not isinstance(at, str) and at < 0):
            raise ConfigError(f"{where}: events[{i}].at: seconds >= 0 or a phase name (\"peak\")")
        action = ev.get("action")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: events[{i}].action: one of {', '.join(ACTIONS)}, got {action!r}")
        count = expect(ev.get("count", 1), int, table=f"events[{i}]", key="count", where=where)
        if count < 1:
            raise ConfigError(f"{where}: events[{i}].count: must be >= 1, got {count}")
        events.append(Event(at if isinstance(at, str) else float(at), action, count))
    return tuple(events)


def rehearsal_from_dict(data: dict[str, Any], where: str = "<rehearsal>") -> RehearsalScenario:
    top = SCENARIO_SETTINGS.read(data, where=where, ignore=("stack", "events", "loadtest", "autoscaling"))
    for i, rule in enumerate(top["origin_gates"]):
        parse_gate(rule, ORIGIN_METRICS, where=f"{where}: origin_gates[{i}]")
    stack = STACK_SETTINGS.build(data.get("stack"), where=where)
    if (stack.prescale_launch or stack.prescale_hottest) and top["prewarm"] in ("store", "both") \
            and not stack.shared_derivatives:
        raise ConfigError(f"{where}: [stack] prescale_*: prescaling writes to the shared derivative store",
                          detail="set stack.shared_derivatives = true, or drop the prescale keys")
    if stack.pop_ids and len(set(stack.pop_ids)) != len(stack.pop_ids):
        raise ConfigError(f"{where}: [stack] pop_ids: each POP id once")
    auto = AUTOSCALING_SETTINGS.build(data.get("autoscaling"), where=where)
    if auto.enabled and not auto.min_tasks <= stack.origin_processes <= auto.max_tasks:
        raise ConfigError(f"{where}: [autoscaling] min_tasks <= stack.origin_processes <= max_tasks, got "
                          f"{auto.min_tasks}, {stack.origin_processes}, {auto.max_tasks}",
                          detail="the service starts at origin_processes tasks, within its bounds")
    loadtest = data.get("loadtest", {})
    if not isinstance(loadtest, dict):
        raise ConfigError(f"{where}: [loadtest] must be a table")
    return RehearsalScenario(**top, stack=stack, autoscaling=auto, events=_events(where, data.get("events", [])),
                             loadtest=dict(loadtest), source=where)


def list_rehearsal_scenarios() -> list[str]:
    return builtin_names(BUILTIN_DIR)


def load_rehearsal(name_or_path: str | Path | None) -> RehearsalScenario:
    """A built-in rehearsal scenario by name (``default``) or a TOML file path."""
    data, path = load_named_toml(name_or_path or "default", BUILTIN_DIR, "rehearsal scenario")
    return rehearsal_from_dict(data, where=str(path))
