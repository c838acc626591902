"""The transform pipeline: source bytes + :class:`~edgeproof.canonical.Variant` → encoded variant.

A sequence of small ordered steps, each a short function taking only what it needs; the runner
(:func:`transform`) checks the deadline between steps, and libvips is asked to stop (``set_kill``)
if the deadline passes while pixels are being computed::

    probe    header only: format, dimensions, EXIF orientation; the pixel limit is checked here,
             before any pixel is decoded (decompression bombs cost nothing)
    load     shrink-on-load + EXIF autorotate + ICC → sRGB (CMYK too) + cover crop, in one
             ``thumbnail_buffer`` call so JPEG/WebP sources decode at reduced size
    colour   anything left that is not 8-bit sRGB (16-bit, grey, Lab …) → 8-bit sRGB
    fit      ``contain``: letterbox onto ``bg`` to exactly w×h
    flatten  alpha onto ``bg`` for JPEG output
    encode   JPEG/PNG/WebP/AVIF at quality ``q``, all metadata stripped (``keep=none``)

Sizes (``w``/``h`` in pixels, 0 = free):

- both set: ``cover`` → exactly w×h, cropped at gravity ``g`` (centre or attention);
  ``contain`` → exactly w×h, the whole image letterboxed on ``bg``; ``fill`` → exactly w×h,
  stretched; ``inside`` → as large as fits in w×h, never enlarged.
- one set: scaled to that dimension, aspect kept (``inside`` never enlarges); the free dimension
  is bounded by the output limits.
- none set: the source's own size (after rotation), bounded by the output limits.

pyvips errors are translated into :mod:`edgeproof.errors` in one place (:func:`vips_errors`):
an undecodable or corrupt source is 422, a deadline that passed is 503.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyvips

from edgeproof.canonical import CONTENT_TYPES, Variant
from edgeproof.errors import Overloaded, Unprocessable
from origin.limits import DEFAULT_LIMITS, Limits

__all__ = ["Deadline", "Rendition", "SourceInfo", "configure_vips", "transform", "vips_errors", "warmup_image"]

pyvips.block_untrusted_set(True)  # refuse loaders libvips marks unsafe for untrusted input

# libvips 8.18 renamed thumbnail's export_profile to output_profile
_OUTPUT_PROFILE = "output_profile" if pyvips.at_least_libvips(8, 18) else "export_profile"
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90/270 degrees


@dataclass(frozen=True, slots=True)
class Rendition:
    """An encoded variant."""

    data: bytes
    format: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the header says, with width/height as displayed (after EXIF orientation)."""

    loader: str
    width: int
    height: int
    orientation: int


