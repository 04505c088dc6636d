"""The report's sections as HTML: the run's facts, probe results, trace summary, statistics.

Each function fills one ``{{placeholder}}`` of ``assets/report.html`` from
the run's :class:`~swaysim._trace.read.RunResults` or the trace's
:class:`~swaysim._trace.digest.TraceDigest`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from swaysim._trace.digest import task_label
from swaysim._trace.read import RunResults
from swaysim._trace.report.html import (
    DASH,
    escape,
    number,
    percent,
    seconds,
    status_badge,
    table,
    verdict_badge,
)
from swaysim._trace.report.spots import spot_of
from swaysim._trace.report.timeline import COLORS, LEGEND
from swaysim._trace.schema import RESULTS_FILE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from swaysim._trace.digest import TraceDigest

__all__ = [
    "expectations_section",
    "facts_section",
    "legend_section",
    "notes_section",
    "probe_section",
    "question_section",
    "statistics_section",
    "summary_section",
    "verdicts_section",
]

_NO_RESULTS: Final = f"<p class=note>No {RESULTS_FILE} in the run directory: no probe results.</p>"
#: Rows of the summary's task table.
SUMMARY_ROWS: Final = 20
#: Characters of a prompt the tables show (the hash is on hover).
PROMPT_CHARS: Final = 120


def facts_section(scenario: str, results: RunResults | None, digest: TraceDigest) -> str:
    """The header's facts: where the run came from and what the trace holds."""
    run = results or RunResults()
    facts: list[tuple[str, object]] = [
        ("scenario", scenario),
        ("loop", run.loop),
        ("seed", run.seed),
        ("makespan", run.makespan),
        ("trace", f"{digest.events:,} events over {digest.span:.4g} s"),
        ("tasks", len(digest.tasks)),
        ("ops", digest.calls),
        ("cache hit rate", f"{100.0 * digest.hit_rate:.1f}%"),
        ("faults", digest.total_faults),
        ("retries", digest.retries),
        ("timeouts", digest.timeouts),
    ]
    return "".join(
        f"<div><dt>{escape(k)}</dt><dd>"
        + (f"{v:.4g}&nbsp;s" if k == "makespan" and isinstance(v, int | float) else escape(v))
        + "</dd></div>"
        for k, v in facts
        if v is not None
    )


_FAILING: Final = ("failed", "n/a")


def question_section(results: RunResults | None) -> str:
    """The question the scenario answers, and whether every expectation held."""
    run = results or RunResults()
    parts = []
    if run.description:
        parts.append(f'<p class="question">{escape(run.description)}</p>')
    if run.expectations:
        # Not checked is not held: an "n/a" expectation fails the scenario too.
        failed = sum(1 for e in run.expectations if e.get("status") in _FAILING)
        held = sum(1 for e in run.expectations if e.get("status") == "ok")
        badge = (
            '<span class="verdict fail">FAILED</span>'
            if failed
            else '<span class="verdict pass">HELD</span>'
        )
        text = f"{held} of {len(run.expectations)} expectations held"
        if failed:
            text += f", {failed} failed (first in the table below)"
        parts.append(f'<p class="outcome">{badge} {escape(text)}</p>')
    if run.replay and any(e.get("status") in _FAILING for e in run.expectations):
        parts.append(f'<p class="note">Replay: <code>{escape(run.replay)}</code></p>')
    return "".join(parts)


_STATUS_ORDER: Final = {"failed": 0, "n/a": 0, "ok": 1}


