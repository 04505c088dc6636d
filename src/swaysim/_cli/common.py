"""What every ``swaysim`` command shares: exit codes, errors, output paths, scenario loading."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import click
from rich.console import Console

from swaysim._files import write_file_atomically
from swaysim._printable import printable
from swaysim._scenario.load import discover_scenarios, load_scenario
from swaysim.errors import OutputError, ScenarioError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swaysim._scenario.load import Scenario

ALLOW_SYS_PATH_RUNNERS: Final = click.option(
    "--allow-sys-path-runners",
    is_flag=True,
    default=False,
    help='Let a scenario\'s runner = "module:function" come from sys.path (installed '
    "packages, the standard library), not only from the scenario's own folder. Only for "
    "scenario files you trust: their runner is code.",
)

__all__ = [
    "ALLOW_SYS_PATH_RUNNERS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "count",
    "fail",
    "import_runners",
    "interrupted",
    "load_scenarios",
    "say",
    "stdout_console",
    "write_output",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C, as shells report a process SIGINT stopped."""


def interrupted(error: BaseException) -> bool:
    """Whether ``error`` is Ctrl-C: a KeyboardInterrupt, or a group of nothing else.

    trio delivers Ctrl-C inside the task that was running, so it surfaces
    wrapped in the exception groups of every task group on the way out.
    """
    if isinstance(error, BaseExceptionGroup):
        _, rest = error.split(KeyboardInterrupt)
        return rest is None
    return isinstance(error, KeyboardInterrupt)


def say(text: str, *, err: bool = True) -> None:
    """Print ``text`` (one line per line of it), control characters shown escaped.

    Every line the command line prints that holds a name, a path or a message
    from a file goes through here (or :func:`~swaysim._printable.printable`),
    so a hostile name cannot reach the terminal as an escape sequence.
    """
    click.echo("\n".join(printable(line) for line in text.split("\n")), err=err)


def fail(message: str) -> NoReturn:
    """Print ``swaysim: message`` on stderr and exit 2 (invalid input)."""
    say(f"swaysim: {message}")
    sys.exit(EXIT_INVALID)


def write_output(option: str, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` safely (see :func:`write_file_atomically`); exit 2 if it
    cannot be, naming the option."""
    try:
        write_file_atomically(Path(path), lambda stream: stream.write(data), option=option)
    except OutputError as exc:
        fail(str(exc))


def stdout_console() -> Console:
    """A console on stdout, 160 columns wide when stdout is not a terminal."""
    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = 160
    return console


def count(number: int, noun: str) -> str:
    """``1 probe``, ``2 probes``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _scenario_files(paths: Sequence[str]) -> list[Path]:
    """Every scenario file under ``paths``, each once; exits 2 on a path with none."""
    files: dict[Path, Path] = {}
    for given in paths:
        if not Path(given).exists():
            say(f"{given}: cannot read: no such file or directory")
            sys.exit(EXIT_INVALID)
        found = list(discover_scenarios([given]))
        if not found:
            say(f"{given}: no scenario files (*.toml) found")
            sys.exit(EXIT_INVALID)
        for file in found:
            files.setdefault(file.resolve(), file)
    return list(files.values())


def _exit_if_invalid(invalid: int) -> None:
    if invalid:
        noun = "scenario is" if invalid == 1 else "scenarios are"
        click.echo(f"swaysim: {invalid} {noun} invalid; nothing was run", err=True)
        sys.exit(EXIT_INVALID)


def load_scenarios(paths: Sequence[str], *, allow_sys_path_runners: bool = False) -> list[Scenario]:
    """Every scenario under ``paths``, each once; prints every problem and exits 2 if any.

    Loading never imports a scenario's runner (see :func:`import_runners`).
    """
    scenarios: list[Scenario] = []
    invalid = 0
    for file in _scenario_files(paths):
        try:
            scenarios.append(load_scenario(file, allow_sys_path_runners=allow_sys_path_runners))
        except ScenarioError as exc:
            invalid += 1
            say(str(exc))
    _exit_if_invalid(invalid)
    return scenarios


def import_runners(scenarios: Sequence[Scenario]) -> None:
    """Import every scenario's own runner and function probes before anything runs; exit 2
    if any cannot be.

    The one place the command line executes code a scenario names (see the
    README's trust model): only ``swaysim run`` calls it, never ``validate``.
    """
    invalid = 0
    for scenario in scenarios:
        try:
            scenario.load_runner()
            scenario.load_functions()
        except ScenarioError as exc:
            invalid += 1
            say(str(exc))
    _exit_if_invalid(invalid)
