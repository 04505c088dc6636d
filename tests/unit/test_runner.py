"""run_suite: preflight, pooling per view, sharing, ordering, timeouts, cancellation.

Fault-specific outcomes live in test_runner_faults.py, the parity property
in test_runner_parity.py, the probes' own verdict logic in
test_reference_probes.py.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import swaysim
import swaysim._runner.suite
from swaysim import (
    BASE,
    FT,
    AdapterAblation,
    Answers,
    Ask,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    FaultPlan,
    FaultRule,
    FunctionProbe,
    InvalidArgumentError,
    LatencyPlan,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    Probe,
    ProbeContext,
    ProbeResult,
    TokenDist,
    TraceEvent,
    Verdict,
    ViewRef,
    run_suite,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

PROMPTS = ["q1", "q2", "q3"]


class Recorder:
    """A trace sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        self.events.append(event)

    def of_kind(self, kind: str) -> list[TraceEvent]:
        return [e for e in self.events if e.kind == kind]


def reference_suite() -> list[Probe]:
    """Every reference probe kind; views: base, ft, 3 scaled, 2 null."""
    return [
        DeltaKL("dkl", PROMPTS, null="null_dkl"),
        NullAdapter("null_dkl", "dkl", seeds=(0, 1), init_scale=0.5),
        AdapterAblation("ablation", PROMPTS[:2], lams=(0.0, 0.5, 1.0)),
        PreferenceFlip("pref", [("q1", "yes", "no")]),
        PerplexityShift("ppl", ["one two three", "four five"]),
    ]


REFERENCE_VIEWS = {
    "base",
    "ft",
    "scaled_0.00",
    "scaled_0.50",
    "scaled_1.00",
    "null_0",
    "null_1",
}


def slow_backend(**kwargs: Any) -> AsyncDummyDifferentialBackend:
    latency = LatencyPlan(default=Constant(1.0), view_switch=Constant(0.5))
    return AsyncDummyDifferentialBackend(latency=latency, **kwargs)


def canonical(result: swaysim.SuiteResult) -> str:
    return json.dumps(result.to_dict(include_timing=False), sort_keys=True)


# -- arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names", "field"),
    [
        ({"concurrency": 0}, "concurrency=0", "concurrency"),
        ({"op_timeout": 0.0}, "op_timeout=0.0", "op_timeout"),
        ({"probe_timeout": -1.0}, "probe_timeout=-1.0", "probe_timeout"),
        ({"op_timeout": float("nan")}, "op_timeout=nan", "op_timeout"),
        ({"retries": -1}, "retries=-1", "retries"),
        ({"backoff": -0.5}, "backoff=-0.5", "backoff"),
        ({"seed": -3}, "seed=-3", "seed"),
        ({"mode": "eager"}, "mode='eager'", "mode"),
        ({"retry_on": [ValueError, 3]}, "retry_on[1]=3", "retry_on[1]"),
    ],
)
async def test_invalid_arguments_name_the_argument(
    kwargs: dict[str, Any], names: str, field: str
) -> None:
    backend = AsyncDummyDifferentialBackend()
    with pytest.raises(
        InvalidArgumentError, match=names.replace("[", r"\[").replace("]", r"\]")
    ) as raised:
        await run_suite(backend, [DeltaKL("dkl", PROMPTS)], **kwargs)
    assert backend.statistics().entries == 0
    assert raised.value.field == field


async def test_an_invalid_option_carries_the_value_given() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        await run_suite(AsyncDummyDifferentialBackend(), [], op_timeout=-2)
    assert (raised.value.field, raised.value.value, raised.value.has_value) == (
        "op_timeout",
        -2,
        True,
    )
    with pytest.raises(InvalidArgumentError) as raised:
        await run_suite(AsyncDummyDifferentialBackend(), [DeltaKL("a", ["q"]), DeltaKL("a", ["q"])])
    assert (raised.value.field, raised.value.value) == ("probes[1].name", "a")
    with pytest.raises(InvalidArgumentError) as raised:
        await run_suite(AsyncDummyDifferentialBackend(), [DeltaKL("a", ["q"], null="gone")])
    assert (raised.value.field, raised.value.value) == ("probes[0].requires", "gone")


