"""Flow control inside one worker process: admission (bounded concurrency + queue), single-flight,
and the optional local LRU cache. All of it runs on the worker's event loop (no locks needed)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgeproof.errors import Overloaded

__all__ = ["Admission", "CachedObject", "LocalCache", "SingleFlight"]

T = TypeVar("T")


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


class SingleFlight(Generic[T]):
    """Concurrent calls for the same key share one task; later callers are *joins*.

    A task's entry is dropped when it finishes, unless the producer called :meth:`hold` for its
    key (e.g. while the derivative is still being written, so that a request arriving in that gap
    joins the finished task instead of transforming again); :meth:`forget` then drops it.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}
        self._held: set[str] = set()

    def run(self, key: str, make: Callable[[], Awaitable[T]]) -> tuple[asyncio.Task[T], bool]:
        """The task producing ``key`` and whether this call joined an existing one."""
        task = self._tasks.get(key)
        if task is not None:
            return task, True
        task = asyncio.ensure_future(make())
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return task, False

    def _done(self, key: str, task: asyncio.Task[T]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: waiters that gave up must not leave "never retrieved" noise
        if key not in self._held and self._tasks.get(key) is task:
            del self._tasks[key]

    def hold(self, key: str) -> None:
        self._held.add(key)

    def forget(self, key: str) -> None:
        self._held.discard(key)
        task = self._tasks.get(key)
        if task is not None and task.done():
            del self._tasks[key]

    def __len__(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())


@dataclass(frozen=True, slots=True)
class CachedObject:
    """A response body with the headers derived from it."""

    data: bytes
    content_type: str
    etag: str


class LocalCache:
    """A byte-bounded LRU of :class:`CachedObject`; ``capacity`` 0 disables it."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = max(0, capacity_bytes)
        self.size = 0
        self._items: OrderedDict[str, CachedObject] = OrderedDict()

    def get(self, key: str) -> CachedObject | None:
        obj = self._items.get(key)
        if obj is not None:
            self._items.move_to_end(key)
        return obj

    def put(self, key: str, obj: CachedObject) -> None:
        if len(obj.data) > self.capacity:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old.data)
        self._items[key] = obj
        self.size += len(obj.data)
        while self.size > self.capacity:
            _k, evicted = self._items.popitem(last=False)
            self.size -= len(evicted.data)

    def __len__(self) -> int:
        return len(self._items)
