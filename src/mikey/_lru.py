"""A small thread-safe bounded LRU map, for the per-peer and per-key caches of the crypto layer.

Every operation takes one lock, so concurrent lookups, insertions and evictions
(e.g. a server verifying MIKEY-SAKKE messages from many threads) never race.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["BoundedLRU"]


class BoundedLRU(Generic[K, V]):
    """At most ``max_size`` entries; the least recently used goes first."""

    __slots__ = ("max_size", "_data", "_lock")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)
            return value

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        """The cached value, or ``create()`` stored under *key* (computed outside the lock)."""
        value = self.get(key)
        if value is None:
            value = self.put(key, create())
        return value

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
