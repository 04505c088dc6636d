"""Trace events and the sink protocol: what a backend and a runner report as things happen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["TraceEvent", "TraceSink", "interval_seconds", "probe_kind", "probe_name"]


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing that happened, stamped with loop time since the backend's epoch.

    ``kind`` is one of ``view_wait``, ``view_enter``, ``view_exit``,
    ``op_start``, ``op_end``, ``latency``, ``fault``, and (from the runner)
    ``retry``, ``timeout``, ``probe_start``, ``probe_end``. ``time`` is when
    the event was emitted; an event that closes an interval carries its
    ``duration``. Fields that do not apply are None. The fields of each kind
    are documented in :mod:`swaysim._trace.schema` and ``docs/trace-format.md``.
    ``detail`` values stay loosely typed on purpose: they are JSON-shaped data
    that callers index and convert (``float(event.detail["delay"])``).
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
    """Anything with ``emit(event)``; a backend with no sink pays one ``is None`` test.

    A sink may also have ``emit_fields(kind, time, task, view, op,
    prompt_hash, hit, duration, detail)``: the nine fields of a
    :class:`TraceEvent`, positionally, in that order. A backend then calls it
    instead of ``emit``, so that tracing builds no event object a sink does
    not keep (:class:`~swaysim.JsonlTraceWriter` encodes the fields into its
    line; :class:`~swaysim.TraceRecorder` builds the event it keeps). The
    sink owns ``detail`` from then on; the backend never changes it.
    """

    def emit(self, event: TraceEvent) -> None:
        """Receive one event. Must not await and should not raise."""
        ...


def probe_name(event: TraceEvent) -> str:
    """A ``probe_start``/``probe_end`` event's ``detail.probe``, ``"?"`` when absent."""
    return str((event.detail or {}).get("probe", "?"))


def probe_kind(event: TraceEvent) -> str:
    """A probe event's ``detail.probe_kind``, ``""`` when absent."""
    return str((event.detail or {}).get("probe_kind", ""))


def interval_seconds(event: TraceEvent) -> float:
    """The event's ``duration`` as the length of an interval: 0.0 when absent or not finite.

    A trace may say ``"duration": "inf"`` (non-finite numbers are written by
    name); no interval is that long, so timelines and totals treat it as none.
    """
    duration = event.duration
    if duration is None or not math.isfinite(duration) or duration < 0:
        return 0.0
    return duration
