"""Named presets and per-path transformation policies: the TOML file, the table items, the rules.

Presets are the kernel's (:func:`edgeproof.canonical.preset_from_ops` is the one preset parser);
this module adds the *policies* and the shapes both take in the presets table
(:mod:`edgeproof.origin.presets_table`, DynamoDB), so the file, ``origin presets push`` and the origin
reading an item check a value in exactly one way.

A **policy** is the case study's "transformation policy per path" (AWS's Dynamic Image Transformation
for Amazon CloudFront keeps its transformation policies and their path mappings in DynamoDB): the
requests whose source key starts with a path prefix get their output restricted. The longest prefix
that matches wins; one policy applies at most. In TOML::

    [policies."/images/products/"]
    widths = [160, 320, 640, 1280]   # the only output widths served here (another: 400)
    formats = ["webp", "jpeg"]       # the formats served, in order of preference for Accept
    max_quality = 80                 # a higher q is lowered to it

Why refuse a width but lower a quality: an unlisted width is a new variant per pixel (each one a
transform, a derivative and a cache entry: the cost a policy exists to bound), while a quality above
the cap is a valid request answered with a slightly smaller file. A negotiated format (friendly form,
no ``format``) is chosen among ``formats``: the first that ``Accept`` takes, JPEG and PNG always
taken; when none is, JPEG (every browser shows it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from edgeproof.canonical import (
    DEFAULT_PRESETS,
    FORMATS,
    Variant,
    negotiate_format,
    preset_from_ops,
    presets_from_table,
)
from edgeproof.errors import BadPresetItem, BadRequest, ConfigError, EdgeproofError
from edgeproof.settings import Settings, between, setting
from edgeproof.tomlfile import read_toml

__all__ = [
    "POLICY_SETTINGS",
    "PRESET_NAME",
    "Policy",
    "PolicyRule",
    "PresetFile",
    "check_prefix",
    "load_preset_file",
    "match_policy",
    "plain",
    "policy_from_item",
    "policy_item",
    "preset_from_item",
    "preset_item",
    "sort_rules",
]

#: how long a path prefix may be (an S3 key is at most 1,024 bytes, and a prefix is part of one)
MAX_PREFIX = 1024
#: a preset name: lower case (requests are looked up in lower case) and short, so that any name a
#: client sends is either one of these (worth a table read) or unknown at once (never a 1 KB key)
PRESET_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _formats(value: str) -> str | None:
    return None if value in FORMATS else f"must be one of {', '.join(FORMATS)}"


def _width(value: int) -> str | None:
    return None if 0 <= value <= 100_000 else "must be 0..100000"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What the requests under one path prefix may ask for (see the module docstring)."""

    widths: tuple[int, ...] = setting((), "the only output widths (w) served; another is a 400 (empty: any)",
                                      item_check=_width)
    formats: tuple[str, ...] = setting((), "the output formats served, in order of preference for a negotiated "
                                           "format; another fixed format is a 400 (empty: any)", item_check=_formats)
    max_quality: int = setting(100, "the highest quality; a higher q is lowered to it", check=between(1, 100))
    description: str = setting("", "free text for people (ignored)")

    def apply(self, variant: Variant, *, negotiated: bool, accept: str | None, prefix: str) -> Variant:
        """``variant`` as this policy serves it; BadRequest (400) for a width or format it refuses."""
        fmt = variant.f
        if self.formats:
            if negotiated:
                fmt = negotiate_format(accept, self.formats)
            elif fmt not in self.formats:
                raise BadRequest(f"format {fmt} not served under {prefix}",
                                 detail=f"the policy for {prefix} serves the formats {', '.join(self.formats)}")
        if self.widths and variant.w not in self.widths:
            raise BadRequest(f"width {variant.w} not served under {prefix}",
                             detail=f"the policy for {prefix} serves the widths {', '.join(map(str, self.widths))}")
        q = min(variant.q, self.max_quality)
        if (fmt, q) == (variant.f, variant.q):
            return variant
        return dataclasses.replace(variant, f=fmt, q=q).normalized()


#: the keys of a policy table or item, their types, defaults and checks (one declaration)
POLICY_SETTINGS: Settings[Policy] = Settings.of(Policy, "policies")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A path prefix and its policy, or the error of a malformed table item for it (the requests under
    that prefix then get the error, a 502 naming the item; every other request is unaffected)."""

    prefix: str
    policy: Policy | BadPresetItem
    #: where it came from: "file", "table" or "file-fallback" (the table could not be read)
    source: str = "file"


def check_prefix(prefix: object, where: str) -> str:
    """A policy's path prefix: a string starting with ``/`` (``/`` alone: every request)."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or len(prefix) > MAX_PREFIX \
            or any(ord(c) < 0x20 for c in prefix):
        raise ConfigError(f"{where}: policy prefix {prefix!r} must be a path starting with '/', e.g. \"/images/\"")
    return prefix


def _policy(data: Any, prefix: str, where: str) -> Policy:
    table = Settings(f'policies."{prefix}"', POLICY_SETTINGS.rows, Policy)
    return table.build(data, where=where)


def match_policy(rules: tuple[PolicyRule, ...], key: str) -> PolicyRule | None:
    """The rule of the longest prefix that ``/`` + ``key`` starts with, or None (``rules`` are kept
    longest prefix first, see :func:`sort_rules`)."""
    path = "/" + key
    for rule in rules:
        if path.startswith(rule.prefix):
            return rule
    return None


