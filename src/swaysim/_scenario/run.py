"""Running a scenario once, on one event loop, and recording what it did.

:func:`run_scenario` builds a fresh backend and probe suite from a
:class:`~swaysim._scenario.load.Scenario`, runs the suite (``run_suite`` or
the scenario's own runner) on a virtual clock, and keeps in a
:class:`ScenarioRun` everything an expectation may assert on: the results,
the runner's counters, the backend's statistics and fault log, whether the
gate ended free. Checking those expectations is
:mod:`swaysim._scenario.expect`'s job.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from swaysim._runner.results import ProbeResult
from swaysim._runner.suite import PREFLIGHT_NAME, SuiteResult, run_suite
from swaysim._scenario.schema import MAX_SECONDS
from swaysim._time.clock import run as run_on_loop

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._backend.statistics import BackendStatistics
    from swaysim._chaos.faults import FaultFiring
    from swaysim._runner.probes import Probe
    from swaysim._scenario.load import Scenario
    from swaysim._trace.events import TraceSink

__all__ = [
    "STALL_SECONDS",
    "RequestKey",
    "ScenarioRun",
    "probe_row",
    "results_document",
    "run_scenario",
]

RequestKey = tuple[str, str, str]
"""A request a probe made: view id, op and prompt."""
STALL_SECONDS: Final = 10 * MAX_SECONDS
"""A run still going after this many virtual seconds is stopped as stalled.

The clock jumps whenever every task waits, so only a wait that nothing ends
(a ``hang`` fault with no timeout to cut it off) gets this far, in a few wall
milliseconds, instead of hanging the process."""


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """What one run of a scenario on one event loop produced and counted."""

    scenario: Scenario
    loop: str
    seed: int
    results: tuple[ProbeResult, ...]
    suite: SuiteResult | None
    statistics: BackendStatistics
    fault_log: tuple[FaultFiring, ...]
    gate_free: bool
    cancelled: bool
    makespan: float
    """Virtual seconds from start to finish (or to cancellation)."""
    wall_seconds: float
    view_switches: int
    """This run's switches, preflight included."""
    retries: int | None
    """None when a custom runner returned plain results (no counter to read)."""
    timeouts: int | None
    requests: Mapping[str, tuple[RequestKey, ...]] | None
    error: str | None
    """Why the runner did not complete (it raised, or it stalled), else None."""
    schedule_jitter: int | None = None
    """The backend's chaos-scheduling seed, if any (part of the replay command)."""
    stalled: bool = False
    """Whether the run was stopped after :data:`STALL_SECONDS` with every task waiting."""

    @property
    def aborted(self) -> bool:
        """Whether preflight aborted the suite."""
        return any(r.name == PREFLIGHT_NAME for r in self.results)

    @property
    def fingerprint(self) -> str:
        """Results without timing: what must be identical on every loop."""
        document: object
        if self.suite is not None:
            document = self.suite.to_dict(include_timing=False)
        else:
            document = {
                "results": sorted(
                    (r.to_dict(include_timing=False) for r in self.results),
                    key=lambda d: str(d["name"]),
                ),
                "cancelled": self.cancelled,
                "error": self.error,
            }
        return json.dumps(document, sort_keys=True, default=str)

    def __repr__(self) -> str:
        state = "error" if self.error else "done"
        if self.cancelled or self.stalled:
            state = "cancelled" if self.cancelled else "stalled"
        return (
            f"<ScenarioRun {self.scenario.name!r} on {self.loop}, seed {self.seed}: {state}, "
            f"{len(self.results)} results, {self.makespan:.3f} virtual s, "
            f"{self.wall_seconds:.3f} wall s>"
        )


# -- running ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    """How the suite ended on the loop: its results, and whether it was cut short."""

    suite: SuiteResult | None = None
    results: tuple[ProbeResult, ...] = ()
    cancelled: bool = False
    stalled: bool = False
    makespan: float = 0.0
    error: str | None = None


