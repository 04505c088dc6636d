"""A self-contained HTML report of one run: timeline, probe results, statistics.

``write_report(run_dir, output)`` reads a run directory (``trace.jsonl`` and
``results.json``, see ``docs/trace-format.md``) and writes one HTML file
with inline CSS and JavaScript only: no network access, no external
scripts or fonts (a Content-Security-Policy forbids them). The page's
template, style sheet and script are real files in ``assets/`` (read with
:mod:`importlib.resources`, so they ship in the wheel) and are inlined into
the page. The timeline is drawn on a canvas: each pixel column shows how
much of its time slice a view was held, tasks waited, ops ran, so a run of
millions of events reads as well as a short one (see
:mod:`swaysim._trace.report.timeline`).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

from swaysim._files import write_file_atomically
from swaysim._trace.digest import digest_trace
from swaysim._trace.read import RunResults, find_trace, read_trace
from swaysim._trace.report import sections
from swaysim._trace.report.html import escape, json_for_script
from swaysim._trace.report.timeline import Timeline

if TYPE_CHECKING:
    from collections.abc import Mapping

    from swaysim._trace.digest import TraceDigest

__all__ = ["ASSETS", "asset_text", "render_report", "write_report"]

#: The page's files, inside this package: template, style sheet, script.
ASSETS: Final = ("report.html", "report.css", "report.js")
#: How many of the slowest ops the summary lists.
SLOWEST_OPS: Final = 15
_PLACEHOLDER: Final = re.compile(r"\{\{(\w+)\}\}")


@functools.cache
def asset_text(name: str) -> str:
    """The text of one of :data:`ASSETS`, read once per process."""
    return (
        resources.files("swaysim._trace.report")
        .joinpath("assets", name)
        .read_text(encoding="utf-8")
    )


def _timeline(trace_path: Path, digest: TraceDigest) -> Timeline:
    """The second streaming pass over the trace, sized by the first pass's digest."""
    timeline = Timeline(digest)
    for event in read_trace(trace_path):
        timeline.add(event)
    timeline.finish()
    return timeline


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace each ``{{name}}`` in one pass: substituted text is never scanned again."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def render_report(
    trace_path: Path,
    results: RunResults | Mapping[str, object] | None = None,
    *,
    title: str = "",
) -> str:
    """The report for one trace (and the run's results, if any) as an HTML string.

    ``results`` is a decoded ``results.json`` object or a :class:`RunResults`.
    Reads the trace twice, streaming: once for the summary, once for the timeline.
    """
    trace_path = Path(trace_path)
    if results is not None and not isinstance(results, RunResults):
        results = RunResults.from_document(results)
    digest = digest_trace(trace_path, slowest=SLOWEST_OPS)
    timeline = _timeline(trace_path, digest)
    scenario = str((results and results.scenario) or title or trace_path.parent.name)
    values = {
        "title": escape(f"swaysim report: {scenario}"),
        "scenario": escape(scenario),
        "question": sections.question_section(results),
        "facts": sections.facts_section(scenario, results, digest),
        "verdicts": sections.verdicts_section(results),
        "expectations": sections.expectations_section(results, digest),
        "notes": sections.notes_section(timeline.notes),
        "legend": sections.legend_section(),
        "probes": sections.probe_section(results),
        "summary": sections.summary_section(digest, results),
        "statistics": sections.statistics_section(results),
        "style": asset_text("report.css"),
        "script": asset_text("report.js"),
        "data": json_for_script(timeline.to_json()),
    }
    return _fill(asset_text("report.html"), values)


def write_report(run_dir: Path, output: Path) -> None:
    """Write the HTML report of the run in ``run_dir`` to ``output``.

    ``run_dir`` must hold ``trace.jsonl`` (or ``trace.jsonl.gz``);
    ``results.json`` is optional (without it the report has no probe
    results or backend statistics). ``output`` is replaced whole (a temporary
    file renamed over it: a link there is replaced, never written through).
    """
    run_dir = Path(run_dir)
    trace_path = find_trace(run_dir)
    results = RunResults.of_run_dir(run_dir)
    page = render_report(trace_path, results, title=run_dir.name).encode("utf-8")
    write_file_atomically(Path(output), lambda stream: stream.write(page))
