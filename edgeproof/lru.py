"""The one byte-bounded LRU: every edge cache (POP, regional edge cache, Origin Shield) and the origin's
per-process local cache are a :class:`ByteLru`.

Why one, in the kernel: the edge and the origin each had their own copy, and they had already drifted
(replacing a key with a value over the capacity dropped the old value at the edge but kept it at the
origin, so the origin could go on serving what the caller had just replaced). Both layers import the
kernel, and the kernel imports nothing above it, so this is the one place both can share.

What "bounded by bytes" means here, exactly (tests/test_lru_singleflight.py checks it against a plain
``OrderedDict`` model with hypothesis):

- every value is charged ``sizeof(value)`` bytes, measured once when it is stored;
- ``put`` makes the key the most recently used; while the total is over ``capacity`` the least
  recently used entries are evicted (counted in ``evictions``);
- a value larger than the whole capacity is not stored, and the key's old value goes too (the caller
  replaced it; serving the old one would serve what it meant to drop); ``put`` returns False;
- ``get`` marks the key used; ``peek``, ``in``, ``ordered_keys`` and ``len`` do not;
- a capacity of 0 (or less) stores nothing: the cache is off.

Not thread-safe: both users run it on one event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ByteLru"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLru(Generic[K, V]):
    """Values bounded by their total size in bytes, the least recently used evicted first."""

    __slots__ = ("_items", "_sizeof", "bytes", "capacity", "evictions", "name")

    def __init__(self, capacity_bytes: int, sizeof: Callable[[V], int], *, name: str = "") -> None:
        self.name = name
        self.capacity = max(0, int(capacity_bytes))
        #: bytes held now (the sum of the stored values' sizes)
        self.bytes = 0
        #: entries dropped to make room (not those replaced, discarded or cleared)
        self.evictions = 0
        self._sizeof = sizeof
        #: key -> (value, the size it was charged): the size is kept so that a value that changes
        #: after it was stored cannot skew the accounting
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        """The value for ``key``, now the most recently used; None if absent."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def peek(self, key: K) -> V | None:
        """The value for ``key`` without marking it used; None if absent."""
        item = self._items.get(key)
        return None if item is None else item[0]

    def put(self, key: K, value: V) -> bool:
        """Store ``value`` as the most recently used; False (nothing stored, the old value gone) when
        it alone is over the capacity."""
        size = self._sizeof(value)
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.capacity:
            return False
        items = self._items
        items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.capacity:
            _, (_, evicted) = items.popitem(last=False)
            self.bytes -= evicted
            self.evictions += 1
        return True

    def discard(self, key: K) -> bool:
        """Drop ``key``; whether it was there."""
        old = self._items.pop(key, None)
        if old is None:
            return False
        self.bytes -= old[1]
        return True

    def clear(self) -> int:
        """Drop everything; how many entries there were."""
        n = len(self._items)
        self._items.clear()
        self.bytes = 0
        return n

    def ordered_keys(self) -> list[K]:
        """The keys, least recently used first (a copy: the caller may discard while iterating)."""
        return list(self._items)
