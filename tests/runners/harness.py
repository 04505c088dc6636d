"""Running library scenarios against a runner of one's own, for the mutation test and its table.

:func:`check_with` is ``check_scenario(scenario, loops, runner=runner)``. Until the engine
takes a ``runner`` argument (issue 11) it puts the runner in a copy of the scenario, as a
scenario file's ``[runner] runner = "module:function"`` key does, and leaves out what only
the reference runner can pass (:func:`reference_only`).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from swaysim.scenario import check_scenario, load_scenario

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from swaysim.scenario import Scenario, ScenarioCheck

LIBRARY: Final = Path(__file__).resolve().parents[2] / "scenarios"
ENGINE: Final = "runner" in inspect.signature(check_scenario).parameters
"""Whether check_scenario takes the runner under test (the issue 11 engine has landed)."""


def library() -> list[Scenario]:
    """Every scenario of the library, by file name."""
    return [load_scenario(path) for path in sorted(LIBRARY.glob("*.toml"))]


def reference_only(scenario: Scenario) -> str | None:
    """Why ``scenario`` cannot judge another runner (None: it can), before the engine says so.

    A scenario that names its own runner tests that runner; ``mode = "naive"`` is an option
    only the reference runner has.
    """
    if scenario.spec.runner.runner is not None:
        return f"it tests its own runner {scenario.spec.runner.runner!r}"
    if scenario.spec.runner.mode != "pooled":
        return f'it tests run_suite\'s mode="{scenario.spec.runner.mode}"'
    return None


def check_with(
    scenario: Scenario, runner: Callable[..., Any], loops: Sequence[str]
) -> list[ScenarioCheck]:
    """``scenario`` checked with ``runner`` as the runner under test, on each of ``loops``.

    A scenario that names its own runner keeps it: it tests that runner (SPEC-11 precedence).
    """
    if ENGINE:
        return check_scenario(scenario, loops, runner=runner)  # type: ignore[call-arg]
    if scenario.runner_function is not None:
        return check_scenario(scenario, loops)
    return check_scenario(dataclasses.replace(scenario, runner_function=runner), loops)


def skipped(check: ScenarioCheck) -> bool:
    """Whether the engine reported ``check`` as not applicable to the runner under test."""
    return bool(getattr(check, "skipped", False))
