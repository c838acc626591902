"""Locust spike scenarios: workload model, open-model arrival shapes, recorder, gates.

The only package that may import Locust, and only inside the Locust process
(:mod:`edgeproof.loadtest.locustfile` and :mod:`edgeproof.loadtest.engine`). Everything listed here is importable
without Locust (and without boto3): the CLI and other processes run Locust as a subprocess through
:func:`run`.
"""

from __future__ import annotations

from edgeproof.lazy import lazy_getattr

__all__ = [
    "RECORD_SCHEMA",
    "Gate",
    "RunFigures",
    "Thresholds",
    "GateResult",
    "Recorder",
    "RunConfig",
    "Scenario",
    "Shape",
    "Verdict",
    "Workload",
    "build_shape",
    "compare_runs",
    "evaluate",
    "judge",
    "list_builtin_scenarios",
    "load_loadtest_run",
    "load_scenario",
    "parse_gate",
    "prepare_traffic",
    "read_records",
    "run",
    "write_html",
]

_LAZY = {
    "RECORD_SCHEMA": "edgeproof.loadtest.recorder",
    "Recorder": "edgeproof.loadtest.recorder",
    "read_records": "edgeproof.loadtest.recorder",
    "Gate": "edgeproof.loadtest.gates",
    "GateResult": "edgeproof.loadtest.gates",
    "Verdict": "edgeproof.loadtest.gates",
    "evaluate": "edgeproof.loadtest.gates",
    "parse_gate": "edgeproof.loadtest.gates",
    "RunConfig": "edgeproof.loadtest.config",
    "Scenario": "edgeproof.loadtest.scenario",
    "load_scenario": "edgeproof.loadtest.scenario",
    "list_builtin_scenarios": "edgeproof.loadtest.scenario",
    "Shape": "edgeproof.loadtest.shapes",
    "build_shape": "edgeproof.loadtest.shapes",
    "Workload": "edgeproof.loadtest.workload",
    "prepare_traffic": "edgeproof.loadtest.traffic",
    "judge": "edgeproof.loadtest.runner",
    "run": "edgeproof.loadtest.runner",
    "compare_runs": "edgeproof.loadtest.compare",
    "load_loadtest_run": "edgeproof.loadtest.compare",
    "RunFigures": "edgeproof.loadtest.compare",
    "Thresholds": "edgeproof.loadtest.compare",
    "write_html": "edgeproof.loadtest.compare",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
