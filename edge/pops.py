"""POP ids and how a request picks its POP.

A POP id looks like CloudFront's ``x-edge-location``: three letters (the nearest airport), a number,
and a suffix (``IAD89-C1``, ``FRA56-P5``). ``pop_ids(n)`` gives ``n`` distinct ids, cycling through a
fixed list of real-looking locations so that the same ``--pops N`` always gives the same ids.

A request picks its POP from the ``X-Edge-Pop`` header when given (a POP id, case-insensitive, or a
whole number taken modulo ``n`` — what the load tester sends), else from a stable hash (CRC-32) of
the client address, so one client always lands on one POP, as with CloudFront's DNS routing.

Which regional edge cache a POP uses is :func:`edgeproof.cloudfront.region_of` (the one region
table, shared with the replay): with ``--pops 16`` the ids are in 14 regions (IAD us-east-1; DFW,
ORD us-east-2; FRA, AMS eu-central-1; LHR, CDG eu-west-2; …).
"""

from __future__ import annotations

import zlib

__all__ = ["PopSelector", "pop_ids"]

#: Real-looking edge locations, in the order ``--pops N`` uses them.
_LOCATIONS: tuple[tuple[str, int, str], ...] = (
    ("IAD", 89, "C1"), ("FRA", 56, "P5"), ("NRT", 57, "P2"), ("LHR", 61, "C2"), ("SEA", 19, "C1"),
    ("DFW", 50, "C1"), ("SIN", 2, "P1"), ("GRU", 3, "C1"), ("CDG", 50, "C1"), ("SYD", 1, "C2"),
    ("BOM", 78, "P4"), ("LAX", 50, "C1"), ("AMS", 54, "C1"), ("ICN", 57, "P1"), ("ORD", 51, "C1"),
    ("MAD", 53, "P1"),
)


def pop_ids(n: int) -> list[str]:
    """``n`` distinct AWS-style POP ids (``IAD89-C1``, ``FRA56-P5``, …); stable for a given ``n``."""
    if n < 1:
        raise ValueError("at least one POP is needed")
    ids = []
    for i in range(n):
        code, num, suffix = _LOCATIONS[i % len(_LOCATIONS)]
        rnd = i // len(_LOCATIONS)
        ids.append(f"{code}{num + rnd}-{suffix}")
    return ids


class PopSelector:
    """Maps an ``X-Edge-Pop`` header value or a client address to a POP index."""

    __slots__ = ("_by_name", "_ip_cache", "n")

    def __init__(self, ids: list[str]) -> None:
        self.n = len(ids)
        self._by_name = {pid.lower(): i for i, pid in enumerate(ids)}
        self._ip_cache: dict[str, int] = {}

    def pick(self, header: str | None, client_ip: str) -> int:
        if header:
            value = header.strip()
            if value.isdigit():
                return int(value) % self.n
            idx = self._by_name.get(value.lower())
            if idx is not None:
                return idx
        idx = self._ip_cache.get(client_ip)
        if idx is None:
            idx = zlib.crc32(client_ip.encode()) % self.n
            if len(self._ip_cache) > 65536:
                self._ip_cache.clear()
            self._ip_cache[client_ip] = idx
        return idx
