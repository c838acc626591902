"""CloudFront's cache rules, written once for the edge emulator and the replay's cache model.

Each rule names the page of the AWS CloudFront Developer Guide it follows. The emulator
(``origin/edge``) applies them to live requests, the cache model (``analytics/_cachesim.py`` and its
reference ``analytics/_cachesim_ref.py``) to logged ones; docs/strategies.md lists them.

Cache hierarchy ("How CloudFront works with regional edge caches", HowCloudFrontWorks.html):
every distribution has regional edge caches (RECs) between its edge locations (POPs) and the
origin, so the default tier is ``regional``; ``shield`` adds Origin Shield above the RECs
("Using Amazon CloudFront Origin Shield", origin-shield.html); ``pop`` models POP caches alone.

Pricing geographies (:func:`geographies`, :func:`geography_of`): the columns of the CloudFront pricing
page (https://aws.amazon.com/cloudfront/pricing/) and the price class that serves each, from the same
``data/regions.toml`` as the regional edge caches, so an edge location has one region and one geography.

What the viewer's log line says (standard log fields ``x-edge-result-type`` and
``x-edge-detailed-result-type``, standard-logs-reference.html), by :func:`viewer_result`:

- served from a fresh copy in the POP or its REC → ``Hit`` (a REC hit is a cache hit for the viewer);
- a cache on the way held an expired copy, and the tier above (or the origin, with a conditional
  request answered ``304 Not Modified``) confirmed it → ``RefreshHit`` ("Managing how long content
  stays in the cache (expiration)", Expiration.html: CloudFront revalidates an expired object with
  ``If-None-Match``/``If-Modified-Since`` and keeps serving its copy on 304);
- served by Origin Shield → ``Miss``, detailed ``OriginShieldHit``;
- otherwise fetched from the origin → ``Miss``.

Error caching, as the two AWS pages say it (:func:`error_caching_ttl`):

- "How CloudFront processes HTTP 4xx and 5xx status codes from your origin" (HTTPStatusCodes.html,
  "HTTP 4xx and 5xx status codes that CloudFront caches"): 404, 414, 500, 501, 502, 503, 504 are
  always cached (:data:`ERROR_ALWAYS_CACHED`); 400, 403, 405, 412, 415 only when the origin sends
  ``Cache-Control: max-age`` or ``s-maxage`` (:data:`ERROR_CACHED_WITH_MAX_AGE`); any other 4xx/5xx is
  not cached. An origin that does not answer (a timeout) counts as a 5xx.
- "Control how long CloudFront caches errors" (custom-error-pages-expiration.html): an error is
  cached for the *greater* of the origin's ``max-age``/``s-maxage``/``Expires`` (at most the maximum
  TTL) and the error-caching minimum TTL (10 s by default); other directives or no header → the
  minimum TTL; ``no-store``/``no-cache``/``private`` prevent caching only for 404, 410, 414 and 501
  (:data:`ERROR_NO_STORE_HONOURED`), every other code ignores them; 416 is never cached.
- Same page ("the requested object is in the edge cache"): when an expired copy is revalidated and
  the origin answers 5xx, CloudFront serves the expired copy and keeps serving it for the
  error-caching minimum TTL (:func:`serves_stale_on`); a 4xx is returned to the viewer instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "DEFAULT_TIER",
    "DEFAULT_TTL",
    "ERROR_ALWAYS_CACHED",
    "ERROR_CACHED_WITH_MAX_AGE",
    "ERROR_CACHING_MIN_TTL",
    "ERROR_NO_STORE_HONOURED",
    "FAILOVER_STATUSES",
    "MAX_TTL",
    "MAX_URL_LENGTH",
    "ORIGIN_CONNECTION_ATTEMPTS",
    "ORIGIN_CONNECTION_TIMEOUT",
    "ORIGIN_RESPONSE_TIMEOUT",
    "PRICE_CLASSES",
    "TIERS",
    "Geography",
    "cache_directives",
    "error_caching_ttl",
    "geographies",
    "geography_of",
    "known_region",
    "region_of",
    "regions",
    "serves_stale_on",
    "viewer_result",
]

#: cache tiers a request can pass: POP only; POP + regional edge cache; + Origin Shield
TIERS = ("pop", "regional", "shield")
DEFAULT_TIER = "regional"

#: cache policy TTLs in seconds (CachePolicy: default TTL 1 day, maximum 1 year, minimum 0;
#: "Managing how long content stays in the cache (expiration)", Expiration.html)
DEFAULT_TTL = 86400.0
MAX_TTL = 31536000.0

#: the error-caching minimum TTL, 10 s by default ("How CloudFront processes HTTP 4xx and 5xx status
#: codes from your origin", HTTPStatusCodes.html); which statuses are cached: ERROR_ALWAYS_CACHED and
#: ERROR_CACHED_WITH_MAX_AGE below, and :func:`error_caching_ttl`
ERROR_CACHING_MIN_TTL = 10.0

#: origin settings and their defaults ("Values that you specify when you create or update a
#: distribution" → Connection attempts, Connection timeout, Response timeout;
#: DownloadDistValuesOrigin.html)
ORIGIN_CONNECTION_ATTEMPTS = 3
ORIGIN_CONNECTION_TIMEOUT = 10.0
ORIGIN_RESPONSE_TIMEOUT = 30.0

#: the longest URL CloudFront accepts, in bytes ("Quotas" → "Maximum length of a URL",
#: cloudfront-limits.html); longer requests get 414
MAX_URL_LENGTH = 8192

#: the primary origin's answers on which an origin group fails over to the secondary, as the edge
#: emulator's origin group does and the CloudFormation export configures (``FailoverCriteria``):
#: "Optimizing high availability with CloudFront origin failover" (high_availability_origin_failover.html)
#: lets a group fail over on 400, 403, 404, 416, 500, 502, 503 or 504; a derivative store answers 403/404
#: for a rendition it does not hold yet, 5xx when it fails, and the transformer then renders it
FAILOVER_STATUSES = frozenset({403, 404, 500, 502, 503, 504})

#: HTTPStatusCodes.html, "HTTP 4xx and 5xx status codes that CloudFront always caches"
ERROR_ALWAYS_CACHED = frozenset({404, 414, 500, 501, 502, 503, 504})
#: HTTPStatusCodes.html, "HTTP 4xx status codes that CloudFront caches based on Cache-Control headers"
#: (only with ``max-age`` or ``s-maxage``)
ERROR_CACHED_WITH_MAX_AGE = frozenset({400, 403, 405, 412, 415})
#: custom-error-pages-expiration.html: the error codes for which ``no-store``, ``no-cache`` or
#: ``private`` prevent caching (every other error code ignores those directives)
ERROR_NO_STORE_HONOURED = frozenset({404, 410, 414, 501})
_NO_STORE = ("no-store", "no-cache", "private")


#: CloudFront's price classes, smallest first ("PriceClass" in the CloudFront API reference); each serves
#: the geographies of the ones before it and more (``edgeproof/data/regions.toml`` [geographies])
PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")


@dataclass(frozen=True, slots=True)
class Geography:
    """A CloudFront pricing geography (a column of https://aws.amazon.com/cloudfront/pricing/): its key,
    the pricing page's name for it, the smallest price class that serves it, and its airport codes."""

    key: str
    name: str
    price_class: str
    codes: tuple[str, ...]


@cache
def _table() -> dict[str, Any]:
    text = resources.files("edgeproof").joinpath("data/regions.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def regions() -> dict[str, str]:
    """Airport code → region of its regional edge cache, from ``edgeproof/data/regions.toml``."""
    table = _table()["regions"]
    out: dict[str, str] = {}
    for region, codes in table.items():
        for code in codes:
            if code in out:
                raise ValueError(f"regions.toml: {code} is in both {out[code]} and {region}")
            out[code] = region
    return out


@cache
def geographies() -> dict[str, Geography]:
    """The pricing geographies of ``edgeproof/data/regions.toml`` [geographies], in the file's order.

    Raises ValueError when the table and [regions] disagree: a code in two geographies, a code of
    [regions] in none, a geography code that is in no region, or a price class CloudFront does not have."""
    out: dict[str, Geography] = {}
    seen: dict[str, str] = {}
    for key, row in _table()["geographies"].items():
        if row["price_class"] not in PRICE_CLASSES:
            raise ValueError(f"regions.toml: [geographies.{key}] price_class {row['price_class']!r} is not one of "
                             f"{', '.join(PRICE_CLASSES)}")
        for code in row["codes"]:
            if code in seen:
                raise ValueError(f"regions.toml: {code} is in both geographies {seen[code]} and {key}")
            seen[code] = key
        out[key] = Geography(key, row["name"], row["price_class"], tuple(row["codes"]))
    if set(seen) != set(regions()):
        stray = sorted(set(seen) ^ set(regions()))
        raise ValueError(f"regions.toml: [regions] and [geographies] must list the same codes; not in both: "
                         f"{', '.join(stray)}")
    return out


def geography_of(location: str) -> str | None:
    """The pricing geography of an edge location (``IAD89-C1`` → ``us``), None for a code the table
    does not know (callers price it as a stated default and list it)."""
    return _geography_by_code().get(location[:3].upper())


@cache
def _geography_by_code() -> dict[str, str]:
    return {code: geo.key for geo in geographies().values() for code in geo.codes}


def known_region(location: str) -> bool:
    """Whether the edge location's airport code is in the region table."""
    return location[:3].upper() in regions()


def region_of(location: str) -> str:
    """The regional edge cache of an edge location (``IAD89-C1`` → ``us-east-1``).

    The one rule for a code the table does not know: it is a region of its own, named
    ``rec-<CODE>`` (its POPs share one REC, no other POP does); callers list such codes."""
    code = location[:3].upper()
    return regions().get(code) or f"rec-{code}"


def viewer_result(served_by: str | None, revalidated: bool) -> tuple[str, str]:
    """(``x-edge-result-type``, ``x-edge-detailed-result-type``) of a request that was served.

    ``served_by``: the tier whose fresh copy answered (``pop``, ``regional``, ``shield``), or None
    when the origin answered. ``revalidated``: a cache below that point held an expired copy that was
    confirmed (by the tier above, or by the origin's 304). See the module docstring."""
    if revalidated:
        return "RefreshHit", "RefreshHit"
    if served_by in ("pop", "regional"):
        return "Hit", "Hit"
    if served_by == "shield":
        return "Miss", "OriginShieldHit"
    return "Miss", "Miss"


def cache_directives(cache_control: str) -> dict[str, str]:
    """``Cache-Control`` → {directive (lower case): value or ``""``}."""
    out: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip().strip('"')
    return out


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(max(0, int(value)))
    except ValueError:
        return None


def error_caching_ttl(
    status: int,
    cache_control: str = "",
    expires_in: float | None = None,
    *,
    min_ttl: float = ERROR_CACHING_MIN_TTL,
    max_ttl: float = MAX_TTL,
) -> float:
    """Seconds CloudFront caches an origin's 4xx/5xx answer (0 = not cached); see the module docstring.

    ``cache_control``: the origin's ``Cache-Control`` header; ``expires_in``: seconds from now to its
    ``Expires`` header (None when absent); ``min_ttl``: the error-caching minimum TTL; ``max_ttl``:
    the cache behavior's maximum TTL (an origin ``max-age`` cannot exceed it)."""
    cc = cache_directives(cache_control)
    age = _seconds(cc.get("s-maxage", cc.get("max-age")))
    if status in ERROR_CACHED_WITH_MAX_AGE:
        return max(min(age, max_ttl), min_ttl) if age is not None else 0.0
    if status not in ERROR_ALWAYS_CACHED:
        return 0.0
    if status in ERROR_NO_STORE_HONOURED and any(d in cc for d in _NO_STORE):
        return 0.0
    header = age if age is not None else (max(0.0, float(expires_in)) if expires_in is not None else None)
    return max(min(header, max_ttl), min_ttl) if header is not None else min_ttl


def serves_stale_on(origin_status: int) -> bool:
    """Whether an expired copy is served (instead of the origin's answer) when its revalidation gets
    ``origin_status``: a 5xx (a timeout counts as one) yes, for the error-caching minimum TTL; a 4xx
    no (HTTPStatusCodes.html, "The requested object is in the edge cache")."""
    return origin_status >= 500
