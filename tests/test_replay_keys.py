"""The replay's fast keying gives exactly the ids of the plain one: a differential property test.

Why: :class:`edgeproof.analytics._replay_keys.KeyIndex` reduces each query string to a *token* (the known image
parameters in canonical mode; the normalised key suffix and friendly parameters in query mode) and
computes a variant once per distinct (token, Accept), sharing tokens and path parts between runs. That is
what makes a replay of real logs (a cache buster or a tracking parameter in nearly every query string)
fast, and it is only worth having if no prediction moves. So the reference here is the plainest one
there is: :meth:`Strategy.apply` on every row, and dense ids given to the cache-key and variant strings in
the order rows first show them. The fast index is driven the way ``edgeproof.analytics.replay`` drives it (global
path and (query, Accept) ids handed to every run as a batch brings them; two runs per strategy, one per
Accept inference, with different Accept values), on generated requests: parameter order, case, every
alias, repeated names, empty values and segments, percent-encoded names and values, whitespace, tracking
parameters and cache busters, canonical-form and refused paths, Accept headers with q=0, for every
built-in strategy and two user TOML strategies, with the rows split into batches anywhere.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from edgeproof.analytics import _replay_keys
from edgeproof.analytics._replay_keys import KeyIndex
from edgeproof.analytics.replay import ACCEPT_BY_CLASS
from edgeproof.analytics.strategies import Strategy, get_strategy, list_strategies
from edgeproof.analytics.strategies._query import pct_decode, split_query
from edgeproof.analytics.strategies._strategy import canonical_params, friendly_params
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgeproof.canonical import DEFAULT_PRESETS, PARAM_ALIASES, variant_from_params
from edgeproof.errors import BadRequest

USER_QUERY = """\
# a user's query-mode strategy with every building block on
name = "user_query"
mode = "query"
path_case = "lower"

[params]
drop = ["tracking", "x*"]
lowercase_names = true
aliases = true
trim = true
lowercase_values = true
drop_defaults = true
dedupe = true
sort = true
"""
USER_CANONICAL = """\
# a user's canonical-mode strategy, every knob away from the built-ins' values
name = "user_canonical"
mode = "canonical"
path_case = "lower"