def expectations_section(results: RunResults | None, digest: TraceDigest) -> str:
    """Each expectation, failures first: expected, observed, and a link to its evidence."""
    if results is None:
        return _NO_RESULTS
    if not results.expectations:
        return (
            f"<p class=note>No expectations in {RESULTS_FILE} (written by a swaysim older "
            "than results.json version 2, or by hand).</p>"
        )
    rows = []
    ordered = sorted(results.expectations, key=lambda e: _STATUS_ORDER.get(str(e.get("status")), 2))
    for entry in ordered:
        status = str(entry.get("status", "?"))
        key, observed = str(entry.get("key", "?")), str(entry.get("observed", ""))
        spot = spot_of(key, observed, digest)
        link = ""
        if spot is not None:
            row = f' data-row="{escape(spot.row)}"' if spot.row else ""
            link = (
                f'<a href="#timeline" class="spot" data-t0="{spot.start!r}" '
                f'data-t1="{spot.end!r}"{row}>show on timeline</a>'
            )
        rows.append(
            [
                status_badge(status),
                f"<code>{escape(key)}</code>",
                escape(entry.get("expected", "")),
                escape(observed),
                link,
            ]
        )
    return table(["status", "expectation", "expected", "observed", "evidence"], rows)


def verdicts_section(results: RunResults | None) -> str:
    """How many probes got each verdict, as badges in verdict order."""
    counts: dict[str, int] = {}
    for probe in (results or RunResults()).probes:
        verdict = str(probe.get("verdict", "?"))
        counts[verdict] = counts.get(verdict, 0) + 1
    return " ".join(f"{verdict_badge(v)}&nbsp;{n}" for v, n in sorted(counts.items()))


def legend_section() -> str:
    return "".join(
        f'<span><i style="background:{COLORS[key]}"></i>{escape(text)}</span>'
        for key, text in LEGEND
    )


def notes_section(notes: Iterable[str]) -> str:
    return "".join(f"<p class=note>{escape(note)}</p>" for note in notes)


def probe_section(results: RunResults | None) -> str:
    """The probe results table, or a note saying why there is none."""
    if results is None:
        return _NO_RESULTS
    if not results.probes:
        return "<p class=note>The run has no probe results.</p>"
    rows = [
        [
            escape(probe.get("name", "?")),
            escape(probe.get("kind", "")),
            verdict_badge(probe.get("verdict")),
            number(probe.get("score")),
            number(probe.get("raw")),
            number(probe.get("z")),
            seconds(probe.get("duration")),
            escape(probe.get("message", "")),
        ]
        for probe in results.probes
    ]
    return table(
        ["probe", "kind", "verdict", "score", "raw", "z", "duration", "message"],
        rows,
        numeric=frozenset({3, 4, 5, 6}),
    ) + (
        "<p class=note>A probe's duration runs from its first request sent to its last answer "
        "received; its bar on the timeline spans exactly that.</p>"
    )


def statistics_section(results: RunResults | None) -> str:
    """The backend's statistics, one row each; a mapping's entries share a cell."""
    statistics = (results or RunResults()).statistics
    if not statistics:
        return "<p class=note>No backend statistics in the run directory.</p>"
    rows = []
    for key, value in statistics.items():
        if isinstance(value, dict):
            cell = (
                ", ".join(f"{escape(k)}&nbsp;<b>{number(v)}</b>" for k, v in value.items()) or DASH
            )
        else:
            cell = number(value)
        rows.append([escape(key), cell])
    return table(["statistic", "value"], rows)


def _occupancy_bar(fraction: float) -> str:
    return (
        f'<span class=bar style="--w:{min(100.0, 100.0 * fraction):.1f}%">'
        f"{100.0 * fraction:.1f}%</span>"
    )


def _views_table(digest: TraceDigest) -> str:
    return table(
        ["view", "entries", "live", "occupancy", "waits", "waited", "ops", "hit rate", "errors"],
        [
            [
                escape(u.view),
                number(u.entries),
                seconds(u.busy),
                _occupancy_bar(u.occupancy(digest.span)),
                number(u.waits),
                seconds(u.wait_time),
                number(u.ops),
                percent(u.hit_rate),
                number(u.errors),
            ]
            for u in digest.views.values()
        ],
        numeric=frozenset({1, 2, 4, 5, 6, 7, 8}),
    )


