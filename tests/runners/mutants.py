"""Buggy runners: each is runners/correct.py with exactly one realistic mistake.

Every mutant is a subclass of :class:`runners.correct.Run` that overrides one method (the
diff is that method); its docstring says how a runner author ends up writing it. The
mutation test (tests/reliability/test_mutants.py) checks that the scenario library catches
every one of them, and ``python tests/runners/mutant_table.py`` writes which scenario and
which expectation or invariant catches each (docs/mutants.md).

A mutant is importable as a runner spec: ``runners.mutants:retried_fatal`` (tests/ is on
``sys.path`` under pytest), or ``MUTANTS["retried_fatal"].runner`` from Python.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import anyio
import numpy as np
import sniffio

from runners.correct import AnyProbe, Cutoff, Request, Run
from swaysim import (
    BASE,
    FT,
    FunctionProbe,
    InjectedViewEnterError,
    ProbeResult,
    Verdict,
    ViewRef,
    WorkFailedError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence
    from contextlib import AbstractAsyncContextManager

    from runners.correct import Budget
    from swaysim import Ask, Probe, ScoringModel

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Mutant:
    """A buggy runner: its name, its bug in one line, and how an author makes that mistake."""

    name: str
    bug: str
    run_class: type[Run]

    @property
    def how(self) -> str:
        """How a real runner author makes this mistake (the class docstring)."""
        return " ".join((self.run_class.__doc__ or "").split())

    async def runner(self, backend: Any, probes: Sequence[AnyProbe], **options: Any) -> Any:
        """The runner under test: ``await runner(backend, probes, **options)``."""
        return await self.run_class(backend, **options).suite(list(probes))


MUTANTS: Final[dict[str, Mutant]] = {}

UNCAUGHT: Final[dict[str, str]] = {}
"""Mutants no library scenario catches yet, and what is missing (tests/runners/FINDINGS.md)."""


def mutant(name: str, bug: str) -> Callable[[type[Run]], type[Run]]:
    def register(cls: type[Run]) -> type[Run]:
        assert name not in MUTANTS, name
        MUTANTS[name] = Mutant(name, bug, cls)
        return cls

    return register


def __getattr__(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``runners.mutants:<name>`` as a runner spec."""
    try:
        return MUTANTS[name].runner
    except KeyError:
        raise AttributeError(f"module 'runners.mutants' has no mutant {name!r}") from None


