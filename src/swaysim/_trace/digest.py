"""What a trace says, folded in one streaming pass: occupancy, probe times, cache, faults.

:func:`digest_events` folds events into a :class:`TraceDigest` holding a
fixed amount of state per view, task, op name, probe and fault rule (plus the
slowest few ops), never the events themselves, so a trace of millions of
events summarises in constant memory. The terminal summary
(:mod:`swaysim._trace.summary`) and the HTML report print the same digest;
this module needs neither rich nor any HTML.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swaysim._trace.events import interval_seconds, probe_kind, probe_name
from swaysim._trace.read import read_trace

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from swaysim._trace.events import TraceEvent

__all__ = [
    "OpRecord",
    "OpUsage",
    "ProbeSpan",
    "TaskUsage",
    "TraceDigest",
    "ViewUsage",
    "digest_events",
    "digest_trace",
    "hit_rate_of",
]


def hit_rate_of(hits: int, misses: int) -> float | None:
    """Hits over ops that reached the cache; None when none did."""
    looked_up = hits + misses
    return hits / looked_up if looked_up else None


@dataclass(slots=True)
class ViewUsage:
    """How one view was used: entries, time live, waits for it and ops on it."""

    view: str
    entries: int = 0
    aborted_entries: int = 0
    busy: float = 0.0
    held: float = 0.0
    waits: int = 0
    wait_time: float = 0.0
    ops: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    live: int = 0
    live_since: float = 0.0

    def occupancy(self, span: float) -> float:
        """Fraction of ``span`` seconds the view was live (0.0 for an empty span)."""
        return self.busy / span if span > 0 else 0.0

    @property
    def hit_rate(self) -> float | None:
        """Cache hits over the view's ops that reached the cache; None when none did."""
        return hit_rate_of(self.hits, self.misses)


@dataclass(slots=True)
class TaskUsage:
    """One task's ops and waits."""

    task: str
    ops: int = 0
    op_time: float = 0.0
    waits: int = 0
    wait_time: float = 0.0


@dataclass(slots=True)
class OpUsage:
    """Calls of one op name over every view."""

    op: str
    calls: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    total_time: float = 0.0
    max_time: float = 0.0

    @property
    def mean_time(self) -> float:
        """Mean seconds per finished call."""
        return self.total_time / self.calls if self.calls else 0.0

    @property
    def hit_rate(self) -> float | None:
        """Cache hits over the calls that reached the cache; None when none did."""
        return hit_rate_of(self.hits, self.misses)