def _probe_time_table(digest: TraceDigest, results: RunResults | None) -> str:
    """Probe spans from the trace, when there are no results to show them (same durations)."""
    if not digest.probes or (results is not None and results.probes):
        return ""
    return "<h3>Probe time</h3>" + table(
        ["probe", "kind", "verdict", "start", "time"],
        [
            [
                escape(p.name),
                escape(p.kind),
                verdict_badge(p.verdict) if p.verdict else "(unfinished)",
                seconds(p.start),
                seconds(p.duration),
            ]
            for p in digest.probes
        ],
        numeric=frozenset({3, 4}),
    )


def _tasks_table(digest: TraceDigest) -> str:
    named = digest.named_tasks()
    return table(
        ["task · views", "tasks", "ops", "op time", "waits", "waited"],
        [
            [
                escape(u.label),
                number(u.tasks),
                number(u.ops),
                seconds(u.op_time),
                number(u.waits),
                seconds(u.wait_time),
            ]
            for u in named[:SUMMARY_ROWS]
        ],
        numeric=frozenset({1, 2, 3, 4, 5}),
    ) + (
        f"<p class=note>{SUMMARY_ROWS} of {len(named)} task names shown, busiest first.</p>"
        if len(named) > SUMMARY_ROWS
        else ""
    )


def _prompt_cell(digest: TraceDigest, prompt_hash: str | None) -> str:
    """The prompt as text (escaped, capped), its hash on hover; the hash alone when unknown."""
    if prompt_hash is None:
        return DASH
    text = digest.prompt_text(prompt_hash)
    if text is None:
        return f"<code>{escape(prompt_hash)}</code>"
    shown = text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "\u2026"
    return f'<span class="prompt" title="prompt hash {escape(prompt_hash)}">{escape(shown)}</span>'


def _ops_table(digest: TraceDigest) -> str:
    return table(
        ["op", "calls", "hits", "misses", "errors", "hit rate", "mean", "max"],
        [
            [
                escape(u.op),
                number(u.calls),
                number(u.hits),
                number(u.misses),
                number(u.errors),
                percent(u.hit_rate),
                seconds(u.mean_time),
                seconds(u.max_time),
            ]
            for u in sorted(digest.ops.values(), key=lambda u: u.op)
        ],
        numeric=frozenset({1, 2, 3, 4, 5, 6, 7}),
    )


def _slowest_table(digest: TraceDigest) -> str:
    return table(
        ["end", "task", "view", "op", "duration", "outcome", "prompt"],
        [
            [
                seconds(r.end),
                escape(task_label(r.task)),
                escape(r.view or ""),
                escape(r.op or ""),
                seconds(r.duration),
                escape(r.outcome),
                _prompt_cell(digest, r.prompt_hash),
            ]
            for r in digest.slowest
        ],
        numeric=frozenset({0, 4}),
    )


def _faults_table(digest: TraceDigest) -> str:
    if not digest.faults:
        return "<p class=note>No fault fired.</p>"
    rows = []
    for (rule, kind), count in sorted(digest.faults.items()):
        ops = sorted(digest.fault_ops.get((rule, kind), {}).items())
        on = ", ".join(f"{op} x{n}" for op, n in ops)
        rows.append([escape(rule), escape(kind), number(count), escape(on)])
    return table(["rule", "kind", "fired", "on"], rows, numeric=frozenset({2}))


def summary_section(digest: TraceDigest, results: RunResults | None = None) -> str:
    """The trace summary: view occupancy, tasks, ops and cache, slowest ops, faults.

    Probe times appear here only without results (the results table shows the same
    durations).
    """
    return (
        "<h3>View occupancy</h3>"
        + _views_table(digest)
        + _probe_time_table(digest, results)
        + "<h3>Tasks</h3>"
        + _tasks_table(digest)
        + "<h3>Ops and cache</h3>"
        + _ops_table(digest)
        + f"<h3>Slowest ops (top {digest.slowest_kept})</h3>"
        + _slowest_table(digest)
        + "<h3>Faults fired</h3>"
        + _faults_table(digest)
    )