def sort_rules(rules: list[PolicyRule]) -> tuple[PolicyRule, ...]:
    return tuple(sorted(rules, key=lambda r: (-len(r.prefix), r.prefix)))


# ------------------------------------------------------------------------------ the TOML file


@dataclass(frozen=True, slots=True)
class PresetFile:
    """What ``--presets FILE`` gives: every preset the origin knows without the table (the built-ins
    and the file's), the file's own presets (what ``presets push`` writes) and its policies."""

    presets: Mapping[str, Variant]
    own: Mapping[str, Variant]
    policies: tuple[PolicyRule, ...]
    path: str | None = None


def load_preset_file(path: str | Path | None) -> PresetFile:
    """``[presets.NAME]`` tables (:func:`edgeproof.canonical.presets_from_table`) and
    ``[policies."/prefix/"]`` tables; the built-ins alone when ``path`` is None. ConfigError (exit 2)
    naming the file, the table and the key for anything wrong."""
    if path is None:
        return PresetFile(dict(DEFAULT_PRESETS), {}, ())
    where = str(path)
    data = read_toml(path, "presets from")
    unknown = sorted(set(data) - {"presets", "policies"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown table", detail="a presets file has [presets.NAME] and "
                                                                          "[policies.\"/prefix/\"] tables")
    own = presets_from_table(data.get("presets", {}), DEFAULT_PRESETS, where=where)
    for name in own:
        if not PRESET_NAME.fullmatch(name):
            raise ConfigError(f"{path}: preset {name!r}: a preset name is 1-64 lower-case letters, digits, "
                              "'_', '.' or '-' (requests name it in any case; it is looked up in lower case)")
    policies = data.get("policies", {})
    if not isinstance(policies, dict):
        raise ConfigError(f"{path}: [policies] must be a table of path prefixes")
    rules = [PolicyRule(check_prefix(prefix, where), _policy(table, prefix, where))
             for prefix, table in policies.items()]
    return PresetFile({**DEFAULT_PRESETS, **own}, own, sort_rules(rules), where)


# ------------------------------------------------------------------------------ table items
#
# The presets table (single-table design): partition key ``pk`` = "preset" or "policy", sort key
# ``sk`` = the preset's name or the policy's path prefix.
#
#   {"pk": "preset", "sk": "hero", "ops": {"w": 1600, "h": 600, "fit": "cover", "g": "attention",
#                                          "q": 60, "f": "avif"}, "description": "..."}
#   {"pk": "policy", "sk": "/images/products/", "widths": [160, 320], "formats": ["webp", "jpeg"],
#    "max_quality": 80}

PRESET, POLICY = "preset", "policy"
_KEYS = ("pk", "sk")


def plain(value: Any) -> Any:
    """A deserialized DynamoDB value as TOML would give it: a whole Decimal as an int, another as a
    float, a set as a sorted list, maps and lists through; so one check reads both."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _ops_map(variant: Variant) -> dict[str, int | str]:
    """A variant's canonical ops as an item's map (numbers as numbers): what push writes."""
    out: dict[str, int | str] = {}
    for pair in variant.ops.split(","):
        name, _, value = pair.partition("=")
        out[name] = int(value) if name in ("w", "h", "q") else value
    return out


def preset_item(name: str, variant: Variant) -> dict[str, Any]:
    return {"pk": PRESET, "sk": name, "ops": _ops_map(variant)}


def policy_item(rule: PolicyRule) -> dict[str, Any]:
    assert isinstance(rule.policy, Policy)
    item: dict[str, Any] = {"pk": POLICY, "sk": rule.prefix}
    for r in POLICY_SETTINGS:
        value = getattr(rule.policy, r.name)
        if value != r.default:
            item[r.name] = list(value) if isinstance(value, tuple) else value
    return item


def _bad(table: str, kind: str, name: str, problem: str) -> BadPresetItem:
    return BadPresetItem(f"presets table {table}: the {kind} item {name!r} is malformed: {problem}",
                         detail=f"the presets table's item for {kind} {name!r} is malformed: {problem}")


def preset_from_item(item: Mapping[str, Any], presets: Mapping[str, Variant], *, table: str) -> Variant:
    """A preset item → its Variant (built on ``presets`` when its ops name one); BadPresetItem naming it."""
    name = str(item.get("sk", "?"))
    data = plain(dict(item))
    extra = sorted(set(data) - {*_KEYS, "ops", "description"})
    if extra:
        raise _bad(table, PRESET, name, f"unknown attribute {extra[0]!r} (a preset item has ops and description)")
    ops = data.get("ops")
    if not isinstance(ops, dict) or not ops:
        raise _bad(table, PRESET, name, "ops must be a map of ops, e.g. {w: 160, h: 160, fit: cover}")
    if any(isinstance(v, dict | list | bool) for v in ops.values()):
        raise _bad(table, PRESET, name, "every op is a number or a string")
    try:
        return preset_from_ops(ops, presets)
    except BadRequest as err:
        raise _bad(table, PRESET, name, err.detail or err.message) from err


def policy_from_item(item: Mapping[str, Any], *, table: str) -> PolicyRule:
    """A policy item → its rule; a malformed one → a rule carrying its BadPresetItem (see PolicyRule)."""
    prefix = str(item.get("sk", "?"))
    data = {k: v for k, v in plain(dict(item)).items() if k not in _KEYS}
    try:
        return PolicyRule(check_prefix(prefix, "item"), _policy(data, prefix, "item"))
    except EdgeproofError as err:
        return PolicyRule(prefix, _bad(table, POLICY, prefix, err.message.removeprefix("item: ")))
