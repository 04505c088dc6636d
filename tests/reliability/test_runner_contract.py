"""The runner contract, kept honest: the minimal runner written from it passes the library.

docs/examples/minimal_runner.py is about a hundred lines written from docs/runner-contract.md
alone; every library scenario that applies to it must pass on both loops, and the two that
test only the reference runner must be skipped with their reason. The reference runner's own
counters (``SuiteResult.retries`` and ``timeouts``) must agree with what the backend
observed, on every library scenario: two accounts of the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from swaysim.scenario import check_scenario, load_scenario, run_scenario

ROOT: Final = Path(__file__).parents[2]
MINIMAL: Final = f"{ROOT}/docs/examples/minimal_runner.py:run"
LIBRARY: Final = sorted((ROOT / "scenarios").glob("*.toml"))
REFERENCE_ONLY: Final = {"batch_item_failure", "naive_runner_swaps"}


@pytest.mark.slow
@pytest.mark.parametrize("path", LIBRARY, ids=[path.stem for path in LIBRARY])
def test_the_minimal_runner_passes_every_applicable_scenario(path: Path) -> None:
    checks = check_scenario(load_scenario(path), ("asyncio", "trio"), runner=MINIMAL)
    if path.stem in REFERENCE_ONLY:
        assert all(c.skipped and c.skipped.startswith("skipped for this runner, because ")
                   for c in checks)  # fmt: skip
        return
    for check in checks:
        assert check.skipped is None
        assert check.ok, check.failure_report()
        assert not check.run.configured
        assert all(outcome.status != "n/a" for outcome in check.outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("path", LIBRARY, ids=[path.stem for path in LIBRARY])
def test_the_reference_runners_counters_agree_with_the_backends(path: Path) -> None:
    scenario = load_scenario(path)
    for loop in ("asyncio", "trio"):
        run = run_scenario(scenario, loop)
        if run.cancelled:  # a cancelled run_suite returns no SuiteResult to compare
            continue
        assert run.suite is not None
        assert (run.suite.retries, run.suite.timeouts) == (run.retries, run.timeouts)