async def test_duplicate_names_missing_dependencies_and_cycles_are_rejected() -> None:
    backend = AsyncDummyDifferentialBackend()
    with pytest.raises(InvalidArgumentError, match="'dkl' is used twice"):
        await run_suite(backend, [DeltaKL("dkl", PROMPTS), DeltaKL("dkl", PROMPTS)])
    with pytest.raises(InvalidArgumentError, match="requires 'nowhere'"):
        await run_suite(backend, [DeltaKL("dkl", PROMPTS, null="nowhere")])

    async def body(backend: Any, ctx: ProbeContext) -> ProbeResult:
        return ProbeResult("x", "function", Verdict.PASS)

    cycle = [
        FunctionProbe("a", body, requires=["b"]),
        FunctionProbe("b", body, requires=["a"]),
    ]
    with pytest.raises(InvalidArgumentError, match="cycle: a -> b -> a"):
        await run_suite(backend, cycle)
    with pytest.raises(InvalidArgumentError, match="must be a Probe or a FunctionProbe"):
        await run_suite(backend, ["dkl"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="target='ppl' must name a numeric"):
        await run_suite(backend, [NullAdapter("n", "ppl")])
    assert backend.statistics().entries == 0


# -- preflight ------------------------------------------------------------------------


async def test_failed_preflight_is_one_error_and_no_probe_runs() -> None:
    nan_everywhere = FaultPlan((FaultRule("nan", name="nan-all", ops=("next_token_dist",)),))
    backend = AsyncDummyDifferentialBackend(faults=nan_everywhere)
    seen: list[str] = []
    result = await run_suite(
        backend, reference_suite(), on_progress=lambda r, done, total: seen.append(r.name)
    )
    assert result.aborted
    assert [r.name for r in result.results] == ["__preflight__"]
    only = result.results[0]
    assert only.verdict is Verdict.ERROR
    assert "non-finite" in only.message
    assert result.preflight is not None
    assert result.preflight[0] is False
    assert only.evidence["preflight_reason"] == result.preflight[1]
    stats = backend.statistics()
    # Preflight asks base then stops at the first bad view: no probe request was sent.
    assert dict(stats.calls_per_op) == {"next_token_dist": 1}
    assert seen == []


async def test_preflight_false_skips_the_check() -> None:
    nan_everywhere = FaultPlan((FaultRule("nan", ops=("next_token_dist",)),))
    backend = AsyncDummyDifferentialBackend(faults=nan_everywhere)
    result = await run_suite(backend, [DeltaKL("dkl", PROMPTS)], preflight=False)
    assert not result.aborted
    assert result.preflight is None
    # The probe meets the NaNs itself, and says so instead of passing.
    assert result.verdicts == {"dkl": Verdict.ERROR}
    assert "non-finite" in result.result("dkl").message


# -- pooling on an exclusive backend -------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4, 32])
async def test_pooled_mode_enters_each_distinct_view_once(concurrency: int) -> None:
    backend = slow_backend()
    result = await run_suite(backend, reference_suite(), concurrency=concurrency, preflight=False)
    stats = backend.statistics()
    assert dict(stats.entries_per_view) == dict.fromkeys(REFERENCE_VIEWS, 1)
    assert result.view_switches == len(REFERENCE_VIEWS)
    assert stats.peak_live_views == 1
    assert backend.is_free()


async def test_preflight_ends_on_ft_so_the_suite_costs_one_extra_switch() -> None:
    backend = slow_backend()
    result = await run_suite(backend, reference_suite(), preflight=True)
    stats = backend.statistics()
    # Preflight enters base then ft; the suite starts on ft (no switch), then base again.
    expected = dict.fromkeys(REFERENCE_VIEWS, 1) | {"base": 2, "ft": 2}
    assert dict(stats.entries_per_view) == expected
    assert result.view_switches == len(REFERENCE_VIEWS) + 1


async def test_views_are_entered_in_canonical_order_whatever_the_declaration_order() -> None:
    recorder = Recorder()
    backend = AsyncDummyDifferentialBackend(trace=recorder)
    probes: list[Probe] = [
        NullAdapter("null_dkl", "dkl", seeds=(7, 2)),
        AdapterAblation("ablation", ["q1"], lams=(1.25, 1.0, 0.25)),
        DeltaKL("dkl", ["q1"]),
    ]
    await run_suite(backend, probes, preflight=False)
    entered = [e.view for e in recorder.of_kind("view_enter")]
    assert entered == [
        "ft",
        "base",
        "scaled_0.25",
        "scaled_1.00",
        "scaled_1.25",
        "null_2",
        "null_7",
    ]


async def test_equal_requests_are_sent_once() -> None:
    backend = AsyncDummyDifferentialBackend()
    probes: list[Probe] = [
        DeltaKL("a", ["q1", "q2"]),
        DeltaKL("b", ["q2", "q3"]),
        DeltaKL("c", ["q3"], divergence="kl"),
    ]
    result = await run_suite(backend, probes, preflight=False)
    assert set(result.verdicts.values()) == {Verdict.PASS}
    # Three distinct prompts on two views, however many probes ask.
    assert dict(backend.statistics().calls_per_view) == {"base": 3, "ft": 3}
    assert result.requests["a"] == (
        ("base", "next_token_dist", "q1"),
        ("base", "next_token_dist", "q2"),
        ("ft", "next_token_dist", "q1"),
        ("ft", "next_token_dist", "q2"),
    )


async def test_exclusive_backend_serves_one_op_at_a_time_at_any_concurrency() -> None:
    # 6 prompts x 2 views = 12 requests of 1 s: an exclusive backend is one device.
    probes = [DeltaKL("dkl", [f"p{i}" for i in range(6)])]
    for concurrency in (1, 4, 32):
        backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(1.0)))
        result = await run_suite(backend, probes, concurrency=concurrency, preflight=False)
        assert result.makespan == pytest.approx(12.0)


