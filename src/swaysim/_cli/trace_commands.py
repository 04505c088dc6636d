"""``swaysim report`` and ``swaysim trace ...``: read what ``swaysim run --trace`` wrote."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from swaysim._cli.common import fail, say, stdout_console
from swaysim._files import check_output_file
from swaysim._trace.chrome import export_chrome
from swaysim._trace.report.render import write_report
from swaysim._trace.summary import TOP, summarize_trace
from swaysim.errors import SwaysimError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["report", "trace"]


@contextlib.contextmanager
def _exit_2_on_error(doing: str) -> Iterator[None]:
    """A swaysim error or an OSError (a bad trace, an unwritable output) exits 2, naming it."""
    try:
        yield
    except (SwaysimError, OSError) as exc:
        fail(f"{doing}: {exc}")


@click.command(short_help="Render a run directory as one self-contained HTML report.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
def report(run_dir: str, output: str) -> None:
    """Render a RUN_DIR (trace.jsonl + results.json) as a self-contained HTML report."""
    with _exit_2_on_error(f"cannot write a report from {run_dir}"):
        check_output_file(Path(output), option="--output")
        write_report(Path(run_dir), Path(output))
    say(f"wrote {output}", err=False)


@click.group()
def trace() -> None:
    """Read trace files written by 'swaysim run --trace'."""


@trace.command(
    "summary", short_help="Views, probes, tasks, ops, slowest ops and faults of a trace."
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=TOP,
    show_default=True,
    help="Rows of each long table (views, probes, tasks, fault rules), longest first; "
    "also the number of slowest ops.",
)
@click.option("--all", "show_all", is_flag=True, help="List every view, probe, task and rule.")
def trace_summary(file: str, top: int, show_all: bool) -> None:
    """A headline, then per-view occupancy, per-probe time, per-task use (ops and waits of
    each task name, with the views it worked in), ops and cache, the slowest ops and the
    faults fired.

    Tables that grow with the run show their longest rows only (how many: see the
    options), with a caption saying how many more there are."""
    with _exit_2_on_error(f"cannot summarise {file}"):
        summarize_trace(Path(file), stdout_console(), top=None if show_all else top)


@trace.command("chrome", short_help="Export a trace to Chrome trace-event JSON (Perfetto).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="The JSON file to write.",
)
def trace_chrome(file: str, output: str) -> None:
    """Export a trace to Chrome trace-event JSON (Perfetto, chrome://tracing)."""
    with _exit_2_on_error(f"cannot export {file}"):
        check_output_file(Path(output), option="--output")
        export_chrome(Path(file), Path(output))
    say(f"wrote {output}", err=False)
