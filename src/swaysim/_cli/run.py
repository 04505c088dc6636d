"""``swaysim run``: run scenario files on one or both loops and check their expectations.

Exit codes: 0 when every expectation holds, 1 when any fails or an output
could not be completely written (a full disk: the run goes on and says
which), 2 on invalid input (a malformed scenario, a missing path, a bad
option, an unwritable destination; nothing runs then). A failing scenario
prints its seed and the exact command that replays it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from swaysim._cli.common import (
    ALLOW_SYS_PATH_RUNNERS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    fail,
    import_runners,
    interrupted,
    load_scenarios,
    say,
    stdout_console,
)
from swaysim._cli.run_output import json_document, junit_tree, print_results
from swaysim._files import (
    OutputDirectory,
    check_output_file,
    write_file_atomically,
)
from swaysim._printable import printable
from swaysim._scenario.check import check_scenario
from swaysim._scenario.run_dirs import RunDirs
from swaysim._scenario.schema import MAX_SEED
from swaysim._scenario.under_test import RunnerUnderTest, resolve_runner
from swaysim._time.clock import LOOPS
from swaysim.errors import InvalidArgumentError, OutputError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.check import ScenarioCheck
    from swaysim._scenario.load import Scenario

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
        self.bar.update(self.task, description=escape(printable(scenario.name)))
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
            say(f"[{index}/{self.scenarios}] {scenario.name}: {state}")


def _prepare_outputs(
    json_path: str | None, junit_path: str | None, trace_dir: str | None
) -> OutputDirectory | None:
    """Exit 2 before anything runs when an output cannot be written; the trace root, open."""
    try:
        if json_path:
            check_output_file(Path(json_path), option="--json")
        if junit_path:
            check_output_file(Path(junit_path), option="--junit")
        return OutputDirectory.open_root(Path(trace_dir), option="--trace") if trace_dir else None
    except OutputError as exc:
        fail(str(exc))


def _run_scenarios(
    scenarios: Sequence[Scenario],
    options: _RunOptions,
    run_dirs: RunDirs | None,
    progress: bool | None,
) -> list[ScenarioCheck]:
    """Check every scenario on every loop, one after another, writing run dirs if asked."""
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
    problems: Sequence[str],
) -> list[str]:
    """Write ``--json`` and ``--junit`` when asked; what could not be written, one line each."""
    failed: list[str] = []
    if json_path:
        document = json_document(
            checks,
            exit_code=code,
            loops=options.loops,
            seed=options.seed,
            jitter=options.jitter,
            wall=wall,
        )
        document["output_problems"] = list(problems)
        data = json.dumps(document, indent=2, default=str).encode("utf-8")
        try:
            write_file_atomically(Path(json_path), lambda s: s.write(data), option="--json")
        except OutputError as exc:
            failed.append(str(exc))
    if junit_path:
        tree = junit_tree(checks, wall)
        try:
            write_file_atomically(
                Path(junit_path),
                lambda stream: tree.write(stream, encoding="utf-8", xml_declaration=True),
                option="--junit",
            )
        except OutputError as exc:
            failed.append(str(exc))
    return failed


@click.command(short_help="Run scenario files (or folders of them); check expectations.")
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
@ALLOW_SYS_PATH_RUNNERS
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
    allow_sys_path_runners: bool,
    progress: bool | None,
) -> None:
    """Run scenario files (or every *.toml in folders) against a runner and check them.

    The runner under test is --runner SPEC (default: the reference runner);
    scenarios that apply only to the runner they configure are skipped for
    others, with the reason. Exit status: 0 when every invariant and
    expectation holds, 1 when any fails or could not be checked, 2 on invalid
    input (nothing runs then). A failure prints its seed and a replay command.
    """
    scenarios = load_scenarios(paths, allow_sys_path_runners=allow_sys_path_runners)
    import_runners(scenarios)
    try:
        runner = resolve_runner(runner_spec)  # the user's own code: trusted, imported now
    except InvalidArgumentError as exc:
        fail(f"--runner: {exc}")
    trace_root = _prepare_outputs(json_path, junit_path, trace_dir)
    options = _RunOptions(LOOPS if backend == "both" else (backend,), seed, jitter, runner)
    run_dirs = RunDirs(trace_root) if trace_root is not None else None
    started = time.perf_counter()
    try:
        checks = _run_scenarios(scenarios, options, run_dirs, progress)
    except BaseException as exc:
        if not interrupted(exc):
            raise
        say("swaysim: interrupted; nothing more was run")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if run_dirs is not None:
            run_dirs.close()
        if trace_root is not None:
            trace_root.close()
    wall = time.perf_counter() - started
    print_results(stdout_console(), checks, len(scenarios), len(options.loops), wall)
    problems = run_dirs.problems if run_dirs is not None else []
    code = EXIT_OK if all(c.ok for c in checks) and not problems else EXIT_FAILED
    problems = [
        *problems,
        *_write_reports(
            checks,
            options,
            code=code,
            wall=wall,
            json_path=json_path,
            junit_path=junit_path,
            problems=problems,
        ),
    ]
    for line in problems:
        say(f"swaysim: {line}")
    sys.exit(EXIT_FAILED if problems else code)
