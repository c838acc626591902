"""The one single-flight (request collapsing) on an asyncio loop, for the edge's tiers and the origin.

Concurrent calls for one key share one fetch: the first call starts it as its own task, later calls
*join* that task. Why a task of its own rather than "the first caller fetches and the others wait on a
future": a fetch owned by one caller dies with that caller. When the viewer that happened to come
first hangs up or is cancelled, every viewer that collapsed onto its request would be cancelled with
it; CloudFront keeps the fetch going for the others ("Request and response behavior for custom
origins", RequestAndResponseBehaviorCustomOrigin.html, "Simultaneous requests for the same object
(request collapsing)" and "Canceled requests"). The edge and the origin each had their own copy of this
(one owned by the first caller, one a task); this is the one both import.

Rules (tests/test_lru_singleflight.py checks them with real tasks):

- :meth:`SingleFlight.run` returns the task and whether the call joined one already in flight;
  callers await it through :func:`asyncio.shield` (or call :meth:`SingleFlight.do`), so that a waiter
  that is cancelled leaves the fetch, and every other waiter, alone;
- a result or an exception reaches every waiter (the exception is marked retrieved, so waiters that
  gave up leave no "exception was never retrieved" noise);
- the entry is removed when the task finishes, before any waiter resumes: a call after that starts a
  new fetch, and a failure is never kept;
- unless the producer called :meth:`hold` for its key (the origin does while the derivative it just
  made is still being written, so that a request arriving in that gap joins the finished task instead
  of transforming again); :meth:`forget` then drops it. Only a success is held;
- :meth:`cancel` cancels every fetch in flight (the edge's drain gives up its origin requests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """One in-flight task per key; see the module docstring."""

    __slots__ = ("_held", "_tasks")

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}
        self._held: set[str] = set()

    def run(self, key: str, make: Callable[[], Awaitable[T]]) -> tuple[asyncio.Task[T], bool]:
        """The task producing ``key`` and whether this call joined an existing one (``make`` is then
        not called)."""
        task = self._tasks.get(key)
        if task is not None and not (task.done() and (task.cancelled() or task.exception() is not None)):
            return task, True  # running, or a held success (a failed one waits for its done callback)
        task = asyncio.ensure_future(self._produce(key, make))
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return task, False

    async def do(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        """Join or start the fetch for ``key`` and wait for it (a cancelled caller leaves it running)."""
        task, _ = self.run(key, make)
        return await asyncio.shield(task)

    async def _produce(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        ok = False
        try:
            result = await make()
            ok = True
            return result
        finally:
            # removed here, not in a done callback: callbacks run a loop step later, after the
            # waiters have resumed, and a caller in between would join a finished fetch
            self._drop(key, asyncio.current_task(), ok)

    def _drop(self, key: str, task: asyncio.Future[T] | None, ok: bool) -> None:
        if self._tasks.get(key) is task and not (ok and key in self._held):
            del self._tasks[key]

    def _done(self, key: str, task: asyncio.Task[T]) -> None:
        ok = not task.cancelled() and task.exception() is None  # exception(): marks it retrieved
        self._drop(key, task, ok)  # a task cancelled before it started never ran _produce's finally

    def hold(self, key: str) -> None:
        """Keep ``key``'s task (once it has succeeded) for later callers to join, until :meth:`forget`."""
        self._held.add(key)

    def forget(self, key: str) -> None:
        """Stop holding ``key``: a finished task is dropped now, a running one when it finishes."""
        self._held.discard(key)
        task = self._tasks.get(key)
        if task is not None and task.done():
            del self._tasks[key]

    def cancel(self) -> int:
        """Cancel every fetch in flight; how many there were."""
        running = [t for t in self._tasks.values() if not t.done()]
        for task in running:
            task.cancel()
        return len(running)

    def __contains__(self, key: object) -> bool:
        return key in self._tasks

    def __len__(self) -> int:
        """Fetches in flight (held, finished ones are not counted)."""
        return sum(1 for t in self._tasks.values() if not t.done())
