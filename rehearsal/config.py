"""Rehearsal scenario files: the stack to start, the events to play, and the load scenario to run.

A rehearsal scenario is a TOML file (built-ins live in ``edgeproof/scenarios``; ``default`` is what
``make demo`` runs)::

    name = "default"
    description = "..."
    strategy = "aggressive"        # the edge's cache-key strategy (edgeproof strategies list)
    duration = 70                  # seconds of load (the spike shape scales to it)
    peak_rps = 60                  # requests/s at the peak
    origin_gates = ["repeat_transform_rate <= 0.1"]  # gates on the origin tier (embedded stack only)

    [stack]
    pops = 4                       # POP caches in the edge emulator
    origin_processes = 1           # origin tasks at the start (one `edgeproof origin serve` each)
    origin_workers = 1             # worker processes per origin task
    local_cache_mb = 0             # > 0: each origin task keeps a private in-process cache (local-cache mode)
    shared_derivatives = true      # false: no shared derivative store in the origin group (ephemeral tasks)
    catalog_images = 60            # sample catalog size (generated once, kept in .edgeproof-cache/)
    prescale_launch = false        # before the load: prescale the promotion's new SKUs (the launch)
    prescale_hottest = 0           # ... and the N most popular SKUs (needs shared_derivatives)

    [[events]]                     # played during the load, in time order
    at = "peak"                    # seconds after the load starts, or a phase name (its start)
    action = "scale_out"           # scale_out | scale_in
    count = 1

    [loadtest]                     # a load scenario table (see docs/loadtest.md); its catalog is
    ...                            # replaced by the sample catalog's keys file

Unknown keys are errors (:class:`~edgeproof.errors.ConfigError` naming the file and key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproof.errors import ConfigError
from edgeproof.tomlfile import builtin_names, dump_toml, load_named_toml  # dump_toml: re-exported

__all__ = [
    "BUILTIN_DIR",
    "Event",
    "RehearsalScenario",
    "StackConfig",
    "dump_toml",
    "list_rehearsal_scenarios",
    "load_rehearsal",
    "parse_origin_gate",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"
ACTIONS = ("scale_out", "scale_in")
#: metrics of ``origin_gates`` (computed by the rehearsal from the origin tasks and their stores):
#: ``repeat_transform_rate`` = share of the run's transforms that re-made a variant already made during
#: the run (by another task with a private cache, or concurrently); ``transforms``; ``origin_503``.
ORIGIN_METRICS = ("repeat_transform_rate", "transforms", "origin_503")
_ORIGIN_GATE = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|==|<|>)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class StackConfig:
    pops: int = 4
    origin_processes: int = 1
    origin_workers: int = 1
    local_cache_mb: int = 0
    shared_derivatives: bool = True
    catalog_images: int = 60
    prescale_launch: bool = False
    prescale_hottest: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    at: float | str  # seconds after the load starts, or a phase name
    action: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class RehearsalScenario:
    name: str = "default"
    description: str = ""
    strategy: str = "aggressive"
    duration: float = 70.0
    peak_rps: float = 60.0
    stack: StackConfig = field(default_factory=StackConfig)
    events: tuple[Event, ...] = ()
    loadtest: dict[str, Any] = field(default_factory=dict)
    origin_gates: tuple[str, ...] = ()
    source: str = ""


def _get(where: str, table: dict[str, Any], key: str, default: Any, kind: type | tuple[type, ...],
         lo: float | None = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: {key}: must be >= {lo}, got {value!r}")
    return value


def _unknown(where: str, table: dict[str, Any], known: set[str], prefix: str = "") -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(f"{where}: {prefix}{extra[0]}: unknown key", detail=f"known keys: {', '.join(sorted(known))}")


def rehearsal_from_dict(data: dict[str, Any], where: str = "<rehearsal>") -> RehearsalScenario:
    _unknown(where, data, {"name", "description", "strategy", "duration", "peak_rps", "stack", "events", "loadtest",
                           "origin_gates"})
    st = data.get("stack", {})
    if not isinstance(st, dict):
        raise ConfigError(f"{where}: [stack] must be a table")
    _unknown(where, st, set(StackConfig.__dataclass_fields__), "stack.")
    stack = StackConfig(
        pops=_get(where, st, "pops", 4, int, 1),
        origin_processes=_get(where, st, "origin_processes", 1, int, 1),
        origin_workers=_get(where, st, "origin_workers", 1, int, 1),
        local_cache_mb=_get(where, st, "local_cache_mb", 0, int, 0),
        shared_derivatives=_get(where, st, "shared_derivatives", True, bool),
        catalog_images=_get(where, st, "catalog_images", 60, int, 2),
        prescale_launch=_get(where, st, "prescale_launch", False, bool),
        prescale_hottest=_get(where, st, "prescale_hottest", 0, int, 0),
    )
    if (stack.prescale_launch or stack.prescale_hottest) and not stack.shared_derivatives:
        raise ConfigError(f"{where}: stack.prescale_*: prescaling writes to the shared derivative store",
                          detail="set stack.shared_derivatives = true, or drop the prescale keys")
    origin_gates = _get(where, data, "origin_gates", [], list)
    for i, rule in enumerate(origin_gates):
        parse_origin_gate(rule, f"{where}: origin_gates[{i}]")
    events = []
    raw_events = data.get("events", [])
    if not isinstance(raw_events, list):
        raise ConfigError(f"{where}: events must be an array of tables ([[events]])")
    for i, ev in enumerate(raw_events):
        if not isinstance(ev, dict):
            raise ConfigError(f"{where}: events[{i}] must be a table")
        _unknown(where, ev, {"at", "action", "count"}, f"events[{i}].")
        at = ev.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float | str) or (not isinstance(at, str) and at < 0):
            raise ConfigError(f"{where}: events[{i}].at: seconds >= 0 or a phase name (\"peak\")")
        action = ev.get("action")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: events[{i}].action: one of {', '.join(ACTIONS)}, got {action!r}")
        events.append(Event(at if isinstance(at, str) else float(at), action,
                            _get(where, ev, "count", 1, int, 1)))
    loadtest = data.get("loadtest", {})
    if not isinstance(loadtest, dict):
        raise ConfigError(f"{where}: [loadtest] must be a table")
    return RehearsalScenario(
        name=_get(where, data, "name", "custom", str),
        description=_get(where, data, "description", "", str),
        strategy=_get(where, data, "strategy", "aggressive", str),
        duration=_get(where, data, "duration", 70.0, float, 5.0),
        peak_rps=_get(where, data, "peak_rps", 60.0, float, 0.1),
        stack=stack,
        events=tuple(events),
        loadtest=dict(loadtest),
        origin_gates=tuple(origin_gates),
        source=where,
    )


def parse_origin_gate(rule: Any, where: str = "origin_gates") -> tuple[str, str, float]:
    """``"repeat_transform_rate <= 0.1"`` → ``(metric, op, threshold)``; ConfigError otherwise."""
    m = _ORIGIN_GATE.match(rule) if isinstance(rule, str) else None
    if m is None or m.group(1) not in ORIGIN_METRICS:
        raise ConfigError(f"{where}: {rule!r}: expected METRIC OP NUMBER",
                          detail=f"origin metrics: {', '.join(ORIGIN_METRICS)}")
    return m.group(1), m.group(2), float(m.group(3))


def list_rehearsal_scenarios() -> list[str]:
    return builtin_names(BUILTIN_DIR)


def load_rehearsal(name_or_path: str | Path | None) -> RehearsalScenario:
    """A built-in rehearsal scenario by name (``default``) or a TOML file path."""
    data, path = load_named_toml(name_or_path or "default", BUILTIN_DIR, "rehearsal scenario")
    return rehearsal_from_dict(data, where=str(path))
