"""The reference concurrent probe runner.

``run_suite`` pools every declarative probe's requests per view, shares equal
requests between probes, and then:

- on an exclusive backend, enters each distinct view exactly once (in a
  canonical order: ft, base, scaled by lam, null by seed) and serves that
  view's requests with up to ``concurrency`` tasks sharing the view. The
  backend is one device, so the runner sends one op at a time (a request
  that waits for the device is not yet in flight); concurrency overlaps
  retries' backoff with other requests' service;
- on a ``safe_for_concurrent_views`` backend, enters every view at once and
  runs requests in parallel, at most ``concurrency`` in flight.

Because equal requests are sent once and every fault and latency draw is a
function of the per-key call index, results (verdicts, scores, z-scores) are
identical whatever the concurrency, the event loop, and the latency.

Timeouts are loop time. ``op_timeout`` bounds one attempt of one request.
``probe_timeout`` bounds a probe's in-flight time: the loop time during
which at least one of its requests is being served or backing off before a
retry. Time spent waiting for the runner to reach a probe's requests (other
probes' work, the device, a view switch) does not count, so one probe's
slow or hung request never times out another. A probe that needs more than
its budget only because its requests are served one at a time may still
pass at a higher concurrency: the budget is wall time, not a sum.

Null calibration happens through dependencies, not declaration order: a
probe that z-scores against a null-adapter probe is finalized after it.
Function probes run after the pooled work on an exclusive backend, one at a
time, so they never collide with the runner's own views.

Cancelling ``run_suite`` (an enclosing cancel scope or timeout) cancels all
its work; every view it entered is released on the way out and the
cancellation propagates: there is no partial ``SuiteResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import anyio

from swaysim._backend.statistics import BackendStatistics
from swaysim._protocols import Observable, PreflightCheckable
from swaysim._runner.completion import Completion
from swaysim._runner.execution import Execution
from swaysim._runner.planning import (
    check_probes,
    dependency_order,
    plan_probes,
    pool,
    request_keys,
)
from swaysim._runner.policy import RunMode, RunPolicy
from swaysim._runner.probes import FunctionProbe, Probe, ProbeContext
from swaysim._runner.requests import ViewRef
from swaysim._runner.results import ProbeResult, Verdict
from swaysim._trace.events import TraceSink
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from swaysim._protocols import DifferentialBackend
    from swaysim._runner.planning import AnyProbe, ProbeState

__all__ = ["PREFLIGHT_NAME", "RunMode", "SuiteResult", "run_suite"]

PREFLIGHT_NAME: Final = "__preflight__"
"""The name of the one ERROR result a suite whose backend failed preflight reports."""


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """Everything a suite run produced.

    ``results`` are in declaration order (or the single ``__preflight__``
    ERROR when preflight failed). ``makespan`` is loop seconds from start to
    finish. When the backend has ``statistics()``, ``view_switches`` is this
    run's share of its switch counter (preflight's included) and
    ``statistics`` its snapshot after the run (cumulative over its life).
    """

    results: tuple[ProbeResult, ...]
    makespan: float
    retries: int
    timeouts: int
    view_switches: int | None
    statistics: BackendStatistics | None
    incidents: tuple[str, ...] = ()
    preflight: tuple[bool, str] | None = None
    seed: int = 0
    concurrency: int = 1
    mode: str = "pooled"
    requests: Mapping[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    """Per declarative probe, the (view id, op, prompt) keys it asked for: what lets a
    scenario check that no PASS rests on an answer an injected fault corrupted."""
    trace_error: str | None = None
    """Why the trace is incomplete (its sink failed: a full disk...), else None. A failing
    trace never fails the run: the results above are whole."""

    @property
    def aborted(self) -> bool:
        """Whether preflight failed and no probe ran."""
        return bool(self.results) and self.results[0].name == PREFLIGHT_NAME

    @property
    def verdicts(self) -> dict[str, Verdict]:
        """Probe name to verdict."""
        return {r.name: r.verdict for r in self.results}

    def result(self, name: str) -> ProbeResult:
        """The result of the probe called ``name``."""
        for result in self.results:
            if result.name == name:
                return result
        raise InvalidArgumentError(
            f"no probe named {name!r} in this suite; probes: {[r.name for r in self.results]}",
            field="name",
            value=name,
        )

    def to_dict(self, *, include_timing: bool = True) -> dict[str, Any]:
        """JSON-ready. ``include_timing=False`` keeps only what must not depend on
        scheduling: identical across loops, concurrency levels and processes."""
        out: dict[str, Any] = {
            "seed": self.seed,
            "aborted": self.aborted,
            "results": [r.to_dict(include_timing=include_timing) for r in self.results],
        }
        if include_timing:
            out.update(
                makespan=self.makespan,
                retries=self.retries,
                timeouts=self.timeouts,
                view_switches=self.view_switches,
                incidents=list(self.incidents),
                concurrency=self.concurrency,
                mode=self.mode,
                statistics=self.statistics.to_dict() if self.statistics else None,
                trace_error=self.trace_error,
            )
        return out


async def run_suite(
    backend: DifferentialBackend,
    probes: Sequence[AnyProbe],
    *,
    concurrency: int = 1,
    op_timeout: float | None = None,
    probe_timeout: float | None = None,
    retries: int = 2,
    backoff: float = 0.1,
    backoff_max: float = 5.0,
    retry_on: Sequence[type[BaseException]] = (),
    preflight: bool = True,
    seed: int = 0,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    mode: RunMode = "pooled",
    trace: TraceSink | None = None,
) -> SuiteResult:
    """Run ``probes`` against ``backend`` and return every result.

    - ``concurrency``: requests in flight at once (tasks sharing a view on an
      exclusive backend; requests across views on a concurrent-safe one).
    - ``op_timeout`` / ``probe_timeout``: loop seconds per op attempt, and per
      probe of in-flight time (see the module docstring). A timed-out probe
      is an ERROR; other probes are unaffected.
    - ``retries``: extra attempts for retryable failures (injected transient
      faults, failed view entries, and any ``retry_on`` type), after
      ``backoff * 2**attempt`` seconds (capped at ``backoff_max``) plus up to
      25 % seeded jitter. Fatal faults are not retried.
    - ``preflight``: call ``preflight_finite_check()`` first when the backend
      has it; on failure the result is one ERROR named ``__preflight__``. The
      check is bounded by ``probe_timeout`` like a probe (a backend that hangs
      there fails it); ``op_timeout`` cannot reach the ops it makes itself.
    - ``mode="naive"``: the baseline, as dlm-sway 0.1.0 runs: probes one at a
      time in declaration order (dependencies first), each entering its own
      views, one request at a time, nothing shared.
    - ``trace``: where runner events go (defaults to the backend's sink). A
      sink that fails (raises, or records a write error as
      :class:`~swaysim.JsonlTraceWriter` does) never fails the run: the
      result's ``trace_error`` says what happened.
    """
    _check_trace(trace)
    policy = RunPolicy(
        concurrency=concurrency,
        op_timeout=op_timeout,
        probe_timeout=probe_timeout,
        retries=retries,
        backoff=backoff,
        backoff_max=backoff_max,
        retry_on=tuple(retry_on),
        preflight=preflight,
        seed=seed,
        mode=mode,
    )
    probes = list(probes)
    check_probes(probes)
    observed = backend if isinstance(backend, Observable) else None
    if trace is None and observed is not None:
        trace = observed.trace_sink
    baseline = _Baseline.take(observed)
    clock = observed.loop_time if observed is not None else baseline.since_start
    execution = Execution(backend, policy, trace=trace, clock=clock)
    ctx = ProbeContext(backend=backend, seed=policy.seed, call=execution.call)
    checked: tuple[bool, str] | None = None
    if policy.preflight and isinstance(backend, PreflightCheckable):
        checked, aborted = await _preflight(backend, execution)
        if aborted is not None:
            return baseline.result(execution, (aborted,), checked, [])
    states = plan_probes(probes, backend, ctx)
    completion = Completion(execution, ctx, total=len(states), on_progress=on_progress)
    if policy.mode == "naive":
        await _run_naive(execution, completion, states)
    else:
        await _run_pooled(execution, completion, states)
    results = tuple(state.result for state in states if state.result is not None)
    return baseline.result(execution, results, checked, states)


@dataclass(frozen=True, slots=True)
class _Baseline:
    """Where a run started (loop time, the backend's counters), to report the run's share."""

    started: float
    observed: Observable | None
    statistics: BackendStatistics | None

    @classmethod
    def take(cls, observed: Observable | None) -> _Baseline:
        started = anyio.current_time()
        return cls(started, observed, observed.statistics() if observed is not None else None)

    def since_start(self) -> float:
        """Loop seconds since the run started: the trace clock of a backend without one."""
        return anyio.current_time() - self.started

    def result(
        self,
        execution: Execution,
        results: tuple[ProbeResult, ...],
        checked: tuple[bool, str] | None,
        states: Sequence[ProbeState],
    ) -> SuiteResult:
        """The run's :class:`SuiteResult`, its counters measured against the baseline."""
        after = self.observed.statistics() if self.observed is not None else None
        switches = None
        if isinstance(self.statistics, BackendStatistics) and isinstance(after, BackendStatistics):
            switches = after.switches - self.statistics.switches
        policy = execution.policy
        return SuiteResult(
            results=results,
            makespan=anyio.current_time() - self.started,
            retries=execution.retried,
            timeouts=execution.timeouts,
            view_switches=switches,
            statistics=after if isinstance(after, BackendStatistics) else None,
            incidents=tuple(execution.incidents),
            preflight=checked,
            seed=policy.seed,
            concurrency=policy.concurrency,
            mode=policy.mode,
            requests={state.probe.name: request_keys(state) for state in states},
            trace_error=_trace_error(execution, self.observed),
        )


def _check_trace(trace: object) -> None:
    if trace is not None and not isinstance(trace, TraceSink):
        raise InvalidArgumentError(
            f"trace={trace!r} must be a trace sink (an object with an emit(event) method) or None",
            field="trace",
            value=trace,
        )


def _trace_error(execution: Execution, observed: Observable | None) -> str | None:
    """What stopped the trace, if anything: a sink that raised (the runner's or the
    backend's), or a sink that kept its own write error (``JsonlTraceWriter.error``)."""
    sink = execution.trace
    candidates = (
        execution.trace_error,
        getattr(observed, "trace_error", None),
        getattr(sink, "error", None),
        getattr(getattr(observed, "trace_sink", None), "error", None),
    )
    for error in candidates:
        if isinstance(error, BaseException):
            return f"{type(error).__name__}: {error}"
    return None


async def _preflight(
    backend: PreflightCheckable, execution: Execution
) -> tuple[tuple[bool, str], ProbeResult | None]:
    """The backend's finite check, bounded by ``probe_timeout``; the ERROR result if it failed."""
    budget = execution.policy.probe_timeout
    start = anyio.current_time()
    checked = (False, f"preflight timed out after {budget} s (probe_timeout)")
    with anyio.move_on_after(budget) as scope:
        checked = await backend.preflight_finite_check()
    if scope.cancelled_caught:
        execution.timeouts += 1
    if checked[0]:
        return checked, None
    why = checked[1]
    return checked, ProbeResult(
        PREFLIGHT_NAME,
        "preflight",
        Verdict.ERROR,
        message=f"backend preflight failed; suite aborted before any probe ran. {why}",
        evidence={"preflight_reason": why},
        duration=anyio.current_time() - start,
    )


async def _run_pooled(
    execution: Execution, completion: Completion, states: list[ProbeState]
) -> None:
    """Pooled work per view in canonical view order; probes finish as their dependencies allow."""
    safe = bool(execution.backend.safe_for_concurrent_views)
    concurrency = execution.policy.concurrency
    per_view = pool((s for s in states if isinstance(s.probe, Probe)), share=True)
    views = sorted(per_view, key=ViewRef.sort_key)
    if not safe:
        execution.device = anyio.Lock()
    pooled_done = anyio.Event()
    function_slots = anyio.CapacityLimiter(concurrency if safe else 1)

    async def complete(state: ProbeState) -> None:
        for dep in state.deps:
            assert dep.done is not None
            await dep.done.wait()
        if isinstance(state.probe, FunctionProbe):
            if not safe:
                await pooled_done.wait()
            async with function_slots:
                await completion.run_function(state)
        else:
            await pooled_done.wait()
            completion.finalize(state)
        assert state.done is not None
        state.done.set()

    async with anyio.create_task_group() as group:
        for state in states:
            group.start_soon(complete, state, name=f"swaysim-probe-{state.probe.name}")
        if safe:
            limiter = anyio.CapacityLimiter(concurrency)
            async with anyio.create_task_group() as views_group:
                for view in views:
                    views_group.start_soon(
                        execution.serve_limited,
                        view,
                        per_view[view],
                        limiter,
                        name=f"view-{view.label}",
                    )
        else:
            for view in views:
                await execution.run_view(view, per_view[view], concurrency)
        pooled_done.set()


async def _run_naive(
    execution: Execution, completion: Completion, states: list[ProbeState]
) -> None:
    """dlm-sway 0.1.0's order: one probe at a time, its own views, one request at a time."""
    by_probe = {id(state.probe): state for state in states}
    for probe in dependency_order([state.probe for state in states]):
        state = by_probe[id(probe)]
        if isinstance(probe, FunctionProbe):
            await completion.run_function(state)
            continue
        for view, works in pool([state], share=False).items():
            await execution.run_view(view, works, 1)
        completion.finalize(state)
