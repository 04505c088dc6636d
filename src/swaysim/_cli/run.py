"""``swaysim run``: run scenario files on one or both loops and check their expectations.

Exit codes: 0 when every expectation holds, 1 when any fails, 2 on invalid
input (a malformed scenario, a missing path, a bad option; nothing runs
then). A failing scenario prints its seed and the exact command that
replays it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from swaysim._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_writable,
    fail,
    load_scenarios,
    stdout_console,
    write_output,
)
from swaysim._cli.run_output import json_document, junit_tree, print_results
from swaysim._scenario.check import check_scenario
from swaysim._scenario.run import results_document
from swaysim._scenario.schema import MAX_SEED
from swaysim._scenario.under_test import RunnerUnderTest, resolve_runner
from swaysim._time.clock import LOOPS
from swaysim._trace.schema import RESULTS_FILE, TRACE_FILE
from swaysim._trace.sinks import JsonlTraceWriter
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.check import ScenarioCheck
    from swaysim._scenario.load import Scenario
    from swaysim._trace.events import TraceSink

__all__ = ["PROGRESS_MIN_PROBES", "run"]

PROGRESS_MIN_PROBES: Final = 200
"""Show a progress bar when a run has at least this many probe results to wait for."""


@dataclass(frozen=True, slots=True)
class _RunOptions:
    """What every scenario of one ``swaysim run`` shares."""

    loops: tuple[str, ...]
    seed: int | None
    jitter: int | None
    runner: RunnerUnderTest


class _RunDirs:
    """One RUN_DIR (trace.jsonl + results.json) per scenario and loop under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.used: set[str] = set()
        self.writers: dict[str, JsonlTraceWriter] = {}

    def folder(self, scenario: Scenario) -> Path:
        """A folder named after the scenario, numbered when two scenarios share a name."""
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario.name) or "scenario"
        name, counter = base, 1
        while name in self.used:
            counter += 1
            name = f"{base}-{counter}"
        self.used.add(name)
        return self.root / name

    def trace_for(self, folder: Path) -> Callable[[str], TraceSink | None]:
        """The sink factory ``check_scenario`` calls once per loop."""

        def make(loop: str) -> TraceSink:
            run_dir = folder / loop
            run_dir.mkdir(parents=True, exist_ok=True)
            writer = JsonlTraceWriter(run_dir / TRACE_FILE)
            self.writers[f"{folder}/{loop}"] = writer
            return writer

        return make

    def finish(self, folder: Path, checks: Sequence[ScenarioCheck]) -> None:
        """Close each loop's trace and write its results next to it."""
        for check in checks:
            writer = self.writers.pop(f"{folder}/{check.loop}", None)
            if writer is not None:
                writer.close()
            if check.ran is None:
                continue
            results = folder / check.loop / RESULTS_FILE
            results.write_text(json.dumps(results_document(check.run), indent=2, default=str))


class _ProgressReport:
    """Progress on stderr: a bar on a terminal, else (``--progress``) a line per scenario."""

    def __init__(self, progress: bool | None, total: int, scenarios: int) -> None:
        console = Console(file=sys.stderr, highlight=False)
        show = console.is_terminal and (
            progress or (progress is None and total >= PROGRESS_MIN_PROBES)
        )
        self.log_lines = bool(progress) and not console.is_terminal
        self.scenarios = scenarios
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not show,
        )
        self.task = self.bar.add_task("scenarios", total=total)
        self.done_before = 0.0

    def __enter__(self) -> _ProgressReport:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bar.__exit__(exc_type, exc, tb)

    def probe_done(self, result: ProbeResult, done: int, count: int) -> None:
        self.bar.advance(self.task)

    def start(self, scenario: Scenario) -> None:
        self.bar.update(self.task, description=scenario.name)
        self.done_before = self.bar.tasks[0].completed

    def finish(
        self, index: int, scenario: Scenario, loops: int, outcome: Sequence[ScenarioCheck]
    ) -> None:
        """Count every probe of the scenario as done, whether or not it reported."""
        probes = len(scenario.probe_plan) * loops
        self.bar.update(self.task, completed=self.done_before + probes)
        if self.log_lines:
            skipped = all(c.skipped for c in outcome)
            state = "skipped" if skipped else "ok" if all(c.ok for c in outcome) else "FAILED"
            click.echo(f"[{index}/{self.scenarios}] {scenario.name}: {state}", err=True)


