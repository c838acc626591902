"""The edge emulator: a local CloudFront stand-in (strategy, per-POP caches, origin group, logs).

Run it with ``edgeproof edge serve`` (see docs/edge.md). The public pieces:

- :class:`EdgeConfig` (settings), :class:`TtlPolicy` (min/default/max/error TTL),
- :class:`Edge` (POPs, tiers, request handling), :class:`OriginGroup` (primary store + transformer
  backends with failover), :class:`LogSink` (hourly gzipped standard logs),
- :func:`serve` (run until SIGTERM), :func:`pop_ids` (the AWS-style POP ids for ``--pops N``).

CloudFront's rules (tiers, the region table, result types, error caching, origin timeouts) are not
here: they are :mod:`edgeproof.cloudfront`, shared with the replay's cache model.
"""

from __future__ import annotations

from .cache import Entry, LruCache, TtlPolicy
from .cli import parse_origin_group, serve
from .config import EdgeConfig
from .edge import Edge
from .logsink import ROW_COLUMNS, LogSink
from .origin_group import FAILOVER_STATUSES, BackendPool, OriginGroup
from .pops import PopSelector, pop_ids

__all__ = [
    "FAILOVER_STATUSES",
    "ROW_COLUMNS",
    "BackendPool",
    "Edge",
    "EdgeConfig",
    "Entry",
    "LogSink",
    "LruCache",
    "OriginGroup",
    "PopSelector",
    "TtlPolicy",
    "parse_origin_group",
    "pop_ids",
    "serve",
]