@pytest.mark.parametrize(("concurrency", "makespan"), [(1, 12.0), (4, 3.0), (5, 3.0), (12, 1.0)])
async def test_concurrent_safe_backend_runs_up_to_concurrency_requests_at_once(
    concurrency: int, makespan: float
) -> None:
    backend = AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=True, latency=LatencyPlan(default=Constant(1.0))
    )
    probes = [DeltaKL("dkl", [f"p{i}" for i in range(6)])]
    result = await run_suite(backend, probes, concurrency=concurrency, preflight=False)
    assert result.makespan == pytest.approx(makespan)
    assert result.verdicts == {"dkl": Verdict.PASS}
    assert backend.statistics().peak_live_views == 2


@pytest.mark.parametrize("concurrency", [1, 4, 32])
@pytest.mark.parametrize("mode", ["pooled", "naive"])
async def test_strict_exclusivity_never_conflicts_under_the_runner(
    concurrency: int, mode: swaysim._runner.suite.RunMode
) -> None:
    async def manual(backend: Any, ctx: ProbeContext) -> ProbeResult:
        async with backend.as_base() as base:
            low = await base.logprob_of("q1", "yes")
        async with backend.as_finetuned() as ft:
            high = await ft.logprob_of("q1", "yes")
        return ProbeResult("manual", "function", Verdict.PASS, raw=high - low)

    probes: list[Probe | FunctionProbe] = [*reference_suite(), FunctionProbe("manual", manual)]
    backend = slow_backend(exclusivity="strict")
    result = await run_suite(backend, probes, concurrency=concurrency, mode=mode)
    assert Verdict.ERROR not in result.verdicts.values(), result.results
    assert backend.statistics().peak_live_views == 1
    assert backend.is_free()


async def test_naive_mode_enters_views_per_probe_and_agrees_with_pooled() -> None:
    pooled_backend = slow_backend()
    pooled = await run_suite(pooled_backend, reference_suite(), preflight=False)
    naive_backend = slow_backend()
    naive = await run_suite(naive_backend, reference_suite(), preflight=False, mode="naive")
    assert canonical(naive) == canonical(pooled)
    assert naive.mode == "naive"
    entries = naive_backend.statistics().entries_per_view
    # Per probe and view once: base by dkl, null_dkl, ablation, pref and ppl.
    assert entries["base"] == 5
    assert entries["ft"] == 3
    assert naive.view_switches is not None
    assert pooled.view_switches is not None
    assert naive.view_switches > pooled.view_switches
    assert naive.makespan > pooled.makespan


