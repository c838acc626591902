"""The replay's cache model: per-cache LRU with TTL and byte capacity over integer request arrays.

Compiled with numba; state lives in numpy arrays held by :class:`CacheModel`, grown between batches, so
memory is bounded by the number of distinct (cache, key) pairs, not by the number of requests.

Per request (time order): the POP cache is looked up; a hit refreshes LRU recency. A miss is
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

__all__ = ["COUNTERS", "CacheModel"]

#: counter names, in the order of the counters array
COUNTERS = (
    "hits", "misses", "cold", "expired", "evicted", "fragmented", "transforms", "origin_requests",
    "regional_hits", "shield_hits", "requests",
)
_HITS, _MISSES, _COLD, _EXPIRED, _EVICTED, _FRAG, _TRANSFORMS, _ORIGIN, _REGIONAL, _SHIELD, _REQ = range(11)
_MULT = 0x5851F42D4C957F2D  # odd, < 2**63: numba multiplies int64 with wrap-around


@njit(cache=True, inline="always")
def _probe(table: np.ndarray, code: int) -> int:
    """Index of ``code`` in the open-addressing table, or of the empty cell where it would go."""
    mask = table.shape[0] - 1
    i = ((code * _MULT) >> 29) & mask
    while True:
        k = table[i]
        if k == code or k == -1:
            return i
        i = (i + 1) & mask


@njit(cache=True)
def _rehash(old_keys: np.ndarray, old_vals: np.ndarray, new_keys: np.ndarray, new_vals: np.ndarray) -> None:
    for i in range(old_keys.shape[0]):
        if old_keys[i] != -1:
            j = _probe(new_keys, old_keys[i])
            new_keys[j] = old_keys[i]
            new_vals[j] = old_vals[i]


@njit(cache=True, inline="always")
def _unlink(s: int, c: int, prev: np.ndarray, nxt: np.ndarray, head: np.ndarray, tail: np.ndarray) -> None:
    p = prev[s]
    n = nxt[s]
    if p != -1:
        nxt[p] = n
    else:
        head[c] = n
    if n != -1:
        prev[n] = p
    else:
        tail[c] = p
    prev[s] = -1
    nxt[s] = -1


@njit(cache=True, inline="always")
def _push_front(s: int, c: int, prev: np.ndarray, nxt: np.ndarray, head: np.ndarray, tail: np.ndarray) -> None:
    h = head[c]
    prev[s] = -1
    nxt[s] = h
    if h != -1:
        prev[h] = s
    else:
        tail[c] = s
    head[c] = s


@njit(cache=True)
def _run(
    t, c0, c1, c2, key, var, size, scored,          # requests
    ht_k, ht_v, vt_k, vt_v,                           # (cache,key)->slot, (pop,variant)->chain head
    s_key, s_var, s_cache, s_time, s_size, s_state, s_prev, s_next, s_vnext, s_inchain, n_slots,
    head, tail, used, vseen, counters, ttl, capacity,
):
    for i in range(t.shape[0]):
        now = t[i]
        k = key[i]
        v = var[i]
        sc = scored[i]
        first = False
        if v >= 0 and not vseen[v]:
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
            j = _probe(ht_k, code)
            if ht_k[j] == -1:
                ht_k[j] = code
                s = n_slots[0]
                n_slots[0] += 1
                ht_v[j] = s
                s_key[s] = k
                s_var[s] = v
                s_cache[s] = c
                s_state[s] = 0
                s_prev[s] = -1
                s_next[s] = -1
                s_vnext[s] = -1
                s_inchain[s] = False
            else:
                s = ht_v[j]
            state = s_state[s]
            fresh = ttl <= 0 or now - s_time[s] < ttl
            if state == 1 and fresh:
                _unlink(s, c, s_prev, s_next, head, tail)
                _push_front(s, c, s_prev, s_next, head, tail)
                if sc:
                    if tier == 0:
                        counters[_HITS] += 1
                    elif tier == 1:
                        counters[_REGIONAL] += 1
                    else:
                        counters[_SHIELD] += 1
                served = True
                break
            if tier == 0 and sc:
                counters[_MISSES] += 1
                cls = _COLD if state == 0 else (_EXPIRED if state == 1 else _EVICTED)
                if v >= 0:
                    vj = _probe(vt_k, (c << 32) | v)
                    if vt_k[vj] != -1:
                        o = vt_v[vj]
                        while o != -1:
                            if s_key[o] != k and s_state[o] == 1 and (ttl <= 0 or now - s_time[o] < ttl):
                                cls = _FRAG
                                break
                            o = s_vnext[o]
                counters[cls] += 1
            # fill (or refresh) this cache
            sz = size[i]
            if state == 1:
                used[c] -= s_size[s]
                _unlink(s, c, s_prev, s_next, head, tail)
            if capacity > 0:
                if sz > capacity:
                    if state == 1:
                        s_state[s] = 2
                        _chain_remove(s, c, vt_k, vt_v, s_var, s_vnext, s_inchain)
                    continue
                while used[c] + sz > capacity and tail[c] != -1:
                    e = tail[c]
                    _unlink(e, c, s_prev, s_next, head, tail)
                    used[c] -= s_size[e]
                    s_state[e] = 2
                    _chain_remove(e, c, vt_k, vt_v, s_var, s_vnext, s_inchain)
            s_state[s] = 1
            s_time[s] = now
            s_size[s] = sz
            used[c] += sz
            _push_front(s, c, s_prev, s_next, head, tail)
            if tier == 0 and v >= 0 and not s_inchain[s]:
                vj = _probe(vt_k, (c << 32) | v)
                if vt_k[vj] == -1:
                    vt_k[vj] = (c << 32) | v
                    vt_v[vj] = -1
                s_vnext[s] = vt_v[vj]
                vt_v[vj] = s
                s_inchain[s] = True
        if sc and not served:
            counters[_ORIGIN] += 1
        if sc and first:
            counters[_TRANSFORMS] += 1


@njit(cache=True)
def _chain_remove(s, c, vt_k, vt_v, s_var, s_vnext, s_inchain):
    if not s_inchain[s]:
        return
    vj = _probe(vt_k, (c << 32) | s_var[s])
    o = vt_v[vj]
    if o == s:
        vt_v[vj] = s_vnext[s]
    else:
        while o != -1:
            if s_vnext[o] == s:
                s_vnext[o] = s_vnext[s]
                break
            o = s_vnext[o]
    s_vnext[s] = -1
    s_inchain[s] = False


class CacheModel:
    """Every cache of one replay (POPs, regional caches, the shield), as growable numpy state.

    ``ttl_ms`` ≤ 0 means no expiry; ``capacity`` ≤ 0 means unbounded (bytes, per cache).
    """

    def __init__(self, *, ttl_ms: int, capacity: int) -> None:
        self.ttl_ms = int(ttl_ms)
        self.capacity = int(capacity)
        self.counters = np.zeros(len(COUNTERS), dtype=np.int64)
        self._n_slots = np.zeros(1, dtype=np.int64)
        self._ht_k = np.full(1 << 12, -1, dtype=np.int64)
        self._ht_v = np.zeros(1 << 12, dtype=np.int64)
        self._vt_k = np.full(1 << 12, -1, dtype=np.int64)
        self._vt_v = np.zeros(1 << 12, dtype=np.int64)
        n = 1 << 11
        self._s_key = np.zeros(n, dtype=np.int64)
        self._s_var = np.zeros(n, dtype=np.int64)
        self._s_cache = np.zeros(n, dtype=np.int64)
        self._s_time = np.zeros(n, dtype=np.int64)
        self._s_size = np.zeros(n, dtype=np.int64)
        self._s_state = np.zeros(n, dtype=np.int8)
        self._s_prev = np.zeros(n, dtype=np.int64)
        self._s_next = np.zeros(n, dtype=np.int64)
        self._s_vnext = np.zeros(n, dtype=np.int64)
        self._s_inchain = np.zeros(n, dtype=np.bool_)
        self._head = np.full(16, -1, dtype=np.int64)
        self._tail = np.full(16, -1, dtype=np.int64)
        self._used = np.zeros(16, dtype=np.int64)
        self._vseen = np.zeros(1 << 12, dtype=np.bool_)

    @property
    def slots(self) -> int:
        return int(self._n_slots[0])

    def _grow(self, new_slots: int, n_caches: int, n_variants: int) -> None:
        need = self.slots + new_slots
        if need > self._s_key.shape[0]:
            size = max(need, 2 * self._s_key.shape[0])
            for name in ("_s_key", "_s_var", "_s_cache", "_s_time", "_s_size", "_s_state", "_s_prev",
                         "_s_next", "_s_vnext", "_s_inchain"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[: old.shape[0]] = old
                setattr(self, name, new)
        for kname, vname in (("_ht_k", "_ht_v"), ("_vt_k", "_vt_v")):
            keys = getattr(self, kname)
            if 2 * need > keys.shape[0]:
                size = keys.shape[0]
                while 2 * need > size:
                    size *= 2
                new_k = np.full(size, -1, dtype=np.int64)
                new_v = np.zeros(size, dtype=np.int64)
                _rehash(keys, getattr(self, vname), new_k, new_v)
                setattr(self, kname, new_k)
                setattr(self, vname, new_v)
        if n_caches > self._head.shape[0]:
            size = max(n_caches, 2 * self._head.shape[0])
            for name, fill in (("_head", -1), ("_tail", -1), ("_used", 0)):
                old = getattr(self, name)
                new = np.full(size, fill, dtype=np.int64)
                new[: old.shape[0]] = old
                setattr(self, name, new)
        if n_variants > self._vseen.shape[0]:
            new = np.zeros(max(n_variants, 2 * self._vseen.shape[0]), dtype=np.bool_)
            new[: self._vseen.shape[0]] = self._vseen
            self._vseen = new

    def run(self, t: np.ndarray, c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, key: np.ndarray,
            var: np.ndarray, size: np.ndarray, scored: np.ndarray, *, n_caches: int, n_variants: int) -> None:
        """Replay one time-ordered batch (all arrays the same length; ``c1``/``c2`` are -1 when absent)."""
        n = int(t.shape[0])
        if n == 0:
            return
        tiers = 1 + int((c1 >= 0).any()) + int((c2 >= 0).any())
        self._grow(n * tiers, n_caches, n_variants)
        _run(
            t.astype(np.int64, copy=False), c0.astype(np.int64, copy=False), c1.astype(np.int64, copy=False),
            c2.astype(np.int64, copy=False), key.astype(np.int64, copy=False), var.astype(np.int64, copy=False),
            size.astype(np.int64, copy=False), scored.astype(np.bool_, copy=False),
            self._ht_k, self._ht_v, self._vt_k, self._vt_v,
            self._s_key, self._s_var, self._s_cache, self._s_time, self._s_size, self._s_state, self._s_prev,
            self._s_next, self._s_vnext, self._s_inchain, self._n_slots,
            self._head, self._tail, self._used, self._vseen, self.counters, self.ttl_ms, self.capacity,
        )

    def result(self) -> dict[str, int]:
        return {name: int(v) for name, v in zip(COUNTERS, self.counters, strict=True)}
