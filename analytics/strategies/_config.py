"""A strategy's declaration: one frozen value, loaded from TOML or built in Python.

Two modes:

- ``query``: the cache key is the path plus a normalised query string (CloudFront's own cache-key
  options, or a viewer-request function that only tidies the query): building blocks in ``[params]``.
- ``canonical``: the cache key is the canonical request ``/{source_key}/{ops}``
  (:mod:`edgeproof.canonical`): building blocks in ``[canonical]``. Allowlist + aliases, lower-casing,
  trimming, sorting, dropping defaults and dropping tracking parameters are implied by the canonical
  spelling itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproof.canonical import FORMATS, MAX_DIMENSION_SYNTAX, PARAM_ALIASES
from edgeproof.errors import ConfigError
from edgeproof.settings import expect, expect_list
from edgeproof.tomlfile import read_toml

__all__ = ["CanonicalOptions", "ParamOptions", "StrategyConfig", "TRACKING_PARAMS"]

#: tracking parameters and cache busters dropped by ``drop = "tracking"``
TRACKING_PARAMS: tuple[str, ...] = (
    "utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_ga", "v", "cb", "_", "t",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamOptions:
    """Query-mode building blocks, applied in this order (see docs/strategies.md)."""

    drop: tuple[str, ...] = ()              # names (or ``prefix*``) to remove
    allowlist: tuple[str, ...] | None = None  # keep only these names (None: keep all)
    lowercase_names: bool = False
    aliases: bool = False                   # rename known aliases to their op name (width → w)
    trim: bool = False                      # trim whitespace from values
    lowercase_values: bool = False
    drop_defaults: bool = False             # fit=cover, q=80, g=centre, bg=ffffff, dpr=1, f=auto
    dedupe: bool = False                    # keep the first of a repeated name
    sort: bool = False                      # sort by name, then value

    @property
    def rewrites(self) -> bool:
        """Whether names/values are decoded and re-encoded (any transforming block is on)."""
        return self.lowercase_names or self.aliases or self.trim or self.lowercase_values


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalOptions:
    """Canonical-mode building blocks."""

    breakpoints: tuple[int, ...] = ()        # width snapped up to the next one (above the last: the last)
    max_dpr: float = 3.0                     # dpr folded into w/h, clamped to 1..max_dpr
    quality_buckets: tuple[int, ...] = ()    # q snapped up to the next bucket
    formats: tuple[str, ...] = ("avif", "webp", "jpeg")  # format=auto: first the Accept header takes
    format_param: str = "honor"              # "honor" an explicit format, or "ignore" it (always negotiate)
    on_invalid: str = "reject"               # "reject" (400) or "fallback" (drop the bad parameter)


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyConfig:
    name: str
    description: str = ""
    mode: str = "query"
    path_case: str = "keep"                  # "keep" or "lower"
    params: ParamOptions = field(default_factory=ParamOptions)
    canonical: CanonicalOptions = field(default_factory=CanonicalOptions)

    def __post_init__(self) -> None:
        where = f"strategy {self.name!r}"
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ConfigError(f"{where}: name must be letters, digits, '-' or '_'")
        if self.mode not in ("query", "canonical"):
            raise ConfigError(f"{where}: mode must be 'query' or 'canonical', not {self.mode!r}")
        if self.path_case not in ("keep", "lower"):
            raise ConfigError(f"{where}: path_case must be 'keep' or 'lower'")
        c = self.canonical
        for label, values, top in (("breakpoints", c.breakpoints, MAX_DIMENSION_SYNTAX),
                                   ("quality_buckets", c.quality_buckets, 100)):
            if list(values) != sorted(set(values)) or any(not 1 <= v <= top for v in values):
                raise ConfigError(f"{where}: {label} must be increasing whole numbers in 1..{top}")
        if not 1.0 <= c.max_dpr <= 10.0 or abs(c.max_dpr * 1000 - round(c.max_dpr * 1000)) > 1e-6:
            raise ConfigError(f"{where}: max_dpr must be 1..10 with at most 3 decimals")
        if not c.formats or any(f not in FORMATS for f in c.formats):
            raise ConfigError(f"{where}: formats must be a non-empty list of {', '.join(FORMATS)}")
        if c.format_param not in ("honor", "ignore"):
            raise ConfigError(f"{where}: format_param must be 'honor' or 'ignore'")
        if c.on_invalid not in ("reject", "fallback"):
            raise ConfigError(f"{where}: on_invalid must be 'reject' or 'fallback'")

    @property
    def max_dpr_milli(self) -> int:
        return round(self.canonical.max_dpr * 1000)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> StrategyConfig:
        """Build from a parsed TOML document (see docs/strategies.md for the format)."""
        data = dict(data)
        known = {"name", "description", "mode", "path_case", "params", "canonical"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        mode = str(data.get("mode", "query"))
        if mode == "canonical" and "params" in data:
            raise ConfigError(f"{source}: [params] applies to mode = 'query' only; canonical mode implies them")
        try:
            params = _params(dict(data.get("params", {})))
            canonical = _canonical(dict(data.get("canonical", {})))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: {err}") from err
        return cls(
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            mode=mode,
            path_case=str(data.get("path_case", "keep")),
            params=params,
            canonical=canonical,
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> StrategyConfig:
        path = Path(path)
        data = read_toml(path, "strategy file")
        data.setdefault("name", path.stem)
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The declaration as plain data (``strategies show`` prints it as TOML-like text)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description, "mode": self.mode,
                               "path_case": self.path_case}
        if self.mode == "query":
            p = self.params
            out["params"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in (
                ("drop", p.drop), ("allowlist", p.allowlist), ("lowercase_names", p.lowercase_names),
                ("aliases", p.aliases), ("trim", p.trim), ("lowercase_values", p.lowercase_values),
                ("drop_defaults", p.drop_defaults), ("dedupe", p.dedupe), ("sort", p.sort)) if v is not None}
        else:
            c = self.canonical
            out["canonical"] = {
                "breakpoints": list(c.breakpoints), "max_dpr": c.max_dpr,
                "quality_buckets": list(c.quality_buckets), "formats": list(c.formats),
                "format_param": c.format_param, "on_invalid": c.on_invalid,
            }
        return out


def _names(value: Any, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        if value == "tracking":
            return TRACKING_PARAMS
        if value == "aliases":
            return tuple(PARAM_ALIASES)
        raise ValueError(f"{label} must be a list of names, 'tracking' or 'aliases'")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{label} must be a list of names")
    out: list[str] = []
    for v in value:
        out.extend(_names(v, label) if v in ("tracking", "aliases") else (v.strip().lower(),))
    return tuple(out)


def _params(d: dict[str, Any]) -> ParamOptions:
    bools = ("lowercase_names", "aliases", "trim", "lowercase_values", "drop_defaults", "dedupe", "sort")
    unknown = set(d) - {"drop", "allowlist", *bools}
    if unknown:
        raise ValueError(f"unknown [params] key(s) {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key in bools:
        if key in d:
            if not isinstance(d[key], bool):
                raise ValueError(f"[params] {key} must be true or false")
            kwargs[key] = d[key]
    if "drop" in d:
        kwargs["drop"] = _names(d["drop"], "drop")
    if "allowlist" in d:
        kwargs["allowlist"] = _names(d["allowlist"], "allowlist")
    return ParamOptions(**kwargs)


def _canonical(d: dict[str, Any]) -> CanonicalOptions:
    unknown = set(d) - {"breakpoints", "max_dpr", "quality_buckets", "formats", "format_param", "on_invalid"}
    if unknown:
        raise ValueError(f"unknown [canonical] key(s) {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key in ("breakpoints", "quality_buckets"):  # expect*: a boolean is never a whole number
        if key in d:
            kwargs[key] = tuple(expect_list(d[key], int, table="canonical", key=key))
    if "max_dpr" in d:
        kwargs["max_dpr"] = expect(d["max_dpr"], float, table="canonical", key="max_dpr")
    if "formats" in d:
        if not isinstance(d["formats"], list) or not all(isinstance(v, str) for v in d["formats"]):
            raise ValueError("[canonical] formats must be a list of format names")
        kwargs["formats"] = tuple(v.strip().lower() for v in d["formats"])
    for key in ("format_param", "on_invalid"):
        if key in d:
            kwargs[key] = str(d[key])
    return CanonicalOptions(**kwargs)
