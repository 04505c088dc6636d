"""Checking a scenario: run it on each loop asked for, then evaluate its expectations.

:func:`check_scenario` decides which runs a check needs (the loops asked for;
the other loop when ``identical_across_loops`` needs it; the reference
runner's fault-free run when ``matches_reference`` does), shares untraced
runs through a cache, and pairs each run with its outcomes in a
:class:`ScenarioCheck`, which also says how to replay it. A scenario whose
``[runner] reference_only`` excludes the runner under test is not run: its
check is *skipped*, with the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from swaysim._scenario.expect import evaluate
from swaysim._scenario.run import (
    probe_row,
    results_document,
    run_reference,
    run_scenario,
    skip_reason,
)
from swaysim._scenario.under_test import resolve_runner
from swaysim._time.clock import LOOPS
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping, Sequence

    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.expect import Outcome
    from swaysim._scenario.load import Scenario
    from swaysim._scenario.run import ScenarioRun
    from swaysim._scenario.under_test import RunnerUnderTest
    from swaysim._trace.events import TraceSink

__all__ = ["RESULTS_VERSION", "RunKey", "ScenarioCheck", "check_scenario"]

RESULTS_VERSION: Final = 2
"""``results.json`` version: 2 adds the question, the expectations and the replay command."""

RunKey = tuple[str, str, int | None, int | None, str]
"""A shared run: scenario source, loop, seed override, jitter override and which runner."""
_FAULT_FREE: Final = "reference, fault-free"


@dataclass(frozen=True, slots=True)
class ScenarioCheck:
    """A scenario run on one loop and its expectations checked, or skipped for this runner."""

    scenario: Scenario
    loop: str
    ran: ScenarioRun | None
    """The run; None when the scenario was skipped for the runner under test."""
    outcomes: tuple[Outcome, ...] = ()
    skipped: str | None = None
    """Why the scenario was not run for this runner (``[runner] reference_only``)."""
    runner: str = ""
    """The runner under test, as messages name it."""
    runner_spec: str | None = None
    """The runner under test as the user named it (part of the replay command)."""

    @property
    def run(self) -> ScenarioRun:
        """The run (a skipped check has none: check :attr:`skipped` first)."""
        if self.ran is None:
            raise InvalidArgumentError(
                f"scenario {self.scenario.name!r} was not run on {self.loop}: {self.skipped}",
                field="run",
                value=None,
            )
        return self.ran

    @property
    def ok(self) -> bool:
        """Whether every invariant and expectation holds (a skipped check is ok)."""
        return not any(o.failed for o in self.outcomes)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """The outcomes that fail the scenario: broken, or not checked and not optional."""
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def replay(self) -> str:
        """The command that replays exactly this run (its seed, jitter seed and runner)."""
        ran = self.ran
        command = self.scenario.replay_command(
            self.loop,
            ran.seed if ran is not None else None,
            schedule_jitter=ran.schedule_jitter if ran is not None else None,
        )
        if self.runner_spec is not None:
            return f"{command} --runner {self.runner_spec}"
        if self.runner and ran is not None and not ran.configured:
            return f"{command} --runner <{self.runner}>"
        return command

    def failure_report(self) -> str:
        """Every failed outcome (expected vs observed), the seed and the replay command."""
        run = self.run
        jitter = run.schedule_jitter
        lines = [
            f"scenario {self.scenario.name!r} ({self.scenario.source}) failed on {self.loop}:",
            *(f"  {o.line()}" for o in self.failures),
            *([] if run.configured else [f"  runner: {run.runner}"]),
            f"  seed: {run.seed}",
            *([f"  schedule_jitter: {jitter}"] if jitter is not None else []),
            f"  replay: {self.replay}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary of the run and every outcome (``status`` ``"skipped"`` if skipped)."""
        head: dict[str, object] = {
            "file": self.scenario.source,
            "name": self.scenario.name,
            "description": self.scenario.description,
            "loop": self.loop,
            "runner": self.ran.runner if self.ran is not None else self.runner,
        }
        run = self.ran
        if run is None:
            return {**head, "status": "skipped", "ok": True, "skipped": self.skipped}
        return {
            **head,
            "status": "ok" if self.ok else "failed",
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
            "invariants": [v.key for v in run.violations] or "all held",
            "expectations": [o.to_dict() for o in self.outcomes],
            "probes": [probe_row(r) for r in run.results],
        }

    def results_document(self) -> dict[str, object]:
        """``results.json`` of the run directory ``swaysim run --trace`` writes (version 2).

        Version 1's keys (scenario, loop, seed, probes, statistics, makespan), plus
        the scenario's file and question, whether every expectation held, each
        expectation (key, expected, observed, status), the jitter seed and the replay
        command: what the HTML report needs to say what happened and whether it held.
        """
        return {
            "version": RESULTS_VERSION,
            **results_document(self.run),
            "file": self.scenario.source,
            "description": self.scenario.description,
            "ok": self.ok,
            "schedule_jitter": self.run.schedule_jitter,
            "replay": self.replay,
            "expectations": [o.to_dict() for o in self.outcomes],
        }

    def __repr__(self) -> str:
        if self.ran is None:
            return f"<ScenarioCheck {self.scenario.name!r} on {self.loop}: skipped>"
        state = "ok" if self.ok else f"{len(self.failures)} failed"
        return f"<ScenarioCheck {self.scenario.name!r} on {self.loop}: {state}>"


