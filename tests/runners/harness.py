"""The scenario library, and what a check of it says about a runner under test.

Shared by the mutation test (tests/reliability/test_mutants.py) and the table it keeps in
step (tests/runners/mutant_table.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from swaysim.scenario import load_scenario

if TYPE_CHECKING:
    from collections.abc import Iterable

    from swaysim.scenario import Scenario, ScenarioCheck

LIBRARY: Final = Path(__file__).resolve().parents[2] / "scenarios"


def library() -> list[Scenario]:
    """Every scenario of the library, by file name."""
    return [load_scenario(path) for path in sorted(LIBRARY.glob("*.toml"))]


def failed_keys(checks: Iterable[ScenarioCheck]) -> dict[str, list[str]]:
    """Per loop, the invariants and expectations that failed (skipped checks left out)."""
    return {
        check.loop: [o.key for o in check.failures]
        for check in checks
        if check.skipped is None and not check.ok
    }
