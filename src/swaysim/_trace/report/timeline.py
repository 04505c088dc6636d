"""The report's timeline data: intervals per row, exact for quiet rows, binned for busy ones.

:class:`Timeline` is the report's second, streaming pass over a trace. It is
sized by the digest of the first pass: rows with few intervals embed them
exactly (zooming shows each one, hovering names it); rows with many are
folded into :data:`BINS` time bins, so the page stays small however long
the run. :meth:`Timeline.to_json` is the data ``assets/report.js`` draws;
the ``*Json`` types below are that contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, TypedDict

from swaysim._trace.digest import task_label
from swaysim._trace.events import interval_seconds, probe_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from swaysim._trace.digest import TraceDigest
    from swaysim._trace.events import TraceEvent

__all__ = [
    "BINS",
    "COLORS",
    "FAULT_POINT_CAP",
    "LEGEND",
    "MAX_DETAIL_ROWS",
    "ROW_INTERVAL_CAP",
    "TOTAL_INTERVAL_CAP",
    "Timeline",
    "TimelineJson",
]

#: A row keeps its exact intervals up to this many; past it, the row is binned.
ROW_INTERVAL_CAP: Final = 20_000
#: Exact intervals over all rows; the largest rows are binned until under it.
TOTAL_INTERVAL_CAP: Final = 150_000
#: Time bins of a binned row (and of binned faults).
BINS: Final = 4000
#: Per-task and per-probe rows are drawn up to this many; past it, one aggregate row.
MAX_DETAIL_ROWS: Final = 40
FAULT_POINT_CAP: Final = 20_000
#: Characters of prompt text an op's hover label shows.
LABEL_PROMPT_CHARS: Final = 80

COLORS: Final = {
    "held": "#3b82f6",
    "wait": "#f59e0b",
    "hit": "#2dd4bf",
    "miss": "#6366f1",
    "error": "#ef4444",
    "probe": "#0ea5e9",
    "PASS": "#16a34a",
    "FAIL": "#dc2626",
    "WARN": "#d97706",
    "SKIP": "#9ca3af",
    "ERROR": "#7c3aed",
}
#: The timeline's legend: which colour (a key of ``COLORS``) means what.
LEGEND: Final = (
    ("held", "view held"),
    ("wait", "waiting for a view"),
    ("hit", "op, cache hit"),
    ("miss", "op, forward pass"),
    ("error", "op failed / fault fired"),
    ("PASS", "probe PASS"),
    ("FAIL", "FAIL"),
    ("WARN", "WARN"),
    ("SKIP", "SKIP"),
    ("ERROR", "ERROR"),
    ("probe", "probe, no verdict or aggregated"),
)
_PROBE_LAYERS: Final = ("PASS", "FAIL", "WARN", "SKIP", "ERROR", "probe")


class IntervalLayerJson(TypedDict):
    """Exact intervals, sorted by start; ``label`` indexes the page's string table."""

    name: str
    color: str
    mode: Literal["intervals"]
    s: list[float]
    e: list[float]
    label: list[int]


class BinnedLayerJson(TypedDict):
    """Coverage per time bin (1.0 = busy for the whole bin); no labels."""

    name: str
    color: str
    mode: Literal["bins"]
    v: list[float]


class RowJson(TypedDict):
    name: str
    layers: list[IntervalLayerJson | BinnedLayerJson]


class GroupJson(TypedDict):
    name: str
    rows: list[RowJson]


class FaultPointsJson(TypedDict):
    mode: Literal["points"]
    t: list[float]
    label: list[int]


class FaultBinsJson(TypedDict):
    mode: Literal["bins"]
    v: list[int]


class TimelineJson(TypedDict):
    """What ``assets/report.js`` reads from the page's ``timeline-data`` element."""

    t0: float
    t1: float
    bins: int
    strings: list[str]
    groups: list[GroupJson]
    faults: FaultPointsJson | FaultBinsJson


def _round(value: float) -> float:
    return round(value, 9)


