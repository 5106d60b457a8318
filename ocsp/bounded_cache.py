"""A dict bounded in entries and in bytes, for the responder's per-worker caches.

A worker's memory must stay bounded under any request stream (issue 12): every cache the
responder fills from requests is one of these.  When an insert would pass either bound, the
oldest entries (by insertion) go first; sizes are what the caller says an entry costs.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedCache(Generic[V]):
    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: dict[Hashable, tuple[V, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> V | None:
        found = self._items.get(key)
        return None if found is None else found[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Keep `value` (costing `size` bytes) unless it alone exceeds the byte bound."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while self._items and (len(self._items) >= self.max_entries or self._bytes + size > self.max_bytes):
                _, (_, dropped) = self._pop_oldest()
                self._bytes -= dropped
            self._items[key] = (value, size)
            self._bytes += size

    def _pop_oldest(self) -> tuple[Hashable, tuple[V, int]]:
        key = next(iter(self._items))
        return key, self._items.pop(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
