"""The op path's seams: single-flight, the device, jitter, the trace span, the forward pass."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    LatencyPlan,
    TokenDist,
    TraceRecorder,
)
from swaysim._backend.cache import MISSING, ForwardCache, SingleFlight
from swaysim._backend.models import ModeModel, NullModel, ScaledModel
from swaysim._chaos.jitter import JITTER_MAX_CHECKPOINTS, JITTER_MAX_SECONDS, ScheduleJitter
from swaysim._vocab import OpKind


async def test_a_waiter_resumes_only_once_every_key_it_needs_has_landed() -> None:
    flights = SingleFlight()
    flights.claim("a")
    flights.claim("b")
    resumed: list[float] = []

    async def waiter() -> None:
        await flights.wait_idle(["a", "b", "c"])
        resumed.append(anyio.current_time())

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(1)
        flights.release("a")
        await anyio.sleep(1)
        assert not resumed
        flights.release("b")
    assert resumed == [start + 2]
    assert len(flights) == 0


async def test_an_uncontended_flight_needs_no_event_and_idle_keys_need_no_wait() -> None:
    flights = SingleFlight()
    flights.claim("k")
    assert "k" in flights
    assert list(flights) == ["k"]
    flights.release("k")
    assert "k" not in flights
    with anyio.fail_after(0):  # returns without awaiting anything
        await flights.wait_idle(["k"])


def test_the_cache_counts_one_forward_pass_per_result_stored() -> None:
    cache = ForwardCache(2)
    cache.insert("a", 1)
    cache.store("b", 2)
    cache.store("c", 3)
    assert (cache.forward_passes, len(cache)) == (3, 2)
    assert cache.lookup("a") is MISSING  # the least recently used, evicted
    assert cache.lookup("c") == 3
    assert (cache.hits, cache.misses) == (1, 1)


async def test_a_plain_backend_never_builds_a_pipeline_for_its_views() -> None:
    plain = AsyncDummyDifferentialBackend()
    slow = AsyncDummyDifferentialBackend(latency=LatencyPlan())
    async with plain.as_base() as fast_view:
        assert fast_view._pipeline is None
    async with slow.as_base() as slow_view:
        assert slow_view._pipeline is slow._pipeline


def test_a_forward_pass_is_the_view_models_own_method_for_each_op() -> None:
    base = ModeModel("base", DummyResponses(generations={"p": "x"}))
    ft = ModeModel("ft", DummyResponses())
    for model in (base, ScaledModel(base, ft, 0.25), NullModel(base, 3, 0.02, 1.0)):
        assert model.forward(OpKind.GENERATE.op, ("p",)) == model.generate("p")
        assert model.forward(OpKind.LOGPROB_OF.op, ("p", "c")) == model.logprob_of("p", "c")
        assert model.forward(OpKind.ROLLING_LOGPROB.op, ("a b",)) is model.rolling_logprob("a b")
        dist = model.forward(OpKind.NEXT_TOKEN_DIST.op, ("p", 8))
        assert isinstance(dist, TokenDist)
        expected = model.next_token_dist("p", 8)
        assert np.array_equal(dist.logprobs, expected.logprobs)
        assert np.array_equal(dist.token_ids, expected.token_ids)


async def test_jitter_at_one_boundary_is_a_pure_function_of_seed_and_boundary() -> None:
    logs: list[list[str]] = []
    for seed in (7, 7, 8):
        jitter = ScheduleJitter(seed)
        log: list[str] = []

        async def checkpoint(log: list[str] = log) -> None:
            log.append("checkpoint")

        async def sleep(seconds: float, log: list[str] = log) -> None:
            log.append(f"sleep {seconds!r}")

        await jitter.pause(checkpoint, sleep, "before", "next_token_dist", "base", "p", 1)
        logs.append(log)
        seconds = float(log[-1].split()[1])
        assert 0 < seconds <= JITTER_MAX_SECONDS
        assert log.count("checkpoint") <= JITTER_MAX_CHECKPOINTS
        assert (jitter.events, jitter.seconds) == (len(log), seconds)
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]


async def test_a_traced_op_is_one_span_whether_it_returns_or_raises() -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(
        latency=LatencyPlan(default=Constant(0.1)),
        faults=FaultPlan((FaultRule("fatal", prompt="bad*"),)),
        trace=recorder,
    )
    async with backend.as_base() as view:
        await view.next_token_dist("good")
        await view.next_token_dist("good")
        with pytest.raises(Exception, match="injected fatal"):
            await view.next_token_dist("bad")
        with pytest.raises(Exception, match="injected fatal"):
            await view.next_token_dist_batch(["good", "bad"])
    ops = [e for e in recorder.events if e.kind in ("op_start", "op_end")]
    assert [(e.kind, e.op) for e in ops] == [
        ("op_start", "next_token_dist"),
        ("op_end", "next_token_dist"),
        ("op_start", "next_token_dist"),
        ("op_end", "next_token_dist"),
        ("op_start", "next_token_dist"),
        ("op_end", "next_token_dist"),
        ("op_start", "next_token_dist_batch"),
        ("op_end", "next_token_dist_batch"),
    ]
    ends = [e for e in ops if e.kind == "op_end"]
    assert [e.hit for e in ends] == [False, True, None, None]
    assert [dict(e.detail or {}) for e in ends] == [
        {"call": 1},
        {"call": 2},
        {"error": "InjectedFatalError"},
        {"items": 2, "error": "InjectedFatalError"},
    ]
    assert [e.duration for e in ends] == pytest.approx([0.1, 0.0, 0.1, 0.1])
