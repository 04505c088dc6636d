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

import math
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import anyio

from swaysim._backend.statistics import BackendStatistics
from swaysim._bridge.bridge import run_sync_probe
from swaysim._chaos.seeding import unit_draws
from swaysim._protocols import PreflightCheckable
from swaysim._runner.probes import (
    Answers,
    Ask,
    FunctionProbe,
    Probe,
    ProbeContext,
    ProbeResult,
    Verdict,
    ViewRef,
    WorkFailedError,
)
from swaysim._trace.events import TraceEvent
from swaysim._validation import require_finite, require_int
from swaysim.errors import InjectedFault, InjectedViewExitError, InvalidArgumentError, SwaysimError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

    from swaysim._trace.events import TraceSink

__all__ = ["SuiteResult", "run_suite"]

PREFLIGHT_NAME: Final = "__preflight__"
RunMode = Literal["pooled", "naive"]
AnyProbe = Probe | FunctionProbe


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
            f"no probe named {name!r} in this suite; probes: {[r.name for r in self.results]}"
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
            )
        return out


@dataclass(slots=True, eq=False)
class _Work:
    view: ViewRef
    ask: Ask
    needers: list[_ProbeState] = field(default_factory=list)
    value: Any = None
    failure: WorkFailedError | None = None
    done: bool = False


@dataclass(slots=True, eq=False)
class _ProbeState:
    probe: AnyProbe
    index: int
    plan: dict[ViewRef, list[Ask]] = field(default_factory=dict)
    works: dict[tuple[ViewRef, Ask], _Work] = field(default_factory=dict)
    deps: list[_ProbeState] = field(default_factory=list)
    first_start: float | None = None
    last_end: float | None = None
    busy: float = 0.0
    active: int = 0
    busy_since: float = 0.0
    timed_out: bool = False
    early: ProbeResult | None = None
    result: ProbeResult | None = None
    done: anyio.Event | None = None

    def used(self, now: float) -> float:
        """Loop seconds this probe has had a request in flight (its probe_timeout budget)."""
        return self.busy + (now - self.busy_since if self.active else 0.0)


