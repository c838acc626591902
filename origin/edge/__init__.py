"""The edge emulator: a local CloudFront stand-in (strategy, per-POP caches, origin group, logs).

Run it with ``edgeproof edge serve`` (see docs/edge.md). The public pieces:

- :class:`EdgeConfig` (settings), :class:`TtlPolicy` (min/default/max/error TTL),
- :class:`Edge` (POPs, tiers, request handling), :class:`OriginGroup` (primary store + transformer
  backends with failover), :class:`LogSink` (hourly gzipped standard logs),
- :func:`serve` (run until SIGTERM), :func:`pop_ids` (the AWS-style POP ids for ``--pops N``).
"""

from __future__ import annotations

from .cache import Entry, LruCache, TtlPolicy
from .cli import parse_origin_group, serve
from .config import TIERS, EdgeConfig
from .edge import Edge
from .logsink import ROW_COLUMNS, LogSink
from .origin_group import FAILOVER_STATUSES, BackendPool, OriginGroup
from .pops import PopSelector, pop_ids, region_of

__all__ = [
    "FAILOVER_STATUSES",
    "ROW_COLUMNS",
    "TIERS",
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
    "region_of",
    "serve",
]
