"""The compiled cache model equals the reference model (analytics/_cachesim_ref.py) on every trace.

Hypothesis generates traces — 1 to 60 POPs grouped into regional caches, key ids dense or sparse and up
to 2**31-1 in any order, keys that serve several variants, non-variant requests, sizes including ones
larger than a cache, TTLs, capacities, revalidation on and off, a warm-up boundary — and splits the stream
into batches at arbitrary points. Every counter, per POP and overall, must be equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from edgeproof.analytics._cachesim import CacheModel, PopCacheModel
from edgeproof.analytics._cachesim_ref import COUNTERS, ReferenceModel
from hypothesis import given, settings
from hypothesis import strategies as st


@dataclass
class Trace:
    t: np.ndarray
    pop: np.ndarray
    key: np.ndarray
    var: np.ndarray
    size: np.ndarray
    scored: np.ndarray
    n_pops: int
    n_regions: int
    tier: str
    ttl: int
    capacity: int
    revalidate: bool
    cuts: list[int]

    def tiers(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.t)
        c1 = self.n_pops + self.pop % self.n_regions if self.tier != "pop" else np.full(n, -1)
        c2 = np.full(n, self.n_pops + self.n_regions if self.tier == "shield" else -1)
        return c1.astype(np.int64), c2.astype(np.int64)

    @property
    def n_caches(self) -> int:
        return self.n_pops + self.n_regions + 1

    def batches(self):  # type: ignore[no-untyped-def]
        c1, c2 = self.tiers()
        edges = [0, *self.cuts, len(self.t)]
        for lo, hi in zip(edges, edges[1:], strict=False):
            yield (self.t[lo:hi], self.pop[lo:hi], c1[lo:hi], c2[lo:hi], self.key[lo:hi], self.var[lo:hi],
                   self.size[lo:hi], self.scored[lo:hi])


@st.composite
def traces(draw: st.DrawFn, max_requests: int = 250) -> Trace:
    n_pops = draw(st.integers(1, 60))
    n_regions = draw(st.integers(1, 4))
    n_keys = draw(st.integers(1, 40))
    if draw(st.booleans()):  # dense ids (the replay's) or sparse, large ones
        ids = list(range(n_keys))
    else:
        ids = draw(st.lists(st.integers(0, 2**31 - 1), min_size=n_keys, max_size=n_keys, unique=True))
    n_vars = draw(st.integers(1, max(1, n_keys)))
    # each key has one variant (several keys per variant = fragmentation), or serves several (a key that
    # ignores Accept), or none (-1: not a variant request)
    key_vars = [draw(st.lists(st.integers(-1, n_vars - 1), min_size=1, max_size=3)) for _ in range(n_keys)]
    n = draw(st.integers(1, max_requests))
    hot = draw(st.integers(1, n_pops))  # most requests go to a few POPs, some to all
    rows = draw(st.lists(st.tuples(st.integers(0, n_keys - 1), st.integers(0, 2), st.integers(0, n_pops - 1),
                                   st.sampled_from([0, 0, 1, 5, 50, 1000, 10**6]),
                                   st.sampled_from([0, 100, 500, 700, 1000, 1500, 3000, 10**7]), st.booleans()),
                         min_size=n, max_size=n))
    t, pop, key, var, size = [], [], [], [], []
    now = draw(st.integers(0, 10**12))
    for k, vi, p, dt, sz, spread in rows:
        now += dt
        t.append(now)
        pop.append(p if spread else p % hot)
        key.append(ids[k])
        var.append(key_vars[k][vi % len(key_vars[k])])
        size.append(sz)
    warm = draw(st.integers(0, n))
    scored = np.arange(n) >= warm
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=8)))) if n > 1 else []
    return Trace(np.array(t, np.int64), np.array(pop, np.int64), np.array(key, np.int64), np.array(var, np.int64),
                 np.array(size, np.int64), scored, n_pops, n_regions,
                 draw(st.sampled_from(("pop", "regional", "shield"))), draw(st.sampled_from([0, 1, 50, 3000])),
                 draw(st.sampled_from([0, 1000, 3000, 10**9])), draw(st.booleans()), cuts)


def reference(tr: Trace) -> ReferenceModel:
    ref = ReferenceModel(ttl_ms=tr.ttl, capacity=tr.capacity, revalidate=tr.revalidate)
    c1, c2 = tr.tiers()
    ref.run(tr.t, tr.pop, c1, c2, tr.key, tr.var, tr.size, tr.scored)
    return ref


def fast(tr: Trace, model: CacheModel | PopCacheModel) -> CacheModel | PopCacheModel:
    n_variants = int(tr.var.max()) + 1 if tr.var.max() >= 0 else 1
    for batch in tr.batches():
        model.run(*batch, n_caches=tr.n_caches, n_variants=n_variants)
    return model


def assert_equal(got: CacheModel | PopCacheModel, want: ReferenceModel) -> None:
    assert got.result() == want.result()
    assert got.result_by_pop() == {p: c for p, c in want.result_by_pop().items() if c["requests"]}


@settings(max_examples=300, deadline=None)
@given(traces())
def test_cache_model_equals_reference(tr: Trace) -> None:
    want = reference(tr)
    assert_equal(fast(tr, CacheModel(ttl_ms=tr.ttl, capacity=tr.capacity, revalidate=tr.revalidate)), want)
    if tr.tier == "pop":  # POP by POP, each POP's index dense (by key id) or hashed
        assert_equal(fast(tr, PopCacheModel(ttl_ms=tr.ttl, capacity=tr.capacity, revalidate=tr.revalidate)), want)


@settings(max_examples=150, deadline=None)
@given(traces(max_requests=120))
def test_single_cache_dense_index_equals_reference(tr: Trace) -> None:
    """One POP, no upper tier: the model that switches its slot index between key ids and hashing."""
    tr.pop[:] = 0
    tr.n_pops, tr.tier = 1, "pop"
    want = reference(tr)
    got = fast(tr, CacheModel(ttl_ms=tr.ttl, capacity=tr.capacity, revalidate=tr.revalidate, single=True))
    assert_equal(got, want)


def test_counters_partition_the_requests() -> None:
    """hits + refresh hits + misses = requests; the anatomy classes partition the misses."""
    rng = np.random.default_rng(7)
    n = 20_000
    t = np.cumsum(rng.integers(0, 40, n))
    pop, key = rng.integers(0, 9, n), rng.zipf(1.3, n) % 500
    c1, c2 = 9 + pop % 3, np.full(n, 12)
    model = CacheModel(ttl_ms=5_000, capacity=200_000, revalidate=False)
    model.run(t, pop, c1, c2, key, key // 3, 500 + key % 2000, np.ones(n, bool), n_caches=13, n_variants=200)
    r = model.result()
    assert r["hits"] + r["refresh_hits"] + r["misses"] == r["requests"] == n
    assert r["cold"] + r["expired"] + r["evicted"] + r["fragmented"] == r["misses"]
    assert r["expired"] > 0 and r["evicted"] > 0 and r["fragmented"] > 0 and r["regional_hits"] > 0
    assert r["shield_hits"] > 0 and r["refresh_hits"] == 0
    assert set(r) == set(COUNTERS)


def test_dense_index_covers_key_ids_of_earlier_batches() -> None:
    """The crash of `strategies compare` on ordinary logs: a POP hashed large key ids in one batch, then
    a batch whose own largest key id was small made it switch to the dense index sized for that batch."""
    model = PopCacheModel(ttl_ms=0, capacity=0)
    ref = ReferenceModel(ttl_ms=0, capacity=0)
    big = np.arange(0, 4000, 50, dtype=np.int64)  # sparse at POP 0: hashed
    small = np.arange(0, 60, dtype=np.int64)       # then dense at POP 0, while big ids are in its table
    t0 = 0
    for keys in (big, small, big):
        n = len(keys)
        t = np.arange(t0, t0 + n, dtype=np.int64)
        t0 += n
        args = (t, np.zeros(n, np.int64), np.full(n, -1), np.full(n, -1), keys, keys, np.full(n, 100),
                np.ones(n, bool))
        model.run(*args, n_caches=1, n_variants=4000)
        ref.run(*args)
    assert model.result() == ref.result()


@pytest.mark.parametrize("revalidate", [True, False])
def test_expiry_is_revalidated_as_cloudfront_does(revalidate: bool) -> None:
    """An expired, unchanged object: a conditional request and a RefreshHit (a hit), not a miss."""
    t = np.array([0, 10_000, 10_001], np.int64)
    n = 3
    model = CacheModel(ttl_ms=5_000, capacity=0, revalidate=revalidate)
    model.run(t, np.zeros(n, np.int64), np.full(n, -1), np.full(n, -1), np.zeros(n, np.int64),
              np.zeros(n, np.int64), np.full(n, 100), np.ones(n, bool), n_caches=1, n_variants=1)
    r = model.result()
    assert r["origin_requests"] == 2 and r["hits"] == 1
    if revalidate:
        assert (r["refresh_hits"], r["misses"], r["expired"]) == (1, 1, 0)
    else:
        assert (r["refresh_hits"], r["misses"], r["expired"]) == (0, 2, 1)