def _other_loop(loop: str) -> str:
    return "trio" if loop == "asyncio" else "asyncio"


def _runner_key(runner: RunnerUnderTest) -> str:
    return "reference" if runner.reference else f"{runner.label}@{id(runner.function)}"


def _needs(scenario: Scenario, key: str) -> bool:
    expect = scenario.spec.expect
    stated = getattr(expect, key) is not None
    reference = expect.reference
    return stated or (reference is not None and getattr(reference, key) is not None)


def _is_fault_free_reference(run: ScenarioRun) -> bool:
    """Whether ``run`` is itself what :func:`run_reference` would produce."""
    spec = run.scenario.spec
    return (
        run.runner == resolve_runner(None).label
        and run.schedule_jitter is None
        and spec.runner.runner is None
        and spec.runner.mode == "pooled"
        and spec.runner.cancel_after is None
        and not (spec.backend.faults is not None and spec.backend.faults.rules)
    )


@dataclass(slots=True)
class _Runs:
    """The runs one check needs, shared through ``cache`` when untraced."""

    scenario: Scenario
    runner: RunnerUnderTest
    seed: int | None
    schedule_jitter: int | None
    cache: MutableMapping[RunKey, ScenarioRun] | None

    def under_test(
        self,
        loop: str,
        trace: TraceSink | None = None,
        progress: Callable[[ProbeResult, int, int], object] | None = None,
    ) -> ScenarioRun:
        """The runner under test on ``loop`` (traced or reporting progress: never shared)."""
        key = (
            self.scenario.source,
            loop,
            self.seed,
            self.schedule_jitter,
            _runner_key(self.runner),
        )
        shared = self.cache if trace is None and progress is None else None
        if shared is not None and key in shared:
            return shared[key]
        found = run_scenario(
            self.scenario,
            loop,
            seed=self.seed,
            trace=trace,
            on_progress=progress,
            schedule_jitter=self.schedule_jitter,
            runner=self.runner,
        )
        if shared is not None:
            shared[key] = found
        return found

    def fault_free(self, loop: str, run: ScenarioRun) -> ScenarioRun:
        """The reference runner's fault-free run on ``loop`` (``run`` itself when it is one)."""
        if _is_fault_free_reference(run):
            return run
        key = (self.scenario.source, loop, self.seed, None, _FAULT_FREE)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        found = run_reference(self.scenario, loop, seed=self.seed)
        if self.cache is not None:
            self.cache[key] = found
        return found


def check_scenario(
    scenario: Scenario,
    loops: Sequence[str] = LOOPS,
    *,
    seed: int | None = None,
    trace_for: Callable[[str], TraceSink | None] | None = None,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    cache: MutableMapping[RunKey, ScenarioRun] | None = None,
    schedule_jitter: int | None = None,
    runner: str | Callable[..., object] | RunnerUnderTest | None = None,
) -> list[ScenarioCheck]:
    """Run ``scenario`` on each of ``loops`` with ``runner`` and check what must hold.

    ``runner`` is the runner under test: a callable ``runner(backend, probes,
    **options)`` (async, or a plain ``def`` run on a worker thread through the
    blocking bridge), a ``"package.module:function"`` or
    ``"path/to/file.py:function"`` spec, or None for the reference runner
    ``run_suite``. The scenario's own ``[runner] runner`` wins; a scenario
    marked ``reference_only`` is skipped for any other runner (each check
    says why).

    When ``identical_across_loops`` is expected and only one loop is asked
    for, the other loop runs too (untraced) as the reference, so every check
    stands on its own (one pytest item per loop works under xdist); likewise
    the reference runner's fault-free run for ``matches_reference``. With a
    ``cache`` (keyed by source, loop, seed, jitter seed and runner), untraced
    runs are shared between calls. ``schedule_jitter`` overrides the
    scenario's ``[backend] schedule_jitter``.
    """
    under_test = resolve_runner(runner)
    label, spec = under_test.label, under_test.spec
    why = skip_reason(scenario, under_test)
    if why is not None:
        return [
            ScenarioCheck(scenario, loop, None, skipped=why, runner=label, runner_spec=spec)
            for loop in loops
        ]
    runs = _Runs(scenario, under_test, seed, schedule_jitter, cache)
    mine = {
        loop: runs.under_test(loop, trace_for(loop) if trace_for else None, on_progress)
        for loop in loops
    }
    others = dict(mine)
    if _needs(scenario, "identical_across_loops"):
        for other in {_other_loop(loop) for loop in loops} - set(others):
            others[other] = runs.under_test(other)
    needs_reference = _needs(scenario, "matches_reference")
    checks = []
    for loop, run in mine.items():
        reference = runs.fault_free(loop, run) if needs_reference else None
        outcomes = tuple(evaluate(run, others.get(_other_loop(loop)), reference))
        checks.append(ScenarioCheck(scenario, loop, run, outcomes, runner=label, runner_spec=spec))
    return checks
