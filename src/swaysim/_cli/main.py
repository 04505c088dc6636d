"""The ``swaysim`` command line: run and validate scenarios, print the schema, read traces.

Exit codes: 0 when every expectation holds, 1 when any fails, 2 on invalid
input (a malformed scenario, a missing path, a bad option). A failing
scenario prints its seed and the exact command that replays it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from swaysim._scenario.expect import LOOPS, check_scenario, results_document
from swaysim._scenario.load import (
    MAX_SEED,
    ScenarioError,
    discover_scenarios,
    load_scenario,
    scenario_json_schema,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.expect import ScenarioCheck
    from swaysim._scenario.load import Scenario
    from swaysim._trace.events import TraceSink

__all__ = ["cli", "main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
PROGRESS_MIN_PROBES: Final = 200
"""Show a progress bar when a run has at least this many probe results to wait for."""


def _fail(message: str) -> NoReturn:
    click.echo(f"swaysim: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _writable(option: str, path: str | None) -> None:
    """Exit 2 before anything runs when ``path`` cannot be created (no such folder...)."""
    if path is None:
        return
    folder = Path(path).absolute().parent
    if not folder.is_dir():
        _fail(f"{option} {path}: cannot write: no such directory {folder}")
    if not os.access(folder, os.W_OK):
        _fail(f"{option} {path}: cannot write: permission denied on {folder}")


def _write(option: str, path: str, write: Callable[[Path], object]) -> None:
    try:
        write(Path(path))
    except OSError as exc:
        _fail(f"{option} {path}: cannot write: {exc.strerror or exc}")


def _console() -> Console:
    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = 160
    return console


def _load_all(paths: Sequence[str]) -> list[Scenario]:
    """Every scenario under ``paths``, each once; prints every problem and exits 2 if any."""
    files: dict[Path, Path] = {}
    for given in paths:
        if not Path(given).exists():
            click.echo(f"{given}: cannot read: no such file or directory", err=True)
            sys.exit(EXIT_INVALID)
        found = list(discover_scenarios([given]))
        if not found:
            click.echo(f"{given}: no scenario files (*.toml) found", err=True)
            sys.exit(EXIT_INVALID)
        for file in found:
            files.setdefault(file.resolve(), file)
    scenarios: list[Scenario] = []
    invalid = 0
    for file in files.values():
        try:
            scenarios.append(load_scenario(file))
        except ScenarioError as exc:
            invalid += 1
            click.echo(str(exc), err=True)
    if invalid:
        noun = "scenario is" if invalid == 1 else "scenarios are"
        click.echo(f"swaysim: {invalid} {noun} invalid; nothing was run", err=True)
        sys.exit(EXIT_INVALID)
    return scenarios


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="swaysim", prog_name="swaysim")
def cli() -> None:
    """swaysim: a deterministic, async test double for LLM differential backends."""


# -- run --------------------------------------------------------------------------------


class _RunDirs:
    """One RUN_DIR (trace.jsonl + results.json) per scenario and loop under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.used: set[str] = set()
        self.writers: dict[str, Any] = {}

    def folder(self, scenario: Scenario) -> Path:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario.name) or "scenario"
        name, counter = base, 1
        while name in self.used:
            counter += 1
            name = f"{base}-{counter}"
        self.used.add(name)
        return self.root / name

    def trace_for(self, folder: Path) -> Callable[[str], TraceSink | None]:
        from swaysim._trace.jsonl import JsonlTraceWriter

        def make(loop: str) -> TraceSink:
            run_dir = folder / loop
            run_dir.mkdir(parents=True, exist_ok=True)
            writer = JsonlTraceWriter(run_dir / "trace.jsonl")
            self.writers[f"{folder}/{loop}"] = writer
            return writer

        return make

    def finish(self, folder: Path, checks: Sequence[ScenarioCheck]) -> None:
        for check in checks:
            writer = self.writers.pop(f"{folder}/{check.loop}", None)
            if writer is not None:
                writer.close()
            results = folder / check.loop / "results.json"
            results.write_text(json.dumps(results_document(check.run), indent=2, default=str))


def _verdict_summary(check: ScenarioCheck) -> str:
    counts: dict[str, int] = {}
    for result in check.run.results:
        counts[result.verdict.value] = counts.get(result.verdict.value, 0) + 1
    summary = " ".join(f"{verdict} {count}" for verdict, count in counts.items())
    if check.run.cancelled:
        summary = f"{summary} (cancelled)" if summary else "cancelled"
    return summary or "-"


