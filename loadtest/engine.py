"""The open-model scheduler that runs inside a Locust process (gevent).

One :class:`Lane` per worker process. Arrival *i* of the shape belongs to lane ``i % lanes``; each of
the lane's arrivals is started at its intended time (``t0 + offset``) by one of a bounded set of sender
greenlets. The next arrival never waits for an earlier response (open model) unless every sender is
busy, so a slow target shows up as late requests instead of silently slowing the generator down:

- an arrival started more than ``late_ms`` after its intended time is *late* (counted);
- ``pool`` sender greenlets take the arrivals in order; when all are busy the next arrivals wait
  and start late; an arrival more than ``max_lateness_s`` late is *dropped*: never sent, recorded
  with ``dropped = true`` (so a slow target shows up as late and dropped arrivals, never as a
  quietly lower rate);
- every sent request records its latency from the actual start and from the intended start (the
  coordinated-omission-corrected latency).

Requests go through Locust's ``FastHttpSession`` (geventhttpclient; the user's session, whose
connection pool is as large as the lane's pool, or one session per sender when ``run`` is given a
factory), so Locust's own stats, CSV and HTML report still see them (named by role, not by the
noisy URL).

This module imports gevent: only the Locust process (``loadtest/locustfile.py``) imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.pool
from edgeproof.loadtest.config import RunConfig
from edgeproof.loadtest.recorder import Recorder
from edgeproof.loadtest.traffic import TrafficPlan
from edgeproof.loadtest.workload import Request, Workload

__all__ = ["Lane"]

_YIELD_EVERY = 32  # a sender dropping a run of late arrivals yields this often


class Lane:
    """Drives this process's share of the arrivals; call :meth:`run` in a greenlet, then :meth:`close`."""

    def __init__(self, config: RunConfig, *, lane: int, lanes: int, t0: float, recorder: Recorder) -> None:
        self.config = config
        self.lane, self.lanes = lane, max(1, lanes)
        self.t0 = t0  # wall-clock (epoch) time of offset 0
        self.recorder = recorder
        self.settings = config.scenario.run
        self.pool = gevent.pool.Group()  # the sender greenlets (see run)
        self._base_wall = time.time()
        self._base_perf = time.perf_counter()
        self.in_flight: dict[int, tuple[float, float, Request, str, bool]] = {}
        self._next_id = 0
        self.done = False
        self.counts = {"scheduled": 0, "sent": 0, "late": 0, "dropped": 0}

    def now(self) -> float:
        """Wall-clock seconds from a monotonic source (no jumps during the run)."""
        return self._base_wall + (time.perf_counter() - self._base_perf)

    def _arrivals(self) -> Iterator[tuple[float, str, Request]]:
        """(offset, phase, request) for this lane's arrivals, in order.

        A sender never waits for the workload model: arrivals are taken ahead of their intended
        start, and the model makes its requests a batch at a time (:meth:`Workload.stream`)."""
        cfg = self.config
        if cfg.is_replay:
            plan = TrafficPlan(cfg.replay_file, cfg.duration or cfg.shape().duration, cfg.replay_speed)
            header = cfg.scenario.clients.pop_header
            for i, (off, url, accept, ua, pop) in enumerate(plan.arrivals()):
                if i % self.lanes == self.lane:
                    headers = {"Accept": accept, "User-Agent": ua}
                    if header:
                        headers[header] = str(pop)
                    yield off, "replay", Request(url, headers, "replay", 0, False, pop)
            return
        workload = Workload(cfg.scenario, lane=self.lane, spike_start=self.spike_start())
        yield from workload.stream(self._offsets())

    def spike_start(self) -> float:
        """The offset from which the workload's promotion is on (the first scored phase of a spike)."""
        shape = self.config.shape()
        if shape.kind != "spike":
            return 0.0
        return next((start for name, start, _ in shape.phases() if name in shape.scored), 0.0)

    def _offsets(self) -> Iterator[tuple[float, str]]:
        """(offset, phase name) of this lane's share of the shape's arrivals, in order."""
        shape = self.config.shape()
        phases = shape.phases()
        k = 0
        lane, lanes = self.lane, self.lanes
        for i, off in enumerate(shape.arrivals(self.settings.arrivals, seed=self.config.scenario.seed)):
            if i % lanes == lane:
                while k < len(phases) - 1 and off >= phases[k][2]:  # arrivals increase: walk the phases
                    k += 1
                yield off, phases[k][0]

    def run(self, client: Any | Callable[[], Any]) -> None:
        """Send every arrival of this lane, then wait up to ``drain_s`` for requests still in flight.

        ``pool`` sender greenlets share the lane's arrival sequence: a free sender takes the next
        arrival, sleeps until its intended start and sends it. When every sender is busy, arrivals wait
        (they start late); one found more than ``max_lateness_s`` late is dropped instead.
        """
        self._schedule = iter(self._arrivals())
        self._exhausted = False
        self._last_due = self.t0
        senders = gevent.pool.Group()
        for _ in range(self.settings.pool):  # a client factory gives each sender its own session
            senders.spawn(self._sender, client() if callable(client) else client)
        self.pool = senders
        while not senders.join(timeout=0.25):
            # every arrival taken, and the last one's intended start is drain_s behind us
            if self._exhausted and self.now() > self._last_due + self.settings.drain_s:
                break
        self.scheduled_until = self._last_due
        self.done = True

    def _sender(self, client: Any) -> None:
        late_s = self.settings.late_ms / 1000.0
        max_late = self.settings.max_lateness_s
        counts, now, t0 = self.counts, self.now, self.t0
        skipped = 0
        for offset, phase, request in self._schedule:
            due = t0 + offset
            self._last_due = due
            t = now()
            if due > t:
                gevent.sleep(due - t)
                t = now()
            lateness = t - due
            late = lateness > late_s
            counts["scheduled"] += 1
            counts["late"] += late
            if lateness > max_late:
                counts["dropped"] += 1
                self._record(due, None, None, request, phase, late, dropped=True, error="too late")
                skipped += 1
                if skipped % _YIELD_EVERY == 0:
                    gevent.sleep(0)
                continue
            counts["sent"] += 1
            self._send(client, request, due, phase, late)
        self._exhausted = True

    def _send(self, client: Any, req: Request, due: float, phase: str, late: bool) -> None:
        rid = self._next_id
        self._next_id = rid + 1
        in_flight, now = self.in_flight, self.now
        start = now()
        in_flight[rid] = (due, start, req, phase, late)
        try:
            resp = client.get(req.url, headers=req.headers, name=req.role)
            status = resp.status_code
            body = resp.content if status else None
            end = now()
        except gevent.GreenletExit:
            raise
        except Exception as err:  # the client reports most failures as status 0; anything else too
            end = now()
            del in_flight[rid]
            self._record(due, start, (end, 0, 0, None, None), req, phase, late, error=type(err).__name__)
            return
        del in_flight[rid]
        headers = resp.headers  # (no truth test: geventhttpclient's Headers counts its lines for that)
        if headers is None:
            xc = pop = None
        else:
            xc, pop = headers.get("X-Cache"), headers.get("X-Amz-Cf-Pop")
        err = getattr(resp, "error", None)
        # the row _record(due, start, (end, status, bytes, xc, pop), req, phase, late, error=…) writes,
        # built here: this is the hot path
        self.recorder.add_row((
            due, start, (end - start) * 1000.0, (end - due) * 1000.0, int(status or 0), len(body or b""), xc, pop,
            req.url, req.role, req.sku, req.promoted, phase, self.lane, late, False,
            None if err is None else (str(err)[:200] or type(err).__name__)))

    def _record(self, due: float, start: float | None, result: tuple | None, req: Request, phase: str,
                late: bool, *, dropped: bool = False, error: str | None = None) -> None:
        if result is None:
            end, status, nbytes, xc, pop = None, 0, 0, None, None
        else:
            end, status, nbytes, xc, pop = result
        self.recorder.add_row((
            due, start, None if end is None or start is None else (end - start) * 1000.0,
            None if end is None else (end - due) * 1000.0, status, nbytes, xc, pop, req.url, req.role, req.sku,
            req.promoted, phase, self.lane, late, dropped, error))

    def close(self) -> None:
        """Stop the senders; requests still in flight are recorded as unfinished (status 0); flush rows."""
        self.pool.kill(block=True, timeout=2)
        for due, start, req, phase, late in list(self.in_flight.values()):
            self._record(due, start, None, req, phase, late, error="unfinished")
        self.in_flight.clear()
        self.recorder.close()