async def test_naive_mode_runs_dependencies_first_then_declaration_order() -> None:
    order: list[str] = []
    backend = AsyncDummyDifferentialBackend()
    await run_suite(
        backend,
        [
            PerplexityShift("ppl", ["a b"]),
            DeltaKL("dkl", ["q1"], null="null_dkl"),
            NullAdapter("null_dkl", "dkl", seeds=(0, 1)),
        ],
        mode="naive",
        on_progress=lambda r, done, total: order.append(r.name),
    )
    assert order == ["ppl", "null_dkl", "dkl"]


# -- dependencies, progress, results -----------------------------------------------------


async def test_null_calibration_finishes_before_its_dependents_whatever_the_order() -> None:
    progress: list[tuple[str, int, int]] = []
    backend = AsyncDummyDifferentialBackend()
    result = await run_suite(
        backend,
        reference_suite(),
        on_progress=lambda r, done, total: progress.append((r.name, done, total)),
    )
    names = [name for name, _, _ in progress]
    assert names.index("null_dkl") < names.index("dkl")
    assert [done for _, done, _ in progress] == [1, 2, 3, 4, 5]
    assert {total for _, _, total in progress} == {5}
    # Results stay in declaration order.
    assert [r.name for r in result.results] == [p.name for p in reference_suite()]
    assert result.result("dkl").z is not None


async def test_suite_result_accessors() -> None:
    backend = AsyncDummyDifferentialBackend()
    result = await run_suite(backend, reference_suite(), concurrency=3, seed=11)
    assert result.result("ppl").verdict is Verdict.PASS
    with pytest.raises(InvalidArgumentError, match="no probe named 'nope'"):
        result.result("nope")
    full = result.to_dict()
    assert full["seed"] == 11
    assert full["concurrency"] == 3
    assert full["mode"] == "pooled"
    assert full["statistics"]["entries"] == backend.statistics().entries
    assert all("duration" in r for r in full["results"])
    bare = result.to_dict(include_timing=False)
    assert set(bare) == {"seed", "aborted", "results"}
    assert all("duration" not in r for r in bare["results"])
    json.dumps(full)


class _PlanningFails(Probe):
    kind = "broken"

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        raise RuntimeError("cannot plan")

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        raise AssertionError("never finalized")


class _FinalizeFails(Probe):
    kind = "broken"

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        return {FT: [Ask.next_token_dist("q1")]}

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        answers.get(FT, Ask.next_token_dist("q1"))
        raise ZeroDivisionError("oops")


class _AsksOutsidePlan(Probe):
    kind = "broken"

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        return {FT: [Ask.next_token_dist("q1")]}

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        answers.get(BASE, Ask.next_token_dist("q1"))
        raise AssertionError("unreachable")


class _SkipsHere(Probe):
    kind = "picky"

    def skip_reason(self, backend: object) -> str | None:
        return "not on this backend"

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        raise AssertionError("a skipped probe is never planned")

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        raise AssertionError("a skipped probe is never finalized")


async def test_a_broken_probe_is_an_error_and_leaves_the_others_alone() -> None:
    backend = AsyncDummyDifferentialBackend()
    alone = await run_suite(AsyncDummyDifferentialBackend(), reference_suite())
    probes = [
        _PlanningFails("plans"),
        *reference_suite(),
        _FinalizeFails("finalizes"),
        _AsksOutsidePlan("outside"),
        _SkipsHere("skips"),
    ]
    result = await run_suite(backend, probes)
    assert result.verdicts["plans"] is Verdict.ERROR
    assert "planning raised RuntimeError: cannot plan" in result.result("plans").message
    assert result.verdicts["finalizes"] is Verdict.ERROR
    assert "ZeroDivisionError" in result.result("finalizes").message
    assert result.verdicts["outside"] is Verdict.ERROR
    assert "was not among the probe's requests" in result.result("outside").message
    assert result.verdicts["skips"] is Verdict.SKIP
    assert "not on this backend" in result.result("skips").message
    for probe in alone.results:
        assert result.result(probe.name).to_dict(include_timing=False) == probe.to_dict(
            include_timing=False
        )