def spawn_detached(func: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start ``func()`` outside any task group: what fire-and-forget looks like on each loop."""
    if sniffio.current_async_library() == "trio":
        import trio

        trio.lowlevel.spawn_system_task(func)
    else:
        asyncio.get_running_loop().create_task(func())


# -- views ------------------------------------------------------------------------------


@mutant("uncoordinated_views", "serves every view at once on an exclusive backend")
class UncoordinatedViews(Run):
    """Written and tested against an API backend (safe_for_concurrent_views), the author
    never checks the flag: every view gets its own task, so two views are live at once."""

    async def serve(self, views: dict[ViewRef, dict[Ask, Request]]) -> None:
        async with anyio.create_task_group() as group:
            for view in self.view_order(list(views)):
                group.start_soon(self.serve_view, view, list(views[view].values()))


@mutant("nested_entry", "keeps each view open while entering the next")
class NestedEntry(Run):
    """ "Adapters are slow to unload, keep them all until the end": an AsyncExitStack holds
    every view entered so far, so the second view is entered inside the first."""

    async def serve(self, views: dict[ViewRef, dict[Ask, Request]]) -> None:
        async with contextlib.AsyncExitStack() as stack:
            for view in self.view_order(list(views)):
                try:
                    handle = await stack.enter_async_context(self.open_view(view))
                except Exception as exc:
                    for request in views[view].values():
                        request.failure = WorkFailedError(view, request.ask, exc)
                    continue
                await self.serve_requests(handle, list(views[view].values()))


@mutant("no_release_on_cancel", "exits a view by hand, not in a finally: cancellation leaks it")
class NoReleaseOnCancel(Run):
    """A hand-rolled enter/exit pair (``__aenter__`` ... ``__aexit__``) to keep the handle
    around; the exit is skipped when anything, a cancellation included, interrupts it."""

    async def serve_view(self, view: ViewRef, requests: list[Request]) -> None:
        for attempt in range(self.retries + 1):
            context = self.open_view(view)
            try:
                handle = await context.__aenter__()
            except Exception as exc:
                if self.may_retry(attempt, exc):
                    await anyio.sleep(self.delay(attempt))
                    continue
                for request in requests:
                    request.failure = WorkFailedError(view, request.ask, exc)
                return
            await self.serve_requests(handle, requests)
            with contextlib.suppress(Exception):
                await context.__aexit__(None, None, None)
            return


@mutant("swap_storm", "visits prompt by prompt, entering a view for every request")
class SwapStorm(Run):
    """The dlm-sway habit of comparing views per prompt: for each question, ask base, then
    ft, then the scaled views; every request swaps the adapter."""

    async def serve(self, views: dict[ViewRef, dict[Ask, Request]]) -> None:
        order = self.view_order(list(views))
        asks = list(dict.fromkeys(ask for view in order for ask in views[view]))
        for ask in asks:
            for view in order:
                if ask in views[view]:
                    await self.serve_view(view, [views[view][ask]])


@mutant("entry_per_request", "re-enters the same view for every request")
class EntryPerRequest(Run):
    """``async with view.open(backend)`` moved inside the request loop "to hold the view
    as briefly as possible": the same adapter is entered once per request."""

    async def serve_view(self, view: ViewRef, requests: list[Request]) -> None:
        for request in requests:
            await super().serve_view(view, [request])


@mutant("serial_views_on_safe", "serves views one at a time on a concurrent-safe backend")
class SerialViewsOnSafe(Run):
    """Written for a single-GPU backend, the author never reads safe_for_concurrent_views:
    an API backend that could serve every view at once gets them one after another."""

    async def serve(self, views: dict[ViewRef, dict[Ask, Request]]) -> None:
        for view in self.view_order(list(views)):
            await self.serve_view(view, list(views[view].values()))


@mutant("base_ft_swapped", "opens ft for base and base for ft")
class BaseFtSwapped(Run):
    """The runner maps view kinds to backend methods itself (its own backend wrapper) and
    the two lines of the mapping are crossed."""

    def open_view(self, view: ViewRef) -> AbstractAsyncContextManager[ScoringModel]:
        if view == BASE:
            return FT.open(self.backend)
        if view == FT:
            return BASE.open(self.backend)
        return view.open(self.backend)


@mutant("lam_zero_ignored", "opens scaled(0.0) as scaled(1.0): `lam or 1.0`")
class LamZeroIgnored(Run):
    """``backend.as_scaled_adapter(view.lam or 1.0)``, "defaulting" a missing lam: 0.0 is
    falsy, so the adapter at strength zero is the full adapter."""

    def open_view(self, view: ViewRef) -> AbstractAsyncContextManager[ScoringModel]:
        if view.kind == "scaled":
            return self.backend.as_scaled_adapter(view.lam or 1.0)  # type: ignore[no-any-return]
        return view.open(self.backend)


@mutant("null_seed_from_options", "opens every null view with the run's seed, not the view's")
class NullSeedFromOptions(Run):
    """Two things called ``seed``: the runner passes its own ``seed`` option where the null
    view's seed belongs, so all K null adapters are the same adapter."""

    def open_view(self, view: ViewRef) -> AbstractAsyncContextManager[ScoringModel]:
        if view.kind == "null":
            return self.backend.as_null_adapter(  # type: ignore[no-any-return]
                self.ctx.seed, init_scale=view.init_scale, rank_scale=view.rank_scale
            )
        return view.open(self.backend)


@mutant("null_scale_dropped", "opens null views without their init_scale and rank_scale")
class NullScaleDropped(Run):
    """``backend.as_null_adapter(view.seed)``: the keyword arguments with defaults are
    forgotten, so a null of init_scale 0.2 is measured at the default 0.02."""

    def open_view(self, view: ViewRef) -> AbstractAsyncContextManager[ScoringModel]:
        if view.kind == "null":
            return self.backend.as_null_adapter(view.seed)  # type: ignore[no-any-return]
        return view.open(self.backend)


@mutant("exit_error_discards_answers", "fails a view's answers when the view fails to exit")
class ExitErrorDiscardsAnswers(Run):
    """One ``except Exception`` around the whole ``async with`` block: a failed unload
    (the answers were computed) is handled like a failed load (there are none)."""

    async def serve_view(self, view: ViewRef, requests: list[Request]) -> None:
        for attempt in range(self.retries + 1):
            try:
                async with self.open_view(view) as handle:
                    await self.serve_requests(handle, requests)
                return
            except Exception as exc:
                if self.may_retry(attempt, exc):
                    await anyio.sleep(self.delay(attempt))
                    continue
                for request in requests:
                    request.failure = WorkFailedError(view, request.ask, exc)
                return


@mutant("exit_error_crashes", "catches only entry errors around a view: an exit error escapes")
class ExitErrorCrashes(Run):
    """``except InjectedViewEnterError`` around the view block, the one failure the author
    had in mind: a failed unload propagates out of the runner."""

    async def serve_view(self, view: ViewRef, requests: list[Request]) -> None:
        for attempt in range(self.retries + 1):
            try:
                async with self.open_view(view) as handle:
                    await self.serve_requests(handle, requests)
                return
            except InjectedViewEnterError as exc:
                if self.may_retry(attempt, exc):
                    await anyio.sleep(self.delay(attempt))
                    continue
                for request in requests:
                    request.failure = WorkFailedError(view, request.ask, exc)
                return


@mutant("enter_failure_not_retried", "never retries a failed view entry")
class EnterFailureNotRetried(Run):
    """Retries are implemented where ops are sent; entering the view is outside that loop,
    so an adapter that fails to load once fails every request of the view."""

    async def serve_view(self, view: ViewRef, requests: list[Request]) -> None:
        entered = False
        try:
            async with self.open_view(view) as handle:
                entered = True
                await self.serve_requests(handle, requests)
        except Exception as exc:
            if not entered:
                for request in requests:
                    request.failure = WorkFailedError(view, request.ask, exc)


# -- preflight ----------------------------------------------------------------------------


@mutant("skipped_preflight", "never runs the backend's preflight check")
class SkippedPreflight(Run):
    """Preflight costs two adapter swaps; the author drops it to save time."""

    async def check_preflight(self) -> ProbeResult | None:
        return None


@mutant("ignored_preflight_result", "tests the preflight tuple for truth: (False, why) is true")
class IgnoredPreflightResult(Run):
    """``if not await backend.preflight_finite_check(): abort`` reads the (ok, reason)
    tuple as a bool; a non-empty tuple is always true, so nothing ever aborts."""

    async def check_preflight(self) -> ProbeResult | None:
        if not await self.backend.preflight_finite_check():
            return ProbeResult("__preflight__", "preflight", Verdict.ERROR, message="failed")
        return None


@mutant("nan_blind_preflight", "its own finite check uses isinf: a NaN passes as a number")
class NanBlindPreflight(Run):
    """The runner checks outputs itself (its backend has no preflight) with
    ``np.isinf(logprobs).any()``: NaN is neither infinite nor caught."""

    async def check_preflight(self) -> ProbeResult | None:
        for view in (BASE, FT):
            async with self.open_view(view) as handle:
                dist = await handle.next_token_dist("preflight", top_k=8)
            if np.isinf(dist.logprobs).any():
                why = f"{view.label} produced infinite logprobs"
                return ProbeResult("__preflight__", "preflight", Verdict.ERROR, message=why)
        return None


# -- retries and backoff ------------------------------------------------------------------


@mutant("retried_fatal", "retries every exception, fatal faults included")
class RetriedFatal(Run):
    """``except Exception: retry``: the author never looks at ``InjectedFault.retryable``."""

    def may_retry(self, attempt: int, exc: BaseException) -> bool:
        return attempt < self.retries


@mutant("unretried_transient", "retries only timeouts and retry_on types, not transient faults")
class UnretriedTransient(Run):
    """ "Transient" read as "timed out": the runner retries TimeoutError and the retry_on
    types, and treats an injected transient fault as final."""

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, (TimeoutError, *self.retry_on))


