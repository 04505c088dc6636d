"""Every fault kind, on both loops: what it raises or returns, and what it leaves behind."""

from __future__ import annotations

import math
import pickle
import time
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InjectedFatalError,
    InjectedFault,
    InjectedTransientError,
    InjectedViewEnterError,
    InjectedViewExitError,
    LatencyPlan,
    ProbeMathError,
    RollingLogprob,
    SwaysimError,
    TokenDist,
    TraceEvent,
    validate_token_dist,
)
from swaysim._chaos.corrupt import corrupt

if TYPE_CHECKING:
    from swaysim import DummyView

GENERATIONS = {"p": "canned answer"}


class ListSink:
    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        self.events.append(event)


def make_backend(
    *rules: FaultRule, latency: LatencyPlan | None = None, **kwargs: Any
) -> AsyncDummyDifferentialBackend:
    responses = DummyResponses(generations=dict(GENERATIONS))
    return AsyncDummyDifferentialBackend(
        responses, responses, faults=FaultPlan(rules), latency=latency, **kwargs
    )


def is_descending(dist: TokenDist, tolerance: float = 1e-3) -> bool:
    """No logprob more than ``tolerance`` above an earlier one (a lenient validator)."""
    lps = dist.logprobs.astype(np.float64)
    if lps.size < 2:
        return True
    return bool(np.all(lps[1:] - np.maximum.accumulate(lps)[:-1] <= tolerance))


def is_well_formed(dist: TokenDist) -> bool:
    ids = dist.token_ids.tolist()
    return (
        dist.is_finite()
        and len(ids) == dist.logprobs.size
        and len(set(ids)) == len(ids)
        and is_descending(dist)
        and float(np.exp(dist.logprobs.astype(np.float64)).sum()) <= 1.0 + 1e-6
    )


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exception", "retryable"),
    [("transient", InjectedTransientError, True), ("fatal", InjectedFatalError, False)],
)
async def test_error_faults_raise_swaysim_types_carrying_the_firing(
    kind: str, exception: type[InjectedFault], retryable: bool
) -> None:
    backend = make_backend(FaultRule(kind, name="flaky", ops=("logprob_of",), nth=1))  # type: ignore[arg-type]
    async with backend.as_finetuned() as view:
        with pytest.raises(exception) as caught:
            await view.logprob_of("p", "x")
        error = caught.value
        assert isinstance(error, InjectedFault)
        assert isinstance(error, SwaysimError)
        assert type(error).retryable is retryable
        assert (error.rule_name, error.op, error.view_id, error.prompt) == (
            "flaky",
            "logprob_of",
            "ft",
            "p",
        )
        assert error.call_index == 1
        assert error.kind == kind
        assert error.item_index is None
        assert "flaky" in str(error)
        assert "'ft'" in str(error)
        # nth=1: the retry is the second call of the key and succeeds.
        assert await view.logprob_of("p", "x") == -10.0
    assert backend.statistics().faults_fired == {"flaky": 1}


async def test_an_error_fault_raises_after_the_service_time_and_caches_nothing() -> None:
    backend = make_backend(
        FaultRule("transient", ops=("next_token_dist",), nth=1),
        latency=LatencyPlan(default=Constant(0.5)),
    )
    async with backend.as_base() as view:
        start = anyio.current_time()
        with pytest.raises(InjectedTransientError):
            await view.next_token_dist("p")
        assert anyio.current_time() - start == pytest.approx(0.5)
        start = anyio.current_time()
        dist = await view.next_token_dist("p")
        assert anyio.current_time() - start == pytest.approx(0.5)  # recomputed
    assert is_well_formed(dist)
    stats = backend.statistics()
    assert stats.forward_passes == 1
    assert stats.latency_draws == 2


async def test_an_error_fault_on_a_cache_hit_raises_at_once() -> None:
    backend = make_backend(
        FaultRule("fatal", ops=("next_token_dist",), nth=2),
        latency=LatencyPlan(default=Constant(0.5)),
    )
    async with backend.as_base() as view:
        await view.next_token_dist("p")
        start = anyio.current_time()
        with pytest.raises(InjectedFatalError):
            await view.next_token_dist("p")
        assert anyio.current_time() - start == 0.0