# -- function probes ------------------------------------------------------------------------


async def test_function_probes_run_with_the_retry_policy_through_ctx_call() -> None:
    transient = FaultPlan((FaultRule("transient", name="once", ops=("logprob_of",), nth=1),))
    backend = AsyncDummyDifferentialBackend(faults=transient)

    async def margin(backend: Any, ctx: ProbeContext) -> ProbeResult:
        assert ctx.call is not None
        async with backend.as_finetuned() as ft:
            value = await ctx.call(ft.logprob_of, "q1", "yes")
        return ProbeResult("ignored", "margin", Verdict.PASS, raw=value)

    async def not_a_result(backend: Any, ctx: ProbeContext) -> ProbeResult:
        return "PASS"  # type: ignore[return-value]

    async def raises(backend: Any, ctx: ProbeContext) -> ProbeResult:
        raise KeyError("boom")

    result = await run_suite(
        backend,
        [
            FunctionProbe("margin", margin),
            FunctionProbe("bad_return", not_a_result),
            FunctionProbe("raises", raises),
        ],
        backoff=0.5,
    )
    assert result.result("margin").verdict is Verdict.PASS
    assert result.result("margin").name == "margin"
    assert result.result("margin").raw == -10.0
    assert result.retries == 1
    assert result.verdicts["bad_return"] is Verdict.ERROR
    assert "must return a ProbeResult" in result.result("bad_return").message
    assert result.verdicts["raises"] is Verdict.ERROR
    assert result.result("raises").evidence["error"] == "KeyError"


@pytest.mark.parametrize("safe", [False, True])
async def test_a_function_probe_that_hangs_times_out_alone(safe: bool) -> None:
    async def hangs(backend: Any, ctx: ProbeContext) -> ProbeResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    backend = slow_backend(safe_for_concurrent_views=safe)
    with anyio.fail_after(1000):
        result = await run_suite(
            backend,
            [FunctionProbe("hangs", hangs), *reference_suite()],
            probe_timeout=50.0,
            concurrency=4,
        )
    assert result.verdicts["hangs"] is Verdict.ERROR
    assert "probe timed out after 50.0 s" in result.result("hangs").message
    assert result.timeouts == 1
    assert result.verdicts["ppl"] is Verdict.PASS
    assert backend.is_free()


# -- probe timeout isolation -------------------------------------------------------------------


@pytest.mark.parametrize("safe", [False, True])
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_probe_timeout_leaves_the_other_probes_untouched(
    safe: bool, concurrency: int
) -> None:
    hang = FaultPlan((FaultRule("hang", name="stuck", views=("base",), prompt="hung*"),))
    probes = [*reference_suite(), DeltaKL("stuck_probe", ["hung1", "hung2"])]
    # Every probe's own work takes far less than the budget; only the hang exceeds it.
    budget = 20.0
    clean = await run_suite(
        slow_backend(safe_for_concurrent_views=safe),
        reference_suite(),
        concurrency=concurrency,
        probe_timeout=budget,
    )
    backend = slow_backend(safe_for_concurrent_views=safe, faults=hang)
    started = anyio.current_time()
    result = await run_suite(backend, probes, concurrency=concurrency, probe_timeout=budget)
    assert result.verdicts["stuck_probe"] is Verdict.ERROR
    stuck = result.result("stuck_probe")
    assert stuck.message == f"probe timed out after {budget} s (probe_timeout)"
    assert stuck.evidence == {"timeout": "probe", "seconds": budget}
    assert result.timeouts == 1
    for probe in clean.results:
        assert result.result(probe.name).to_dict(include_timing=False) == probe.to_dict(
            include_timing=False
        )
    # The hang cost the budget (plus one 1 s request before it), in virtual time.
    assert anyio.current_time() - started >= budget
    assert backend.is_free()