def _summary_table(checks: Sequence[ScenarioCheck]) -> Table:
    table = Table(
        title="swaysim scenarios",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    longest = max((len(c.scenario.name) for c in checks), default=8)
    table.add_column("scenario", min_width=min(longest, 28), overflow="fold")
    table.add_column("loop", no_wrap=True)
    table.add_column("verdicts", min_width=8, overflow="fold")
    table.add_column("expect", justify="right", no_wrap=True)
    table.add_column("virtual s", justify="right", no_wrap=True)
    table.add_column("wall s", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for check in checks:
        applicable = [o for o in check.outcomes if o.status != "n/a"]
        held = sum(1 for o in applicable if o.status == "ok")
        result = Text("ok", style="green") if check.ok else Text("FAILED", style="bold red")
        table.add_row(
            check.scenario.name,
            check.loop,
            _verdict_summary(check),
            f"{held}/{len(applicable)}",
            f"{check.run.makespan:.3f}",
            f"{check.run.wall_seconds:.3f}",
            result,
        )
    return table


def _junit(checks: Sequence[ScenarioCheck], wall: float) -> ET.Element:
    failures = sum(1 for c in checks if not c.ok)
    suites = ET.Element(
        "testsuites", name="swaysim", tests=str(len(checks)), failures=str(failures)
    )
    suites.set("time", f"{wall:.3f}")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="swaysim scenarios",
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{sum(c.run.wall_seconds for c in checks):.3f}",
    )
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"scenarios.{check.scenario.name}",
            name=check.loop,
            file=check.scenario.source,
            time=f"{check.run.wall_seconds:.3f}",
        )
        properties = ET.SubElement(case, "properties")
        for name, value in (
            ("seed", str(check.run.seed)),
            ("virtual_seconds", f"{check.run.makespan:.6f}"),
            ("replay", check.replay),
        ):
            ET.SubElement(properties, "property", name=name, value=value)
        if not check.ok:
            count = len(check.failures)
            failure = ET.SubElement(
                case,
                "failure",
                type="ExpectationFailed",
                message=f"{count} expectation{'s' if count > 1 else ''} failed: "
                + "; ".join(o.line() for o in check.failures),
            )
            failure.text = check.failure_report()
    return suites


def _loops(backend: str) -> tuple[str, ...]:
    return LOOPS if backend == "both" else (backend,)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--backend",
    type=click.Choice(["asyncio", "trio", "both"]),
    default="both",
    show_default=True,
    help="Event loop(s) to run each scenario on.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    default=None,
    help="Override every scenario's seed (plans without a seed of their own follow it).",
)
@click.option(
    "--jitter",
    type=click.IntRange(0, MAX_SEED),
    default=None,
    metavar="SEED",
    help="Chaos scheduling: run with this schedule_jitter seed (overrides the scenario's).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write every check (expectations, observed values, probes) as JSON.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write a JUnit XML report: one test case per scenario and loop.",
)
@click.option(
    "--trace",
    "trace_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write a trace.jsonl and a results.json per run, in DIR/<scenario>/<loop>/.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help=f"Show progress on stderr: a bar on a terminal, else a line per scenario "
    f"[default: a bar on a terminal for runs of {PROGRESS_MIN_PROBES}+ probes].",
)
def run(
    paths: tuple[str, ...],
    backend: str,
    seed: int | None,
    jitter: int | None,
    json_path: str | None,
    junit_path: str | None,
    trace_dir: str | None,
    progress: bool | None,
) -> None:
    """Run scenario files (or every *.toml in folders) and check their expectations.

    Exit status: 0 when every expectation holds, 1 when any fails, 2 on invalid
    input (nothing runs then). A failure prints its seed and a replay command.
    """
    scenarios = _load_all(paths)
    _writable("--json", json_path)
    _writable("--junit", junit_path)
    if trace_dir:
        try:
            Path(trace_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(f"--trace {trace_dir}: cannot create: {exc.strerror or exc}")
    loops = _loops(backend)
    console = _console()
    err_console = Console(file=sys.stderr, highlight=False)
    total = sum(len(s.probe_plan) for s in scenarios) * len(loops)
    show = err_console.is_terminal and (
        progress or (progress is None and total >= PROGRESS_MIN_PROBES)
    )
    log_lines = bool(progress) and not err_console.is_terminal
    run_dirs = _RunDirs(Path(trace_dir)) if trace_dir else None

    checks: list[ScenarioCheck] = []
    started = time.perf_counter()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show,
    )
    with bar:
        task = bar.add_task("scenarios", total=total)

        def advance(result: ProbeResult, done: int, count: int) -> None:
            bar.advance(task)

        for index, scenario in enumerate(scenarios, 1):
            bar.update(task, description=scenario.name)
            folder = run_dirs.folder(scenario) if run_dirs is not None else None
            trace_for = (
                run_dirs.trace_for(folder) if run_dirs is not None and folder is not None else None
            )
            done_before = bar.tasks[0].completed
            outcome = check_scenario(
                scenario,
                loops,
                seed=seed,
                trace_for=trace_for,
                on_progress=advance,
                schedule_jitter=jitter,
            )
            bar.update(task, completed=done_before + len(scenario.probe_plan) * len(loops))
            if run_dirs is not None and folder is not None:
                run_dirs.finish(folder, outcome)
            checks.extend(outcome)
            if log_lines:
                state = "ok" if all(c.ok for c in outcome) else "FAILED"
                click.echo(f"[{index}/{len(scenarios)}] {scenario.name}: {state}", err=True)
    wall = time.perf_counter() - started

    console.print(_summary_table(checks))
    failed = [c for c in checks if not c.ok]
    for check in failed:
        console.print()
        console.print(Text(check.failure_report()), soft_wrap=True)
    console.print()
    verdict = "all expectations hold" if not failed else f"{len(failed)} FAILED"
    console.print(
        Text(
            f"{len(scenarios)} scenario{'s' if len(scenarios) != 1 else ''} x "
            f"{len(loops)} loop{'s' if len(loops) != 1 else ''}: {len(checks) - len(failed)} "
            f"passed, {verdict}; {sum(c.run.makespan for c in checks):.2f} virtual s in "
            f"{wall:.2f} wall s"
        )
    )
    code = EXIT_FAILED if failed else EXIT_OK
    if json_path:
        document = {
            "swaysim": _version(),
            "ok": not failed,
            "exit_code": code,
            "loops": list(loops),
            "seed": seed,
            "schedule_jitter": jitter,
            "wall_seconds": wall,
            "checks": [c.to_dict() for c in checks],
        }
        text = json.dumps(document, indent=2, default=str)
        _write("--json", json_path, lambda path: path.write_text(text))
    if junit_path:
        tree = ET.ElementTree(_junit(checks, wall))
        ET.indent(tree)
        _write(
            "--junit",
            junit_path,
            lambda path: tree.write(path, encoding="utf-8", xml_declaration=True),
        )
    sys.exit(code)


