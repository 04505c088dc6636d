"""The trials bench_explore.py spreads: module-level, so worker processes import them.

With the explore engine present (``swaysim._explore.trial``), :func:`explore_trial`
is its ``run_trial`` and :func:`plain_trial` runs the same generated scenario as a
plain ``swaysim run`` would: the file's text parsed, the runner and the scenario's
plain expectations, no oracle, no reference run. Without it, both fall back to plain
runs of the small scenario with the trial's seed, so the parallel rows still measure
real runs. The engine is imported by name, so this file type-checks with or without it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Final

from swaysim._scenario.run import run_scenario
from swaysim.scenario import check_scenario, load_scenario

ENGINE: Final = importlib.util.find_spec("swaysim._explore.trial") is not None


@dataclass(frozen=True)
class PlainConfig:
    """A scenario file run on one loop by one runner (the fallback without the engine)."""

    path: str
    runner: str
    loop: str


def _engine(name: str) -> Any:
    return importlib.import_module(f"swaysim._explore.{name}")


def make_config(path: str, runner: str, loop: str) -> Any:
    if not ENGINE:
        return PlainConfig(path, runner, loop)
    return _engine("config").make_config(runner, [path], loop=loop)


def _plain_run(config: PlainConfig, seed: int) -> tuple[str, ...]:
    scenario = load_scenario(config.path)
    (check,) = check_scenario(scenario, [config.loop], seed=seed)
    return tuple(str(result.verdict) for result in check.run.results)


def plain_trial(config: Any, seed: int) -> tuple[str, ...]:
    """The trial's scenario as a plain run: what exploring costs is compared with this."""
    if not ENGINE:
        return _plain_run(config, seed)
    trial = _engine("trial")
    index, document = _engine("generate").trial_document(config, seed)
    document["expect"] = trial.expect_for(None)
    # Through the file format, as `swaysim run FILE` reads it (TOML text, then the loader).
    scenario = trial.scenario_of(document, config.scenarios[index].source)
    run = run_scenario(scenario, config.loop, runner=config.runner)
    return tuple(str(result.verdict) for result in run.results)


def explore_trial(config: Any, seed: int) -> object:
    """One exploration trial (the plain run without the engine)."""
    if not ENGINE:
        return _plain_run(config, seed)
    return _engine("trial").run_trial(config, seed)