async def test_probe_timeout_counts_in_flight_time_not_time_waiting_for_other_probes() -> None:
    # ft: small's request (0-1 s), then big's ten (1-11 s); base: small's (11-12 s), big's.
    probes = [DeltaKL("small", ["s"]), DeltaKL("big", [f"b{i}" for i in range(10)])]
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(1.0)))
    result = await run_suite(backend, probes, probe_timeout=11.0, preflight=False)
    # small spans 12 s but is in flight for 2 s; big needs 20 s of its own.
    assert result.verdicts == {"small": Verdict.PASS, "big": Verdict.ERROR}
    assert result.result("small").duration == pytest.approx(12.0)
    assert result.timeouts == 1


async def test_op_timeout_is_an_error_naming_the_timeout() -> None:
    hang = FaultPlan((FaultRule("hang", views=("ft",), prompt="q2"),))
    backend = slow_backend(faults=hang)
    result = await run_suite(backend, reference_suite(), op_timeout=3.0, retries=5)
    dkl = result.result("dkl")
    assert dkl.verdict is Verdict.ERROR
    assert "next_token_dist('q2') on view ft failed: op timed out after 3.0 s" in dkl.message
    assert result.timeouts == 1
    # A timed-out op is not retried.
    assert result.retries == 0
    assert result.verdicts["ppl"] is Verdict.PASS


# -- cancellation ------------------------------------------------------------------------------


@pytest.mark.parametrize("safe", [False, True])
@pytest.mark.parametrize("fraction", [0.005, 0.1, 0.35, 0.6, 0.9])
@pytest.mark.parametrize(("mode", "concurrency"), [("pooled", 1), ("pooled", 8), ("naive", 1)])
async def test_cancelling_the_run_releases_every_view(
    safe: bool, fraction: float, mode: swaysim._runner.suite.RunMode, concurrency: int
) -> None:
    async def manual(backend: Any, ctx: ProbeContext) -> ProbeResult:
        async with backend.as_base() as base:
            await base.next_token_dist("q9")
            await anyio.sleep(3.0)
        return ProbeResult("manual", "function", Verdict.PASS)

    # A transient fault that always fires keeps the runner in backoff for a while.
    flaky = FaultPlan((FaultRule("transient", views=("null",), prompt="q3"),))
    probes: list[Probe | FunctionProbe] = [*reference_suite(), FunctionProbe("manual", manual)]
    options: dict[str, Any] = {
        "concurrency": concurrency,
        "mode": mode,
        "backoff": 2.0,
        "retries": 3,
    }
    full = await run_suite(
        slow_backend(safe_for_concurrent_views=safe, faults=flaky), probes, **options
    )
    backend = slow_backend(safe_for_concurrent_views=safe, faults=flaky)
    finished: list[swaysim.SuiteResult] = []
    with anyio.move_on_after(full.makespan * fraction) as scope:
        finished.append(await run_suite(backend, probes, **options))
    assert scope.cancelled_caught
    assert finished == []
    assert backend.is_free()
    stats = backend.statistics()
    assert stats.live_views == 0
    assert stats.entries == stats.exits
    # The backend is still usable afterwards.
    again = await run_suite(backend, [PerplexityShift("ppl", ["a b c"])])
    assert again.verdicts == {"ppl": Verdict.PASS}


async def test_a_run_that_finishes_before_the_deadline_is_not_cancelled() -> None:
    backend = slow_backend()
    with anyio.move_on_after(10_000) as scope:
        result = await run_suite(backend, reference_suite())
    assert not scope.cancelled_caught
    assert len(result.results) == 5


# -- custom backends ---------------------------------------------------------------------------


class FlakyError(Exception):
    """A user's own transient error type."""


class _MinimalView:
    def __init__(self, backend: MinimalBackend, view_id: str) -> None:
        self.backend = backend
        self.id = view_id

    async def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        await anyio.lowlevel.checkpoint()
        self.backend.calls += 1
        if self.backend.failures_left:
            self.backend.failures_left -= 1
            raise FlakyError(f"flaky {self.id} {prompt}")
        lps = [-0.1, -3.0, -4.0] if self.id == "base" else [-0.7, -1.0, -2.0]
        return TokenDist(np.arange(3), np.array(lps, dtype=np.float32), 10, None)


