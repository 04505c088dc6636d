"""The mutation test: the scenario library must catch every buggy runner, and pass correct ones.

A runner of one's own is what swaysim tests (DESIGN.md, "The runner under test"), so the
library is only as good as the bugs it catches in runners that are not the reference one.
tests/runners/mutants.py holds realistic buggy variants of the correct runner
tests/runners/correct.py, one bug each. Here, with ``check_scenario(..., runner=...)``:

- each mutant, checked against the library scenario by scenario (in a fixed order, until
  it is caught on both loops), must break at least one invariant or expectation on each
  event loop;
- the two correct runners, and ``run_suite`` itself, must pass every scenario that applies
  to them, on both loops.

A mutant that nothing in the library catches yet is a strict xfail naming what is missing
(``runners.mutants.UNCAUGHT``, tests/runners/FINDINGS.md): when the library learns to
catch it, the xfail fails and the entry must go. ``python tests/runners/mutant_table.py``
writes the full "mutant -> catching scenarios and keys" table, docs/mutants.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from runners import correct, correct_base_first
from runners.harness import failed_keys, library
from runners.mutants import MUTANTS, UNCAUGHT
from swaysim import run_suite
from swaysim.scenario import check_scenario

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim.scenario import Scenario

LOOPS: Final = ("asyncio", "trio")
SCENARIOS: Final = library()
NOT_FOR_MUTANTS: Final = {
    "large_suite_1000": "5 s a run, and it catches no mutant that a cheaper scenario misses "
    "(tests/runners/mutant_table.py runs the whole matrix)",
}
LAST: Final = ("lognormal_tail_latency",)
"""Tried last: a few hundred milliseconds a run, where the others take tens."""


def mutant_order() -> list[Scenario]:
    """The scenarios a mutant is checked against, cheap ones first, in a fixed order."""
    usable = [s for s in SCENARIOS if s.name not in NOT_FOR_MUTANTS]
    return sorted(usable, key=lambda s: (s.name in LAST, s.name))


def _mutant_params() -> list[Any]:
    return [
        pytest.param(
            name,
            id=name,
            marks=[pytest.mark.xfail(reason=UNCAUGHT[name], strict=True)]
            if name in UNCAUGHT
            else [],
        )
        for name in MUTANTS
    ]


@pytest.mark.parametrize("name", _mutant_params())
def test_the_library_catches_the_mutant(name: str) -> None:
    mutant = MUTANTS[name]
    uncaught = set(LOOPS)
    found: list[str] = []
    for scenario in mutant_order():
        checks = check_scenario(scenario, LOOPS, runner=mutant.runner)
        for loop, keys in failed_keys(checks).items():
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


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("runner", list(CORRECT))
def test_correct_runners_pass_the_library(runner: str, scenario: Scenario) -> None:
    checks = check_scenario(scenario, LOOPS, runner=CORRECT[runner])
    if all(check.skipped for check in checks):
        pytest.skip(f"{scenario.name} does not apply to {runner}: {checks[0].skipped}")
    problems = [f"{c.loop}: {o.line()}" for c in checks if c.skipped is None for o in c.failures]
    assert not problems, f"{runner} fails {scenario.name}:\n" + "\n".join(problems)


def test_docs_mutants_md_lists_the_corpus() -> None:
    """docs/mutants.md (written by tests/runners/mutant_table.py) names every mutant and its bug."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "mutants.md").read_text("utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    listed = {row.split("`")[1]: row.split(" | ")[1] for row in rows}
    assert listed == {name: m.bug for name, m in MUTANTS.items()}, (
        "docs/mutants.md is out of step with tests/runners/mutants.py: "
        "run python tests/runners/mutant_table.py"
    )


def test_every_mutant_is_one_override_of_the_correct_runner_and_says_how() -> None:
    for mutant in MUTANTS.values():
        assert len(mutant.how) > 40, f"{mutant.name}: the docstring must say how the bug is made"
        assert mutant.run_class.__mro__[1] is correct.Run, f"{mutant.name}: one override deep"
