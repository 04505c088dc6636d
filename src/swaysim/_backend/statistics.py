"""The statistics snapshot a backend hands out: what it counted, frozen at one instant."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BackendStatistics", "snapshot_mapping"]


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

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (mappings become plain dicts)."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, MappingProxyType | dict) else value
        return out


_Value = TypeVar("_Value")


def snapshot_mapping(mapping: Mapping[str, _Value]) -> Mapping[str, _Value]:
    """A sorted read-only copy, as stored in :class:`BackendStatistics`."""
    return MappingProxyType(dict(sorted(mapping.items())))
