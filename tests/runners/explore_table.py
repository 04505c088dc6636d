"""Explore every mutant (and the correct runners) and print the table docs/explore.md shows.

``python tests/runners/explore_table.py [TRIALS]`` (from the checkout; default 200 trials per
runner and loop, over the scenarios in :data:`SCENARIOS`): per runner and loop, the trials to
the first failure, the property, the shrink steps and the shrunk size. Minutes on one core.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "docs" / "examples")]

from runners.mutants import MUTANTS  # noqa: E402
from swaysim import explore  # noqa: E402

SCENARIOS: Final = tuple(
    str(ROOT / "scenarios" / f"{name}.toml")
    for name in (
        "safe_backend_faults",
        "flaky_ft_view",
        "zscore_calibration",
        "hang_under_timeout",
        "cancellation_mid_suite",
        "retries_exhausted",
        "nan_scalar_answers",
        "fault_on_view_exit",
        "probe_timeout_slow_view",
        "function_probes",
    )
)
CORRECT: Final = ("runners.correct:run", "runners.correct_base_first:run", "minimal_runner:run")


def _cell(runner: str, loop: str, trials: int, out: Path) -> str:
    result = explore(SCENARIOS, runner, trials=trials, loop=loop, out=out / loop)
    if result.found is None or result.shrunk is None:
        return f"nothing in {result.trials}"
    shrunk = result.shrunk
    return (
        f"{result.trials} | `{shrunk.failure.key}` | {shrunk.steps} ({shrunk.runs} runs) | "
        f"{shrunk.rules}, {shrunk.probes}"
    )


def _short(runner: str) -> str:
    """``leaked_task`` for a mutant, ``correct`` for ``runners.correct:run``."""
    module, _, function = runner.partition(":")
    return function if module == "runners.mutants" else module.rpartition(".")[2]


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print("| runner | loop | trials to first failure | property | shrink steps | rules, probes |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for name in (*CORRECT, *(f"runners.mutants:{m}" for m in MUTANTS)):
            for loop in ("asyncio", "trio"):
                cell = _cell(name, loop, trials, out)
                if cell.startswith("nothing"):
                    cell = f"{cell} | | |"
                print(f"| `{_short(name)}` | {loop} | {cell} |", flush=True)


if __name__ == "__main__":
    main()
