"""The transform pipeline: source bytes + :class:`~edgeproof.canonical.Variant` → encoded variant.

A sequence of small ordered steps, each a short function taking only what it needs; the runner
(:func:`transform`) checks the deadline between steps, and libvips is asked to stop (``set_kill``)
if the deadline passes while pixels are being computed::

    probe    header only (JPEG markers read in Python, other formats by libvips): format,
             dimensions, EXIF orientation, ICC; the pixel limit is checked
             here, before any pixel is decoded (decompression bombs cost nothing)
    plan     the scale factors and crop box the sizes and fit mean for this source
    load     decode with shrink-on-load (JPEG/WebP at 1/2, 1/4, 1/8 when the resize allows)
    resize   Lanczos3 to the planned size (alpha premultiplied)
    rotate   EXIF orientation, on the already small image
    colour   embedded ICC / CMYK → sRGB; anything else not 8-bit sRGB (16-bit, grey) → sRGB
    crop     ``cover``: exactly w×h at gravity centre or attention
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

Sources are decoded at libvips's *fail-on-warning* level (:data:`FAIL_ON`), as sharp does by default
(``failOn: 'warning'``): libjpeg only *warns* about a JPEG damaged mid-stream ("Corrupt JPEG data",
"premature end of data segment") and then paints grey over the rest, so at the ``error`` level such
a file was served 200, and written to the derivative store as ``immutable`` for 30 days. On a sound
JPEG the stricter level costs nothing measurable (libjpeg's warnings are counted either way; see
docs/origin.md for the figure). The header probe is not affected: it reads no pixels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyvips
from edgeproof.origin.limits import DEFAULT_LIMITS, Limits

from edgeproof.canonical import CONTENT_TYPES, Variant
from edgeproof.errors import Overloaded, Unprocessable

__all__ = ["DEFAULT_AVIF_EFFORT", "FAIL_ON", "Deadline", "Plan", "Rendition", "SourceInfo", "configure_vips", "transform", "vips_errors",
           "warmup_image"]

pyvips.block_untrusted_set(True)  # refuse loaders libvips marks unsafe for untrusted input

_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90/270 degrees

#: libvips's fail-on level for decoding (``fail_on`` since libvips 8.12; older: ``fail=True``, which
#: was already "fail on the first warning"): a source that decodes with any warning is refused (422)
FAIL_ON = "warning"
_FAIL_OPTION: dict[str, object] = {"fail_on": FAIL_ON} if pyvips.at_least_libvips(8, 12) else {"fail": True}


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
    needs_colour_transform: bool  # an embedded ICC profile, or CMYK
    #: byte spans of the JPEG's APP1 segments (EXIF, XMP), cut before decoding: the output strips
    #: all metadata anyway, and libvips parsing EXIF again costs ~0.15 ms (orientation is known)
    app1: tuple[tuple[int, int], ...] = ()


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


_SOF_READ = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive Huffman: read by _jpeg_header
_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDA}  # left to libvips


def _exif_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 in an EXIF (TIFF) block; 1 when absent or out of range."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)  # type: ignore[arg-type]
    count = int.from_bytes(tiff[ifd : ifd + 2], order)  # type: ignore[arg-type]
    for e in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[e : e + 2], order) == 0x0112:  # type: ignore[arg-type]
            kind = int.from_bytes(tiff[e + 2 : e + 4], order)  # type: ignore[arg-type]
            value = int.from_bytes(tiff[e + 8 : e + (10 if kind == 3 else 12)], order)  # type: ignore[arg-type]
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_header(data: bytes) -> SourceInfo | None:
    """The header of a Huffman-coded JPEG read from its markers in Python (a libvips header load
    costs ~0.3 ms: format sniff, libexif); None for anything unusual, which libvips then reads."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    i, n, orientation, icc = 2, len(data), 1, False
    app1: list[tuple[int, int]] = []
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_READ:
            seg = data[i + 4 : i + 10]
            h, w, components = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5:6]
            if len(seg) < 6 or not (w and h) or components not in (b"\x01", b"\x03", b"\x04"):
                return None
            if orientation in _SWAPS_AXES:
                w, h = h, w
            return SourceInfo(loader="jpegload_buffer", width=w, height=h, orientation=orientation,
                              needs_colour_transform=icc or components == b"\x04", app1=tuple(app1))
        if marker in _SOF_OTHER or length < 2:
            return None
        if marker == 0xE1:
            app1.append((i, i + 2 + length))
            if data[i + 4 : i + 10] == b"Exif\0\0" and orientation == 1:
                orientation = _exif_orientation(data[i + 10 : i + 2 + length])
        elif marker == 0xE2 and data[i + 4 : i + 16] == b"ICC_PROFILE\0":
            icc = True
        i += 2 + length
    return None


