"""Chaos scheduling: the scenario library under schedule jitter, on both loops.

Each item runs one library scenario with one ``schedule_jitter`` seed on asyncio and
trio and requires every expectation to hold (a makespan bound widens by exactly the
jitter time the run added), the results to equal the unjittered run's, and the jitter
to have actually fired. By default each scenario gets a rotating subset of the 20
jitter seeds; ``--swaysim-long`` (or ``SWAYSIM_LONG=1``) runs all 20 for every one.
A failure prints the scenario's failure report with the replay command
(``swaysim run ... --seed S --jitter J``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from swaysim._pytest.scenarios import results_digest
from swaysim._time.clock import LOOPS
from swaysim.scenario import ScenarioRun, check_scenario, run_scenario
from sweeps import is_long, library_scenario, sweep

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "jitter_case" in metafunc.fixturenames:
        cases = sweep(is_long(metafunc.config))
        metafunc.parametrize("jitter_case", cases, ids=[f"{name}-j{seed}" for name, seed in cases])


@functools.cache
def unjittered(name: str, loop: str) -> ScenarioRun:
    return run_scenario(library_scenario(name), loop)


def test_library_scenario_holds_under_schedule_jitter(
    jitter_case: tuple[str, int], record_property: Callable[[str, object], None]
) -> None:
    name, jitter = jitter_case
    scenario = library_scenario(name)
    checks = check_scenario(scenario, LOOPS, schedule_jitter=jitter)
    for check in checks:
        record_property(f"results_{check.loop}", results_digest(check.run))
    failures = [check.failure_report() for check in checks if not check.ok]
    assert not failures, "\n\n".join(failures)
    for check in checks:
        run = check.run
        assert run.schedule_jitter == jitter
        assert f"--seed {scenario.seed} --jitter {jitter}" in check.replay
        assert run.statistics.jitter_events > 0, "the jitter never fired"
        if not run.cancelled:
            # Jitter moves completions around; a correct runner's answers do not move.
            assert run.fingerprint == unjittered(name, check.loop).fingerprint
