"""The edgeproof locustfile: an open-model arrival schedule inside Locust.

Run by ``edgeproof loadtest run`` (headless, config in ``EDGEPROOF_CONFIG``) or by hand::

    EDGEPROOF_SCENARIO=spike EDGEPROOF_DURATION=120 EDGEPROOF_PEAK_RPS=80 \\
        locust -f loadtest/locustfile.py --host http://127.0.0.1:8080          # web UI on :8089
    locust -f loadtest/locustfile.py --host ... --processes 4                  # 4 worker processes
    locust -f loadtest/locustfile.py --master / --worker --master-host HOST    # across hosts

How it maps onto Locust: :class:`EdgeproofShape` (a ``LoadTestShape``) keeps exactly one
:class:`EdgeproofUser` per worker process and stops the test when the schedule (plus drain) is over.
At test start the master numbers the connected workers and sends each its lane, the lane count and a
common start time ``t0`` (wall clock, a second ahead). The user of each process runs that process's
:class:`edgeproof.loadtest.engine.Lane`: arrivals at their intended times, sent by ``pool`` sender greenlets
(sharing the user's ``FastHttpSession``), one recorder row per arrival (``OUT/records/part-*.parquet``).
The user count in the web UI is ignored: the rate comes from the scenario's shape.

This is the only module (with :mod:`edgeproof.loadtest.engine`) that runs under Locust's gevent monkey-patching.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from typing import Any

import gevent
from edgeproof.loadtest.config import LEAD_S, RunConfig, config_from_env
from edgeproof.loadtest.engine import Lane
from edgeproof.loadtest.recorder import Recorder, warm_up
from edgeproof.loadtest.traffic import TrafficPlan
from locust import FastHttpUser, LoadTestShape, events, task
from locust.runners import MasterRunner, WorkerRunner

from edgeproof.errors import EdgeproofError

log = logging.getLogger("edgeproof.loadtest")

try:
    CONFIG: RunConfig = config_from_env()
    _SHAPE = CONFIG.shape()
    _DURATION = (TrafficPlan(CONFIG.replay_file, CONFIG.duration or _SHAPE.duration, CONFIG.replay_speed).duration
                 if CONFIG.is_replay else _SHAPE.duration)
except EdgeproofError as _err:  # a bad scenario or env var: a clear message, not a traceback
    sys.stderr.write(f"edgeproof: error: {_err.message}\n" + (f"  {_err.detail}\n" if _err.detail else ""))
    sys.exit(2)
warm_up()  # pyarrow's one-off costs, paid at start-up rather than during the schedule


class _State:
    """This process's plan (lane, lanes, t0) and its running lane."""

    plan: dict[str, Any] | None = None
    lane: Lane | None = None
    driver_taken = False
    lanes_done: set[int] = set()  # on the master: lanes that reported their schedule finished
    lanes_expected = 1


def _reset(plan: dict[str, Any] | None) -> None:
    """A new test: close any earlier lane and take the new plan."""
    if _State.lane is not None and not _State.lane.recorder.closed:
        _State.lane.close()
    _State.plan, _State.lane, _State.driver_taken = plan, None, False


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        def on_plan(msg: Any, **_: Any) -> None:
            _reset(dict(msg.data))  # arrives before the spawn message (and so before test_start)
            log.info("edgeproof: lane %s of %s", msg.data["lane"], msg.data["lanes"])

        environment.runner.register_message("edgeproof_plan", on_plan)
    elif isinstance(environment.runner, MasterRunner):
        def on_done(msg: Any, **_: Any) -> None:
            _State.lanes_done.add(int(msg.data["lane"]))

        environment.runner.register_message("edgeproof_done", on_done)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    t0 = time.time() + LEAD_S
    if isinstance(runner, MasterRunner):
        workers = sorted(c.id for c in runner.clients.values())
        _State.lanes_done, _State.lanes_expected = set(), len(workers)
        for i, client_id in enumerate(workers):
            runner.send_message("edgeproof_plan", {"lane": i, "lanes": len(workers), "t0": t0}, client_id)
        _announce(environment, t0, len(workers))
    elif not isinstance(runner, WorkerRunner):  # a worker got its plan by message already
        _reset({"lane": 0, "lanes": 1, "t0": t0})
        _announce(environment, t0, 1)


