"""The terminal summary of a trace: a headline and rich tables of its digest.

:func:`summarize_trace` is what ``swaysim trace summary FILE`` prints: it
streams the file once into a :class:`~swaysim._trace.digest.TraceDigest`
and prints per-view occupancy, per-probe time, ops and cache, the slowest
ops and the faults fired. The HTML report shows the same numbers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from swaysim._printable import printable
from swaysim._trace.digest import digest_trace, hit_rate_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rich.console import Console

    from swaysim._trace.digest import ProbeSpan, TraceDigest

__all__ = ["digest_headline", "digest_tables", "render_digest", "summarize_trace"]


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
    table = Table(title=title, title_justify="left")
    for heading, right in columns:
        table.add_column(heading, justify="right" if right else "left")
    return table


def _views_table(digest: TraceDigest) -> Table:
    headings = [
        *("view", "entries", "live s", "occupancy", "held s", "waits", "wait s"),
        *("ops", "hit rate", "errors"),
    ]
    table = _table("Views", ((h, h != "view") for h in headings))
    for usage in digest.views.values():
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


def _probes_table(probes: Iterable[ProbeSpan]) -> Table:
    headings = ("probe", "kind", "verdict", "start s", "time s")
    table = _table("Probes", ((h, h.endswith(" s")) for h in headings))
    for probe in probes:
        table.add_row(
            _cell(probe.name),
            _cell(probe.kind),
            _cell(probe.verdict or "(unfinished)"),
            _seconds(probe.start),
            _seconds(probe.duration),
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
            _cell(record.task),
            _cell(record.view or "-"),
            _cell(record.op or "-"),
            _seconds(record.duration),
            _cell(record.outcome),
            _cell(record.prompt_hash or "-"),
        )
    return table


def _faults_table(digest: TraceDigest) -> Table:
    table = _table("Faults fired", ((h, h == "fired") for h in ("rule", "kind", "fired", "on")))
    for (rule, kind), count in sorted(digest.faults.items()):
        on = digest.fault_ops.get((rule, kind), Counter())
        table.add_row(
            _cell(rule),
            _cell(kind),
            str(count),
            _cell(", ".join(f"{op} x{n}" for op, n in sorted(on.items()))),
        )
    return table


def digest_tables(digest: TraceDigest) -> list[Table]:
    """The digest as rich tables: views, probes (when any ran), ops, slowest ops, faults."""
    tables = [_views_table(digest)]
    if digest.probes:
        tables.append(_probes_table(digest.probes))
    tables += [_ops_table(digest), _slowest_table(digest), _faults_table(digest)]
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


def render_digest(digest: TraceDigest, console: Console, *, title: str = "") -> None:
    """Print the digest's headline and tables to ``console``."""
    if title:
        console.print(Text(printable(title), style="bold"))
    console.print(Text(digest_headline(digest)))
    for table in digest_tables(digest):
        console.print(table)


def summarize_trace(path: Path, console: Console) -> None:
    """Print per-view occupancy, per-probe time, cache hit rate, slowest ops and faults.

    Streams the file once; what ``swaysim trace summary FILE`` prints.
    """
    path = Path(path)
    render_digest(digest_trace(path), console, title=f"trace {path}")
