"""Export a canonical-mode strategy as a CloudFront Functions (``cloudfront-js-2.0``) viewer-request function.

The JavaScript is one template of the building blocks (``viewer_request.js``, next to this module) plus the
strategy's declaration as JSON; the parameter tables (aliases, formats, gravities, presets, limits) are
taken from :mod:`edgeproof.canonical`, so the Python strategy and the function agree. That they agree is
proven, not assumed: ``tests/test_strategies_js_equiv.py`` runs the exported function under Node on
hypothesis-generated viewer-request events (the cloudfront-js-2.0 shape of "CloudFront Functions event
structure") and requires exactly :meth:`Strategy.apply`'s result or refusal. Query-mode strategies do not
export: their key is the raw query string, which the event no longer has (repeated names grouped, empty
segments and ``a`` vs ``a=`` gone).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from typing import Any

from edgeproof import canonical
from edgeproof.errors import ConfigError

from ._strategy import Strategy

__all__ = ["CF_FUNCTION_MAX_BYTES", "cf_config", "export_cf_function"]

#: CloudFront Functions' maximum function size
CF_FUNCTION_MAX_BYTES = 10 * 1024


def cf_config(strategy: Strategy) -> dict[str, Any]:
    """The JSON the template reads as ``C``."""
    config = strategy.config
    if config.mode != "canonical":
        raise ConfigError(
            f"strategy {strategy.name!r} is a query-mode strategy",
            detail="only canonical-mode strategies export to a CloudFront Function; query-mode ones are "
            "CloudFront cache-policy settings (query strings: all / include list)",
        )
    c = config.canonical
    return {
        "bp": list(c.breakpoints), "qb": list(c.quality_buckets), "dpr": config.max_dpr_milli,
        "fmts_auto": list(c.formats), "fmtp": c.format_param, "fb": c.on_invalid == "fallback",
        "lower": config.path_case == "lower",
        "al": dict(canonical.PARAM_ALIASES),
        "fa": dict(canonical.FORMAT_ALIASES), "ga": dict(canonical.GRAVITY_ALIASES),
        "presets": {name: asdict(v) for name, v in canonical.DEFAULT_PRESETS.items()},
        "dv": asdict(canonical.Variant()), "dbg": canonical.DEFAULT_BG, "max": canonical.MAX_DIMENSION_SYNTAX,
        "fits": list(canonical.FITS), "gs": list(canonical.GRAVITIES), "fmts": list(canonical.FORMATS),
        "ct": dict(canonical.CONTENT_TYPES),
    }


def export_cf_function(strategy: Strategy) -> str:
    """The function's source; raises ConfigError for query-mode strategies or when over 10 KB."""
    template = resources.files(__package__).joinpath("viewer_request.js").read_text()
    # the template's explanatory comments stay in the template: CloudFront counts every byte of the 10 KB
    lines = template.splitlines(keepends=True)
    head = 0
    while head < len(lines) and lines[head].startswith("//"):
        head += 1
    template = "".join(lines[:head] + [line for line in lines[head:] if not line.lstrip().startswith("//")])
    code = template.replace("__NAME__", strategy.name).replace(
        "__CONFIG__", json.dumps(cf_config(strategy), separators=(",", ":"), sort_keys=True)
    )
    size = len(code.encode())
    if size > CF_FUNCTION_MAX_BYTES:
        raise ConfigError(f"the generated function is {size} bytes, over CloudFront's 10 KB limit")
    return code
