"""The pyvips pipeline and the limits checker, on real images made in memory.

Outputs are checked by dimensions, format, orientation and sampled colours, never by exact bytes.
"""

from __future__ import annotations

import pytest
from _origin_helpers import (
    BLUE,
    RED,
    alpha_png,
    bomb_png,
    cmyk_jpeg,
    decode,
    jpeg,
    loader,
    near,
    oriented_jpeg,
    pixel,
)
from edgeproof.origin.limits import Limits
from edgeproof.origin.transform import Deadline, transform

from edgeproof.canonical import parse_ops
from edgeproof.errors import BadRequest, Overloaded, PayloadTooLarge, Unprocessable

SRC = jpeg(800, 600)


def run(ops: str, data: bytes = SRC, **kw: object) -> tuple[object, object]:
    out = transform(data, parse_ops(ops), key="t.jpg", **kw)  # type: ignore[arg-type]
    return out, decode(out.data)


@pytest.mark.parametrize(
    "ops, size",
    [
        ("w=200,h=200,fit=cover,q=80,f=jpeg", (200, 200)),
        ("w=200,h=200,fit=cover,g=attention,q=80,f=jpeg", (200, 200)),
        ("w=200,h=200,fit=contain,q=80,f=jpeg", (200, 200)),
        ("w=200,h=50,fit=fill,q=80,f=jpeg", (200, 50)),
        ("w=200,h=200,fit=inside,q=80,f=jpeg", (200, 150)),
        ("w=2000,h=2000,fit=inside,q=80,f=jpeg", (800, 600)),  # inside never enlarges
        ("w=400,h=0,fit=cover,q=80,f=jpeg", (400, 300)),
        ("w=0,h=300,fit=cover,q=80,f=jpeg", (400, 300)),
        ("w=1600,h=0,fit=cover,q=80,f=jpeg", (1600, 1200)),  # cover may enlarge
        ("w=0,h=0,fit=cover,q=80,f=jpeg", (800, 600)),
    ],
)
def test_sizes(ops: str, size: tuple[int, int]) -> None:
    out, image = run(ops)
    assert (image.width, image.height) == size
    assert (out.width, out.height) == size


@pytest.mark.parametrize("fmt, expect", [("jpeg", "jpegload"), ("png", "pngload"), ("webp", "webpload"),
                                         ("avif", "heifload")])
def test_formats(fmt: str, expect: str) -> None:
    out, image = run(f"w=160,h=120,fit=cover,q=60,f={fmt}")
    assert loader(out.data).startswith(expect)
    assert out.content_type == f"image/{fmt}"
    assert (image.width, image.height) == (160, 120)
    assert near(pixel(image, 80, 10), RED) and near(pixel(image, 80, 110), BLUE)


def test_quality_changes_size() -> None:
    low, _ = run("w=400,h=0,fit=cover,q=20,f=jpeg", jpeg(800, 600, q=95))
    high, _ = run("w=400,h=0,fit=cover,q=95,f=jpeg", jpeg(800, 600, q=95))
    assert len(low.data) < len(high.data)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied_and_stripped(orientation: int) -> None:
    out, image = run("w=100,h=0,fit=cover,q=90,f=jpeg", oriented_jpeg(orientation))
    assert (image.width, image.height) == (100, 50)  # upright 400x200 scaled
    assert near(pixel(image, 50, 5), RED) and near(pixel(image, 50, 45), BLUE)
    assert not image.get_typeof("exif-data") and not image.get_typeof("orientation")


def test_cmyk_to_srgb() -> None:
    out, image = run("w=150,h=0,fit=cover,q=90,f=jpeg", cmyk_jpeg())
    assert image.interpretation == "srgb" and image.bands == 3
    assert not image.get_typeof("icc-profile-data")  # metadata stripped, pixels already sRGB
    assert near(pixel(image, 75, 10), RED, tol=60)
    r, g, b = pixel(image, 75, 90)  # pure blue is out of the CMYK gamut: bluish, not exact
    assert b > r + 50 and b > g + 50