async def test_a_flight_that_fails_lets_its_joiners_retry_on_their_own() -> None:
    backend = make_backend(
        FaultRule("transient", ops=("next_token_dist",), nth=1),
        latency=LatencyPlan(default=Constant(0.5)),
        safe_for_concurrent_views=True,
    )
    outcomes: list[str] = []

    async def call(view: DummyView) -> None:
        try:
            await view.next_token_dist("p")
        except InjectedTransientError:
            outcomes.append("failed")
        else:
            outcomes.append("ok")

    async with backend.as_base() as view:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(call, view)
        elapsed = anyio.current_time() - start
    assert sorted(outcomes) == ["failed", "ok", "ok", "ok"]
    # The failed pass, then one shared retry.
    assert elapsed == pytest.approx(1.0)
    assert backend.statistics().forward_passes == 1


def test_injected_faults_pickle_with_their_firing() -> None:
    async def main() -> InjectedFault:
        backend = make_backend(FaultRule("fatal", ops=("next_token_dist_batch",), prompt="b"))
        async with backend.as_base() as view:
            try:
                await view.next_token_dist_batch(["a", "b"])
            except InjectedFault as exc:
                return exc
        raise AssertionError("no fault")

    import swaysim

    error = swaysim.run(main)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is InjectedFatalError
    assert copy.firing == error.firing
    assert copy.item_index == 1
    assert str(copy) == str(error)


# -- hang ---------------------------------------------------------------------------


async def test_a_hang_under_a_timeout_takes_virtual_seconds_and_frees_the_gate() -> None:
    backend = make_backend(FaultRule("hang", ops=("next_token_dist",)))

    async def score_with_a_timeout() -> None:
        with anyio.fail_after(30):
            async with backend.as_base() as view:
                await view.next_token_dist("p")

    wall = time.perf_counter()
    start = anyio.current_time()
    with pytest.raises(TimeoutError):
        await score_with_a_timeout()
    assert anyio.current_time() - start == pytest.approx(30.0)
    assert time.perf_counter() - wall < 5.0
    assert backend.is_free()
    stats = backend.statistics()
    assert (stats.live_views, stats.waiting, stats.entries, stats.exits) == (0, 0, 1, 1)
    # The gate and the device are free: another task enters and scores at once.
    async with backend.as_finetuned() as view:
        start = anyio.current_time()
        await view.logprob_of("p", "x")
        assert anyio.current_time() - start == 0.0


async def test_a_hang_holds_the_device_until_cancelled() -> None:
    backend = make_backend(
        FaultRule("hang", ops=("generate",)), latency=LatencyPlan(default=Constant(1.0))
    )
    finished_at: list[float] = []
    async with backend.as_base() as view:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:

            async def hang() -> None:
                with anyio.move_on_after(5.0):
                    await view.generate("p", max_new_tokens=1)

            async def score() -> None:
                await anyio.sleep(0.1)
                await view.logprob_of("p", "x")
                finished_at.append(anyio.current_time() - start)

            tg.start_soon(hang)
            tg.start_soon(score)
    # The scoring op queued behind the hung one on the single device.
    assert finished_at == [pytest.approx(6.0)]


async def test_a_hang_in_one_batch_item_hangs_the_batch() -> None:
    backend = make_backend(FaultRule("hang", prompt="b*"))
    async with backend.as_base() as view:
        with anyio.move_on_after(7.0) as scope:
            await view.next_token_dist_batch(["a", "bb", "c"])
        assert scope.cancelled_caught
        assert len(await view.next_token_dist_batch(["a", "c"])) == 2


# -- non-finite and corrupt outputs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("nan", math.isnan),
        ("posinf", lambda v: v == math.inf),
        ("neginf", lambda v: v == -math.inf),
    ],
)
async def test_non_finite_faults_poison_every_scoring_output(kind: str, check: Any) -> None:
    backend = make_backend(FaultRule(kind, views=("ft",)))  # type: ignore[arg-type]
    async with backend.as_finetuned() as view:
        dist = await view.next_token_dist("p", top_k=8)
        batch = await view.next_token_dist_batch(["a", "b"], top_k=8)
        rolling = await view.rolling_logprob("some longer text")
        score = await view.logprob_of("p", "x")
    assert dist.logprobs.size == 8
    assert all(check(v) for v in dist.logprobs.tolist())
    assert all(check(v) for item in batch for v in item.logprobs.tolist())
    assert rolling.logprobs.size > 0
    assert all(check(v) for v in rolling.logprobs.tolist())
    assert check(rolling.total_logprob)
    assert check(score)
    assert not dist.is_finite()
    assert not rolling.is_finite()
    assert backend.statistics().faults_fired == {f"{kind}#0": 5}


