"""Flow control inside one worker process: admission (bounded concurrency + queue), single-flight,
and the optional local LRU cache. All of it runs on the worker's event loop (no locks needed).

The single-flight and the LRU are the kernel's (:mod:`edgeproof.singleflight`, :mod:`edgeproof.lru`),
the same ones the edge's tiers use; ``SingleFlight`` is importable from here too."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from edgeproof.errors import Overloaded
from edgeproof.lru import ByteLru
from edgeproof.singleflight import SingleFlight

__all__ = ["Admission", "CachedObject", "LocalCache", "SingleFlight"]

class Admission:
    """At most ``max_concurrency`` holders and ``queue_limit`` waiters; anyone past that is refused
    at once with :class:`Overloaded` (503 + Retry-After), and a waiter whose deadline passes gives up.

    ``on_change(queued, running)`` is called whenever either count changes (for the gauges).
    """

    def __init__(
        self,
        max_concurrency: int,
        queue_limit: int,
        on_change: Callable[[int, int], None] | None = None,
        retry_after: int = 1,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.queue_limit = max(0, queue_limit)
        self.running = 0
        self.queued = 0
        self.retry_after = retry_after
        self._on_change = on_change or (lambda q, r: None)
        self._queue: OrderedDict[int, asyncio.Future[None]] = OrderedDict()
        self._ids = 0

    def _changed(self) -> None:
        self._on_change(self.queued, self.running)

    async def acquire(self, deadline_at: float | None) -> None:
        """Take a slot, waiting in FIFO order until ``deadline_at`` (monotonic) at most."""
        if self.running < self.max_concurrency and not self._queue:
            self.running += 1
            self._changed()
            return
        if self.queued >= self.queue_limit:
            raise Overloaded(
                "server busy",
                detail=f"{self.running} transforms running and {self.queued} queued; retry shortly",
                retry_after=self.retry_after,
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ids += 1
        ident = self._ids
        self._queue[ident] = fut
        self.queued += 1
        self._changed()
        timeout = None if deadline_at is None else max(0.0, deadline_at - time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except (TimeoutError, asyncio.CancelledError) as err:
            if ident in self._queue:  # still waiting: leave the queue
                del self._queue[ident]
                self.queued -= 1
                self._changed()
            elif fut.done() and not fut.cancelled():  # the slot was handed over just now: give it back
                self.release()
            if isinstance(err, TimeoutError):
                raise Overloaded(
                    "deadline exceeded", detail="waited too long for a transform slot",
                    retry_after=self.retry_after,
                ) from err
            raise

    def release(self) -> None:
        """Give the slot to the oldest waiter, or free it."""
        while self._queue:
            _ident, fut = self._queue.popitem(last=False)
            self.queued -= 1
            if not fut.done():
                fut.set_result(None)  # the slot passes to the waiter (running unchanged)
                self._changed()
                return
        self.running -= 1
        self._changed()


@dataclass(frozen=True, slots=True)
class CachedObject:
    """A response body with the headers derived from it."""

    data: bytes
    content_type: str
    etag: str


def _body_bytes(obj: CachedObject) -> int:
    return len(obj.data)


class LocalCache(ByteLru[str, CachedObject]):
    """The per-process cache (``--local-cache-mb``): the kernel's byte-bounded LRU, each object charged
    its body's bytes; ``capacity`` 0 disables it."""

    __slots__ = ()

    def __init__(self, capacity_bytes: int) -> None:
        super().__init__(capacity_bytes, _body_bytes, name="local")
