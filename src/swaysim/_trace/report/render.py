"""A self-contained HTML report of one run: timeline, probe results, statistics.

``write_report(run_dir, output)`` reads a run directory (``trace.jsonl`` and
``results.json``, see ``docs/trace-format.md``) and writes one HTML file
with inline CSS and JavaScript only: no network access, no external
scripts or fonts (a Content-Security-Policy forbids them). The timeline is
drawn on a canvas: each pixel column shows how much of its time slice a view
was held, tasks waited, ops ran, so a run of millions of events reads as
well as a short one. Rows with few intervals embed them exactly (zooming
shows every interval); rows with many are binned into a fixed number of
time bins by the streaming pass that reads the trace.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from swaysim._trace.digest import TraceDigest, digest_trace
from swaysim._trace.events import probe_name
from swaysim._trace.read import read_trace
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from swaysim._trace.events import TraceEvent

__all__ = ["RESULTS_FILE", "TRACE_FILE", "render_report", "write_report"]

TRACE_FILE: Final = "trace.jsonl"
RESULTS_FILE: Final = "results.json"

#: A row keeps its exact intervals up to this many; past it, the row is binned.
ROW_INTERVAL_CAP: Final = 20_000
#: Exact intervals over all rows; the largest rows are binned until under it.
TOTAL_INTERVAL_CAP: Final = 150_000
#: Time bins of a binned row (and of binned faults).
BINS: Final = 4000
#: Per-task and per-probe rows are drawn up to this many; past it, one aggregate row.
MAX_DETAIL_ROWS: Final = 40
FAULT_POINT_CAP: Final = 20_000

_PLACEHOLDER: Final = re.compile(r"\{\{(\w+)\}\}")
_COLORS: Final = {
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
#: The timeline's legend: which colour (a key of ``_COLORS``) means what.
_LEGEND: Final = (
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

    def to_json(self) -> dict[str, Any]:
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

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [layer.to_json() for layer in self.layers.values()]}


class _Timeline:
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

        counts: dict[str, int] = {}
        for view in digest.views.values():
            counts[f"view:{view.view}"] = view.entries
        counts["waiting"] = sum(v.waits for v in digest.views.values())
        self.task_rows = len(digest.tasks) <= MAX_DETAIL_ROWS
        if self.task_rows:
            for task in digest.tasks.values():
                counts[f"task:{task.task}"] = task.ops + task.waits
        else:
            counts["tasks"] = sum(t.ops for t in digest.tasks.values())
            self.notes.append(
                f"{len(digest.tasks)} tasks: more than {MAX_DETAIL_ROWS}, so their ops are "
                "drawn as one aggregate row (the height is the number of ops running)."
            )
        self.probe_rows = len(digest.probes) <= MAX_DETAIL_ROWS
        counts["probes"] = len(digest.probes)
        if not self.probe_rows:
            self.notes.append(
                f"{len(digest.probes)} probes: drawn as one row of how many ran at once."
            )
        binned = {name for name, count in counts.items() if count > ROW_INTERVAL_CAP}
        exact = sum(count for name, count in counts.items() if name not in binned)
        for name, count in sorted(counts.items(), key=lambda item: -item[1]):
            if exact <= TOTAL_INTERVAL_CAP:
                break
            if name not in binned:
                binned.add(name)
                exact -= count
        if binned:
            self.notes.append(
                f"{len(binned)} busy row(s) are binned into {BINS} time bins of "
                f"{self.bin_width:.3g} s each: zooming in further shows averages, not "
                "single intervals."
            )
        self.binned = binned

        self.view_rows: dict[str, _Row] = {}
        for view in digest.views.values():
            self.view_rows[view.view] = self._row(view.view, f"view:{view.view}", ("held",))
        self.waiting_row = self._row("waiting", "waiting", ("wait",))
        self.task_rows_by_name: dict[str, _Row] = {}
        if self.task_rows:
            shown = _task_labels(list(digest.tasks))
            for task in digest.tasks.values():
                self.task_rows_by_name[task.task] = self._row(
                    shown[task.task], f"task:{task.task}", ("hit", "miss", "error", "wait")
                )
            self.tasks_row: _Row | None = None
        else:
            self.tasks_row = self._row("ops running", "tasks", ("hit", "miss", "error"))
        self.probe_rows_by_name: dict[str, _Row] = {}
        self.probes_row: _Row | None = None
        if self.probe_rows:
            for probe in digest.probes:
                if probe.name not in self.probe_rows_by_name:
                    self.probe_rows_by_name[probe.name] = self._row(
                        probe.name, "probes", ("PASS", "FAIL", "WARN", "SKIP", "ERROR", "probe")
                    )
        else:
            self.probes_row = self._row("probes running", "probes", ("probe",))

        self.total_faults = digest.total_faults
        self.faults_binned = self.total_faults > FAULT_POINT_CAP
        self.fault_times: list[float] = []
        self.fault_labels: list[int] = []
        self.fault_bins = [0] * BINS if self.faults_binned else []

    def _row(self, name: str, size_key: str, layers: Iterable[str]) -> _Row:
        binned = size_key in self.binned
        return _Row(
            name,
            {
                layer: _Layer(layer, _COLORS[layer], binned, self.t0, self.bin_width, self._label)
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
        kind = event.kind
        time = event.time
        if kind == "op_end":
            start = time - (event.duration or 0.0)
            error = (event.detail or {}).get("error")
            layer = "error" if error is not None else ("hit" if event.hit else "miss")
            text = f"{event.op} on {event.view}: " + (str(error) if error is not None else layer)
            row = self.task_rows_by_name.get(event.task) if self.task_rows else self.tasks_row
            if row is not None:
                row.layers[layer].add(start, time, text)
        elif kind == "view_enter" and event.view is not None:
            self.held.setdefault((event.task, event.view), []).append(time)
        elif kind == "view_exit" and event.view is not None:
            starts = self.held.get((event.task, event.view))
            start = starts.pop() if starts else time - (event.duration or 0.0)
            row = self.view_rows.get(event.view)
            if row is not None:
                row.layers["held"].add(start, time, event.task)
        elif kind == "view_wait":
            start = time - (event.duration or 0.0)
            label = f"{event.task} waits for {event.view}"
            self.waiting_row.layers["wait"].add(start, time, label)
            task_row = self.task_rows_by_name.get(event.task)
            if task_row is not None:
                task_row.layers["wait"].add(start, time, label)
        elif kind == "probe_start":
            self.probe_starts.setdefault(probe_name(event), []).append(time)
        elif kind == "probe_end":
            self._probe_end(event)
        elif kind == "fault":
            if self.faults_binned:
                index = min(BINS - 1, max(0, int((time - self.t0) / self.bin_width)))
                self.fault_bins[index] += 1
            else:
                detail = event.detail or {}
                text = (
                    f"fault {detail.get('kind', '?')} ({detail.get('rule', '?')}) on "
                    f"{event.op} / {event.view} in {event.task}"
                )
                self.fault_times.append(_round(time))
                self.fault_labels.append(self._label(text))

    def _probe_end(self, event: TraceEvent) -> None:
        name = probe_name(event)
        starts = self.probe_starts.get(name)
        start = starts.pop(0) if starts else event.time - (event.duration or 0.0)
        verdict = str((event.detail or {}).get("verdict", "probe"))
        label = f"{name}: {verdict}"
        if self.probes_row is not None:
            self.probes_row.layers["probe"].add(start, event.time, label)
            return
        row = self.probe_rows_by_name.get(name)
        if row is not None:
            layer = verdict if verdict in row.layers else "probe"
            row.layers[layer].add(start, event.time, label)

    def finish(self) -> None:
        """Intervals still open when the trace ends run to its end."""
        for (task, view), starts in self.held.items():
            row = self.view_rows.get(view)
            for start in starts:
                if row is not None:
                    row.layers["held"].add(start, self.t1, f"{task} (still held)")
        for name, starts in self.probe_starts.items():
            for start in starts:
                label = f"{name}: unfinished"
                if self.probes_row is not None:
                    self.probes_row.layers["probe"].add(start, self.t1, label)
                elif name in self.probe_rows_by_name:
                    self.probe_rows_by_name[name].layers["probe"].add(start, self.t1, label)

    def to_json(self) -> dict[str, Any]:
        groups = [
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
        faults: dict[str, Any]
        if self.faults_binned:
            faults = {"mode": "bins", "v": self.fault_bins}
        else:
            faults = {"mode": "points", "t": self.fault_times, "label": self.fault_labels}
        return {
            "t0": self.t0,
            "t1": self.t1,
            "bins": BINS,
            "strings": self.strings,
            "groups": groups,
            "faults": faults,
        }


def _task_labels(tasks: list[str]) -> dict[str, str]:
    """Short row labels: the task's name, numbered ``name (2)``... when names repeat."""
    names = [task.rpartition("#")[0] or task for task in tasks]
    total = {name: names.count(name) for name in names}
    seen: dict[str, int] = {}
    labels = {}
    for task, name in zip(tasks, names, strict=True):
        seen[name] = seen.get(name, 0) + 1
        labels[task] = name if total[name] == 1 else f"{name} ({seen[name]})"
    return labels


