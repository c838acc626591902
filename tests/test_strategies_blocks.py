"""Cache-key strategies: each building block, the built-ins, declarations (TOML / Python) and properties."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from edgeproof.analytics.strategies import (
    KeyResult,
    StrategyConfig,
    get_strategy,
    list_strategies,
    register_strategy,
)
from edgeproof.analytics.strategies._query import pct_decode, pct_encode, split_query, strip_ws
from edgeproof.analytics.strategies._strategy import parse_dpr_milli
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproof.errors import BadRequest, ConfigError

WEBP = {"accept": "image/webp,*/*"}
AVIF = {"accept": "image/avif,image/webp,*/*"}
NONE: dict[str, str] = {}


def key(name: str, path: str, query: str = "", headers: dict[str, str] = WEBP) -> str:
    return get_strategy(name).apply("GET", path, query, headers).cache_key


# ---------------------------------------------------------------- query helpers
def test_pct_decode_rules() -> None:
    assert pct_decode("a+b%41%2b") == "a bA+"
    assert pct_decode("%e2%80%8a") == "\ufffd\ufffd\ufffd"  # non-ASCII bytes: no accepted value has them
    assert pct_decode("%zz%4") == "%zz%4"
    assert pct_decode("%%41") == "%A"


@given(st.text(alphabet=string.printable))
def test_pct_encode_round_trips(text: str) -> None:
    encoded = pct_encode(text)
    assert set(encoded) <= set(string.ascii_letters + string.digits + "-._~%")
    assert pct_decode(encoded) == text


def test_split_query_and_strip() -> None:
    assert split_query("a=1&&b&c=2=3") == [("a", "1"), ("b", ""), ("c", "2=3")]
    assert split_query("") == []
    assert strip_ws("\x1c 640\t") == "640"


def test_parse_dpr_strict() -> None:
    assert parse_dpr_milli("2") == 2000
    assert parse_dpr_milli(" 1.5 ") == 1500
    assert parse_dpr_milli("1.125") == 1125
    for bad in ("nan", "inf", "1e1", ".5", "2.", "1.2345", "-1", "", "100"):
        assert parse_dpr_milli(bad) is None


# ---------------------------------------------------------------- built-ins
def test_builtins_registered_in_order() -> None:
    names = list_strategies()
    assert names[:6] == ["passthrough", "sorted", "allowlist", "canonical", "breakpoints", "aggressive"]


def test_passthrough_is_order_and_case_sensitive() -> None:
    r = get_strategy("passthrough").apply("GET", "/a.jpg", "w=640&f=webp", WEBP)
    assert r == KeyResult("/a.jpg?w=640&f=webp", "/a.jpg?w=640&f=webp", "/a.jpg/w=640,h=0,fit=cover,q=80,f=webp")
    assert key("passthrough", "/a.jpg", "f=webp&w=640") != r.cache_key
    assert key("passthrough", "/a.jpg", "W=640&f=webp") != r.cache_key
    assert key("passthrough", "/a.jpg") == "/a.jpg"
    assert get_strategy("passthrough").apply("GET", "/a.jpg", "w=abc", WEBP).variant is None


@given(st.permutations([("w", "640"), ("f", "webp"), ("utm_source", "x"), ("q", "70")]))
def test_sorted_ignores_order(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{n}={v}" for n, v in pairs)
    assert key("sorted", "/a.jpg", query) == "/a.jpg?f=webp&q=70&utm_source=x&w=640"


def test_allowlist_keeps_image_params_only() -> None:
    assert key("allowlist", "/a.jpg", "utm_source=x&width=640&fbclid=1&v=3&format=webp") == \
        "/a.jpg?format=webp&width=640"
    assert key("allowlist", "/a.jpg", "cb=1") == "/a.jpg"


def test_aggressive_aliases_trim_case() -> None:
    want = "/a.jpg/w=640,h=0,fit=cover,q=80,f=webp"
    for query in ("w=640&f=webp", "width=640&format=webp", "WIDTH=640&FMT=WEBP", "%20w%20=%20640%20&fm=webp",
                  "f=webp&w=640", "w=640&f=webp&w=320"):
        assert key("aggressive", "/a.jpg", query) == want, query


def test_aggressive_breakpoints_dpr_quality_format() -> None:
    assert key("aggressive", "/a.jpg", "w=600") == "/a.jpg/w=640,h=0,fit=cover,q=80,f=webp"
    assert key("aggressive", "/a.jpg", "w=641") == "/a.jpg/w=800,h=0,fit=cover,q=80,f=webp"
    assert key("aggressive", "/a.jpg", "w=5000") == "/a.jpg/w=2000,h=0,fit=cover,q=80,f=webp"
    assert key("aggressive", "/a.jpg", "w=600&h=300") == "/a.jpg/w=640,h=320,fit=cover,q=80,f=webp"
    assert key("aggressive", "/a.jpg", "w=300&dpr=2") == "/a.jpg/w=640,h=0,fit=cover,q=80,f=webp"
    assert key("aggressive", "/a.jpg", "w=300&dpr=9") == "/a.jpg/w=1024,h=0,fit=cover,q=80,f=webp"  # clamped to 3
    assert key("aggressive", "/a.jpg", "w=300&dpr=0.5") == "/a.jpg/w=320,h=0,fit=cover,q=80,f=webp"  # at least 1
    assert key("aggressive", "/a.jpg", "q=70") == "/a.jpg/w=0,h=0,fit=cover,q=80,f=webp"
    assert key("aggressive", "/a.jpg", "q=95") == "/a.jpg/w=0,h=0,fit=cover,q=90,f=webp"
    assert key("aggressive", "/a.jpg", "q=10") == "/a.jpg/w=0,h=0,fit=cover,q=50,f=webp"
    assert key("aggressive", "/a.jpg", "f=auto", AVIF).endswith("f=avif")
    assert key("aggressive", "/a.jpg", "", NONE).endswith("f=jpeg")
    assert key("aggressive", "/a.jpg", "f=png", AVIF).endswith("f=png")  # explicit format honoured


def test_fallback_and_reject() -> None:
    plain = key("aggressive", "/a.jpg", "")
    for junk in ("w=abc", "w=-1", "q=0", "fit=stretch", "bg=zz", "f=gif", "preset=hero", "dpr=nan", "w="):
        assert key("aggressive", "/a.jpg", junk) == plain, junk
        with pytest.raises(BadRequest):
            get_strategy("canonical").apply("GET", "/a.jpg", junk, WEBP)
    with pytest.raises(BadRequest):
        get_strategy("aggressive").apply("GET", "/../etc/passwd", "w=1", WEBP)


TRACKING = st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "fbclid", "gclid", "v", "cb", "_", "t",
                            "ref", "x"])
BASES = st.sampled_from(["w=640&f=webp", "width=300&h=200&fit=contain&bg=%23000000", "preset=thumb",
                         "w=123&dpr=2&q=66", "", "f=auto&g=attention"])


@settings(max_examples=150)
@given(BASES, st.lists(st.tuples(TRACKING, st.text(alphabet=string.ascii_letters + string.digits, max_size=6)),
                       max_size=4), st.sampled_from(["aggressive", "canonical", "breakpoints", "allowlist"]))
def test_tracking_params_never_change_the_key(base: str, extra: list[tuple[str, str]], name: str) -> None:
    noisy = "&".join([base, *(f"{n}={v}" for n, v in extra)]).strip("&")
    try:
        want = key(name, "/images/a.jpg", base)
    except BadRequest:
        return
    assert key(name, "/images/a.jpg", noisy) == want


@settings(max_examples=150)
@given(st.sampled_from(["w", "h", "q", "fit", "f", "g", "bg", "preset", "dpr"]),
       st.text(alphabet=string.printable.replace("&", ""), max_size=8))
def test_invalid_values_never_make_a_new_key(param: str, value: str) -> None:
    """aggressive: a value is either valid (its own key) or falls back to the key without it."""
    s = get_strategy("aggressive")
    canonical = get_strategy("canonical")
    with_it = s.apply("GET", "/a.jpg", f"w=640&{param}={value}", WEBP).cache_key
    try:
        canonical.apply("GET", "/a.jpg", f"w=640&{param}={value}", WEBP)
    except BadRequest:
        assert with_it == s.apply("GET", "/a.jpg", "w=640", WEBP).cache_key


@settings(max_examples=150)
@given(st.lists(st.tuples(st.sampled_from(["w", "width", "h", "q", "f", "fit", "dpr", "preset", "utm_x"]),
                          st.sampled_from(["0", "1", "99", "640", "1500", "webp", "png", "contain", "2", "thumb"])),
                max_size=5), st.sampled_from(["aggressive", "canonical", "breakpoints"]))
def test_canonical_strategies_are_idempotent(pairs: list[tuple[str, str]], name: str) -> None:
    query = "&".join(f"{n}={v}" for n, v in pairs)
    try:
        once = key(name, "/images/a.jpg", query, AVIF)
    except BadRequest:
        return
    assert key(name, once, "", AVIF) == once
    result = get_strategy(name).apply("GET", "/images/a.jpg", query, AVIF)
    assert result.cache_key == result.origin_uri == result.variant


def test_canonical_path_input_is_reduced() -> None:
    assert key("aggressive", "/a.jpg/w=600,h=0,fit=cover,q=70,f=webp", "utm=1") == \
        "/a.jpg/w=640,h=0,fit=cover,q=80,f=webp"
    assert get_strategy("passthrough").apply("GET", "/a.jpg/w=600,h=0,fit=cover,q=70,f=webp", "", WEBP).variant == \
        "/a.jpg/w=600,h=0,fit=cover,q=70,f=webp"


# ---------------------------------------------------------------- declarations
def test_python_declaration_and_path_case() -> None:
    config = StrategyConfig.from_dict({"name": "lowercase_test", "mode": "canonical", "path_case": "lower",
                                       "canonical": {"formats": ["webp", "jpeg"]}})
    s = register_strategy(config)
    assert get_strategy("lowercase_test") is s
    assert s.apply("GET", "/Images/A.JPG", "W=10", AVIF).cache_key == "/images/a.jpg/w=10,h=0,fit=cover,q=80,f=webp"
    with pytest.raises(ConfigError):
        register_strategy(config)


def test_query_mode_blocks_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "tidy.toml"
    path.write_text('mode = "query"\n[params]\ndrop = "tracking"\nlowercase_names = true\naliases = true\n'
                    'trim = true\nlowercase_values = true\ndrop_defaults = true\ndedupe = true\nsort = true\n')
    s = get_strategy(str(path))
    assert s.name == "tidy"
    assert s.apply("GET", "/a.jpg", "Width=%20640&FORMAT=WEBP&utm_source=x&fit=cover&q=80&w=320", WEBP).cache_key \
        == "/a.jpg?f=webp&w=640"
    assert s.apply("GET", "/a.jpg", "fbclid=1", WEBP).cache_key == "/a.jpg"


@pytest.mark.parametrize("text", [
    'mode = "nope"',
    'mode = "canonical"\n[canonical]\nbreakpoints = [640, 320]',
    'mode = "canonical"\n[canonical]\nformats = ["gif"]',
    'mode = "canonical"\n[params]\nsort = true',
    'mode = "query"\ncolour = 1',
    'mode = "canonical"\n[canonical]\nmax_dpr = 0.5',
    'mode = "canonical"\n[canonical]\non_invalid = "ignore"',
    'not toml ===',
])
def test_bad_declarations_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        get_strategy(str(path))


def test_unknown_strategy() -> None:
    with pytest.raises(ConfigError, match="unknown strategy"):
        get_strategy("nope")
    with pytest.raises(ConfigError, match="not found"):
        get_strategy("missing.toml")


def test_max_dpr_with_three_decimals_is_accepted_and_bools_are_not_numbers() -> None:
    """1.001 has three decimals although 1.001 * 1000 != 1001 in binary floating point."""
    from edgeproof.analytics.strategies._config import StrategyConfig

    def load(value: object) -> StrategyConfig:
        return StrategyConfig.from_dict({"name": "t", "mode": "canonical", "canonical": {"max_dpr": value}})

    for value in (1.001, 1.003, 2.675, 9.999):
        assert load(value).canonical.max_dpr == value
    for bad in (1.0001, True):
        with pytest.raises(ConfigError):
            load(bad)
