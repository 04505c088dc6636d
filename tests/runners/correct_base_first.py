"""A second correct runner: another visit order and another structure than runners/correct.py.

Same contract, same verdicts and scores as :func:`~swaysim.run_suite`, written independently
from the public API so that a library expectation that only holds for one runner's
incidental choices shows up as a difference between the two:

- views in another order: base, ft, null views by seed, scaled views by lam descending
  (after preflight, which ends on ft, this costs one swap more than ft first);
- one task per view; on an exclusive backend each view task waits for the previous view's
  task to finish (a baton), on a concurrent-safe one they all run at once;
- one task per distinct request of a view (at most ``concurrency`` in flight), the answers
  shared by every probe of the suite that asked for that request in that view entry;
- one task per probe, finishing when its dependencies and the pooled work have: function
  probes run then, one at a time on an exclusive backend, up to ``concurrency`` otherwise;
- backoff with seeded jitter (up to +25 %, from hashlib, a function of the request);
- returns a :class:`~swaysim.SuiteResult` with its own counters (retries, timeouts), the
  request map and the exit incidents.
"""

from __future__ import annotations

import hashlib
import math
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
    SuiteResult,
    SwaysimError,
    Verdict,
    ViewRef,
    WorkFailedError,
    run_sync_probe,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from swaysim import Ask, ScoringModel

_P = ParamSpec("_P")
_T = TypeVar("_T")
Key = tuple[ViewRef, "Ask"]


def visit_key(view: ViewRef) -> tuple[int, float]:
    """base, ft, null by seed, scaled by lam descending."""
    if view.kind == "null":
        return (2, float(view.seed or 0) + view.init_scale / 10 + view.rank_scale / 1000)
    if view.kind == "scaled":
        return (3, -float(view.lam or 0.0))
    return (0 if view.kind == "base" else 1, 0.0)


class TimedOut(Exception):
    """An op or a probe ran out of time: final, never retried."""


class Meter:
    """A probe's in-flight loop time (requests sent or backing off), for ``probe_timeout``."""

    def __init__(self, limit: float | None) -> None:
        self.limit, self.spent, self.busy, self.since, self.expired = limit, 0.0, 0, 0.0, False

    def left(self, now: float) -> float:
        if self.limit is None:
            return math.inf
        return self.limit - self.spent - (now - self.since if self.busy else 0.0)


async def run(backend: Any, probes: Sequence[Probe | FunctionProbe], **options: Any) -> SuiteResult:
    """Run ``probes`` on ``backend`` and return a SuiteResult (results in declaration order)."""
    return await _Suite(backend, list(probes), **options).go()


