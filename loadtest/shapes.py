"""Arrival-rate shapes: requests per second over time, as small declarative classes.

A shape is a list of :class:`Stage` (name, length, start rate, end rate; the rate moves linearly
inside a stage). The built-in kinds scale to a run's ``duration`` and ``peak_rps``::

    [shape]                    # spike: baseline → ramp → peak hold → decay
    kind = "spike"
    duration = 120             # seconds (overridden by --duration)
    peak_rps = 50              # overridden by --peak-rps
    baseline = 0.1             # baseline and decay-end rate as a fraction of the peak
    phases = { baseline = 0.25, ramp = 0.10, peak = 0.45, decay = 0.20 }   # fractions of duration

    kind = "waves"   low = 0.2  waves = 3          # rate swings between low×peak and peak
    kind = "step"    steps = [0.25, 0.5, 0.75, 1.0] # equal-length steps, fractions of the peak
    kind = "soak"    ramp = 0.05                    # ramp up then hold the peak
    kind = "stages"  stages = [{name = "a", seconds = 10, rps = 20, to_rps = 40}, ...]  # absolute

The *spike phases* (what the gates score by default) are ``ramp``, ``peak`` and ``decay`` for a spike and
every stage for the other kinds. Arrivals are the open-model schedule: :meth:`Shape.arrivals` yields
intended start offsets (seconds) whose density follows the rate exactly ("uniform": one arrival per
unit of the rate's integral) or as a Poisson process ("poisson").
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeproof.errors import ConfigError

__all__ = ["SPIKE_PHASES", "Shape", "Stage", "build_shape", "scale_shape"]

SPIKE_PHASES = ("ramp", "peak", "decay")


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    seconds: float
    rps: float
    to_rps: float


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str
    stages: tuple[Stage, ...]
    scored: tuple[str, ...]  # the phase names gates score with scope "spike"

    @property
    def duration(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def peak_rps(self) -> float:
        return max(max(s.rps, s.to_rps) for s in self.stages)

    def phases(self) -> list[tuple[str, float, float]]:
        """``(name, start, end)`` offsets of each stage."""
        out, t = [], 0.0
        for s in self.stages:
            out.append((s.name, t, t + s.seconds))
            t += s.seconds
        return out

    def _stage_at(self, t: float) -> tuple[Stage, float]:
        start = 0.0
        for s in self.stages:
            if t < start + s.seconds:
                return s, t - start
            start += s.seconds
        return self.stages[-1], self.stages[-1].seconds

    def rate(self, t: float) -> float:
        """Target requests/s at offset ``t`` (0 outside the shape)."""
        if t < 0 or t >= self.duration:
            return 0.0
        s, dt = self._stage_at(t)
        return s.rps + (s.to_rps - s.rps) * (dt / s.seconds if s.seconds else 0.0)

    def phase(self, t: float) -> str:
        return self._stage_at(max(t, 0.0))[0].name

    def expected(self, t0: float, t1: float) -> float:
        """Expected arrivals in ``[t0, t1)`` (the exact integral of the rate)."""
        total, start = 0.0, 0.0
        for s in self.stages:
            a, b = max(t0, start), min(t1, start + s.seconds)
            if b > a:
                ra = s.rps + (s.to_rps - s.rps) * (a - start) / s.seconds
                rb = s.rps + (s.to_rps - s.rps) * (b - start) / s.seconds
                total += (ra + rb) / 2 * (b - a)
            start += s.seconds
        return total

    def arrivals(self, mode: str = "uniform", seed: int = 0) -> Iterator[float]:
        """Intended start offsets in seconds, increasing, following the rate.

        "uniform": the k-th arrival is where the rate's integral reaches k + 0.5 (solved exactly per
        linear stage), so any window holds its expected count ± 1. "poisson": exponential gaps.
        """
        if mode == "poisson":
            yield from self._poisson(seed)
            return
        k, cum, start = 0.5, 0.0, 0.0
        for s in self.stages:
            area = (s.rps + s.to_rps) / 2 * s.seconds
            slope = (s.to_rps - s.rps) / s.seconds if s.seconds else 0.0
            while k <= cum + area:
                need = k - cum  # area to cover inside this stage: rps*x + slope*x²/2 = need
                if abs(slope) < 1e-12:
                    x = need / s.rps
                else:
                    disc = s.rps * s.rps + 2 * slope * need
                    x = (-s.rps + math.sqrt(max(disc, 0.0))) / slope
                yield start + min(max(x, 0.0), s.seconds)
                k += 1.0
            cum += area
            start += s.seconds

    def _poisson(self, seed: int) -> Iterator[float]:
        rng = random.Random(seed)
        peak = self.peak_rps
        if peak <= 0:
            return
        t = 0.0
        while True:  # thinning: candidates at the peak rate, kept with probability rate/peak
            t += rng.expovariate(peak)
            if t >= self.duration:
                return
            if rng.random() * peak <= self.rate(t):
                yield t


def _num(where: str, table: dict[str, Any], key: str, default: float, lo: float = 0.0) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < lo:
        raise ConfigError(f"{where}: shape.{key}: expected a number >= {lo}, got {value!r}")
    return float(value)


def _spike(where: str, t: dict[str, Any], d: float, p: float) -> tuple[list[Stage], tuple[str, ...]]:
    base = _num(where, t, "baseline", 0.1) * p
    fr = {"baseline": 0.25, "ramp": 0.10, "peak": 0.45, "decay": 0.20}
    given = t.get("phases", {})
    if not isinstance(given, dict) or set(given) - set(fr):
        raise ConfigError(f"{where}: shape.phases: a table with keys {', '.join(fr)}")
    fr.update({k: _num(where, given, k, 0.0) for k in given})
    total = sum(fr.values())
    if total <= 0:
        raise ConfigError(f"{where}: shape.phases must not all be 0")
    secs = {k: d * v / total for k, v in fr.items()}
    stages = [
        Stage("baseline", secs["baseline"], base, base),
        Stage("ramp", secs["ramp"], base, p),
        Stage("peak", secs["peak"], p, p),
        Stage("decay", secs["decay"], p, base),
    ]
    return [s for s in stages if s.seconds > 0], SPIKE_PHASES


def _waves(where: str, t: dict[str, Any], d: float, p: float) -> list[Stage]:
    low = _num(where, t, "low", 0.2) * p
    waves = int(_num(where, t, "waves", 3, 1))
    half = d / (2 * waves)
    out: list[Stage] = []
    for i in range(waves):
        out += [Stage(f"wave{i + 1}-up", half, low, p), Stage(f"wave{i + 1}-down", half, p, low)]
    return out


def _step(where: str, t: dict[str, Any], d: float, p: float) -> list[Stage]:
    steps = t.get("steps", [0.25, 0.5, 0.75, 1.0])
    if not isinstance(steps, list) or not steps or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in steps
    ):
        raise ConfigError(f"{where}: shape.steps: a list of fractions of the peak, e.g. [0.5, 1.0]")
    top = max(steps) or 1.0
    return [Stage(f"step{i + 1}", d / len(steps), p * x / top, p * x / top) for i, x in enumerate(steps)]


def _soak(where: str, t: dict[str, Any], d: float, p: float) -> list[Stage]:
    ramp = _num(where, t, "ramp", 0.05)
    if ramp >= 1:
        raise ConfigError(f"{where}: shape.ramp is a fraction of the duration below 1")
    stages = [Stage("ramp", d * ramp, 0.0, p)] if ramp > 0 else []
    return [*stages, Stage("soak", d * (1 - ramp), p, p)]


def _stages(where: str, t: dict[str, Any]) -> list[Stage]:
    raw = t.get("stages")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: shape.stages: a list of {{name, seconds, rps[, to_rps]}} tables")
    out = []
    for i, st in enumerate(raw):
        if not isinstance(st, dict):
            raise ConfigError(f"{where}: shape.stages[{i}] must be a table")
        rps = _num(where, st, "rps", 0.0)
        out.append(Stage(str(st.get("name", f"stage{i + 1}")), _num(where, st, "seconds", 1.0), rps,
                         _num(where, st, "to_rps", rps)))
    return out


KINDS = ("spike", "waves", "step", "soak", "stages")
_KEYS = {"kind", "duration", "peak_rps", "baseline", "phases", "low", "waves", "steps", "ramp", "stages"}


def build_shape(table: dict[str, Any], *, duration: float | None = None, peak_rps: float | None = None,
                where: str = "<scenario>") -> Shape:
    """A :class:`Shape` from a ``[shape]`` table; ``duration``/``peak_rps`` override the table's."""
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: shape.{sorted(unknown)[0]}: unknown key")
    kind = table.get("kind", "spike")
    if kind not in KINDS:
        raise ConfigError(f"{where}: shape.kind: unknown shape {kind!r}", detail=f"known: {', '.join(KINDS)}")
    d = duration if duration is not None else _num(where, table, "duration", 120.0)
    p = peak_rps if peak_rps is not None else _num(where, table, "peak_rps", 50.0)
    if d <= 0 or p <= 0:
        raise ConfigError(f"{where}: duration and peak_rps must be above 0 (got {d}, {p})")
    if kind == "spike":
        stages, scored = _spike(where, table, d, p)
    elif kind == "stages":
        stages = _stages(where, table)
        if duration is not None or peak_rps is not None:
            stages = list(scale_shape(Shape(kind, tuple(stages), ()), duration, peak_rps).stages)
        scored = ()
    else:
        stages = {"waves": _waves, "step": _step, "soak": _soak}[kind](where, table, d, p)
        scored = ()
    shape = Shape(kind, tuple(stages), scored or tuple(s.name for s in stages))
    if shape.duration <= 0:
        raise ConfigError(f"{where}: the shape has no length")
    return shape


def scale_shape(shape: Shape, duration: float | None, peak_rps: float | None) -> Shape:
    """Stretch a shape to ``duration`` seconds and/or ``peak_rps``, keeping its form."""
    ft = (duration / shape.duration) if duration else 1.0
    fr = (peak_rps / shape.peak_rps) if peak_rps and shape.peak_rps > 0 else 1.0
    return Shape(shape.kind, tuple(Stage(s.name, s.seconds * ft, s.rps * fr, s.to_rps * fr) for s in shape.stages),
                 shape.scored)