class Deadline:
    """A point in monotonic time after which work stops with :class:`Overloaded` (503)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return self.at is not None and time.monotonic() > self.at

    def check(self, step: str) -> None:
        if self.expired:
            raise Overloaded(
                "deadline exceeded", detail=f"the {self.seconds:g}s request deadline passed during {step}"
            )


def configure_vips(*, concurrency: int | None = None, cache: bool = False) -> None:
    """Process-wide libvips settings: worker threads per operation; the operation cache off by default
    (each transform decodes a different buffer, so the cache only holds memory)."""
    if concurrency:
        pyvips.concurrency_set(concurrency)
    if not cache:
        pyvips.cache_set_max(0)


def _public_detail(err: pyvips.Error) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    specific = [ln for ln in lines if ":" in ln]
    return (specific[-1] if specific else (lines[-1] if lines else "libvips error"))[:200]


@contextmanager
def vips_errors(key: str, deadline: Deadline | None = None) -> Iterator[None]:
    """The one boundary where pyvips errors become edgeproof errors."""
    try:
        yield
    except pyvips.Error as err:
        if deadline is not None and deadline.expired:
            raise Overloaded("deadline exceeded", detail="the request deadline passed while encoding") from err
        raise Unprocessable(
            "source is not an image or is corrupt", detail=f"{key}: {_public_detail(err)}"
        ) from err


# ---------------------------------------------------------------------------------------- steps


def probe(data: bytes, key: str, limits: Limits) -> SourceInfo:
    """Read the header only and check the pixel limit before anything is decoded."""
    if not data:
        raise Unprocessable("source is empty", detail=f"{key} has 0 bytes")
    header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    limits.check_source_pixels(key, header.width, header.height)
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    w, h = (header.height, header.width) if orientation in _SWAPS_AXES else (header.width, header.height)
    loader = header.get("vips-loader") if header.get_typeof("vips-loader") else "unknown"
    return SourceInfo(loader=str(loader), width=w, height=h, orientation=int(orientation))


def load(data: bytes, info: SourceInfo, variant: Variant, limits: Limits) -> pyvips.Image:
    """Shrink-on-load, autorotate, ICC → sRGB, and the cover crop, through ``thumbnail_buffer``."""
    w, h, fit = variant.w, variant.h, variant.fit
    options: dict[str, object] = {_OUTPUT_PROFILE: "srgb", "fail_on": "error"}
    if w and h:
        box_w, box_h = w, h
        if fit == "cover":
            options["crop"] = variant.g
        elif fit == "fill":
            options["size"] = "force"
        elif fit == "inside":
            options["size"] = "down"
    else:
        box_w = w or limits.max_width
        box_h = h or limits.max_height
        if fit == "inside" or not (w or h):
            options["size"] = "down"
    fail_on = options.pop("fail_on")
    return pyvips.Image.thumbnail_buffer(
        data, box_w, height=box_h, option_string=f"fail_on={fail_on}", **options
    )


def colour(image: pyvips.Image) -> pyvips.Image:
    """Whatever is left that is not 8-bit sRGB (grey, 16-bit, Lab, CMYK without profile) → sRGB."""
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def _rgb(hex6: str) -> list[int]:
    return [int(hex6[i : i + 2], 16) for i in (0, 2, 4)]


def fit_box(image: pyvips.Image, variant: Variant) -> pyvips.Image:
    """``contain`` with both sizes: letterbox onto ``bg`` to exactly w×h."""
    if variant.fit != "contain" or not (variant.w and variant.h):
        return image
    if image.width == variant.w and image.height == variant.h:
        return image
    bg = _rgb(variant.bg)
    if image.hasalpha():
        image = image.flatten(background=bg)
    left = (variant.w - image.width) // 2
    top = (variant.h - image.height) // 2
    return image.embed(left, top, variant.w, variant.h, extend="background", background=bg)


def flatten(image: pyvips.Image, variant: Variant) -> pyvips.Image:
    """JPEG has no alpha: flatten onto ``bg``."""
    if variant.f == "jpeg" and image.hasalpha():
        return image.flatten(background=_rgb(variant.bg))
    return image


def _watch(image: pyvips.Image, deadline: Deadline) -> None:
    """Ask libvips to stop computing pixels once the deadline has passed."""

    def on_eval(img: pyvips.Image, _progress: object) -> None:
        if deadline.expired:
            img.set_kill(True)

    image.set_progress(True)
    image.signal_connect("eval", on_eval)


def encode(image: pyvips.Image, variant: Variant) -> bytes:
    """Encode with all metadata stripped; settings match sharp's defaults for a fair comparison."""
    q = variant.q
    if variant.f == "jpeg":
        return bytes(image.jpegsave_buffer(Q=q, keep="none", optimize_coding=True))
    if variant.f == "webp":
        return bytes(image.webpsave_buffer(Q=q, keep="none", effort=4))
    if variant.f == "avif":
        return bytes(image.heifsave_buffer(Q=q, keep="none", compression="av1", effort=4, bitdepth=8))
    return bytes(image.pngsave_buffer(keep="none", compression=6))


# --------------------------------------------------------------------------------------- runner


def transform(
    data: bytes,
    variant: Variant,
    *,
    key: str = "source",
    limits: Limits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
) -> Rendition:
    """Run the pipeline; raises Unprocessable (422), BadRequest (400) or Overloaded (503)."""
    deadline = deadline or Deadline(None)
    limits.check_variant(variant)
    limits.check_source_bytes(key, len(data))
    with vips_errors(key, deadline):
        info = probe(data, key, limits)
        deadline.check("probe")
        image = load(data, info, variant, limits)
        limits.check_output(variant.f, image.width, image.height)
        deadline.check("load")
        image = colour(image)
        image = fit_box(image, variant)
        image = flatten(image, variant)
        deadline.check("fit")
        if deadline.at is not None:
            _watch(image, deadline)
        out = encode(image, variant)
        deadline.check("encode")
        return Rendition(data=out, format=variant.f, width=image.width, height=image.height)


def warmup_image() -> bytes:
    """A tiny JPEG made in memory, for warming up codecs before a worker reports ready."""
    image = (pyvips.Image.black(32, 32, bands=3) + [200, 120, 40]).cast("uchar")
    return bytes(image.jpegsave_buffer(Q=80))
