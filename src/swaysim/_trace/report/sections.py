"""The report's sections as HTML: the run's facts, probe results, trace summary, statistics.

Each function fills one ``{{placeholder}}`` of ``assets/report.html`` from
the run's :class:`~swaysim._trace.read.RunResults` or the trace's
:class:`~swaysim._trace.digest.TraceDigest`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from swaysim._trace.read import RunResults
from swaysim._trace.report.html import (
    DASH,
    escape,
    number,
    percent,
    seconds,
    table,
    verdict_badge,
)
from swaysim._trace.report.timeline import COLORS, LEGEND
from swaysim._trace.schema import RESULTS_FILE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from swaysim._trace.digest import TraceDigest

__all__ = [
    "facts_section",
    "legend_section",
    "notes_section",
    "probe_section",
    "statistics_section",
    "summary_section",
    "verdicts_section",
]

_NO_RESULTS: Final = f"<p class=note>No {RESULTS_FILE} in the run directory: no probe results.</p>"


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


def _probe_time_table(digest: TraceDigest) -> str:
    if not digest.probes:
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
        ["end", "task", "view", "op", "duration", "outcome", "prompt hash"],
        [
            [
                seconds(r.end),
                escape(r.task),
                escape(r.view or ""),
                escape(r.op or ""),
                seconds(r.duration),
                escape(r.outcome),
                f"<code>{escape(r.prompt_hash or '')}</code>",
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


def summary_section(digest: TraceDigest) -> str:
    """The trace summary: view occupancy, probe time, ops and cache, slowest ops, faults."""
    return (
        "<h3>View occupancy</h3>"
        + _views_table(digest)
        + _probe_time_table(digest)
        + "<h3>Ops and cache</h3>"
        + _ops_table(digest)
        + f"<h3>Slowest ops (top {digest.slowest_kept})</h3>"
        + _slowest_table(digest)
        + "<h3>Faults fired</h3>"
        + _faults_table(digest)
    )
