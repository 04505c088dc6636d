"""The exclusivity gate as DESIGN.md states it, on asyncio and trio (virtual clock)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
import sniffio
import trio

import swaysim
from swaysim import (
    AsyncDummyDifferentialBackend,
    DummyResponses,
    NestedViewError,
    StaleViewError,
    SwaysimError,
    ViewConflictError,
    ViewError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

VIEWS = ("base", "ft", "scaled", "null")


def enter(backend: AsyncDummyDifferentialBackend, kind: str) -> AbstractAsyncContextManager[Any]:
    if kind == "base":
        return backend.as_base()
    if kind == "ft":
        return backend.as_finetuned()
    if kind == "scaled":
        return backend.as_scaled_adapter(0.5)
    return backend.as_null_adapter(7)


class LiveCounter:
    """Counts the ``async with`` bodies running right now, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


# -- "wait" ------------------------------------------------------------------------------


async def test_wait_serves_many_waiters_in_arrival_order() -> None:
    backend = AsyncDummyDifferentialBackend()
    waiters = 24
    order: list[int] = []
    arrived: dict[int, float] = {}
    entered: dict[int, float] = {}
    live = LiveCounter()

    async def holder() -> None:
        async with backend.as_base():
            with live:
                await anyio.sleep(1.0)

    async def waiter(index: int) -> None:
        await anyio.sleep(0.01 * (index + 1))
        arrived[index] = anyio.current_time()
        async with enter(backend, VIEWS[index % 4]) as view:
            with live:
                entered[index] = anyio.current_time()
                order.append(index)
                await view.next_token_dist("p")
                await anyio.sleep(0.001)

    async def observer() -> None:
        await anyio.sleep(0.5)
        stats = backend.statistics()
        assert stats.waiting == waiters
        assert stats.live_views == 1
        assert dict(stats.holders) == {"base": "the-holder"}

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder, name="the-holder")
        tg.start_soon(observer)
        for index in reversed(range(waiters)):  # started in reverse, arriving in order
            tg.start_soon(waiter, index)

    assert order == list(range(waiters))
    assert live.most == 1
    stats = backend.statistics()
    assert stats.waits == waiters
    expected_wait = sum(entered[i] - arrived[i] for i in range(waiters))
    assert stats.wait_time == pytest.approx(expected_wait)
    assert stats.wait_time > 0
    assert backend.is_free()


