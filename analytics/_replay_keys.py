"""Integer cache-key and variant ids for the replay, computed from a strategy's path and query parts.

A strategy's result is ``key_prefix + key_suffix`` (and ``variant_prefix + variant_suffix``), where the
prefix depends only on the path and the suffix only on the query and Accept header
(:meth:`edgeproof.analytics.strategies.Strategy.path_part` / ``query_part``). So the strategy is applied once per
distinct path and once per distinct (query, accept) — never per distinct URL — and a (prefix id, suffix
id) pair is mapped to a dense key id by a compiled hash table. Canonical-form paths
(``/{key}/{ops}``), which have no such split, go through :meth:`Strategy.apply` per distinct URL.

Real logs carry cache busters and tracking parameters (``&cb=123456``, ``&gclid=…``, ``utm_*``), so nearly
every query string is distinct, and computing a variant (parsing values, negotiating the format) per
distinct query was nearly all of a replay's time. So a query is first reduced to its *token*
(:meth:`Strategy.query_token`: in canonical mode only the known image parameters, in query mode the
normalised key suffix and the friendly parameters), and the variant is computed once per distinct
(token, Accept). ``query_part(q, a)`` is defined as ``query_part_of(query_token(q), a)``, so the ids are
the ones the plain per-query computation gives (``KeyIndex(strategy, reference=True)``; property test in
tests/test_replay_keys.py). Tokens and path parts are computed once per token/path *space* (all
canonical-mode strategies share one) for the list of new queries/paths a batch brings, not once per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from edgeproof.analytics._cachesim import _probe, grow_table, new_table
from edgeproof.analytics.strategies import Strategy
from numba import njit

from edgeproof.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

__all__ = ["KeyIndex"]

_SHIFT = 1 << 31
_SPECIAL = -2
_MEMO_MAX = 1 << 22  # entries (16 bytes each) of the dense (path, query) id memo; above it, hash tables only
_TOKEN_MAX = 1 << 18  # distinct tokens a token space keeps (then it starts again: a new generation)
_PART_MEMO_MAX = 1 << 20  # (token id, Accept) entries of a KeyIndex's memo before it is cleared


@njit(cache=True)
def _pair_ids(a, b, table, count, out, var, with_variant):
    """``out[i]`` = dense id of the pair (a[i], b[i]), -1 when either is negative; new ids counted."""
    for i in range(a.shape[0]):
        if a[i] < 0 or b[i] < 0:
            out[i] = -1
            continue
        code = a[i] * _SHIFT + b[i]
        j = _probe(table, code)
        if table[j, 0] == -1:
            table[j, 0] = code
            table[j, 1] = count[0]
            count[0] += 1
            if var.shape[0] > 0 and var[i] >= 0:
                with_variant[0] += 1
        out[i] = table[j, 1]


@njit(cache=True)
def _ids_by_parts(path_ids, query_ids, p_key, p_var, q_key, q_var, vt, v_count, kt, k_count, k_with_variant,
                  key, var):
    """:meth:`KeyIndex.ids` in one pass when no path needs the whole request (same ids as _pair_ids twice)."""
    for i in range(path_ids.shape[0]):
        p = path_ids[i]
        q = query_ids[i]
        a = p_var[p]
        b = q_var[q]
        v = -1
        if a >= 0 and b >= 0:
            code = a * _SHIFT + b
            j = _probe(vt, code)
            if vt[j, 0] == -1:
                vt[j, 0] = code
                vt[j, 1] = v_count[0]
                v_count[0] += 1
            v = vt[j, 1]
        a = p_key[p]
        b = q_key[q]
        k = -1
        if a >= 0 and b >= 0:
            code = a * _SHIFT + b
            j = _probe(kt, code)
            if kt[j, 0] == -1:
                kt[j, 0] = code
                kt[j, 1] = k_count[0]
                k_count[0] += 1
                if v >= 0:
                    k_with_variant[0] += 1
            k = kt[j, 1]
        key[i] = k
        var[i] = v


@njit(cache=True, inline="always")
def _pair_id(table, count, code):
    j = _probe(table, code)
    if table[j, 0] == -1:
        table[j, 0] = code
        table[j, 1] = count[0]
        count[0] += 1
    return table[j, 1]


@njit(cache=True)
def _ids_memo(path_ids, query_ids, qshift, memo, p_key, p_var, q_key, q_var, vt, v_count, kt, k_count,
              k_with_variant, key, var):
    """:func:`_ids_by_parts` with a dense (path id, query id) memo of the ids: a repeated pair skips both
    hash tables (``memo`` rows are (key id, variant id), -2 = not seen yet; the ids are the same)."""
    for i in range(path_ids.shape[0]):
        slot = (path_ids[i] << qshift) + query_ids[i]
        k = memo[slot, 0]
        if k != -2:
            key[i] = k
            var[i] = memo[slot, 1]
            continue
        p = path_ids[i]
        q = query_ids[i]
        v = -1
        if p_var[p] >= 0 and q_var[q] >= 0:
            v = _pair_id(vt, v_count, p_var[p] * _SHIFT + q_var[q])
        k = -1
        if p_key[p] >= 0 and q_key[q] >= 0:
            before = k_count[0]
            k = _pair_id(kt, k_count, p_key[p] * _SHIFT + q_key[q])
            if k_count[0] != before and v >= 0:
                k_with_variant[0] += 1
        key[i] = k
        var[i] = v
        memo[slot, 0] = key[i]
        memo[slot, 1] = var[i]


class _PairTable:
    def __init__(self) -> None:
        self.table = new_table(1 << 12)
        self.count = np.zeros(1, dtype=np.int64)
        self.with_variant = np.zeros(1, dtype=np.int64)

    def ids(self, a: np.ndarray, b: np.ndarray, var: np.ndarray | None = None) -> np.ndarray:
        self.table = grow_table(self.table, int(self.count[0]) + a.shape[0])
        out = np.empty(a.shape[0], dtype=np.int64)
        _pair_ids(a, b, self.table, self.count, out,
                  var if var is not None else np.zeros(0, dtype=np.int64), self.with_variant)
        return out


class _Ids(dict[str, int]):
    def of(self, text: str | None) -> int:
        if text is None:
            return -1
        found = self.get(text)
        if found is None:
            found = self[text] = len(self)
        return found


class _Space:
    """Per token (or path) space: the work of the last list of new queries (paths), shared by the runs.

    The replay hands every run the same list of queries a batch brought; the first run of a space
    tokenises it, the others find the same list (compared by value: ``==`` on lists of the same objects is
    a pointer walk) and take the result. Token ids are dense per space and stable within a generation;
    the space starts afresh (generation + 1) past ``_TOKEN_MAX`` distinct tokens, and a KeyIndex whose
    memo is of an older generation clears it."""

    def __init__(self, tokenize: Callable[[str], tuple[Any, Hashable]]) -> None:
        self.tokenize = tokenize
        self.ids: dict[Hashable, int] = {}
        self.tokens: list[Hashable] = []
        self.generation = 0
        self._last_items: list[Any] | None = None
        self._last: tuple[int, list[int], list[Any]] = (0, [], [])

    def of(self, items: list[Any], text: Callable[[Any], str]) -> tuple[int, list[int], list[Any]]:
        """(generation, token id per item, the first half of ``tokenize`` per item) for ``text(item)``."""
        if self._last_items is not None and len(self._last_items) == len(items) and self._last_items == items:
            return self._last
        if len(self.tokens) > _TOKEN_MAX:
            self.ids, self.tokens = {}, []
            self.generation += 1
        ids, tokens, tokenize = self.ids, self.tokens, self.tokenize
        seen: dict[str, tuple[Any, int]] = {}  # a query comes once per Accept value
        firsts: list[Any] = []
        tids: list[int] = []
        for item in items:
            key = text(item)
            hit = seen.get(key)
            if hit is None:
                first, token = tokenize(key)
                tid = ids.get(token)
                if tid is None:
                    tid = ids[token] = len(tokens)
                    tokens.append(token)
                hit = seen[key] = (first, tid)
            firsts.append(hit[0])
            tids.append(hit[1])
        self._last_items = list(items)
        self._last = (self.generation, tids, firsts)
        return self._last


_QUERY_SPACES: dict[Hashable, _Space] = {}
_PATH_SPACES: dict[Hashable, _Space] = {}


def _query_space(strategy: Strategy) -> _Space:
    space = _QUERY_SPACES.get(strategy.token_space)
    if space is None:
        space = _QUERY_SPACES[strategy.token_space] = _Space(strategy.query_token)
    return space


def _path_space(strategy: Strategy) -> _Space:
    space = _PATH_SPACES.get(strategy.path_space)
    if space is None:
        space = _PATH_SPACES[strategy.path_space] = _Space(lambda path: (strategy.path_part(path), None))
    return space


def _first(item: tuple[str, str]) -> str:
    return item[0]


def _itself(item: str) -> str:
    return item


def _grow(arr: np.ndarray, n: int) -> np.ndarray:
    if n <= arr.shape[0]:
        return arr
    new = np.zeros(max(n, 2 * arr.shape[0]), dtype=arr.dtype)
    new[: arr.shape[0]] = arr
    return new


class KeyIndex:
    """One strategy's ids: per global path id and per global (query, accept) id, then per pair.

    ``reference=True``: the plain computation (``path_part`` per path, ``query_part`` per (query, Accept),
    no tokens, no sharing), which the default one must equal id for id. A subclass of :class:`Strategy`
    always gets it: it may override ``path_part`` or ``query_part``, and only :class:`Strategy` itself is
    known to compute ``query_part`` through its token and its parts through its spaces."""

    def __init__(self, strategy: Strategy, *, reference: bool = False) -> None:
        self.strategy = strategy
        self.reference = reference or type(strategy) is not Strategy
        self._part_memo: dict[tuple[int, str], Any] = {}
        self._generation = -1
        self.canonical_mode = strategy.config.mode == "canonical"
        self._kp, self._ks, self._vp, self._vs = _Ids(), _Ids(), _Ids(), _Ids()
        self.p_key = np.zeros(1024, dtype=np.int64)
        self.p_var = np.zeros(1024, dtype=np.int64)
        # per global (query, Accept) id: suffix ids (int32: one per distinct query a log has, for every run)
        self.q_key = np.zeros(64, dtype=np.int32)
        self.q_var = np.zeros(64, dtype=np.int32)
        # canonical mode: the variant suffix *is* the key suffix (query_part gives (ops, ops) or (None,
        # None); apply gives variant == cache_key), so one dict and one array serve both
        self._shared_suffix = self.canonical_mode and not self.reference
        if self._shared_suffix:
            self._vs = self._ks
            self.q_var = self.q_key
        self.n_paths = 0
        self.n_queries = 0
        self._special: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._any_special = False  # a path whose key needs the whole request (canonical form)
        self.keys = _PairTable()
        self.variants = _PairTable()
        self._memo = np.full((0, 2), -2, dtype=np.int64)
        self._qshift = 0

    @property
    def unique_keys(self) -> int:
        return int(self.keys.count[0])

    @property
    def unique_variants(self) -> int:
        return int(self.variants.count[0])

    @property
    def keys_with_variant(self) -> int:
        return int(self.keys.with_variant[0])

    def add_paths(self, paths: list[str]) -> None:
        """Parts for newly seen global path ids ``n_paths .. n_paths+len(paths)-1``."""
        n = self.n_paths + len(paths)
        self.p_key, self.p_var = _grow(self.p_key, n), _grow(self.p_var, n)
        parts = [self.strategy.path_part(p) for p in paths] if self.reference \
            else _path_space(self.strategy).of(paths, _itself)[2]
        for i, part in enumerate(parts, self.n_paths):
            if part is None:
                self.p_key[i] = self.p_var[i] = _SPECIAL
                self._any_special = True
            else:
                self.p_key[i] = self._kp.of(part[0])
                self.p_var[i] = self._vp.of(part[1])
        self.n_paths = n

    def add_queries(self, queries: list[tuple[str, str]]) -> None:
        """Parts for newly seen global (query, accept) ids."""
        n0, n = self.n_queries, self.n_queries + len(queries)
        if n >= _SHIFT:
            raise OverflowError("more than 2**31 distinct (query, Accept) pairs")
        self.q_key = _grow(self.q_key, n)
        self.q_var = self.q_key if self._shared_suffix else _grow(self.q_var, n)
        if self.reference:
            for i, (query, accept) in enumerate(queries, n0):
                key_suffix, variant_suffix, _err = self.strategy.query_part(query, accept)
                self.q_key[i] = self._ks.of(key_suffix)
                self.q_var[i] = self._vs.of(variant_suffix)
            self.n_queries = n
            return
        space = _query_space(self.strategy)
        generation, tids, suffixes = space.of(queries, _first)
        memo = self._part_memo
        if generation != self._generation or len(memo) > _PART_MEMO_MAX:
            memo.clear()  # token ids of another generation (the ids in _ks/_vs stay)
            self._generation = generation
        tokens, strategy = space.tokens, self.strategy
        ks_of, vs_of = self._ks.of, self._vs.of
        keys: list[int] = []
        variants: list[int] = []
        if self._shared_suffix:  # canonical mode: the suffix a function of (token, Accept)
            for (_query, accept), tid in zip(queries, tids, strict=True):
                slot = (tid, accept)
                hit = memo.get(slot)
                if hit is None:
                    key_suffix, _variant, _err = strategy.query_part_of((None, tokens[tid]), accept)  # type: ignore[arg-type]
                    hit = memo[slot] = ks_of(key_suffix)
                keys.append(hit)
            self.q_key[n0:n] = keys
        else:  # the key suffix from the query alone; the variant a function of (token, Accept)
            for (_query, accept), tid, suffix in zip(queries, tids, suffixes, strict=True):
                slot = (tid, accept)
                hit = memo.get(slot)
                if hit is None:
                    hit = memo[slot] = vs_of(strategy.variant_suffix_of(tokens[tid], accept))  # type: ignore[arg-type]
                variants.append(hit)
                keys.append(ks_of(suffix))
            self.q_key[n0:n] = keys
            self.q_var[n0:n] = variants
        self.n_queries = n

    def same_keys(self, query_a: np.ndarray, query_b: np.ndarray) -> bool:
        """Whether rows keyed by the (query, Accept) ids ``query_a`` and by ``query_b`` get the same cache
        keys, without assigning any id (read-only). False when unsure (a path needs the whole request)."""
        if self._any_special:
            return False
        return bool(np.array_equal(query_a, query_b) or np.array_equal(self.q_key[query_a], self.q_key[query_b]))

    def ids(self, path_ids: np.ndarray, query_ids: np.ndarray, paths: list[str],
            queries: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """(key id, variant id) per row; key id -1 where the strategy refuses the request."""
        if not self._any_special:
            n = path_ids.shape[0]
            v, k = self.variants, self.keys
            v.table = grow_table(v.table, int(v.count[0]) + n)
            k.table = grow_table(k.table, int(k.count[0]) + n)
            key, var = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
            p64, q64 = path_ids.astype(np.int64, copy=False), query_ids.astype(np.int64, copy=False)
            if self._fit_memo():
                _ids_memo(p64, q64, self._qshift, self._memo, self.p_key, self.p_var, self.q_key, self.q_var,
                          v.table, v.count, k.table, k.count, k.with_variant, key, var)
            else:
                _ids_by_parts(p64, q64, self.p_key, self.p_var, self.q_key, self.q_var, v.table, v.count,
                              k.table, k.count, k.with_variant, key, var)
            return key, var
        kp, vp = self.p_key[path_ids], self.p_var[path_ids]
        ks, vs = self.q_key[query_ids], self.q_var[query_ids]
        special = np.nonzero(kp == _SPECIAL)[0]
        for r in special:
            pair = (int(path_ids[r]), int(query_ids[r]))
            parts = self._special.get(pair)
            if parts is None:
                parts = self._special[pair] = self._apply(paths[pair[0]], *queries[pair[1]])
            kp[r], ks[r], vp[r], vs[r] = parts
        var = self.variants.ids(vp, vs)
        key = self.keys.ids(kp, ks, var)
        return key, var

    def _fit_memo(self) -> bool:
        """Size the (path id << qshift | query id) memo for the ids seen so far; False when too large."""
        qshift = max(self.n_queries - 1, 1).bit_length()
        rows = self._memo.shape[0]
        if (self.n_paths << qshift) > _MEMO_MAX:
            self._memo = np.full((0, 2), -2, dtype=np.int64)
            return False
        if qshift != self._qshift:  # a new layout: start empty (the hash tables keep every id)
            self._qshift, rows = qshift, 0
            self._memo = np.full((0, 2), -2, dtype=np.int64)
        if (self.n_paths << qshift) > rows:
            new = np.full((min(max(self.n_paths, 2 * (rows >> qshift)) << qshift, _MEMO_MAX), 2), -2,
                          dtype=np.int64)
            new[:rows] = self._memo
            self._memo = new
        return True

    def _apply(self, path: str, query: str, accept: str) -> tuple[int, int, int, int]:
        try:
            res = self.strategy.apply("GET", path, query, {"accept": accept})
        except BadRequest:
            return -1, -1, -1, -1
        if self.canonical_mode:
            head, _, tail = res.cache_key.rpartition("/")
            kp, ks = head, "/" + tail
        else:
            cut = res.cache_key.find("?")
            kp, ks = (res.cache_key, "") if cut < 0 else (res.cache_key[:cut], res.cache_key[cut:])
        vp = vs = None
        if res.variant is not None:
            head, _, tail = res.variant.rpartition("/")
            vp, vs = head, "/" + tail
        return self._kp.of(kp), self._ks.of(ks), self._vp.of(vp), self._vs.of(vs)
