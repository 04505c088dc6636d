"""pytest collection of scenario files as test items.

``pytest scenarios/`` runs the scenario library: every ``*.toml`` under the
folders named by the ``swaysim_scenario_dirs`` ini option (default
``scenarios``), or given explicitly on the command line, becomes two items,
``slow_view_switches.toml::asyncio`` and ``slow_view_switches.toml::trio``.
``pyproject.toml`` and TOML files elsewhere are never collected, nor is a
file in those folders that mentions neither ``probes`` nor ``expect`` (which
every scenario has): a project with a ``scenarios`` folder of its own keeps
working when swaysim is installed.

Each item runs its scenario against the runner under test
(``--swaysim-runner SPEC`` or the ``swaysim_runner`` ini option; default
``run_suite``); a scenario that applies only to the runner it configures is
skipped for any other, with the reason. A failing item shows every invariant
and expectation that does not hold (expected vs observed), the seed and the
command that replays it (with ``--runner SPEC``); an invalid file is a
collection error with the loader's one-line message, never a traceback.
Each item is self-contained (an ``identical_across_loops`` expectation runs
the other loop itself), so ``pytest -n auto`` works. Items are not
functions, so pytest-asyncio, pytest-trio and anyio never run them: each
runs its scenario on its own loop and virtual clock.

Loaded by the ``swaysim`` pytest11 plugin (:mod:`swaysim._pytest.plugin`),
which declares the options read here.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TYPE_CHECKING, Any, Final

import pytest

from swaysim._printable import printable
from swaysim._pytest.plugin import (
    INI_DIRS,
    INI_SYS_PATH_RUNNERS,
    JITTER_OPTION,
    SEED_OPTION,
    runner_under_test,
)
from swaysim._time.clock import LOOPS
from swaysim.errors import ScenarioFailedError

# The scenario machinery (pydantic models and all) is imported by the hooks that
# need it, not here: every pytest session in a project with swaysim installed
# loads this plugin, and most never collect a scenario.
if TYPE_CHECKING:
    from pathlib import Path

    from swaysim._scenario.check import RunKey
    from swaysim._scenario.load import Scenario
    from swaysim._scenario.run import ScenarioRun

__all__ = [
    "ScenarioFailedError",
    "ScenarioFile",
    "ScenarioItem",
    "pytest_collect_file",
    "pytest_configure",
    "results_digest",
]

MARKER: Final = "swaysim_scenario"
# Runs shared between the two items of a scenario (each item's reference is the other's run).
_RUNS: Final = pytest.StashKey[dict["RunKey", "ScenarioRun"]]()
_DONE: Final = pytest.StashKey[set[tuple[str, str]]]()
_DIRS: Final = pytest.StashKey[list["Path"]]()
_SCENARIO_KEY: Final = re.compile(
    rb"^[ \t]*(?:\[\[?[ \t]*)?[\"']?(?:probes|expect)[\"']?[ \t]*[\].=]", re.MULTILINE
)
"""A line that starts ``[[probes]]``, ``[expect]``, ``probes =`` or ``expect =``."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker every scenario item carries (``-m "not swaysim_scenario"``)."""
    config.addinivalue_line(
        "markers", f"{MARKER}: a swaysim scenario file run on one event loop (collected)"
    )


def _scenario_dirs(config: pytest.Config) -> list[Path]:
    found = config.stash.get(_DIRS, None)
    if found is None:
        root = config.inipath.parent if config.inipath is not None else config.rootpath
        found = config.stash[_DIRS] = [
            (root / entry).resolve() for entry in config.getini(INI_DIRS)
        ]
    return found


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """Collect ``*.toml`` under the scenario folders, or given explicitly."""
    if file_path.suffix != ".toml" or file_path.name == "pyproject.toml":
        return None
    if not parent.session.isinitpath(file_path):
        resolved = file_path.resolve()
        folders = _scenario_dirs(parent.config)
        if not any(resolved.is_relative_to(folder) for folder in folders):
            return None
        if not _mentions_scenario_keys(file_path):
            return None
    return ScenarioFile.from_parent(parent, path=file_path)