@mutant("retry_budget_off_by_one", "makes `retries` attempts in all, one fewer than allowed")
class RetryBudgetOffByOne(Run):
    """``retries`` read as the number of attempts rather than of extra attempts."""

    def may_retry(self, attempt: int, exc: BaseException) -> bool:
        return attempt + 1 < self.retries and self.retryable(exc)


@mutant("no_backoff", "retries at once, without sleeping")
class NoBackoff(Run):
    """The backoff sleep was commented out while debugging a slow test and never restored."""

    def delay(self, attempt: int) -> float:
        return 0.0


@mutant("uncapped_backoff", "ignores backoff_max: the delay doubles without bound")
class UncappedBackoff(Run):
    """``backoff * 2**attempt``, with the cap forgotten."""

    def delay(self, attempt: int) -> float:
        return float(self.backoff * 2.0**attempt)


@mutant("device_held_during_backoff", "sleeps its backoff while holding the device")
class DeviceHeldDuringBackoff(Run):
    """Everything that concerns the backend is serialised on the device lock, the backoff
    sleep included: no other request is served while this one waits to retry."""

    async def back_off(self, live: list[Budget], attempt: int) -> None:
        async with self.device:
            await super().back_off(live, attempt)


# -- timeouts -----------------------------------------------------------------------------


