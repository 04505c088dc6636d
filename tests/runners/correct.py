"""A correct runner of one's own, written only from swaysim's public API and the runner contract.

``await run(backend, probes, **options)`` returns one :class:`~swaysim.ProbeResult` per
probe, in declaration order. ``options`` are :func:`~swaysim.run_suite`'s keyword
arguments (``concurrency``, ``op_timeout``, ``probe_timeout``, ``retries``, ``backoff``,
``backoff_max``, ``retry_on``, ``preflight``, ``seed``); any other is accepted and ignored.
It gives the verdicts and scores ``run_suite`` gives, on every library scenario:

- **preflight first**: a backend that fails its finite check aborts the suite with one
  ``__preflight__`` ERROR, bounded by ``probe_timeout`` like a probe;
- **pooled per view**: every declarative probe states its requests before any is sent;
  each distinct view is entered once, and a request two probes share is sent once;
- **one device**: on an exclusive backend views are served one after another and one op
  is in flight at a time (``concurrency`` tasks share the view, so backoff overlaps other
  requests' service); on a ``safe_for_concurrent_views`` backend every view is entered at
  once and up to ``concurrency`` ops are in flight;
- **timeouts**: ``op_timeout`` bounds each attempt; ``probe_timeout`` a probe's in-flight
  time (its requests being served or backing off), never time spent waiting its turn;
- **retries**: a retryable failure (``InjectedFault.retryable``, a failed view entry, a
  ``retry_on`` type) is retried after ``min(backoff * 2**attempt, backoff_max)`` seconds,
  at most ``retries`` times; anything else fails the request at once; a timeout is final;
- **isolation**: a failed request is an ERROR of the probes that needed it, nothing else;
- **dependencies**: probes are finalized in dependency order (a null calibration before
  the probes z-scored against it); function probes run last, one at a time, in that order;
- **cancellation** propagates: nothing catches it, every view is an ``async with``.

Each step is a method so that tests/runners/mutants.py can break exactly one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio

from swaysim import (
    Answers,
    FunctionProbe,
    InjectedFault,
    InjectedViewExitError,
    PreflightCheckable,
    Probe,
    ProbeContext,
    ProbeResult,
    SwaysimError,
    Verdict,
    ViewRef,
    WorkFailedError,
    run_sync_probe,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from swaysim import Ask, ScoringModel

AnyProbe = Probe | FunctionProbe
_P = ParamSpec("_P")
_T = TypeVar("_T")


class Cutoff(Exception):
    """An attempt stopped by a timeout (never retried); the message says which one."""


@dataclass(eq=False)
class Budget:
    """A probe's ``probe_timeout``: loop seconds during which one of its requests is in flight."""

    seconds: float | None
    used: float = 0.0
    active: int = 0
    since: float = 0.0
    timed_out: bool = False

    def used_at(self, now: float) -> float:
        return self.used + (now - self.since if self.active else 0.0)

    def deadline(self, now: float) -> float:
        return math.inf if self.seconds is None else now + self.seconds - self.used_at(now)

    def spent(self, now: float) -> bool:
        if self.seconds is not None and self.used_at(now) >= self.seconds:
            self.timed_out = True
        return self.timed_out

    def start(self, now: float) -> None:
        if not self.active:
            self.since = now
        self.active += 1

    def stop(self, now: float) -> None:
        self.active -= 1
        if not self.active:
            self.used += now - self.since


@dataclass(eq=False)
class Request:
    """One distinct request on one view, its outcome, and the budgets of the probes needing it."""

    view: ViewRef
    ask: Ask
    budgets: list[Budget] = field(default_factory=list)
    value: object = None
    failure: WorkFailedError | None = None


def evidence_of(cause: BaseException | str) -> dict[str, object]:
    """An ERROR's evidence: the error type, and which fault fired when one was injected."""
    if isinstance(cause, str):
        return {"error": cause}
    found: dict[str, object] = {"error": type(cause).__name__}
    if isinstance(cause, InjectedFault):
        found.update(
            fault_rule=cause.rule_name,
            fault_op=cause.op,
            fault_view=cause.view_id,
            call=cause.call_index,
        )
    return found