def _version() -> str:
    from swaysim import __version__

    return __version__


# -- validate / schema ------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True)
def validate(paths: tuple[str, ...]) -> None:
    """Check scenario files without running them (exit 2 when any is invalid)."""
    scenarios = _load_all(paths)
    for scenario in scenarios:
        probes = _count(len(scenario.probe_plan), "probe")
        keys = _count(len(scenario.spec.expect.model_fields_set), "expectation key")
        click.echo(f"{scenario.source}: ok ({scenario.name}: {probes}, {keys})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def schema_text() -> str:
    """The scenario JSON Schema exactly as committed in schema/scenario.schema.json."""
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=False) + "\n"


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
def schema(output: str | None) -> None:
    """Print the scenario JSON Schema (for editor completion)."""
    text = schema_text()
    if output:
        _write("--output", output, lambda path: path.write_text(text))
    else:
        click.echo(text, nl=False)


# -- traces and reports -------------------------------------------------------------------


@cli.command()
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
    from swaysim._trace.report.render import write_report
    from swaysim.errors import SwaysimError

    try:
        write_report(Path(run_dir), Path(output))
    except (SwaysimError, OSError) as exc:
        _fail(f"cannot write a report from {run_dir}: {exc}")
    click.echo(f"wrote {output}")


@cli.group()
def trace() -> None:
    """Read trace files written by 'swaysim run --trace'."""


@trace.command("summary")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def trace_summary(file: str) -> None:
    """Per-view, per-task and per-op use, the slowest ops and the probe spans."""
    from swaysim._trace.summary import summarize_trace
    from swaysim.errors import SwaysimError

    try:
        summarize_trace(Path(file), _console())
    except (SwaysimError, OSError) as exc:
        _fail(f"cannot summarise {file}: {exc}")


@trace.command("chrome")
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
    from swaysim._trace.chrome import export_chrome
    from swaysim.errors import SwaysimError

    try:
        export_chrome(Path(file), Path(output))
    except (SwaysimError, OSError) as exc:
        _fail(f"cannot export {file}: {exc}")
    click.echo(f"wrote {output}")


@cli.command()
def demo() -> None:
    """Drive one backend concurrently on both event loops and say what happened."""
    from swaysim._cli.demo import main as demo_main

    demo_main()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``swaysim``) and ``python -m swaysim``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="swaysim")