@mutant("no_timeout", "never applies op_timeout")
class NoTimeout(Run):
    """The op timeout was implemented with ``asyncio.wait_for`` in an older version and
    dropped in the port to anyio."""

    async def attempt(self, request: Request, handle: ScoringModel) -> object:
        answer: object = await request.ask.send(handle)
        return answer


@mutant("one_timeout_around_retries", "one op_timeout around all attempts and backoffs")
class OneTimeoutAroundRetries(Run):
    """``with fail_after(op_timeout):`` wraps the retry loop instead of one attempt: a
    request that needs a retry shares one attempt's time with its backoffs."""

    async def fetch(self, request: Request, handle: ScoringModel) -> None:
        with anyio.move_on_after(self.op_timeout):
            await super().fetch(request, handle)
            return
        why = f"op timed out after {self.op_timeout} s (op_timeout)"
        request.failure = WorkFailedError(request.view, request.ask, why)

    async def attempt(self, request: Request, handle: ScoringModel) -> object:
        answer: object = await request.ask.send(handle)
        return answer


@mutant("timeout_includes_queueing", "starts op_timeout before waiting for the device")
class TimeoutIncludesQueueing(Run):
    """The timeout wraps "send this request", which includes waiting behind the other
    workers for the device: a request times out for its neighbours' service."""

    async def send(self, request: Request, handle: ScoringModel, live: list[Budget]) -> object:
        with anyio.move_on_after(self.op_timeout):
            async with self.device:
                answer: object = await self.in_flight(live, request.ask.send, handle)
                return answer
        raise Cutoff(f"op timed out after {self.op_timeout} s (op_timeout)")


