"""Instrumentation every view of a backend shares: the forward cache, the
statistics snapshot and the trace-event hook.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

__all__ = ["BackendStatistics", "ForwardCache", "TraceEvent", "TraceSink"]

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


@dataclass(frozen=True, slots=True)
class BackendStatistics:
    """A snapshot of everything a backend has counted so far.

    Mappings are read-only copies sorted by key, so two snapshots compare
    equal exactly when the counts are the same.
    """

    cache_hits: int
    cache_misses: int
    forward_passes: int
    cache_entries: int
    calls_per_op: Mapping[str, int]
    calls_per_view: Mapping[str, int]
    entries_per_view: Mapping[str, int]
    entries: int
    exits: int
    switches: int
    waits: int
    wait_time: float
    peak_live_views: int
    live_views: int
    waiting: int
    holders: Mapping[str, str]
    faults_fired: Mapping[str, int] = field(default_factory=dict)
    latency_draws: int = 0
    latency_seconds: float = 0.0
    jitter_events: int = 0
    """Extra checkpoints and sleeps ``schedule_jitter`` inserted at op boundaries."""
    jitter_seconds: float = 0.0
    """Virtual seconds those sleeps added (what a makespan bound may widen by)."""

    @property
    def total_calls(self) -> int:
        """Op calls over every op and view."""
        return sum(self.calls_per_op.values())

    @property
    def hit_rate(self) -> float:
        """Cache hits over lookups; 0.0 before the first lookup."""
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else 0.0

    @property
    def total_faults_fired(self) -> int:
        """Fault firings over every rule."""
        return sum(self.faults_fired.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (mappings become plain dicts)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, MappingProxyType | dict) else value
        return out


def snapshot_mapping(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A sorted read-only copy, as stored in :class:`BackendStatistics`."""
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing that happened, stamped with loop time since the backend's epoch.

    ``kind`` is one of ``view_wait``, ``view_enter``, ``view_exit``,
    ``op_start``, ``op_end``, ``latency``, ``fault``, and (from the runner)
    ``retry``, ``timeout``, ``probe_start``, ``probe_end``. ``time`` is when
    the event was emitted; an event that closes an interval carries its
    ``duration``. Fields that do not apply are None. The fields of each kind
    are documented in :mod:`swaysim._trace` and ``docs/trace-format.md``.
    """

    kind: str
    time: float
    task: str
    view: str | None = None
    op: str | None = None
    prompt_hash: str | None = None
    hit: bool | None = None
    duration: float | None = None
    detail: Mapping[str, Any] | None = None


@runtime_checkable
class TraceSink(Protocol):
    """Anything with ``emit(event)``; a backend with no sink pays one ``is None`` test."""

    def emit(self, event: TraceEvent) -> None:
        """Receive one event. Must not await and should not raise."""
        ...
