"""Turning a probe's answers, or its function's return, into its result.

:class:`Completion` finishes probes for one run: a declarative probe's
:meth:`~swaysim.Probe.finalize` over the answers the run collected, a
function probe run whole (in a worker thread through the blocking bridge
when it is synchronous). Whatever a probe raises becomes its ERROR result;
no probe's failure reaches another. Each result is published to the
:class:`~swaysim.ProbeContext` (for probes that depend on it), traced, and
reported to ``on_progress``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import anyio

from swaysim._backend.attribution import attribute
from swaysim._bridge.bridge import run_sync_probe
from swaysim._runner.planning import error_result
from swaysim._runner.probes import FunctionProbe, Probe
from swaysim._runner.requests import Answers
from swaysim._runner.results import ProbeResult, Verdict, error_evidence
from swaysim.errors import SwaysimError, WorkFailedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim._runner.execution import Execution
    from swaysim._runner.planning import ProbeState
    from swaysim._runner.probes import AsyncProbeFunction, ProbeContext, SyncProbeFunction
    from swaysim._runner.requests import Ask, ViewRef

__all__ = ["Completion"]


class Completion:
    """Finishes the probes of one run and counts them for ``on_progress(result, done, total)``."""

    def __init__(
        self,
        execution: Execution,
        ctx: ProbeContext,
        *,
        total: int,
        on_progress: Callable[[ProbeResult, int, int], object] | None,
    ) -> None:
        self.execution = execution
        self.ctx = ctx
        self.total = total
        self.completed = 0
        self.on_progress = on_progress

    def __repr__(self) -> str:
        return f"<Completion {self.completed}/{self.total}>"

    def finish(self, state: ProbeState, result: ProbeResult) -> None:
        """Record ``result`` as ``state``'s: published, traced and reported."""
        state.result = result
        self.ctx.results[state.probe.name] = result
        self.completed += 1
        # The result's duration rides on probe_end: viewers draw the probe from its
        # probe_start for exactly that long, so the trace and the results agree.
        self.execution.emit(
            "probe_end",
            probe=state.probe.name,
            probe_kind=state.probe.kind,
            verdict=result.verdict.value,
            duration=result.duration,
        )
        if self.on_progress is not None:
            self.on_progress(result, self.completed, self.total)

    def finalize(self, state: ProbeState) -> None:
        """A declarative probe's result from its answers (its requests are all done)."""
        probe = state.probe
        assert isinstance(probe, Probe)
        duration = 0.0
        if state.first_start is not None and state.last_end is not None:
            duration = state.last_end - state.first_start
        if state.early is not None:
            result = state.early
        elif state.timed_out:
            budget = self.execution.policy.probe_timeout
            result = probe.result(
                Verdict.ERROR,
                message=f"probe timed out after {budget} s (probe_timeout)",
                evidence={"timeout": "probe", "seconds": budget},
            )
        else:
            result = _finalized(probe, state, self.ctx)
        self.finish(state, replace(result, duration=duration))

    async def run_function(self, state: ProbeState) -> None:
        """Run a function probe whole, under ``probe_timeout``."""
        probe = state.probe
        assert isinstance(probe, FunctionProbe)
        execution = self.execution
        budget = execution.policy.probe_timeout
        start = anyio.current_time()
        state.first_start = start
        execution.emit("probe_start", probe=probe.name, probe_kind=probe.kind)
        # move_on_after, not fail_after: a TimeoutError the function raises
        # itself (an op timeout) is the function's error, not the probe budget.
        try:
            with (
                anyio.CancelScope(
                    deadline=start + (math.inf if budget is None else budget)
                ) as scope,
                attribute(probe.name),  # the function's own calls are made for it
            ):
                raw = await self._call_function(probe)
            if scope.cancelled_caught:
                execution.timeouts += 1
                execution.emit("timeout", probe=probe.name, op="probe", seconds=budget)
                result = ProbeResult(
                    probe.name,
                    probe.kind,
                    Verdict.ERROR,
                    message=f"probe timed out after {budget} s (probe_timeout)",
                    evidence={"timeout": "probe", "seconds": budget},
                    duration=anyio.current_time() - start,
                )
            else:
                result = probe.finish(raw, anyio.current_time() - start)
        except Exception as exc:
            result = ProbeResult(
                probe.name,
                probe.kind,
                Verdict.ERROR,
                message=f"probe raised {type(exc).__name__}: {exc}",
                evidence=error_evidence(exc),
                duration=anyio.current_time() - start,
            )
        state.last_end = anyio.current_time()
        self.finish(state, result)

    async def _call_function(self, probe: FunctionProbe) -> ProbeResult:
        execution, ctx = self.execution, self.ctx
        if probe.is_async:
            return await cast("AsyncProbeFunction", probe.func)(execution.backend, ctx)
        return await run_sync_probe(
            execution.backend,
            cast("SyncProbeFunction", probe.func),
            ctx,
            op_timeout=execution.policy.op_timeout,
        )


def _finalized(probe: Probe, state: ProbeState, ctx: ProbeContext) -> ProbeResult:
    """``probe.finalize`` over the state's answers; what it raises becomes the ERROR result."""
    values: dict[tuple[ViewRef, Ask], object] = {}
    failures: dict[tuple[ViewRef, Ask], WorkFailedError] = {}
    for key, work in state.works.items():
        if work.failure is not None:
            failures[key] = work.failure
        else:
            values[key] = work.value
    try:
        return probe.finalize(Answers(values, failures), ctx)
    except WorkFailedError as exc:
        return error_result(probe, str(exc), exc.cause)
    except SwaysimError as exc:
        return error_result(probe, str(exc), exc)
    except Exception as exc:
        return error_result(probe, f"probe raised {type(exc).__name__}: {exc}", exc)
