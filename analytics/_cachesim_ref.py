"""The reference cache model: plain Python, one request at a time, the oracle for the fast model.

:mod:`edgeproof.analytics._cachesim` (compiled, dense arrays, POP-by-POP grouping, index switching) must give
exactly these counters on any trace; ``tests/test_cachesim_differential.py`` checks it with hypothesis.
Keep this file short and obvious; never optimise it.

The rules are CloudFront's (edgeproof/cloudfront.py names the pages):

- A request passes its POP cache, then its regional edge cache, then Origin Shield (those present:
  ``c1``/``c2`` are -1 when a tier is not modelled), then the origin.
- A cache holds an entry per key with the time it was filled and its size. An entry is *fresh* while
  ``now - filled < ttl`` (``ttl <= 0``: always fresh). With ``revalidate`` an expired entry is
  revalidated by the tier above (or by the origin: 304, the variants are immutable) instead of fetched
  again; the viewer's result is then ``RefreshHit``.
- The first tier with a fresh entry serves the request (it becomes that cache's most recently used);
  every tier below it is filled (or refreshed) with ``(now, size)``. Nobody fresh: the origin serves.
- Byte capacity per cache (``capacity <= 0``: unbounded): least recently used entries are evicted until
  the new one fits; an entry larger than the capacity is not stored (and a copy it replaces is gone).
- Result (:func:`edgeproof.cloudfront.viewer_result`): ``RefreshHit`` if an expired copy was
  revalidated; else ``Hit`` if the POP or the regional cache served; else ``Miss`` (an Origin Shield hit
  is a Miss, detailed ``OriginShieldHit``).
- Every Miss is classified by the state of its POP cache, first match wins:
  ``fragmented``: another key that was first seen at this POP as the same variant is resident and
  usable there (fresh, or expired with ``revalidate``); ``cold``: the key was never cached at this POP;
  ``expired``: resident but expired (only without ``revalidate``); ``evicted``: pushed out by capacity.
- ``transforms``: a variant's first request anywhere (warm-up included in "first"), when scored.
- Only scored requests (after the warm-up) are counted; every request changes the caches.
"""

from __future__ import annotations

from collections import OrderedDict

from edgeproof.cloudfront import viewer_result

__all__ = ["COUNTERS", "ReferenceModel"]

#: every counter, in a fixed order (the fast model's result has the same names)
COUNTERS = (
    "requests", "hits", "refresh_hits", "misses", "regional_hits", "shield_hits",
    "cold", "expired", "evicted", "fragmented", "origin_requests", "transforms",
)
_KINDS = ("pop", "regional", "shield")


class _Cache:
    """One cache: key -> (filled at, size), in LRU order (most recent last)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self.used = 0  # bytes, the sum of the entries' sizes
        self.ever: set[int] = set()  # keys that were ever stored here (cold vs evicted)
        self.first_variant: dict[int, int] = {}  # key -> the variant (or -1) it was first seen as here
        self.keys_of_variant: dict[int, set[int]] = {}  # variant -> keys first seen here as it

    def see(self, key: int, variant: int) -> None:
        if key not in self.first_variant:
            self.first_variant[key] = variant
            self.keys_of_variant.setdefault(variant, set()).add(key)

    def drop(self, key: int) -> None:
        if key in self.entries:
            self.used -= self.entries.pop(key)[1]

    def store(self, key: int, now: int, size: int) -> None:
        self.drop(key)
        if self.capacity > 0:
            if size > self.capacity:
                return
            while self.used + size > self.capacity:
                self.drop(next(iter(self.entries)))  # the least recently used
        self.entries[key] = (now, size)
        self.used += size
        self.ever.add(key)


class ReferenceModel:
    """Same ``run``/``result`` interface as :class:`edgeproof.analytics._cachesim.CacheModel`."""

    def __init__(self, *, ttl_ms: int, capacity: int, revalidate: bool = True) -> None:
        self.ttl = int(ttl_ms)
        self.capacity = int(capacity)
        self.revalidate = revalidate
        self.caches: dict[int, _Cache] = {}
        self.variants_seen: set[int] = set()
        self.by_pop: dict[int, dict[str, int]] = {}  # POP cache id -> its counters

    def _fresh(self, filled: int, now: int) -> bool:
        return self.ttl <= 0 or now - filled < self.ttl

    def request(self, now: int, tiers: list[int], key: int, variant: int, size: int, scored: bool) -> None:
        """One request through the caches ``tiers`` (cache ids, POP first; -1 = tier not modelled)."""
        chain = [(kind, self.caches.setdefault(c, _Cache(self.capacity)))
                 for kind, c in zip(_KINDS, tiers, strict=True) if c >= 0]
        pop = chain[0][1]
        pop.see(key, variant)
        pop_class = self._miss_class(pop, now, key, variant)
        first = variant >= 0 and variant not in self.variants_seen
        if variant >= 0:
            self.variants_seen.add(variant)

        served_by, revalidated, below = None, False, []
        for kind, cache in chain:
            entry = cache.entries.get(key)
            if entry is not None and self._fresh(entry[0], now):
                cache.entries.move_to_end(key)
                served_by = kind
                break
            if entry is not None and self.revalidate:
                revalidated = True
            below.append(cache)
        for cache in below:
            cache.store(key, now, size)

        if not scored:
            return
        c = self.by_pop.setdefault(tiers[0], dict.fromkeys(COUNTERS, 0))
        c["requests"] += 1
        c["transforms"] += first
        c["origin_requests"] += served_by is None
        result, detail = viewer_result(served_by, revalidated)
        if result == "Hit":
            c["hits"] += 1
            c["regional_hits"] += served_by == "regional"
        elif result == "RefreshHit":
            c["refresh_hits"] += 1
        else:
            c["misses"] += 1
            c["shield_hits"] += detail == "OriginShieldHit"
            c[pop_class] += 1

    def _miss_class(self, pop: _Cache, now: int, key: int, variant: int) -> str:
        """The class a miss at this POP would have, from the POP's state before the request."""
        if variant >= 0:
            for other in pop.keys_of_variant.get(variant, ()):
                entry = pop.entries.get(other)
                if other != key and entry is not None and (self.revalidate or self._fresh(entry[0], now)):
                    return "fragmented"
        if key not in pop.ever:
            return "cold"
        return "expired" if key in pop.entries else "evicted"

    def run(self, t, c0, c1, c2, key, var, size, scored, **_: object) -> None:  # type: ignore[no-untyped-def]
        """A time-ordered batch of requests as arrays (the fast model's signature)."""
        for i in range(len(t)):
            self.request(int(t[i]), [int(c0[i]), int(c1[i]), int(c2[i])], int(key[i]), int(var[i]),
                         max(0, int(size[i])), bool(scored[i]))

    def result(self) -> dict[str, int]:
        """Every counter, summed over the POPs."""
        return {name: sum(c[name] for c in self.by_pop.values()) for name in COUNTERS}

    def result_by_pop(self) -> dict[int, dict[str, int]]:
        return {pop: dict(c) for pop, c in self.by_pop.items()}
