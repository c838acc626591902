"""Run a scenario under Locust in a subprocess and judge it: the API behind ``edgeproof loadtest run``.

This module never imports Locust (Locust gevent-patches its process); it writes ``OUT/run.json``,
starts ``python -m locust -f loadtest/locustfile.py --headless …`` with ``EDGEPROOF_CONFIG`` pointing at
it, streams its output, then reads the recorder's rows and evaluates the gates here. Usable from any
process (e.g. the rehearsal), including one that imported boto3.

Output folder::

    OUT/run.json            the resolved run configuration
    OUT/records/part-*.parquet   one recorder part per Locust worker process
    OUT/locust_stats.csv …  Locust's CSV files; OUT/locust.html its HTML report; OUT/locust.log its log
    OUT/verdict.json        the verdict (gates, totals)
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from edgeproof.loadtest.config import LEAD_S, RunConfig
from edgeproof.loadtest.gates import GATE_COLUMNS, Verdict, evaluate, parse_gate
from edgeproof.loadtest.recorder import read_records
from edgeproof.loadtest.scenario import Scenario, load_scenario
from edgeproof.loadtest.traffic import TrafficPlan, prepare_traffic

from edgeproof.errors import ConfigError, EdgeproofError, UsageError

__all__ = ["LOCUSTFILE", "EventsCallback", "judge", "locust_command", "run"]

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"

#: ``callback(event, data)``: ``"start"`` {t0 (epoch s), lanes, duration, phases: [(name, start, end)]},
#: ``"log"`` {line}, ``"done"`` {returncode}
EventsCallback = Callable[[str, dict[str, Any]], None]


def locust_command(host: str, out: Path, *, processes: int = 0, run_time_s: float = 0,
                   extra: Sequence[str] = ()) -> list[str]:
    """The headless Locust command line for a run whose config is in ``out/run.json``."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
           "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--only-summary",
           "--exit-code-on-error", "0", "--loglevel", "INFO"]
    if run_time_s:
        cmd += ["--run-time", f"{int(run_time_s) + 1}s"]
    if processes:
        # master and forked workers talk over loopback on a free port (never Locust's shared 5557)
        port = str(_free_port())
        cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                "--master-host", "127.0.0.1", "--master-port", port]
    return [*cmd, *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scored(config: RunConfig) -> tuple[str, ...]:
    return ("replay",) if config.is_replay else config.shape().scored


def judge(out_dir: str | Path, gates: Sequence[str] | None = None, *, config: RunConfig | None = None,
          records: Sequence[str | Path] | None = None) -> Verdict:
    """Evaluate gates over a finished run's rows (all parts) and write ``OUT/verdict.json``."""
    out = Path(out_dir)
    if config is None and (out / "run.json").is_file():
        config = RunConfig.read(out / "run.json")
    rules = list(gates) if gates else list(config.scenario.gates.rules if config else Scenario().gates.rules)
    for rule in rules:
        parse_gate(rule)
    table = read_records(list(records) if records else out, columns=GATE_COLUMNS)
    scope = config.scenario.gates.scope if config else "spike"
    verdict = evaluate(table, rules, scored_phases=_scored(config) if config else None, scope=scope)
    if table.num_rows:
        span_ = pc.min_max(table.column("intended_start"))
        span = (span_["max"].as_py() - span_["min"].as_py()).total_seconds()
        verdict.totals["schedule_s"] = span
        verdict.totals["sent_rps"] = verdict.totals["sent"] / span if span > 0 else None
    verdict.write(out / "verdict.json")
    return verdict


def _echo(event: str, data: dict[str, Any]) -> None:
    if event == "log" and data["line"].startswith("edgeproof:"):
        print(data["line"], flush=True)


def run(
    scenario: str | Path | Scenario = "spike",
    host: str = "http://127.0.0.1:8080",
    duration: float | None = None,
    peak_rps: float | None = None,
    out_dir: str | Path | None = None,
    processes: int = 0,
    *,
    gates: Sequence[str] | None = None,
    replay: Sequence[str] | None = None,
    replay_speed: float | None = None,
    keys_file: str | None = None,
    events_callback: EventsCallback | None = _echo,
    env: dict[str, str] | None = None,
) -> Verdict:
    """Run ``scenario`` against ``host`` in a Locust subprocess; return the :class:`Verdict`.

    ``duration``/``peak_rps`` rescale the shape; ``processes`` > 0 uses Locust's ``--processes`` (one
    lane per worker process); ``gates`` replace the scenario's; ``replay`` (log paths, read here)
    switches to replay mode. ``events_callback(event, data)`` gets the start time, Locust's output lines
    and the end (the default prints edgeproof's progress lines). Raises :class:`EdgeproofError` when
    Locust produces no rows.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if keys_file:
        sc = dataclasses.replace(sc, catalog=dataclasses.replace(sc.catalog, keys_file=str(Path(keys_file).resolve())))
    if not host.startswith(("http://", "https://")):
        raise UsageError(f"--host must be an http(s) URL, got {host!r}")
    for rule in gates or ():
        parse_gate(rule)
    out = Path(out_dir) if out_dir else Path("loadtest-runs") / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "records").glob("part-*.parquet") if (out / "records").is_dir() else []:
        old.unlink()
    replay_file = sc.replay.file
    if replay:
        replay_file = str(out / "replay.parquet")
        n = prepare_traffic(list(replay), replay_file)
        if events_callback:
            events_callback("log", {"line": f"edgeproof: replay of {n} requests from {', '.join(replay)}"})
    config = RunConfig(sc, str(out.resolve()), duration, peak_rps, replay_file,
                       sc.replay.speed if replay_speed is None else replay_speed)
    shape = config.shape()
    length = (TrafficPlan(replay_file, duration or shape.duration, config.replay_speed).duration
              if replay_file else shape.duration)
    config.write(out / "run.json")
    run_time = LEAD_S + length + sc.run.drain_s + 10
    cmd = locust_command(host, out, processes=processes, run_time_s=run_time)
    proc_env = {**os.environ, **(env or {}), "EDGEPROOF_CONFIG": str((out / "run.json").resolve())}
    phases = [("replay", 0.0, length)] if replay_file else shape.phases()
    returncode = _supervise(cmd, proc_env, out, timeout=run_time + 30 + 5 * processes, phases=phases,
                            callback=events_callback)
    if events_callback:
        events_callback("done", {"returncode": returncode})
    try:
        verdict = judge(out, gates, config=config)
    except ConfigError as err:
        raise EdgeproofError(
            f"the Locust run produced no recorder rows (exit code {returncode})",
            detail=f"see {out / 'locust.log'}: {err.message}") from err
    return verdict


def _supervise(cmd: list[str], env: dict[str, str], out: Path, *, timeout: float,
               phases: list[tuple[str, float, float]], callback: EventsCallback | None) -> int:
    """Run Locust, tee its output to ``out/locust.log`` and the callback; stop it at ``timeout``."""
    with open(out / "locust.log", "w") as logf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                bufsize=1)
        timer = threading.Timer(timeout, _stop, args=(proc,))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                logf.write(line)
                line = line.rstrip("\n")
                if callback is None:
                    continue
                if line.startswith("edgeproof: start "):
                    fields = dict(kv.split("=", 1) for kv in line.split()[2:] if "=" in kv)
                    callback("start", {"t0": float(fields.get("t0", 0)), "lanes": int(fields.get("lanes", 1)),
                                       "duration": float(fields.get("duration", 0)), "phases": phases})
                callback("log", {"line": line})
            return proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            timer.cancel()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
