"""The forward cache every view of a backend shares, and its single-flight of passes in flight."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator, Sequence

__all__ = ["MISSING", "ForwardCache", "SingleFlight"]

MISSING: Final = object()
"""What :meth:`ForwardCache.lookup` returns for a key it does not hold."""


class ForwardCache:
    """A bounded LRU of forward-pass results, keyed by op, view and the op's arguments.

    Values are whatever the op returns (a ``TokenDist``, a ``RollingLogprob``,
    a float), hence ``Any``: each op reads back what it stored under its own
    key. Counting lives here so a hit costs one lookup, one reorder and one
    add; every result stored is one forward pass computed.
    """

    __slots__ = ("_maxsize", "_store", "forward_passes", "hits", "misses")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._store: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.forward_passes = 0

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

    def hit(self, key: Hashable) -> Any:
        """The cached value, counted as a hit; else ``MISSING``, counted as nothing.

        For a caller that serves hits itself and hands a miss to a path that
        looks the key up again (:meth:`lookup`, which counts the miss).
        """
        store = self._store
        value = store.get(key, MISSING)
        if value is not MISSING:
            store.move_to_end(key)
            self.hits += 1
        return value

    def store(self, key: Hashable, value: Any) -> None:
        """Insert a computed ``value``, evicting the least recently used entries past the bound."""
        store = self._store
        store[key] = value
        store.move_to_end(key)
        self.forward_passes += 1
        if len(store) > self._maxsize:
            store.popitem(last=False)

    def insert(self, key: Hashable, value: Any) -> None:
        """``store`` for a key that just missed (nothing awaited since): no reordering needed."""
        store = self._store
        store[key] = value
        self.forward_passes += 1
        if len(store) > self._maxsize:
            store.popitem(last=False)

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return (
            f"<ForwardCache {len(self._store)}/{self._maxsize} entries, "
            f"{self.hits} hits, {self.misses} misses>"
        )


class SingleFlight:
    """Forward passes in flight, by cache key, so that identical concurrent calls share one.

    The call that misses claims the key and computes; an identical call that
    arrives meanwhile waits for it to land, then looks in the cache again (a
    pass that failed leaves nothing there, so the waiter computes itself).
    The event a waiter waits on is created only when someone waits, so an
    uncontended pass costs two dict operations and binds to no event loop.
    """

    __slots__ = ("_landed",)

    def __init__(self) -> None:
        self._landed: dict[Hashable, anyio.Event | None] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._landed

    def __len__(self) -> int:
        return len(self._landed)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._landed)

    def claim(self, key: Hashable) -> None:
        """Mark ``key``'s forward pass as in flight (the caller computes it)."""
        self._landed[key] = None

    def release(self, key: Hashable) -> None:
        """The pass for ``key`` landed (or failed): wake everyone waiting for it."""
        landed = self._landed.pop(key)
        if landed is not None:
            landed.set()

    async def wait_idle(self, keys: Sequence[Hashable]) -> None:
        """Return once none of ``keys`` is in flight.

        Returns without awaiting anything when none is, so the caller's next
        cache lookups see the same state this check did.
        """
        landed_by_key = self._landed
        while True:
            busy = next((key for key in keys if key in landed_by_key), None)
            if busy is None:
                return
            landed = landed_by_key[busy]
            if landed is None:
                landed = landed_by_key[busy] = anyio.Event()
            await landed.wait()

    def __repr__(self) -> str:
        return f"<SingleFlight {len(self._landed)} in flight>"
