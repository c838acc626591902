"""The canonical request spelling (edgeproof.canonical): one spelling per variant, strict parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproof.canonical import (
    DEFAULT_PRESETS,
    FITS,
    FORMATS,
    GRAVITIES,
    Variant,
    format_for_content_type,
    load_presets,
    negotiate_format,
    parse_canonical,
    parse_ops,
    parse_request,
    split_canonical,
    validate_source_key,
    variant_from_params,
)
from edgeproof.errors import BadRequest, ConfigError

variants = st.builds(
    Variant,
    w=st.integers(0, 5000),
    h=st.integers(0, 5000),
    fit=st.sampled_from(FITS),
    g=st.sampled_from(GRAVITIES),
    bg=st.from_regex(r"[0-9a-f]{6}", fullmatch=True),
    q=st.integers(1, 100),
    f=st.sampled_from(FORMATS),
).map(Variant.normalized)

keys = st.lists(st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,15}", fullmatch=True), min_size=1, max_size=4).map(
    "/".join
).filter(lambda k: all(p not in (".", "..") for p in k.split("/")))


def test_spelling_example() -> None:
    v = Variant(w=640, h=0, fit="cover", q=80, f="webp")
    assert v.ops == "w=640,h=0,fit=cover,q=80,f=webp"
    assert v.path("images/sku-123.jpg") == "/images/sku-123.jpg/w=640,h=0,fit=cover,q=80,f=webp"
    assert v.content_type == "image/webp"
    assert Variant(w=1, h=2, fit="cover", g="attention").ops == "w=1,h=2,fit=cover,g=attention,q=80,f=jpeg"
    assert Variant(w=1, h=2, fit="contain", bg="000000").ops == "w=1,h=2,fit=contain,bg=000000,q=80,f=jpeg"
    # defaults are omitted, options that do nothing for the fit are dropped
    assert Variant(w=1, h=2, fit="contain", bg="ffffff").ops == "w=1,h=2,fit=contain,q=80,f=jpeg"
    assert parse_ops("w=1,h=2,fit=inside,g=attention,bg=000000,q=80,f=jpeg").ops == "w=1,h=2,fit=inside,q=80,f=jpeg"


@settings(max_examples=200, deadline=None)
@given(variants, keys)
def test_round_trip(v: Variant, key: str) -> None:
    assert parse_ops(v.ops) == v
    assert parse_canonical(v.path(key)) == (key, v)
    assert parse_request(v.path(key), {}, None) == (key, v)


@settings(max_examples=100, deadline=None)
@given(variants, st.randoms(use_true_random=False))
def test_order_does_not_matter(v: Variant, rnd: object) -> None:
    items = v.ops.split(",")
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert parse_ops(",".join(items)).ops == v.ops


def test_aliases_respelled() -> None:
    v = parse_ops("f=jpg,q=75,fit=COVER,g=smart,h=10,w=20")
    assert v.ops == "w=20,h=10,fit=cover,g=attention,q=75,f=jpeg"
    assert parse_ops("w=300,h=300,fit=contain,bg=#FF0000").bg == "ff0000"


@pytest.mark.parametrize(
    "ops",
    [
        "zz=1", "w=abc", "w=-1", "w=1.5", "q=0", "q=101", "f=gif", "fit=crop", "g=north", "bg=fff", "bg=zzzzzz",
        "w=1,w=2", "w", "=1", "w=", "", "w=1," * 60, "preset=nope", "w=1234567",
    ],
)
def test_bad_ops(ops: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_ops(ops)
    assert info.value.status == 400 and info.value.to_json()["error"] == "bad_request"


def test_presets() -> None:
    assert parse_ops("preset=thumb") == DEFAULT_PRESETS["thumb"]
    assert parse_ops("preset=thumb,q=50").q == 50
    assert set(DEFAULT_PRESETS) == {"thumb", "card", "pdp", "zoom"}


def test_presets_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[presets.hero]\nw = 1600\nh = 600\nfit = "cover"\nf = "avif"\nq = 60\n'
                    '[presets.thumb]\nw = 100\nh = 100\n[presets.thumb_hq]\npreset = "thumb"\nq = 95\n')
    presets = load_presets(path)
    assert presets["hero"].ops == "w=1600,h=600,fit=cover,q=60,f=avif"
    assert presets["thumb"].ops == "w=100,h=100,fit=cover,q=80,f=jpeg"  # a table replaces a preset
    assert presets["thumb_hq"].ops == "w=100,h=100,fit=cover,q=95,f=jpeg"  # preset = … builds on one
    assert presets["card"] == DEFAULT_PRESETS["card"]
    assert parse_ops("preset=hero", presets).w == 1600
    (tmp_path / "bad.toml").write_text('[presets.x]\nw = "wide"\n')
    with pytest.raises(ConfigError):
        load_presets(tmp_path / "bad.toml")
    (tmp_path / "broken.toml").write_text("[presets\n")
    with pytest.raises(ConfigError):
        load_presets(tmp_path / "broken.toml")


def test_friendly_form() -> None:
    params = {"width": "640", "format": "webp", "utm_source": "mail", "cb": "123", "quality": "80"}
    assert variant_from_params(params).ops == "w=640,h=0,fit=cover,q=80,f=webp"
    key, v = parse_request("/images/a.jpg", params, None)
    assert (key, v.path(key)) == ("images/a.jpg", "/images/a.jpg/w=640,h=0,fit=cover,q=80,f=webp")
    # format=auto and no format negotiate from Accept
    chrome = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
    assert variant_from_params({"w": "10", "format": "auto"}, chrome).f == "avif"
    assert variant_from_params({"w": "10"}, "image/webp,*/*").f == "webp"
    assert variant_from_params({"w": "10"}, None).f == "jpeg"
    assert variant_from_params({"w": "100", "dpr": "2"}).w == 200
    assert variant_from_params({"w": "100", "dpr": "9"}).w == 300  # clamped to max_dpr
    with pytest.raises(BadRequest):
        variant_from_params({"w": "x"})
    with pytest.raises(BadRequest):
        variant_from_params({"dpr": "two"})
    for odd in ("nan", "inf", "1e1", "-2", ""):
        with pytest.raises(BadRequest):
            variant_from_params({"w": "100", "dpr": odd})
    with pytest.raises(BadRequest):
        variant_from_params({"format": "gif"})


def test_negotiate_format() -> None:
    assert negotiate_format("image/avif,image/webp,*/*") == "avif"
    assert negotiate_format("image/webp,*/*") == "webp"
    assert negotiate_format("*/*") == "jpeg"
    assert negotiate_format("image/avif;q=0, image/webp") == "webp"  # q=0 refuses
    assert negotiate_format("IMAGE/AVIF") == "avif"
    assert negotiate_format("image/avif", allowed=("webp", "jpeg")) == "jpeg"
    assert negotiate_format("") == "jpeg"


@pytest.mark.parametrize(("accept", "fmt"), [
    # RFC 9110 section 12.4.2: q=0 means "not acceptable", however it is spelled
    ("image/avif;q=0,image/webp", "webp"),
    ("image/avif;q=0.000, image/webp", "webp"),
    ("image/avif;q=0., image/webp;q=0.0", "jpeg"),
    ("image/avif ; Q=0 , image/webp", "webp"),
    ("image/avif;q=1,image/webp", "avif"),
    ("image/avif;q=1.000", "avif"),
    ("image/avif;q=0.5", "avif"),
    ("image/avif;q=0.001", "avif"),
    ("\timage/avif\t;\tq=0.5\t", "avif"),
    # a weight outside the qvalue grammar is not read as acceptable
    ("image/avif;q=2,image/webp", "webp"),
    ("image/avif;q=0.0001,image/webp", "webp"),
    ("image/avif;q=1.5", "jpeg"),
    ("image/avif;q=abc", "jpeg"),
    ("image/avif;q=inf", "jpeg"),
    ("image/avif;q=", "jpeg"),
    ("image/avif;q", "jpeg"),
    ("image/avif;q=-1", "jpeg"),
    ("image/avif;q=0.5;q=0", "jpeg"),
    # the same type named twice: accepted when one range accepts it
    ("image/avif;q=0,image/avif;q=0.5", "avif"),
    # other parameters do not weigh; wildcards and look-alike types name no format
    ("image/avif;level=0", "avif"),
    ("image/*,*/*", "jpeg"),
    ("image/avif-sequence,image/webpx", "jpeg"),
    ("image/avif\n", "jpeg"),  # not OWS: the type is "image/avif\n", not image/avif
])
def test_negotiate_format_weights(accept: str, fmt: str) -> None:
    assert negotiate_format(accept) == fmt


def test_content_types() -> None:
    assert format_for_content_type("image/webp; charset=x") == "webp"
    assert format_for_content_type("image/jpg") == "jpeg"
    assert format_for_content_type("text/html") is None
    assert format_for_content_type(None) is None


def test_split_canonical() -> None:
    assert split_canonical("/images/a.jpg/w=1,h=0,fit=cover,q=80,f=jpeg") == (
        "images/a.jpg", "w=1,h=0,fit=cover,q=80,f=jpeg"
    )
    assert split_canonical("/images/a.jpg") is None


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a\\b", "C:/x", "a\x00b", "a\x01b", "x" * 1025],
)
def test_bad_source_keys(key: str) -> None:
    with pytest.raises(BadRequest):
        validate_source_key(key)


def test_traversal_through_parse_request() -> None:
    for path in ("/images/../../etc/passwd", "//etc/passwd", "/images/../x.jpg/w=1,h=0,fit=cover,q=80,f=jpeg"):
        with pytest.raises(BadRequest):
            parse_request(path, {"w": "10"}, None)
    assert validate_source_key("images/sku-00001-1.jpg") == "images/sku-00001-1.jpg"
