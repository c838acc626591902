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

The keys, defaults and checks are declared once, in :class:`ShapeConfig`, :class:`SpikePhases` and
:class:`StageConfig` (:data:`SHAPE_SETTINGS`, :mod:`edgeproof.settings`), so a bad key reads like every
other table's (``bad.toml: [shape] steps: must not be empty, got []``), ``--duration``/``--peak-rps``
are those settings' flags, and ``loadtest run --help`` lists them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeproof.errors import ConfigError
from edgeproof.settings import Settings, above, at_least, setting

__all__ = ["KINDS", "PHASE_SETTINGS", "SHAPE_SETTINGS", "SPIKE_PHASES", "STAGE_SETTINGS", "Shape", "ShapeConfig",
           "SpikePhases", "Stage", "StageConfig", "build_shape", "scale_shape"]

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


_FRACTION = at_least(0)


def _below_one(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be >= 0 and below 1 (a fraction of the duration)"


def _non_empty(v: tuple[Any, ...]) -> str | None:
    return None if v else "must not be empty"


KINDS = ("spike", "waves", "step", "soak", "stages")


@dataclass(frozen=True, slots=True)
class ShapeConfig:
    """``[shape]``: the arrival-rate shape; each kind reads the keys it uses (the others keep their
    defaults). ``phases`` (spike) and ``stages`` (stages) are tables of their own below."""

    kind: str = setting("spike", "the shape: spike | waves | step | soak | stages", choices=KINDS)
    duration: float = setting(120.0, "seconds of load; the shape's phases scale to it", check=above(0))
    peak_rps: float = setting(50.0, "requests/s at the peak; the shape scales to it", check=above(0))
    baseline: float = setting(0.1, "spike: baseline and decay-end rate as a fraction of the peak", check=_FRACTION)
    low: float = setting(0.2, "waves: the low rate as a fraction of the peak", check=_FRACTION)
    waves: int = setting(3, "waves: how many swings low → peak → low", check=at_least(1))
    steps: tuple[float, ...] = setting((0.25, 0.5, 0.75, 1.0), "step: equal-length steps, fractions of the peak",
                                       check=_non_empty, item_check=_FRACTION)
    ramp: float = setting(0.05, "soak: the ramp up as a fraction of the duration", check=_below_one)


@dataclass(frozen=True, slots=True)
class SpikePhases:
    """``[shape] phases``: a spike's phase lengths as fractions of the duration (normalised to their sum)."""

    baseline: float = setting(0.25, "before the spike", check=_FRACTION)
    ramp: float = setting(0.10, "rate rising to the peak", check=_FRACTION)
    peak: float = setting(0.45, "the peak held", check=_FRACTION)
    decay: float = setting(0.20, "rate falling back to the baseline", check=_FRACTION)


@dataclass(frozen=True, slots=True)
class StageConfig:
    """One entry of ``[shape] stages`` (absolute seconds and rates)."""

    name: str = setting("", "the phase name (default stageN)")
    seconds: float = setting(1.0, "its length", check=_FRACTION)
    rps: float = setting(0.0, "requests/s at its start", check=_FRACTION)
    to_rps: float | None = setting(None, "requests/s at its end (default: rps)", check=_FRACTION)


#: ``[shape]`` and its sub-tables (``[shape] phases``, each ``[shape] stages[i]``), from their dataclasses
SHAPE_SETTINGS: Settings[ShapeConfig] = Settings.of(ShapeConfig, "shape")
PHASE_SETTINGS: Settings[SpikePhases] = Settings.of(SpikePhases, "shape.phases")
STAGE_SETTINGS: Settings[StageConfig] = Settings.of(StageConfig, "shape.stages[i]")


def _spike(where: str, c: ShapeConfig, phases: Any, d: float, p: float) -> tuple[list[Stage], tuple[str, ...]]:
    base = c.baseline * p
    fr = PHASE_SETTINGS.read(phases, where=where)
    total = sum(fr.values())
    if total <= 0:
        raise ConfigError(f"{where}: [shape] phases: must not all be 0")
    secs = {k: d * v / total for k, v in fr.items()}
    stages = [
        Stage("baseline", secs["baseline"], base, base),
        Stage("ramp", secs["ramp"], base, p),
        Stage("peak", secs["peak"], p, p),
        Stage("decay", secs["decay"], p, base),
    ]
    return [s for s in stages if s.seconds > 0], SPIKE_PHASES


def _waves(c: ShapeConfig, d: float, p: float) -> list[Stage]:
    low = c.low * p
    half = d / (2 * c.waves)
    out: list[Stage] = []
    for i in range(c.waves):
        out += [Stage(f"wave{i + 1}-up", half, low, p), Stage(f"wave{i + 1}-down", half, p, low)]
    return out


def _step(c: ShapeConfig, d: float, p: float) -> list[Stage]:
    top = max(c.steps) or 1.0
    return [Stage(f"step{i + 1}", d / len(c.steps), p * x / top, p * x / top) for i, x in enumerate(c.steps)]


def _soak(c: ShapeConfig, d: float, p: float) -> list[Stage]:
    stages = [Stage("ramp", d * c.ramp, 0.0, p)] if c.ramp > 0 else []
    return [*stages, Stage("soak", d * (1 - c.ramp), p, p)]


def _stages(where: str, raw: Any) -> list[Stage]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: [shape] stages: expected a non-empty list of {{name, seconds, rps[, to_rps]}} "
                          f"tables")
    out = []
    for i, st in enumerate(raw):
        v = Settings(f"shape.stages[{i}]", STAGE_SETTINGS.rows).read(st, where=where)
        rps = v["rps"]
        out.append(Stage(v["name"] or f"stage{i + 1}", v["seconds"], rps,
                         rps if v["to_rps"] is None else v["to_rps"]))
    return out


