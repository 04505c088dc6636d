"""``swaysim explore``: search fault schedules against a runner, shrink what breaks it.

Exit codes: 0 when no failure was found within the budget, 1 when one was
(the shrunk file and its replay command printed), 2 on invalid input (a bad
runner spec, scenario or option; nothing runs then).
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Final

import click
from rich.console import Console

from swaysim._cli.common import EXIT_FAILED, EXIT_OK, fail, say, write_output
from swaysim._explore.api import explore as explore_api
from swaysim._explore.bounds import FAULT_KIND_CHOICES, VIEW_KIND_CHOICES
from swaysim._time.clock import LOOPS
from swaysim.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    OutputError,
    ScenarioError,
    TrialCrashedError,
)

if TYPE_CHECKING:
    from swaysim._explore.api import ExploreProgress, ExploreResult

__all__ = ["explore", "parse_duration"]

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PLAIN_EVERY: Final = 100
"""Off a terminal, a progress line every this many trials (and at each shrink step)."""


def parse_duration(text: str) -> float:
    """``60s``, ``2m``, ``1.5h``, ``500ms`` or a bare number of seconds, as seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidArgumentError(
            f"--time {text!r}: must be a positive duration such as 60s, 2m, 1h or 90",
            field="time",
            value=text,
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def _split(option: str, value: str | None) -> list[str] | None:
    return None if value is None else [part for part in value.split(",") if part.strip()]


class _Display:
    """Progress on stderr: one live line on a terminal, a plain line now and then otherwise."""

    def __init__(self) -> None:
        self.console = Console(file=sys.stderr, highlight=False)
        self.live = self.console.is_terminal
        self.status = self.console.status("exploring") if self.live else None
        self.last_steps = 0

    def __enter__(self) -> _Display:
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.status is not None:
            self.status.stop()

    def update(self, progress: ExploreProgress) -> None:
        if self.status is not None:
            self.status.update(progress.line())
            return
        stepped = progress.shrink_steps != self.last_steps
        self.last_steps = progress.shrink_steps
        if stepped or (progress.trials % _PLAIN_EVERY == 0 and not progress.shrink_steps):
            say(f"explore: {progress.line()}")


def _report(result: ExploreResult) -> None:
    config = result.config
    say(
        f"explored {result.trials} trial(s) against {config.runner} on {config.loop} "
        f"in {result.wall_seconds:.2f} wall s ({result.trials_per_second:.1f}/s), "
        f"{result.discarded} discarded",
        err=False,
    )
    found, shrunk, written = result.found, result.shrunk, result.written
    if found is None or shrunk is None or written is None:
        say("nothing found within the budget", err=False)
        return
    say(f"FOUND at trial seed {found.seed} ({found.scenario}): {found.failure}", err=False)
    say(
        f"shrunk in {shrunk.steps} step(s) ({shrunk.runs} run(s)"
        f"{'' if shrunk.fixpoint else ', run budget spent before a fixpoint'}) to "
        f"{shrunk.rules} fault rule(s), {shrunk.probes} probe(s): {shrunk.failure}",
        err=False,
    )
    say(f"scenario: {written.path}", err=False)
    if written.trace_dir is not None:
        say(f"trace: {written.trace_dir} (swaysim report {written.trace_dir})", err=False)
    say(f"replay: {written.replay}", err=False)


@click.command(short_help="Search fault schedules against a runner; shrink what breaks it.")
@click.argument("scenarios", nargs=-1, required=True, metavar="SCENARIO...")
@click.option(
    "--runner",
    required=True,
    metavar="SPEC",
    help="The runner under test: package.module:function or path/to/file.py:function.",
)
@click.option(
    "--trials",
    type=int,
    default=None,
    help="Trials to run at most (default 200 when --time is not given).",
)
@click.option(
    "--time", "duration", default=None, metavar="DURATION", help="Wall-clock budget: 60s, 2m, 1h."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="First trial seed; trials use seed, seed+1, ...",
)
@click.option(
    "--backend",
    "loop",
    type=click.Choice(LOOPS),
    default="asyncio",
    show_default=True,
    help="Event loop of the trials (the invariance twin runs on the other).",
)
@click.option(
    "--faults",
    default=None,
    metavar="KINDS",
    help=f"Comma-separated fault kinds to generate ({', '.join(FAULT_KIND_CHOICES)}).",
)
@click.option(
    "--views",
    default=None,
    metavar="KINDS",
    help=f"Comma-separated view kinds faults may target ({', '.join(VIEW_KIND_CHOICES)}).",
)
@click.option(
    "--out",
    default="explore-out",
    show_default=True,
    metavar="DIR",
    help="Where the shrunk scenario and its trace are written.",
)
@click.option(
    "--json", "json_path", default=None, metavar="FILE", help="Write a JSON summary to FILE."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local processes running trials.",
)
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS",
    help="Run trials on the Dask cluster at ADDRESS.",
)
def explore(
    scenarios: tuple[str, ...],
    runner: str,
    trials: int | None,
    duration: str | None,
    seed: int,
    loop: str,
    faults: str | None,
    views: str | None,
    out: str,
    json_path: str | None,
    workers: int,
    dask_address: str | None,
) -> None:
    """Run generated fault, latency and jitter schedules of SCENARIO... against --runner.

    Stops at the budget or at the first failure, which it shrinks to a minimal
    scenario file in --out that `swaysim run FILE --runner SPEC` replays.
    Exit 0: nothing found; 1: found; 2: invalid input.
    """
    try:
        seconds = None if duration is None else parse_duration(duration)
        with _Display() as display:
            result = explore_api(
                scenarios,
                runner,
                trials=trials,
                time=seconds,
                seed=seed,
                loop=loop,
                faults=_split("faults", faults),
                views=_split("views", views),
                out=out,
                workers=workers,
                dask_address=dask_address,
                on_progress=display.update,
            )
    except (
        InvalidArgumentError,
        MissingDependencyError,
        ScenarioError,
        OutputError,
        TrialCrashedError,
    ) as exc:
        fail(str(exc))
    _report(result)
    if json_path is not None:
        data = json.dumps(result.to_dict(), indent=2).encode("utf-8")
        write_output("--json", json_path, data)
    sys.exit(EXIT_FAILED if result.failed else EXIT_OK)
