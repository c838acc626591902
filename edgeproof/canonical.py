"""The canonical request: the one spelling of a variant.

A canonical request is ``/{source_key}/{ops}``; ``ops`` is a comma-separated list in a fixed order::

    w={width},h={height},fit={fit}[,g={gravity}][,bg={rrggbb}],q={quality},f={format}

- ``w``/``h``: pixels, ``0`` = free (keep aspect ratio); both ``0`` = the source's own size.
- ``fit``: ``cover`` (fill the box, crop), ``contain`` (letterbox on ``bg``), ``inside`` (fit within,
  never crop), ``fill`` (stretch).
- ``g``: crop gravity for ``cover`` only: ``centre`` (default, omitted) or ``attention``.
- ``bg``: background for ``contain`` only, lower-case hex ``rrggbb``; ``ffffff`` is the default and
  omitted.
- ``q``: quality 1..100.  ``f``: ``jpeg``, ``png``, ``webp`` or ``avif``.

Example: ``/images/sku-123.jpg/w=640,h=0,fit=cover,q=80,f=webp``. That string is also the
derivative-store key (without the leading slash) and, for a good strategy, the cache key.

The parser is lenient about order (it re-spells), strict about names and values: an unknown op or
a malformed value raises :class:`~edgeproof.errors.BadRequest`. The "friendly" query form
(``/images/a.jpg?w=640&format=webp``) maps to the same :class:`Variant` through
:func:`variant_from_params`, whose alias table is the one every strategy builds on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edgeproof.errors import BadRequest, ConfigError
from edgeproof.tomlfile import read_toml

__all__ = [
    "DEFAULT_PRESETS",
    "FITS",
    "FORMAT_ALIASES",
    "GRAVITY_ALIASES",
    "FORMATS",
    "GRAVITIES",
    "PARAM_ALIASES",
    "CONTENT_TYPES",
    "Variant",
    "format_for_content_type",
    "load_presets",
    "negotiate_format",
    "parse_canonical",
    "parse_ops",
    "parse_request",
    "peek_request",
    "preset_from_ops",
    "presets_from_table",
    "split_canonical",
    "validate_source_key",
    "variant_from_params",
]

FITS = ("cover", "contain", "inside", "fill")
GRAVITIES = ("centre", "attention")
FORMATS = ("jpeg", "png", "webp", "avif")
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}
FORMAT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "avif": "avif"}
GRAVITY_ALIASES = {"centre": "centre", "center": "centre", "attention": "attention", "smart": "attention"}

DEFAULT_QUALITY = 80
DEFAULT_BG = "ffffff"
MAX_DIMENSION_SYNTAX = 100_000  # syntax bound only; the origin's limits checker applies the real maximum
_BG = re.compile(r"[0-9a-f]{6}")
_WHOLE = re.compile(r"\d{1,6}")
_DPR = re.compile(r"\d{1,2}(\.\d{1,3})?")

#: Friendly query-parameter names and the canonical op each one means.
PARAM_ALIASES: dict[str, str] = {
    "w": "w", "width": "w",
    "h": "h", "height": "h",
    "fit": "fit",
    "q": "q", "quality": "q",
    "f": "f", "fmt": "f", "format": "f", "fm": "f",
    "g": "g", "gravity": "g", "crop": "g",
    "bg": "bg", "background": "bg",
    "preset": "preset",
    "dpr": "dpr",
}


@dataclass(frozen=True, slots=True)
class Variant:
    """One rendition of a source: size, fit, crop, background, quality, format."""

    w: int = 0
    h: int = 0
    fit: str = "cover"
    g: str = "centre"
    bg: str = DEFAULT_BG
    q: int = DEFAULT_QUALITY
    f: str = "jpeg"

    def __post_init__(self) -> None:
        if not (0 <= self.w <= MAX_DIMENSION_SYNTAX and 0 <= self.h <= MAX_DIMENSION_SYNTAX):
            raise BadRequest("width and height must be whole numbers from 0", detail=f"w={self.w},h={self.h}")
        if self.fit not in FITS:
            raise BadRequest(f"unknown fit {self.fit!r}", detail=f"fit must be one of {', '.join(FITS)}")
        if self.g not in GRAVITIES:
            raise BadRequest(f"unknown gravity {self.g!r}", detail=f"g must be one of {', '.join(GRAVITIES)}")
        if not _BG.fullmatch(self.bg):
            raise BadRequest(f"bad background {self.bg!r}", detail="bg must be 6 lower-case hex digits")
        if not 1 <= self.q <= 100:
            raise BadRequest(f"quality {self.q} out of range", detail="q must be 1..100")
        if self.f not in FORMATS:
            raise BadRequest(f"unknown format {self.f!r}", detail=f"f must be one of {', '.join(FORMATS)}")

    @property
    def ops(self) -> str:
        """The canonical ops string, in the fixed order."""
        parts = [f"w={self.w}", f"h={self.h}", f"fit={self.fit}"]
        if self.fit == "cover" and self.g != "centre":
            parts.append(f"g={self.g}")
        if self.fit == "contain" and self.bg != DEFAULT_BG:
            parts.append(f"bg={self.bg}")
        parts += [f"q={self.q}", f"f={self.f}"]
        return ",".join(parts)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.f]

    def normalized(self) -> Variant:
        """Drop options that do not affect the output (gravity outside cover, bg outside contain).

        Itself when there is nothing to drop (a frozen value: equal either way, and no new object on the
        replay's hot path)."""
        g = self.g if self.fit == "cover" else "centre"
        bg = self.bg if self.fit == "contain" else DEFAULT_BG
        if g == self.g and bg == self.bg:
            return self
        return Variant(self.w, self.h, self.fit, g, bg, self.q, self.f)

    def path(self, source_key: str) -> str:
        """The canonical request for this variant of ``source_key``."""
        return f"/{source_key}/{self.ops}"


#: Named presets; a TOML file can replace or extend them (see :func:`load_presets`).
DEFAULT_PRESETS: dict[str, Variant] = {
    "thumb": Variant(w=160, h=160, fit="cover", q=75, f="webp"),
    "card": Variant(w=400, h=400, fit="contain", q=80, f="webp"),
    "pdp": Variant(w=800, h=0, fit="inside", q=80, f="webp"),
    "zoom": Variant(w=2000, h=0, fit="inside", q=85, f="jpeg"),
}


def load_presets(path: str | Path | None) -> dict[str, Variant]:
    """Presets from a TOML file with ``[presets.NAME]`` tables of ops; built-ins when ``path`` is None."""
    if path is None:
        return dict(DEFAULT_PRESETS)
    data = read_toml(path, "presets from")
    return {**DEFAULT_PRESETS, **presets_from_table(data.get("presets", {}), DEFAULT_PRESETS, where=str(path))}


def preset_from_ops(ops: Mapping[str, object], presets: Mapping[str, Variant] = DEFAULT_PRESETS) -> Variant:
    """One preset from its table of ops (``{"w": 160, "fit": "cover", "preset": "thumb"}``: a TOML
    ``[presets.NAME]`` table or a presets-table item), built on ``presets`` when it names one.

    The one preset parser: the TOML file, ``origin presets push`` and the origin reading a DynamoDB
    item all go through it. A bad op or value raises BadRequest."""
    return _variant_from_ops({k: str(v) for k, v in ops.items()}, presets)


def presets_from_table(table: object, base: Mapping[str, Variant] = DEFAULT_PRESETS, *,
                       where: str = "presets") -> dict[str, Variant]:
    """The presets of a ``[presets]`` table (name → table of ops), in order, each able to build on
    ``base`` and on the ones before it; ConfigError naming ``where`` and the preset."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [presets] must be a table of presets")
    known = dict(base)
    out: dict[str, Variant] = {}
    for name, ops in table.items():
        if not isinstance(ops, dict):
            raise ConfigError(f"{where}: [presets.{name}] must be a table of ops")
        try:
            known[name] = out[name] = preset_from_ops(ops, known)
        except BadRequest as err:
            raise ConfigError(f"{where}: preset {name!r}: {err.message}") from err
    return out


#: RFC 9110 section 12.4.2 ``qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )``
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
#: RFC 9110 section 5.6.3 ``OWS = *( SP / HTAB )``: the only whitespace around list items and parameters
_OWS = " \t"


def _acceptable_weight(value: str) -> bool:
    """Whether a ``q`` parameter's value lets its media range be used: an RFC 9110 qvalue above zero.

    ``q=0`` means "not acceptable" (RFC 9110 section 12.4.2), so do ``q=0.``, ``q=0.0`` and ``q=0.000``. A
    weight outside the qvalue grammar (``q=2``, ``q=0.0001``, ``q=abc``, ``q=inf``, ``q=``) is not a
    weight at all; it is read as "not acceptable" too, because serving AVIF or WebP to a client that did
    not clearly accept it breaks the image, while serving JPEG (always acceptable here) only costs bytes.
    The exported CloudFront Function (analytics/strategies/viewer_request.js) applies the same rule.
    """
    return _QVALUE.fullmatch(value) is not None and any(c in "123456789" for c in value)


def _accepted_types(accept: str) -> set[str]:
    """Media types an ``Accept`` header names with an acceptable weight (``image/avif;q=0`` refuses).

    The header is split into comma-separated media ranges and each range at ``;`` into the type and its
    parameters (OWS trimmed, names and types compared case-insensitively). A range is accepted unless a
    ``q`` parameter of it is zero or malformed (:func:`_acceptable_weight`); a type named by several
    ranges is accepted when one of them is. Wildcards (``image/*``, ``*/*``) name no type: browsers send
    ``*/*`` whether or not they decode AVIF, so only an explicit ``image/avif`` selects AVIF.
    """
    types: set[str] = set()
    for item in accept.lower().split(","):
        media, *params = (p.strip(_OWS) for p in item.split(";"))
        ok = True
        for param in params:
            name, _, value = param.partition("=")
            if name.strip(_OWS) == "q" and not _acceptable_weight(value.strip(_OWS)):
                ok = False
        if media and ok:
            types.add(media)
    return types


def negotiate_format(accept: str | None, allowed: tuple[str, ...] = ("avif", "webp", "jpeg")) -> str:
    """``format=auto``: the first of ``allowed`` that the ``Accept`` header takes (jpeg always is).

    Memoised per (Accept, allowed): a log or an edge sees few distinct Accept headers, and parsing one
    was most of the cost of keying a request (the function is pure; the memo is bounded)."""
    return _negotiate(accept or "", tuple(allowed))


@lru_cache(maxsize=4096)
def _negotiate(accept: str, allowed: tuple[str, ...]) -> str:
    accepted = _accepted_types(accept)
    for fmt in allowed:
        if fmt in ("jpeg", "png") or CONTENT_TYPES[fmt] in accepted:
            return fmt
    return "jpeg"


def format_for_content_type(content_type: str | None) -> str | None:
    """The format a response content type names (``image/webp`` → ``webp``), or None."""
    if not content_type:
        return None
    ct = content_type.split(";", 1)[0].strip().lower()
    for fmt, known in CONTENT_TYPES.items():
        if ct == known:
            return fmt
    return "jpeg" if ct == "image/jpg" else None


def validate_source_key(key: str) -> str:
    """A relative key with no traversal: raises BadRequest for absolute or ``..`` keys."""
    if not key or len(key) > 1024:
        raise BadRequest("bad source key", detail="the source key must be 1..1024 characters")
    if key.startswith("/") or "\\" in key or "\x00" in key or re.match(r"^[A-Za-z]:", key):
        raise BadRequest("absolute or malformed source key", detail="the source key must be a relative path")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadRequest("path traversal in source key", detail="'.', '..' and empty path segments are refused")
    if any(ord(c) < 0x20 for c in key):
        raise BadRequest("control character in source key")
    return key


def _int(name: str, value: str) -> int:
    value = value.strip()
    if not _WHOLE.fullmatch(value):
        raise BadRequest(f"malformed {name}", detail=f"{name}={value!r} is not a whole number")
    return int(value)


def _variant_from_ops(ops: Mapping[str, str], presets: Mapping[str, Variant]) -> Variant:
    base = Variant()
    if "preset" in ops:
        name = ops["preset"].strip().lower()
        if name not in presets:
            raise BadRequest(f"unknown preset {name!r}", detail=f"known presets: {', '.join(sorted(presets))}")
        base = presets[name]
    fields: dict[str, object] = {}
    for key, raw in ops.items():
        value = raw.strip().lower()
        if key == "preset":
            continue
        if key in ("w", "h", "q"):
            fields[key] = _int(key, value)
        elif key == "fit":
            fields["fit"] = value
        elif key == "f":
            if value not in FORMAT_ALIASES:
                raise BadRequest(f"unknown format {value!r}", detail=f"f must be one of {', '.join(FORMATS)}")
            fields["f"] = FORMAT_ALIASES[value]
        elif key == "g":
            if value not in GRAVITY_ALIASES:
                raise BadRequest(f"unknown gravity {value!r}", detail=f"g must be one of {', '.join(GRAVITIES)}")
            fields["g"] = GRAVITY_ALIASES[value]
        elif key == "bg":
            fields["bg"] = value.lstrip("#")
        else:
            raise BadRequest(f"unknown op {key!r}", detail="known ops: w, h, fit, g, bg, q, f, preset")
    # one construction (validated as dataclasses.replace(base, **fields) would be), then normalised
    variant = Variant(
        fields.get("w", base.w), fields.get("h", base.h), fields.get("fit", base.fit),  # type: ignore[arg-type]
        fields.get("g", base.g), fields.get("bg", base.bg), fields.get("q", base.q),  # type: ignore[arg-type]
        fields.get("f", base.f),  # type: ignore[arg-type]
    )
    return variant.normalized()


def parse_ops(ops: str, presets: Mapping[str, Variant] = DEFAULT_PRESETS) -> Variant:
    """Parse an ops segment (``w=640,h=0,fit=cover,q=80,f=webp`` or ``preset=thumb``)."""
    if not ops or len(ops) > 200:
        raise BadRequest("malformed ops", detail="the ops segment must be 1..200 characters")
    pairs: dict[str, str] = {}
    for item in ops.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BadRequest("malformed op", detail=f"{item!r} is not name=value")
        if key in pairs:
            raise BadRequest("repeated op", detail=f"{key} appears twice")
        pairs[key] = value
    return _variant_from_ops(pairs, presets)


def split_canonical(path: str) -> tuple[str, str] | None:
    """``/{source_key}/{ops}`` → ``(source_key, ops)`` when the last segment looks like ops, else None."""
    head, sep, last = path.rpartition("/")
    if not sep or "=" not in last:
        return None
    return head.lstrip("/"), last


def parse_canonical(path: str, presets: Mapping[str, Variant] = DEFAULT_PRESETS) -> tuple[str, Variant]:
    """Parse a canonical request path into its validated source key and variant."""
    split = split_canonical(path)
    if split is None:
        raise BadRequest("not a canonical request", detail="expected /{source_key}/{ops}")
    key, ops = split
    return validate_source_key(key), parse_ops(ops, presets)


def variant_from_params(
    params: Mapping[str, str],
    accept: str | None = None,
    presets: Mapping[str, Variant] = DEFAULT_PRESETS,
    *,
    max_dpr: float = 3.0,
) -> Variant:
    """The friendly query form → a Variant.

    Known names and their aliases come from :data:`PARAM_ALIASES`; unknown parameters (tracking,
    cache busters) are ignored. ``format=auto`` (or no format) negotiates from ``accept``. ``dpr``
    multiplies width and height (clamped to ``1..max_dpr``). Malformed values raise BadRequest.
    """
    ops: dict[str, str] = {}
    dpr = 1.0
    for name, value in params.items():
        op = PARAM_ALIASES.get(name.strip().lower())
        if op is None:
            continue
        if op == "dpr":
            if not _DPR.fullmatch(value.strip()):
                raise BadRequest("malformed dpr", detail=f"dpr={value!r} is not a number like 2 or 1.5")
            dpr = min(max(float(value), 1.0), max_dpr)
            continue
        ops[op] = value
    fmt = ops.get("f", "").strip().lower()
    if fmt in ("", "auto"):
        ops["f"] = negotiate_format(accept)
    variant = _variant_from_ops(ops, presets)
    if dpr != 1.0:
        variant = Variant(round(variant.w * dpr), round(variant.h * dpr), variant.fit, variant.g, variant.bg,
                          variant.q, variant.f)
    return variant


def peek_request(path: str, query: Mapping[str, str]) -> tuple[str, str | None]:
    """The source key and the preset name (lower case, as the parser looks it up) of a request, or
    None for no preset, without parsing the rest: what the origin needs to start fetching the source
    and the preset's table item at once. The key is validated (BadRequest); the ops are not."""
    split = split_canonical(path)
    name: str | None = None
    if split is not None:
        key, ops = split
        for item in ops.split(","):
            op, sep, value = item.partition("=")
            if sep and op == "preset":
                name = value
    else:
        key = path[1:] if path.startswith("/") else path
        for param, value in query.items():
            if PARAM_ALIASES.get(param.strip().lower()) == "preset":
                name = value
    name = name.strip().lower() if name is not None else None
    return validate_source_key(key), name or None


def parse_request(
    path: str,
    query: Mapping[str, str],
    accept: str | None = None,
    presets: Mapping[str, Variant] = DEFAULT_PRESETS,
) -> tuple[str, Variant]:
    """Canonical path or friendly query form → ``(source_key, variant)``."""
    if split_canonical(path) is not None:
        return parse_canonical(path, presets)
    key = path[1:] if path.startswith("/") else path
    return validate_source_key(key), variant_from_params(query, accept, presets)