class MinimalBackend:
    """Base and ft only: no preflight, no scaled or null views, no statistics."""

    safe_for_concurrent_views = False

    def __init__(self, failures: int = 0) -> None:
        self.failures_left = failures
        self.calls = 0
        self.live = 0

    @asynccontextmanager
    async def _enter(self, view_id: str) -> AsyncIterator[_MinimalView]:
        assert self.live == 0
        self.live += 1
        try:
            yield _MinimalView(self, view_id)
        finally:
            self.live -= 1

    def as_base(self) -> Any:
        return self._enter("base")

    def as_finetuned(self) -> Any:
        return self._enter("ft")


async def test_a_backend_without_preflight_or_statistics_still_runs() -> None:
    backend = MinimalBackend()
    result = await run_suite(backend, [DeltaKL("dkl", ["q1"]), AdapterAblation("abl", ["q1"])])
    assert result.preflight is None
    assert result.view_switches is None
    assert result.statistics is None
    assert result.verdicts == {"dkl": Verdict.PASS, "abl": Verdict.SKIP}
    assert backend.calls == 2


async def test_a_backend_without_observability_gets_runner_events_on_the_runs_clock() -> None:
    backend = MinimalBackend(failures=1)
    assert not isinstance(backend, swaysim.Observable)
    recorder = Recorder()
    await anyio.sleep(5.0)
    result = await run_suite(
        backend, [DeltaKL("dkl", ["q1"])], retry_on=[FlakyError], backoff=2.0, trace=recorder
    )
    assert result.verdicts == {"dkl": Verdict.PASS}
    kinds = [event.kind for event in recorder.events]
    assert kinds == ["probe_start", "retry", "probe_end"]
    retry = recorder.of_kind("retry")[0]
    # Stamped from the run's start, not the loop's: the retry comes before the backoff sleep.
    assert retry.time == 0.0
    assert recorder.of_kind("probe_end")[0].time == pytest.approx(result.makespan)


async def test_retry_on_makes_a_user_exception_retryable() -> None:
    plain = await run_suite(MinimalBackend(failures=1), [DeltaKL("dkl", ["q1"])], retries=2)
    assert plain.verdicts == {"dkl": Verdict.ERROR}
    assert plain.retries == 0
    assert plain.result("dkl").evidence["error"] == "FlakyError"
    backend = MinimalBackend(failures=2)
    retried = await run_suite(backend, [DeltaKL("dkl", ["q1"])], retries=2, retry_on=[FlakyError])
    assert retried.verdicts == {"dkl": Verdict.PASS}
    assert retried.retries == 2
    assert backend.calls == 4
    exhausted = await run_suite(
        MinimalBackend(failures=3), [DeltaKL("dkl", ["q1"])], retries=2, retry_on=[FlakyError]
    )
    assert exhausted.verdicts == {"dkl": Verdict.ERROR}
    assert exhausted.retries == 2


async def test_backoff_is_exponential_with_seeded_jitter() -> None:
    def run_delays(seed: int) -> Any:
        recorder = Recorder()
        faults = FaultPlan((FaultRule("transient", prompt="q1", views=("ft",)),))
        return recorder, AsyncDummyDifferentialBackend(faults=faults, trace=recorder), seed

    delays: dict[int, list[float]] = {}
    for seed in (0, 0, 1):
        recorder, backend, _ = run_delays(seed)
        await run_suite(
            backend, [DeltaKL("dkl", ["q1"])], retries=4, backoff=1.0, backoff_max=5.0, seed=seed
        )
        observed = [float(e.detail["delay"]) for e in recorder.of_kind("retry") if e.detail]
        if seed in delays:
            assert observed == delays[seed]
        delays[seed] = observed
    for seed, observed in delays.items():
        assert len(observed) == 4, seed
        for attempt, delay in enumerate(observed):
            nominal = min(5.0, 2.0**attempt)
            assert nominal <= delay <= nominal * 1.25
    assert delays[0] != delays[1]