async def test_an_output_fault_corrupts_a_copy_and_never_the_cache() -> None:
    backend = make_backend(FaultRule("nan", ops=("next_token_dist",), nth=2))
    async with backend.as_base() as view:
        clean = await view.next_token_dist("p")
        poisoned = await view.next_token_dist("p")  # a cache hit, poisoned on the way out
        again = await view.next_token_dist("p")
    assert clean.is_finite()
    assert not poisoned.is_finite()
    assert again is clean
    assert backend.statistics().forward_passes == 1


async def test_corrupt_unsorted_breaks_the_descending_order() -> None:
    backend = make_backend(FaultRule("corrupt_unsorted"))
    async with backend.as_base() as view:
        dist = await view.next_token_dist("p", top_k=8)
    assert not is_descending(dist)
    assert dist.is_finite()
    assert sorted(dist.token_ids.tolist()) == list(range(8))


async def test_corrupt_duplicate_repeats_a_token_id() -> None:
    backend = make_backend(FaultRule("corrupt_duplicate", views=("null",)))
    async with backend.as_null_adapter(3) as view:
        dist = await view.next_token_dist("p", top_k=8)
    ids = dist.token_ids.tolist()
    assert len(set(ids)) < len(ids)
    assert len(ids) == dist.logprobs.size


async def test_corrupt_length_mismatches_ids_and_logprobs() -> None:
    backend = make_backend(FaultRule("corrupt_length"))
    async with backend.as_base() as view:
        dist = await view.next_token_dist("p", top_k=8)
        rolling = await view.rolling_logprob("a few words of text")
    assert dist.token_ids.size != dist.logprobs.size
    assert rolling.logprobs.size != rolling.num_tokens - 1


async def test_corrupt_mass_puts_more_than_all_the_probability_in_the_slice() -> None:
    backend = make_backend(FaultRule("corrupt_mass"))
    async with backend.as_scaled_adapter(0.5) as view:
        dist = await view.next_token_dist("p", top_k=8)
        score = await view.logprob_of("p", "x")
    assert float(np.exp(dist.logprobs.astype(np.float64)).sum()) > 1.0
    assert score > 0.0  # a probability above 1


CANNED_EDGE_CASES = {
    "one token": TokenDist(np.array([5]), np.array([-0.5], dtype=np.float32), 10, -1.0),
    "ties": TokenDist(np.array([1, 2, 3]), np.full(3, -2.0, dtype=np.float32), 10, None),
    "empty": TokenDist(np.array([], dtype=np.int64), np.array([], dtype=np.float32), 10, 0.0),
    "low mass": TokenDist(np.array([4, 2]), np.array([-3.0, -4.0], dtype=np.float32), 10, None),
    "nearly flat, rising": TokenDist(
        np.arange(8), np.linspace(-2.0795, -2.0793, 8, dtype=np.float32), 1000, None
    ),
    "smooth descent": TokenDist(
        np.arange(64), np.linspace(-3.0, -3.063, 64, dtype=np.float32), 1000, None
    ),
}


@pytest.mark.parametrize("name", list(CANNED_EDGE_CASES))
@pytest.mark.parametrize("kind", ["corrupt_duplicate", "corrupt_length", "corrupt_mass"])
def test_every_corruption_is_detectable_even_on_degenerate_distributions(
    kind: str, name: str
) -> None:
    original = CANNED_EDGE_CASES[name]
    before = (original.token_ids.tobytes(), original.logprobs.tobytes())
    bad = corrupt(kind, original)
    assert not is_well_formed(bad)
    assert (original.token_ids.tobytes(), original.logprobs.tobytes()) == before
    if kind == "corrupt_duplicate":
        assert len(set(bad.token_ids.tolist())) < bad.token_ids.size
    elif kind == "corrupt_length":
        assert bad.token_ids.size != bad.logprobs.size
    else:
        assert float(np.exp(bad.logprobs.astype(np.float64)).sum()) > 1.0