# -- HTML ------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return _e(value)
        return f"{value:.4g}"
    return _e(value)


def _seconds(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.4g}&nbsp;s"


def _percent(value: float | None) -> str:
    return "&ndash;" if value is None else f"{100.0 * value:.1f}%"


def _table(headers: list[str], rows: list[list[str]], *, numeric: set[int] | None = None) -> str:
    """An HTML table; cells are already-escaped HTML."""
    numeric = numeric or set()
    head = "".join(
        f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(verdict: object) -> str:
    text = str(verdict) if verdict is not None else "?"
    css = text.lower() if text in ("PASS", "FAIL", "WARN", "SKIP", "ERROR") else "other"
    return f'<span class="verdict {css}">{_e(text)}</span>'


def _probe_section(results: Mapping[str, Any] | None) -> str:
    if results is None:
        return f"<p class=note>No {RESULTS_FILE} in the run directory: no probe results.</p>"
    probes = results.get("probes") or []
    if not probes:
        return "<p class=note>The run has no probe results.</p>"
    rows = []
    for probe in probes:
        if not isinstance(probe, dict):
            continue
        rows.append(
            [
                _e(probe.get("name", "?")),
                _e(probe.get("kind", "")),
                _verdict(probe.get("verdict")),
                _num(probe.get("score")),
                _num(probe.get("raw")),
                _num(probe.get("z")),
                _seconds(probe.get("duration")),
                _e(probe.get("message", "")),
            ]
        )
    return _table(
        ["probe", "kind", "verdict", "score", "raw", "z", "duration", "message"],
        rows,
        numeric={3, 4, 5, 6},
    )


def _statistics_section(results: Mapping[str, Any] | None) -> str:
    statistics = (results or {}).get("statistics")
    if not isinstance(statistics, dict) or not statistics:
        return "<p class=note>No backend statistics in the run directory.</p>"
    rows = []
    for key, value in statistics.items():
        if isinstance(value, dict):
            cell = (
                ", ".join(f"{_e(k)}&nbsp;<b>{_num(v)}</b>" for k, v in value.items()) or "&ndash;"
            )
        else:
            cell = _num(value)
        rows.append([_e(key), cell])
    return _table(["statistic", "value"], rows)


def _summary_section(digest: TraceDigest) -> str:
    span = digest.span
    views = _table(
        ["view", "entries", "live", "occupancy", "waits", "waited", "ops", "hit rate", "errors"],
        [
            [
                _e(u.view),
                _num(u.entries),
                _seconds(u.busy),
                f'<span class=bar style="--w:{min(100.0, 100.0 * u.occupancy(span)):.1f}%">'
                f"{100.0 * u.occupancy(span):.1f}%</span>",
                _num(u.waits),
                _seconds(u.wait_time),
                _num(u.ops),
                _percent(u.hit_rate),
                _num(u.errors),
            ]
            for u in digest.views.values()
        ],
        numeric={1, 2, 4, 5, 6, 7, 8},
    )
    probes = ""
    if digest.probes:
        probes = "<h3>Probe time</h3>" + _table(
            ["probe", "kind", "verdict", "start", "time"],
            [
                [
                    _e(p.name),
                    _e(p.kind),
                    _verdict(p.verdict) if p.verdict else "(unfinished)",
                    _seconds(p.start),
                    _seconds(p.duration),
                ]
                for p in digest.probes
            ],
            numeric={3, 4},
        )
    ops = _table(
        ["op", "calls", "hits", "misses", "errors", "hit rate", "mean", "max"],
        [
            [
                _e(u.op),
                _num(u.calls),
                _num(u.hits),
                _num(u.misses),
                _num(u.errors),
                _percent(u.hit_rate),
                _seconds(u.mean_time),
                _seconds(u.max_time),
            ]
            for u in sorted(digest.ops.values(), key=lambda u: u.op)
        ],
        numeric={1, 2, 3, 4, 5, 6, 7},
    )
    slowest = _table(
        ["end", "task", "view", "op", "duration", "outcome", "prompt hash"],
        [
            [
                _seconds(r.end),
                _e(r.task),
                _e(r.view or ""),
                _e(r.op or ""),
                _seconds(r.duration),
                _e(r.outcome),
                f"<code>{_e(r.prompt_hash or '')}</code>",
            ]
            for r in digest.slowest
        ],
        numeric={0, 4},
    )
    if digest.faults:
        faults = _table(
            ["rule", "kind", "fired", "on"],
            [
                [
                    _e(rule),
                    _e(kind),
                    _num(count),
                    _e(
                        ", ".join(
                            f"{op} x{n}"
                            for op, n in sorted(digest.fault_ops.get((rule, kind), {}).items())
                        )
                    ),
                ]
                for (rule, kind), count in sorted(digest.faults.items())
            ],
            numeric={2},
        )
    else:
        faults = "<p class=note>No fault fired.</p>"
    return (
        "<h3>View occupancy</h3>"
        + views
        + probes
        + "<h3>Ops and cache</h3>"
        + ops
        + f"<h3>Slowest ops (top {digest.slowest_kept})</h3>"
        + slowest
        + "<h3>Faults fired</h3>"
        + faults
    )


def _json_for_script(data: object) -> str:
    """JSON safe inside a <script> element (no '<', '>' or '&' can close it)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(
    trace_path: Path, results: Mapping[str, Any] | None = None, *, title: str = ""
) -> str:
    """The report for one trace (and the run's results, if any) as an HTML string.

    Reads the trace twice, streaming: once for the summary, once for the timeline.
    """
    trace_path = Path(trace_path)
    digest = digest_trace(trace_path, slowest=15)
    timeline = _Timeline(digest)
    for event in read_trace(trace_path):
        timeline.add(event)
    timeline.finish()
    data = timeline.to_json()

    scenario = str((results or {}).get("scenario") or title or trace_path.parent.name)
    facts = [
        ("scenario", scenario),
        ("loop", (results or {}).get("loop")),
        ("seed", (results or {}).get("seed")),
        ("makespan", (results or {}).get("makespan")),
        ("trace", f"{digest.events:,} events over {digest.span:.4g} s"),
        ("tasks", len(digest.tasks)),
        ("ops", digest.calls),
        ("cache hit rate", f"{100.0 * digest.hit_rate:.1f}%"),
        ("faults", digest.total_faults),
        ("retries", digest.retries),
        ("timeouts", digest.timeouts),
    ]
    fact_html = "".join(
        f"<div><dt>{_e(k)}</dt><dd>"
        + (f"{v:.4g}&nbsp;s" if k == "makespan" and isinstance(v, int | float) else _e(v))
        + "</dd></div>"
        for k, v in facts
        if v is not None
    )
    verdicts: dict[str, int] = {}
    for probe in (results or {}).get("probes") or []:
        if isinstance(probe, dict):
            verdict = str(probe.get("verdict", "?"))
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    verdict_html = " ".join(
        f"{_verdict(v)}&nbsp;{n}" for v, n in sorted(verdicts.items(), key=lambda i: i[0])
    )
    notes = "".join(f"<p class=note>{_e(n)}</p>" for n in timeline.notes)
    values = {
        "title": _e(f"swaysim report: {scenario}"),
        "scenario": _e(scenario),
        "facts": fact_html,
        "verdicts": verdict_html,
        "notes": notes,
        "legend": "".join(
            f'<span><i style="background:{_COLORS[key]}"></i>{_e(text)}</span>'
            for key, text in _LEGEND
        ),
        "probes": _probe_section(results),
        "summary": _summary_section(digest),
        "statistics": _statistics_section(results),
        "style": _STYLE,
        "script": _SCRIPT,
        "data": _json_for_script(data),
    }
    # One pass over the template: substituted text is never scanned again.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], _PAGE)


def load_results(path: Path) -> dict[str, Any]:
    """Read ``results.json``, naming the file when it is not a JSON object."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "expected the run's results object"
        ) from None
    if not isinstance(results, dict):
        raise InvalidArgumentError(
            f"{path} holds a {type(results).__name__}; expected a JSON object with "
            '"scenario", "probes", "statistics"...'
        )
    return results


def write_report(run_dir: Path, output: Path) -> None:
    """Write the HTML report of the run in ``run_dir`` to ``output``.

    ``run_dir`` must hold ``trace.jsonl`` (or ``trace.jsonl.gz``);
    ``results.json`` is optional (without it the report has no probe
    results or backend statistics).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InvalidArgumentError(f"run_dir={str(run_dir)!r} must be an existing directory")
    trace_path = run_dir / TRACE_FILE
    if not trace_path.is_file() and (run_dir / f"{TRACE_FILE}.gz").is_file():
        trace_path = run_dir / f"{TRACE_FILE}.gz"
    if not trace_path.is_file():
        raise InvalidArgumentError(
            f"run_dir={str(run_dir)!r} has no {TRACE_FILE}; write one with "
            "'swaysim run --trace DIR'"
        )
    results_path = run_dir / RESULTS_FILE
    results = load_results(results_path) if results_path.is_file() else None
    page = render_report(trace_path, results, title=run_dir.name)
    Path(output).write_text(page, encoding="utf-8", newline="\n")


_STYLE: Final = """
:root { color-scheme: light; --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 32px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 14px; margin: 20px 0 6px; }
dl.facts { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 8px 0; }
dl.facts div { display: flex; gap: 6px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-weight: 600; }
table { border-collapse: collapse; margin: 4px 0 12px; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: var(--muted); margin: 4px 0; }
.verdict { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 700;
  font-size: 12px; color: #fff; background: #6b7280; }
.verdict.pass { background: #16a34a; } .verdict.fail { background: #dc2626; }
.verdict.warn { background: #d97706; } .verdict.skip { background: #9ca3af; }
.verdict.error { background: #7c3aed; }
.bar { display: inline-block; min-width: 70px; background: linear-gradient(90deg, #bfdbfe var(--w),
  transparent var(--w)); padding: 0 4px; }
.controls { display: flex; gap: 6px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
.controls button { font: inherit; padding: 2px 10px; border: 1px solid #d1d5db;
  background: #f9fafb; border-radius: 4px; cursor: pointer; }
.controls button:hover { background: #eef2ff; }
#range { color: var(--muted); margin-left: 8px; font-variant-numeric: tabular-nums; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; color: var(--muted); font-size: 12px;
  margin: 4px 0; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px;
  vertical-align: -1px; border-radius: 2px; }
.timeline-box { position: relative; border: 1px solid var(--line); border-radius: 4px; }
#timeline { display: block; width: 100%; cursor: grab; }
#timeline.dragging { cursor: grabbing; }
#tooltip { position: absolute; pointer-events: none; background: rgba(17, 24, 39, 0.92);
  color: #fff; font-size: 12px; padding: 4px 8px; border-radius: 4px; white-space: pre;
  max-width: 520px; overflow: hidden; z-index: 2; }
code { font-size: 12px; }
"""

_SCRIPT: Final = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("timeline-data").textContent);
  const canvas = document.getElementById("timeline");
  const tooltip = document.getElementById("tooltip");
  const rangeText = document.getElementById("range");
  const ctx = canvas.getContext("2d");
  const GUTTER = 170, ROW = 18, HEADER = 16, AXIS = 24, PAD = 8;
  const t0 = data.t0, t1 = data.t1, nBins = data.bins;
  const minSpan = Math.max((t1 - t0) * 1e-7, 1e-9);
  let v0 = t0, v1 = t1, width = 600;

  // Layout: group headers and rows, top to bottom; faults last.
  const lines = [];
  for (const group of data.groups) {
    if (!group.rows.length) continue;
    lines.push({ kind: "header", name: group.name });
    for (const row of group.rows) lines.push({ kind: "row", name: row.name, row: row });
  }
  lines.push({ kind: "header", name: "faults" });
  lines.push({ kind: "faults", name: "fired" });
  let y = AXIS;
  for (const line of lines) {
    line.y = y;
    line.h = line.kind === "header" ? HEADER : ROW;
    y += line.h;
  }
  const height = y + PAD;

  function coverage(layer, a, b, w) {
    const cov = new Float64Array(w);
    const seen = new Uint8Array(w);
    const scale = w / (b - a);
    if (layer.mode === "bins") {
      const bw = (t1 - t0) / nBins, v = layer.v;
      for (let p = 0; p < w; p++) {
        const ta = a + p / scale, tb = a + (p + 1) / scale;
        let i = Math.max(0, Math.floor((ta - t0) / bw));
        const last = Math.min(nBins - 1, Math.floor((tb - t0) / bw));
        let sum = 0;
        for (; i <= last; i++) {
          const lo = Math.max(ta, t0 + i * bw), hi = Math.min(tb, t0 + (i + 1) * bw);
          if (hi > lo) sum += v[i] * (hi - lo);
        }
        cov[p] = sum / (tb - ta);
        if (sum > 0) seen[p] = 1;
      }
      return { cov: cov, seen: seen };
    }
    const s = layer.s, e = layer.e;
    for (let k = 0; k < s.length; k++) {
      if (s[k] > b) break;
      if (e[k] < a) continue;
      const x0 = (Math.max(s[k], a) - a) * scale, x1 = (Math.min(e[k], b) - a) * scale;
      const p0 = Math.max(0, Math.floor(x0)), p1 = Math.min(w - 1, Math.floor(x1));
      if (p0 === p1) {
        cov[p0] += x1 - x0;
        seen[p0] = 1;
        continue;
      }
      cov[p0] += p0 + 1 - x0;
      seen[p0] = 1;
      for (let p = p0 + 1; p < p1; p++) { cov[p] += 1; seen[p] = 1; }
      cov[p1] += x1 - p1;
      seen[p1] = 1;
    }
    return { cov: cov, seen: seen };
  }

  function niceStep(span, pixels) {
    const raw = span / Math.max(1, pixels / 110);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function fmt(t, step) {
    const digits = Math.max(0, Math.min(9, -Math.floor(Math.log10(step || 1)) + 1));
    return t.toFixed(digits) + " s";
  }

  function faultCounts(a, b, w) {
    const counts = new Float64Array(w);
    const scale = w / (b - a);
    const f = data.faults;
    if (f.mode === "bins") {
      const bw = (t1 - t0) / nBins;
      for (let i = 0; i < f.v.length; i++) {
        if (!f.v[i]) continue;
        const mid = t0 + (i + 0.5) * bw;
        if (mid < a || mid > b) continue;
        counts[Math.min(w - 1, Math.floor((mid - a) * scale))] += f.v[i];
      }
    } else {
      for (const t of f.t) {
        if (t < a || t > b) continue;
        counts[Math.min(w - 1, Math.floor((t - a) * scale))] += 1;
      }
    }
    return counts;
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = Math.max(400, canvas.parentElement.clientWidth - 2);
    width = cssWidth - GUTTER - PAD;
    canvas.style.height = height + "px";
    canvas.width = Math.floor(cssWidth * dpr);
    canvas.height = Math.floor(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssWidth, height);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const w = Math.max(1, Math.floor(width));
    const step = niceStep(v1 - v0, w);
    // Axis and grid.
    ctx.fillStyle = "#6b7280";
    ctx.strokeStyle = "#f3f4f6";
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      const x = GUTTER + ((t - v0) / (v1 - v0)) * w;
      const text = fmt(t, step);
      if (x + 3 + ctx.measureText(text).width <= cssWidth) ctx.fillText(text, x + 3, AXIS / 2);
      ctx.beginPath();
      ctx.moveTo(x + 0.5, AXIS - 4);
      ctx.lineTo(x + 0.5, height - PAD);
      ctx.stroke();
    }
    const faults = faultCounts(v0, v1, w);
    for (const line of lines) {
      if (line.kind === "header") {
        ctx.fillStyle = "#111827";
        ctx.font = "600 12px system-ui, sans-serif";
        ctx.fillText(line.name, 6, line.y + line.h / 2);
        ctx.font = "12px system-ui, sans-serif";
        continue;
      }
      ctx.fillStyle = "#fafafa";
      ctx.fillRect(GUTTER, line.y + 1, w, line.h - 2);
      ctx.fillStyle = "#374151";
      const label = line.name.length > 24 ? line.name.slice(0, 23) + "\u2026" : line.name;
      ctx.fillText(label, 14, line.y + line.h / 2);
      if (line.kind === "faults") {
        let top = 0;
        for (let p = 0; p < w; p++) top = Math.max(top, faults[p]);
        ctx.fillStyle = "#ef4444";
        for (let p = 0; p < w; p++) {
          if (!faults[p]) continue;
          const h = Math.max(4, ((line.h - 2) * faults[p]) / top);
          ctx.fillRect(GUTTER + p, line.y + line.h - 1 - h, 1, h);
        }
        continue;
      }
      const layers = line.row.layers.map((layer) => ({
        layer: layer,
        c: coverage(layer, v0, v1, w),
      }));
      let top = 1;
      for (let p = 0; p < w; p++) {
        let total = 0;
        for (const l of layers) total += l.c.cov[p];
        top = Math.max(top, total);
      }
      for (let p = 0; p < w; p++) {
        let base = line.y + line.h - 1;
        for (const l of layers) {
          if (!l.c.seen[p]) continue;
          const h = Math.max(1.5, ((line.h - 2) * l.c.cov[p]) / top);
          ctx.fillStyle = l.layer.color;
          ctx.fillRect(GUTTER + p, base - h, 1, h);
          base -= h;
        }
      }
      if (top > 1.001) {
        ctx.fillStyle = "#6b7280";
        ctx.fillText("max " + top.toFixed(top < 10 ? 1 : 0), GUTTER - 52, line.y + line.h / 2);
      }
    }
    // Faults marked across every row.
    ctx.fillStyle = "rgba(239, 68, 68, 0.28)";
    for (let p = 0; p < w; p++) {
      if (faults[p]) ctx.fillRect(GUTTER + p, AXIS, 1, height - AXIS - PAD);
    }
    rangeText.textContent =
      "showing " + fmt(v0, step) + " \u2013 " + fmt(v1, step) + " of " + fmt(t1 - t0, step) +
      " (" + ((100 * (v1 - v0)) / (t1 - t0)).toFixed(1) + "%)";
  }

  function setWindow(a, b) {
    let span = Math.max(minSpan, Math.min(t1 - t0, b - a));
    a = Math.max(t0, Math.min(a, t1 - span));
    v0 = a;
    v1 = a + span;
    draw();
  }

  function zoom(factor, center) {
    const c = center === undefined ? (v0 + v1) / 2 : center;
    setWindow(c - (c - v0) * factor, c + (v1 - c) * factor);
  }

  function timeAt(x) {
    return v0 + ((x - GUTTER) / width) * (v1 - v0);
  }

  function lineAt(y) {
    for (const line of lines) if (y >= line.y && y < line.y + line.h) return line;
    return null;
  }

  function describe(line, t) {
    const out = [];
    const tol = (2 * (v1 - v0)) / width;
    if (line.kind === "faults") {
      const f = data.faults;
      if (f.mode === "points") {
        for (let k = 0; k < f.t.length && out.length < 6; k++) {
          if (Math.abs(f.t[k] - t) <= tol) out.push(data.strings[f.label[k]] + " @ " + f.t[k]);
        }
      } else {
        out.push("faults are binned; see the table below");
      }
      return out;
    }
    for (const layer of line.row.layers) {
      if (layer.mode !== "intervals") {
        const c = coverage(layer, t - tol / 2, t + tol / 2, 1);
        if (c.cov[0] > 0) out.push(layer.name + ": " + c.cov[0].toFixed(2) + " (binned average)");
        continue;
      }
      for (let k = 0; k < layer.s.length && out.length < 8; k++) {
        if (layer.s[k] > t + tol) break;
        if (layer.e[k] + tol < t) continue;
        const text = data.strings[layer.label[k]];
        out.push(text + "  [" + layer.s[k] + " \u2013 " + layer.e[k] + " s]");
      }
    }
    return out;
  }

  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    drag = { x: ev.offsetX, v0: v0, v1: v1 };
    canvas.classList.add("dragging");
  });
  window.addEventListener("mouseup", () => {
    drag = null;
    canvas.classList.remove("dragging");
  });
  canvas.addEventListener("mousemove", (ev) => {
    if (drag) {
      const shift = ((ev.offsetX - drag.x) / width) * (drag.v1 - drag.v0);
      setWindow(drag.v0 - shift, drag.v1 - shift);
      return;
    }
    const line = lineAt(ev.offsetY);
    if (!line || line.kind === "header" || ev.offsetX < GUTTER) {
      tooltip.hidden = true;
      return;
    }
    const t = timeAt(ev.offsetX);
    const details = describe(line, t);
    tooltip.textContent =
      line.name + " @ " + t.toFixed(6) + " s" + (details.length ? "\n" + details.join("\n") : "");
    tooltip.hidden = false;
    tooltip.style.left = Math.min(ev.offsetX + 14, canvas.clientWidth - 300) + "px";
    tooltip.style.top = ev.offsetY + 14 + "px";
  });
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  canvas.addEventListener("wheel", (ev) => {
    if (ev.offsetX < GUTTER) return;
    ev.preventDefault();
    zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev.offsetX));
  }, { passive: false });
  canvas.addEventListener("dblclick", (ev) => zoom(0.5, timeAt(ev.offsetX)));
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
  document.getElementById("zoom-reset").addEventListener("click", () => setWindow(t0, t1));
  function pan(fraction) {
    const shift = (v1 - v0) * fraction;
    setWindow(v0 + shift, v1 + shift);
  }
  document.getElementById("pan-left").addEventListener("click", () => pan(-0.5));
  document.getElementById("pan-right").addEventListener("click", () => pan(0.5));
  window.addEventListener("resize", draw);
  draw();
  document.body.dataset.timelineReady = "1";
})();
"""

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{title}}</title>
<style>{{style}}</style>
</head>
<body>
<header>
<h1>swaysim run report: {{scenario}}</h1>
<dl class="facts">{{facts}}</dl>
<div>{{verdicts}}</div>
</header>
<section>
<h2>Timeline</h2>
<div class="controls">
<button id="zoom-in" type="button" title="zoom in">+ zoom in</button>
<button id="zoom-out" type="button" title="zoom out">&minus; zoom out</button>
<button id="pan-left" type="button" title="pan left">&larr;</button>
<button id="pan-right" type="button" title="pan right">&rarr;</button>
<button id="zoom-reset" type="button" title="show the whole run">reset</button>
<span id="range"></span>
</div>
<div class="legend">{{legend}}</div>
<div class="timeline-box">
<canvas id="timeline" aria-label="timeline of view occupancy, waits, ops, probes and faults">\
</canvas>
<div id="tooltip" hidden></div>
</div>
<p class="note">Drag to pan, mouse wheel or double-click to zoom; hover for details. Each pixel \
column shows how much of its slice of time a row was busy (bar height; "max N" when more than one \
interval overlaps).</p>
{{notes}}
<noscript><p class="note">The timeline needs JavaScript; the tables below do not.</p></noscript>
</section>
<section>
<h2>Probe results</h2>
{{probes}}
</section>
<section>
<h2>Trace summary</h2>
{{summary}}
</section>
<section>
<h2>Backend statistics</h2>
{{statistics}}
</section>
<script type="application/json" id="timeline-data">{{data}}</script>
<script>{{script}}</script>
</body>
</html>
"""
