"""The forward cache every view of a backend shares: a bounded LRU of forward-pass results."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ["MISSING", "ForwardCache"]

MISSING: Any = object()
"""What :meth:`ForwardCache.lookup` returns for a key it does not hold."""


class ForwardCache:
    """A bounded LRU of forward-pass results, keyed by op, view and the op's arguments.

    Counting lives here so a hit costs one lookup, one reorder and one add.
    """

    __slots__ = ("_maxsize", "_store", "hits", "misses")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._store: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Hashable) -> Any:
        """The cached value (counted as a hit), or ``MISSING`` (counted as a miss)."""
        store = self._store
        value = store.get(key, MISSING)
        if value is MISSING:
            self.misses += 1
        else:
            store.move_to_end(key)
            self.hits += 1
        return value

    def store(self, key: Hashable, value: Any) -> None:
        """Insert ``value``, evicting the least recently used entries past the bound."""
        store = self._store
        store[key] = value
        store.move_to_end(key)
        if len(store) > self._maxsize:
            store.popitem(last=False)

    def insert(self, key: Hashable, value: Any) -> None:
        """``store`` for a key that just missed (nothing awaited since): no reordering needed."""
        store = self._store
        store[key] = value
        if len(store) > self._maxsize:
            store.popitem(last=False)

    def __len__(self) -> int:
        return len(self._store)
