"""Shared sizing for the reliability tests: the long option, the library, the seed sweeps.

By default the sweeps run a rotating subset of their seeds, so ``make test`` stays
short while every seed is still exercised by some scenario; ``--swaysim-long`` (or
``SWAYSIM_LONG=1``) runs every seed for every scenario.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from swaysim.scenario import discover_scenarios, load_scenario

if TYPE_CHECKING:
    import pytest

    from swaysim.scenario import Scenario

LONG_OPTION: Final = "--swaysim-long"
LONG_ENV: Final = "SWAYSIM_LONG"
LIBRARY: Final = Path(__file__).resolve().parent.parent / "scenarios"
SWEEP_SEEDS: Final = 20
"""Seeds per scenario in a full sweep (chaos: jitter seeds; soak: scenario seeds)."""
DEFAULT_SEEDS: Final = 4
"""Seeds per scenario by default: scenario i gets seeds 4i .. 4i+3 (mod 20)."""
LARGE_PROBES: Final = 500
"""A scenario with more probes than this gets one seed by default (it takes seconds)."""


def is_long(config: pytest.Config) -> bool:
    """Whether the reliability tests run at full size."""
    return bool(config.getoption(LONG_OPTION, default=False)) or os.environ.get(LONG_ENV) == "1"


def library_files() -> list[Path]:
    """The scenario library, in a stable order."""
    return list(discover_scenarios([LIBRARY]))


@functools.cache
def library_scenario(name: str) -> Scenario:
    """A library scenario by file stem, loaded once per process."""
    path = LIBRARY / f"{name}.toml"
    return load_scenario(path, source=f"scenarios/{path.name}")


def sweep(long: bool) -> list[tuple[str, int]]:
    """(scenario stem, seed) pairs: every seed when long, else a rotating subset."""
    pairs: list[tuple[str, int]] = []
    for index, path in enumerate(library_files()):
        if long:
            seeds = list(range(SWEEP_SEEDS))
        else:
            count = (
                1 if len(library_scenario(path.stem).probe_plan) > LARGE_PROBES else DEFAULT_SEEDS
            )
            seeds = [(index * DEFAULT_SEEDS + k) % SWEEP_SEEDS for k in range(count)]
        pairs.extend((path.stem, seed) for seed in seeds)
    return pairs
