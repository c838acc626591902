"""The run configuration handed from ``edgeproof loadtest run`` to the Locust process.

The parent writes ``OUT/run.json`` and starts Locust with ``EDGEPROOF_CONFIG=OUT/run.json``. Under plain
``locust -f loadtest/locustfile.py`` the same config is built from the ``EDGEPROOF_*`` environment
variables instead: :class:`LocustEnv` declares them once (name, default, check, meaning;
:data:`ENV_SETTINGS`), and docs/loadtest.md lists the same (a test checks).

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
from edgeproof.loadtest.shapes import SHAPE_SETTINGS, Shape, build_shape

from edgeproof.errors import ConfigError
from edgeproof.settings import Settings, setting

__all__ = ["ENV_SETTINGS", "LEAD_S", "LocustEnv", "RunConfig", "config_from_env"]

#: seconds between the start signal and the first arrival (lets every worker get ready)
LEAD_S = 1.0


@dataclass(frozen=True, slots=True)
class LocustEnv:
    """The environment of a plain ``locust -f loadtest/locustfile.py`` (no ``edgeproof loadtest run``).

    ``duration`` and ``peak_rps`` override ``[shape]``'s keys, so they take its checks (one rule, in
    :data:`~edgeproof.loadtest.shapes.SHAPE_SETTINGS`)."""

    config: str = setting("", "a run.json written by edgeproof loadtest run (then the others are ignored)",
                          env="EDGEPROOF_CONFIG")
    scenario: str = setting("spike", "built-in scenario name or TOML path", env="EDGEPROOF_SCENARIO")
    duration: float | None = setting(None, "seconds; the shape scales to it (default: the scenario's)",
                                     env="EDGEPROOF_DURATION", check=SHAPE_SETTINGS["duration"].check)
    peak_rps: float | None = setting(None, "requests/s at the peak (default: the scenario's)",
                                     env="EDGEPROOF_PEAK_RPS", check=SHAPE_SETTINGS["peak_rps"].check)
    out: str = setting("loadtest-out", "output folder for the recorder parts (records/)", env="EDGEPROOF_OUT")
    replay: str = setting("", "a compact traffic file (edgeproof loadtest prepare-traffic; default: the "
                              "scenario's [replay] file)", env="EDGEPROOF_REPLAY")
    keys_file: str = setting("", "catalog keys file, one source key per line (overrides the scenario's)",
                             env="EDGEPROOF_KEYS_FILE")


ENV_SETTINGS: Settings[LocustEnv] = Settings.of(LocustEnv, "env")


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


def config_from_env(environ: dict[str, str] | None = None) -> RunConfig:
    """The run config of a Locust process: EDGEPROOF_CONFIG, or the other EDGEPROOF_* variables."""
    env = LocustEnv(**ENV_SETTINGS.from_env(os.environ if environ is None else environ))
    if env.config:
        return RunConfig.read(env.config)
    scenario = load_scenario(env.scenario)
    if env.keys_file:
        scenario = dataclasses.replace(
            scenario, catalog=dataclasses.replace(scenario.catalog, keys_file=str(Path(env.keys_file).resolve())))
    return RunConfig(scenario, env.out, env.duration, env.peak_rps, env.replay or scenario.replay.file,
                     scenario.replay.speed)
