"""A strategy: a pure function (method, path, query, headers) → :class:`KeyResult`.

Parameter semantics (aliases, value parsing, presets, format negotiation) come from
:mod:`edgeproof.canonical`; this module only orders the building blocks around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from edgeproof.canonical import (
    DEFAULT_PRESETS,
    MAX_DIMENSION_SYNTAX,
    PARAM_ALIASES,
    Variant,
    negotiate_format,
    parse_canonical,
    split_canonical,
    validate_source_key,
    variant_from_params,
)
from edgeproof.errors import BadRequest

from ._config import StrategyConfig
from ._query import name_matches, pct_decode, pct_encode, split_query, strip_ws

__all__ = ["DEFAULT_VALUES", "KeyResult", "QueryToken", "Strategy", "canonical_params", "friendly_params",
           "parse_dpr_milli"]

#: values that mean "the default" per op, dropped by ``drop_defaults`` (compared trimmed, lower-case)
DEFAULT_VALUES: dict[str, tuple[str, ...]] = {
    "fit": ("cover",), "q": ("80",), "g": ("centre", "center"), "bg": ("ffffff", "#ffffff"),
    "dpr": ("1", "1.0"), "f": ("auto",),
}
_CACHE_MAX = 200_000


@dataclass(frozen=True, slots=True)
class KeyResult:
    cache_key: str         # what a POP caches by
    origin_uri: str        # path (and ?query if the strategy forwards one) sent to the origin
    variant: str | None    # the canonical request the origin renders; None if not a valid variant request


def parse_dpr_milli(raw: str) -> int | None:
    """``"2"`` → 2000, ``"1.5"`` → 1500, ``"1.125"`` → 1125; anything else (``1e1``, ``nan``, ``.5``) → None."""
    s = strip_ws(raw)
    whole, dot, frac = s.partition(".")
    if not (1 <= len(whole) <= 2 and whole.isascii() and whole.isdigit()):
        return None
    if dot and not (1 <= len(frac) <= 3 and frac.isascii() and frac.isdigit()):
        return None
    return int(whole) * 1000 + (int(frac.ljust(3, "0")) if dot else 0)


def _snap_up(value: int, steps: tuple[int, ...]) -> int:
    for step in steps:
        if step >= value:
            return step
    return steps[-1]


class Strategy:
    """One cache-key strategy, built from a :class:`StrategyConfig`. ``apply`` is pure and cached."""

    __slots__ = ("name", "config", "_cache", "_allow", "_plain")

    def __init__(self, config: StrategyConfig) -> None:
        self.name = config.name
        self.config = config
        self._cache: dict[tuple[str, str, str], KeyResult | BadRequest] = {}
        allow = config.params.allowlist
        self._allow = frozenset(allow) if allow is not None else None
        p = config.params
        self._plain = config.mode == "query" and not (
            p.drop or allow is not None or p.rewrites or p.drop_defaults or p.dedupe or p.sort
        )

    def __repr__(self) -> str:
        return f"Strategy({self.name!r}, mode={self.config.mode!r})"

    # ------------------------------------------------------------------ public
    def apply(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> KeyResult:
        """The cache key, origin URI and variant of one request; BadRequest if the strategy refuses it."""
        accept = headers.get("accept") or headers.get("Accept") or ""
        token = (path, query or "", accept)
        hit = self._cache.get(token)
        if hit is None:
            try:
                hit = self._compute(path, query or "", accept)
            except BadRequest as err:
                hit = err
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[token] = hit
        if isinstance(hit, BadRequest):
            raise BadRequest(hit.message, detail=hit.detail)
        return hit

    # ------------------------------------------------------------------ parts (used by the replay)
    # A result is the concatenation of a path part and a query part: cache_key = key_prefix + key_suffix,
    # variant = variant_prefix + variant_suffix. The replay caches the parts separately (distinct paths
    # times distinct queries is far more than either), and apply() is defined through them too.

    def path_part(self, path: str) -> tuple[str | None, str | None, BadRequest | None] | None:
        """``(key_prefix, variant_prefix, error)`` of a path, or None for a canonical-form path
        (``/{key}/{ops}``: use :meth:`apply`). ``key_prefix`` is None when the strategy refuses the path
        (``error`` says why); ``variant_prefix`` is None when the path is not a valid source key."""
        if self.config.path_case == "lower":
            path = path.lower()
        if split_canonical(path) is not None:
            return None
        try:
            prefix: str | None = "/" + validate_source_key(path[1:] if path.startswith("/") else path)
            err = None
        except BadRequest as bad:
            prefix, err = None, bad
        if self.config.mode == "query":
            return path, prefix, None
        return prefix, prefix, err

    def query_part(self, query: str, accept: str) -> tuple[str | None, str | None, BadRequest | None]:
        """``(key_suffix, variant_suffix, error)`` of a raw query string under an Accept header."""
        return self.query_part_of(self.query_token(query), accept)

    @property
    def path_space(self) -> tuple[str, str]:
        """Strategies with equal path spaces have equal :meth:`path_part` functions (it reads the mode and
        ``path_case`` only): the replay computes the parts of a path once for all of them."""
        return self.config.mode, self.config.path_case

    @property
    def token_space(self) -> object:
        """Strategies with equal token spaces have equal :meth:`query_token` functions: every canonical-mode
        strategy shares one (:func:`canonical_params` reads no option), a query-mode one is keyed by its
        ``[params]`` options. The replay tokenises a query once per space, not once per strategy."""
        return "canonical" if self.config.mode == "canonical" else ("query", self.config.params)

    def query_token(self, query: str) -> tuple[str | None, QueryToken]:
        """``(key_suffix, token)``: everything of ``query`` that :meth:`query_part` reads, split so that the
        replay can memoise the expensive half.

        ``query_part(query, accept)`` *is* ``query_part_of(query_token(query), accept)``, so two queries with
        equal tokens have equal parts under every Accept by construction. The token keeps only what can
        matter: in canonical mode the first value of each known op and the first ``dpr``
        (:func:`canonical_params`; tracking parameters and cache busters such as ``&cb=123456`` drop out,
        which is why ``&cb=`` variants share one computation), and the key suffix is None (it depends on
        Accept); in query mode the key suffix (the normalised query, no Accept in it) and the friendly
        parameters the origin would read from the normalised pairs (:func:`friendly_params`)."""
        if self.config.mode == "query":
            pairs = self._normalized_pairs(query)
            if self._plain:
                suffix = "?" + query if query else ""
            else:
                suffix = "?" + "&".join(f"{n}={v}" for n, v in pairs) if pairs else ""
            return suffix, friendly_params(pairs)
        return None, canonical_params(query)

    def query_part_of(self, token: tuple[str | None, QueryToken], accept: str
                      ) -> tuple[str | None, str | None, BadRequest | None]:
        """:meth:`query_part` from a :meth:`query_token` (the variant of a query-mode token is
        :meth:`variant_suffix_of`; the canonical ops of a canonical-mode token :meth:`canonical_ops_of`)."""
        suffix, params = token
        if self.config.mode == "query":
            return suffix, self.variant_suffix_of(params, accept), None
        try:
            ops = "/" + self.canonical_ops_of(params, accept)  # type: ignore[arg-type]
        except BadRequest as bad:
            return None, None, bad
        return ops, ops, None

    @staticmethod
    def variant_suffix_of(params: QueryToken, accept: str) -> str | None:
        """Query mode: ``"/" + ops`` of the friendly parameters of a token, None if not a valid variant."""
        ops = _friendly_ops_of(params, accept)  # type: ignore[arg-type]
        return None if ops is None else "/" + ops

    # ------------------------------------------------------------------ internals
    def _compute(self, path: str, query: str, accept: str) -> KeyResult:
        part = self.path_part(path)
        if part is None:
            return self._canonical_path(path.lower() if self.config.path_case == "lower" else path, query, accept)
        key_prefix, variant_prefix, err = part
        if key_prefix is None:
            raise err or BadRequest("refused")
        key_suffix, variant_suffix, qerr = self.query_part(query, accept)
        if key_suffix is None:
            raise qerr or BadRequest("refused")
        key = key_prefix + key_suffix
        if self.config.mode == "canonical":
            return KeyResult(key, key, key)
        variant = None if variant_prefix is None or variant_suffix is None else variant_prefix + variant_suffix
        return KeyResult(key, key, variant)

    def _canonical_path(self, path: str, query: str, accept: str) -> KeyResult:
        """A request whose path is already ``/{source_key}/{ops}``."""
        if self.config.mode == "query":
            key = path + (self.query_part(query, accept)[0] or "")
            try:
                source_key, variant = parse_canonical(path, DEFAULT_PRESETS)
            except BadRequest:
                return KeyResult(key, key, None)
            return KeyResult(key, key, variant.path(source_key))
        c = self.config.canonical
        source_key, variant = parse_canonical(path, DEFAULT_PRESETS)
        if c.format_param == "ignore":
            variant = replace(variant, f=negotiate_format(accept, c.formats))
        key = f"/{source_key}/{self._finish(variant, 1000, c.on_invalid == 'fallback')}"
        return KeyResult(key, key, key)

    def _normalized_pairs(self, query: str) -> list[tuple[str, str]]:
        if self._plain:
            return split_query(query)
        p = self.config.params
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for raw_name, raw_value in split_query(query):
            match = strip_ws(pct_decode(raw_name)).lower()
            if p.drop and name_matches(match, p.drop):
                continue
            if self._allow is not None and match not in self._allow:
                continue
            op = PARAM_ALIASES.get(match)
            if p.drop_defaults and op in DEFAULT_VALUES and (
                strip_ws(pct_decode(raw_value)).lower() in DEFAULT_VALUES[op]
            ):
                continue
            if p.rewrites:
                name, value = pct_decode(raw_name), pct_decode(raw_value)
                if p.lowercase_names:
                    name = strip_ws(name).lower()
                if p.aliases and op is not None:
                    name = op
                if p.trim:
                    value = strip_ws(value)
                if p.lowercase_values:
                    value = value.lower()
                raw_name, raw_value = pct_encode(name), pct_encode(value)
            if p.dedupe:
                if raw_name in seen:
                    continue
                seen.add(raw_name)
            out.append((raw_name, raw_value))
        if p.sort:
            out.sort()
        return out

    def canonical_ops(self, query: str, accept: str) -> str:
        """Canonical mode: the ops segment for a friendly query string (BadRequest when refused)."""
        return self.canonical_ops_of(canonical_params(query), accept)

    def canonical_ops_of(self, params: tuple[tuple[tuple[str, str], ...], str | None], accept: str) -> str:
        """:meth:`canonical_ops` from :func:`canonical_params` of the query (all it reads of the query)."""
        c = self.config.canonical
        fallback = c.on_invalid == "fallback"
        ops = dict(params[0])
        dpr_raw = params[1]
        if fallback:
            for op in list(ops):
                try:
                    variant_from_params({op: ops[op]}, accept, DEFAULT_PRESETS)
                except BadRequest:
                    del ops[op]  # documented fallback: an invalid parameter is ignored
        fmt = ops.get("f")
        if c.format_param == "ignore" or fmt is None or strip_ws(fmt).lower() in ("", "auto"):
            ops["f"] = negotiate_format(accept, c.formats)
        variant = variant_from_params(ops, accept, DEFAULT_PRESETS)
        dpr = 1000
        if dpr_raw is not None:
            parsed = parse_dpr_milli(dpr_raw)
            if parsed is None:
                if not fallback:
                    raise BadRequest("malformed dpr", detail=f"dpr={dpr_raw!r} is not a number like 2 or 1.5")
            else:
                dpr = min(max(parsed, 1000), self.config.max_dpr_milli)
        return self._finish(variant, dpr, fallback)

    def _finish(self, variant: Variant, dpr: int, fallback: bool) -> str:
        c = self.config.canonical
        w, h, q = variant.w, variant.h, variant.q
        if dpr != 1000:
            dw, dh = (w * dpr + 500) // 1000, (h * dpr + 500) // 1000
            # breakpoints bound w (and so h) only when w > 0: w = 0 is never snapped
            if (c.breakpoints and w > 0) or max(dw, dh) <= MAX_DIMENSION_SYNTAX:
                w, h = dw, dh
            elif not fallback:
                raise BadRequest("size out of range", detail=f"w={dw},h={dh} after dpr")
        if c.breakpoints and w > 0:
            snapped = _snap_up(w, c.breakpoints)
            if h > 0:
                h = min(max((h * snapped + w // 2) // w, 1), MAX_DIMENSION_SYNTAX)
            w = snapped
        if c.quality_buckets:
            q = _snap_up(q, c.quality_buckets)
        if (w, h, q) != (variant.w, variant.h, variant.q):  # one construction, validated like replace()
            variant = Variant(w, h, variant.fit, variant.g, variant.bg, q, variant.f)
        return variant.ops


#: a strategy's token of a query string (see :meth:`Strategy.query_token`)
QueryToken = tuple[tuple[str, str], ...] | tuple[tuple[tuple[str, str], ...], str | None]


def canonical_params(query: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """All that canonical mode reads of a query string, whatever the strategy's options:
    ``((op, decoded value) of the first occurrence of each known op, in first-seen order; the first dpr)``.

    A name is known when its decoded, trimmed, lower-cased spelling is in :data:`PARAM_ALIASES` (so
    ``Width``, ``%77idth`` and `` w`` are ``w``; a repeated op keeps its first value); anything else —
    tracking parameters, cache busters — is not part of a variant and is left out."""
    ops: dict[str, str] = {}
    dpr_raw: str | None = None
    for raw_name, raw_value in split_query(query):
        op = PARAM_ALIASES.get(strip_ws(pct_decode(raw_name)).lower())
        if op is None:
            continue  # unknown names, tracking parameters, cache busters: not part of a variant
        if op == "dpr":
            if dpr_raw is None:
                dpr_raw = pct_decode(raw_value)
        elif op not in ops:
            ops[op] = pct_decode(raw_value)
    return tuple(ops.items()), dpr_raw


def friendly_params(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The ``(decoded name, decoded value)`` parameters the origin reads from ``?pairs`` in the friendly
    form: the first occurrence of each decoded name, in order, kept only when
    :func:`~edgeproof.canonical.variant_from_params` would read it (``name.strip().lower()`` in
    :data:`PARAM_ALIASES`; it skips any other name without looking at its value)."""
    params: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = pct_decode(raw_name)
        if name not in params and name.strip().lower() in PARAM_ALIASES:
            params[name] = pct_decode(raw_value)
    return tuple(params.items())


def _friendly_ops_of(params: tuple[tuple[str, str], ...], accept: str) -> str | None:
    """The ops the origin renders for :func:`friendly_params` (None: not a valid variant request)."""
    try:
        return variant_from_params(dict(params), accept or None, DEFAULT_PRESETS).ops
    except (BadRequest, ValueError, OverflowError):
        return None