class _Suite:
    def __init__(
        self,
        backend: Any,
        probes: list[Probe | FunctionProbe],
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
        **_: Any,
    ) -> None:
        self.backend, self.probes = backend, probes
        self.opts = (concurrency, op_timeout, probe_timeout, retries, backoff, backoff_max)
        self.retry_on, self.preflight, self.seed = tuple(retry_on), preflight, seed
        self.safe = bool(backend.safe_for_concurrent_views)
        self.ctx = ProbeContext(backend=backend, seed=seed, call=self.call)
        self.meters = {p.name: Meter(probe_timeout) for p in probes}
        self.asked: dict[str, list[Key]] = {}
        self.needers: dict[Key, list[str]] = {}
        self.answers: dict[Key, object] = {}
        self.failures: dict[Key, WorkFailedError] = {}
        self.retried = self.timeouts = 0
        self.incidents: list[str] = []

    async def go(self) -> SuiteResult:
        start = anyio.current_time()
        names = {p.name: p for p in self.probes}
        for probe in self.probes:
            probe.bind(names)
        checked = None
        if self.preflight and isinstance(self.backend, PreflightCheckable):
            checked = await self.check()
            if not checked[0]:
                abort = ProbeResult(
                    "__preflight__",
                    "preflight",
                    Verdict.ERROR,
                    message=f"backend preflight failed; suite aborted before any probe ran. "
                    f"{checked[1]}",
                    evidence={"preflight_reason": checked[1]},
                )
                return self.summary((abort,), start, checked)
        early = {p.name: r for p in self.probes if (r := self.plan(p)) is not None}
        per_view: dict[ViewRef, list[Ask]] = {}
        for view, ask in self.needers:
            per_view.setdefault(view, []).append(ask)
        done = {p.name: anyio.Event() for p in self.probes}
        pooled = anyio.Event()
        slots = anyio.CapacityLimiter(self.opts[0] if self.safe else 1)
        async with anyio.create_task_group() as group:
            for probe in self.probes:
                group.start_soon(self.finish, probe, early.get(probe.name), done, pooled, slots)
            async with anyio.create_task_group() as views:
                baton: anyio.Event | None = None
                for view in sorted(per_view, key=visit_key):
                    mine = anyio.Event()
                    views.start_soon(self.view_task, view, per_view[view], baton, mine)
                    baton = None if self.safe else mine
            pooled.set()
        results = tuple(self.ctx.results[p.name] for p in self.probes)
        return self.summary(results, start, checked)

    async def check(self) -> tuple[bool, str]:
        limit = self.opts[2]
        with anyio.move_on_after(limit):
            found: tuple[bool, str] = await self.backend.preflight_finite_check()
            return found
        self.timeouts += 1
        return (False, f"preflight timed out after {limit} s (probe_timeout)")

    def summary(
        self, results: tuple[ProbeResult, ...], start: float, checked: tuple[bool, str] | None
    ) -> SuiteResult:
        requests = {}
        for name, keys in self.asked.items():
            flat = set()
            for view, ask in keys:
                for prompt in ask.prompts if ask.op == "next_token_dist_batch" else (ask.prompt,):
                    flat.add((view.view_id, str(ask.op), prompt))
            requests[name] = tuple(sorted(flat))
        return SuiteResult(
            results=results,
            makespan=anyio.current_time() - start,
            retries=self.retried,
            timeouts=self.timeouts,
            view_switches=None,
            statistics=None,
            incidents=tuple(self.incidents),
            preflight=checked,
            seed=self.seed,
            concurrency=self.opts[0],
            requests=requests,
        )

    def plan(self, probe: Probe | FunctionProbe) -> ProbeResult | None:
        if isinstance(probe, FunctionProbe):
            return None
        try:
            why = probe.skip_reason(self.backend)
            wanted = {} if why else probe.requests(self.ctx)
            why = why or next(filter(None, (v.supported_by(self.backend) for v in wanted)), None)
        except Exception as exc:
            return self.error(probe, f"planning raised {type(exc).__name__}: {exc}", exc)
        if why:
            return probe.result(Verdict.SKIP, message=f"skipped: {why}")
        keys = self.asked[probe.name] = list(
            dict.fromkeys((v, a) for v, s in wanted.items() for a in s)
        )
        for key in keys:
            self.needers.setdefault(key, []).append(probe.name)
        return None

    # -- views and requests -------------------------------------------------------------

    async def view_task(
        self, view: ViewRef, asks: list[Ask], after: anyio.Event | None, finished: anyio.Event
    ) -> None:
        try:
            if after is not None:
                await after.wait()
            await self.enter_and_serve(view, asks)
        finally:
            finished.set()

    async def enter_and_serve(self, view: ViewRef, asks: list[Ask]) -> None:
        retries = self.opts[3]
        attempt = 0
        while True:
            inside = False
            try:
                async with view.open(self.backend) as handle:
                    inside = True
                    limiter = self.limiter if self.safe else anyio.CapacityLimiter(self.opts[0])
                    async with anyio.create_task_group() as group:
                        for ask in asks:
                            group.start_soon(self.request, view, ask, handle, limiter)
                return
            except InjectedViewExitError as exc:
                self.incidents.append(f"view {view.label}: {exc}")
                return
            except Exception as exc:
                if inside:
                    self.incidents.append(f"view {view.label}: {type(exc).__name__}: {exc}")
                    return
                if attempt < retries and self.retryable(exc):
                    self.retried += 1
                    await anyio.sleep(self.delay(f"enter|{view.label}", attempt))
                    attempt += 1
                    continue
                for ask in asks:
                    self.failures[(view, ask)] = WorkFailedError(view, ask, exc)
                return

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        found = getattr(self, "_limiter", None)
        if found is None:
            found = self._limiter = anyio.CapacityLimiter(self.opts[0])
        return found

    @property
    def device(self) -> anyio.Lock | None:
        if self.safe:
            return None
        found = getattr(self, "_device", None)
        if found is None:
            found = self._device = anyio.Lock()
        return found

    async def request(
        self, view: ViewRef, ask: Ask, handle: ScoringModel, limiter: anyio.CapacityLimiter
    ) -> None:
        key = (view, ask)
        async with limiter:
            try:
                self.answers[key] = await self.with_retries(key, handle)
            except TimedOut as exc:
                self.failures[key] = WorkFailedError(view, ask, str(exc))
            except Exception as exc:
                self.failures[key] = WorkFailedError(view, ask, exc)

    async def with_retries(self, key: Key, handle: ScoringModel) -> object:
        view, ask = key
        retries, op_timeout = self.opts[3], self.opts[1]
        for attempt in range(retries + 1):
            meters = self.live(key)
            device = self.device
            try:
                if device is not None:
                    await device.acquire()
                try:
                    return await self.metered(meters, self.one_op, ask, handle, op_timeout)
                finally:
                    if device is not None:
                        device.release()
            except TimedOut:
                raise
            except Exception as exc:
                if attempt == retries or not self.retryable(exc):
                    raise
            self.retried += 1
            await self.metered(meters, anyio.sleep, self.delay(f"{view.label}|{ask!r}", attempt))
        raise AssertionError("unreachable")

    async def one_op(self, ask: Ask, handle: ScoringModel, op_timeout: float | None) -> object:
        with anyio.move_on_after(op_timeout):
            value: object = await ask.send(handle)
            return value
        self.timeouts += 1
        raise TimedOut(f"op timed out after {op_timeout} s (op_timeout)")

    def live(self, key: Key) -> list[Meter]:
        now = anyio.current_time()
        meters = []
        for name in self.needers[key]:
            meter = self.meters[name]
            if not meter.expired and meter.left(now) <= 0:
                self.expire(meter)
            if not meter.expired:
                meters.append(meter)
        if not meters:
            raise TimedOut("every probe needing it timed out")
        return meters

    def expire(self, meter: Meter) -> None:
        meter.expired = True
        self.timeouts += 1

    async def metered(
        self, meters: list[Meter], func: Callable[_P, Awaitable[_T]], *a: _P.args, **k: _P.kwargs
    ) -> _T:
        now = anyio.current_time()
        for meter in meters:
            if not meter.busy:
                meter.since = now
            meter.busy += 1
        deadlines = {id(meter): now + meter.left(now) for meter in meters}
        with anyio.CancelScope(deadline=max(deadlines.values())):
            try:
                return await func(*a, **k)
            finally:
                end = anyio.current_time()
                for meter in meters:
                    meter.busy -= 1
                    if not meter.busy:
                        meter.spent += end - meter.since
        for meter in meters:
            if not meter.expired and deadlines[id(meter)] <= end:
                self.expire(meter)
        raise TimedOut(f"probe timed out after {self.opts[2]} s (probe_timeout)")

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, InjectedFault):
            return exc.retryable
        return bool(self.retry_on) and isinstance(exc, self.retry_on)

    def delay(self, what: str, attempt: int) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{what}|{attempt}".encode(), digest_size=8).digest()
        jitter = int.from_bytes(digest, "big") / 2**64
        return min(self.opts[5], self.opts[4] * 2.0**attempt) * (1.0 + 0.25 * jitter)

    async def call(
        self, func: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        retries, op_timeout = self.opts[3], self.opts[1]
        attempt = 0
        while True:
            try:
                with anyio.fail_after(op_timeout):
                    return await func(*args, **kwargs)
            except TimeoutError:
                self.timeouts += 1
                raise
            except Exception as exc:
                if attempt >= retries or not self.retryable(exc):
                    raise
            self.retried += 1
            await anyio.sleep(self.delay(f"call|{func!r}|{args!r}", attempt))
            attempt += 1

    # -- probes ---------------------------------------------------------------------------

    async def finish(
        self,
        probe: Probe | FunctionProbe,
        early: ProbeResult | None,
        done: dict[str, anyio.Event],
        pooled: anyio.Event,
        slots: anyio.CapacityLimiter,
    ) -> None:
        for name in probe.requires:
            await done[name].wait()
        if isinstance(probe, FunctionProbe):
            if not self.safe:
                await pooled.wait()
            async with slots:
                result = await self.function(probe)
        else:
            await pooled.wait()
            result = early or self.judge(probe)
        self.ctx.results[probe.name] = result
        done[probe.name].set()

    def judge(self, probe: Probe) -> ProbeResult:
        if self.meters[probe.name].expired:
            return self.out_of_time(probe)
        keys = self.asked[probe.name]
        values = {k: self.answers[k] for k in keys if k in self.answers}
        failures = {k: self.failures[k] for k in keys if k in self.failures}
        try:
            return probe.finalize(Answers(values, failures), self.ctx)
        except WorkFailedError as exc:
            return self.error(probe, str(exc), exc.cause)
        except SwaysimError as exc:
            return self.error(probe, str(exc), exc)
        except Exception as exc:
            return self.error(probe, f"probe raised {type(exc).__name__}: {exc}", exc)

    def out_of_time(self, probe: Probe | FunctionProbe) -> ProbeResult:
        budget = self.opts[2]
        return ProbeResult(
            probe.name,
            probe.kind,
            Verdict.ERROR,
            message=f"probe timed out after {budget} s (probe_timeout)",
            evidence={"timeout": "probe", "seconds": budget},
        )

    def error(
        self, probe: Probe | FunctionProbe, message: str, cause: BaseException | str
    ) -> ProbeResult:
        evidence: dict[str, object] = {
            "error": cause if isinstance(cause, str) else type(cause).__name__
        }
        if isinstance(cause, InjectedFault):
            evidence |= {"fault_rule": cause.rule_name, "fault_op": cause.op}
            evidence |= {"fault_view": cause.view_id, "call": cause.call_index}
        return ProbeResult(
            probe.name, probe.kind, Verdict.ERROR, message=message, evidence=evidence
        )

    async def function(self, probe: FunctionProbe) -> ProbeResult:
        budget = self.opts[2]
        start = anyio.current_time()
        try:
            with anyio.move_on_after(budget) as scope:
                if probe.is_async:
                    raw = await probe.func(self.backend, self.ctx)  # type: ignore[misc]
                else:
                    raw = await run_sync_probe(
                        self.backend,
                        probe.func,  # type: ignore[arg-type]
                        self.ctx,
                        op_timeout=self.opts[1],
                    )
            if scope.cancelled_caught:
                self.timeouts += 1
                return self.out_of_time(probe)
            return probe.finish(raw, anyio.current_time() - start)
        except Exception as exc:
            return self.error(probe, f"probe raised {type(exc).__name__}: {exc}", exc)