def test_alpha_flattened_for_jpeg_kept_for_webp() -> None:
    _out, as_jpeg = run("w=100,h=100,fit=cover,q=90,f=jpeg", alpha_png())
    assert as_jpeg.bands == 3 and near(pixel(as_jpeg, 2, 2), (255, 255, 255), tol=10)
    _out, as_webp = run("w=100,h=100,fit=cover,q=90,f=webp", alpha_png())
    assert as_webp.bands == 4 and pixel(as_webp, 2, 2)[3] < 10


def test_contain_letterboxes_on_background() -> None:
    _out, image = run("w=300,h=300,fit=contain,bg=00ff00,q=90,f=png")
    assert (image.width, image.height) == (300, 300)
    assert near(pixel(image, 150, 5), (0, 255, 0), tol=5)  # band above the 300x225 image
    assert near(pixel(image, 150, 100), RED) and near(pixel(image, 150, 200), BLUE)


def test_limits() -> None:
    with pytest.raises(Unprocessable) as info:
        run("w=100,h=0,fit=cover,q=80,f=jpeg", bomb_png())
    assert info.value.status == 422 and "pixel limit" in info.value.message
    with pytest.raises(PayloadTooLarge):
        run("w=100,h=0,fit=cover,q=80,f=jpeg", limits=Limits(max_source_bytes=1000))
    with pytest.raises(BadRequest):
        run("w=5000,h=0,fit=cover,q=80,f=jpeg")
    with pytest.raises(BadRequest):  # AVIF over its own pixel cap
        run("w=3000,h=3000,fit=cover,q=80,f=avif")
    # a free dimension is bounded by the output limit rather than refused
    _out, image = run("w=0,h=0,fit=cover,q=80,f=jpeg", limits=Limits(max_width=200, max_height=200))
    assert (image.width, image.height) == (200, 150)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, not an image", SRC[: len(SRC) // 2], b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
     b"GIF89a" + b"\x00" * 30],
)
def test_not_an_image_or_corrupt(data: bytes) -> None:
    with pytest.raises(Unprocessable) as info:
        run("w=100,h=0,fit=cover,q=80,f=jpeg", data)
    assert info.value.to_json()["error"] == "unprocessable"


def test_deadline() -> None:
    deadline = Deadline(0.0)
    with pytest.raises(Overloaded) as info:
        run("w=100,h=0,fit=cover,q=80,f=jpeg", deadline=deadline)
    assert info.value.status == 503


def _header_cases() -> dict[str, bytes]:
    import pyvips

    base = decode(jpeg(120, 80))
    cases = {}
    for o in range(1, 9):
        tagged = base.copy()
        tagged.set_type(pyvips.GValue.gint_type, "orientation", o)
        cases[f"orientation {o}"] = bytes(tagged.jpegsave_buffer(keep="exif"))
    cases["progressive"] = bytes(decode(oriented_jpeg(6, 120, 60)).jpegsave_buffer(interlace=True))
    cases["grey"] = bytes(base.colourspace("b-w").jpegsave_buffer())
    cases["cmyk"] = cmyk_jpeg(120, 80)
    cases["cmyk, no profile"] = bytes(decode(cmyk_jpeg(120, 80)).jpegsave_buffer(keep="none"))
    cases["icc"] = bytes(base.jpegsave_buffer(profile="srgb"))
    return cases


@pytest.mark.parametrize("name", list(_header_cases()))
def test_jpeg_header_read_in_python_matches_libvips(name: str) -> None:
    """The probe reads JPEG markers itself; libvips's own header load is the reference."""
    import pyvips
    from edgeproof.origin.limits import DEFAULT_LIMITS
    from edgeproof.origin.transform import _SWAPS_AXES, _jpeg_header, probe

    data = _header_cases()[name]
    info = _jpeg_header(data)
    assert info is not None and probe(data, name, DEFAULT_LIMITS) == info
    header = pyvips.Image.new_from_buffer(data, "")
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    size = (header.height, header.width) if orientation in _SWAPS_AXES else (header.width, header.height)
    assert (info.width, info.height, info.orientation) == (*size, orientation)
    colour = bool(header.get_typeof("icc-profile-data")) or header.interpretation == "cmyk"
    assert info.needs_colour_transform == colour