def _announce(environment: Any, t0: float, lanes: int) -> None:
    """The start line the parent parses (``edgeproof: start t0=… lanes=…``), then progress every 5 s."""
    print(f"edgeproof: start t0={t0:.6f} lanes={lanes} duration={_DURATION:.3f}", flush=True)

    def progress() -> None:
        while True:
            gevent.sleep(5.0)
            t = time.time() - t0
            if t > _DURATION + 1.0:
                return
            total = environment.runner.stats.total
            phase = "replay" if CONFIG.is_replay else _SHAPE.phase(t)
            target = 0.0 if CONFIG.is_replay else _SHAPE.rate(t)
            print(f"edgeproof: progress t={t:6.1f}s phase={phase} target={target:.1f}/s "
                  f"current={total.current_rps:.1f}/s requests={total.num_requests} "
                  f"failures={total.num_failures}", flush=True)

    gevent.spawn(progress)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if not isinstance(environment.runner, MasterRunner) and _State.lane is not None:
        lane = _State.lane
        if not lane.recorder.closed:
            lane.close()
            log.info("edgeproof: lane %d wrote %d rows to %s (%s)", lane.lane, lane.recorder.rows,
                     lane.recorder.path, lane.counts)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    _on_test_stop(environment)


class EdgeproofUser(FastHttpUser):
    """One per worker process: runs the process's lane (see the module docstring).

    Its one ``FastHttpSession`` is shared by the lane's sender greenlets, with a connection pool as
    large as the lane's pool: connections are opened only as concurrency needs them and reused.
    """

    concurrency = CONFIG.scenario.run.pool

    network_timeout = CONFIG.scenario.timeout_s
    connection_timeout = CONFIG.scenario.timeout_s
    max_retries = 0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        # No cookie jar: the one session stands for the workload's whole client population, so a
        # cookie one simulated viewer got would be sent by all of them; the workload models none.
        # (It also saves the jar's work on every request and response: ~8 µs of ~100 µs, measured.)
        self.client.client.cookiejar = None

    def wait_time(self) -> float:  # type: ignore[override]
        return 1.0

    @task
    def drive(self) -> None:
        if _State.driver_taken:  # a second user in this process: nothing to do
            gevent.sleep(1.0)
            return
        _State.driver_taken = True
        deadline = time.time() + 30
        while _State.plan is None and time.time() < deadline:
            gevent.sleep(0.05)
        if _State.plan is None:
            log.error("edgeproof: no lane plan from the master within 30 s; this worker sends nothing")
            return
        plan = _State.plan
        recorder = Recorder(CONFIG.out_dir, run_id=str(int(float(plan["t0"]) * 1000)))
        lane = Lane(CONFIG, lane=int(plan["lane"]), lanes=int(plan["lanes"]), t0=float(plan["t0"]),
                    recorder=recorder)
        _State.lane = lane
        gc.collect()
        gc.freeze()  # start-up objects out of the collector's way during the run
        lane.run(self.client)
        log.info("edgeproof: lane %d scheduled until %.3f, drained at %.3f", lane.lane,
                 lane.scheduled_until - lane.t0, lane.now() - lane.t0)
        lane.close()
        if isinstance(self.environment.runner, WorkerRunner):
            self.environment.runner.send_message("edgeproof_done", {"lane": lane.lane})
        log.info("edgeproof: lane %d done: %s, %d rows in %s", lane.lane, lane.counts, recorder.rows,
                 recorder.path)
        while True:  # idle until the shape stops the test
            gevent.sleep(1.0)


class EdgeproofShape(LoadTestShape):
    """One user per worker for the schedule's length plus the drain time, then stop."""

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        if self.get_run_time() > LEAD_S + _DURATION + CONFIG.scenario.run.drain_s + 1.0:
            return None
        if isinstance(runner, MasterRunner):
            if _State.lanes_expected and len(_State.lanes_done) >= _State.lanes_expected:
                return None
        elif _State.lane is not None and _State.lane.done and _State.lane.recorder.closed:
            return None
        workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
        workers = max(workers, 1)
        return workers, float(max(workers, 100))


if os.environ.get("EDGEPROOF_DEBUG"):
    logging.getLogger("edgeproof").setLevel(logging.DEBUG)
