"""``swaysim.explore``: search generated schedules until a budget or the first failure, shrink it.

Trials go through :func:`~swaysim._explore.parallel.run_trials` in seed order
from ``seed``: the first failure of a seed range is the same however trials are
spread. The failing trial's scenario is shrunk (:mod:`~swaysim._explore.shrink`)
and written (:mod:`~swaysim._explore.output`).
"""

from __future__ import annotations

import itertools
import time as wall_clock
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from swaysim._explore.config import make_config
from swaysim._explore.generate import trial_document
from swaysim._explore.output import write_found
from swaysim._explore.parallel import run_trials
from swaysim._explore.shrink import shrink
from swaysim._explore.trial import run_trial
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from swaysim._explore.config import ExploreConfig
    from swaysim._explore.output import Written
    from swaysim._explore.shrink import Shrunk
    from swaysim._explore.trial import Failure, TrialOutcome

__all__ = ["DEFAULT_TRIALS", "ExploreProgress", "ExploreResult", "explore"]

DEFAULT_TRIALS: Final = 200
"""Trials when neither ``trials`` nor ``time`` is given."""


@dataclass(slots=True)
class ExploreProgress:
    """Where an exploration is: what a progress display shows."""

    trials: int = 0
    failures: int = 0
    discarded: int = 0
    shrink_steps: int = 0
    shrink_runs: int = 0
    started: float = field(default_factory=wall_clock.perf_counter)

    @property
    def trials_per_second(self) -> float:
        """Trials per wall second so far."""
        elapsed = wall_clock.perf_counter() - self.started
        return self.trials / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``120 trials (85.3/s), 1 failure, 0 discarded, 12 shrink steps``."""
        return (
            f"{self.trials} trials ({self.trials_per_second:.1f}/s), {self.failures} failure(s), "
            f"{self.discarded} discarded, {self.shrink_steps} shrink step(s)"
        )


@dataclass(frozen=True, slots=True)
class ExploreResult:
    """What an exploration did and found."""

    config: ExploreConfig
    trials: int
    discarded: int
    wall_seconds: float
    first_seed: int
    found: TrialOutcome | None = None
    shrunk: Shrunk | None = None
    written: Written | None = None

    @property
    def failed(self) -> bool:
        """Whether a failure was found (the command exits 1)."""
        return self.found is not None

    @property
    def trials_per_second(self) -> float:
        """Trials per wall second, shrinking excluded."""
        return self.trials / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """The JSON summary (``--json``)."""
        shrunk, written = self.shrunk, self.written
        return {
            "runner": self.config.runner,
            "loop": self.config.loop,
            "scenarios": [s.source for s in self.config.scenarios],
            "faults": list(self.config.faults),
            "views": list(self.config.views),
            "seeds": [self.first_seed, self.first_seed + self.trials],
            "trials": self.trials,
            "discarded": self.discarded,
            "wall_seconds": round(self.wall_seconds, 3),
            "trials_per_second": round(self.trials_per_second, 2),
            "found": None if self.found is None else self.found.to_dict(),
            "shrunk": None
            if shrunk is None
            else {
                "property": shrunk.failure.key,
                "observed": shrunk.failure.observed,
                "steps": shrunk.steps,
                "runs": shrunk.runs,
                "fixpoint": shrunk.fixpoint,
                "fault_rules": shrunk.rules,
                "probes": shrunk.probes,
            },
            "file": None if written is None else str(written.path),
            "trace": None
            if written is None or written.trace_dir is None
            else str(written.trace_dir),
            "replay": None if written is None else written.replay,
        }

    def __repr__(self) -> str:
        head = f"<ExploreResult {self.config.runner} on {self.config.loop}: {self.trials} trials"
        if self.found is None:
            return f"{head}, nothing found>"
        where = f", written to {self.written.path}" if self.written is not None else ""
        return f"{head}, found {self.found.failure} at seed {self.found.seed}{where}>"


def _seeds(first: int, trials: int | None) -> Iterable[int]:
    return itertools.count(first) if trials is None else range(first, first + trials)


def _check_budget(trials: int | None, seconds: float | None) -> tuple[int | None, float | None]:
    if trials is not None and trials < 1:
        raise InvalidArgumentError(
            f"trials={trials}: must be at least 1", field="trials", value=trials
        )
    if seconds is not None and not seconds > 0:
        raise InvalidArgumentError(
            f"time={seconds}: must be a positive number of seconds", field="time", value=seconds
        )
    if trials is None and seconds is None:
        trials = DEFAULT_TRIALS
    return trials, seconds


def explore(
    scenarios: Sequence[str | Path],
    runner: str,
    *,
    trials: int | None = None,
    time: float | None = None,
    seed: int = 0,
    loop: str = "asyncio",
    faults: Iterable[str] | None = None,
    views: Iterable[str] | None = None,
    out: str | Path = "explore-out",
    workers: int = 1,
    dask_address: str | None = None,
    on_progress: Callable[[ExploreProgress], None] | None = None,
) -> ExploreResult:
    """Run trials from seed ``seed`` until ``trials`` or ``time`` seconds or the first failure.

    ``runner`` is an import spec (``pkg.mod:func`` or ``path.py:func``). A failure is
    shrunk and written to ``out`` (the scenario file, its trace); the result says
    where and how to replay it. Bad arguments raise :class:`InvalidArgumentError`.
    """
    budget, seconds = _check_budget(trials, time)
    config = make_config(runner, scenarios, loop=loop, faults=faults, views=views)
    progress = ExploreProgress()
    deadline = None if seconds is None else progress.started + seconds

    def stop(outcome: TrialOutcome) -> bool:
        progress.trials += 1
        progress.failures += int(outcome.failed)
        progress.discarded += int(outcome.discarded is not None)
        if on_progress is not None:
            on_progress(progress)
        late = deadline is not None and wall_clock.perf_counter() >= deadline
        return outcome.failed or late

    found = None
    stream = run_trials(
        run_trial,
        config,
        _seeds(seed, budget),
        workers=workers,
        dask_address=dask_address,
        stop=stop,
    )
    for _, outcome in stream:
        if outcome.failed:
            found = outcome
    wall = wall_clock.perf_counter() - progress.started
    result = ExploreResult(config, progress.trials, progress.discarded, wall, seed, found)
    if found is None or found.failure is None:
        return result
    shrunk = _shrink(config, found, found.failure, progress, on_progress)
    written = write_found(
        shrunk, runner=runner, loop=loop, seed=found.seed, source=found.scenario, out=Path(out)
    )
    return ExploreResult(
        config, progress.trials, progress.discarded, wall, seed, found, shrunk, written
    )


def _shrink(
    config: ExploreConfig,
    found: TrialOutcome,
    failure: Failure,
    progress: ExploreProgress,
    on_progress: Callable[[ExploreProgress], None] | None,
) -> Shrunk:
    def step(steps: int, runs: int) -> None:
        progress.shrink_steps, progress.shrink_runs = steps, runs
        if on_progress is not None:
            on_progress(progress)

    _, document = trial_document(config, found.seed)
    return shrink(config, document, failure, source=found.scenario, on_step=step)
