"""CloudFront's cache rules, written once for the edge emulator and the replay's cache model.

Each rule names the page of the AWS CloudFront Developer Guide it follows. The emulator
(``origin/edge``) applies them to live requests, the cache model (``analytics/_cachesim.py`` and its
reference ``analytics/_cachesim_ref.py``) to logged ones; docs/strategies.md lists them.

Cache hierarchy ("How CloudFront works with regional edge caches", HowCloudFrontWorks.html):
every distribution has regional edge caches (RECs) between its edge locations (POPs) and the
origin, so the default tier is ``regional``; ``shield`` adds Origin Shield above the RECs
("Using Amazon CloudFront Origin Shield", origin-shield.html); ``pop`` models POP caches alone.

What the viewer's log line says (standard log fields ``x-edge-result-type`` and
``x-edge-detailed-result-type``, standard-logs-reference.html), by :func:`viewer_result`:

- served from a fresh copy in the POP or its REC → ``Hit`` (a REC hit is a cache hit for the viewer);
- a cache on the way held an expired copy, and the tier above (or the origin, with a conditional
  request answered ``304 Not Modified``) confirmed it → ``RefreshHit`` ("Managing how long content
  stays in the cache (expiration)", Expiration.html: CloudFront revalidates an expired object with
  ``If-None-Match``/``If-Modified-Since`` and keeps serving its copy on 304);
- served by Origin Shield → ``Miss``, detailed ``OriginShieldHit``;
- otherwise fetched from the origin → ``Miss``.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

__all__ = [
    "DEFAULT_TIER",
    "DEFAULT_TTL",
    "ERROR_CACHED_STATUSES",
    "ERROR_CACHING_MIN_TTL",
    "MAX_TTL",
    "ORIGIN_CONNECTION_ATTEMPTS",
    "ORIGIN_CONNECTION_TIMEOUT",
    "ORIGIN_RESPONSE_TIMEOUT",
    "TIERS",
    "known_region",
    "region_of",
    "regions",
    "viewer_result",
]

#: cache tiers a request can pass: POP only; POP + regional edge cache; + Origin Shield
TIERS = ("pop", "regional", "shield")
DEFAULT_TIER = "regional"

#: cache policy TTLs in seconds (CachePolicy: default TTL 1 day, maximum 1 year, minimum 0;
#: "Managing how long content stays in the cache (expiration)", Expiration.html)
DEFAULT_TTL = 86400.0
MAX_TTL = 31536000.0

#: statuses CloudFront caches for the error-caching minimum TTL (10 s by default) when the origin sends
#: no Cache-Control of its own ("How CloudFront processes HTTP 4xx and 5xx status codes from your
#: origin", HTTPStatusCodes.html)
ERROR_CACHED_STATUSES = frozenset({400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504})
ERROR_CACHING_MIN_TTL = 10.0

#: origin settings and their defaults ("Values that you specify when you create or update a
#: distribution" → Connection attempts, Connection timeout, Response timeout;
#: DownloadDistValuesOrigin.html)
ORIGIN_CONNECTION_ATTEMPTS = 3
ORIGIN_CONNECTION_TIMEOUT = 10.0
ORIGIN_RESPONSE_TIMEOUT = 30.0


@cache
def regions() -> dict[str, str]:
    """Airport code → region of its regional edge cache, from ``edgeproof/data/regions.toml``."""
    text = resources.files("edgeproof").joinpath("data/regions.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)["regions"]
    out: dict[str, str] = {}
    for region, codes in table.items():
        for code in codes:
            if code in out:
                raise ValueError(f"regions.toml: {code} is in both {out[code]} and {region}")
            out[code] = region
    return out


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