def _coerce_results(value: object) -> tuple[SuiteResult | None, tuple[ProbeResult, ...]]:
    if isinstance(value, SuiteResult):
        return value, value.results
    if isinstance(value, list | tuple) and all(isinstance(r, ProbeResult) for r in value):
        return None, tuple(value)
    raise TypeError(
        f"the runner returned {type(value).__name__}; it must return a SuiteResult "
        "or a sequence of ProbeResult"
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One run's fresh backend and probes, and how to drive them on the loop."""

    scenario: Scenario
    backend: AsyncDummyDifferentialBackend
    probes: list[Probe]
    options: dict[str, Any]
    """Keyword arguments for ``run_suite`` or the custom runner."""
    progress: Callable[[ProbeResult, int, int], None]
    runner: Callable[..., object] | None
    """The scenario's own runner, imported; None for ``run_suite``."""

    async def suite(self) -> tuple[SuiteResult | None, tuple[ProbeResult, ...]]:
        """The suite through ``run_suite``, or through the scenario's own runner."""
        runner = self.runner
        if runner is None:
            suite = await run_suite(
                self.backend, self.probes, on_progress=self.progress, **self.options
            )
            return suite, suite.results
        outcome = runner(self.backend, self.probes, **self.options)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return _coerce_results(outcome)

    @property
    def task_name(self) -> str:
        """``runner``, or ``runner module:function`` for a custom one."""
        custom = self.scenario.spec.runner.runner
        return "runner" if custom is None else f"runner {custom}"

    async def _suite_into(self, session: _Session) -> None:
        try:
            session.suite, session.results = await self.suite()
        except Exception as exc:
            session.error = f"{type(exc).__name__}: {exc}"

    async def session(self) -> _Session:
        """The suite under ``cancel_after`` and the stall guard; never raises."""
        session = _Session()
        start = anyio.current_time()
        cancel_after = self.scenario.spec.runner.cancel_after
        scope = anyio.move_on_after(cancel_after) if cancel_after is not None else nullcontext()
        with anyio.move_on_after(STALL_SECONDS) as stall, scope:
            # In a task of its own, so traces name it after its job, not this method.
            async with anyio.create_task_group() as group:
                group.start_soon(self._suite_into, session, name=self.task_name)
        session.cancelled = isinstance(scope, anyio.CancelScope) and scope.cancelled_caught
        session.stalled = stall.cancelled_caught
        if session.stalled:
            session.error = (
                f"still waiting after {STALL_SECONDS:g} virtual seconds, with nothing left "
                "to wake it (a hang that no op_timeout, probe_timeout or cancel_after cuts off?)"
            )
        session.makespan = anyio.current_time() - start
        return session


def run_scenario(
    scenario: Scenario,
    loop: str,
    *,
    seed: int | None = None,
    trace: TraceSink | None = None,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    schedule_jitter: int | None = None,
) -> ScenarioRun:
    """Run ``scenario`` once on ``loop`` ("asyncio" or "trio") on a virtual clock.

    ``schedule_jitter`` overrides the scenario's ``[backend] schedule_jitter``.
    A custom runner is imported here (:meth:`Scenario.load_runner`); a
    :class:`~swaysim.errors.ScenarioError` says why it cannot be, before anything runs.
    """
    seed = scenario.seed if seed is None else seed
    backend = scenario.build_backend(seed, trace=trace, schedule_jitter=schedule_jitter)
    collected: list[ProbeResult] = []

    def progress(result: ProbeResult, done: int, total: int) -> None:
        collected.append(result)
        if on_progress is not None:
            on_progress(result, done, total)

    runner = scenario.load_runner()
    attempt = _Attempt(
        scenario, backend, scenario.build_probes(), scenario.runner_options(seed), progress, runner
    )
    wall = time.perf_counter()
    session = run_on_loop(attempt.session, backend=loop)
    wall_seconds = time.perf_counter() - wall
    suite, cut_short = session.suite, session.cancelled or session.stalled
    statistics = backend.statistics()
    return ScenarioRun(
        scenario=scenario,
        loop=loop,
        seed=seed,
        results=tuple(collected) if cut_short else session.results,
        suite=suite,
        statistics=statistics,
        fault_log=backend.fault_log,
        gate_free=backend.is_free() and statistics.live_views == 0 and statistics.waiting == 0,
        cancelled=session.cancelled,
        makespan=suite.makespan if suite is not None else session.makespan,
        wall_seconds=wall_seconds,
        view_switches=statistics.switches,
        retries=suite.retries if suite is not None else None,
        timeouts=suite.timeouts if suite is not None else None,
        requests=suite.requests if suite is not None and not session.cancelled else None,
        error=session.error,
        schedule_jitter=backend.schedule_jitter,
        stalled=session.stalled,
    )


# -- documents --------------------------------------------------------------------------


def _finite_or_text(value: float | None) -> float | str | None:
    """A number for JSON: non-finite values as text (``"inf"``), which JSON cannot hold."""
    if value is None:
        return None
    return float(value) if math.isfinite(value) else repr(float(value))


def probe_row(result: ProbeResult) -> dict[str, object]:
    """One probe result as a JSON-ready row."""
    return {
        "name": result.name,
        "kind": result.kind,
        "verdict": result.verdict.value,
        "score": _finite_or_text(result.score),
        "raw": _finite_or_text(result.raw),
        "z": _finite_or_text(result.z),
        "message": result.message,
        "duration": result.duration,
    }


def results_document(run: ScenarioRun) -> dict[str, object]:
    """``results.json`` of a run directory (what ``swaysim report`` reads)."""
    return {
        "scenario": run.scenario.name,
        "loop": run.loop,
        "seed": run.seed,
        "probes": [probe_row(r) for r in run.results],
        "statistics": run.statistics.to_dict(),
        "makespan": run.makespan,
    }