@pytest.mark.parametrize("mass", [0.5002, 0.6, 0.75, 0.952, 1.0])
def test_corrupt_mass_clears_any_validator_tolerance(mass: float) -> None:
    # Doubling a slice of mass 0.5002 would give 1.0004: within swaysim's own
    # tolerance (1e-3), so the corruption would pass for a distribution.
    probs = np.array([0.6, 0.3, 0.1]) * mass
    clean = TokenDist(np.arange(3), np.log(probs).astype(np.float32), 10, None)
    validate_token_dist(clean, label="scaled_0.50", normalized="top_k")
    bad = corrupt("corrupt_mass", clean)
    corrupted = float(np.exp(bad.logprobs.astype(np.float64)).sum())
    assert corrupted == pytest.approx(max(2 * mass, 1.5), rel=1e-6)
    with pytest.raises(ProbeMathError, match="> 1"):
        validate_token_dist(bad, label="scaled_0.50", normalized="top_k")


@pytest.mark.parametrize("name", list(CANNED_EDGE_CASES))
def test_corrupt_unsorted_is_a_permutation_least_probable_first(name: str) -> None:
    original = CANNED_EDGE_CASES[name]
    bad = corrupt("corrupt_unsorted", original)
    pairs = sorted(zip(original.token_ids.tolist(), original.logprobs.tolist(), strict=True))
    assert sorted(zip(bad.token_ids.tolist(), bad.logprobs.tolist(), strict=True)) == pairs
    assert bool(np.all(np.diff(bad.logprobs.astype(np.float64)) >= 0.0))
    if original.logprobs.size and np.ptp(original.logprobs) > 0.01:
        assert not is_descending(bad)


def test_non_finite_corruption_of_a_one_token_rolling_result_poisons_the_total() -> None:
    single = RollingLogprob(np.array([7]), np.array([], dtype=np.float32), 1, 0.0)
    assert math.isnan(corrupt("nan", single).total_logprob)


# -- view enter and exit -------------------------------------------------------------


async def test_an_enter_fault_raises_from_async_with_and_releases_the_gate() -> None:
    backend = make_backend(FaultRule("enter_error", name="swap", views=("ft",), nth=1))
    body_ran = False
    with pytest.raises(InjectedViewEnterError) as caught:
        async with backend.as_finetuned():
            body_ran = True
    assert not body_ran
    assert caught.value.op == "enter"
    assert caught.value.view_id == "ft"
    assert caught.value.call_index == 1
    assert backend.is_free()
    async with backend.as_finetuned() as view:  # the second entry does not fire
        assert view.live
    assert backend.is_free()
    assert backend.statistics().faults_fired == {"swap": 1}


async def test_an_enter_fault_hands_the_gate_to_the_next_waiting_task() -> None:
    backend = make_backend(FaultRule("enter_error", views=("base",)))
    bodies: list[str] = []

    async def failing() -> None:
        with pytest.raises(InjectedViewEnterError):
            async with backend.as_base():
                bodies.append("base")

    async def waiting() -> None:
        async with backend.as_finetuned():
            bodies.append("ft")

    async with anyio.create_task_group() as tg, backend.as_finetuned():
        tg.start_soon(failing)
        tg.start_soon(waiting)
        await anyio.sleep(1)
        assert backend.statistics().waiting == 2
    assert bodies == ["ft"]
    assert backend.is_free()


async def test_an_exit_fault_still_releases_the_view() -> None:
    backend = make_backend(FaultRule("exit_error", name="unload", views=("ft",)))
    with pytest.raises(InjectedViewExitError) as caught:
        async with backend.as_finetuned() as view:
            await view.logprob_of("p", "x")
    assert caught.value.op == "exit"
    assert not view.live
    assert backend.is_free()
    stats = backend.statistics()
    assert (stats.entries, stats.exits, stats.live_views) == (1, 1, 0)
    async with backend.as_base() as other:  # the gate is free for the next view
        assert other.live


