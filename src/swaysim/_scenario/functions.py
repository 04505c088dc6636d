"""Function probes a scenario names: found like a runner, imported only to run.

A ``[[probes]]`` table with ``kind = "function"`` and ``function =
"module:callable"`` makes the scenario code, exactly as ``[runner] runner =
...`` does, so the same trust model applies (docs/trust-model.md,
:mod:`swaysim._scenario.runners`): loading locates the module in the
scenario's folder (``sys.path`` only with the user's opt-in) and reads the
callable's parameters from its source without executing anything; running
imports it and checks its real signature against the table's ``options``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swaysim._scenario.messages import Problem, join_key, scenario_error
from swaysim._scenario.runners import (
    RunnerTarget,
    import_runner,
    locate_runner,
    parameters_of,
    signature_problems,
    static_problems,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from swaysim._scenario.build import ExpandedProbe

__all__ = ["function_targets", "import_functions"]

_FIXED = "(backend, ctx)"


def _first_of_each_table(plan: Sequence[ExpandedProbe]) -> dict[str, ExpandedProbe]:
    """One function probe per ``[[probes]]`` table (``repeat`` copies share the function)."""
    found: dict[str, ExpandedProbe] = {}
    for item in plan:
        if item.kind == "function":
            found.setdefault(item.path, item)
    return found


def _options(item: ExpandedProbe) -> dict[str, str]:
    """Each keyword the function gets from the table, mapped to the key that sets it."""
    options: Mapping[str, object] = item.kwargs.get("options", {})
    return {key: join_key(f"{item.path}.options", key) for key in options}


def function_targets(
    plan: Sequence[ExpandedProbe], folder: Path | None, *, allow_sys_path: bool
) -> dict[str, RunnerTarget] | list[Problem]:
    """Where each function probe's callable lives, by table path; never executes it.

    Problems name ``probes[i].function`` (a module not in the folder, a
    callable its source does not define) or ``probes[i].options.<key>`` (an
    option its parameters do not take).
    """
    targets: dict[str, RunnerTarget] = {}
    problems: list[Problem] = []
    for path, item in _first_of_each_table(plan).items():
        key = f"{path}.function"
        target = locate_runner(
            str(item.kwargs["function"]), folder, allow_sys_path=allow_sys_path, key=key
        )
        if not isinstance(target, RunnerTarget):
            problems.append(target)
            continue
        found = static_problems(target, _options(item), fixed=_FIXED)
        problems += found
        targets[path] = target
    return problems or targets


def import_functions(
    targets: Mapping[str, RunnerTarget], plan: Sequence[ExpandedProbe], *, source: str
) -> dict[str, Callable[..., object]]:
    """Import each function probe's callable (this runs its module) and check its options.

    Raises :class:`~swaysim.errors.ScenarioError` naming the key at fault,
    before anything runs.
    """
    functions: dict[str, Callable[..., object]] = {}
    problems: list[Problem] = []
    tables = _first_of_each_table(plan)
    for path, target in targets.items():
        function = import_runner(target)
        if isinstance(function, Problem):
            problems.append(function)
            continue
        parameters = parameters_of(function)
        if parameters is not None:
            problems += signature_problems(
                target.text, parameters, _options(tables[path]), key=target.key, fixed=_FIXED
            )
        functions[path] = function
    if problems:
        raise scenario_error(source, problems)
    return functions
