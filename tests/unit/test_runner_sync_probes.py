"""The runner schedules synchronous probe functions in worker threads through the bridge."""

from __future__ import annotations

from typing import Any

import numpy as np

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    FaultPlan,
    FaultRule,
    FunctionProbe,
    LatencyPlan,
    Probe,
    ProbeContext,
    ProbeResult,
    Verdict,
    run_suite,
)


def top_gap_sync(backend: Any, ctx: ProbeContext) -> ProbeResult:
    """dlm-sway style: plain context managers and plain calls."""
    with backend.as_base() as base:
        base_dist = base.next_token_dist("q", top_k=8)
    with backend.as_finetuned() as ft:
        ft_dist = ft.next_token_dist("q", top_k=8)
    gap = float(ft_dist.logprobs[0] - base_dist.logprobs[0])
    return ProbeResult("set-by-runner", "top_gap", Verdict.PASS, raw=gap)


async def top_gap_async(backend: Any, ctx: ProbeContext) -> ProbeResult:
    async with backend.as_base() as base:
        base_dist = await base.next_token_dist("q", top_k=8)
    async with backend.as_finetuned() as ft:
        ft_dist = await ft.next_token_dist("q", top_k=8)
    gap = float(ft_dist.logprobs[0] - base_dist.logprobs[0])
    return ProbeResult("set-by-runner", "top_gap", Verdict.PASS, raw=gap)


def test_sync_and_async_functions_are_told_apart() -> None:
    assert not FunctionProbe("s", top_gap_sync).is_async
    assert FunctionProbe("a", top_gap_async).is_async


async def test_a_sync_probe_gets_the_same_numbers_as_an_async_one() -> None:
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(0.25)))
    suite = await run_suite(
        backend,
        [FunctionProbe("sync", top_gap_sync), FunctionProbe("async", top_gap_async)],
        concurrency=4,
    )
    sync, async_ = suite.result("sync"), suite.result("async")
    assert sync.verdict is Verdict.PASS
    assert sync.name == "sync"
    assert sync.raw == async_.raw
    assert sync.raw is not None
    assert np.isclose(sync.raw, np.log(0.125) + 0.1, atol=1e-3)
    assert backend.is_free()


async def test_sync_probes_never_collide_with_pooled_work_on_a_strict_backend() -> None:
    backend = AsyncDummyDifferentialBackend(
        exclusivity="strict", latency=LatencyPlan(default=Constant(0.1))
    )
    probes: list[Probe | FunctionProbe] = [
        DeltaKL("dkl", [f"p{i}" for i in range(6)]),
        FunctionProbe("sync-1", top_gap_sync),
        FunctionProbe("sync-2", top_gap_sync),
        FunctionProbe("async-1", top_gap_async),
    ]
    suite = await run_suite(backend, probes, concurrency=8)
    assert {r.name: r.verdict for r in suite.results} == dict.fromkeys(
        ("dkl", "sync-1", "sync-2", "async-1"), Verdict.PASS
    )
    assert backend.statistics().peak_live_views == 1


async def test_a_hung_sync_probe_times_out_in_virtual_time_and_frees_the_gate() -> None:
    backend = AsyncDummyDifferentialBackend(
        faults=FaultPlan((FaultRule("hang", views=("ft",)),)),
    )
    suite = await run_suite(
        backend,
        [FunctionProbe("sync", top_gap_sync), DeltaKL("other", ["x"], null=None)],
        probe_timeout=30.0,
        op_timeout=5.0,
        preflight=False,
    )
    sync = suite.result("sync")
    assert sync.verdict is Verdict.ERROR
    assert "TimeoutError" in sync.message, "the op timeout, not the probe budget, stopped it"
    assert 5.0 <= sync.duration < 6.0
    assert suite.result("other").verdict is Verdict.ERROR
    assert backend.is_free()
    assert backend.statistics().live_views == 0
