"""The replay's cache model: per-cache LRU with TTL and byte capacity over integer request arrays.

Compiled with numba; state lives in numpy arrays held by :class:`CacheModel`, grown between batches, so
memory is bounded by the number of distinct (cache, key) pairs, not by the number of requests.

Per request (time order): the POP cache is looked up; a hit refreshes LRU recency (a doubly linked list
per cache; not kept at all when there is no capacity, since nothing is ever evicted). A miss is
classified, in this order of precedence:

- ``fragmented``: the request's variant is resident and fresh at that POP under another key;
- ``cold``: the key was never cached at that POP;
- ``expired``: the key is resident but older than the TTL (it is refreshed);
- ``evicted``: the key was pushed out by the byte capacity (LRU).

Then the regional cache and Origin Shield (when modelled) are tried in turn; what none of them has goes
to the origin. Every cache a miss passes through is filled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["COUNTERS", "CacheModel", "PopCacheModel"]

#: counter names, in the order of the counters array
COUNTERS = (
    "hits", "misses", "cold", "expired", "evicted", "fragmented", "transforms", "origin_requests",
    "regional_hits", "shield_hits", "requests",
)
_HITS, _MISSES, _COLD, _EXPIRED, _EVICTED, _FRAG, _TRANSFORMS, _ORIGIN, _REGIONAL, _SHIELD, _REQ = range(11)
_MULT = 0x5851F42D4C957F2D  # odd, < 2**63: numba multiplies int64 with wrap-around
# slot fields: one row of 8 int64 (one cache line) per (cache, key)
_KEY, _VAR, _TIME, _SIZE, _STATE, _PREV, _NEXT, _VNEXT = range(8)
_INCHAIN = 4  # bit in the _STATE field: the slot is linked in its (POP, variant) chain


@njit(cache=True, inline="always")
def _probe(table: np.ndarray, code: int) -> int:
    """Row of ``code`` in an open-addressing table of (key, value) rows, or of the empty row for it."""
    mask = table.shape[0] - 1
    i = ((code * _MULT) >> 29) & mask
    while True:
        k = table[i, 0]
        if k == code or k == -1:
            return i
        i = (i + 1) & mask


@njit(cache=True)
def _rehash(old: np.ndarray, new: np.ndarray) -> None:
    for i in range(old.shape[0]):
        if old[i, 0] != -1:
            j = _probe(new, old[i, 0])
            new[j, 0] = old[i, 0]
            new[j, 1] = old[i, 1]


def new_table(size: int) -> np.ndarray:
    table = np.empty((size, 2), dtype=np.int64)
    table[:, 0] = -1
    return table


def grow_table(table: np.ndarray, entries: int) -> np.ndarray:
    """``table``, or a rehashed copy at least twice as large as ``entries``."""
    if 2 * entries <= table.shape[0]:
        return table
    size = table.shape[0]
    while 2 * entries > size:
        size *= 2
    new = new_table(size)
    _rehash(table, new)
    return new


@njit(cache=True, inline="always")
def _unlink(s: int, c: int, S: np.ndarray, head: np.ndarray, tail: np.ndarray) -> None:
    p = S[s, _PREV]
    n = S[s, _NEXT]
    if p != -1:
        S[p, _NEXT] = n
    else:
        head[c] = n
    if n != -1:
        S[n, _PREV] = p
    else:
        tail[c] = p
    S[s, _PREV] = -1
    S[s, _NEXT] = -1


@njit(cache=True, inline="always")
def _push_front(s: int, c: int, S: np.ndarray, head: np.ndarray, tail: np.ndarray) -> None:
    h = head[c]
    S[s, _PREV] = -1
    S[s, _NEXT] = h
    if h != -1:
        S[h, _PREV] = s
    else:
        tail[c] = s
    head[c] = s


@njit(cache=True)
def _chain_remove(s, c, VT, S):
    if not (S[s, _STATE] & _INCHAIN):
        return
    vj = _probe(VT, (c << 32) | S[s, _VAR])
    o = VT[vj, 1]
    if o == s:
        VT[vj, 1] = S[s, _VNEXT]
    else:
        while o != -1:
            if S[o, _VNEXT] == s:
                S[o, _VNEXT] = S[s, _VNEXT]
                break
            o = S[o, _VNEXT]
    S[s, _VNEXT] = -1
    S[s, _STATE] &= ~_INCHAIN


@njit(cache=True)
def _run(t, c0, c1, c2, key, var, size, scored, HT, VT, S, n_slots, head, tail, used, vseen, counters,
         ttl, capacity, count_firsts):
    bounded = capacity > 0  # no capacity: no eviction, so no LRU order to keep
    for i in range(t.shape[0]):
        now = t[i]
        k = key[i]
        v = var[i]
        sc = scored[i]
        first = False
        if count_firsts and v >= 0 and not vseen[v]:
            vseen[v] = True
            first = True
        if sc:
            counters[_REQ] += 1
        served = False
        for tier in range(3):
            c = c0[i] if tier == 0 else (c1[i] if tier == 1 else c2[i])
            if c < 0:
                continue
            code = (c << 32) | k
            j = _probe(HT, code)
            if HT[j, 0] == -1:
                HT[j, 0] = code
                s = n_slots[0]
                n_slots[0] += 1
                HT[j, 1] = s
                S[s, _KEY] = k
                S[s, _VAR] = v
                S[s, _TIME] = 0
                S[s, _SIZE] = 0
                S[s, _STATE] = 0
                S[s, _PREV] = -1
                S[s, _NEXT] = -1
                S[s, _VNEXT] = -1
            else:
                s = HT[j, 1]
            state = S[s, _STATE] & 3
            if state == 1 and (ttl <= 0 or now - S[s, _TIME] < ttl):
                if bounded and head[c] != s:
                    _unlink(s, c, S, head, tail)
                    _push_front(s, c, S, head, tail)
                if sc:
                    if tier == 0:
                        counters[_HITS] += 1
                    elif tier == 1:
                        counters[_REGIONAL] += 1
                    else:
                        counters[_SHIELD] += 1
                served = True
                break
            vj = -1
            if tier == 0 and v >= 0:
                vj = _probe(VT, (c << 32) | v)  # the (POP, variant) chain: checked, then joined
            if tier == 0 and sc:
                counters[_MISSES] += 1
                cls = _COLD if state == 0 else (_EXPIRED if state == 1 else _EVICTED)
                if vj >= 0 and VT[vj, 0] != -1:
                    o = VT[vj, 1]
                    while o != -1:
                        if o != s and (S[o, _STATE] & 3) == 1 and (ttl <= 0 or now - S[o, _TIME] < ttl):
                            cls = _FRAG
                            break
                        o = S[o, _VNEXT]
                counters[cls] += 1
            # fill (or refresh) this cache
            sz = size[i]
            if state == 1:
                used[c] -= S[s, _SIZE]
                if bounded:
                    _unlink(s, c, S, head, tail)
            if bounded:
                if sz > capacity:
                    if state == 1:
                        S[s, _STATE] = (S[s, _STATE] & _INCHAIN) | 2
                        _chain_remove(s, c, VT, S)
                    continue
                while used[c] + sz > capacity and tail[c] != -1:
                    e = tail[c]
                    _unlink(e, c, S, head, tail)
                    used[c] -= S[e, _SIZE]
                    S[e, _STATE] = (S[e, _STATE] & _INCHAIN) | 2
                    _chain_remove(e, c, VT, S)
            S[s, _STATE] = (S[s, _STATE] & _INCHAIN) | 1
            S[s, _TIME] = now
            S[s, _SIZE] = sz
            used[c] += sz
            if bounded:
                _push_front(s, c, S, head, tail)
            if vj >= 0 and not (S[s, _STATE] & _INCHAIN):
                vcode = (c << 32) | v
                if VT[vj, 0] == -1:
                    VT[vj, 0] = vcode
                    VT[vj, 1] = -1
                S[s, _VNEXT] = VT[vj, 1]
                VT[vj, 1] = s
                S[s, _STATE] |= _INCHAIN
        if sc and not served:
            counters[_ORIGIN] += 1
        if sc and first:
            counters[_TRANSFORMS] += 1


class CacheModel:
    """Every cache of one replay (POPs, regional caches, the shield), as growable numpy state.

    ``ttl_ms`` ≤ 0 means no expiry; ``capacity`` ≤ 0 means unbounded (bytes, per cache).
    """

    def __init__(self, *, ttl_ms: int, capacity: int, count_firsts: bool = True) -> None:
        self.ttl_ms = int(ttl_ms)
        self.capacity = int(capacity)
        self.count_firsts = count_firsts  # False: ``transforms`` is counted by the caller (PopCacheModel)
        self.counters = np.zeros(len(COUNTERS), dtype=np.int64)
        self._n_slots = np.zeros(1, dtype=np.int64)
        self._ht = new_table(1 << 12)
        self._vt = new_table(1 << 12)
        self._slots = np.zeros((1 << 11, 8), dtype=np.int64)
        self._head = np.full(16, -1, dtype=np.int64)
        self._tail = np.full(16, -1, dtype=np.int64)
        self._used = np.zeros(16, dtype=np.int64)
        self._vseen = np.zeros(1 << 12, dtype=np.bool_)

    @property
    def slots(self) -> int:
        return int(self._n_slots[0])

    def _grow(self, new_slots: int, n_caches: int, n_variants: int) -> None:
        need = self.slots + new_slots
        if need > self._slots.shape[0]:
            new = np.zeros((max(need, 2 * self._slots.shape[0]), 8), dtype=np.int64)
            new[: self._slots.shape[0]] = self._slots
            self._slots = new
        self._ht = grow_table(self._ht, need)
        self._vt = grow_table(self._vt, need)
        if n_caches > self._head.shape[0]:
            size = max(n_caches, 2 * self._head.shape[0])
            for name, fill in (("_head", -1), ("_tail", -1), ("_used", 0)):
                old = getattr(self, name)
                arr = np.full(size, fill, dtype=np.int64)
                arr[: old.shape[0]] = old
                setattr(self, name, arr)
        if self.count_firsts and n_variants > self._vseen.shape[0]:
            seen = np.zeros(max(n_variants, 2 * self._vseen.shape[0]), dtype=np.bool_)
            seen[: self._vseen.shape[0]] = self._vseen
            self._vseen = seen

    def run(self, t: np.ndarray, c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, key: np.ndarray,
            var: np.ndarray, size: np.ndarray, scored: np.ndarray, *, n_caches: int, n_variants: int) -> None:
        """Replay one time-ordered batch (all arrays the same length; ``c1``/``c2`` are -1 when absent)."""
        n = int(t.shape[0])
        if n == 0:
            return
        tiers = 1 + int(c1[0] >= 0) + int(c2[0] >= 0)
        self._grow(n * tiers, n_caches, n_variants)
        i64 = np.int64
        _run(
            t.astype(i64, copy=False), c0.astype(i64, copy=False), c1.astype(i64, copy=False),
            c2.astype(i64, copy=False), key.astype(i64, copy=False), var.astype(i64, copy=False),
            size.astype(i64, copy=False), scored.astype(np.bool_, copy=False),
            self._ht, self._vt, self._slots, self._n_slots, self._head, self._tail, self._used, self._vseen,
            self.counters, self.ttl_ms, self.capacity, self.count_firsts,
        )

    def result(self) -> dict[str, int]:
        return {name: int(v) for name, v in zip(COUNTERS, self.counters, strict=True)}


@njit(cache=True)
def _firsts(var, scored, vseen, counters):
    """``transforms``: scored first sights of a variant, in time order."""
    for i in range(var.shape[0]):
        v = var[i]
        if v >= 0 and not vseen[v]:
            vseen[v] = True
            if scored[i]:
                counters[_TRANSFORMS] += 1


@njit(cache=True)
def _group(c0, n_groups):
    """(order, offsets): a stable counting sort of the rows by cache id; group g is order[offsets[g]:offsets[g+1]]."""
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(c0.shape[0]):
        offsets[c0[i] + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    fill = offsets[:-1].copy()
    order = np.empty(c0.shape[0], dtype=np.int64)
    for i in range(c0.shape[0]):
        g = c0[i]
        order[fill[g]] = i
        fill[g] += 1
    return order, offsets


class PopCacheModel:
    """POP caches only (no regional tier, no shield): one :class:`CacheModel` per POP, run POP by POP.

    The POP caches are independent, so each batch is grouped by POP (keeping the time order within a POP)
    and every POP's requests run against that POP's own, smaller tables: the working set of one run is one
    POP's state rather than every POP's, which keeps it in the CPU caches. ``transforms`` (first sight of
    a variant *anywhere*) is counted across POPs in time order beforehand. Same counters as
    :class:`CacheModel` with ``c1``/``c2`` absent.
    """

    def __init__(self, *, ttl_ms: int, capacity: int) -> None:
        self.ttl_ms = int(ttl_ms)
        self.capacity = int(capacity)
        self.counters = np.zeros(len(COUNTERS), dtype=np.int64)
        self._vseen = np.zeros(1 << 12, dtype=np.bool_)
        self._pops: list[CacheModel] = []

    def run(self, t: np.ndarray, c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, key: np.ndarray,
            var: np.ndarray, size: np.ndarray, scored: np.ndarray, *, n_caches: int, n_variants: int) -> None:
        """As :meth:`CacheModel.run`; ``c1``/``c2`` must be -1 (no upper tier)."""
        n = int(t.shape[0])
        if n == 0:
            return
        if int(c1.max()) >= 0 or int(c2.max()) >= 0:
            raise ValueError("PopCacheModel models POP caches only")
        i64 = np.int64
        var = var.astype(i64, copy=False)
        scored = scored.astype(np.bool_, copy=False)
        if n_variants > self._vseen.shape[0]:
            seen = np.zeros(max(n_variants, 2 * self._vseen.shape[0]), dtype=np.bool_)
            seen[: self._vseen.shape[0]] = self._vseen
            self._vseen = seen
        _firsts(var, scored, self._vseen, self.counters)
        while len(self._pops) < n_caches:
            self._pops.append(CacheModel(ttl_ms=self.ttl_ms, capacity=self.capacity, count_firsts=False))
        order, offsets = _group(c0.astype(i64, copy=False), n_caches)
        t, key, size = t.astype(i64, copy=False)[order], key.astype(i64, copy=False)[order], \
            size.astype(i64, copy=False)[order]
        var, scored = var[order], scored[order]
        zeros, absent = np.zeros(n, dtype=i64), np.full(n, -1, dtype=i64)
        for g in np.nonzero(np.diff(offsets))[0]:
            lo, hi = offsets[g], offsets[g + 1]
            self._pops[g].run(t[lo:hi], zeros[lo:hi], absent[lo:hi], absent[lo:hi], key[lo:hi], var[lo:hi],
                              size[lo:hi], scored[lo:hi], n_caches=1, n_variants=n_variants)

    def result(self) -> dict[str, int]:
        total = self.counters.copy()
        for pop in self._pops:
            total += pop.counters
        return {name: int(v) for name, v in zip(COUNTERS, total, strict=True)}