class _Run:
    """One execution of a suite; holds the counters and the policy."""

    def __init__(
        self,
        backend: Any,
        *,
        concurrency: int,
        op_timeout: float | None,
        probe_timeout: float | None,
        retries: int,
        backoff: float,
        backoff_max: float,
        retry_on: tuple[type[BaseException], ...],
        seed: int,
        trace: TraceSink | None,
        on_progress: Callable[[ProbeResult, int, int], object] | None,
    ) -> None:
        self.backend = backend
        self.concurrency = concurrency
        self.op_timeout = op_timeout
        self.probe_timeout = probe_timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retry_on = retry_on
        self.seed = seed
        self.trace = trace
        self.on_progress = on_progress
        self.retried = 0
        self.timeouts = 0
        self.incidents: list[str] = []
        self.completed = 0
        self.total = 0
        self.origin = 0.0
        self.device: anyio.Lock | None = None
        self.ctx = ProbeContext(backend=backend, seed=seed, call=self.call)

    # -- trace -------------------------------------------------------------------

    def now(self) -> float:
        loop_time = getattr(self.backend, "loop_time", None)
        return float(loop_time()) if callable(loop_time) else anyio.current_time() - self.origin

    def emit(self, kind: str, view: str | None = None, **detail: Any) -> None:
        if self.trace is None:
            return
        task = anyio.get_current_task()
        self.trace.emit(
            TraceEvent(
                kind=kind,
                time=self.now(),
                task=f"{task.name}#{task.id}",
                view=view,
                op=detail.pop("op", None),
                duration=detail.pop("duration", None),
                detail=detail,
            )
        )

    # -- one request ---------------------------------------------------------------

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, InjectedFault):
            return exc.retryable
        return bool(self.retry_on) and isinstance(exc, self.retry_on)

    def backoff_delay(self, what: str, attempt: int) -> float:
        """Exponential backoff with seeded jitter (up to +25%), a function of the request."""
        u, _, _ = unit_draws(self.seed, "retry", what, attempt)
        return min(self.backoff_max, self.backoff * 2.0**attempt) * (1.0 + 0.25 * u)

    async def attempts(self, work: _Work, handle: Any) -> Any:
        """Send ``work``'s request under the retry policy; raise WorkFailedError.

        On an exclusive backend each attempt first takes the runner's device
        slot, so a request never waits behind another one while its op timeout
        or its probes' budgets run: those clocks measure its own service time.
        """
        view, ask = work.view, work.ask
        for attempt in range(self.retries + 1):
            async with self.device if self.device is not None else nullcontext():
                live = self.live_needers(work)
                try:
                    return await self.in_flight(live, work, self.send_once, work, handle, live)
                except WorkFailedError:
                    raise
                except Exception as exc:
                    failure = exc
            if attempt < self.retries and self.retryable(failure):
                delay = self.backoff_delay(f"{view.label}|{ask!r}", attempt)
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

    def live_needers(self, work: _Work) -> list[_ProbeState]:
        """The probes still waiting for ``work``; raise when none is left."""
        live = [p for p in work.needers if not p.timed_out]
        if self.probe_timeout is not None:
            now = anyio.current_time()
            for probe in live:
                if probe.used(now) >= self.probe_timeout:
                    self.time_out(probe, work.view)
            live = [p for p in live if not p.timed_out]
        if not live:
            raise WorkFailedError(work.view, work.ask, "every probe needing it timed out")
        return live

    def time_out(self, probe: _ProbeState, view: ViewRef) -> None:
        probe.timed_out = True
        self.timeouts += 1
        self.emit(
            "timeout", view.view_id, probe=probe.probe.name, op="probe", seconds=self.probe_timeout
        )

    async def in_flight(
        self, live: list[_ProbeState], work: _Work, func: Callable[..., Any], *args: Any
    ) -> Any:
        """Await ``func(*args)`` as in-flight time of every probe in ``live``.

        A probe's ``probe_timeout`` budget is the loop time during which at
        least one of its requests is in flight (sent or backing off before a
        retry); waiting for the runner to reach its requests does not count,
        so one probe's slow or hung request never eats another's budget. The
        call is cancelled when the last of the budgets runs out, which times
        out every probe whose budget ran out.
        """
        now = anyio.current_time()
        deadlines: dict[int, float] = {}
        for probe in live:
            if probe.first_start is None:
                probe.first_start = now
                self.emit("probe_start", probe=probe.probe.name, probe_kind=probe.probe.kind)
            if self.probe_timeout is not None:
                deadlines[id(probe)] = now + self.probe_timeout - probe.used(now)
            if not probe.active:
                probe.busy_since = now
            probe.active += 1
        end = now
        with anyio.CancelScope(deadline=max(deadlines.values(), default=math.inf)):
            try:
                return await func(*args)
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
            work.view, work.ask, f"probe timed out after {self.probe_timeout} s (probe_timeout)"
        )

    async def send_once(self, work: _Work, handle: Any, live: list[_ProbeState]) -> Any:
        """One attempt under the op timeout."""
        with anyio.move_on_after(self.op_timeout):
            return await work.ask.send(handle)
        self.timeouts += 1
        self.emit(
            "timeout",
            work.view.view_id,
            op=work.ask.op,
            probe=live[0].probe.name,
            seconds=self.op_timeout,
        )
        raise WorkFailedError(
            work.view, work.ask, f"op timed out after {self.op_timeout} s (op_timeout)"
        )

    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """For function probes: one op under the op timeout and retry policy."""
        for attempt in range(self.retries + 1):
            try:
                scope = anyio.fail_after(self.op_timeout) if self.op_timeout else nullcontext()
                with scope:
                    return await func(*args, **kwargs)
            except TimeoutError:
                self.timeouts += 1
                raise
            except Exception as exc:
                if attempt < self.retries and self.retryable(exc):
                    self.retried += 1
                    name = getattr(func, "__qualname__", repr(func))
                    await anyio.sleep(self.backoff_delay(f"call|{name}|{args!r}", attempt))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def run_work(self, work: _Work, handle: Any) -> None:
        """Serve one pooled request for every probe that still wants it."""
        try:
            work.value = await self.attempts(work, handle)
        except WorkFailedError as failure:
            work.failure = failure
        work.done = True

    # -- one view ------------------------------------------------------------------

    async def with_view(
        self, view: ViewRef, works: list[_Work], serve: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Enter ``view`` once, retrying a transient enter failure, and ``serve(handle)`` in it.

        A failed entry fails the view's pending requests; a failed exit keeps
        the answers (they were computed) and is recorded as an incident.
        """
        for attempt in range(self.retries + 1):
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
                elif attempt < self.retries and self.retryable(exc):
                    delay = self.backoff_delay(f"enter|{view.label}", attempt)
                    self.retried += 1
                    self.emit("retry", view.view_id, op="enter", attempt=attempt + 1, delay=delay)
                    await anyio.sleep(delay)
                    continue
                self.fail_pending(works, view, exc)
                return

    async def run_view(self, view: ViewRef, works: list[_Work], workers: int) -> None:
        """Exclusive backend: serve ``works`` in ``view`` with up to ``workers`` tasks."""
        await self.with_view(view, works, lambda handle: self.serve(works, handle, workers))

    def fail_pending(self, works: list[_Work], view: ViewRef, exc: BaseException) -> None:
        for work in works:
            if not work.done:
                work.failure = WorkFailedError(view, work.ask, exc)
                work.done = True

    async def serve(self, works: list[_Work], handle: Any, workers: int) -> None:
        """Serve ``works`` in order with up to ``workers`` tasks sharing the view."""
        pending: Iterator[_Work] = iter(works)

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
        self, view: ViewRef, works: list[_Work], limiter: anyio.CapacityLimiter
    ) -> None:
        """Concurrent-safe backend: one view, requests bounded by the shared limiter."""

        async def one(work: _Work, handle: Any) -> None:
            async with limiter:
                await self.run_work(work, handle)

        async def serve(handle: Any) -> None:
            async with anyio.create_task_group() as group:
                for work in works:
                    group.start_soon(one, work, handle)

        await self.with_view(view, works, serve)

    # -- probes --------------------------------------------------------------------

    def finish(self, state: _ProbeState, result: ProbeResult) -> None:
        state.result = result
        self.ctx.results[state.probe.name] = result
        self.completed += 1
        self.emit(
            "probe_end",
            probe=state.probe.name,
            probe_kind=state.probe.kind,
            verdict=result.verdict.value,
        )
        if self.on_progress is not None:
            self.on_progress(result, self.completed, self.total)

    def finalize(self, state: _ProbeState) -> None:
        probe = state.probe
        assert isinstance(probe, Probe)
        duration = 0.0
        if state.first_start is not None and state.last_end is not None:
            duration = state.last_end - state.first_start
        if state.early is not None:
            self.finish(state, replace(state.early, duration=duration))
            return
        if state.timed_out:
            result = probe.result(
                Verdict.ERROR,
                message=f"probe timed out after {self.probe_timeout} s (probe_timeout)",
                evidence={"timeout": "probe", "seconds": self.probe_timeout},
            )
            self.finish(state, replace(result, duration=duration))
            return
        values: dict[tuple[ViewRef, Ask], Any] = {}
        failures: dict[tuple[ViewRef, Ask], WorkFailedError] = {}
        for key, work in state.works.items():
            if work.failure is not None:
                failures[key] = work.failure
            else:
                values[key] = work.value
        try:
            result = probe.finalize(Answers(values, failures), self.ctx)
        except WorkFailedError as exc:
            result = _error(probe, str(exc), exc.cause)
        except SwaysimError as exc:
            result = _error(probe, str(exc), exc)
        except Exception as exc:
            result = _error(probe, f"probe raised {type(exc).__name__}: {exc}", exc)
        self.finish(state, replace(result, duration=duration))

    async def run_function(self, state: _ProbeState) -> None:
        probe = state.probe
        assert isinstance(probe, FunctionProbe)
        start = anyio.current_time()
        state.first_start = start
        self.emit("probe_start", probe=probe.name, probe_kind=probe.kind)
        # move_on_after, not fail_after: a TimeoutError the function raises
        # itself (an op timeout) is the function's error, not the probe budget.
        deadline = math.inf if self.probe_timeout is None else start + self.probe_timeout
        try:
            with anyio.CancelScope(deadline=deadline) as budget:
                if probe.is_async:
                    raw = await cast("Awaitable[ProbeResult]", probe.func(self.backend, self.ctx))
                else:
                    sync_func = cast("Callable[[Any, ProbeContext], ProbeResult]", probe.func)
                    raw = await run_sync_probe(
                        self.backend, sync_func, self.ctx, op_timeout=self.op_timeout
                    )
            if budget.cancelled_caught:
                self.timeouts += 1
                self.emit("timeout", probe=probe.name, op="probe", seconds=self.probe_timeout)
                result = ProbeResult(
                    probe.name,
                    probe.kind,
                    Verdict.ERROR,
                    message=f"probe timed out after {self.probe_timeout} s (probe_timeout)",
                    evidence={"timeout": "probe", "seconds": self.probe_timeout},
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
                evidence=_error_evidence(exc),
                duration=anyio.current_time() - start,
            )
        state.last_end = anyio.current_time()
        self.finish(state, result)


def _request_keys(state: _ProbeState) -> tuple[tuple[str, str, str], ...]:
    keys = set()
    for view, asks in state.plan.items():
        for ask in asks:
            for prompt in ask.prompts if ask.op == "next_token_dist_batch" else (ask.prompt,):
                keys.add((view.view_id, ask.op, prompt))
    return tuple(sorted(keys))


def _error_evidence(exc: BaseException | str) -> dict[str, Any]:
    if isinstance(exc, str):
        return {"error": exc}
    evidence: dict[str, Any] = {"error": type(exc).__name__}
    if isinstance(exc, InjectedFault):
        evidence.update(
            fault_rule=exc.rule_name, fault_op=exc.op, fault_view=exc.view_id, call=exc.call_index
        )
    return evidence


def _error(probe: Probe, message: str, cause: BaseException | str) -> ProbeResult:
    return probe.result(Verdict.ERROR, message=message, evidence=_error_evidence(cause))


def _check_probes(probes: Sequence[AnyProbe]) -> None:
    """Unique names, resolved null targets, known dependencies, no cycles; else raise."""
    by_name: dict[str, AnyProbe] = {}
    for index, probe in enumerate(probes):
        if not isinstance(probe, Probe | FunctionProbe):
            raise InvalidArgumentError(
                f"probes[{index}]={probe!r} must be a Probe or a FunctionProbe"
            )
        if probe.name in by_name:
            raise InvalidArgumentError(
                f"probes[{index}].name={probe.name!r} is used twice; probe names must be unique"
            )
        by_name[probe.name] = probe
    for probe in probes:
        bind = getattr(probe, "bind", None)
        if callable(bind):
            bind(by_name)
        for dep in probe.requires:
            if dep not in by_name:
                raise InvalidArgumentError(
                    f"probe {probe.name!r} requires {dep!r}, which is not in the suite"
                )
    _topological(probes, by_name)


def _topological(probes: Sequence[AnyProbe], by_name: dict[str, AnyProbe]) -> list[AnyProbe]:
    """Dependencies first, declaration order otherwise; a cycle is an error."""
    order: list[AnyProbe] = []
    state: dict[str, int] = {}

    def visit(probe: AnyProbe, path: tuple[str, ...]) -> None:
        mark = state.get(probe.name, 0)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join((*path, probe.name))
            raise InvalidArgumentError(f"probe dependencies form a cycle: {cycle}")
        state[probe.name] = 1
        for dep in probe.requires:
            visit(by_name[dep], (*path, probe.name))
        state[probe.name] = 2
        order.append(probe)

    for probe in probes:
        visit(probe, ())
    return order


def _pool(states: Iterable[_ProbeState], *, share: bool) -> dict[ViewRef, list[_Work]]:
    """Work per view; with ``share``, equal requests become one work item."""
    per_view: dict[ViewRef, list[_Work]] = {}
    shared: dict[tuple[ViewRef, Ask], _Work] = {}
    for state in states:
        for view, asks in state.plan.items():
            for ask in asks:
                key = (view, ask)
                if key in state.works:
                    continue
                work = shared.get(key) if share else None
                if work is None:
                    work = _Work(view, ask)
                    per_view.setdefault(view, []).append(work)
                    if share:
                        shared[key] = work
                work.needers.append(state)
                state.works[key] = work
    return per_view


async def run_suite(
    backend: Any,
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
    - ``trace``: where runner events go (defaults to the backend's sink).
    """
    concurrency = require_int("concurrency", concurrency, minimum=1)
    if op_timeout is not None:
        op_timeout = require_finite("op_timeout", op_timeout)
        if op_timeout <= 0:
            raise InvalidArgumentError(f"op_timeout={op_timeout!r} must be > 0 or None")
    if probe_timeout is not None:
        probe_timeout = require_finite("probe_timeout", probe_timeout)
        if probe_timeout <= 0:
            raise InvalidArgumentError(f"probe_timeout={probe_timeout!r} must be > 0 or None")
    require_int("retries", retries, minimum=0)
    require_finite("backoff", backoff, minimum=0.0)
    require_finite("backoff_max", backoff_max, minimum=0.0)
    require_int("seed", seed, minimum=0)
    if mode not in ("pooled", "naive"):
        raise InvalidArgumentError(f"mode={mode!r} is not a runner mode; expected pooled or naive")
    retry_types = tuple(retry_on)
    for index, kind in enumerate(retry_types):
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise InvalidArgumentError(f"retry_on[{index}]={kind!r} must be an exception type")
    probes = list(probes)
    _check_probes(probes)
    if trace is None:
        trace = getattr(backend, "trace_sink", None)

    run = _Run(
        backend,
        concurrency=concurrency,
        op_timeout=op_timeout,
        probe_timeout=probe_timeout,
        retries=retries,
        backoff=backoff,
        backoff_max=backoff_max,
        retry_on=retry_types,
        seed=seed,
        trace=trace,
        on_progress=on_progress,
    )
    started = run.origin = anyio.current_time()
    statistics = getattr(backend, "statistics", None)
    before = statistics() if callable(statistics) else None

    states: list[_ProbeState] = []

    def summary(results: tuple[ProbeResult, ...], checked: tuple[bool, str] | None) -> SuiteResult:
        after = statistics() if callable(statistics) else None
        switches = None
        if isinstance(before, BackendStatistics) and isinstance(after, BackendStatistics):
            switches = after.switches - before.switches
        return SuiteResult(
            results=results,
            makespan=anyio.current_time() - started,
            retries=run.retried,
            timeouts=run.timeouts,
            view_switches=switches,
            statistics=after if isinstance(after, BackendStatistics) else None,
            incidents=tuple(run.incidents),
            preflight=checked,
            seed=seed,
            concurrency=concurrency,
            mode=mode,
            requests={state.probe.name: _request_keys(state) for state in states},
        )

    checked: tuple[bool, str] | None = None
    if preflight and isinstance(backend, PreflightCheckable):
        preflight_start = anyio.current_time()
        checked = (False, f"preflight timed out after {probe_timeout} s (probe_timeout)")
        with anyio.move_on_after(probe_timeout) as preflight_scope:
            checked = await backend.preflight_finite_check()
        if preflight_scope.cancelled_caught:
            run.timeouts += 1
        if not checked[0]:
            why = checked[1]
            result = ProbeResult(
                PREFLIGHT_NAME,
                "preflight",
                Verdict.ERROR,
                message=f"backend preflight failed; suite aborted before any probe ran. {why}",
                evidence={"preflight_reason": why},
                duration=anyio.current_time() - preflight_start,
            )
            return summary((result,), checked)

    states.extend(_ProbeState(probe, index) for index, probe in enumerate(probes))
    by_state = {state.probe.name: state for state in states}
    for state in states:
        state.deps = [by_state[name] for name in state.probe.requires]
        state.done = anyio.Event()
        probe = state.probe
        if isinstance(probe, FunctionProbe):
            continue
        try:
            reason: str | None = probe.skip_reason(backend)
            if reason is None:
                plan = {view: list(asks) for view, asks in probe.requests(run.ctx).items()}
                unsupported = [v.supported_by(backend) for v in plan]
                reason = next((r for r in unsupported if r is not None), None)
                state.plan = plan
            if reason is not None:
                state.plan = {}
                state.early = probe.result(Verdict.SKIP, message=f"skipped: {reason}")
        except Exception as exc:
            state.plan = {}
            state.early = _error(probe, f"planning raised {type(exc).__name__}: {exc}", exc)
    run.total = len(states)

    if mode == "naive":
        await _run_naive(run, states)
    else:
        await _run_pooled(run, states, safe=bool(getattr(backend, "safe_for_concurrent_views", 0)))
    results = tuple(state.result for state in states if state.result is not None)
    return summary(results, checked)


async def _run_pooled(run: _Run, states: list[_ProbeState], *, safe: bool) -> None:
    per_view = _pool((s for s in states if isinstance(s.probe, Probe)), share=True)
    views = sorted(per_view, key=ViewRef.sort_key)
    if not safe:
        run.device = anyio.Lock()
    pooled_done = anyio.Event()
    function_slots = anyio.CapacityLimiter(run.concurrency if safe else 1)

    async def complete(state: _ProbeState) -> None:
        for dep in state.deps:
            assert dep.done is not None
            await dep.done.wait()
        if isinstance(state.probe, FunctionProbe):
            if not safe:
                await pooled_done.wait()
            async with function_slots:
                await run.run_function(state)
        else:
            await pooled_done.wait()
            run.finalize(state)
        assert state.done is not None
        state.done.set()

    async with anyio.create_task_group() as group:
        for state in states:
            group.start_soon(complete, state, name=f"swaysim-probe-{state.probe.name}")
        if safe:
            limiter = anyio.CapacityLimiter(run.concurrency)
            async with anyio.create_task_group() as views_group:
                for view in views:
                    views_group.start_soon(
                        run.serve_limited, view, per_view[view], limiter, name=f"view-{view.label}"
                    )
        else:
            for view in views:
                await run.run_view(view, per_view[view], run.concurrency)
        pooled_done.set()


async def _run_naive(run: _Run, states: list[_ProbeState]) -> None:
    by_probe = {id(state.probe): state for state in states}
    order = _topological([s.probe for s in states], {s.probe.name: s.probe for s in states})
    for probe in order:
        state = by_probe[id(probe)]
        if isinstance(probe, FunctionProbe):
            await run.run_function(state)
            continue
        for view, works in _pool([state], share=False).items():
            await run.run_view(view, works, 1)
        run.finalize(state)