def probe(data: bytes, key: str, limits: Limits) -> SourceInfo:
    """Read the header only and check the pixel limit before anything is decoded."""
    if not data:
        raise Unprocessable("source is empty", detail=f"{key} has 0 bytes")
    info = _jpeg_header(data)
    if info is not None:
        limits.check_source_pixels(key, info.width, info.height)
        return info
    header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    limits.check_source_pixels(key, header.width, header.height)
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    w, h = (header.height, header.width) if orientation in _SWAPS_AXES else (header.width, header.height)
    loader = header.get("vips-loader") if header.get_typeof("vips-loader") else "unknown"
    colour = bool(header.get_typeof("icc-profile-data")) or header.interpretation == "cmyk"
    return SourceInfo(loader=str(loader), width=w, height=h, orientation=int(orientation),
                      needs_colour_transform=colour)


@dataclass(frozen=True, slots=True)
class Plan:
    """Scale factors (relative to the displayed source) and the final box, from sizes and fit."""

    sx: float
    sy: float
    crop_to: tuple[int, int] | None  # cover: crop the scaled image to exactly this


def plan(info: SourceInfo, variant: Variant, limits: Limits) -> Plan:
    """What the sizes mean for this source (see the module docstring)."""
    W, H = info.width, info.height  # noqa: N806 - source size, as displayed
    w, h, fit = variant.w, variant.h, variant.fit
    bound = min(limits.max_width / W, limits.max_height / H)  # the output limits
    if w and h:
        if fit == "fill":
            return Plan(w / W, h / H, None)
        if fit == "cover":
            s = max(w / W, h / H)
            return Plan(s, s, (w, h))
        s = min(w / W, h / H)
        if fit == "inside":
            s = min(s, 1.0)
        return Plan(s, s, None)
    if w or h:
        s = min(w / W if w else h / H, bound)
        if fit == "inside":
            s = min(s, 1.0)
        return Plan(s, s, None)
    s = min(1.0, bound)
    return Plan(s, s, None)


def load(data: bytes, info: SourceInfo, p: Plan) -> pyvips.Image:
    """Decode with shrink-on-load: JPEG and WebP decode at 1/2, 1/4 or 1/8 size when the result
    still leaves the final resize to do (as sharp does), everything else at full size."""
    factor = 1.0 / max(p.sx, p.sy)
    k = next((k for k in (8, 4, 2) if factor >= k), 1)
    options: dict[str, object] = {"access": "sequential", **_FAIL_OPTION}
    if k > 1 and info.loader.startswith("jpegload"):
        options["shrink"] = k
    elif k > 1 and info.loader.startswith("webpload"):
        options["scale"] = 1.0 / k
    if info.app1:
        view, at, parts = memoryview(data), 0, []
        for start, end in info.app1:
            parts.append(view[at:start])
            at = end
        parts.append(view[at:])
        data = b"".join(parts)
    if info.loader.endswith("_buffer"):  # the loader the probe found: no second format sniff
        return pyvips.Operation.call(info.loader, data, **options)
    return pyvips.Image.new_from_buffer(data, "", **options)


def resize(image: pyvips.Image, info: SourceInfo, p: Plan) -> pyvips.Image:
    """Lanczos3 to the planned size, in the stored orientation (rotation comes after, on fewer
    pixels); alpha is premultiplied so edges do not darken."""
    sx, sy = (p.sy, p.sx) if info.orientation in _SWAPS_AXES else (p.sx, p.sy)
    stored_w, stored_h = (info.height, info.width) if info.orientation in _SWAPS_AXES else (info.width, info.height)
    tw, th = max(1, round(stored_w * sx)), max(1, round(stored_h * sy))
    if (image.width, image.height) == (tw, th):
        return image
    alpha = image.hasalpha()
    if alpha:
        image = image.premultiply()
    image = image.resize(tw / image.width, vscale=th / image.height)
    if alpha:
        image = image.unpremultiply().cast("uchar" if image.format in ("float", "double") else image.format)
    if image.width < tw or image.height < th:  # rounding: never a pixel short
        image = image.embed(0, 0, max(tw, image.width), max(th, image.height), extend="copy")
    if image.width > tw or image.height > th:
        image = image.crop(0, 0, tw, th)
    return image