async def test_a_holder_that_reenters_queues_behind_the_waiters() -> None:
    backend = AsyncDummyDifferentialBackend()
    order: list[str] = []

    async def greedy() -> None:
        for _ in range(3):
            async with backend.as_base():
                order.append("greedy")
                await anyio.sleep(0.1)

    async def polite(name: str, delay: float) -> None:
        await anyio.sleep(delay)
        async with backend.as_finetuned():
            order.append(name)
            await anyio.sleep(0.1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(greedy)
        tg.start_soon(polite, "first", 0.01)
        tg.start_soon(polite, "second", 0.02)
    assert order == ["greedy", "first", "second", "greedy", "greedy"]


async def test_a_waiter_cancelled_after_the_hand_over_passes_the_view_on() -> None:
    """The view was handed to the first waiter, which is cancelled before it resumes."""
    backend = AsyncDummyDifferentialBackend()
    scopes: dict[str, anyio.CancelScope] = {}
    bodies: list[str] = []

    async def holder() -> None:
        async with backend.as_base():
            await anyio.sleep(1.0)
        scopes["first"].cancel()  # the exit above already handed the view to "first"

    async def waiter(name: str, delay: float) -> None:
        with anyio.CancelScope() as scopes[name]:
            await anyio.sleep(delay)
            async with backend.as_finetuned():
                await anyio.lowlevel.checkpoint()
                bodies.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        tg.start_soon(waiter, "first", 0.1)
        tg.start_soon(waiter, "second", 0.2)
    assert bodies == ["second"]
    stats = backend.statistics()
    assert stats.entries == stats.exits
    assert stats.entries_per_view.get("ft", 0) in (1, 2)  # trio admits it, then cancels its body
    assert backend.is_free()


async def test_a_holder_without_a_name_is_named_by_its_id() -> None:
    backend = AsyncDummyDifferentialBackend()
    seen: dict[str, str] = {}

    async with backend.as_base():
        task = rename_current_task("")
        seen.update(backend.statistics().holders)
        with pytest.raises(NestedViewError, match=rf"task 'task-{id(task)}' already holds"):
            async with backend.as_finetuned():
                pass
    assert seen == {"base": f"task-{id(task)}"}


def rename_current_task(name: str) -> object:
    """Rename the running task through its loop's own API; returns the native task."""
    if sniffio.current_async_library() == "asyncio":
        task = asyncio.current_task()
        assert task is not None
        task.set_name(name)
        return task
    current = trio.lowlevel.current_task()
    current.name = name
    return current


async def test_bodies_never_overlap_under_wait() -> None:
    backend = AsyncDummyDifferentialBackend()
    live = LiveCounter()

    async def user(index: int) -> None:
        for round_ in range(3):
            async with enter(backend, VIEWS[(index + round_) % 4]) as view:
                with live:
                    await view.logprob_of("q", "c")
                    await anyio.sleep(0.01 * (index % 3))
                    await view.next_token_dist_batch(["a", "b"])

    async with anyio.create_task_group() as tg:
        for index in range(8):
            tg.start_soon(user, index)
    assert live.most == 1
    stats = backend.statistics()
    assert stats.entries == stats.exits == 24
    assert stats.peak_live_views == 1


# -- "strict" ----------------------------------------------------------------------------


async def test_strict_raises_at_once_naming_both_views_and_both_tasks() -> None:
    backend = AsyncDummyDifferentialBackend(exclusivity="strict")
    holding = anyio.Event()

    async def holder() -> None:
        async with backend.as_finetuned():
            holding.set()
            await anyio.sleep(1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder, name="holder-task")
        await holding.wait()
        me = anyio.get_current_task().name
        before = anyio.current_time()
        with pytest.raises(ViewConflictError) as caught:
            async with backend.as_null_adapter(3):
                pytest.fail("entered a second view under exclusivity='strict'")
        assert anyio.current_time() == before
    message = str(caught.value)
    assert "'ft'" in message
    assert "'null_3'" in message
    assert "'holder-task'" in message
    assert repr(me) in message
    assert type(caught.value) is ViewConflictError
    stats = backend.statistics()
    assert stats.entries == stats.exits == 1
    assert stats.waits == 0
    assert backend.is_free()


async def test_strict_allows_one_view_after_another() -> None:
    backend = AsyncDummyDifferentialBackend(exclusivity="strict")
    for kind in VIEWS:
        async with enter(backend, kind) as view:
            await view.next_token_dist("p")
    assert backend.statistics().entries == 4


async def test_strict_names_a_view_that_is_still_being_entered() -> None:
    # The first entrant takes the slot and is live before its entry checkpoint,
    # so a second entrant in that window still learns whom it collided with.
    backend = AsyncDummyDifferentialBackend(exclusivity="strict")
    errors: list[ViewConflictError] = []

    async def first() -> None:
        try:
            async with backend.as_base():
                await anyio.sleep(0.1)
        except ViewConflictError as exc:
            errors.append(exc)

    async def second() -> None:
        try:
            async with backend.as_finetuned():
                await anyio.sleep(0.1)
        except ViewConflictError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first, name="first")
        tg.start_soon(second, name="second")
    # Either may win the race (trio shuffles newly started tasks); the loser names the winner.
    assert len(errors) == 1
    message = str(errors[0])
    assert ("'base' held by task 'first'" in message) != ("'ft' held by task 'second'" in message)


