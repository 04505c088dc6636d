"""Serving a suite's requests: views entered, requests sent under the policy, events recorded.

:class:`Execution` is the part of a run that talks to the backend. It enters
views (retrying a transient entry failure), sends pooled work items with
the op timeout, retries and backoff of a :class:`RunPolicy`, charges each
probe's ``probe_timeout`` budget with its in-flight time only, and counts
and traces retries, timeouts and incidents. It never decides what to ask:
that is planning's (:mod:`swaysim._runner.planning`).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

import anyio

from swaysim._trace.events import TraceEvent
from swaysim.errors import InjectedViewExitError, WorkFailedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator

    from swaysim._protocols import DifferentialBackend, ScoringModel
    from swaysim._runner.planning import ProbeState, WorkItem
    from swaysim._runner.policy import RunPolicy
    from swaysim._runner.requests import ViewRef
    from swaysim._trace.events import TraceSink

__all__ = ["Execution"]

NOBODY_WAITS: Final = "every probe needing it timed out"
_P = ParamSpec("_P")
_T = TypeVar("_T")


class Execution:
    """The requests of one suite run, sent to ``backend`` under ``policy``.

    ``clock`` stamps trace events (the backend's own time base when it has
    one, so runner and backend events line up). ``retried``, ``timeouts``
    and ``incidents`` are what the run's :class:`~swaysim.SuiteResult`
    reports. ``device`` is set on an exclusive backend: one op at a time.
    """

    def __init__(
        self,
        backend: DifferentialBackend,
        policy: RunPolicy,
        *,
        trace: TraceSink | None,
        clock: Callable[[], float],
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.trace = trace
        self.trace_error: Exception | None = None
        self.clock = clock
        self.retried = 0
        self.timeouts = 0
        self.incidents: list[str] = []
        self.device: anyio.Lock | None = None

    def __repr__(self) -> str:
        return (
            f"<Execution retried={self.retried} timeouts={self.timeouts} "
            f"incidents={len(self.incidents)} exclusive={self.device is not None}>"
        )

    def emit(
        self,
        kind: str,
        view: str | None = None,
        *,
        op: str | None = None,
        duration: float | None = None,
        **detail: object,
    ) -> None:
        """Trace a runner event (``retry``, ``timeout``, ``probe_start``, ``probe_end``)."""
        if self.trace is None:
            return
        task = anyio.get_current_task()
        try:
            self.trace.emit(
                TraceEvent(
                    kind=kind,
                    time=self.clock(),
                    task=f"{task.name}#{task.id}",
                    view=view,
                    op=op,
                    duration=duration,
                    detail=detail,
                )
            )
        except Exception as exc:  # a failing sink stops the trace, never the run
            self.trace_error = exc
            self.trace = None

    # -- one request -------------------------------------------------------------

    async def attempts(self, work: WorkItem, handle: ScoringModel) -> object:
        """Send ``work``'s request under the retry policy; raise WorkFailedError.

        On an exclusive backend each attempt first takes the runner's device
        slot, so a request never waits behind another one while its op timeout
        or its probes' budgets run: those clocks measure its own service time.
        """
        view, ask, policy = work.view, work.ask, self.policy
        for attempt in range(policy.retries + 1):
            async with self.device if self.device is not None else nullcontext():
                live = self.live_needers(work)
                try:
                    return await self.in_flight(live, work, self.send_once, work, handle, live)
                except WorkFailedError:
                    raise
                except Exception as exc:
                    failure = exc
            if attempt < policy.retries and policy.retryable(failure):
                delay = policy.backoff_delay(f"{view.label}|{ask!r}", attempt)
                self.retried += 1
                self.emit(
                    "retry",
                    view.view_id,
                    op=ask.op,
                    probe=live[0].probe.name,
                    attempt=attempt + 1,
                    delay=delay,
                    error=type(failure).__name__,
                )
                await self.in_flight(live, work, anyio.sleep, delay)
                continue
            raise WorkFailedError(view, ask, failure) from failure
        raise AssertionError("unreachable: the last attempt returns or raises")

    def live_needers(self, work: WorkItem) -> list[ProbeState]:
        """The probes still waiting for ``work``; raise when none is left."""
        live = [p for p in work.needers if not p.timed_out]
        budget = self.policy.probe_timeout
        if budget is not None:
            now = anyio.current_time()
            for probe in live:
                if probe.used(now) >= budget:
                    self.time_out(probe, work.view)
            live = [p for p in live if not p.timed_out]
        if not live:
            raise WorkFailedError(work.view, work.ask, NOBODY_WAITS)
        return live

    def still_wanted(self, works: Iterable[WorkItem]) -> bool:
        """Whether some probe still waits for one of ``works`` (times out those out of budget)."""
        for work in works:
            if work.done:
                continue
            try:
                self.live_needers(work)
            except WorkFailedError:
                continue
            return True
        return False

    def time_out(self, probe: ProbeState, view: ViewRef) -> None:
        """Mark ``probe`` as out of its probe_timeout budget."""
        probe.timed_out = True
        self.timeouts += 1
        self.emit(
            "timeout",
            view.view_id,
            probe=probe.probe.name,
            op="probe",
            seconds=self.policy.probe_timeout,
        )

    async def in_flight(
        self,
        live: list[ProbeState],
        work: WorkItem,
        func: Callable[_P, Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Await ``func(*args)`` as in-flight time of every probe in ``live``.

        A probe's ``probe_timeout`` budget is the loop time during which at
        least one of its requests is in flight (sent or backing off before a
        retry); waiting for the runner to reach its requests does not count,
        so one probe's slow or hung request never eats another's budget. The
        call is cancelled when the last of the budgets runs out, which times
        out every probe whose budget ran out.
        """
        budget = self.policy.probe_timeout
        now = anyio.current_time()
        deadlines: dict[int, float] = {}
        for probe in live:
            if probe.first_start is None:
                probe.first_start = now
                self.emit("probe_start", probe=probe.probe.name, probe_kind=probe.probe.kind)
            if budget is not None:
                deadlines[id(probe)] = now + budget - probe.used(now)
            if not probe.active:
                probe.busy_since = now
            probe.active += 1
        end = now
        with anyio.CancelScope(deadline=max(deadlines.values(), default=math.inf)):
            try:
                return await func(*args, **kwargs)
            finally:
                end = anyio.current_time()
                for probe in live:
                    probe.active -= 1
                    if not probe.active:
                        probe.busy += end - probe.busy_since
                    probe.last_end = end if probe.last_end is None else max(probe.last_end, end)
        for probe in live:
            if deadlines.get(id(probe), math.inf) <= end and not probe.timed_out:
                self.time_out(probe, work.view)
        raise WorkFailedError(
            work.view, work.ask, f"probe timed out after {budget} s (probe_timeout)"
        )

    async def send_once(
        self, work: WorkItem, handle: ScoringModel, live: list[ProbeState]
    ) -> object:
        """One attempt under the op timeout."""
        op_timeout = self.policy.op_timeout
        with anyio.move_on_after(op_timeout):
            answer: object = await work.ask.send(handle)
            return answer
        self.timeouts += 1
        self.emit(
            "timeout",
            work.view.view_id,
            op=work.ask.op,
            probe=live[0].probe.name,
            seconds=op_timeout,
        )
        raise WorkFailedError(
            work.view, work.ask, f"op timed out after {op_timeout} s (op_timeout)"
        )

    async def call(
        self, func: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """For function probes (``ctx.call``): one op under the op timeout and retry policy."""
        policy = self.policy
        for attempt in range(policy.retries + 1):
            try:
                scope = anyio.fail_after(policy.op_timeout) if policy.op_timeout else nullcontext()
                with scope:
                    return await func(*args, **kwargs)
            except TimeoutError:
                self.timeouts += 1
                raise
            except Exception as exc:
                if attempt < policy.retries and policy.retryable(exc):
                    self.retried += 1
                    name = getattr(func, "__qualname__", repr(func))
                    await anyio.sleep(policy.backoff_delay(f"call|{name}|{args!r}", attempt))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def run_work(self, work: WorkItem, handle: ScoringModel) -> None:
        """Serve one pooled request for every probe that still wants it."""
        try:
            work.value = await self.attempts(work, handle)
        except WorkFailedError as failure:
            work.failure = failure
        work.done = True

    # -- one view ------------------------------------------------------------------

    async def with_view(
        self,
        view: ViewRef,
        works: list[WorkItem],
        serve: Callable[[ScoringModel], Awaitable[None]],
    ) -> None:
        """Enter ``view`` once, retrying a transient enter failure, and ``serve(handle)`` in it.

        A failed entry fails the view's pending requests; a failed exit keeps
        the answers (they were computed) and is recorded as an incident.
        """
        if not self.still_wanted(works):
            # Every probe that wanted something here timed out: loading the view is waste.
            for work in works:
                if not work.done:
                    work.failure = WorkFailedError(view, work.ask, NOBODY_WAITS)
                    work.done = True
            return
        policy = self.policy
        for attempt in range(policy.retries + 1):
            entered = False
            try:
                async with view.open(self.backend) as handle:
                    entered = True
                    await serve(handle)
                return
            except InjectedViewExitError as exc:
                self.incidents.append(f"view {view.label}: {exc}")
                return
            except Exception as exc:
                if entered:
                    self.incidents.append(f"view {view.label}: {type(exc).__name__}: {exc}")
                elif attempt < policy.retries and policy.retryable(exc):
                    delay = policy.backoff_delay(f"enter|{view.label}", attempt)
                    self.retried += 1
                    self.emit("retry", view.view_id, op="enter", attempt=attempt + 1, delay=delay)
                    await anyio.sleep(delay)
                    continue
                _fail_pending(works, view, exc)
                return

    async def run_view(self, view: ViewRef, works: list[WorkItem], workers: int) -> None:
        """Exclusive backend: serve ``works`` in ``view`` with up to ``workers`` tasks."""

        async def serve(handle: ScoringModel) -> None:
            await self.serve(works, handle, workers)

        await self.with_view(view, works, serve)

    async def serve(self, works: list[WorkItem], handle: ScoringModel, workers: int) -> None:
        """Serve ``works`` in order with up to ``workers`` tasks sharing the view."""
        pending: Iterator[WorkItem] = iter(works)

        async def worker() -> None:
            for work in pending:
                await self.run_work(work, handle)

        count = max(1, min(workers, len(works)))
        if count == 1:
            await worker()
            return
        async with anyio.create_task_group() as group:
            for index in range(count):
                group.start_soon(worker, name=f"swaysim-worker-{index}")

    async def serve_limited(
        self, view: ViewRef, works: list[WorkItem], limiter: anyio.CapacityLimiter
    ) -> None:
        """Concurrent-safe backend: one view, requests bounded by the shared limiter."""

        async def one(work: WorkItem, handle: ScoringModel) -> None:
            async with limiter:
                await self.run_work(work, handle)

        async def serve(handle: ScoringModel) -> None:
            async with anyio.create_task_group() as group:
                for work in works:
                    group.start_soon(one, work, handle, name=f"swaysim-request-{view.label}")

        await self.with_view(view, works, serve)


def _fail_pending(works: list[WorkItem], view: ViewRef, exc: BaseException) -> None:
    for work in works:
        if not work.done:
            work.failure = WorkFailedError(view, work.ask, exc)
            work.done = True