def rotate(image: pyvips.Image, info: SourceInfo) -> pyvips.Image:
    """Apply the EXIF orientation (on the already small image) and drop the tag."""
    if info.orientation == 1:
        return image
    image = image.copy_memory()
    if not image.get_typeof("orientation"):  # the EXIF segment was cut before decoding
        image.set_type(pyvips.GValue.gint_type, "orientation", info.orientation)
    return image.autorot()


def colour(image: pyvips.Image, info: SourceInfo) -> pyvips.Image:
    """Embedded ICC profile or CMYK → sRGB; whatever else is not 8-bit sRGB (grey, 16-bit) → sRGB."""
    if info.needs_colour_transform:
        if image.get_typeof("icc-profile-data"):
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        elif image.interpretation == "cmyk":  # CMYK without a profile: the built-in CMYK profile
            image = image.icc_transform("srgb", input_profile="cmyk", intent="perceptual")
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def crop(image: pyvips.Image, variant: Variant, p: Plan) -> pyvips.Image:
    """``cover``: cut the scaled image to exactly w×h at the gravity."""
    if p.crop_to is None or (image.width, image.height) == p.crop_to:
        return image
    w, h = p.crop_to
    if variant.g == "attention":
        return image.copy_memory().smartcrop(w, h, interesting="attention")
    return image.crop((image.width - w) // 2, (image.height - h) // 2, w, h)


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


#: AVIF encoder effort (0 fastest … 9 smallest), sharp's default.
DEFAULT_AVIF_EFFORT = 4
#: libvips 8.18 tunes AV1 for "iq" by default, which at the same Q makes files ~5x larger (and ~2x
#: slower) than libaom's own default, "psnr", which sharp (libvips 8.17) gets. Use the latter.
_AVIF_TUNE = {"tune": "psnr"} if pyvips.at_least_libvips(8, 18) else {}


def encode(image: pyvips.Image, variant: Variant, avif_effort: int = DEFAULT_AVIF_EFFORT) -> bytes:
    """Encode with all metadata stripped; settings match sharp's defaults for a fair comparison."""
    q = variant.q
    if variant.f == "jpeg":
        return bytes(image.jpegsave_buffer(Q=q, keep="none", optimize_coding=True))
    if variant.f == "webp":
        return bytes(image.webpsave_buffer(Q=q, keep="none", effort=4))
    if variant.f == "avif":
        return bytes(image.heifsave_buffer(Q=q, keep="none", compression="av1", effort=avif_effort,
                                           bitdepth=8, **_AVIF_TUNE))
    return bytes(image.pngsave_buffer(keep="none", compression=6))


# --------------------------------------------------------------------------------------- runner


def transform(
    data: bytes,
    variant: Variant,
    *,
    key: str = "source",
    limits: Limits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
    avif_effort: int = DEFAULT_AVIF_EFFORT,
) -> Rendition:
    """Run the pipeline; raises Unprocessable (422), BadRequest (400) or Overloaded (503)."""
    deadline = deadline or Deadline(None)
    limits.check_variant(variant)
    limits.check_source_bytes(key, len(data))
    with vips_errors(key, deadline):
        info = probe(data, key, limits)
        p = plan(info, variant, limits)
        limits.check_output(variant.f, round(info.width * p.sx), round(info.height * p.sy))
        deadline.check("probe")
        image = load(data, info, p)
        image = resize(image, info, p)
        image = rotate(image, info)
        deadline.check("resize")
        image = colour(image, info)
        image = crop(image, variant, p)
        image = fit_box(image, variant)
        image = flatten(image, variant)
        deadline.check("fit")
        if deadline.at is not None:
            _watch(image, deadline)
        out = encode(image, variant, avif_effort)
        deadline.check("encode")
        return Rendition(data=out, format=variant.f, width=image.width, height=image.height)


def warmup_image() -> bytes:
    """A tiny JPEG made in memory, for warming up codecs before a worker reports ready."""
    image = (pyvips.Image.black(32, 32, bands=3) + [200, 120, 40]).cast("uchar")
    return bytes(image.jpegsave_buffer(Q=80))