[canonical]
breakpoints = [100, 300, 1000]
max_dpr = 2.5
quality_buckets = [40, 75]
formats = ["webp", "avif", "png"]
format_param = "ignore"
on_invalid = "reject"
"""


@pytest.fixture(scope="module")
def strategies(tmp_path_factory: pytest.TempPathFactory) -> list[Strategy]:
    folder = tmp_path_factory.mktemp("strategies")
    found = [get_strategy(name) for name in list_strategies()]
    for name, text in (("user_query", USER_QUERY), ("user_canonical", USER_CANONICAL)):
        path = folder / f"{name}.toml"
        path.write_text(text)
        found.append(get_strategy(path))
    assert {s.config.mode for s in found} == {"query", "canonical"} and len(found) >= 8
    return found


# ---------------------------------------------------------------- requests
def _encode_some(text: str, which: list[bool]) -> str:
    """Percent-encode the characters flagged in ``which`` (hex case alternating)."""
    return "".join((f"%{ord(c):02X}" if i % 2 else f"%{ord(c):02x}") if flag and ord(c) < 0x80 else c
                   for i, (c, flag) in enumerate(zip(text, which, strict=True)))


@st.composite
def names(draw: st.DrawFn) -> str:
    base = draw(st.one_of(
        st.sampled_from(sorted(PARAM_ALIASES)), st.sampled_from(sorted(PARAM_ALIASES)),
        st.sampled_from(["utm_source", "utm_campaign", "UTM_Medium", "gclid", "fbclid", "cb", "_", "v", "t",
                         "x", "xid", "sku", "", "wid th", "widths", "w\u00a0", "é"]),
    ))
    case = draw(st.sampled_from(["keep", "keep", "upper", "title"]))
    base = base.upper() if case == "upper" else base.title() if case == "title" else base
    base = draw(st.sampled_from(["", "", "", " ", "+", "%20", "%09"])) + base
    return _encode_some(base, draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base))))


@st.composite
def values(draw: st.DrawFn) -> str:
    text = draw(st.one_of(
        st.integers(0, 2200).map(str), st.integers(0, 110).map(str),
        st.sampled_from(["", "0", "100000", "100001", "-5", "abc", "6.4e2", "1", "1.5", "2", "2.5", "3.0001",
                         "10.125", "1e1", "auto", "AUTO", "webp", "jpg", "png", "avif", "gif", "cover", "contain",
                         "inside", "fill", "bogus", "center", "smart", "attention", "#ff0000", "FF0000", "fff",
                         "thumb", "card", "PDP", "zoom", "nope", " 50 ", "6+4", "%E2%82%AC", "%zz", "a=b"]),
    ))
    return _encode_some(text, draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text))))


@st.composite
def queries(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            parts.append(f"cb={draw(st.integers(100000, 999999))}")  # a cache buster: a new query each time
        elif kind == 1:
            parts.append(f"gclid={draw(st.text(string.ascii_letters + string.digits, min_size=4, max_size=8))}")
        elif kind == 2:
            parts.append("")  # an empty segment ("&&")
        elif kind == 3:
            parts.append(draw(names()))  # no '=': value ""
        else:
            parts.append(f"{draw(names())}={draw(values())}")
    return "&".join(parts)


PATHS = ["/images/sku-1.jpg", "/images/sku-2.jpg", "/Images/SKU-1.JPG", "/images/a%20b.jpg", "/a.png",
         "/images/sku-1.jpg/w=640,h=0,fit=cover,q=80,f=webp", "/images/sku-1.jpg/preset=thumb",
         "/images/sku-2.jpg/w=abc", "/IMAGES/sku-1.jpg/W=640,h=0,fit=cover,q=80,f=webp", "/../etc/passwd",
         "//x.jpg", "/images/./a.jpg", "/", "/a=b"]
ACCEPTS = [*ACCEPT_BY_CLASS, "", "*/*", "image/avif,image/webp,*/*", "image/avif;q=0,image/webp",
           "image/avif;q=0.000, image/webp;q=0", "IMAGE/AVIF", "image/webp;q=0.5", "image/avif;q=2,image/webp"]


@st.composite
def rows(draw: st.DrawFn) -> list[tuple[str, str, str, str]]:
    """(path, query, Accept of the first inference, Accept of the second); queries repeat, as in logs."""
    pool = draw(st.lists(queries(), min_size=1, max_size=12))
    paths = st.one_of(st.sampled_from(PATHS), st.integers(1, 6).map(lambda i: f"/images/sku-{i}.jpg"))
    return draw(st.lists(st.tuples(paths, st.sampled_from(pool) | queries(), st.sampled_from(ACCEPTS),
                                   st.sampled_from(ACCEPTS)), min_size=1, max_size=50))


# ---------------------------------------------------------------- the plain reference
def reference(strategy: Strategy, requests: list[tuple[str, str, str]]) -> dict[str, Any]:
    """``Strategy.apply`` on every row; dense ids of the key and variant strings in first-seen order."""
    key_ids: dict[str, int] = {}
    variant_ids: dict[str, int] = {}
    keys, variants, with_variant = [], [], 0
    for path, query, accept in requests:
        try:
            res = strategy.apply("GET", path, query, {"accept": accept})
        except BadRequest:
            keys.append(-1)
            variants.append(-1)
            continue
        v = -1 if res.variant is None else variant_ids.setdefault(res.variant, len(variant_ids))
        if res.cache_key not in key_ids:
            with_variant += v >= 0
        keys.append(key_ids.setdefault(res.cache_key, len(key_ids)))
        variants.append(v)
    return {"keys": keys, "variants": variants, "unique_keys": len(key_ids),
            "unique_variants": len(variant_ids), "keys_with_variant": with_variant}


# ---------------------------------------------------------------- the replay's way of driving KeyIndex
class Replay:
    """Drives indexes as ``edgeproof.analytics.replay`` does: new global paths and (query, Accept) pairs go to every
    index as each batch brings them (the same list objects), index ``2k`` reads a row's first Accept,
    ``2k+1`` its second. The order new pairs get their global ids is shuffled: ids must not depend on it."""

    def __init__(self, indexes: list[KeyIndex], shuffle: random.Random) -> None:
        self.indexes = indexes
        self.shuffle = shuffle
        self.paths: list[str] = []
        self.path_ids: dict[str, int] = {}
        self.pairs: list[tuple[str, str]] = []
        self.pair_ids: dict[tuple[str, str], int] = {}
        self.out: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in indexes]

    def feed(self, batch: list[tuple[str, str, str, str]]) -> None:
        new_paths = [p for p in dict.fromkeys(r[0] for r in batch) if p not in self.path_ids]
        for p in new_paths:
            self.path_ids[p] = len(self.paths)
            self.paths.append(p)
        fresh = [q for q in dict.fromkeys((r[1], a) for r in batch for a in r[2:]) if q not in self.pair_ids]
        self.shuffle.shuffle(fresh)
        for q in fresh:
            self.pair_ids[q] = len(self.pairs)
            self.pairs.append(q)
        row_path = np.array([self.path_ids[r[0]] for r in batch], dtype=np.int64)
        for i, index in enumerate(self.indexes):
            if new_paths:
                index.add_paths(new_paths)
            if fresh:
                index.add_queries(fresh)
            row_query = np.array([self.pair_ids[(r[1], r[2 + i % 2])] for r in batch], dtype=np.int64)
            self.out[i].append(index.ids(row_path, row_query, self.paths, self.pairs))

    def results(self) -> list[dict[str, Any]]:
        return [{"keys": np.concatenate([g[0] for g in got]).tolist(),
                 "variants": np.concatenate([g[1] for g in got]).tolist(),
                 "unique_keys": index.unique_keys, "unique_variants": index.unique_variants,
                 "keys_with_variant": index.keys_with_variant}
                for index, got in zip(self.indexes, self.out, strict=True)]


def drive(indexes: list[KeyIndex], data: list[tuple[str, str, str, str]], cuts: list[int],
          shuffle: random.Random) -> list[dict[str, Any]]:
    """Feed ``data`` through :class:`Replay` in batches cut at ``cuts``."""
    replay = Replay(indexes, shuffle)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        replay.feed(data[lo:hi])
    return replay.results()


def wanted(strategies: list[Strategy], data: list[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
    return [reference(s, [(r[0], r[1], r[2 + inference]) for r in data]) for s in strategies for inference in (0, 1)]


def check(strategies: list[Strategy], data: list[tuple[str, str, str, str]], cuts: list[int], seed: int) -> None:
    want = wanted(strategies, data)
    got = drive([KeyIndex(s) for s in strategies for _ in range(2)], data, cuts, random.Random(seed))
    plain = drive([KeyIndex(s, reference=True) for s in strategies for _ in range(2)], data, cuts,
                  random.Random(seed + 1))
    names = [(s.name, inference) for s in strategies for inference in (0, 1)]
    for name, g, p, w in zip(names, got, plain, want, strict=True):
        assert g == w, name
        assert p == w, (name, "reference index")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows(), st.lists(st.integers(0, 60), max_size=4), st.integers(0, 2**16))
@example([("/images/sku-1.jpg", "width=640&format=auto&cb=123456", ACCEPT_BY_CLASS[2], ACCEPT_BY_CLASS[1]),
          ("/images/sku-1.jpg", "width=640&format=auto&cb=654321", ACCEPT_BY_CLASS[2], ACCEPT_BY_CLASS[0]),
          ("/images/sku-1.jpg", "cb=1&format=auto&width=640&gclid=x", ACCEPT_BY_CLASS[2], ""),
          ("/images/sku-1.jpg", "Width=640&%66ormat=auto&w=320", "image/avif;q=0,image/webp", ""),
          ("/images/sku-1.jpg", "+w=640&w=320&dpr=2&dpr=x&utm_source=a", "", "*/*")], [2, 3], 0)
def test_fast_keying_equals_apply_per_row(strategies: list[Strategy], data: list[tuple[str, str, str, str]],
                                          cuts: list[int], seed: int) -> None:
    check(strategies, data, cuts, seed)


@contextmanager
def small_memos() -> Iterator[None]:
    """Token spaces and part memos of a few entries, so that they start again (new generations) mid-run."""
    saved = _replay_keys._TOKEN_MAX, _replay_keys._PART_MEMO_MAX
    _replay_keys._TOKEN_MAX, _replay_keys._PART_MEMO_MAX = 2, 3
    try:
        yield
    finally:
        _replay_keys._TOKEN_MAX, _replay_keys._PART_MEMO_MAX = saved


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows(), st.lists(st.integers(0, 60), max_size=6), st.integers(0, 2**16))
def test_fast_keying_equals_apply_when_memos_start_again(strategies: list[Strategy],
                                                         data: list[tuple[str, str, str, str]], cuts: list[int],
                                                         seed: int) -> None:
    with small_memos():
        check(strategies, data, cuts, seed)


def test_two_replays_interleaved_share_spaces_without_mixing(strategies: list[Strategy]) -> None:
    """Two replays fed batch by batch in turn: each finds the other's list in the spaces' last-list cache."""
    a = [(f"/images/sku-{i % 5}.jpg", f"w={100 * (i % 7)}&cb={i}", ACCEPTS[i % 3], ACCEPTS[3]) for i in range(40)]
    b = [(f"/images/sku-{i % 3}.jpg", f"width={50 * (i % 4)}&format=webp&gclid={i % 9}", ACCEPTS[5],
          ACCEPTS[i % 4]) for i in range(40)]
    first = Replay([KeyIndex(s) for s in strategies for _ in range(2)], random.Random(1))
    second = Replay([KeyIndex(s) for s in strategies for _ in range(2)], random.Random(2))
    for lo in range(0, 40, 10):
        first.feed(a[lo:lo + 10])
        second.feed(b[lo:lo + 10])
    assert first.results() == wanted(strategies, a)
    assert second.results() == wanted(strategies, b)


# ---------------------------------------------------------------- the tokens
def test_cache_busters_and_tracking_parameters_share_one_token() -> None:
    a = canonical_params("width=640&format=auto&cb=123456")
    assert a == canonical_params("cb=999&width=640&utm_source=mail&format=auto&gclid=abc")
    assert a == canonical_params("%77idth=640&format=auto&FBCLID=1") == ((("w", "640"), ("f", "auto")), None)
    assert canonical_params("w=1&width=2&dpr=2&dpr=3") == ((("w", "1"),), "2")  # first value of each op
    assert canonical_params("format=auto&width=640") != a  # order is kept (it can decide which error wins)
    assert friendly_params(split_query("W=1&w=2&w=3&cb=4&f=webp")) == (("W", "1"), ("w", "2"), ("f", "webp"))


def test_query_part_is_a_function_of_the_token(strategies: list[Strategy]) -> None:
    for s in strategies:
        for accept in ACCEPTS:
            base = s.query_part("width=640&format=auto", accept)
            for noisy in ("width=640&format=auto&cb=123456", "gclid=Cj0&width=640&utm_source=x&format=auto"):
                got = s.query_part(noisy, accept)
                if s.config.mode == "canonical":
                    assert got[:2] == base[:2], (s.name, noisy)
                    assert s.query_token(noisy) == s.query_token("width=640&format=auto")
                else:
                    assert got[1] == base[1], (s.name, noisy)  # the variant; the key may keep the buster
                    assert s.query_token(noisy)[1] == s.query_token("width=640&format=auto")[1]
                assert got == s.query_part_of(s.query_token(noisy), accept)


def _friendly_ops_by_definition(pairs: list[tuple[str, str]], accept: str) -> str | None:
    """What the origin renders for ``?pairs`` in the friendly form, by definition: every pair decoded,
    the first occurrence of a decoded name kept, the whole dict handed to ``variant_from_params``."""
    params: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        params.setdefault(pct_decode(raw_name), pct_decode(raw_value))
    try:
        return variant_from_params(params, accept or None, DEFAULT_PRESETS).ops
    except (BadRequest, ValueError, OverflowError):
        return None


@settings(max_examples=300, deadline=None)
@given(queries(), st.sampled_from(ACCEPTS))
def test_friendly_params_keep_all_the_origin_reads(strategies: list[Strategy], query: str, accept: str) -> None:
    """The query-mode variant from the reduced parameters equals the one from all of them."""
    for s in strategies:
        if s.config.mode == "query":
            ops = _friendly_ops_by_definition(s._normalized_pairs(query), accept)
            assert s.query_part(query, accept)[1] == (None if ops is None else "/" + ops), (s.name, query)


def test_a_subclass_gets_the_plain_computation() -> None:
    class Odd(Strategy):
        __slots__ = ()

        def query_part(self, query: str, accept: str) -> Any:
            return "?odd", "/odd", None

    assert KeyIndex(Odd(get_strategy("passthrough").config)).reference
    assert not KeyIndex(get_strategy("passthrough")).reference

