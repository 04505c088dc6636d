"""Latency models, rules and their charging rules, on both loops, in virtual time."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    LatencyPlan,
    LatencyRule,
    LogNormal,
    TraceEvent,
    Uniform,
)
from swaysim._chaos import seeding as _draw

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from swaysim import DummyView
    from swaysim._chaos.latency import LatencyModel

GENERATIONS = {"p": "canned answer", "q": "another"}
EXACT = 1e-9


class ListSink:
    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        self.events.append(event)


def make_backend(latency: LatencyPlan, **kwargs: Any) -> AsyncDummyDifferentialBackend:
    responses = DummyResponses(generations=dict(GENERATIONS))
    return AsyncDummyDifferentialBackend(responses, responses, latency=latency, **kwargs)


async def timed(call: Awaitable[object]) -> float:
    """Virtual seconds the awaitable takes (a coroutine does nothing until awaited)."""
    start = anyio.current_time()
    await call
    return anyio.current_time() - start


OP_CALLS: dict[str, Callable[[DummyView, str], Awaitable[object]]] = {
    "generate": lambda view, prompt: view.generate(prompt, max_new_tokens=16),
    "logprob_of": lambda view, prompt: view.logprob_of(prompt, " yes"),
    "rolling_logprob": lambda view, prompt: view.rolling_logprob(prompt + " and more"),
    "next_token_dist": lambda view, prompt: view.next_token_dist(prompt, top_k=4),
    "next_token_dist_batch": lambda view, prompt: view.next_token_dist_batch(
        [prompt, prompt + "!"]
    ),
}


@pytest.mark.parametrize("op", list(OP_CALLS))
async def test_a_constant_default_is_charged_on_every_op(op: str) -> None:
    backend = make_backend(LatencyPlan(default=Constant(0.25)))
    async with backend.as_base() as view:
        elapsed = await timed(OP_CALLS[op](view, "p"))
    assert elapsed == pytest.approx(0.25, abs=EXACT)
    stats = backend.statistics()
    assert stats.latency_draws == 1
    assert stats.latency_seconds == pytest.approx(0.25)


@pytest.mark.parametrize("op", [op for op in OP_CALLS if op != "generate"])
async def test_a_cache_hit_costs_nothing(op: str) -> None:
    backend = make_backend(LatencyPlan(default=Constant(0.25)))
    async with backend.as_base() as view:
        await OP_CALLS[op](view, "p")
        again = await timed(OP_CALLS[op](view, "p"))
    assert again == 0.0
    assert backend.statistics().latency_draws == 1


async def test_generate_has_no_cache_and_pays_every_time() -> None:
    backend = make_backend(LatencyPlan(default=Constant(0.25)))
    async with backend.as_base() as view:
        first = await timed(view.generate("p", max_new_tokens=1))
        second = await timed(view.generate("p", max_new_tokens=1))
    assert first == second == pytest.approx(0.25, abs=EXACT)


async def test_no_default_and_no_rule_means_no_latency() -> None:
    backend = make_backend(LatencyPlan(rules=(LatencyRule(Constant(9.0), ops=("generate",)),)))
    async with backend.as_base() as view:
        assert await timed(view.logprob_of("p", "x")) == 0.0
    assert backend.statistics().latency_draws == 0


async def test_constant_jitter_adds_a_bounded_varying_amount() -> None:
    backend = make_backend(LatencyPlan(seed=3, default=Constant(0.1, jitter=0.05)))
    async with backend.as_base() as view:
        durations = [await timed(view.logprob_of(f"p{i}", "x")) for i in range(60)]
    assert all(0.1 <= d < 0.15 for d in durations)
    assert len({round(d, 12) for d in durations}) > 50
    assert backend.statistics().latency_seconds == pytest.approx(sum(durations))


async def test_uniform_latency_stays_in_range_and_varies() -> None:
    backend = make_backend(LatencyPlan(seed=11, default=Uniform(0.1, 0.3)))
    async with backend.as_base() as view:
        durations = [await timed(view.next_token_dist(f"p{i}", top_k=4)) for i in range(80)]
    assert all(0.1 <= d < 0.3 for d in durations)
    assert len({round(d, 12) for d in durations}) > 70
    assert 0.15 < statistics.fmean(durations) < 0.25


async def test_lognormal_latency_is_positive_and_centred_on_its_median() -> None:
    backend = make_backend(LatencyPlan(seed=5, default=LogNormal(0.2, 0.5)))
    async with backend.as_base() as view:
        durations = [await timed(view.rolling_logprob(f"text {i}")) for i in range(101)]
    assert all(d > 0 for d in durations)
    # Sample median of 101 log-normal draws: log-space sd about 0.06; allow 4 sd.
    assert abs(math.log(statistics.median(durations) / 0.2)) < 0.25


@pytest.mark.parametrize(
    ("model", "low", "high", "mean"),
    [
        (Constant(1.0, jitter=0.5), 1.0, 1.5, 1.25),
        (Uniform(0.2, 0.6), 0.2, 0.6, 0.4),
        (Uniform(0.2, 0.6, jitter=0.2), 0.2, 0.8, 0.5),
    ],
)
def test_bounded_models_sample_their_distribution(
    model: LatencyModel, low: float, high: float, mean: float
) -> None:
    plan = LatencyPlan(seed=1)
    draws = [plan.draw(model, "op", 0, "base", f"p{i}", 1) for i in range(4000)]
    assert min(draws) >= low
    assert max(draws) < high
    assert min(draws) < low + 0.02 * (high - low)
    assert max(draws) > high - 0.02 * (high - low)
    # Standard error of the mean is below 0.005 here; allow 4 of them.
    assert statistics.fmean(draws) == pytest.approx(mean, abs=0.02)


def test_lognormal_draws_have_the_given_median_and_log_sigma() -> None:
    plan = LatencyPlan(seed=8)
    model = LogNormal(0.05, 0.8)
    logs = [math.log(plan.draw(model, "op", 0, "ft", f"p{i}", 1)) for i in range(4000)]
    assert statistics.median(logs) == pytest.approx(math.log(0.05), abs=0.06)
    assert statistics.stdev(logs) == pytest.approx(0.8, rel=0.05)


def test_a_draw_depends_on_the_seed_and_every_part_of_the_identity() -> None:
    model = LogNormal(0.1, 0.5)
    plan = LatencyPlan(seed=1)
    reference = plan.draw(model, "next_token_dist", -1, "base", "p", 1)
    assert plan.draw(model, "next_token_dist", -1, "base", "p", 1) == reference
    variants = [
        LatencyPlan(seed=2).draw(model, "next_token_dist", -1, "base", "p", 1),
        plan.draw(model, "logprob_of", -1, "base", "p", 1),
        plan.draw(model, "next_token_dist", 0, "base", "p", 1),
        plan.draw(model, "next_token_dist", -1, "ft", "p", 1),
        plan.draw(model, "next_token_dist", -1, "base", "q", 1),
        plan.draw(model, "next_token_dist", -1, "base", "p", 2),
    ]
    assert reference not in variants
    assert len(set(variants)) == len(variants)


class _AllOnesDigest:
    """Stands in for blake2b: every 64-bit word of the digest is 2**64 - 1."""

    def __init__(self, data: bytes, *, digest_size: int) -> None:
        self.size = digest_size

    def digest(self) -> bytes:
        return b"\xff" * self.size


def test_the_largest_hash_words_still_draw_below_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2**64 - 1 scaled by 2**-64 rounds to exactly 1.0 as a double; every model
    # assumes [0, 1): LogNormal takes log1p(-u), a Constant's jitter must stay below it.
    monkeypatch.setattr(_draw, "_blake2b", _AllOnesDigest)
    draws = _draw.unit_draws(1, "latency", "p")
    assert draws == (1.0 - 2.0**-53,) * 3
    plan = LatencyPlan(seed=1)
    assert math.isfinite(plan.draw(LogNormal(0.1, 0.5), "op", 0, "base", "p", 1))
    assert plan.draw(Constant(0.0, jitter=0.5), "op", 0, "base", "p", 1) < 0.5


async def test_rules_price_per_op_and_view_and_the_first_match_wins() -> None:
    plan = LatencyPlan(
        default=Constant(1.0),
        rules=(
            LatencyRule(Constant(2.0), ops=("generate",), views=("ft",)),
            LatencyRule(Constant(3.0), ops=("generate",)),
            LatencyRule(Constant(4.0), views=("scaled_0.50",)),
            LatencyRule(Constant(5.0), views=("null",)),
        ),
    )
    backend = make_backend(plan)
    measured: dict[str, float] = {}
    async with backend.as_finetuned() as ft:
        measured["ft generate"] = await timed(ft.generate("p", max_new_tokens=1))
        measured["ft logprob_of"] = await timed(ft.logprob_of("p", "x"))
    async with backend.as_base() as base:
        measured["base generate"] = await timed(base.generate("p", max_new_tokens=1))
    async with backend.as_scaled_adapter(0.5) as half:
        measured["scaled_0.50 logprob_of"] = await timed(half.logprob_of("p", "x"))
    async with backend.as_scaled_adapter(0.25) as quarter:
        measured["scaled_0.25 logprob_of"] = await timed(quarter.logprob_of("p", "x"))
    async with backend.as_null_adapter(3) as null:
        measured["null next_token_dist"] = await timed(null.next_token_dist("p"))
        measured["null generate"] = await timed(null.generate("p", max_new_tokens=1))
    assert measured == {
        "ft generate": pytest.approx(2.0),
        "ft logprob_of": pytest.approx(1.0),
        "base generate": pytest.approx(3.0),
        "scaled_0.50 logprob_of": pytest.approx(4.0),
        "scaled_0.25 logprob_of": pytest.approx(1.0),
        "null next_token_dist": pytest.approx(5.0),
        "null generate": pytest.approx(3.0),
    }


@pytest.mark.parametrize(
    ("default", "tokens", "expected"),
    [(Constant(0.1), 20, 0.1 + 20 * 0.01), (Constant(0.1), 0, 0.1), (None, 30, 30 * 0.01)],
)
async def test_generate_adds_a_per_token_cost(
    default: LatencyModel | None, tokens: int, expected: float
) -> None:
    plan = LatencyPlan(default=default, generate_per_token=Constant(0.01))
    backend = make_backend(plan)
    async with backend.as_base() as view:
        elapsed = await timed(view.generate("p", max_new_tokens=tokens))
        # The per-token model prices generate only.
        assert await timed(view.logprob_of("p", "x")) == pytest.approx(0.1 if default else 0.0)
    assert elapsed == pytest.approx(expected, abs=EXACT)


async def test_a_batch_costs_base_plus_per_uncached_item() -> None:
    plan = LatencyPlan(
        rules=(LatencyRule(Constant(0.1), ops=("next_token_dist_batch",)),),
        batch_per_item=Constant(0.02),
    )
    backend = make_backend(plan)
    async with backend.as_base() as view:
        fresh = await timed(view.next_token_dist_batch(["a", "b", "c", "d", "e"]))
        await view.next_token_dist("f")
        await view.next_token_dist("g")
        partly_cached = await timed(view.next_token_dist_batch(["f", "g", "h", "i", "j"]))
        all_cached = await timed(view.next_token_dist_batch(["a", "h", "g"]))
        empty = await timed(view.next_token_dist_batch([]))
    assert fresh == pytest.approx(0.1 + 5 * 0.02, abs=EXACT)
    assert partly_cached == pytest.approx(0.1 + 3 * 0.02, abs=EXACT)
    assert all_cached == 0.0
    assert empty == 0.0


async def test_a_batch_pays_once_per_distinct_prompt() -> None:
    plan = LatencyPlan(default=Constant(0.1), batch_per_item=Constant(0.02))
    backend = make_backend(plan)
    async with backend.as_base() as view:
        elapsed = await timed(view.next_token_dist_batch(["a", "b", "a", "a"]))
        assert elapsed == pytest.approx(0.1 + 2 * 0.02, abs=EXACT)
    assert backend.statistics().forward_passes == 2


async def test_batches_and_single_calls_share_forward_passes_in_flight() -> None:
    plan = LatencyPlan(default=Constant(0.1), batch_per_item=Constant(0.02))
    backend = make_backend(plan, safe_for_concurrent_views=True)
    finished: dict[str, float] = {}

    async def run(name: str, call: Awaitable[object]) -> None:
        if name != "batch":
            await anyio.sleep(0.01)  # let the first batch take off
        await call
        finished[name] = anyio.current_time() - start

    async with backend.as_base() as view:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "batch", view.next_token_dist_batch(["a", "b"]))
            tg.start_soon(run, "same batch", view.next_token_dist_batch(["a", "b"]))
            tg.start_soon(run, "single", view.next_token_dist("b"))
            tg.start_soon(run, "overlap", view.next_token_dist_batch(["b", "c"]))
    stats = backend.statistics()
    assert stats.forward_passes == 3  # a, b and c, once each
    assert finished["same batch"] == finished["single"] == pytest.approx(0.14)
    # The overlapping batch waits for b, then computes c alone.
    assert finished["overlap"] == pytest.approx(0.14 + 0.12)


async def test_view_switch_enter_and_exit_costs() -> None:
    plan = LatencyPlan(
        view_switch=Constant(1.0), view_enter=Constant(0.1), view_exit=Constant(0.01)
    )
    backend = make_backend(plan)
    entries = [
        ("base", backend.as_base),
        ("base", backend.as_base),
        ("ft", backend.as_finetuned),
        ("scaled", lambda: backend.as_scaled_adapter(0.5)),
        ("scaled", lambda: backend.as_scaled_adapter(0.5)),
        ("scaled 0.75", lambda: backend.as_scaled_adapter(0.75)),
        ("base", backend.as_base),
    ]
    enter_costs: list[float] = []
    exit_costs: list[float] = []
    for _, enter in entries:
        start = anyio.current_time()
        async with enter():
            enter_costs.append(anyio.current_time() - start)
            start = anyio.current_time()
        exit_costs.append(anyio.current_time() - start)
    switched = [True, False, True, True, False, True, True]
    assert enter_costs == [pytest.approx(1.1 if s else 0.1, abs=EXACT) for s in switched]
    assert exit_costs == [pytest.approx(0.01, abs=EXACT)] * len(entries)
    stats = backend.statistics()
    assert stats.switches == sum(switched)
    assert stats.latency_draws == sum(switched) + 2 * len(entries)


async def test_latency_draws_are_counted_and_traced() -> None:
    sink = ListSink()
    plan = LatencyPlan(seed=4, default=LogNormal(0.05, 0.3), view_switch=Constant(0.5))
    backend = make_backend(plan, trace=sink)
    total = 0.0
    async with backend.as_finetuned() as view:
        for i in range(5):
            total += await timed(view.next_token_dist(f"p{i}"))
        total += await timed(view.next_token_dist("p0"))  # a hit: no draw
    latency_events = [e for e in sink.events if e.kind == "latency"]
    stats = backend.statistics()
    assert stats.latency_draws == len(latency_events) == 6
    assert [e.op for e in latency_events] == ["switch"] + ["next_token_dist"] * 5
    assert all(e.view == "ft" for e in latency_events)
    assert sum(e.duration or 0.0 for e in latency_events) == pytest.approx(stats.latency_seconds)
    assert stats.latency_seconds == pytest.approx(total + 0.5)


async def test_concurrent_identical_calls_share_one_forward_pass() -> None:
    backend = make_backend(LatencyPlan(default=Constant(0.05)), safe_for_concurrent_views=True)
    results: list[object] = []

    async def call(view: DummyView) -> None:
        results.append(await view.next_token_dist("same", top_k=4))

    async with backend.as_base() as view:
        elapsed_start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(call, view)
        elapsed = anyio.current_time() - elapsed_start
    assert elapsed == pytest.approx(0.05, abs=EXACT)
    assert all(r is results[0] for r in results)
    stats = backend.statistics()
    assert stats.forward_passes == 1
    assert stats.latency_draws == 1
    assert stats.cache_hits + stats.cache_misses == 8
    assert stats.cache_misses == 1


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 4 * 0.05),
        ({"safe_for_concurrent_views": True}, 0.05),
        ({"safe_for_concurrent_views": True, "max_concurrent_ops": 2}, 2 * 0.05),
        ({"max_concurrent_ops": 4}, 0.05),
    ],
)
async def test_the_device_serves_max_concurrent_ops_at_once(
    kwargs: dict[str, Any], expected: float
) -> None:
    backend = make_backend(LatencyPlan(default=Constant(0.05)), **kwargs)
    async with backend.as_base() as view:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(view.logprob_of, f"p{i}", "x")
        elapsed = anyio.current_time() - start
    assert elapsed == pytest.approx(expected, abs=EXACT)


async def test_cancelling_an_op_mid_latency_frees_the_device() -> None:
    backend = make_backend(LatencyPlan(default=Constant(10.0)))
    async with backend.as_base() as view:
        with anyio.move_on_after(1.0) as scope:
            await view.logprob_of("slow", "x")
        assert scope.cancelled_caught
        assert await timed(view.logprob_of("next", "x")) == pytest.approx(10.0)
        # The cancelled call cached nothing: it never finished its forward pass.
        assert await timed(view.logprob_of("slow", "x")) == pytest.approx(10.0)
    assert backend.is_free()


async def test_latency_never_changes_the_values() -> None:
    slow = make_backend(LatencyPlan(seed=2, default=LogNormal(0.1, 1.0)))
    plain = AsyncDummyDifferentialBackend()  # no plan at all: the fast path
    results = []
    for backend in (slow, plain):
        async with backend.as_null_adapter(7) as view:
            dist = await view.next_token_dist("prompt", top_k=8)
            batch = await view.next_token_dist_batch(["a", "prompt"], top_k=8)
            rolling = await view.rolling_logprob("some text")
            score = await view.logprob_of("p", "x")
        results.append((dist, batch, rolling, score))
    (d1, b1, r1, s1), (d2, b2, r2, s2) = results
    assert d1.token_ids.tolist() == d2.token_ids.tolist()
    assert d1.logprobs.tobytes() == d2.logprobs.tobytes()
    assert [b.logprobs.tobytes() for b in b1] == [b.logprobs.tobytes() for b in b2]
    assert r1.logprobs.tobytes() == r2.logprobs.tobytes()
    assert s1 == s2


async def test_the_same_seed_gives_the_same_latencies_and_another_seed_does_not() -> None:
    async def durations(seed: int) -> list[float | None]:
        sink = ListSink()
        plan = LatencyPlan(seed=seed, default=LogNormal(0.1, 0.5))
        backend = make_backend(plan, trace=sink)
        async with backend.as_base() as view:
            for i in range(20):
                await view.generate("pq"[i % 2], max_new_tokens=1)
        return [e.duration for e in sink.events if e.kind == "latency"]

    first = await durations(1)
    assert len(first) == 20
    assert await durations(1) == first
    assert await durations(2) != first