@dataclass
class _Layer:
    """One colour of one timeline row: exact intervals, or coverage per time bin.

    ``intern`` turns an exact interval's label into an index into the
    report's string table; a binned layer keeps no labels, so its text never
    reaches the page.
    """

    name: str
    color: str
    binned: bool
    t0: float
    bin_width: float
    intern: Callable[[str], int]
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    coverage: list[float] = field(default_factory=list)
    slope: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.binned:
            self.coverage = [0.0] * BINS
            self.slope = [0.0] * (BINS + 1)

    def add(self, start: float, end: float, label: str) -> None:
        """Add the interval [start, end]; O(1) whether exact or binned."""
        end = max(end, start)
        if not self.binned:
            self.starts.append(start)
            self.ends.append(end)
            self.labels.append(self.intern(label))
            return
        width = self.bin_width
        first = min(BINS - 1, max(0, int((start - self.t0) / width)))
        last = min(BINS - 1, max(0, int((end - self.t0) / width)))
        if first == last:
            self.coverage[first] += (end - start) / width
            return
        self.coverage[first] += (self.t0 + (first + 1) * width - start) / width
        self.coverage[last] += (end - (self.t0 + last * width)) / width
        # Every bin strictly between is fully covered: a difference array keeps this O(1).
        self.slope[first + 1] += 1.0
        self.slope[last] -= 1.0

    def to_json(self) -> IntervalLayerJson | BinnedLayerJson:
        """The layer as the report's JavaScript reads it."""
        if self.binned:
            running = 0.0
            values = []
            for index in range(BINS):
                running += self.slope[index]
                values.append(round(self.coverage[index] + running, 6))
            return {"name": self.name, "color": self.color, "mode": "bins", "v": values}
        order = sorted(range(len(self.starts)), key=self.starts.__getitem__)
        return {
            "name": self.name,
            "color": self.color,
            "mode": "intervals",
            "s": [_round(self.starts[i]) for i in order],
            "e": [_round(self.ends[i]) for i in order],
            "label": [self.labels[i] for i in order],
        }


@dataclass
class _Row:
    name: str
    layers: dict[str, _Layer]

    def to_json(self) -> RowJson:
        return {"name": self.name, "layers": [layer.to_json() for layer in self.layers.values()]}


def _binned_rows(sizes: dict[str, int]) -> set[str]:
    """The size keys to bin: every row past the row cap, then the largest until under the total."""
    binned = {name for name, count in sizes.items() if count > ROW_INTERVAL_CAP}
    exact = sum(count for name, count in sizes.items() if name not in binned)
    for name, count in sorted(sizes.items(), key=lambda item: -item[1]):
        if exact <= TOTAL_INTERVAL_CAP:
            break
        if name not in binned:
            binned.add(name)
            exact -= count
    return binned


