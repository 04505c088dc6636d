"""Checking a scenario: run it on each loop asked for, then evaluate its expectations.

:func:`check_scenario` decides which runs a check needs (the loops asked for,
plus the other loop when ``identical_across_loops`` needs a reference), shares
untraced runs through a cache, and pairs each run with its outcomes in a
:class:`ScenarioCheck`, which also says how to replay it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swaysim._scenario.expect import evaluate
from swaysim._scenario.run import probe_row, run_scenario
from swaysim._time.clock import LOOPS

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping, Sequence

    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.expect import Outcome
    from swaysim._scenario.load import Scenario
    from swaysim._scenario.run import ScenarioRun
    from swaysim._trace.events import TraceSink

__all__ = ["RunKey", "ScenarioCheck", "check_scenario"]

RunKey = tuple[str, str, int | None, int | None]
"""A shared run: scenario source, loop, seed override and jitter override."""


@dataclass(frozen=True, slots=True)
class ScenarioCheck:
    """A scenario run on one loop, and its expectations checked."""

    run: ScenarioRun
    outcomes: tuple[Outcome, ...]

    @property
    def scenario(self) -> Scenario:
        """The scenario."""
        return self.run.scenario

    @property
    def loop(self) -> str:
        """The event loop it ran on."""
        return self.run.loop

    @property
    def ok(self) -> bool:
        """Whether every expectation holds."""
        return not any(o.failed for o in self.outcomes)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """The expectations that do not hold."""
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def replay(self) -> str:
        """The command that replays exactly this run (its seed and jitter seed)."""
        return self.scenario.replay_command(
            self.loop, self.run.seed, schedule_jitter=self.run.schedule_jitter
        )

    def failure_report(self) -> str:
        """Every failed expectation (expected vs observed), the seed and the replay command."""
        jitter = self.run.schedule_jitter
        lines = [
            f"scenario {self.scenario.name!r} ({self.scenario.source}) failed on {self.loop}:",
            *(f"  {o.line()}" for o in self.failures),
            f"  seed: {self.run.seed}",
            *([f"  schedule_jitter: {jitter}"] if jitter is not None else []),
            f"  replay: {self.replay}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary of the run and every outcome."""
        run = self.run
        return {
            "file": self.scenario.source,
            "name": self.scenario.name,
            "description": self.scenario.description,
            "loop": self.loop,
            "seed": run.seed,
            "schedule_jitter": run.schedule_jitter,
            "ok": self.ok,
            "virtual_seconds": run.makespan,
            "wall_seconds": run.wall_seconds,
            "cancelled": run.cancelled,
            "aborted": run.aborted,
            "error": run.error,
            "replay": self.replay,
            "verdicts": dict(Counter(r.verdict.value for r in run.results)),
            "expectations": [o.to_dict() for o in self.outcomes],
            "probes": [probe_row(r) for r in run.results],
        }

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.failures)} failed"
        return f"<ScenarioCheck {self.scenario.name!r} on {self.loop}: {state}>"


def _other_loop(loop: str) -> str:
    return "trio" if loop == "asyncio" else "asyncio"


def check_scenario(
    scenario: Scenario,
    loops: Sequence[str] = LOOPS,
    *,
    seed: int | None = None,
    trace_for: Callable[[str], TraceSink | None] | None = None,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    cache: MutableMapping[RunKey, ScenarioRun] | None = None,
    schedule_jitter: int | None = None,
) -> list[ScenarioCheck]:
    """Run ``scenario`` on each of ``loops`` and check its expectations.

    When ``identical_across_loops`` is expected and only one loop is asked
    for, the other loop runs too (untraced) as the reference, so every check
    stands on its own (one pytest item per loop works under xdist). With a
    ``cache`` (keyed by source, loop, seed and jitter seed), untraced runs
    are shared between calls: the pytest item for trio reuses the asyncio
    item's reference run instead of running it again. ``schedule_jitter``
    overrides the scenario's ``[backend] schedule_jitter``.
    """

    def obtain(
        loop: str,
        trace: TraceSink | None = None,
        progress: Callable[[ProbeResult, int, int], object] | None = None,
    ) -> ScenarioRun:
        key = (scenario.source, loop, seed, schedule_jitter)
        shared = cache if trace is None and progress is None else None
        if shared is not None and key in shared:
            return shared[key]
        found = run_scenario(
            scenario,
            loop,
            seed=seed,
            trace=trace,
            on_progress=progress,
            schedule_jitter=schedule_jitter,
        )
        if shared is not None:
            shared[key] = found
        return found

    runs: dict[str, ScenarioRun] = {}
    for loop in loops:
        trace = trace_for(loop) if trace_for is not None else None
        runs[loop] = obtain(loop, trace, on_progress)
    references = dict(runs)
    if scenario.spec.expect.identical_across_loops is not None:
        for loop in loops:
            other = _other_loop(loop)
            if other not in references:
                references[other] = obtain(other)
    return [
        ScenarioCheck(runs[loop], tuple(evaluate(runs[loop], references.get(_other_loop(loop)))))
        for loop in loops
    ]