def build_shape(table: dict[str, Any], *, duration: float | None = None, peak_rps: float | None = None,
                where: str = "<scenario>") -> Shape:
    """A :class:`Shape` from a ``[shape]`` table; ``duration``/``peak_rps`` override the table's (and
    are checked by the same table: ``[shape] duration: must be > 0``)."""
    c = SHAPE_SETTINGS.build(table, where=where, ignore=("phases", "stages"))
    given = SHAPE_SETTINGS.validate({k: v for k, v in (("duration", duration), ("peak_rps", peak_rps))
                                     if v is not None}, where=where)
    d, p = given.get("duration", c.duration), given.get("peak_rps", c.peak_rps)
    if c.kind == "spike":
        stages, scored = _spike(where, c, table.get("phases"), d, p)
    elif c.kind == "stages":
        stages = _stages(where, table.get("stages"))
        if duration is not None or peak_rps is not None:
            stages = list(scale_shape(Shape(c.kind, tuple(stages), ()), duration, peak_rps).stages)
        scored = ()
    else:
        stages = {"waves": _waves, "step": _step, "soak": _soak}[c.kind](c, d, p)
        scored = ()
    shape = Shape(c.kind, tuple(stages), scored or tuple(s.name for s in stages))
    if shape.duration <= 0:
        raise ConfigError(f"{where}: [shape]: the shape has no length")
    return shape


def scale_shape(shape: Shape, duration: float | None, peak_rps: float | None) -> Shape:
    """Stretch a shape to ``duration`` seconds and/or ``peak_rps``, keeping its form."""
    ft = (duration / shape.duration) if duration else 1.0
    fr = (peak_rps / shape.peak_rps) if peak_rps and shape.peak_rps > 0 else 1.0
    return Shape(shape.kind, tuple(Stage(s.name, s.seconds * ft, s.rps * fr, s.to_rps * fr) for s in shape.stages),
                 shape.scored)
