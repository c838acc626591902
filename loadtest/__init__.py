"""Locust spike scenarios: workload model, open-model arrival shapes, recorder, gates.

The only package that may import Locust, and only inside the Locust process
(:mod:`loadtest.locustfile` and :mod:`loadtest.engine`). Everything listed here is importable
without Locust (and without boto3): the CLI and other processes run Locust as a subprocess through
:func:`run`.
"""

from __future__ import annotations

from edgeproof.lazy import lazy_getattr

__all__ = [
    "RECORD_SCHEMA",
    "Gate",
    "GateResult",
    "Recorder",
    "RunConfig",
    "Scenario",
    "Shape",
    "Verdict",
    "Workload",
    "build_shape",
    "evaluate",
    "judge",
    "list_builtin_scenarios",
    "load_scenario",
    "parse_gate",
    "prepare_replay",
    "read_records",
    "run",
]

_LAZY = {
    "RECORD_SCHEMA": "loadtest.recorder",
    "Recorder": "loadtest.recorder",
    "read_records": "loadtest.recorder",
    "Gate": "loadtest.gates",
    "GateResult": "loadtest.gates",
    "Verdict": "loadtest.gates",
    "evaluate": "loadtest.gates",
    "parse_gate": "loadtest.gates",
    "RunConfig": "loadtest.config",
    "Scenario": "loadtest.scenario",
    "load_scenario": "loadtest.scenario",
    "list_builtin_scenarios": "loadtest.scenario",
    "Shape": "loadtest.shapes",
    "build_shape": "loadtest.shapes",
    "Workload": "loadtest.workload",
    "prepare_replay": "loadtest.replay",
    "judge": "loadtest.runner",
    "run": "loadtest.runner",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
