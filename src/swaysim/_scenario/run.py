"""Running a scenario once, on one event loop, and recording what it did.

:func:`run_scenario` builds a fresh backend and probe suite from a
:class:`~swaysim._scenario.load.Scenario`, picks the runner (the scenario's
own ``[runner] runner`` if it names one, else the runner under test, else
``run_suite``), drives it through the :class:`~swaysim._scenario.harness.Harness`
on a virtual clock, and keeps in a :class:`ScenarioRun` everything an
expectation may assert on: the results, what the backend observed (its
statistics, fault log and call ledger), the invariants the runner broke, the
probes' declared requests. Checking expectations is
:mod:`swaysim._scenario.expect`'s job.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from swaysim._runner.suite import PREFLIGHT_NAME
from swaysim._scenario.build import build_backend
from swaysim._scenario.harness import STALL_SECONDS, Harness, coerce_results, declared_requests
from swaysim._scenario.under_test import REFERENCE, RUNNER_OPTIONS, RunnerUnderTest, resolve_runner
from swaysim._time.clock import run as run_on_loop

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._backend.ledger import CallLedger
    from swaysim._backend.statistics import BackendStatistics
    from swaysim._chaos.faults import FaultFiring
    from swaysim._runner.planning import AnyProbe
    from swaysim._runner.results import ProbeResult
    from swaysim._runner.suite import SuiteResult
    from swaysim._scenario.harness import Declared, Session, Violation
    from swaysim._scenario.load import Scenario
    from swaysim._trace.events import TraceSink

__all__ = [
    "STALL_SECONDS",
    "ScenarioRun",
    "probe_row",
    "results_document",
    "run_reference",
    "run_scenario",
    "skip_reason",
]

_SUITE_KEYS: Final = (*(key for key in RUNNER_OPTIONS if key != "retry_on"), "mode")
"""The ``[runner]`` keys that are ``run_suite`` keyword arguments."""


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """What one run of a scenario on one event loop produced and what the backend observed."""

    scenario: Scenario
    loop: str
    seed: int
    results: tuple[ProbeResult, ...]
    suite: SuiteResult | None
    """The runner's own SuiteResult, when it returned one."""
    statistics: BackendStatistics
    """The backend's counters the moment the runner returned."""
    fault_log: tuple[FaultFiring, ...]
    gate_free: bool
    """No view live and nobody waiting the moment the runner returned."""
    cancelled: bool
    makespan: float
    """Virtual seconds from start to finish (or to cancellation)."""
    wall_seconds: float
    view_switches: int
    """This run's switches, preflight included."""
    retries: int
    """Retries the backend saw (see :mod:`swaysim._backend.ledger`), whatever the runner reports."""
    timeouts: int
    """Ops abandoned by a cancellation that was not the harness's own."""
    error: str | None
    """Why the runner did not complete (it raised, or it stalled), else None."""
    schedule_jitter: int | None = None
    """The backend's chaos-scheduling seed, if any (part of the replay command)."""
    stalled: bool = False
    """Whether the run was stopped after :data:`STALL_SECONDS` with every task waiting."""
    runner: str = REFERENCE.label
    """The runner that ran, as messages name it."""
    runner_spec: str | None = None
    """The runner under test as the user named it (part of the replay command)."""
    configured: bool = True
    """Whether the runner that ran is the one the scenario file configures (its own
    ``runner``, or ``run_suite``): then ``[expect.reference]`` applies too."""
    violations: tuple[Violation, ...] = ()
    ledger: CallLedger | None = None
    declared: Declared | None = None
    """Each declarative probe's requests and dependencies (from a fresh copy of the suite)."""
    options: Mapping[str, Any] | None = None
    """The options the scenario gives its runner (``run_suite``'s names, defaults filled in)."""
    outside_seconds: float = 0.0
    """Of the makespan, the seconds the clock followed real time while work outside the
    loop ran (a synchronous runner's own code on its worker thread): loop time no
    schedule foresees, different each run."""

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
        broken = f", {len(self.violations)} invariant(s) broken" if self.violations else ""
        return (
            f"<ScenarioRun {self.scenario.name!r} on {self.loop}, seed {self.seed}, "
            f"runner {self.runner}: {state}{broken}, {len(self.results)} results, "
            f"{self.makespan:.3f} virtual s, {self.wall_seconds:.3f} wall s>"
        )


# -- which runner, with which options -----------------------------------------------------


def skip_reason(scenario: Scenario, runner: RunnerUnderTest) -> str | None:
    """Why ``scenario`` does not apply to ``runner`` (``[runner] reference_only``), or None."""
    reason = scenario.spec.runner.reference_only
    if reason is None or runner.reference:
        return None
    return f"skipped for this runner, because {reason}"


def suite_options(scenario: Scenario, seed: int) -> dict[str, Any]:
    """``run_suite``'s keyword arguments from ``[runner]``, defaults filled in."""
    spec = scenario.spec.runner
    options = {key: getattr(spec, key) for key in _SUITE_KEYS}
    if spec.seed is None:
        options["seed"] = seed
    return options


def _own_runner(scenario: Scenario) -> RunnerUnderTest | None:
    """The scenario's own ``[runner] runner``, imported now, to run (None: it names none).

    The scenario's trust model decides where it may come from
    (:meth:`~swaysim._scenario.load.Scenario.load_runner`).
    """
    function = scenario.load_runner()
    return None if function is None else RunnerUnderTest(function, None)


@dataclass(frozen=True, slots=True)
class _Choice:
    runner: RunnerUnderTest
    options: dict[str, Any]
    configured: bool