def _prepare_outputs(json_path: str | None, junit_path: str | None, trace_dir: str | None) -> None:
    """Exit 2 before anything runs when an output cannot be written."""
    check_writable("--json", json_path)
    check_writable("--junit", junit_path)
    if trace_dir:
        try:
            Path(trace_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"--trace {trace_dir}: cannot create: {exc.strerror or exc}")


def _run_scenarios(
    scenarios: Sequence[Scenario],
    options: _RunOptions,
    trace_dir: str | None,
    progress: bool | None,
) -> list[ScenarioCheck]:
    """Check every scenario on every loop, one after another, writing run dirs if asked."""
    run_dirs = _RunDirs(Path(trace_dir)) if trace_dir else None
    total = sum(len(s.probe_plan) for s in scenarios) * len(options.loops)
    checks: list[ScenarioCheck] = []
    with _ProgressReport(progress, total, len(scenarios)) as report:
        for index, scenario in enumerate(scenarios, 1):
            report.start(scenario)
            folder = run_dirs.folder(scenario) if run_dirs is not None else None
            trace_for = (
                run_dirs.trace_for(folder) if run_dirs is not None and folder is not None else None
            )
            outcome = check_scenario(
                scenario,
                options.loops,
                seed=options.seed,
                trace_for=trace_for,
                on_progress=report.probe_done,
                schedule_jitter=options.jitter,
                runner=options.runner,
            )
            report.finish(index, scenario, len(options.loops), outcome)
            if run_dirs is not None and folder is not None:
                run_dirs.finish(folder, outcome)
            checks.extend(outcome)
    return checks


def _write_reports(
    checks: Sequence[ScenarioCheck],
    options: _RunOptions,
    *,
    code: int,
    wall: float,
    json_path: str | None,
    junit_path: str | None,
) -> None:
    """Write ``--json`` and ``--junit`` when asked."""
    if json_path:
        document = json_document(
            checks,
            exit_code=code,
            loops=options.loops,
            seed=options.seed,
            jitter=options.jitter,
            wall=wall,
        )
        text = json.dumps(document, indent=2, default=str)
        write_output("--json", json_path, lambda path: path.write_text(text))
    if junit_path:
        tree = junit_tree(checks, wall)
        write_output(
            "--junit",
            junit_path,
            lambda path: tree.write(path, encoding="utf-8", xml_declaration=True),
        )


@click.command()
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
    "--runner",
    "runner_spec",
    default=None,
    metavar="SPEC",
    help="The runner under test: package.module:function or path/to/file.py:function, "
    "awaited as function(backend, probes, **options) (a plain def runs on a worker thread "
    "through the blocking bridge). Default: the reference runner, run_suite.",
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
    runner_spec: str | None,
    json_path: str | None,
    junit_path: str | None,
    trace_dir: str | None,
    progress: bool | None,
) -> None:
    """Run scenario files (or every *.toml in folders) against a runner and check them.

    The runner under test is --runner SPEC (default: the reference runner);
    scenarios that apply only to the runner they configure are skipped for
    others, with the reason. Exit status: 0 when every invariant and
    expectation holds, 1 when any fails or could not be checked, 2 on invalid
    input (nothing runs then). A failure prints its seed and a replay command.
    """
    scenarios = load_scenarios(paths)
    _prepare_outputs(json_path, junit_path, trace_dir)
    try:
        runner = resolve_runner(runner_spec)
    except InvalidArgumentError as exc:
        fail(f"--runner: {exc}")
    options = _RunOptions(LOOPS if backend == "both" else (backend,), seed, jitter, runner)
    started = time.perf_counter()
    checks = _run_scenarios(scenarios, options, trace_dir, progress)
    wall = time.perf_counter() - started
    print_results(stdout_console(), checks, len(scenarios), len(options.loops), wall)
    code = EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED
    _write_reports(
        checks, options, code=code, wall=wall, json_path=json_path, junit_path=junit_path
    )
    sys.exit(code)
