"""Flow control, metrics and signing as units (the server tests cover them end to end)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest
from edgeproof.origin.flow import Admission
from edgeproof.origin.signing import sign, signed_message, verify
from edgeproof.origin.telemetry import Metrics

from edgeproof.canonical import Variant
from edgeproof.errors import Forbidden, Overloaded


def test_admission_fifo_queue_limit_and_deadline() -> None:
    async def scenario() -> list[str]:
        adm = Admission(max_concurrency=1, queue_limit=2)
        order: list[str] = []
        await adm.acquire(None)  # holder

        async def waiter(name: str) -> None:
            await adm.acquire(None)
            order.append(name)
            adm.release()

        a = asyncio.create_task(waiter("a"))
        await asyncio.sleep(0)
        b = asyncio.create_task(waiter("b"))
        await asyncio.sleep(0)
        assert (adm.running, adm.queued) == (1, 2)
        with pytest.raises(Overloaded) as info:  # queue full: refused at once
            await adm.acquire(None)
        assert info.value.retry_after >= 1
        adm.release()
        await asyncio.gather(a, b)
        assert (adm.running, adm.queued) == (0, 0)
        # a waiter whose deadline passes leaves the queue and gets 503
        await adm.acquire(None)
        with pytest.raises(Overloaded):
            await adm.acquire(time.monotonic() + 0.01)
        assert adm.queued == 0
        adm.release()
        assert adm.running == 0
        return order

    assert asyncio.run(scenario()) == ["a", "b"]


def test_admission_cancelled_waiter_gives_slot_back() -> None:
    async def scenario() -> None:
        adm = Admission(max_concurrency=1, queue_limit=4)
        await adm.acquire(None)
        w = asyncio.create_task(adm.acquire(None))
        await asyncio.sleep(0)
        adm.release()  # hands the slot to w …
        w.cancel()  # … which is cancelled before it runs: the slot must come back
        with pytest.raises(asyncio.CancelledError):
            await w
        assert adm.running == 0 and adm.queued == 0

    asyncio.run(scenario())


def _bump(metrics: Metrics, worker: int) -> None:
    metrics.worker = worker
    metrics.inc("transforms_total", "webp")
    metrics.request(200, "transform", 0.02)


def test_metrics_summed_over_worker_processes() -> None:
    metrics = Metrics(workers=2)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(metrics, i)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    assert metrics.total("transforms_total", "webp") == 2
    from prometheus_client.parser import text_string_to_metric_families

    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(metrics.render()) for s in f.samples}
    p = "edgeproof_origin_"
    assert got[(p + "transforms_total", (("format", "webp"),))] == 2
    assert got[(p + "requests_total", (("source", "transform"), ("status", "200")))] == 2
    assert got[(p + "request_duration_seconds_bucket", (("le", "0.01"),))] == 0
    assert got[(p + "request_duration_seconds_bucket", (("le", "0.025"),))] == 2
    assert got[(p + "request_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert got[(p + "request_duration_seconds_count", ())] == 2


def test_signing() -> None:
    v = Variant(w=640, h=0, fit="cover", q=80, f="webp")
    message = signed_message("images/a.jpg", v)
    assert message == "/images/a.jpg/w=640,h=0,fit=cover,q=80,f=webp"
    assert signed_message("images/a.jpg", v, negotiated=True) == "/images/a.jpg/w=640,h=0,fit=cover,q=80,f=auto"
    verify(message, sign(message, "old"), ["new", "old"])
    verify(message, sign(message, "new").upper(), ["new"])
    verify(message, None, [])  # signing off
    for bad in (None, "", "0" * 64, sign(message, "other"), sign(message + "x", "new"), "é", "zz" * 32,
                sign(message, "new")[:-1]):
        with pytest.raises(Forbidden):
            verify(message, bad, ["new", "old"])


def test_worker_balance_signal() -> None:
    metrics = Metrics(workers=2)
    metrics.worker = 1
    metrics.set("queue_depth", value=0)
    metrics.worker = 0
    metrics.set("in_flight", value=1)
    assert not metrics.busier_than_others()  # 1 vs 0: within the margin
    metrics.set("queue_depth", value=2)
    assert metrics.busier_than_others()  # 3 vs 0: close this connection, let the kernel re-hash it
    metrics.inc("transforms_total", "jpeg")
    text = metrics.render()
    assert 'edgeproof_origin_worker_busy{worker="0"} 3' in text
    assert 'edgeproof_origin_worker_transforms_total{worker="0"} 1' in text
    assert 'edgeproof_origin_worker_transforms_total{worker="1"} 0' in text
    assert not Metrics(workers=1).busier_than_others()