@dataclass(slots=True)
class ProbeSpan:
    """One probe from ``probe_start`` to ``probe_end`` (``end`` None: never ended)."""

    name: str
    kind: str
    start: float
    end: float | None = None
    verdict: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None when the probe never ended in the trace."""
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True, slots=True)
class OpRecord:
    """One finished op, as kept for the slowest-ops list."""

    end: float
    duration: float
    task: str
    view: str | None
    op: str | None
    hit: bool | None
    error: str | None
    prompt_hash: str | None

    @property
    def outcome(self) -> str:
        """``"hit"``, ``"miss"`` or the error name."""
        if self.error is not None:
            return self.error
        return "hit" if self.hit else "miss"


@dataclass(slots=True)
class TraceDigest:
    """Everything :func:`summarize_trace` prints, folded from a stream of events."""

    events: int = 0
    first_time: float | None = None
    last_time: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    views: dict[str, ViewUsage] = field(default_factory=dict)
    tasks: dict[str, TaskUsage] = field(default_factory=dict)
    ops: dict[str, OpUsage] = field(default_factory=dict)
    probes: list[ProbeSpan] = field(default_factory=list)
    faults: Counter[tuple[str, str]] = field(default_factory=Counter)
    fault_ops: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    latency_draws: int = 0
    latency_seconds: float = 0.0
    retries: int = 0
    timeouts: int = 0
    slowest_kept: int = 10
    _slowest: list[tuple[float, int, OpRecord]] = field(default_factory=list)
    _open_probes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def span(self) -> float:
        """Seconds from the first event to the last."""
        return self.last_time - (self.first_time or 0.0) if self.events else 0.0

    @property
    def calls(self) -> int:
        """Finished ops (``op_end`` events), successful or not."""
        return sum(u.calls for u in self.ops.values())

    @property
    def hits(self) -> int:
        """Ops the cache answered."""
        return sum(u.hits for u in self.ops.values())

    @property
    def misses(self) -> int:
        """Ops that needed a forward pass."""
        return sum(u.misses for u in self.ops.values())

    @property
    def errors(self) -> int:
        """Ops that failed (an injected error, cancellation...)."""
        return sum(u.errors for u in self.ops.values())

    @property
    def hit_rate(self) -> float:
        """Hits over finished ops that reached the cache; 0.0 when there were none."""
        return hit_rate_of(self.hits, self.misses) or 0.0

    @property
    def slowest(self) -> list[OpRecord]:
        """The slowest finished ops, slowest first (ties: earliest first)."""
        ranked = sorted(self._slowest, key=lambda entry: (-entry[0], -entry[1]))
        return [record for _, _, record in ranked]

    @property
    def total_faults(self) -> int:
        """Fault firings over every rule."""
        return sum(self.faults.values())

    def add(self, event: TraceEvent) -> None:
        """Fold one event in."""
        self.events += 1
        time = event.time
        if self.first_time is None:
            self.first_time = time
        self.last_time = max(self.last_time, time)
        kind = event.kind
        self.kinds[kind] += 1
        if kind == "op_end":
            self._op_end(event)
        elif kind == "view_enter" and event.view is not None:
            usage = self._view(event.view)
            usage.entries += 1
            if usage.live == 0:
                usage.live_since = time
            usage.live += 1
        elif kind == "view_exit" and event.view is not None:
            usage = self._view(event.view)
            usage.held += interval_seconds(event)
            if event.detail and event.detail.get("aborted"):
                usage.aborted_entries += 1
            if usage.live > 0:
                usage.live -= 1
                if usage.live == 0:
                    usage.busy += time - usage.live_since
        elif kind == "view_wait" and event.view is not None:
            waited = interval_seconds(event)
            usage = self._view(event.view)
            usage.waits += 1
            usage.wait_time += waited
            task = self._task(event.task)
            task.waits += 1
            task.wait_time += waited
        elif kind == "latency":
            self.latency_draws += 1
            self.latency_seconds += interval_seconds(event)
        elif kind == "fault":
            detail = event.detail or {}
            key = (str(detail.get("rule", "?")), str(detail.get("kind", "?")))
            self.faults[key] += 1
            self.fault_ops.setdefault(key, Counter())[event.op or "?"] += 1
        elif kind == "probe_start":
            self._probe_start(event)
        elif kind == "probe_end":
            self._probe_end(event)
        elif kind == "retry":
            self.retries += 1
        elif kind == "timeout":
            self.timeouts += 1

    def finish(self) -> TraceDigest:
        """Close views still live at the last event (their busy time runs to it)."""
        for usage in self.views.values():
            if usage.live > 0:
                usage.busy += self.last_time - usage.live_since
                usage.live = 0
        return self

    def _view(self, view: str) -> ViewUsage:
        usage = self.views.get(view)
        if usage is None:
            usage = self.views[view] = ViewUsage(view)
        return usage

    def _task(self, task: str) -> TaskUsage:
        usage = self.tasks.get(task)
        if usage is None:
            usage = self.tasks[task] = TaskUsage(task)
        return usage

    def _op_end(self, event: TraceEvent) -> None:
        duration = interval_seconds(event)
        error = (event.detail or {}).get("error")
        name = event.op or "?"
        usage = self.ops.get(name)
        if usage is None:
            usage = self.ops[name] = OpUsage(name)
        usage.calls += 1
        usage.total_time += duration
        usage.max_time = max(usage.max_time, duration)
        task = self._task(event.task)
        task.ops += 1
        task.op_time += duration
        view = self._view(event.view) if event.view is not None else None
        if view is not None:
            view.ops += 1
        if error is not None:
            usage.errors += 1
            if view is not None:
                view.errors += 1
        elif event.hit:
            usage.hits += 1
            if view is not None:
                view.hits += 1
        else:
            usage.misses += 1
            if view is not None:
                view.misses += 1
        heap = self._slowest
        if len(heap) < self.slowest_kept or duration > heap[0][0]:
            record = OpRecord(
                end=event.time,
                duration=duration,
                task=event.task,
                view=event.view,
                op=event.op,
                hit=event.hit,
                error=None if error is None else str(error),
                prompt_hash=event.prompt_hash,
            )
            # The negated sequence number keeps the earliest of equal durations.
            entry = (duration, -self.events, record)
            if len(heap) < self.slowest_kept:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)

    def _probe_start(self, event: TraceEvent) -> None:
        name = probe_name(event)
        self._open_probes.setdefault(name, []).append(len(self.probes))
        self.probes.append(ProbeSpan(name, probe_kind(event), event.time))

    def _probe_end(self, event: TraceEvent) -> None:
        name = probe_name(event)
        open_spans = self._open_probes.get(name)
        if open_spans:
            span = self.probes[open_spans.pop(0)]
        else:
            span = ProbeSpan(name, probe_kind(event), event.time - interval_seconds(event))
            self.probes.append(span)
        span.end = event.time
        verdict = (event.detail or {}).get("verdict")
        span.verdict = None if verdict is None else str(verdict)


def digest_events(events: Iterable[TraceEvent], *, slowest: int = 10) -> TraceDigest:
    """Fold ``events`` into a :class:`TraceDigest`, keeping the ``slowest`` slowest ops."""
    digest = TraceDigest(slowest_kept=slowest)
    for event in events:
        digest.add(event)
    return digest.finish()


def digest_trace(path: Path, *, slowest: int = 10) -> TraceDigest:
    """:func:`digest_events` over a trace file, streaming."""
    return digest_events(read_trace(path), slowest=slowest)