async def test_an_exit_fault_never_masks_an_exception_from_the_block() -> None:
    backend = make_backend(FaultRule("exit_error"))
    with pytest.raises(KeyError, match="from the block"):
        async with backend.as_base():
            raise KeyError("from the block")
    assert backend.is_free()
    assert backend.statistics().faults_fired == {}


async def test_an_exit_fault_never_replaces_a_cancellation() -> None:
    backend = make_backend(FaultRule("exit_error"), latency=LatencyPlan(view_exit=Constant(1.0)))
    with anyio.move_on_after(5.0) as scope:
        async with backend.as_base():
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert backend.is_free()
    assert backend.fault_log == ()


async def test_exit_faults_count_exits_of_the_view() -> None:
    backend = make_backend(FaultRule("exit_error", views=("base",), nth=2))
    async with backend.as_base():
        pass
    async with backend.as_finetuned():
        pass
    with pytest.raises(InjectedViewExitError) as caught:
        async with backend.as_base():
            pass
    assert caught.value.call_index == 2
    async with backend.as_base():
        pass


# -- batches ---------------------------------------------------------------------------


async def test_an_error_on_one_batch_item_fails_the_batch_and_names_the_item() -> None:
    backend = make_backend(
        FaultRule("transient", ops=("next_token_dist_batch",), prompt="bad*", nth=1)
    )
    async with backend.as_base() as view:
        with pytest.raises(InjectedTransientError) as caught:
            await view.next_token_dist_batch(["ok", "fine", "bad one", "ok2"])
        assert caught.value.item_index == 2
        assert caught.value.prompt == "bad one"
        assert "batch item 2" in str(caught.value)
        retry = await view.next_token_dist_batch(["ok", "fine", "bad one", "ok2"])
    assert all(is_well_formed(d) for d in retry)


async def test_an_output_fault_on_one_batch_item_corrupts_only_that_item() -> None:
    backend = make_backend(FaultRule("nan", ops=("next_token_dist_batch",), prompt="q2"))
    async with backend.as_base() as view:
        batch = await view.next_token_dist_batch(["q1", "q2", "q3"])
        single = await view.next_token_dist("q2")
    assert [d.is_finite() for d in batch] == [True, False, True]
    assert single.is_finite()  # the per-prompt op is a different op


# -- preflight, statistics, trace -----------------------------------------------------


async def test_preflight_reports_a_nan_fault_on_the_ft_view_by_name() -> None:
    backend = make_backend(FaultRule("nan", views=("ft",)))
    ok, reason = await backend.preflight_finite_check()
    assert not ok
    assert reason.startswith("ft view")
    assert "non-finite" in reason
    assert backend.is_free()
    clean_ok, clean_reason = await make_backend().preflight_finite_check()
    assert (clean_ok, clean_reason) == (True, "")


async def test_preflight_reports_an_injected_error_with_the_view() -> None:
    backend = make_backend(FaultRule("fatal", views=("null_5",)))
    ok, reason = await backend.preflight_finite_check(null_seeds=[5])
    assert not ok
    assert "null_5 view" in reason
    assert "InjectedFatalError" in reason


async def test_firings_are_counted_logged_and_traced() -> None:
    sink = ListSink()
    backend = make_backend(
        FaultRule("nan", name="poison", ops=("logprob_of",), every=2),
        FaultRule("fatal", name="boom", ops=("generate",)),
        trace=sink,
    )
    async with backend.as_base() as view:
        for _ in range(4):
            await view.logprob_of("p", "x")
        with pytest.raises(InjectedFatalError):
            await view.generate("p", max_new_tokens=1)
    assert backend.statistics().faults_fired == {"boom": 1, "poison": 2}
    assert backend.statistics().total_faults_fired == 3
    log = backend.fault_log
    assert [(f.rule_name, f.op, f.call_index) for f in log] == [
        ("poison", "logprob_of", 2),
        ("poison", "logprob_of", 4),
        ("boom", "generate", 1),
    ]
    traced = [e for e in sink.events if e.kind == "fault"]
    assert [(e.detail or {}).get("rule") for e in traced] == ["poison", "poison", "boom"]
    assert [e.view for e in traced] == ["base"] * 3
    assert all(e.prompt_hash for e in traced)
