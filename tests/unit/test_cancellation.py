"""Cancellation anywhere (waiting, holding, mid-op, mid-exit) leaves no view held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InjectedFault,
    LatencyPlan,
    ViewConflictError,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from swaysim import DummyView

VIEWS = ("base", "ft", "scaled", "null")
CANNED = DummyResponses(generations={"p": "canned"})


def enter(backend: AsyncDummyDifferentialBackend, kind: str) -> AbstractAsyncContextManager[Any]:
    if kind == "base":
        return backend.as_base()
    if kind == "ft":
        return backend.as_finetuned()
    if kind == "scaled":
        return backend.as_scaled_adapter(0.75)
    return backend.as_null_adapter(11)


async def run_op(view: DummyView, index: int, prompt: str) -> None:
    op = index % 5
    if op == 0:
        await view.next_token_dist(prompt)
    elif op == 1:
        await view.logprob_of(prompt, " completion")
    elif op == 2:
        await view.rolling_logprob(prompt)
    elif op == 3:
        await view.next_token_dist_batch([prompt, "other", prompt])
    else:
        await view.generate("p", max_new_tokens=2)


async def assert_gate_free_and_usable(backend: AsyncDummyDifferentialBackend) -> None:
    """Nothing held or queued, and the next entry does not wait."""
    assert backend.is_free()
    stats = backend.statistics()
    assert stats.live_views == 0
    assert stats.waiting == 0
    assert stats.entries == stats.exits
    assert dict(stats.holders) == {}
    with anyio.fail_after(1):
        try:
            async with backend.as_base():
                pass
        except InjectedFault:  # an injected enter or exit failure: still no wait
            pass
    after = backend.statistics()
    assert after.waits == stats.waits
    assert after.entries == after.exits
    assert backend.is_free()


async def test_cancelled_while_waiting_never_enters_and_frees_its_place() -> None:
    backend = AsyncDummyDifferentialBackend()
    entered: list[str] = []

    async def holder() -> None:
        async with backend.as_base():
            await anyio.sleep(1.0)

    async def impatient() -> None:
        await anyio.sleep(0.01)
        with anyio.move_on_after(0.3) as scope:
            async with backend.as_finetuned():
                entered.append("impatient")
        assert scope.cancelled_caught

    async def patient() -> None:
        await anyio.sleep(0.5)
        async with backend.as_null_adapter(1):
            entered.append("patient")

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        tg.start_soon(impatient)
        tg.start_soon(patient)
    assert entered == ["patient"]
    assert backend.statistics().entries == 2
    await assert_gate_free_and_usable(backend)


async def test_cancelled_while_holding_releases_the_view() -> None:
    backend = AsyncDummyDifferentialBackend()
    holding = anyio.Event()

    async def holder() -> None:
        async with backend.as_finetuned() as view:
            holding.set()
            await view.next_token_dist("p")
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await holding.wait()
        assert not backend.is_free()
        tg.cancel_scope.cancel()
    await assert_gate_free_and_usable(backend)


@pytest.mark.parametrize("op", range(5))
async def test_cancelled_mid_op_on_the_fast_path(op: int) -> None:
    backend = AsyncDummyDifferentialBackend(CANNED)
    async with backend.as_base() as view:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await run_op(view, op, "prompt")
            pytest.fail("the op did not checkpoint")
        assert scope.cancelled_caught
        await run_op(view, op, "prompt")  # the view is still live and usable
    with anyio.CancelScope() as scope:
        async with backend.as_scaled_adapter(0.2) as view:
            scope.cancel()
            await run_op(view, op, "prompt")
            pytest.fail("the op did not checkpoint")
    assert scope.cancelled_caught
    await assert_gate_free_and_usable(backend)


@pytest.mark.parametrize("op", range(5))
async def test_cancelled_mid_op_with_latency(op: int) -> None:
    backend = AsyncDummyDifferentialBackend(CANNED, latency=LatencyPlan(default=Constant(0.5)))
    with anyio.move_on_after(0.2) as scope:
        async with backend.as_null_adapter(2) as view:
            await run_op(view, op, "prompt")
            pytest.fail("a 0.5 s op finished within 0.2 s")
    assert scope.cancelled_caught
    await assert_gate_free_and_usable(backend)
    async with backend.as_null_adapter(2) as view:  # the device is free again too
        before = anyio.current_time()
        await run_op(view, op, "fresh prompt")
        assert anyio.current_time() - before == pytest.approx(0.5)


async def test_cancelled_during_exit_latency_still_releases() -> None:
    plan = LatencyPlan(view_enter=Constant(0.25), view_exit=Constant(0.5))
    backend = AsyncDummyDifferentialBackend(latency=plan)
    with anyio.move_on_after(0.1) as entering:  # mid-entry
        async with backend.as_base():
            pytest.fail("entered within 0.1 s despite 0.25 s of entry latency")
    assert entering.cancelled_caught
    with anyio.move_on_after(0.5) as exiting:  # mid-exit: 0.25 in, 0.25 out of 0.5
        async with backend.as_base():
            pass
    assert exiting.cancelled_caught
    assert backend.is_free()
    stats = backend.statistics()
    assert stats.entries == stats.exits


async def test_cancelled_after_being_handed_the_view_passes_it_on() -> None:
    backend = AsyncDummyDifferentialBackend()
    entered: list[str] = []
    first_scope = anyio.CancelScope()

    async def holder() -> None:
        async with backend.as_base():
            await anyio.sleep(1.0)
            first_scope.cancel()  # in the same step as the exit below hands it the view

    async def first() -> None:
        await anyio.sleep(0.1)
        with first_scope:
            async with backend.as_finetuned():
                entered.append("first")

    async def second() -> None:
        await anyio.sleep(0.2)
        async with backend.as_null_adapter(3):
            entered.append("second")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            tg.start_soon(first)
            tg.start_soon(second)
    assert entered == ["second"]
    await assert_gate_free_and_usable(backend)


# -- random cancel points --------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    kind: str
    delay: float
    ops: int
    hold: float
    cancel: tuple[str, float] | None  # ("time", seconds) or ("steps", checkpoints)


workers = st.builds(
    Worker,
    kind=st.sampled_from(VIEWS),
    delay=st.sampled_from([0.0, 0.0, 0.01, 0.05]),
    ops=st.integers(min_value=0, max_value=4),
    hold=st.sampled_from([0.0, 0.02, 0.1]),
    cancel=st.none()
    | st.tuples(st.just("time"), st.sampled_from([0.0, 0.005, 0.01, 0.03, 0.06, 0.15]))
    | st.tuples(st.just("steps"), st.integers(min_value=0, max_value=25).map(float)),
)
configurations = st.fixed_dictionaries(
    {
        "exclusivity": st.sampled_from(["wait", "strict"]),
        "concurrent": st.sampled_from([None, 2]),
        "latency": st.booleans(),
        "faults": st.booleans(),
    }
)
NASTY = FaultPlan(
    (
        FaultRule("hang", probability=0.15),
        FaultRule("transient", probability=0.15),
        FaultRule("enter_error", probability=0.1),
        FaultRule("exit_error", probability=0.1),
    ),
    seed=5,
)


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=st.lists(workers, min_size=2, max_size=5), config=configurations)
async def test_no_cancel_point_leaves_a_view_held(
    plan: list[Worker], config: dict[str, Any]
) -> None:
    cap = config["concurrent"]
    latency = (
        LatencyPlan(default=Constant(0.01), view_switch=Constant(0.02), view_exit=Constant(0.005))
        if config["latency"]
        else None
    )
    backend = AsyncDummyDifferentialBackend(
        CANNED,
        CANNED,
        exclusivity=config["exclusivity"],
        safe_for_concurrent_views=cap is not None,
        max_concurrent_views=cap,
        latency=latency,
        faults=NASTY if config["faults"] else None,
    )
    limit = 1 if cap is None else cap
    live = 0
    most = 0

    async def work(spec: Worker, scope: anyio.CancelScope, index: int) -> None:
        nonlocal live, most
        with scope:
            await anyio.sleep(spec.delay)
            try:
                async with enter(backend, spec.kind) as view:
                    live += 1
                    most = max(most, live)
                    try:
                        for op in range(spec.ops):
                            await run_op(view, op + index, f"prompt {op % 2}")
                        await anyio.sleep(spec.hold)
                    finally:
                        live -= 1
            except ViewConflictError:
                assert config["exclusivity"] == "strict"
            except InjectedFault:
                assert config["faults"]

    async def cancel_later(spec: Worker, scope: anyio.CancelScope) -> None:
        assert spec.cancel is not None
        how, amount = spec.cancel
        if how == "time":
            await anyio.sleep(amount)
        else:
            for _ in range(int(amount)):
                await checkpoint()
        scope.cancel()

    # Injected hangs never return: the deadline cancels whatever is left, at one more
    # arbitrary point.
    with anyio.move_on_after(30):
        async with anyio.create_task_group() as tg:
            for index, spec in enumerate(plan):
                scope = anyio.CancelScope()
                tg.start_soon(work, spec, scope, index)
                if spec.cancel is not None:
                    tg.start_soon(cancel_later, spec, scope)
    assert most <= limit
    assert live == 0
    assert backend.statistics().peak_live_views <= limit
    await assert_gate_free_and_usable(backend)