@mutant("ignored_probe_timeout", "never applies probe_timeout to requests")
class IgnoredProbeTimeout(Run):
    """probe_timeout is applied to preflight and function probes, where it is one
    ``move_on_after``; the per-request budget was left as a TODO."""

    async def in_flight(
        self,
        live: list[Budget],
        func: Callable[_P, Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        return await func(*args, **kwargs)


# -- answers and results ------------------------------------------------------------------


@mutant("view_blind_cache", "caches answers by request alone, shared across views")
class ViewBlindCache(Run):
    """A memo of answers keyed by the Ask (the op and prompt), "since equal requests give
    equal answers": base's answer is reused for ft and every other view."""

    async def fetch(self, request: Request, handle: ScoringModel) -> None:
        memo: dict[Ask, object] = self.__dict__.setdefault("memo", {})
        if request.ask in memo:
            request.value = memo[request.ask]
            return
        await super().fetch(request, handle)
        if request.failure is None:
            memo[request.ask] = request.value


@mutant("duplicate_requests", "sends each probe's requests separately, nothing shared")
class DuplicateRequests(Run):
    """Requests pooled per view but keyed by (probe, request): two probes asking the same
    question send it twice in the same view entry."""

    def plan(self, probe: Probe, views: dict[ViewRef, dict[Ask, Request]]) -> ProbeResult | None:
        mine: dict[ViewRef, dict[Ask, Request]] = {}
        result = super().plan(probe, mine)
        for view, requests in mine.items():
            pool: dict[Any, Request] = views.setdefault(view, {})
            for ask, request in requests.items():
                pool[(probe.name, ask)] = request
        return result


@mutant("completion_order_pairing", "pairs answers with requests in the order they arrive")
class CompletionOrderPairing(Run):
    """Answers collected into a list as workers finish, then zipped with the requests:
    true only while requests complete in the order they were sent."""

    async def serve_requests(self, handle: ScoringModel, requests: list[Request]) -> None:
        arrived: list[Request] = []
        pending = iter(requests)

        async def worker() -> None:
            for request in pending:
                await self.fetch(request, handle)
                arrived.append(request)

        async with anyio.create_task_group() as group:
            for _ in range(max(1, min(self.concurrency, len(requests)))):
                group.start_soon(worker)
        outcomes = [(r.value, r.failure) for r in arrived]
        for request, (value, failure) in zip(requests, outcomes, strict=True):
            request.value, request.failure = value, failure


@mutant("zscore_before_calibration", "finalizes probes in declaration order")
class ZscoreBeforeCalibration(Run):
    """The probes are finalized as listed; a probe declared before the null adapter it is
    z-scored against finds no calibration yet."""

    def order(self, probes: list[AnyProbe]) -> list[AnyProbe]:
        return list(probes)


@mutant("failure_as_fail", "reports a probe whose request failed as FAIL, not ERROR")
class FailureAsFail(Run):
    """ "No answer, no effect": a failed request becomes a measured no."""

    def finalize(self, probe: Probe) -> ProbeResult:
        result = super().finalize(probe)
        if result.verdict is Verdict.ERROR:
            return probe.result(Verdict.FAIL, message=result.message, evidence=result.evidence)
        return result


@mutant("results_missing_for_errors", "leaves probes that ended in ERROR out of the results")
class ResultsMissingForErrors(Run):
    """Errors are logged and the report keeps the probes that measured something."""

    async def suite(self, probes: list[AnyProbe]) -> list[ProbeResult]:
        results = await super().suite(probes)
        return [result for result in results if result.verdict is not Verdict.ERROR]


@mutant("failure_cancels_siblings", "a failed request raises in the task group: siblings die")
class FailureCancelsSiblings(Run):
    """The worker raises the request's failure "so it is not silently lost"; the task
    group cancels every other request of the view and the view's probes all ERROR."""

    async def fetch(self, request: Request, handle: ScoringModel) -> None:
        await super().fetch(request, handle)
        if request.failure is not None:
            raise request.failure


# -- cancellation and tasks ---------------------------------------------------------------


@mutant("swallowed_cancellation", "returns partial results when cancelled")
class SwallowedCancellation(Run):
    """``except BaseException`` around the work, "so an interrupted run still reports what
    it has": a cancellation becomes a normal return."""

    async def serve(self, views: dict[ViewRef, dict[Ask, Request]]) -> None:
        try:
            await super().serve(views)
        except BaseException:
            for view, requests in views.items():
                for ask, request in requests.items():
                    if request.failure is None and request.value is None:
                        request.failure = WorkFailedError(view, ask, "interrupted")


@mutant("leaked_task", "starts a progress heartbeat task and never stops it")
class LeakedTask(Run):
    """A fire-and-forget progress reporter (``loop.create_task``) that logs the backend's
    statistics every few seconds; nothing cancels it when the suite returns."""

    async def suite(self, probes: list[AnyProbe]) -> list[ProbeResult]:
        backend = self.backend

        async def heartbeat() -> None:
            while True:
                backend.statistics()
                await anyio.sleep(5.0)

        spawn_detached(heartbeat)
        return await super().suite(probes)


@mutant("late_prefetch", "warms up the next run's first view after returning")
class LatePrefetch(Run):
    """ "Warm the cache for next time": after the results are in, a detached task enters
    ft and sends a request, while the caller already believes the runner is done."""

    async def suite(self, probes: list[AnyProbe]) -> list[ProbeResult]:
        results = await super().suite(probes)
        backend = self.backend

        async def prefetch() -> None:
            await anyio.sleep(1.0)
            async with FT.open(backend) as view:
                await view.next_token_dist("warm-up", top_k=8)

        spawn_detached(prefetch)
        return results


# -- scheduling ---------------------------------------------------------------------------


@mutant("concurrency_unbounded", "ignores concurrency on a concurrent-safe backend")
class ConcurrencyUnbounded(Run):
    """Everything gathered at once ("the API can take it"): no limit on ops in flight."""

    def __init__(self, backend: Any, **options: Any) -> None:
        super().__init__(backend, **options)
        if not self.exclusive:
            self.device = anyio.CapacityLimiter(10**6)
            self.concurrency = 10**6


@mutant("function_probe_unbounded", "runs function probes without their probe_timeout")
class FunctionProbeUnbounded(Run):
    """probe_timeout is applied where requests are sent; a function probe drives its views
    itself, and nobody bounds it: a hung function probe hangs the suite."""

    async def run_function(self, probe: FunctionProbe) -> ProbeResult:
        saved, self.probe_timeout = self.probe_timeout, None
        try:
            return await super().run_function(probe)
        finally:
            self.probe_timeout = saved