def _mentions_scenario_keys(path: Path) -> bool:
    """Whether a TOML file found in a scenario folder means to be a scenario.

    A text test, not a parse, so a scenario with a syntax error is still
    collected (and reported); an unreadable file (a FIFO, a device, one past
    the size limit) is left to the loader too, which reports it in one line.
    The read is bounded, like the loader's.
    """
    from swaysim._files import read_regular_file
    from swaysim._limits import MAX_SCENARIO_BYTES
    from swaysim.errors import InvalidArgumentError

    try:
        return _SCENARIO_KEY.search(read_regular_file(path, MAX_SCENARIO_BYTES)) is not None
    except (OSError, InvalidArgumentError):
        return True


def results_digest(run: ScenarioRun) -> str:
    """A short hash of a run's results without timing: equal runs, equal digests.

    Recorded as the ``results`` property of every scenario item (JUnit XML), so
    reports from different machines, or from ``-n 0`` and ``-n auto``, compare.
    """
    return hashlib.sha256(run.fingerprint.encode()).hexdigest()[:16]


class ScenarioFile(pytest.File):
    """A scenario file: one item per event loop."""

    def _display(self) -> str:
        try:
            return os.path.relpath(self.path, self.config.invocation_params.dir)
        except ValueError:
            return str(self.path)

    def collect(self) -> list[ScenarioItem]:
        from swaysim._scenario.load import load_scenario

        # Collection locates a custom runner and reads its source; only runtest imports it.
        allow = bool(self.config.getini(INI_SYS_PATH_RUNNERS))
        scenario = load_scenario(self.path, source=self._display(), allow_sys_path_runners=allow)
        return [
            ScenarioItem.from_parent(self, name=loop, scenario=scenario, loop=loop)
            for loop in LOOPS
        ]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        from swaysim.errors import ScenarioError

        if isinstance(excinfo.value, ScenarioError):
            return "\n".join(printable(problem) for problem in excinfo.value.problems)
        return str(super().repr_failure(excinfo))


class ScenarioItem(pytest.Item):
    """One scenario on one event loop; passes when every expectation holds."""

    # Like pytest's doctest items: no test function. Plugins that inspect
    # every item's ``obj`` (pytest-trio's trio_mode does) find nothing to run.
    obj = None

    def __init__(self, *, scenario: Scenario, loop: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.loop = loop
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from swaysim._scenario.check import check_scenario

        seed: int | None = self.config.getoption(SEED_OPTION)
        jitter: int | None = self.config.getoption(JITTER_OPTION)
        cache = self.config.stash.setdefault(_RUNS, {})
        done = self.config.stash.setdefault(_DONE, set())
        source = self.scenario.source
        runner = runner_under_test(self.config)
        (check,) = check_scenario(
            self.scenario,
            (self.loop,),
            seed=seed,
            cache=cache,
            schedule_jitter=jitter,
            runner=runner,
        )
        done.add((source, self.loop))
        if all((source, loop) in done for loop in LOOPS):
            for key in [k for k in cache if k[0] == source]:
                del cache[key]
        if check.skipped is not None:
            pytest.skip(check.skipped)
        self.user_properties.append(("seed", check.run.seed))
        if check.run.schedule_jitter is not None:
            self.user_properties.append(("schedule_jitter", check.run.schedule_jitter))
        self.user_properties.append(("virtual_seconds", round(check.run.makespan, 6)))
        self.user_properties.append(("replay", check.replay))
        self.user_properties.append(("results", results_digest(check.run)))
        if not check.ok:
            raise ScenarioFailedError(check)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from swaysim.errors import ScenarioError

        if isinstance(excinfo.value, ScenarioFailedError):
            return printable(excinfo.value, multiline=True)
        if isinstance(excinfo.value, ScenarioError):  # its runner cannot be imported
            return "\n".join(printable(problem) for problem in excinfo.value.problems)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario {self.scenario.name} on {self.loop}"