# -- nested entry ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["wait", "strict"])
@pytest.mark.parametrize("inner", VIEWS)
async def test_nested_entry_in_one_task_is_an_immediate_error(policy: Any, inner: str) -> None:
    backend = AsyncDummyDifferentialBackend(exclusivity=policy)
    before = anyio.current_time()
    with anyio.fail_after(10):  # a deadlock would time out here (virtual seconds)
        async with backend.as_base() as outer:
            with pytest.raises(NestedViewError) as caught:
                async with enter(backend, inner):
                    pytest.fail("entered a nested view")
            assert await outer.logprob_of("q", "c") == -10.0  # the outer view still works
    assert anyio.current_time() == before
    message = str(caught.value)
    assert "'base'" in message
    assert repr(anyio.get_current_task().name) in message
    assert isinstance(caught.value, ViewConflictError)
    assert backend.is_free()
    assert backend.statistics().entries == 1


async def test_nested_entry_on_a_concurrent_backend_is_allowed_until_it_would_wait() -> None:
    backend = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True, max_concurrent_views=2)
    async with backend.as_base(), backend.as_finetuned() as ft:
        assert backend.statistics().live_views == 2
        with pytest.raises(NestedViewError):
            async with backend.as_null_adapter(1):
                pytest.fail("a third view on a backend capped at two")
        await ft.next_token_dist("still live")
    assert backend.statistics().peak_live_views == 2
    assert backend.is_free()


# -- concurrent-safe backends -----------------------------------------------------------


async def test_concurrent_views_overlap_and_peak_live_counts_them() -> None:
    backend = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True)
    users = 6
    live = LiveCounter()
    all_in = anyio.Event()

    async def user(index: int) -> None:
        async with enter(backend, VIEWS[index % 4]) as view:
            with live:
                if live.now == users:
                    all_in.set()
                await all_in.wait()
                await view.next_token_dist(f"p{index}")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for index in range(users):
                tg.start_soon(user, index)
    stats = backend.statistics()
    assert live.most == users
    assert stats.peak_live_views == users
    assert stats.waits == 0
    assert backend.is_free()


async def test_max_concurrent_views_caps_the_overlap_and_queues_fifo() -> None:
    backend = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True, max_concurrent_views=2)
    live = LiveCounter()
    order: list[int] = []

    async def user(index: int) -> None:
        await anyio.sleep(0.01 * index)
        async with enter(backend, VIEWS[index % 4]):
            with live:
                order.append(index)
                await anyio.sleep(1.0)

    async with anyio.create_task_group() as tg:
        for index in reversed(range(7)):
            tg.start_soon(user, index)
    stats = backend.statistics()
    assert live.most == 2
    assert stats.peak_live_views == 2
    assert order == list(range(7))
    assert stats.waits == 5


async def test_strict_on_a_capped_concurrent_backend_refuses_past_the_cap() -> None:
    backend = AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=True, max_concurrent_views=2, exclusivity="strict"
    )
    holding = anyio.Event()

    async def hold(kind: str) -> None:
        async with enter(backend, kind):
            if backend.statistics().live_views == 2:
                holding.set()
            await anyio.sleep(1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, "base", name="one")
        tg.start_soon(hold, "ft", name="two")
        await holding.wait()
        with pytest.raises(ViewConflictError, match="limit 2") as caught:
            async with backend.as_null_adapter(1):
                pytest.fail("a third view past the cap")
    assert "'one'" in str(caught.value)
    assert "'two'" in str(caught.value)


# -- stale views and single-use contexts --------------------------------------------------