def _choose(scenario: Scenario, runner: RunnerUnderTest, seed: int) -> _Choice:
    own = _own_runner(scenario)
    if own is not None:
        return _Choice(own, scenario.runner_options(seed), configured=True)
    options = suite_options(scenario, seed)
    if runner.reference:
        return _Choice(runner, options, configured=True)
    offered: dict[str, Any] = {key: options[key] for key in RUNNER_OPTIONS if key in options}
    offered["retry_on"] = ()
    return _Choice(runner, runner.accepted(offered), configured=False)


# -- running ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ran:
    """One finished session and what surrounds it."""

    scenario: Scenario
    loop: str
    seed: int
    choice: _Choice
    harness: Harness
    session: Session
    collected: tuple[ProbeResult, ...]
    wall_seconds: float


def _record(ran: _Ran, declared: Declared) -> ScenarioRun:
    session, harness, choice = ran.session, ran.harness, ran.choice
    error: str | None = None
    suite: SuiteResult | None = None
    results: tuple[ProbeResult, ...] = ran.collected
    if session.stalled:
        error = (
            f"still waiting after {STALL_SECONDS:g} virtual seconds, with nothing left "
            "to wake it (a hang that no op_timeout, probe_timeout or cancel_after cuts off?)"
        )
    elif session.error is not None:
        error = f"{type(session.error).__name__}: {session.error}"
    elif not session.cancelled:
        try:
            suite, results = coerce_results(session.value)
        except TypeError as exc:
            error = f"TypeError: {exc}"
    backend, ledger = harness.backend, harness.ledger
    statistics = session.statistics if session.statistics is not None else backend.statistics()
    return ScenarioRun(
        scenario=ran.scenario,
        loop=ran.loop,
        seed=ran.seed,
        results=results,
        suite=suite,
        statistics=statistics,
        fault_log=backend.fault_log,
        gate_free=statistics.live_views == 0 and statistics.waiting == 0,
        cancelled=session.cancelled,
        makespan=session.makespan,
        wall_seconds=ran.wall_seconds,
        view_switches=statistics.switches,
        retries=ledger.retries.count,
        timeouts=ledger.timeouts.count,
        error=error,
        schedule_jitter=backend.schedule_jitter,
        stalled=session.stalled,
        runner=choice.runner.label,
        runner_spec=None if choice.configured else choice.runner.spec,
        configured=choice.configured,
        violations=tuple(session.violations),
        ledger=ledger,
        declared=declared,
        options=suite_options(ran.scenario, ran.seed),
        outside_seconds=session.outside_seconds,
    )


def _drive(
    scenario: Scenario,
    loop: str,
    seed: int,
    backend: AsyncDummyDifferentialBackend,
    choice: _Choice,
    *,
    cancel_after: float | None,
    on_progress: Callable[[ProbeResult, int, int], object] | None,
) -> ScenarioRun:
    collected: list[ProbeResult] = []

    def progress(result: ProbeResult, done: int, total: int) -> None:
        collected.append(result)
        if on_progress is not None:
            on_progress(result, done, total)

    probes: list[AnyProbe] = list(scenario.build_probes())
    harness = Harness(
        choice.runner,
        backend,
        probes,
        choice.options,
        cancel_after=cancel_after,
        op_timeout=scenario.spec.runner.op_timeout,
        progress=progress,
    )
    wall = time.perf_counter()
    session = run_on_loop(harness.session, backend=loop)
    wall_seconds = time.perf_counter() - wall
    ran = _Ran(scenario, loop, seed, choice, harness, session, tuple(collected), wall_seconds)
    return _record(ran, declared_requests(scenario.build_probes(), backend, seed))


def run_scenario(
    scenario: Scenario,
    loop: str,
    *,
    seed: int | None = None,
    trace: TraceSink | None = None,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    schedule_jitter: int | None = None,
    runner: str | Callable[..., object] | RunnerUnderTest | None = None,
) -> ScenarioRun:
    """Run ``scenario`` once on ``loop`` ("asyncio" or "trio") on a virtual clock.

    ``runner`` is the runner under test (a callable, a ``module:function`` or
    ``file.py:function`` spec, or None for ``run_suite``); the scenario's own
    ``[runner] runner`` wins over it. It runs even where ``[runner]
    reference_only`` says the scenario does not apply (see :func:`skip_reason`).
    ``schedule_jitter`` overrides the scenario's ``[backend] schedule_jitter``.
    A scenario's own runner is imported here (:meth:`Scenario.load_runner`); a
    :class:`~swaysim.errors.ScenarioError` says why it cannot be, before anything runs.
    """
    seed = scenario.seed if seed is None else seed
    backend = scenario.build_backend(seed, trace=trace, schedule_jitter=schedule_jitter)
    choice = _choose(scenario, resolve_runner(runner), seed)
    cancel_after = scenario.spec.runner.cancel_after
    return _drive(
        scenario, loop, seed, backend, choice, cancel_after=cancel_after, on_progress=on_progress
    )


def run_reference(scenario: Scenario, loop: str, *, seed: int | None = None) -> ScenarioRun:
    """The reference runner's fault-free run of ``scenario``: what ``matches_reference`` compares.

    The same backend, latency and options without the fault rules and
    ``cancel_after``, run by ``run_suite`` (pooled) whatever the scenario's
    own runner.
    """
    seed = scenario.seed if seed is None else seed
    spec = scenario.spec.backend.model_copy(update={"faults": None})
    backend = build_backend(spec, seed, source=scenario.source)
    options = suite_options(scenario, seed)
    options["mode"] = "pooled"
    choice = _Choice(REFERENCE, options, configured=False)
    return _drive(scenario, loop, seed, backend, choice, cancel_after=None, on_progress=None)


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
