"""The terminal summary of a trace: a headline and rich tables of its digest.

:func:`summarize_trace` is what ``swaysim trace summary FILE`` prints: it
streams the file once into a :class:`~swaysim._trace.digest.TraceDigest`
and prints per-view occupancy, per-probe time, per-task use, ops and cache,
the slowest ops and the faults fired. Tables that grow with the run (views,
probes, tasks, fault rules) show the ``top`` rows that took longest, and a
caption says what was left out, so a 1,000-probe suite summarises in one
screen; ``top=None`` (``--all``) lists every row. The HTML report shows the
same numbers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from rich.table import Table
from rich.text import Text

from swaysim._printable import printable
from swaysim._trace.digest import digest_trace, hit_rate_of, task_label

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from rich.console import Console

    from swaysim._trace.digest import ProbeSpan, TraceDigest

_T = TypeVar("_T")

__all__ = ["TOP", "digest_headline", "digest_tables", "render_digest", "summarize_trace"]

#: Rows of each long table by default (``swaysim trace summary --top N``).
TOP: Final = 10


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def _cell(value: object) -> Text:
    """A table cell from a trace value: plain text (never rich markup), controls escaped."""
    return Text(printable(value))


def _table(title: str, columns: Iterable[tuple[str, bool]]) -> Table:
    """A left-titled table; each column is (heading, right-justified)."""
    table = Table(title=Text(printable(title)), title_justify="left")
    for heading, right in columns:
        table.add_column(heading, justify="right" if right else "left")
    return table


def _top(
    table: Table, rows: Sequence[_T], top: int | None, key: Callable[[_T], float], noun: str
) -> list[_T]:
    """The ``top`` rows by ``key`` (largest first), captioning the table with what is left out."""
    if top is None or len(rows) <= top:
        return list(rows)
    table.caption = f"{top} of {len(rows):,} {noun} shown; --all lists all"
    table.caption_justify = "left"
    return sorted(rows, key=lambda row: -key(row))[:top]


def _views_table(digest: TraceDigest, top: int | None) -> Table:
    headings = [
        *("view", "entries", "live s", "occupancy", "held s", "waits", "wait s"),
        *("ops", "hit rate", "errors"),
    ]
    table = _table("Views", ((h, h != "view") for h in headings))
    views = _top(table, list(digest.views.values()), top, lambda u: u.busy, "views")
    for usage in views:
        table.add_row(
            _cell(usage.view),
            str(usage.entries),
            _seconds(usage.busy),
            _percent(usage.occupancy(digest.span)),
            _seconds(usage.held),
            str(usage.waits),
            _seconds(usage.wait_time),
            str(usage.ops),
            _percent(usage.hit_rate),
            str(usage.errors),
        )
    return table


def _probes_table(probes: Sequence[ProbeSpan], top: int | None) -> Table:
    headings = ("probe", "kind", "verdict", "start s", "time s")
    verdicts = Counter(probe.verdict or "unfinished" for probe in probes)
    counts = ", ".join(f"{verdict} {n:,}" for verdict, n in sorted(verdicts.items()))
    table = _table(f"Probes ({counts})", ((h, h.endswith(" s")) for h in headings))
    for probe in _top(table, probes, top, lambda p: p.duration or 0.0, "probes"):
        table.add_row(
            _cell(probe.name),
            _cell(probe.kind),
            _cell(probe.verdict or "(unfinished)"),
            _seconds(probe.start),
            _seconds(probe.duration),
        )
    return table


def _tasks_table(digest: TraceDigest, top: int | None) -> Table:
    headings = ("task · views", "tasks", "ops", "op s", "waits", "wait s")
    table = _table("Tasks", ((h, h != "task · views") for h in headings))
    named = digest.named_tasks()
    for usage in _top(table, named, top, lambda u: u.op_time, "task names"):
        table.add_row(
            _cell(usage.label),
            str(usage.tasks),
            str(usage.ops),
            _seconds(usage.op_time),
            str(usage.waits),
            _seconds(usage.wait_time),
        )
    return table


def _ops_table(digest: TraceDigest) -> Table:
    headings = ("op", "calls", "hits", "misses", "errors", "hit rate", "mean s", "max s")
    table = _table("Ops and cache", ((h, h != "op") for h in headings))
    for usage in sorted(digest.ops.values(), key=lambda u: u.op):
        table.add_row(
            _cell(usage.op),
            str(usage.calls),
            str(usage.hits),
            str(usage.misses),
            str(usage.errors),
            _percent(usage.hit_rate),
            _seconds(usage.mean_time),
            _seconds(usage.max_time),
        )
    table.add_row(
        "all",
        str(digest.calls),
        str(digest.hits),
        str(digest.misses),
        str(digest.errors),
        _percent(hit_rate_of(digest.hits, digest.misses)),
        "",
        "",
        style="bold",
    )
    return table


def _slowest_table(digest: TraceDigest) -> Table:
    headings = ("end s", "task", "view", "op", "duration s", "outcome", "prompt")
    title = f"Slowest ops (top {digest.slowest_kept})"
    table = _table(title, ((h, h.endswith(" s")) for h in headings))
    for record in digest.slowest:
        table.add_row(
            _seconds(record.end),
            _cell(task_label(record.task)),
            _cell(record.view or "-"),
            _cell(record.op or "-"),
            _seconds(record.duration),
            _cell(record.outcome),
            _cell(_prompt(digest, record.prompt_hash)),
        )
    return table


#: Characters of a prompt the slowest-ops table shows.
PROMPT_CHARS: Final = 40


def _prompt(digest: TraceDigest, prompt_hash: str | None) -> str:
    """The prompt as text (cut to :data:`PROMPT_CHARS`), else its hash (a version 1 trace)."""
    text = digest.prompt_text(prompt_hash)
    if text is None:
        return prompt_hash or "-"
    return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "\u2026"


def _faults_table(digest: TraceDigest, top: int | None) -> Table:
    table = _table("Faults fired", ((h, h == "fired") for h in ("rule", "kind", "fired", "on")))
    fired = sorted(digest.faults.items())
    for (rule, kind), count in _top(table, fired, top, lambda item: item[1], "fault rules"):
        on = digest.fault_ops.get((rule, kind), Counter())
        table.add_row(
            _cell(rule),
            _cell(kind),
            str(count),
            _cell(", ".join(f"{op} x{n}" for op, n in sorted(on.items()))),
        )
    return table


def digest_tables(digest: TraceDigest, *, top: int | None = TOP) -> list[Table]:
    """The digest as rich tables: views, probes (when any ran), tasks, ops, slowest ops, faults.

    Views, probes, tasks and fault rules show the ``top`` longest (every one when None).
    """
    tables = [_views_table(digest, top)]
    if digest.probes:
        tables.append(_probes_table(digest.probes, top))
    tables += [
        _tasks_table(digest, top),
        _ops_table(digest),
        _slowest_table(digest),
        _faults_table(digest, top),
    ]
    return tables


def digest_headline(digest: TraceDigest) -> str:
    """One line: events, span, tasks, latency, retries, timeouts."""
    return (
        f"{digest.events} events over {_seconds(digest.span)} s of loop time, "
        f"{len(digest.tasks)} tasks, {digest.calls} ops "
        f"(cache hit rate {_percent(digest.hit_rate)}), "
        f"{digest.total_faults} faults, {digest.retries} retries, {digest.timeouts} timeouts, "
        f"{digest.latency_draws} latency draws ({_seconds(digest.latency_seconds)} s)"
    )


def render_digest(
    digest: TraceDigest, console: Console, *, title: str = "", top: int | None = TOP
) -> None:
    """Print the digest's headline and tables to ``console``."""
    if title:
        console.print(Text(printable(title), style="bold"))
    console.print(Text(digest_headline(digest)))
    for table in digest_tables(digest, top=top):
        console.print(table)


def summarize_trace(path: Path, console: Console, *, top: int | None = TOP) -> None:
    """Print per-view occupancy, per-probe time, per-task use, cache, slowest ops and faults.

    Streams the file once; what ``swaysim trace summary FILE`` prints. Long
    tables show their ``top`` rows (and the slowest ops list that many);
    ``top=None`` lists every view, probe, task and fault rule (and the 10
    slowest ops).
    """
    path = Path(path)
    digest = digest_trace(path, slowest=top or TOP)
    render_digest(digest, console, title=f"trace {path}", top=top)