class Timeline:
    """The second, streaming pass: intervals per row, sized by the digest of the first."""

    def __init__(self, digest: TraceDigest) -> None:
        self.t0 = min(0.0, digest.first_time or 0.0)
        self.t1 = max(digest.last_time, self.t0)
        if self.t1 - self.t0 <= 0.0:
            self.t1 = self.t0 + 1.0
        self.bin_width = (self.t1 - self.t0) / BINS
        self.strings: list[str] = []
        self.string_ids: dict[str, int] = {}
        self.notes: list[str] = []
        self.held: dict[tuple[str, str], list[float]] = {}
        self.probe_starts: dict[str, list[float]] = {}
        self.named_tasks = digest.named_tasks()
        self.task_rows = len(self.named_tasks) <= MAX_DETAIL_ROWS
        self.prompt_text = digest.prompt_text
        self.probe_rows = len(digest.probes) <= MAX_DETAIL_ROWS
        self.binned = _binned_rows(self._row_sizes(digest))
        if self.binned:
            self.notes.append(
                f"{len(self.binned)} busy row(s) are binned into {BINS} time bins of "
                f"{self.bin_width:.3g} s each: zooming in further shows averages, not "
                "single intervals."
            )
        self._make_rows(digest)
        self.total_faults = digest.total_faults
        self.faults_binned = self.total_faults > FAULT_POINT_CAP
        self.fault_times: list[float] = []
        self.fault_labels: list[int] = []
        self.fault_bins = [0] * BINS if self.faults_binned else []

    def _row_sizes(self, digest: TraceDigest) -> dict[str, int]:
        """Intervals each row will get, by size key; notes the rows that aggregate."""
        sizes = {f"view:{view.view}": view.entries for view in digest.views.values()}
        sizes["waiting"] = sum(v.waits for v in digest.views.values())
        if self.task_rows:
            for task in self.named_tasks:
                sizes[f"task:{task.task}"] = task.ops + task.waits
        else:
            sizes["tasks"] = sum(t.ops for t in digest.tasks.values())
            self.notes.append(
                f"{len(self.named_tasks)} task names: more than {MAX_DETAIL_ROWS}, so their ops "
                "are drawn as one aggregate row (the height is the number of ops running)."
            )
        sizes["probes"] = len(digest.probes)
        if not self.probe_rows:
            self.notes.append(
                f"{len(digest.probes)} probes: drawn as one row of how many ran at once."
            )
        return sizes

    def _make_rows(self, digest: TraceDigest) -> None:
        self.view_rows = {
            view.view: self._row(view.view, f"view:{view.view}", ("held",))
            for view in digest.views.values()
        }
        self.waiting_row = self._row("waiting", "waiting", ("wait",))
        # One row per task name (a name's tasks do one job, one after another), labelled
        # with the views it worked in; busiest first.
        self.task_rows_by_name: dict[str, _Row] = {}
        self.tasks_row: _Row | None = None
        if self.task_rows:
            for task in self.named_tasks:
                self.task_rows_by_name[task.task] = self._row(
                    task.label, f"task:{task.task}", ("hit", "miss", "error", "wait")
                )
        else:
            self.tasks_row = self._row("ops running", "tasks", ("hit", "miss", "error"))
        self.probe_rows_by_name: dict[str, _Row] = {}
        self.probes_row: _Row | None = None
        if self.probe_rows:
            for probe in digest.probes:
                if probe.name not in self.probe_rows_by_name:
                    self.probe_rows_by_name[probe.name] = self._row(
                        probe.name, "probes", _PROBE_LAYERS
                    )
        else:
            self.probes_row = self._row("probes running", "probes", ("probe",))

    def _row(self, name: str, size_key: str, layers: Iterable[str]) -> _Row:
        binned = size_key in self.binned
        return _Row(
            name,
            {
                layer: _Layer(layer, COLORS[layer], binned, self.t0, self.bin_width, self._label)
                for layer in layers
            },
        )

    def _label(self, text: str) -> int:
        index = self.string_ids.get(text)
        if index is None:
            index = self.string_ids[text] = len(self.strings)
            self.strings.append(text)
        return index

    def add(self, event: TraceEvent) -> None:
        """Draw one event: an interval when it closes one, a point for a fault."""
        kind = event.kind
        if kind == "op_end":
            self._op_end(event)
        elif kind == "view_enter" and event.view is not None:
            self.held.setdefault((event.task, event.view), []).append(event.time)
        elif kind == "view_exit" and event.view is not None:
            self._view_exit(event, event.view)
        elif kind == "view_wait":
            self._view_wait(event)
        elif kind == "probe_start":
            self.probe_starts.setdefault(probe_name(event), []).append(event.time)
        elif kind == "probe_end":
            self._probe_end(event)
        elif kind == "fault":
            self._fault(event)

    def _task_row(self, task: str) -> _Row | None:
        return self.task_rows_by_name.get(task_label(task)) if self.task_rows else self.tasks_row

    def _op_end(self, event: TraceEvent) -> None:
        start = event.time - interval_seconds(event)
        error = (event.detail or {}).get("error")
        layer = "error" if error is not None else ("hit" if event.hit else "miss")
        text = f"{event.op} on {event.view}: " + (str(error) if error is not None else layer)
        prompt = self.prompt_text(event.prompt_hash)
        if prompt is not None:
            shown = prompt if len(prompt) <= LABEL_PROMPT_CHARS else prompt[:79] + "\u2026"
            text += f" \u2014 {shown!r}"
        row = self._task_row(event.task)
        if row is not None:
            row.layers[layer].add(start, event.time, text)

    def _view_exit(self, event: TraceEvent, view: str) -> None:
        starts = self.held.get((event.task, view))
        start = starts.pop() if starts else event.time - interval_seconds(event)
        row = self.view_rows.get(view)
        if row is not None:
            row.layers["held"].add(start, event.time, task_label(event.task))

    def _view_wait(self, event: TraceEvent) -> None:
        start = event.time - interval_seconds(event)
        label = f"{task_label(event.task)} waits for {event.view}"
        self.waiting_row.layers["wait"].add(start, event.time, label)
        task_row = self.task_rows_by_name.get(task_label(event.task))
        if task_row is not None:
            task_row.layers["wait"].add(start, event.time, label)

    def _probe_end(self, event: TraceEvent) -> None:
        name = probe_name(event)
        starts = self.probe_starts.get(name)
        duration = interval_seconds(event)
        start = starts.pop(0) if starts else event.time - duration
        # The probe's duration, when written, is the one its result reports: the bar ends there.
        end = event.time if event.duration is None or not duration else start + duration
        verdict = str((event.detail or {}).get("verdict", "probe"))
        label = f"{name}: {verdict}"
        if self.probes_row is not None:
            self.probes_row.layers["probe"].add(start, end, label)
            return
        row = self.probe_rows_by_name.get(name)
        if row is not None:
            layer = verdict if verdict in row.layers else "probe"
            row.layers[layer].add(start, end, label)

    def _fault(self, event: TraceEvent) -> None:
        if self.faults_binned:
            index = min(BINS - 1, max(0, int((event.time - self.t0) / self.bin_width)))
            self.fault_bins[index] += 1
            return
        detail = event.detail or {}
        text = (
            f"fault {detail.get('kind', '?')} ({detail.get('rule', '?')}) on "
            f"{event.op} / {event.view} in {task_label(event.task)}"
        )
        prompt = self.prompt_text(event.prompt_hash)
        if prompt is not None:
            text += f" \u2014 {prompt[:LABEL_PROMPT_CHARS]!r}"
        self.fault_times.append(_round(event.time))
        self.fault_labels.append(self._label(text))

    def finish(self) -> None:
        """Intervals still open when the trace ends run to its end."""
        for (task, view), starts in self.held.items():
            row = self.view_rows.get(view)
            for start in starts:
                if row is not None:
                    row.layers["held"].add(start, self.t1, f"{task_label(task)} (still held)")
        for name, starts in self.probe_starts.items():
            for start in starts:
                label = f"{name}: unfinished"
                if self.probes_row is not None:
                    self.probes_row.layers["probe"].add(start, self.t1, label)
                elif name in self.probe_rows_by_name:
                    self.probe_rows_by_name[name].layers["probe"].add(start, self.t1, label)

    def _groups(self) -> list[GroupJson]:
        groups: list[GroupJson] = [
            {"name": "views", "rows": [row.to_json() for row in self.view_rows.values()]},
            {"name": "waiting", "rows": [self.waiting_row.to_json()]},
        ]
        task_rows = (
            [row.to_json() for row in self.task_rows_by_name.values()]
            if self.tasks_row is None
            else [self.tasks_row.to_json()]
        )
        groups.append({"name": "tasks", "rows": task_rows})
        probe_rows = (
            [row.to_json() for row in self.probe_rows_by_name.values()]
            if self.probes_row is None
            else [self.probes_row.to_json()]
        )
        if probe_rows:
            groups.append({"name": "probes", "rows": probe_rows})
        return groups

    def to_json(self) -> TimelineJson:
        """Everything the page's script draws, as JSON-ready data."""
        faults: FaultPointsJson | FaultBinsJson
        if self.faults_binned:
            faults = {"mode": "bins", "v": self.fault_bins}
        else:
            faults = {"mode": "points", "t": self.fault_times, "label": self.fault_labels}
        return {
            "t0": self.t0,
            "t1": self.t1,
            "bins": BINS,
            "strings": self.strings,
            "groups": self._groups(),
            "faults": faults,
        }