def dependency_order(probes: Sequence[AnyProbe]) -> list[AnyProbe]:
    """Every probe after the probes it ``requires``; declaration order otherwise."""
    by_name = {probe.name: probe for probe in probes}
    order: list[AnyProbe] = []

    def visit(probe: AnyProbe) -> None:
        if probe not in order:
            for name in probe.requires:
                visit(by_name[name])
            order.append(probe)

    for probe in probes:
        visit(probe)
    return order


async def run(backend: Any, probes: Sequence[AnyProbe], **options: Any) -> list[ProbeResult]:
    """Run ``probes`` on ``backend``: one result per probe, in declaration order."""
    return await Run(backend, **options).suite(list(probes))


class Run:
    """One suite run: the options, the pooled requests and every probe's budget."""

    def __init__(
        self,
        backend: Any,
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
        **_ignored: Any,
    ) -> None:
        self.backend = backend
        self.concurrency, self.retries = concurrency, retries
        self.op_timeout, self.probe_timeout = op_timeout, probe_timeout
        self.backoff, self.backoff_max, self.retry_on = backoff, backoff_max, tuple(retry_on)
        self.preflight = preflight
        self.exclusive = not backend.safe_for_concurrent_views
        self.device: anyio.Lock | anyio.CapacityLimiter = (
            anyio.Lock() if self.exclusive else anyio.CapacityLimiter(concurrency)
        )
        self.ctx = ProbeContext(backend=backend, seed=seed, call=self.call)
        self.budgets: dict[str, Budget] = {}
        self.wanted: dict[str, dict[tuple[ViewRef, Ask], Request]] = {}

    # -- the suite ------------------------------------------------------------------

    async def suite(self, probes: list[AnyProbe]) -> list[ProbeResult]:
        by_name = {probe.name: probe for probe in probes}
        for probe in probes:
            probe.bind(by_name)
        if self.preflight and isinstance(self.backend, PreflightCheckable):
            aborted = await self.check_preflight()
            if aborted is not None:
                return [aborted]
        views: dict[ViewRef, dict[Ask, Request]] = {}
        early: dict[str, ProbeResult] = {}
        for probe in probes:
            self.budgets[probe.name] = Budget(self.probe_timeout)
            if isinstance(probe, Probe):
                result = self.plan(probe, views)
                if result is not None:
                    early[probe.name] = result
        await self.serve(views)
        for probe in self.order(probes):
            if probe.name in early:
                result = early[probe.name]
            elif isinstance(probe, FunctionProbe):
                result = await self.run_function(probe)
            else:
                result = self.finalize(probe)
            self.ctx.results[probe.name] = result
        return [self.ctx.results[probe.name] for probe in probes]

    async def check_preflight(self) -> ProbeResult | None:
        """The backend's finite check under ``probe_timeout``; the abort result if it failed."""
        checked = (False, f"preflight timed out after {self.probe_timeout} s (probe_timeout)")
        with anyio.move_on_after(self.probe_timeout):
            checked = await self.backend.preflight_finite_check()
        if checked[0]:
            return None
        message = f"backend preflight failed; suite aborted before any probe ran. {checked[1]}"
        evidence = {"preflight_reason": checked[1]}
        return ProbeResult(
            "__preflight__", "preflight", Verdict.ERROR, message=message, evidence=evidence
        )

    def order(self, probes: list[AnyProbe]) -> list[AnyProbe]:
        """The order probes finish in: dependencies first (null calibrations before z-scores)."""
        return dependency_order(probes)

    def plan(self, probe: Probe, views: dict[ViewRef, dict[Ask, Request]]) -> ProbeResult | None:
        """Pool ``probe``'s requests into ``views``; its SKIP or ERROR result if it cannot run."""
        try:
            reason = probe.skip_reason(self.backend)
            plan = probe.requests(self.ctx) if reason is None else {}
            for view in plan:
                reason = reason or view.supported_by(self.backend)
        except Exception as exc:
            message = f"planning raised {type(exc).__name__}: {exc}"
            return probe.result(Verdict.ERROR, message=message, evidence=evidence_of(exc))
        if reason is not None:
            return probe.result(Verdict.SKIP, message=f"skipped: {reason}")
        mine = self.wanted[probe.name] = {}
        for view, asks in plan.items():
            for ask in asks:
                if (view, ask) not in mine:
                    request = views.setdefault(view, {}).setdefault(ask, Request(view, ask))
                    request.budgets.append(self.budgets[probe.name])
                    mine[(view, ask)] = request
        return None

    # -- views and requests -----------------------------------------------------------

    def open_view(self, view: ViewRef) -> AbstractAsyncContextManager[ScoringModel]:
        return view.open(self.backend)

    def view_order(self, views: Sequence[ViewRef]) -> list[ViewRef]:
        """ft first (preflight ends there: no swap), then base, scaled views, null views."""
        return sorted(views, key=ViewRef.sort_key)

    async def serve(self, views: dict[ViewRef, dict[Ask, Request]]) -> None:
        """Exclusive backend: one view after another. Concurrent-safe: every view at once."""
        order = self.view_order(list(views))
        if self.exclusive:
            for view in order:
                await self.serve_view(view, list(views[view].values()))
            return
        async with anyio.create_task_group() as group:
            for view in order:
                group.start_soon(self.serve_view, view, list(views[view].values()))

    async def serve_view(self, view: ViewRef, requests: list[Request]) -> None:
        """Enter ``view`` once (retrying a retryable entry failure) and serve its requests."""
        for attempt in range(self.retries + 1):
            entered = False
            try:
                async with self.open_view(view) as handle:
                    entered = True
                    await self.serve_requests(handle, requests)
                return
            except InjectedViewExitError:
                return  # the adapter did not unload: the answers are kept, the gate is free
            except Exception as exc:
                if entered:
                    return
                if self.may_retry(attempt, exc):
                    await anyio.sleep(self.delay(attempt))
                    continue
                for request in requests:
                    request.failure = WorkFailedError(view, request.ask, exc)
                return

    async def serve_requests(self, handle: ScoringModel, requests: list[Request]) -> None:
        """Up to ``concurrency`` tasks share the live view, taking requests in order."""
        pending = iter(requests)

        async def worker() -> None:
            for request in pending:
                await self.fetch(request, handle)

        async with anyio.create_task_group() as group:
            for _ in range(max(1, min(self.concurrency, len(requests)))):
                group.start_soon(worker)

    async def fetch(self, request: Request, handle: ScoringModel) -> None:
        """Send one request under the retry policy; record its answer or its failure."""
        view, ask = request.view, request.ask
        for attempt in range(self.retries + 1):
            live = [b for b in request.budgets if not b.spent(anyio.current_time())]
            if not live:
                request.failure = WorkFailedError(view, ask, "every probe needing it timed out")
                return
            try:
                request.value = await self.send(request, handle, live)
                return
            except Cutoff as cut:
                request.failure = WorkFailedError(view, ask, str(cut))
                return
            except Exception as exc:
                failure = exc
            if not self.may_retry(attempt, failure):
                break
            try:
                await self.back_off(live, attempt)
            except Cutoff as cut:
                request.failure = WorkFailedError(view, ask, str(cut))
                return
        request.failure = WorkFailedError(view, ask, failure)

    async def send(self, request: Request, handle: ScoringModel, live: list[Budget]) -> object:
        """One attempt on the device (one op at a time on an exclusive backend)."""
        async with self.device:
            return await self.in_flight(live, self.attempt, request, handle)

    async def back_off(self, live: list[Budget], attempt: int) -> None:
        """The pause before retrying: in-flight time of the probes waiting for the request."""
        await self.in_flight(live, anyio.sleep, self.delay(attempt))

    async def attempt(self, request: Request, handle: ScoringModel) -> object:
        """One attempt, cut off after ``op_timeout``."""
        with anyio.move_on_after(self.op_timeout):
            answer: object = await request.ask.send(handle)
            return answer
        raise Cutoff(f"op timed out after {self.op_timeout} s (op_timeout)")

    async def in_flight(
        self,
        live: list[Budget],
        func: Callable[_P, Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``func(*args)`` as in-flight time of ``live``; cut off when all their budgets run out."""
        now = anyio.current_time()
        deadlines = [(budget, budget.deadline(now)) for budget in live]
        for budget in live:
            budget.start(now)
        try:
            with anyio.CancelScope(deadline=max(deadline for _, deadline in deadlines)):
                return await func(*args, **kwargs)
        finally:
            end = anyio.current_time()
            for budget in live:
                budget.stop(end)
        for budget, deadline in deadlines:  # deadlines, not used >= seconds: no rounding
            budget.timed_out = budget.timed_out or deadline <= end
        raise Cutoff(f"probe timed out after {self.probe_timeout} s (probe_timeout)")

    def may_retry(self, attempt: int, exc: BaseException) -> bool:
        """Whether attempt ``attempt`` (0-based) that failed with ``exc`` gets another."""
        return attempt < self.retries and self.retryable(exc)

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, InjectedFault):
            return exc.retryable
        return isinstance(exc, self.retry_on)

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2.0**attempt, self.backoff_max)

    async def call(
        self, func: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """``ctx.call`` for async function probes: one op under op_timeout and the retry policy."""
        for attempt in range(self.retries + 1):
            try:
                with anyio.fail_after(self.op_timeout):
                    return await func(*args, **kwargs)
            except TimeoutError:
                raise
            except Exception as exc:
                if not self.may_retry(attempt, exc):
                    raise
            await anyio.sleep(self.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- results ------------------------------------------------------------------------

    def finalize(self, probe: Probe) -> ProbeResult:
        """The probe's result from its answers; whatever it raises becomes its ERROR."""
        if self.budgets[probe.name].timed_out:
            return self.timed_out(probe)
        wanted = self.wanted[probe.name]
        values = {key: r.value for key, r in wanted.items() if r.failure is None}
        failures = {key: r.failure for key, r in wanted.items() if r.failure is not None}
        try:
            return probe.finalize(Answers(values, failures), self.ctx)
        except WorkFailedError as exc:
            return probe.result(Verdict.ERROR, message=str(exc), evidence=evidence_of(exc.cause))
        except SwaysimError as exc:
            return probe.result(Verdict.ERROR, message=str(exc), evidence=evidence_of(exc))
        except Exception as exc:
            message = f"probe raised {type(exc).__name__}: {exc}"
            return probe.result(Verdict.ERROR, message=message, evidence=evidence_of(exc))

    def timed_out(self, probe: AnyProbe) -> ProbeResult:
        message = f"probe timed out after {self.probe_timeout} s (probe_timeout)"
        evidence = {"timeout": "probe", "seconds": self.probe_timeout}
        return ProbeResult(
            probe.name, probe.kind, Verdict.ERROR, message=message, evidence=evidence
        )

    async def run_function(self, probe: FunctionProbe) -> ProbeResult:
        """A function probe, whole, under ``probe_timeout``; what it raises is its ERROR."""
        try:
            with anyio.move_on_after(self.probe_timeout) as scope:
                if probe.is_async:
                    raw = await probe.func(self.backend, self.ctx)  # type: ignore[misc]
                else:
                    raw = await run_sync_probe(
                        self.backend,
                        probe.func,  # type: ignore[arg-type]
                        self.ctx,
                        op_timeout=self.op_timeout,
                    )
            if scope.cancelled_caught:
                return self.timed_out(probe)
            return probe.finish(raw, 0.0)
        except Exception as exc:
            message = f"probe raised {type(exc).__name__}: {exc}"
            return ProbeResult(
                probe.name, probe.kind, Verdict.ERROR, message=message, evidence=evidence_of(exc)
            )
