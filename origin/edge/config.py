"""The edge's settings, declared once (the CLI builds an :class:`EdgeConfig` from its flags)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from edgeproof.errors import ConfigError

from .cache import TtlPolicy

__all__ = ["TIERS", "EdgeConfig"]

#: ``pop``: POP caches only; ``regional``: + one regional edge cache per region;
#: ``shield``: + regional caches + one Origin Shield cache in front of the origin.
TIERS = ("pop", "regional", "shield")


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    strategy: str = "canonical"
    pops: int = 4
    tier: str = "pop"
    capacity_mb: float = 256.0
    #: regional / shield cache size; default: 4 × the POP capacity
    tier_capacity_mb: float | None = None
    ttl: TtlPolicy = field(default_factory=TtlPolicy)
    distribution_id: str = "EDGEPROOF00001"
    #: the distribution's domain (cs(Host) in logs); default dXXXXXXXXXXXXX.cloudfront.net from the id
    domain: str | None = None
    #: origin fetches in flight above which new misses get 503 CapacityExceeded
    max_origin_inflight: int = 1024
    max_uri: int = 8192
    max_head: int = 20480

    def __post_init__(self) -> None:
        if self.pops < 1 or self.pops > 1000:
            raise ConfigError("--pops must be 1..1000")
        if self.tier not in TIERS:
            raise ConfigError(f"unknown tier {self.tier!r}", detail=f"--tier must be one of {', '.join(TIERS)}")
        if self.capacity_mb <= 0 or (self.tier_capacity_mb is not None and self.tier_capacity_mb <= 0):
            raise ConfigError("cache capacities must be > 0 MB")
        if not self.distribution_id.isalnum():
            raise ConfigError("--distribution-id must be letters and digits (like E2QWRUHEXAMPLE)")
        if self.max_origin_inflight < 1:
            raise ConfigError("--max-origin-inflight must be >= 1")

    @property
    def host(self) -> str:
        if self.domain:
            return self.domain
        digest = hashlib.sha1(self.distribution_id.encode(), usedforsecurity=False).hexdigest()[:13]
        return f"d{digest}.cloudfront.net"

    @property
    def capacity_bytes(self) -> int:
        return int(self.capacity_mb * 1024 * 1024)

    @property
    def tier_capacity_bytes(self) -> int:
        mb = self.tier_capacity_mb if self.tier_capacity_mb is not None else 4 * self.capacity_mb
        return int(mb * 1024 * 1024)
