"""The mutation test: the scenario library must catch every buggy runner, and pass correct ones.

A runner of one's own is what swaysim tests (DESIGN.md, "The runner under test"), so the
library is only as good as the bugs it catches in runners that are not the reference one.
tests/runners/mutants.py holds realistic buggy variants of the correct runner
tests/runners/correct.py, one bug each. Here:

- each mutant, checked against the library scenario by scenario (cheap ones first, until one
  catches it), must fail at least one expectation or invariant on each event loop;
- the two correct runners, and ``run_suite`` passed as a runner, must pass every scenario that
  applies to them, on both loops.

Mutants that nothing in the library catches yet are strict xfails that say what is missing
(tests/runners/FINDINGS.md): the engine's invariants and differential checks (issue 11), or a
scenario the library does not have. When the missing piece lands the xfail turns into a
failure, and the entry must go. ``python tests/runners/mutant_table.py`` writes the full
"mutant -> catching scenarios and keys" table (docs/mutants.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from runners import correct, correct_base_first
from runners.harness import ENGINE, check_with, library, reference_only, skipped
from runners.mutants import MUTANTS, UNCAUGHT
from swaysim import run_suite
from swaysim.scenario import load_scenario

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim.scenario import Scenario, ScenarioCheck

LOOPS: Final = ("asyncio", "trio")
SCENARIOS: Final = library()
BY_NAME: Final = {scenario.name: scenario for scenario in SCENARIOS}

LAST: Final = ("lognormal_tail_latency",)
"""Scenarios tried last: they take a few hundred milliseconds, the others tens."""
NOT_FOR_MUTANTS: Final = {
    "large_suite_1000": "5 s a run, and it catches no mutant that a cheaper scenario misses "
    "(tests/runners/mutant_table.py runs the whole matrix)",
}

ENGINE_PENDING: Final = "the issue 11 engine (runner= everywhere, invariants, matches_reference)"


def mutant_order() -> list[Scenario]:
    """Every scenario that may catch a mutant, cheap ones first, in a fixed order."""
    usable = [s for s in SCENARIOS if s.name not in NOT_FOR_MUTANTS]
    if not ENGINE:
        usable = [s for s in usable if reference_only(s) is None]
    return sorted(usable, key=lambda s: (s.name in LAST, s.name))


def catches(checks: list[ScenarioCheck]) -> dict[str, list[str]]:
    """Per loop, the expectation and invariant keys that failed."""
    return {
        check.loop: [o.key for o in check.failures]
        for check in checks
        if not check.ok and not skipped(check)
    }


def _mutant_params() -> list[Any]:
    params = []
    for name in MUTANTS:
        marks = []
        if name in UNCAUGHT:
            with_engine, why = UNCAUGHT[name]
            if not (with_engine and ENGINE):
                reason = f"needs {ENGINE_PENDING}: {why}" if with_engine else why
                marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _mutant_params())
def test_the_library_catches_the_mutant(name: str) -> None:
    mutant = MUTANTS[name]
    uncaught = set(LOOPS)
    found: list[str] = []
    for scenario in mutant_order():
        for loop, keys in catches(check_with(scenario, mutant.runner, LOOPS)).items():
            if loop in uncaught:
                uncaught.discard(loop)
                found.append(f"{scenario.name} on {loop}: {', '.join(keys)}")
        if not uncaught:
            break
    assert not uncaught, (
        f"no library scenario catches mutant {name!r} ({mutant.bug}) on {sorted(uncaught)}; "
        f"caught on the other loop by: {found}"
    )


CORRECT: Final[dict[str, Callable[..., Any]]] = {
    "correct": correct.run,
    "correct_base_first": correct_base_first.run,
    "run_suite": run_suite,
}
PRE_ENGINE_EXACT: Final = frozenset({"expect.view_switches", "expect.makespan"})
"""Exact counts that hold only for the reference runner's visit order (ft first) until the
engine turns them into bounds (SPEC-11, "Runner-agnostic library expectations")."""


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("runner", list(CORRECT))
def test_correct_runners_pass_the_library(runner: str, scenario: Scenario) -> None:
    why = reference_only(scenario)
    if not ENGINE and runner != "run_suite" and why and scenario.runner_function is None:
        pytest.skip(f"{scenario.name} tests the reference runner: {why}")
    problems = []
    for check in check_with(scenario, CORRECT[runner], LOOPS):
        if skipped(check):
            continue
        failures = check.failures
        if not ENGINE and runner == "correct_base_first":
            failures = tuple(o for o in failures if o.key not in PRE_ENGINE_EXACT)
        problems += [f"{check.loop}: {o.line()}" for o in failures]
    assert not problems, f"{runner} fails {scenario.name}:\n" + "\n".join(problems)


PROPOSED: Final = Path(__file__).resolve().parents[1] / "runners" / "proposed"
PROPOSED_TARGETS: Final = {
    "answers_follow_requests": ("completion_order_pairing",),
    "backoff_cap": ("uncapped_backoff",),
    "backoff_overlap": ("device_held_during_backoff",),
    "retry_within_op_timeout": ("one_timeout_around_retries",),
    "view_entry_cost": ("entry_per_request",),
}
"""The scenarios tests/runners/FINDINGS.md proposes for the library, and what each catches."""


@pytest.mark.parametrize("name", sorted(PROPOSED_TARGETS))
def test_a_proposed_scenario_catches_its_mutants_and_passes_correct_runners(name: str) -> None:
    scenario = load_scenario(PROPOSED / f"{name}.toml")
    for runner, function in CORRECT.items():
        for check in check_with(scenario, function, LOOPS):
            assert check.ok, f"{runner}: {check.failure_report()}"
    for target in PROPOSED_TARGETS[name]:
        caught = catches(check_with(scenario, MUTANTS[target].runner, LOOPS))
        assert set(caught) == set(LOOPS), f"{name} misses {target} on {set(LOOPS) - set(caught)}"


def test_every_proposed_scenario_has_its_targets() -> None:
    assert sorted(path.stem for path in PROPOSED.glob("*.toml")) == sorted(PROPOSED_TARGETS)


def test_docs_mutants_md_lists_the_corpus() -> None:
    """docs/mutants.md (written by tests/runners/mutant_table.py) names every mutant and its bug."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "mutants.md").read_text("utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    listed = {row.split("`")[1]: row.split(" | ")[1] for row in rows}
    assert listed == {name: m.bug for name, m in MUTANTS.items()}, (
        "docs/mutants.md is out of step with tests/runners/mutants.py: "
        "run python tests/runners/mutant_table.py"
    )


def test_every_mutant_says_how_its_bug_is_made() -> None:
    for mutant in MUTANTS.values():
        assert len(mutant.how) > 40, f"{mutant.name}: the docstring must say how the bug is made"
        assert mutant.run_class.__mro__[1] is correct.Run, f"{mutant.name}: one override deep"
