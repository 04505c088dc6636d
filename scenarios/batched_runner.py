"""A user runner that batches next-token requests: the example behind batch_item_failure.toml.

A scenario names it with ``runner = "batched_runner:run_batched"``; the loader finds the
module in the scenario's folder. It shows the custom-runner contract: awaited as
``run_batched(backend, probes, **options)``, it returns a ``SuiteResult`` (with the request
map, so ``expect.no_false_pass`` applies) built from the public probe API.

Per view, every ``next_token_dist`` request of the suite goes out as one
``next_token_dist_batch`` call. When one item of a batch fails, a retryable fault resends
the batch; any other marks that item failed and resends the rest, so only the probes that
needed the item see the failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from swaysim import (
    Answers,
    Ask,
    InjectedFault,
    Probe,
    ProbeContext,
    ProbeResult,
    SuiteResult,
    Verdict,
    ViewRef,
    WorkFailedError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


def _order(probes: Sequence[Probe]) -> list[Probe]:
    """Dependencies (null calibrations) first, declaration order otherwise."""
    by_name = {p.name: p for p in probes}
    done: list[Probe] = []

    def visit(probe: Probe) -> None:
        if probe in done:
            return
        for dep in probe.requires:
            visit(by_name[dep])
        done.append(probe)

    for probe in probes:
        visit(probe)
    return done


async def _serve_view(
    handle: Any,
    view: ViewRef,
    asks: list[Ask],
    values: dict[tuple[ViewRef, Ask], Any],
    failures: dict[tuple[ViewRef, Ask], WorkFailedError],
    retries: int,
) -> int:
    """Answer ``asks`` on one live view; returns how many retries it spent."""
    spent = 0
    batches: dict[int, list[Ask]] = {}
    for ask in asks:
        if ask.op == "next_token_dist":
            batches.setdefault(ask.top_k, []).append(ask)
        else:
            try:
                values[(view, ask)] = await ask.send(handle)
            except Exception as exc:
                failures[(view, ask)] = WorkFailedError(view, ask, exc)
    for top_k, pending in batches.items():
        attempts = 0
        while pending:
            try:
                dists = await handle.next_token_dist_batch([a.prompt for a in pending], top_k=top_k)
            except InjectedFault as exc:
                if exc.retryable and attempts < retries:
                    attempts += 1
                    spent += 1
                    continue
                if exc.item_index is None:
                    for ask in pending:
                        failures[(view, ask)] = WorkFailedError(view, ask, exc)
                    break
                bad = pending.pop(exc.item_index)
                failures[(view, bad)] = WorkFailedError(view, bad, exc)
                continue
            for ask, dist in zip(pending, dists, strict=True):
                values[(view, ask)] = dist
            break
    return spent


async def run_batched(
    backend: Any, probes: Sequence[Probe], *, retries: int = 2, seed: int = 0, **_: Any
) -> SuiteResult:
    """Run ``probes`` with one batched call per view (plus retries)."""
    start = anyio.current_time()
    switches_before = backend.statistics().switches
    by_name = {p.name: p for p in probes}
    for probe in probes:
        bind = getattr(probe, "bind", None)
        if callable(bind):
            bind(by_name)
    ctx = ProbeContext(backend=backend, seed=seed)

    def finish(results: tuple[ProbeResult, ...], retried: int, requests: Any) -> SuiteResult:
        stats = backend.statistics()
        return SuiteResult(
            results=results,
            makespan=anyio.current_time() - start,
            retries=retried,
            timeouts=0,
            view_switches=stats.switches - switches_before,
            statistics=stats,
            seed=seed,
            requests=requests,
        )

    ok, why = await backend.preflight_finite_check()
    if not ok:
        aborted = ProbeResult("__preflight__", "preflight", Verdict.ERROR, message=why)
        return finish((aborted,), 0, {})

    plans = {p.name: p.requests(ctx) for p in probes}
    per_view: dict[ViewRef, dict[Ask, None]] = {}
    for plan in plans.values():
        for view, asks in plan.items():
            per_view.setdefault(view, {}).update(dict.fromkeys(asks))
    values: dict[tuple[ViewRef, Ask], Any] = {}
    failures: dict[tuple[ViewRef, Ask], WorkFailedError] = {}
    retried = 0
    for view in sorted(per_view, key=ViewRef.sort_key):
        async with view.open(backend) as handle:
            retried += await _serve_view(
                handle, view, list(per_view[view]), values, failures, retries
            )

    results: dict[str, ProbeResult] = {}
    for probe in _order(probes):
        keys = [(view, ask) for view, asks in plans[probe.name].items() for ask in asks]
        answers = Answers(
            {k: values[k] for k in keys if k in values},
            {k: failures[k] for k in keys if k in failures},
        )
        try:
            result = probe.finalize(answers, ctx)
        except Exception as exc:
            result = probe.result(Verdict.ERROR, message=f"{type(exc).__name__}: {exc}")
        results[probe.name] = ctx.results[probe.name] = result
    requests = {
        name: tuple(
            sorted(
                (view.view_id, ask.op, ask.prompt) for view, asks in plan.items() for ask in asks
            )
        )
        for name, plan in plans.items()
    }
    return finish(tuple(results[p.name] for p in probes), retried, requests)
