"""The kernel's one byte-bounded LRU and one single-flight, which the edge's tiers and the origin share.

The LRU is checked against a plain ``OrderedDict`` model by a hypothesis state machine (put, get, peek,
discard, clear, values larger than the capacity, values that change after they are stored); the
single-flight with real asyncio tasks: one fetch per key, its result or exception reaching every
waiter, the entry gone when done, a cancelled waiter leaving the others alone.
"""

from __future__ import annotations

import asyncio
import gc
from collections import OrderedDict

import pytest
from edgeproof.edge.cache import Entry, LruCache
from edgeproof.origin.flow import CachedObject, LocalCache
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from edgeproof.lru import ByteLru
from edgeproof.singleflight import SingleFlight

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"])


class LruModel:
    """What a byte-bounded LRU is, as plainly as it can be written."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self.items: OrderedDict[str, int] = OrderedDict()  # key -> size charged, least recent first
        self.evictions = 0

    def put(self, key: str, size: int) -> bool:
        self.items.pop(key, None)
        if size > self.capacity:
            return False
        self.items[key] = size
        while sum(self.items.values()) > self.capacity:
            self.items.popitem(last=False)
            self.evictions += 1
        return True

    def get(self, key: str) -> bool:
        if key not in self.items:
            return False
        self.items.move_to_end(key)
        return True


class LruMachine(RuleBasedStateMachine):
    """:class:`ByteLru` and :class:`LruModel` given the same operations must agree after each one."""

    def __init__(self) -> None:
        super().__init__()
        self.lru: ByteLru[str, bytearray] = ByteLru(0, len)
        self.model = LruModel(0)
        self.values: dict[str, bytearray] = {}

    @initialize(capacity=st.integers(min_value=-5, max_value=120))
    def start(self, capacity: int) -> None:
        self.lru = ByteLru(capacity, len, name="t")
        self.model = LruModel(capacity)

    @rule(key=KEYS, size=st.integers(min_value=0, max_value=150))  # sizes up to > capacity
    def put(self, key: str, size: int) -> None:
        value = bytearray(size)
        assert self.lru.put(key, value) == self.model.put(key, size)
        self.values[key] = value

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        got = self.lru.get(key)
        assert (got is not None) == self.model.get(key)
        if got is not None:
            assert got is self.values[key]

    @rule(key=KEYS)
    def peek(self, key: str) -> None:  # no change of recency: the model is not touched
        got = self.lru.peek(key)
        assert (got is not None) == (key in self.model.items)
        assert (key in self.lru) == (key in self.model.items)

    @rule(key=KEYS)
    def discard(self, key: str) -> None:
        assert self.lru.discard(key) == (self.model.items.pop(key, None) is not None)

    @rule()
    def clear(self) -> None:
        assert self.lru.clear() == len(self.model.items)
        self.model.items.clear()

    @rule(key=KEYS, grow=st.integers(min_value=1, max_value=50))
    def value_changes_after_put(self, key: str, grow: int) -> None:
        """A stored value that grows later keeps the size it was charged (the edge's entries are
        mutable dataclasses): the accounting must not drift."""
        if self.lru.peek(key) is not None:
            self.values[key].extend(bytes(grow))

    @invariant()
    def agrees(self) -> None:
        assert self.lru.ordered_keys() == list(self.model.items)
        assert len(self.lru) == len(self.model.items)
        assert self.lru.bytes == sum(self.model.items.values()) <= self.lru.capacity
        assert self.lru.evictions == self.model.evictions
        assert self.lru.capacity == self.model.capacity


TestLruAgainstModel = LruMachine.TestCase
TestLruAgainstModel.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_edge_and_origin_caches_are_the_one_lru() -> None:
    """Both callers' caches are :class:`ByteLru`, charged what each stores: the edge an entry's body,
    head and overhead, the origin a body."""
    entry = Entry(200, b"x" * 100, "image/jpeg", None, b"H" * 10, 0.0, 1e12)
    edge = LruCache("IAD89-C1", capacity_bytes=10 * entry.size)
    origin = LocalCache(1000)
    assert isinstance(edge, ByteLru) and isinstance(origin, ByteLru)
    assert edge.put("k", entry) and edge.bytes == entry.size and edge.name == "IAD89-C1"
    origin.put("k", CachedObject(b"y" * 300, "image/webp", '"e"'))
    assert origin.bytes == 300
    # replacing a key with a value over the capacity drops the old one, at the origin too
    assert not origin.put("k", CachedObject(b"y" * 1001, "image/webp", '"f"'))
    assert origin.get("k") is None and origin.bytes == 0
    assert LocalCache(0).capacity == 0 and not LocalCache(0).put("k", CachedObject(b"y", "image/webp", '"e"'))


def test_local_cache_lru_bytes() -> None:
    cache = LocalCache(100)
    obj = lambda n: CachedObject(b"x" * n, "image/jpeg", '"e"')  # noqa: E731
    cache.put("a", obj(40))
    cache.put("b", obj(40))
    assert cache.get("a") is not None  # a is now most recent
    cache.put("c", obj(40))  # evicts b
    assert cache.get("b") is None and cache.get("a") is not None and cache.bytes == 80
    cache.put("huge", obj(101))  # larger than the cache: not stored
    assert cache.get("huge") is None
    assert LocalCache(0).capacity == 0


# -- single-flight ---------------------------------------------------------------------------------

def test_single_flight_joins_and_hold() -> None:
    async def scenario() -> None:
        flight: SingleFlight[int] = SingleFlight()
        calls = 0

        async def make() -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            return 42

        t1, j1 = flight.run("k", make)
        t2, j2 = flight.run("k", make)
        assert t1 is t2 and (j1, j2) == (False, True)
        assert await t1 == 42 and calls == 1
        await asyncio.sleep(0)
        assert flight.run("k", make)[1] is False  # finished and not held: a new call
        flight.hold("h")
        t3, _ = flight.run("h", make)
        await t3
        assert flight.run("h", make)[1] is True  # held: later callers join the finished result
        flight.forget("h")
        assert flight.run("h", make)[1] is False

        async def boom() -> int:
            raise ValueError("x")

        t4, _ = flight.run("e", boom)
        await asyncio.sleep(0.01)
        assert t4.done() and flight.run("e", make)[1] is False  # failures are not kept

    asyncio.run(scenario())


def test_concurrent_callers_share_one_fetch() -> None:
    async def scenario() -> None:
        flight: SingleFlight[str] = SingleFlight()
        release = asyncio.Event()
        calls = 0

        async def fetch() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            return f"body-{calls}"

        joined = [flight.run("k", fetch)[1] for _ in range(3)]
        assert joined == [False, True, True]
        waiters = [asyncio.create_task(flight.do("k", fetch)) for _ in range(5)]
        await asyncio.sleep(0.01)
        assert calls == 1 and len(flight) == 1 and "k" in flight
        release.set()
        assert await asyncio.gather(*waiters) == ["body-1"] * 5
        assert calls == 1 and "k" not in flight and len(flight) == 0

    asyncio.run(scenario())


def test_an_exception_reaches_every_waiter_and_is_not_kept() -> None:
    async def scenario() -> None:
        flight: SingleFlight[str] = SingleFlight()
        release = asyncio.Event()
        calls = 0

        async def fail() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            raise ValueError(f"origin down {calls}")

        waiters = [asyncio.create_task(flight.do("k", fail)) for _ in range(4)]
        await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ValueError) and str(r) == "origin down 1" for r in results)
        assert calls == 1 and "k" not in flight
        task, joined = flight.run("k", fail)  # a failure is not kept: the next call fetches again
        assert not joined
        with pytest.raises(ValueError, match="origin down 2"):
            await task

    asyncio.run(scenario())


def test_the_entry_is_gone_before_any_waiter_resumes() -> None:
    """A caller that arrives just as the fetch ends must start a new one, never join a finished one."""
    async def scenario() -> None:
        flight: SingleFlight[int] = SingleFlight()
        seen: list[tuple[bool, bool]] = []

        async def fetch() -> int:
            await asyncio.sleep(0.01)
            return 1

        async def waiter() -> None:
            await flight.do("k", fetch)
            seen.append(("k" in flight, flight.run("k", fetch)[1]))

        await asyncio.gather(waiter(), waiter())
        assert seen[0] == (False, False)  # the first to resume started a new fetch …
        assert seen[1] == (True, True)  # … which the second joined
        await asyncio.sleep(0.02)
        assert len(flight) == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("cancelled", [0, 1])
def test_a_cancelled_waiter_leaves_the_fetch_and_the_others_alone(cancelled: int) -> None:
    """The viewer whose request started the fetch (0) or one that joined it (1) goes away."""
    async def scenario() -> None:
        flight: SingleFlight[str] = SingleFlight()
        release = asyncio.Event()
        started = 0
        finished = 0

        async def fetch() -> str:
            nonlocal started, finished
            started += 1
            await release.wait()
            finished += 1
            return "body"

        waiters = [asyncio.create_task(flight.do("k", fetch)) for _ in range(3)]
        await asyncio.sleep(0.01)
        waiters[cancelled].cancel()
        await asyncio.sleep(0.01)
        assert waiters[cancelled].cancelled() and "k" in flight
        release.set()
        others = [w for i, w in enumerate(waiters) if i != cancelled]
        assert await asyncio.gather(*others) == ["body", "body"]
        assert (started, finished) == (1, 1) and "k" not in flight

    asyncio.run(scenario())


def test_cancel_gives_up_every_fetch() -> None:
    async def scenario() -> None:
        flight: SingleFlight[str] = SingleFlight()

        async def hang() -> str:
            await asyncio.Event().wait()
            return "never"

        waiters = [asyncio.create_task(flight.do(k, hang)) for k in ("a", "a", "b")]
        await asyncio.sleep(0.01)
        assert len(flight) == 2
        assert flight.cancel() == 2
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert len(flight) == 0 and "a" not in flight and "b" not in flight
        # cancelled before it ever ran: never joined, and removed
        first, _ = flight.run("c", hang)
        assert flight.cancel() == 1
        await asyncio.sleep(0)
        again, joined = flight.run("c", hang)
        assert first.cancelled() and again is not first and not joined
        again.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert "c" not in flight

    asyncio.run(scenario())


def test_hold_keeps_a_success_until_forget() -> None:
    async def scenario() -> None:
        flight: SingleFlight[int] = SingleFlight()
        calls = 0

        async def make() -> int:
            nonlocal calls
            calls += 1
            flight.hold("h")  # as the origin does while the derivative is being written
            return calls

        assert await flight.do("h", make) == 1
        task, joined = flight.run("h", make)
        assert joined and await task == 1 and len(flight) == 0  # held, finished: not in flight
        flight.forget("h")
        assert "h" not in flight and await flight.do("h", make) == 2

        async def held_failure() -> int:
            flight.hold("e")
            raise ValueError("x")

        with pytest.raises(ValueError):
            await flight.do("e", held_failure)
        assert "e" not in flight  # only a success is held

    asyncio.run(scenario())


def test_a_failure_nobody_waits_for_is_not_reported_as_unretrieved() -> None:
    async def scenario() -> list[dict[str, object]]:
        reported: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        flight: SingleFlight[int] = SingleFlight()

        async def fail() -> int:
            await asyncio.sleep(0.01)
            raise ValueError("nobody listens")

        waiter = asyncio.create_task(flight.do("k", fail))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0.03)
        gc.collect()
        await asyncio.sleep(0)
        return reported

    assert asyncio.run(scenario()) == []


@settings(max_examples=60, deadline=None)
@given(callers=st.lists(st.tuples(st.sampled_from("xyz"), st.booleans(), st.booleans()), min_size=1, max_size=12))
def test_any_mix_of_callers_gets_one_fetch_per_key(callers: list[tuple[str, bool, bool]]) -> None:
    """Callers (key, cancelled?, fails?) all arrive while the fetches are in flight: each key is
    fetched once, the first caller's ``fails`` decides its outcome, every waiter not cancelled sees
    it, and nothing is left in flight."""
    async def scenario() -> None:
        flight: SingleFlight[str] = SingleFlight()
        release = asyncio.Event()
        calls: dict[str, int] = {}

        def maker(key: str, fails: bool):  # noqa: ANN202 - a coroutine function
            async def fetch() -> str:
                calls[key] = calls.get(key, 0) + 1
                await release.wait()
                if fails:
                    raise RuntimeError(key)
                return key.upper()
            return fetch

        tasks = [asyncio.create_task(flight.do(k, maker(k, f))) for k, _, f in callers]
        await asyncio.sleep(0)
        for task, (_, cancel, _) in zip(tasks, callers, strict=True):
            if cancel:
                task.cancel()
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        first_fails = {}
        for k, _, f in callers:
            first_fails.setdefault(k, f)
        assert calls == dict.fromkeys(first_fails, 1)
        for (k, cancel, _), got in zip(callers, results, strict=True):
            if cancel:
                assert isinstance(got, asyncio.CancelledError)
            elif first_fails[k]:
                assert isinstance(got, RuntimeError) and str(got) == k
            else:
                assert got == k.upper()
        assert len(flight) == 0 and not any(k in flight for k in first_fails)

    asyncio.run(scenario())
