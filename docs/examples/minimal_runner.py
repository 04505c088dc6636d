"""A minimal correct runner, written from the runner contract (docs/runner-contract.md).

``swaysim run scenarios/ --runner docs/examples/minimal_runner.py:run`` passes every
applicable scenario of the library on both loops. It pools every probe's requests per view
and sends each once; it serves views one after another on an exclusive backend (one op at
a time, ``concurrency`` workers so that backoffs overlap other requests) and all at once on
a concurrent-safe one; it retries what an injected fault says is retryable, with capped
backoff; ``op_timeout`` bounds each attempt, ``probe_timeout`` a probe's time in flight.
Function probes (which enter views themselves) run last, one at a time, each whole under
``probe_timeout``.
"""

from __future__ import annotations

import math
from typing import Any

import anyio

from swaysim import (
    Answers,
    FunctionProbe,
    InjectedFault,
    InjectedViewExitError,
    PreflightCheckable,
    ProbeContext,
    ProbeResult,
    Verdict,
    WorkFailedError,
    run_sync_probe,
)


async def run(backend: Any, probes: list[Any], *, concurrency: int = 1,
              op_timeout: float | None = None, probe_timeout: float | None = None,
              retries: int = 2, backoff: float = 0.1, backoff_max: float = 5.0,
              preflight: bool = True, seed: int = 0, **_: Any) -> list[ProbeResult]:  # fmt: skip
    ctx, by_name = ProbeContext(backend=backend, seed=seed), {p.name: p for p in probes}
    for probe in probes:
        probe.bind(by_name)
    if preflight and isinstance(backend, PreflightCheckable):
        ok, why = False, "preflight timed out (probe_timeout)"
        with anyio.move_on_after(probe_timeout):
            ok, why = await backend.preflight_finite_check()
        if not ok:
            return [ProbeResult("__preflight__", "preflight", Verdict.ERROR, message=why)]
    results: dict[str, ProbeResult] = {}
    plans: dict[str, Any] = {}
    pooled: dict[Any, dict[Any, set[str]]] = {}  # view -> ask -> the probes that need it
    for p in probes:
        if isinstance(p, FunctionProbe):
            continue
        plan = plans[p.name] = p.requests(ctx) if p.skip_reason(backend) is None else {}
        reason = p.skip_reason(backend) or next(
            filter(None, (view.supported_by(backend) for view in plan)), None
        )
        if reason is not None:
            results[p.name] = p.result(Verdict.SKIP, message=f"skipped: {reason}")
        for view, asks in plan.items() if reason is None else ():
            for ask in asks:
                pooled.setdefault(view, {}).setdefault(ask, set()).add(p.name)
    values: dict[Any, Any] = {}
    failures: dict[Any, WorkFailedError] = {}
    used = dict.fromkeys(plans, 0.0)  # each probe's seconds in flight
    budget = math.inf if probe_timeout is None else probe_timeout
    exclusive = not backend.safe_for_concurrent_views
    device = anyio.Lock() if exclusive else anyio.CapacityLimiter(concurrency)

    async def fetch(view: Any, ask: Any, needers: set[str], handle: Any) -> None:
        for attempt in range(retries + 1):
            error: Exception | None = None
            async with device:  # one op at a time: waiting for it is not the op's time
                left = max(budget - used[name] for name in needers)
                if left <= 0:  # every probe that needs it is out of time: do not send it
                    failures[view, ask] = WorkFailedError(view, ask, "probe timed out")
                    return
                start = anyio.current_time()
                try:
                    with anyio.fail_after(min(left, op_timeout or math.inf)):
                        values[view, ask] = await ask.send(handle)
                        return
                except Exception as exc:  # a TimeoutError too: a timeout is not retried
                    error = exc
                finally:
                    for name in needers:
                        used[name] += anyio.current_time() - start
            if attempt == retries or not (isinstance(error, InjectedFault) and error.retryable):
                failures[view, ask] = WorkFailedError(view, ask, error or "no answer")
                return
            delay = min(backoff * 2**attempt, backoff_max)
            await anyio.sleep(delay)  # backing off is time in flight too
            for name in needers:
                used[name] += delay

    async def serve(view: Any, asks: dict[Any, set[str]]) -> None:
        for attempt in range(retries + 1):
            entered, pending = False, iter(asks.items())
            try:
                async with view.open(backend) as handle, anyio.create_task_group() as group:
                    entered = True
                    for _ in range(min(concurrency, len(asks)) if exclusive else len(asks)):
                        group.start_soon(work, view, pending, handle)
                return
            except InjectedViewExitError:
                return  # the answers are in: an adapter that failed to unload changes none
            except Exception as exc:
                if entered or attempt == retries or not isinstance(exc, InjectedFault):
                    failures.update({(view, a): WorkFailedError(view, a, exc) for a in asks})
                    return
                await anyio.sleep(min(backoff * 2**attempt, backoff_max))

    async def work(view: Any, pending: Any, handle: Any) -> None:
        for ask, needers in pending:
            await fetch(view, ask, needers, handle)

    async with anyio.create_task_group() as group:
        for view in sorted(pooled, key=lambda v: v.sort_key()):  # ft first: preflight ended there
            if exclusive:
                await serve(view, pooled[view])
            else:
                group.start_soon(serve, view, pooled[view])

    def finish(probe: Any) -> None:  # dependencies (a null calibration) first
        for name in probe.requires:
            finish(by_name[name])
        if isinstance(probe, FunctionProbe):
            return
        if probe.name in results:
            ctx.results[probe.name] = results[probe.name]
            return
        keys = [(view, ask) for view, asks in plans[probe.name].items() for ask in asks]
        answers = Answers(
            {key: values[key] for key in keys if key in values},
            {key: failures[key] for key in keys if key in failures},
        )
        try:
            if used[probe.name] >= budget:
                raise TimeoutError(f"probe timed out after {probe_timeout} s (probe_timeout)")
            results[probe.name] = probe.finalize(answers, ctx)
        except Exception as exc:
            results[probe.name] = probe.result(Verdict.ERROR, message=f"{exc}")
        ctx.results[probe.name] = results[probe.name]

    async def run_function(probe: FunctionProbe) -> ProbeResult:
        try:
            with anyio.move_on_after(probe_timeout):
                if probe.is_async:
                    return probe.finish(await probe.func(backend, ctx), 0.0)  # type: ignore[misc]
                raw = await run_sync_probe(backend, probe.func, ctx, op_timeout=op_timeout)  # type: ignore[arg-type]
                return probe.finish(raw, 0.0)  # type: ignore[arg-type]
            message = f"probe timed out after {probe_timeout} s (probe_timeout)"
        except Exception as exc:
            message = f"probe raised {type(exc).__name__}: {exc}"
        return ProbeResult(probe.name, probe.kind, Verdict.ERROR, message=message)

    for probe in probes:
        finish(probe)
    for probe in probes:  # function probes last, one at a time: they enter views themselves
        if isinstance(probe, FunctionProbe):
            results[probe.name] = ctx.results[probe.name] = await run_function(probe)
    return [results[p.name] for p in probes]