@pytest.mark.parametrize("kind", VIEWS)
async def test_a_view_used_after_its_block_raises_stale_view_error(kind: str) -> None:
    backend = AsyncDummyDifferentialBackend(
        DummyResponses(generations={"p": "x"}), DummyResponses(generations={"p": "y"})
    )
    async with enter(backend, kind) as view:
        assert view.live
        assert "live" in repr(view)
    assert not view.live
    assert repr(view) == f"<DummyView id={view.id!r} stale>"
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "generate": lambda: view.generate("p", max_new_tokens=1),
        "logprob_of": lambda: view.logprob_of("p", "c"),
        "rolling_logprob": lambda: view.rolling_logprob("p"),
        "next_token_dist": lambda: view.next_token_dist("p"),
        "next_token_dist_batch": lambda: view.next_token_dist_batch(["p"]),
    }
    for op, call in calls.items():
        with pytest.raises(StaleViewError) as caught:
            await call()
        assert repr(view.id) in str(caught.value)
        assert op in str(caught.value)
        assert isinstance(caught.value, ViewError)
        assert isinstance(caught.value, SwaysimError)
    assert backend.statistics().total_calls == 0


async def test_a_view_context_is_single_use() -> None:
    backend = AsyncDummyDifferentialBackend()
    context = backend.as_finetuned()
    async with context:
        pass
    with pytest.raises(ViewError, match="already entered"):
        async with context:
            pytest.fail("re-entered a used context")
    assert backend.is_free()


async def test_an_exception_in_the_block_frees_the_gate_and_propagates() -> None:
    backend = AsyncDummyDifferentialBackend()
    with pytest.raises(ZeroDivisionError):
        async with backend.as_base():
            _ = 1 / 0
    assert backend.is_free()
    async with backend.as_finetuned() as view:
        assert view.id == "ft"


async def test_policy_and_concurrency_are_reported() -> None:
    exclusive = AsyncDummyDifferentialBackend(exclusivity="strict")
    concurrent = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True)
    assert exclusive.exclusivity == "strict"
    assert not exclusive.safe_for_concurrent_views
    assert concurrent.safe_for_concurrent_views
    assert AsyncDummyDifferentialBackend().exclusivity == "wait"
    async with exclusive.as_base():
        assert repr(exclusive) == (
            "<AsyncDummyDifferentialBackend exclusivity='strict' active='base' waiting=0>"
        )
    assert repr(exclusive) == (
        "<AsyncDummyDifferentialBackend exclusivity='strict' active=None waiting=0>"
    )
    async with concurrent.as_base(), concurrent.as_finetuned():
        assert repr(concurrent) == (
            "<AsyncDummyDifferentialBackend concurrent active=['base', 'ft'] waiting=0>"
        )
    capped = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True, max_concurrent_views=3)
    assert repr(capped).startswith("<AsyncDummyDifferentialBackend concurrent max_views=3 ")


async def test_the_repr_counts_waiters() -> None:
    backend = AsyncDummyDifferentialBackend()
    seen: list[str] = []

    async def holder() -> None:
        async with backend.as_null_adapter(2):
            await anyio.sleep(1.0)
            seen.append(repr(backend))

    async def waiter() -> None:
        await anyio.sleep(0.5)
        async with backend.as_base():
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        tg.start_soon(waiter)
        tg.start_soon(waiter)
    assert seen == ["<AsyncDummyDifferentialBackend exclusivity='wait' active='null_2' waiting=2>"]


# -- one backend, both loops --------------------------------------------------------------


async def contended_round(backend: AsyncDummyDifferentialBackend) -> list[bytes]:
    order: list[bytes] = []

    async def use(kind: str, delay: float) -> None:
        await anyio.sleep(delay)
        async with enter(backend, kind) as view:
            order.append((await view.next_token_dist(kind)).logprobs.tobytes())
            await anyio.sleep(0.1)

    async with anyio.create_task_group() as tg:
        for index, kind in enumerate(VIEWS):
            tg.start_soon(use, kind, 0.01 * index)
    return order


def test_one_backend_serves_asyncio_then_trio_then_asyncio() -> None:
    backend = AsyncDummyDifferentialBackend()  # built where no event loop runs
    results = [
        swaysim.run(contended_round, backend, backend=name)
        for name in ("asyncio", "trio", "asyncio")
    ]
    assert results[0] == results[1] == results[2]
    stats = backend.statistics()
    assert stats.entries == stats.exits == 12
    assert stats.waits == 9  # three waiters per round
    assert backend.is_free()
