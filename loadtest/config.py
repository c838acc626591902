"""The run configuration handed from ``edgeproof loadtest run`` to the Locust process.

The parent writes ``OUT/run.json`` and starts Locust with ``EDGEPROOF_CONFIG=OUT/run.json``. Under plain
``locust -f loadtest/locustfile.py`` the same config is built from environment variables instead:

=======================  =====================================================
``EDGEPROOF_CONFIG``     a run.json written by ``edgeproof loadtest run``/``prepare``
``EDGEPROOF_SCENARIO``   built-in name or TOML path (default ``spike``)
``EDGEPROOF_DURATION``   seconds (default: the scenario's)
``EDGEPROOF_PEAK_RPS``   requests/s at the peak (default: the scenario's)
``EDGEPROOF_OUT``        output folder for recorder parts (default ``loadtest-out``)
``EDGEPROOF_REPLAY``     a compact replay file (``edgeproof loadtest prepare-traffic``)
``EDGEPROOF_KEYS_FILE``  catalog keys file (overrides the scenario's)
=======================  =====================================================

Importable without Locust and without boto3.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeproof.loadtest.scenario import Scenario, load_scenario, scenario_from_dict
from edgeproof.loadtest.shapes import Shape, build_shape

from edgeproof.errors import ConfigError

__all__ = ["LEAD_S", "RunConfig", "config_from_env"]

#: seconds between the start signal and the first arrival (lets every worker get ready)
LEAD_S = 1.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    scenario: Scenario
    out_dir: str
    duration: float | None = None
    peak_rps: float | None = None
    replay_file: str = ""  # compact replay file; replaces the synthetic workload
    replay_speed: float = 0.0

    def shape(self) -> Shape:
        """The scaled arrival-rate shape (for replay: a flat placeholder of the same duration)."""
        shape = build_shape(self.scenario.shape, duration=self.duration, peak_rps=self.peak_rps,
                            where=self.scenario.source or "<scenario>")
        return shape

    @property
    def is_replay(self) -> bool:
        return bool(self.replay_file)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.raw,
            "scenario_source": self.scenario.source,
            "keys_file": self.scenario.catalog.keys_file,
            "out_dir": self.out_dir,
            "duration": self.duration,
            "peak_rps": self.peak_rps,
            "replay_file": self.replay_file,
            "replay_speed": self.replay_speed,
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        source = data.get("scenario_source") or "<run.json>"
        base = Path(source).parent if source and not source.startswith("<") else None
        scenario = scenario_from_dict(data.get("scenario") or {}, where=source, base_dir=base)
        if data.get("keys_file"):
            scenario = dataclasses.replace(
                scenario, catalog=dataclasses.replace(scenario.catalog, keys_file=data["keys_file"]))
        return cls(scenario, data["out_dir"], data.get("duration"), data.get("peak_rps"),
                   data.get("replay_file") or "", float(data.get("replay_speed") or 0.0))

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"cannot read run config {path}: {err}") from err


def _float_env(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a number") from err


def config_from_env() -> RunConfig:
    """The run config of a Locust process: EDGEPROOF_CONFIG, or the other EDGEPROOF_* variables."""
    path = os.environ.get("EDGEPROOF_CONFIG")
    if path:
        return RunConfig.read(path)
    scenario = load_scenario(os.environ.get("EDGEPROOF_SCENARIO", "spike"))
    keys = os.environ.get("EDGEPROOF_KEYS_FILE")
    if keys:
        scenario = dataclasses.replace(
            scenario, catalog=dataclasses.replace(scenario.catalog, keys_file=str(Path(keys).resolve())))
    replay = os.environ.get("EDGEPROOF_REPLAY") or scenario.replay.file
    return RunConfig(scenario, os.environ.get("EDGEPROOF_OUT", "loadtest-out"),
                     _float_env("EDGEPROOF_DURATION"), _float_env("EDGEPROOF_PEAK_RPS"),
                     replay, scenario.replay.speed)


