"""The replay's cache model, compiled: the rules of :mod:`edgeproof.analytics._cachesim_ref` over integer arrays.

:mod:`edgeproof.analytics._cachesim_ref` states the rules (CloudFront's: POP → regional edge cache → Origin
Shield → origin, TTL with revalidation, byte-bounded LRU, result types, miss anatomy) in plain Python;
this module must give exactly its counters on every trace (``tests/test_cachesim_differential.py``,
hypothesis). Change a rule there first, then here.

Compiled with numba; state lives in numpy arrays held by :class:`CacheModel`, grown between batches, so
memory is bounded by the number of distinct (cache, key) pairs, not by the number of requests. A hit
refreshes LRU recency (a doubly linked list per cache; not kept at all when there is no capacity, since
nothing is ever evicted). The fragmented check walks a ring of the POP's keys of the same variant (or,
in a dense single cache, reads a count of them).

:class:`PopCacheModel` is the same model for POP caches alone (no upper tier): one single-cache
:class:`CacheModel` per POP, each batch grouped by POP, so one POP's state is the working set at a time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["COUNTERS", "CacheModel", "PopCacheModel"]

#: counter names, in the order of the counters array
COUNTERS = (
    "requests", "hits", "refresh_hits", "misses", "regional_hits", "shield_hits",
    "cold", "expired", "evicted", "fragmented", "origin_requests", "transforms",
)
_REQ, _HITS, _REFRESH, _MISSES, _REGIONAL, _SHIELD, _COLD, _EXPIRED, _EVICTED, _FRAG, _ORIGIN, _TRANSFORMS = range(12)
_MULT = 0x5851F42D4C957F2D  # odd, < 2**63: numba multiplies int64 with wrap-around
# A slot (one per (cache, key)) is a 32-byte row: two int64 fields (``S``, a view of the row) then four
# int32 fields (``L``, another view of the same row). Two rows share a cache line.
_TIME, _SIZEF = 0, 1  # S: fill time (ms); size in bytes | state << _FLAG_SHIFT
_PREV, _NEXT, _VAR, _VNEXT = 4, 5, 6, 7  # L: LRU list neighbours, variant id, next key in the variant ring
_FLAG_SHIFT = 56
_SIZE_MASK = (1 << _FLAG_SHIFT) - 1
# state: 0 never cached, 1 cached, 2 evicted
_CACHED_FLAGS = 1 << _FLAG_SHIFT
_EVICTED_FLAGS = 2 << _FLAG_SHIFT
# At a POP, the keys of one variant form a ring through _VNEXT, joined at a key's first sight there and
# never left (the fragmented check skips keys that are not cached and fresh); VT maps (POP, variant) to one
# member, so only a key's first sight looks it up.
_DENSE = 8  # a single cache indexes slots by key id once it has seen >= 1/_DENSE of the key ids


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
def _unlink(s: int, c: int, L: np.ndarray, head: np.ndarray, tail: np.ndarray) -> None:
    p = L[s, _PREV]
    n = L[s, _NEXT]
    if p != -1:
        L[p, _NEXT] = n
    else:
        head[c] = n
    if n != -1:
        L[n, _PREV] = p
    else:
        tail[c] = p
    L[s, _PREV] = -1
    L[s, _NEXT] = -1


@njit(cache=True, inline="always")
def _push_front(s: int, c: int, L: np.ndarray, head: np.ndarray, tail: np.ndarray) -> None:
    h = head[c]
    L[s, _PREV] = -1
    L[s, _NEXT] = h
    if h != -1:
        L[h, _PREV] = s
    else:
        tail[c] = s
    head[c] = s


@njit(cache=True, inline="always")
def _fill(s, c, now, sz, S, L, head, tail, used, VC, counted, bounded, capacity):
    """Store (or refresh) slot ``s`` of cache ``c`` with (now, sz), evicting least recently used slots."""
    flags = S[s, _SIZEF] >> _FLAG_SHIFT
    if flags == 1:
        used[c] -= S[s, _SIZEF] & _SIZE_MASK
        if bounded:
            _unlink(s, c, L, head, tail)
    if bounded:
        if sz > capacity:  # larger than the whole cache: not stored; a copy it replaces is gone
            if flags == 1:
                S[s, _SIZEF] = _EVICTED_FLAGS
                if counted and L[s, _VAR] >= 0:
                    VC[L[s, _VAR], 0] -= 1
            return
        while used[c] + sz > capacity and tail[c] != -1:
            e = tail[c]
            _unlink(e, c, L, head, tail)
            used[c] -= S[e, _SIZEF] & _SIZE_MASK
            S[e, _SIZEF] = _EVICTED_FLAGS
            if counted and L[e, _VAR] >= 0:
                VC[L[e, _VAR], 0] -= 1
    if counted and flags != 1 and L[s, _VAR] >= 0:
        VC[L[s, _VAR], 0] += 1
    S[s, _TIME] = now
    S[s, _SIZEF] = sz | _CACHED_FLAGS
    used[c] += sz
    if bounded:
        _push_front(s, c, L, head, tail)


@njit(cache=True, inline="always")
def _miss_class(s, c, v, flags, now, ttl, revalidate, L, S, VC, VT, counted):
    """The class of a miss at POP cache ``c`` (slot ``s``, state ``flags``), before the request changes it."""
    cls = _COLD if flags == 0 else (_EXPIRED if flags == 1 else _EVICTED)
    if v < 0:
        return cls
    start = s
    if L[s, _VAR] != v:  # the key was first seen as another variant: find v's ring
        start = -1
        if counted:
            start = VC[v, 1]
        else:
            vj = _probe(VT, (c << 32) | v)
            if VT[vj, 0] != -1:
                start = VT[vj, 1]
    others = 1
    if counted:
        others = VC[v, 0] - (1 if flags == 1 and L[s, _VAR] == v else 0)
    if others > 0 and start != -1:
        if counted and (ttl <= 0 or revalidate):  # every cached key is usable: the count decides
            return _FRAG
        o = start
        while True:
            if o != s and (S[o, _SIZEF] >> _FLAG_SHIFT) == 1 and \
                    (revalidate or ttl <= 0 or now - S[o, _TIME] < ttl):
                return _FRAG
            o = L[o, _VNEXT]
            if o == start:
                break
    return cls


@njit(cache=True)
def _run(t, c0, c1, c2, key, var, size, scored, HT, D, VC, VT, S, L, n_slots, head, tail, used, vseen,
         counters, ttl, capacity, count_firsts, revalidate, start, limit, VN, vlimit):
    """Requests ``start..`` in order; returns the index of the first request not replayed: the end, or
    the request before which the slots could pass ``limit`` (a request makes at most 3), so that the
    caller grows the tables (to what is used, not to the worst case of the batch) and resumes there."""
    bounded = capacity > 0  # no capacity: no eviction, so no LRU order to keep
    direct = D.shape[0] > 0  # one cache (c == 0) whose slots are found by key id in D, not by hashing
    counted = VC.shape[0] > 0  # one cache: VC[v] = (its cached keys in variant v's ring, a ring member)
    passed_s = np.empty(3, dtype=np.int64)  # the slots (and caches) a request passed without a fresh copy
    passed_c = np.empty(3, dtype=np.int64)
    for i in range(start, t.shape[0]):
        if n_slots[0] + 3 > limit or VN[0] + 1 > vlimit:
            return i
        now = t[i]
        k = key[i]
        v = var[i]
        sc = scored[i]
        first = False
        if count_firsts and v >= 0 and not vseen[v]:
            vseen[v] = True
            first = True
        served = -1  # the tier whose fresh copy served the request; -1: the origin
        revalidated = False
        pop_cls = _COLD
        n_passed = 0
        for tier in range(3):
            c = c0[i] if tier == 0 else (c1[i] if tier == 1 else c2[i])
            if c < 0:
                continue
            s = -1
            j = 0
            if direct:
                s = D[k]
            else:
                j = _probe(HT, (c << 32) | k)
                if HT[j, 0] != -1:
                    s = HT[j, 1]
            if s == -1:  # first sight of the key at this cache
                s = n_slots[0]
                n_slots[0] += 1
                if direct:
                    D[k] = s
                else:
                    HT[j, 0] = (c << 32) | k
                    HT[j, 1] = s
                S[s, _TIME] = 0
                S[s, _SIZEF] = 0
                L[s, _PREV] = -1
                L[s, _NEXT] = -1
                L[s, _VAR] = v
                L[s, _VNEXT] = -1
                if tier == 0 and v >= 0:  # join the ring of this POP's keys of the same variant
                    if counted:
                        m = VC[v, 1]
                        if m == -1:
                            VC[v, 1] = s
                    else:
                        vj = _probe(VT, (c << 32) | v)
                        m = VT[vj, 1] if VT[vj, 0] != -1 else -1
                        if m == -1:
                            VT[vj, 0] = (c << 32) | v
                            VT[vj, 1] = s
                            VN[0] += 1
                    if m == -1:
                        L[s, _VNEXT] = s
                    else:
                        L[s, _VNEXT] = L[m, _VNEXT]
                        L[m, _VNEXT] = s
            flags = S[s, _SIZEF] >> _FLAG_SHIFT
            if flags == 1 and (ttl <= 0 or now - S[s, _TIME] < ttl):
                if bounded and head[c] != s:
                    _unlink(s, c, L, head, tail)
                    _push_front(s, c, L, head, tail)
                served = tier
                break
            if flags == 1 and revalidate:
                revalidated = True
            elif tier == 0 and sc:
                pop_cls = _miss_class(s, c, v, flags, now, ttl, revalidate, L, S, VC, VT, counted)
            passed_s[n_passed] = s
            passed_c[n_passed] = c
            n_passed += 1
        sz = size[i]
        for j in range(n_passed):
            _fill(passed_s[j], passed_c[j], now, sz, S, L, head, tail, used, VC, counted, bounded, capacity)
        if not sc:
            continue
        row = counters[c0[i]]
        row[_REQ] += 1
        if first:
            row[_TRANSFORMS] += 1
        if served < 0:
            row[_ORIGIN] += 1
        if revalidated:
            row[_REFRESH] += 1
        elif served == 0 or served == 1:
            row[_HITS] += 1
            if served == 1:
                row[_REGIONAL] += 1
        else:
            row[_MISSES] += 1
            if served == 2:
                row[_SHIELD] += 1
            row[pop_cls] += 1
    return t.shape[0]


class CacheModel:
    """Every cache of one replay (POPs, regional caches, the shield), as growable numpy state.

    ``ttl_ms`` ≤ 0 means no expiry; ``capacity`` ≤ 0 means unbounded (bytes, per cache). ``single``: the
    model holds one cache (every ``c0`` is 0, no upper tier), so while that cache has seen at least one
    key in :data:`_DENSE` of all key ids its slots are found through an array indexed by key id (4 bytes
    per key id, smaller and faster than the hash table at that density) instead of by hashing.
    """

    def __init__(self, *, ttl_ms: int, capacity: int, revalidate: bool = True, count_firsts: bool = True,
                 single: bool = False) -> None:
        self.ttl_ms = int(ttl_ms)
        self.capacity = int(capacity)
        self.revalidate = revalidate
        self._n_keys = 0  # a bound on every key id seen so far (the dense index must cover them all)
        self._vn = np.zeros(1, dtype=np.int64)  # entries in the (POP, variant) ring table _vt
        self.count_firsts = count_firsts  # False: ``transforms`` is counted by the caller (PopCacheModel)
        self.single = single
        self.counters = np.zeros((16, len(COUNTERS)), dtype=np.int64)  # a row per POP cache id (``c0``)
        self._n_slots = np.zeros(1, dtype=np.int64)
        self._ht = new_table(1 << 12)
        self._direct = np.zeros(0, dtype=np.int32)  # key id -> slot (-1: none) while dense; else empty
        # with _direct: per variant, (cached keys in its ring, a ring member or -1), in place of _vt
        self._vcount = np.zeros((0, 2), dtype=np.int32)
        self._vt = new_table(1 << 12)
        self._slots = np.zeros((1 << 11, 8), dtype=np.int32)
        self._head = np.full(16, -1, dtype=np.int64)
        self._tail = np.full(16, -1, dtype=np.int64)
        self._used = np.zeros(16, dtype=np.int64)
        self._vseen = np.zeros(1 << 12, dtype=np.bool_)

    @property
    def slots(self) -> int:
        return int(self._n_slots[0])

    def _grow(self, new_slots: int, n_caches: int, n_variants: int, n_keys: int, new_rings: int = 0) -> None:
        need = self.slots + new_slots
        if need > self._slots.shape[0]:
            new = np.zeros((max(need, 2 * self._slots.shape[0]), 8), dtype=np.int32)
            new[: self._slots.shape[0]] = self._slots
            self._slots = new
        self._index(need, n_keys, n_variants)
        if self._direct.shape[0]:
            if n_variants > self._vcount.shape[0]:
                count = np.zeros((max(n_variants, 2 * self._vcount.shape[0]), 2), dtype=np.int32)
                count[:, 1] = -1
                count[: self._vcount.shape[0]] = self._vcount
                self._vcount = count
        else:  # the (POP, variant) ring table: sized by its own entries (far fewer than the slots)
            self._vt = grow_table(self._vt, int(self._vn[0]) + (new_rings or new_slots))
        if n_caches > self.counters.shape[0]:
            rows = np.zeros((max(n_caches, 2 * self.counters.shape[0]), len(COUNTERS)), dtype=np.int64)
            rows[: self.counters.shape[0]] = self.counters
            self.counters = rows
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

    def _index(self, need: int, n_keys: int, n_variants: int) -> None:
        """Size the key -> slot index for ``need`` slots and key ids below ``n_keys``; switch its kind."""
        self._n_keys = n_keys = max(n_keys, self._n_keys)
        dense = self.single and n_keys <= _DENSE * max(self.slots, 1)
        if self._direct.shape[0]:
            if not dense and n_keys > 2 * _DENSE * max(self.slots, 1):  # sparse again: back to hashing
                keys = np.nonzero(self._direct >= 0)[0]
                pairs = np.stack([keys, self._direct[keys].astype(np.int64)], axis=1)
                self._ht = grow_table(new_table(1 << 12), need)
                _rehash(pairs, self._ht)
                rings = np.nonzero(self._vcount[:, 1] >= 0)[0]
                self._vn[0] = rings.size
                self._vt = grow_table(new_table(1 << 12), rings.size + (need - self.slots))
                _rehash(np.stack([rings, self._vcount[rings, 1].astype(np.int64)], axis=1), self._vt)
                self._direct, self._vcount = np.zeros(0, dtype=np.int32), np.zeros((0, 2), dtype=np.int32)
                return
            if n_keys > self._direct.shape[0]:
                new = np.full(max(n_keys, 2 * self._direct.shape[0]), -1, dtype=np.int32)
                new[: self._direct.shape[0]] = self._direct
                self._direct = new
            return
        if dense:
            direct = np.full(max(n_keys, 1 << 12), -1, dtype=np.int32)
            used = self._ht[:, 0] != -1
            direct[self._ht[used, 0]] = self._ht[used, 1]
            rows = self._slots[: self.slots]
            cached = ((rows.view(np.int64)[:, _SIZEF] >> _FLAG_SHIFT) == 1) & (rows[:, _VAR] >= 0)
            count = np.zeros((max(n_variants, 1 << 4), 2), dtype=np.int32)
            count[:, 1] = -1
            np.add.at(count[:, 0], rows[cached, _VAR], 1)
            rings = self._vt[:, 0] != -1
            count[self._vt[rings, 0], 1] = self._vt[rings, 1]
            self._direct, self._vcount, self._ht, self._vt = direct, count, new_table(1 << 4), new_table(1 << 4)
            self._vn[0] = 0
            return
        self._ht = grow_table(self._ht, need)

    def run(self, t: np.ndarray, c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, key: np.ndarray,
            var: np.ndarray, size: np.ndarray, scored: np.ndarray, *, n_caches: int, n_variants: int,
            n_keys: int = 0) -> None:
        """Replay one time-ordered batch (all arrays the same length; ``c1``/``c2`` are -1 when absent).

        ``n_keys``: a bound on the key ids (computed when 0)."""
        n = int(t.shape[0])
        if n == 0:
            return
        i64 = np.int64
        key = key.astype(i64, copy=False)
        tiers = 1 + int(c1[0] >= 0) + int(c2[0] >= 0)
        n_keys = n_keys or int(key.max()) + 1
        size = size.astype(i64, copy=False)
        if int(size.min()) < 0 or int(size.max()) > _SIZE_MASK:
            size = np.clip(size, 0, _SIZE_MASK)
        arrays = (t.astype(i64, copy=False), c0.astype(i64, copy=False), c1.astype(i64, copy=False),
                  c2.astype(i64, copy=False), key, var.astype(i64, copy=False), size,
                  scored.astype(np.bool_, copy=False))
        pos = 0
        while pos < n:
            # room for what is used plus a margin (not the batch's worst case: every row new at every tier)
            self._grow(max(3, min((n - pos) * tiers, max(1 << 14, self.slots))), n_caches, n_variants, n_keys,
                       new_rings=max(1, min(n - pos, max(1 << 14, int(self._vn[0])))))
            pos = _run(
                *arrays, self._ht, self._direct, self._vcount, self._vt, self._slots.view(np.int64),
                self._slots, self._n_slots, self._head, self._tail, self._used, self._vseen, self.counters,
                self.ttl_ms, self.capacity, self.count_firsts, self.revalidate, pos, self._slot_limit(),
                self._vn, self._vt.shape[0] // 2 if not self._vcount.shape[0] else 1 << 62,
            )

    def _slot_limit(self) -> int:
        """The most slots the tables hold at a load of at most 1/2 (the slot rows, the key and ring tables)."""
        limit = self._slots.shape[0]
        if not self._direct.shape[0]:
            limit = min(limit, self._ht.shape[0] // 2)
        return limit

    def result(self) -> dict[str, int]:
        """Every counter, summed over the POPs."""
        return _named(self.counters.sum(axis=0))

    def result_by_pop(self) -> dict[int, dict[str, int]]:
        """POP cache id (``c0``) → its counters, for the POPs that had a scored request."""
        return {c: _named(row) for c, row in enumerate(self.counters) if row[_REQ]}


def _named(row: np.ndarray) -> dict[str, int]:
    return {name: int(v) for name, v in zip(COUNTERS, row, strict=True)}


@njit(cache=True)
def _firsts(var, scored, c0, vseen, counters):
    """``transforms``: scored first sights of a variant, in time order (counted at the request's POP)."""
    for i in range(var.shape[0]):
        v = var[i]
        if v >= 0 and not vseen[v]:
            vseen[v] = True
            if scored[i]:
                counters[c0[i], _TRANSFORMS] += 1


@njit(cache=True)
def _group(c0, n_groups, t, key, var, size, scored):
    """The rows grouped by cache id, time order kept within a group (a stable counting sort): the permuted
    (t, key, var, size, scored) and the offsets; group g is rows offsets[g]:offsets[g+1]."""
    n = c0.shape[0]
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(n):
        offsets[c0[i] + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    fill = offsets[:-1].copy()
    t2, key2, var2, size2 = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    scored2 = np.empty(n, np.bool_)
    for i in range(n):
        g = c0[i]
        j = fill[g]
        fill[g] = j + 1
        t2[j] = t[i]
        key2[j] = key[i]
        var2[j] = var[i]
        size2[j] = size[i]
        scored2[j] = scored[i]
    return t2, key2, var2, size2, scored2, offsets


class PopCacheModel:
    """POP caches only (no regional tier, no shield): one :class:`CacheModel` per POP, run POP by POP.

    The POP caches are independent, so each batch is grouped by POP (keeping the time order within a POP)
    and every POP's requests run against that POP's own, smaller tables: the working set of one run is one
    POP's state rather than every POP's, which keeps it in the CPU caches. ``transforms`` (first sight of
    a variant *anywhere*) is counted across POPs in time order beforehand. Same counters as
    :class:`CacheModel` with ``c1``/``c2`` absent.
    """

    def __init__(self, *, ttl_ms: int, capacity: int, revalidate: bool = True) -> None:
        self.ttl_ms = int(ttl_ms)
        self.capacity = int(capacity)
        self.revalidate = revalidate
        self.counters = np.zeros((16, len(COUNTERS)), dtype=np.int64)  # transforms, by POP
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
        if n_caches > self.counters.shape[0]:
            rows = np.zeros((max(n_caches, 2 * self.counters.shape[0]), len(COUNTERS)), dtype=np.int64)
            rows[: self.counters.shape[0]] = self.counters
            self.counters = rows
        c0 = c0.astype(i64, copy=False)
        _firsts(var, scored, c0, self._vseen, self.counters)
        while len(self._pops) < n_caches:
            self._pops.append(CacheModel(ttl_ms=self.ttl_ms, capacity=self.capacity, revalidate=self.revalidate,
                                         count_firsts=False, single=True))
        t, key, var, size, scored, offsets = _group(c0.astype(i64, copy=False), n_caches, t.astype(i64, copy=False),
                                                    key.astype(i64, copy=False), var, size.astype(i64, copy=False),
                                                    scored)
        zeros, absent = np.zeros(n, dtype=i64), np.full(n, -1, dtype=i64)
        n_keys = int(key.max()) + 1
        for g in np.nonzero(np.diff(offsets))[0]:
            lo, hi = offsets[g], offsets[g + 1]
            self._pops[g].run(t[lo:hi], zeros[lo:hi], absent[lo:hi], absent[lo:hi], key[lo:hi], var[lo:hi],
                              size[lo:hi], scored[lo:hi], n_caches=1, n_variants=n_variants, n_keys=n_keys)

    def _rows(self) -> np.ndarray:
        rows = self.counters.copy()
        for g, pop in enumerate(self._pops):
            rows[g] += pop.counters[0]
        return rows

    def result(self) -> dict[str, int]:
        """Every counter, summed over the POPs."""
        return _named(self._rows().sum(axis=0))

    def result_by_pop(self) -> dict[int, dict[str, int]]:
        """POP cache id → its counters, for the POPs that had a scored request."""
        return {c: _named(row) for c, row in enumerate(self._rows()) if row[_REQ]}
