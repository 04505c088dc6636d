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
from typing import TYPE_CHECKING, Final

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
    "PROMPTS_KEPT",
    "display_prompt",
    "hit_rate_of",
    "task_label",
]


PROMPTS_KEPT: Final = 50_000
"""Distinct prompt texts a digest keeps (so a report of millions of prompts stays bounded)."""


def display_prompt(text: str) -> str:
    """An op's key text for people: ``logprob_of``'s completion after an arrow, batches split.

    The trace writes the key the prompt hash is taken of: the prompt, the prompt and
    completion joined by NUL for ``logprob_of``, a batch's prompts joined by RS.
    """
    return text.replace("\x00", " \u2192 ").replace("\x1e", " | ")


def task_label(task: str) -> str:
    """A trace's task as a person names it: without the id, without swaysim's prefix.

    ``"swaysim-worker-3#140681515288000"`` is ``"worker-3"``: task ids are memory
    addresses, different in every run, and every task of one name does the same job.
    """
    name = task.rpartition("#")[0] or task
    return name.removeprefix("swaysim-") or task


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
    """One task's ops and waits (or, from :meth:`TraceDigest.named_tasks`, a name's)."""

    task: str
    ops: int = 0
    op_time: float = 0.0
    waits: int = 0
    wait_time: float = 0.0
    views: Counter[str] = field(default_factory=Counter)
    """Ops per view."""
    tasks: int = 1
    """How many tasks (distinct ids) this usage sums."""

    @property
    def label(self) -> str:
        """The name and the views it worked in: ``worker-3 · ft, base``."""
        views = ", ".join(view for view, _ in self.views.most_common())
        return f"{self.task} · {views}" if views else self.task


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
    """One probe from ``probe_start`` to its end (``end`` None: never ended).

    Its end is ``start + duration`` when ``probe_end`` carries the probe's
    duration (swaysim's runner writes the same number as the result's
    ``duration``: first request sent to last answer in), else the ``probe_end``.
    """

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
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)
    """First and last time of each kind of moment a report may point at: ``retry``,
    ``timeout``, ``fault``, ``fault:<rule>`` and ``fault_kind:<kind>``, ``peak_live``
    (when the most views were live at once)."""
    prompts: dict[str, str] = field(default_factory=dict)
    """Prompt text by hash, from a version 2 trace's ``prompt`` events (the first
    :data:`PROMPTS_KEPT`; each as written, at most ``PROMPT_TEXT_CAP`` characters)."""
    slowest_kept: int = 10
    _slowest: list[tuple[float, int, OpRecord]] = field(default_factory=list)
    _open_probes: dict[str, list[int]] = field(default_factory=dict)
    _live: int = 0
    _peak_live: int = 0

    def mark(self, name: str, time: float) -> None:
        """Note a moment of kind ``name`` (its first and last time are kept)."""
        first = self.marks.get(name)
        self.marks[name] = (time, time) if first is None else (first[0], time)

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

    def named_tasks(self) -> list[TaskUsage]:
        """Tasks summed per :func:`task_label` (a name's tasks do one job), busiest first."""
        named: dict[str, TaskUsage] = {}
        for usage in self.tasks.values():
            name = task_label(usage.task)
            total = named.get(name)
            if total is None:
                named[name] = total = TaskUsage(name, tasks=0)
            total.ops += usage.ops
            total.op_time += usage.op_time
            total.waits += usage.waits
            total.wait_time += usage.wait_time
            total.views.update(usage.views)
            total.tasks += 1
        return sorted(named.values(), key=lambda u: (-u.op_time, -u.ops, u.task))

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
            self._live += 1
            if self._live > self._peak_live:
                self._peak_live = self._live
                self.marks["peak_live"] = (time, time)
        elif kind == "view_exit" and event.view is not None:
            self._live = max(0, self._live - 1)
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
            self.mark("fault", time)
            self.mark(f"fault:{key[0]}", time)
            self.mark(f"fault_kind:{key[1]}", time)
        elif kind == "probe_start":
            self._probe_start(event)
        elif kind == "probe_end":
            self._probe_end(event)
        elif kind == "retry":
            self.retries += 1
            self.mark("retry", time)
        elif kind == "timeout":
            self.timeouts += 1
            self.mark("timeout", time)
        elif kind == "prompt":
            self._prompt(event)

    def finish(self) -> TraceDigest:
        """Close views still live at the last event (their busy time runs to it)."""
        for usage in self.views.values():
            if usage.live > 0:
                usage.busy += self.last_time - usage.live_since
                usage.live = 0
        return self

    def _prompt(self, event: TraceEvent) -> None:
        text = (event.detail or {}).get("text")
        hashed = event.prompt_hash
        if hashed is not None and isinstance(text, str) and len(self.prompts) < PROMPTS_KEPT:
            self.prompts.setdefault(hashed, text)

    def prompt_text(self, prompt_hash: str | None) -> str | None:
        """The text behind ``prompt_hash``, as the report shows it; None when unknown."""
        if prompt_hash is None:
            return None
        text = self.prompts.get(prompt_hash)
        return None if text is None else display_prompt(text)

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
        if event.view is not None:
            task.views[event.view] += 1
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
        duration = event.duration
        if open_spans:
            span = self.probes[open_spans.pop(0)]
        else:
            span = ProbeSpan(name, probe_kind(event), event.time - interval_seconds(event))
            self.probes.append(span)
        span.end = event.time if duration is None else span.start + duration
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
