"""Soak: the scenario library under many scenario seeds, on both loops.

A library expectation must hold for every seed, not just the one in the file: a
bound that only the file's seed happens to satisfy tests luck, not the runner. Each
item runs one scenario with ``seed`` overridden (every plan without a seed of its
own follows it) on asyncio and trio. By default each scenario gets a rotating subset
of the 20 seeds; ``--swaysim-long`` (or ``SWAYSIM_LONG=1``) runs all 20 for every one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swaysim._pytest.scenarios import results_digest
from swaysim._time.clock import LOOPS
from swaysim.scenario import check_scenario
from sweeps import is_long, library_scenario, sweep

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed_case" in metafunc.fixturenames:
        cases = sweep(is_long(metafunc.config))
        metafunc.parametrize("seed_case", cases, ids=[f"{name}-s{seed}" for name, seed in cases])


def test_library_scenario_holds_under_another_seed(
    seed_case: tuple[str, int], record_property: Callable[[str, object], None]
) -> None:
    name, seed = seed_case
    checks = check_scenario(library_scenario(name), LOOPS, seed=seed)
    for check in checks:
        record_property(f"results_{check.loop}", results_digest(check.run))
    failures = [check.failure_report() for check in checks if not check.ok]
    assert not failures, "\n\n".join(failures)
    assert all(check.run.seed == seed for check in checks)
