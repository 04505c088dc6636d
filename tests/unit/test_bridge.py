"""The blocking bridge: sync views over the async backend, from a portal or a worker thread."""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import anyio.from_thread
import numpy as np
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    BlockingBackend,
    BridgeCancelled,
    BridgeError,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InjectedTransientError,
    InjectedViewEnterError,
    InjectedViewExitError,
    InvalidArgumentError,
    LatencyPlan,
    NestedViewError,
    RollingLogprob,
    StaleViewError,
    TokenDist,
    ViewConflictError,
    ViewError,
    blocking_backend,
    run_sync_probe,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim._backend.views import ViewContext as _ViewContext

LOOPS = ("asyncio", "trio")
VIEWS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("as_base", ()),
    ("as_finetuned", ()),
    ("as_scaled_adapter", (0.5,)),
    ("as_null_adapter", (7,)),
)


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    """The event loop the blocking portal runs (sync tests)."""
    name: str = request.param
    return name


def _responses() -> tuple[DummyResponses, DummyResponses]:
    base = DummyResponses(generations={"q": "base says"}, logprobs={("q", "a"): -3.0})
    ft = DummyResponses(generations={"q": "ft says"}, logprobs={("q", "a"): -1.0})
    return base, ft


def _plain(value: object) -> object:
    """Values as plain Python, so results from both paths compare with ``==``."""
    if isinstance(value, TokenDist):
        return (
            value.token_ids.tolist(),
            value.logprobs.tolist(),
            value.vocab_size,
            value.tail_logprob,
        )
    if isinstance(value, RollingLogprob):
        return (value.token_ids.tolist(), value.logprobs.tolist(), value.total_logprob)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _sync_script(sync_backend: BlockingBackend) -> object:
    out: list[object] = []
    for method, args in VIEWS:
        with getattr(sync_backend, method)(*args) as view:
            out.append(view.id)
            out.append(view.generate("q", max_new_tokens=4))
            out.append(view.logprob_of("q", "a"))
            out.append(view.rolling_logprob("one two three"))
            out.append(view.next_token_dist("q", top_k=8))
            out.append(view.next_token_dist_batch(["q", "r"], top_k=8))
    return _plain(out)


async def _async_script(backend: AsyncDummyDifferentialBackend) -> object:
    out: list[object] = []
    for method, args in VIEWS:
        context: _ViewContext = getattr(backend, method)(*args)
        async with context as view:
            out.append(view.id)
            out.append(await view.generate("q", max_new_tokens=4))
            out.append(await view.logprob_of("q", "a"))
            out.append(await view.rolling_logprob("one two three"))
            out.append(await view.next_token_dist("q", top_k=8))
            out.append(await view.next_token_dist_batch(["q", "r"], top_k=8))
    return _plain(out)


class _Worker(threading.Thread):
    """A thread that keeps its exception for the test to re-raise."""

    def __init__(self, body: Callable[[], object], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._body = body
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=10)
        assert not self.is_alive(), f"thread {self.name} did not finish"
        if self.error is not None:
            raise self.error


def _wait_until(condition: Callable[[], bool]) -> None:
    """Poll a cross-thread condition (thread scheduling only; no modelled time)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


def _waiting(sync_backend: BlockingBackend, backend: AsyncDummyDifferentialBackend) -> int:
    return sync_backend.run_sync(backend.statistics).waiting


# -- portal mode: values and shape ---------------------------------------------------


def test_ops_through_the_bridge_equal_the_async_ops(loop: str) -> None:
    import swaysim

    expected = swaysim.run(
        _async_script, AsyncDummyDifferentialBackend(*_responses()), backend=loop
    )
    with blocking_backend(AsyncDummyDifferentialBackend(*_responses()), loop=loop) as sync_backend:
        assert _sync_script(sync_backend) == expected


def test_views_are_sync_context_managers_that_go_stale(loop: str) -> None:
    with blocking_backend(AsyncDummyDifferentialBackend(), loop=loop) as sync_backend:
        context = sync_backend.as_finetuned()
        assert isinstance(context, AbstractContextManager)
        with context as view:
            assert view.id == "ft"
            live_inside = view.live
            assert repr(view) == "<BlockingView id='ft' live>"
            view.close()
        assert (live_inside, view.live) == (True, False)
        assert repr(view) == "<BlockingView id='ft' stale>"
        with pytest.raises(StaleViewError, match=r"after its 'with' block exited"):
            view.next_token_dist("q")
        with pytest.raises(ViewError, match="already entered"):
            context.__enter__()


def test_view_arguments_are_checked_when_the_block_is_entered(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend()
    with pytest.raises(InvalidArgumentError) as async_lam:
        backend.as_scaled_adapter(math.nan)
    with pytest.raises(InvalidArgumentError) as async_rank:
        backend.as_null_adapter(1, rank_scale=0.0)
    with blocking_backend(backend, loop=loop) as sync_backend:
        context = sync_backend.as_scaled_adapter(math.nan)
        with pytest.raises(InvalidArgumentError, match=re.escape(str(async_lam.value))):
            context.__enter__()
        with (
            pytest.raises(InvalidArgumentError, match=re.escape(str(async_rank.value))),
            sync_backend.as_null_adapter(1, rank_scale=0.0),
        ):
            pass
        assert sync_backend.run_sync(backend.is_free)


@runtime_checkable
class _SyncScalable(Protocol):
    def as_scaled_adapter(self, lam: float) -> AbstractContextManager[Any]: ...


@runtime_checkable
class _SyncNullCalibrated(Protocol):
    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> AbstractContextManager[Any]: ...


@runtime_checkable
class _SyncPreflightCheckable(Protocol):
    def preflight_finite_check(self) -> tuple[bool, str]: ...


class _BaseAndFinetunedOnly:
    """An async backend with only the required surface."""

    safe_for_concurrent_views = False

    def __init__(self) -> None:
        self._inner = AsyncDummyDifferentialBackend()

    def as_base(self) -> _ViewContext:
        return self._inner.as_base()

    def as_finetuned(self) -> _ViewContext:
        return self._inner.as_finetuned()


def test_capabilities_follow_the_async_backend(loop: str) -> None:
    capabilities = (_SyncScalable, _SyncNullCalibrated, _SyncPreflightCheckable)
    full = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True)
    with blocking_backend(full, loop=loop) as sync_backend:
        assert all(isinstance(sync_backend, protocol) for protocol in capabilities)
        assert sync_backend.safe_for_concurrent_views is True
        assert sync_backend.backend is full
    with blocking_backend(_BaseAndFinetunedOnly(), loop=loop) as narrow:
        assert isinstance(narrow, BlockingBackend)
        assert not any(isinstance(narrow, protocol) for protocol in capabilities)
        assert narrow.safe_for_concurrent_views is False
        with narrow.as_base() as view:
            assert view.logprob_of("q", "a") == -10.0


# -- portal mode: exclusivity from several threads -------------------------------------


def test_threads_wait_fifo_for_the_live_view(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend()
    log: list[str] = []
    holding, release = threading.Event(), threading.Event()

    with blocking_backend(backend, loop=loop) as sync_backend:

        def hold_base() -> None:
            with sync_backend.as_base() as view:
                log.append("holder entered")
                holding.set()
                assert release.wait(10)
                view.logprob_of("q", "a")
                log.append("holder exiting")

        def enter(method: str, who: str) -> Callable[[], None]:
            def body() -> None:
                with getattr(sync_backend, method)():
                    log.append(f"{who} entered")

            return body

        holder = _Worker(hold_base, "holder")
        holder.start()
        assert holding.wait(10)
        first = _Worker(enter("as_finetuned", "first"), "first")
        first.start()
        _wait_until(lambda: _waiting(sync_backend, backend) == 1)
        second = _Worker(enter("as_base", "second"), "second")
        second.start()
        _wait_until(lambda: _waiting(sync_backend, backend) == 2)
        assert log == ["holder entered"]
        release.set()
        for worker in (holder, first, second):
            worker.finish()
        stats = sync_backend.run_sync(backend.statistics)
    assert log == ["holder entered", "holder exiting", "first entered", "second entered"]
    assert (stats.waits, stats.peak_live_views, stats.live_views) == (2, 1, 0)


def test_strict_refuses_a_second_thread_at_once_naming_both(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend(exclusivity="strict")
    holding, release = threading.Event(), threading.Event()
    with blocking_backend(backend, loop=loop) as sync_backend:

        def hold_base() -> None:
            with sync_backend.as_base():
                holding.set()
                assert release.wait(10)

        holder = _Worker(hold_base, "holder")
        holder.start()
        assert holding.wait(10)
        with pytest.raises(ViewConflictError) as info, sync_backend.as_finetuned():
            pass
        release.set()
        holder.finish()
    message = str(info.value)
    assert "'ft'" in message
    assert "'base' held by task 'sync holder#" in message
    assert f"task 'sync {threading.current_thread().name}#" in message


@pytest.mark.parametrize(
    "options",
    [
        {"exclusivity": "wait"},
        {"exclusivity": "strict"},
        {"safe_for_concurrent_views": True, "max_concurrent_views": 1},
    ],
    ids=["wait", "strict", "concurrent-capped"],
)
def test_a_thread_entering_a_second_view_gets_nested_view_error(
    loop: str, options: dict[str, Any]
) -> None:
    backend = AsyncDummyDifferentialBackend(**options)
    with blocking_backend(backend, loop=loop) as sync_backend:
        with sync_backend.as_base() as base:
            with (
                pytest.raises(NestedViewError, match="already holds view 'base'"),
                sync_backend.as_finetuned(),
            ):
                pass
            assert base.logprob_of("q", "a") == -10.0
        assert sync_backend.run_sync(backend.is_free)


def test_nested_views_are_allowed_where_async_allows_them(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend(*_responses(), safe_for_concurrent_views=True)
    with (
        blocking_backend(backend, loop=loop) as sync_backend,
        sync_backend.as_base() as base,
        sync_backend.as_finetuned() as ft,
    ):
        assert (base.logprob_of("q", "a"), ft.logprob_of("q", "a")) == (-3.0, -1.0)
    assert backend.statistics().peak_live_views == 2


def test_threads_hold_views_together_on_a_concurrent_safe_backend(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend(*_responses(), safe_for_concurrent_views=True)
    both_live = threading.Barrier(2, timeout=10)
    results: dict[str, float] = {}
    with blocking_backend(backend, loop=loop) as sync_backend:

        def use(method: str) -> Callable[[], None]:
            def body() -> None:
                with getattr(sync_backend, method)() as view:
                    both_live.wait()
                    results[view.id] = view.logprob_of("q", "a")
                    both_live.wait()

            return body

        workers = [_Worker(use(method), method) for method in ("as_base", "as_finetuned")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.finish()
    assert results == {"base": -3.0, "ft": -1.0}
    assert backend.statistics().peak_live_views == 2


# -- portal mode: time and faults -----------------------------------------------------


def test_injected_latency_costs_loop_time_not_wall_time(loop: str) -> None:
    per_op, ops = 0.05, 40
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(per_op)))
    with blocking_backend(backend, loop=loop) as sync_backend, sync_backend.as_base() as view:
        started, wall_started = sync_backend.current_time(), time.perf_counter()
        for index in range(ops):
            view.logprob_of(f"prompt {index}", "a")
        wall = time.perf_counter() - wall_started
        elapsed = sync_backend.current_time() - started
    assert elapsed == pytest.approx(ops * per_op)
    assert wall < ops * per_op / 4


def test_op_timeout_turns_a_hang_into_a_timeout_on_the_virtual_clock(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend(faults=FaultPlan((FaultRule("hang", views=("ft",)),)))
    with blocking_backend(backend, loop=loop, op_timeout=30.0) as sync_backend:
        with sync_backend.as_finetuned() as view:
            started, wall_started = sync_backend.current_time(), time.perf_counter()
            with pytest.raises(TimeoutError):
                view.next_token_dist("q")
            assert sync_backend.current_time() - started == pytest.approx(30.0)
            assert time.perf_counter() - wall_started < 15.0
        with sync_backend.as_base() as view:
            assert view.logprob_of("q", "a") == -10.0
    assert [firing.kind for firing in backend.fault_log] == ["hang"]
    assert backend.is_free()


FAULTS = FaultPlan(
    (
        FaultRule("transient", ops=("logprob_of",), nth=1),
        FaultRule("enter_error", views=("scaled",)),
        FaultRule("exit_error", views=("null",)),
        FaultRule("nan", ops=("next_token_dist",), views=("ft",)),
    )
)


def _outcome(call: Callable[[], object]) -> object:
    try:
        return _plain(call())
    except Exception as exc:
        return type(exc).__name__


def _sync_fault_script(sync_backend: BlockingBackend) -> list[object]:
    out: list[object] = []
    with sync_backend.as_base() as view:
        out.append(_outcome(lambda: view.logprob_of("q", "a")))
        out.append(_outcome(lambda: view.logprob_of("q", "a")))
    out.append(_outcome(lambda: sync_backend.as_scaled_adapter(0.5).__enter__()))

    def null_block() -> object:
        with sync_backend.as_null_adapter(3) as view:
            return view.next_token_dist("q", top_k=8)

    out.append(_outcome(null_block))
    with sync_backend.as_finetuned() as view:
        out.append(bool(np.isnan(view.next_token_dist("q").logprobs).all()))
    out.append(sync_backend.preflight_finite_check())
    return out


async def _async_fault_script(backend: AsyncDummyDifferentialBackend) -> list[object]:
    out: list[object] = []

    async def outcome(call: Callable[[], Any]) -> object:
        try:
            return _plain(await call())
        except Exception as exc:
            return type(exc).__name__

    async with backend.as_base() as view:
        out.append(await outcome(lambda: view.logprob_of("q", "a")))
        out.append(await outcome(lambda: view.logprob_of("q", "a")))
    out.append(await outcome(backend.as_scaled_adapter(0.5).__aenter__))

    async def null_block() -> object:
        async with backend.as_null_adapter(3) as view:
            return await view.next_token_dist("q", top_k=8)

    out.append(await outcome(null_block))
    async with backend.as_finetuned() as view:
        out.append(bool(np.isnan((await view.next_token_dist("q")).logprobs).all()))
    out.append(await backend.preflight_finite_check())
    return out


def test_faults_reach_the_thread_as_they_reach_async_callers(loop: str) -> None:
    import swaysim

    reference = AsyncDummyDifferentialBackend(faults=FAULTS)
    expected = swaysim.run(_async_fault_script, reference, backend=loop)
    bridged = AsyncDummyDifferentialBackend(faults=FAULTS)
    with blocking_backend(bridged, loop=loop) as sync_backend:
        assert _sync_fault_script(sync_backend) == expected
    assert expected[:4] == [
        InjectedTransientError.__name__,
        -10.0,
        InjectedViewEnterError.__name__,
        InjectedViewExitError.__name__,
    ]
    assert expected[4] is True
    assert expected[5] == (
        False,
        f"ft view produced 8/8 non-finite logprob(s) on prompt {'preflight'!r}",
    )
    assert bridged.fault_log == reference.fault_log
    assert bridged.is_free()


# -- portal mode: lifecycle and arguments ---------------------------------------------


def test_a_closed_bridge_refuses_calls_and_released_leaked_views(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend()
    with blocking_backend(backend, loop=loop) as sync_backend:
        leaked = sync_backend.as_base().__enter__()
        assert not sync_backend.run_sync(backend.is_free)
        assert "open" in repr(sync_backend)
    assert backend.is_free()
    assert sync_backend.closed
    assert repr(sync_backend).startswith("<BlockingBackend closed")
    with pytest.raises(BridgeError, match="closed"):
        sync_backend.as_finetuned().__enter__()
    with pytest.raises(BridgeError, match="closed"):
        leaked.logprob_of("q", "a")


def test_closing_the_bridge_interrupts_a_thread_still_waiting(loop: str) -> None:
    backend = AsyncDummyDifferentialBackend()
    with blocking_backend(backend, loop=loop) as sync_backend:
        sync_backend.as_base().__enter__()
        waiter = _Worker(lambda: sync_backend.as_finetuned().__enter__(), "waiter")
        waiter.start()
        _wait_until(lambda: _waiting(sync_backend, backend) == 1)
    waiter.join(10)
    assert isinstance(waiter.error, BridgeError)
    assert "closed while this thread was still using it" in str(waiter.error)
    assert backend.is_free()
    assert backend.statistics().waiting == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loop": "curio"}, "loop='curio' is not supported"),
        ({"virtual_time": "yes"}, "virtual_time='yes' must be True or False"),
        ({"op_timeout": 0}, "op_timeout=0 must be a positive finite number"),
        ({"op_timeout": -1.0}, "op_timeout=-1.0 must be"),
        ({"op_timeout": math.inf}, "op_timeout=inf must be"),
        ({"op_timeout": True}, "op_timeout=True must be"),
        ({"op_timeout": "1"}, "op_timeout='1' must be"),
    ],
)
def test_blocking_backend_rejects_bad_arguments(options: dict[str, Any], message: str) -> None:
    with (
        pytest.raises(InvalidArgumentError, match=re.escape(message)),
        blocking_backend(AsyncDummyDifferentialBackend(), **options),
    ):
        pass


def test_blocking_backend_rejects_what_is_not_a_backend() -> None:
    with (
        pytest.raises(InvalidArgumentError, match=r"backend=<object .* must be an async"),
        blocking_backend(object()),  # type: ignore[arg-type]
    ):
        pass


# -- worker-thread mode: run_sync_probe -------------------------------------------------


async def test_run_sync_probe_returns_what_the_function_returns() -> None:
    expected = await _async_script(AsyncDummyDifferentialBackend(*_responses()))
    backend = AsyncDummyDifferentialBackend(*_responses())
    assert await run_sync_probe(backend, _sync_script) == expected

    def echo(sync_backend: BlockingBackend, number: int, text: str) -> tuple[int, str]:
        return number, text

    assert await run_sync_probe(backend, echo, 1, "x") == (1, "x")


async def test_latency_in_a_sync_probe_runs_on_the_virtual_clock() -> None:
    per_op, ops = 0.05, 20
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(per_op)))

    def probe(sync_backend: BlockingBackend) -> None:
        with sync_backend.as_base() as view:
            for index in range(ops):
                view.logprob_of(f"prompt {index}", "a")

    started, wall_started = anyio.current_time(), time.perf_counter()
    await run_sync_probe(backend, probe)
    wall = time.perf_counter() - wall_started
    elapsed = anyio.current_time() - started
    # Latency jumps; the clock follows real time only while the thread runs its own code.
    assert ops * per_op - 1e-9 <= elapsed <= ops * per_op + wall
    assert wall < ops * per_op / 4


async def test_a_timeout_around_a_sync_probe_counts_only_time_the_probe_takes() -> None:
    # An autojumping clock would jump to the deadline while the thread works.
    backend = AsyncDummyDifferentialBackend()

    def probe(sync_backend: BlockingBackend) -> list[float]:
        with sync_backend.as_base() as view:
            return [view.logprob_of(f"prompt {index}", "a") for index in range(50)]

    with anyio.fail_after(1.0):
        assert await run_sync_probe(backend, probe) == [-10.0] * 50


async def test_a_timeout_around_a_hung_sync_probe_fires_in_virtual_time() -> None:
    faults = FaultPlan((FaultRule("hang", ops=("next_token_dist",)),))
    backend = AsyncDummyDifferentialBackend(faults=faults)
    seen: list[type[BaseException]] = []

    def probe(sync_backend: BlockingBackend) -> None:
        try:
            with sync_backend.as_finetuned() as view:
                view.next_token_dist("q")
        except BaseException as exc:
            seen.append(type(exc))
            raise

    started, wall_started = anyio.current_time(), time.perf_counter()
    with pytest.raises(TimeoutError), anyio.fail_after(5.0):
        await run_sync_probe(backend, probe)
    wall = time.perf_counter() - wall_started
    assert anyio.current_time() - started == pytest.approx(5.0, abs=wall)
    assert wall < 2.5
    assert seen == [BridgeCancelled]
    stats = backend.statistics()
    assert (stats.live_views, stats.waiting) == (0, 0)


async def test_except_exception_in_probe_code_cannot_swallow_the_cancellation() -> None:
    backend = AsyncDummyDifferentialBackend(
        faults=FaultPlan((FaultRule("hang", ops=("next_token_dist",)),))
    )
    seen: list[str] = []

    def probe(sync_backend: BlockingBackend) -> None:
        with sync_backend.as_finetuned() as view:
            try:
                view.next_token_dist("q")
            except Exception:  # what probe code writes to record an error and carry on
                seen.append("swallowed")
            except BaseException as exc:
                seen.append(type(exc).__name__)
            # Carrying on anyway does not get past the next call.
            try:
                view.logprob_of("q", "a")
            except BaseException as exc:
                seen.append(type(exc).__name__)
                raise

    with pytest.raises(TimeoutError), anyio.fail_after(5.0):
        await run_sync_probe(backend, probe)
    assert seen == ["BridgeCancelled", "BridgeCancelled"]
    assert backend.is_free()


async def test_cancelling_a_sync_probe_stops_its_wait_for_a_view() -> None:
    backend = AsyncDummyDifferentialBackend()
    seen: list[object] = []

    def probe(sync_backend: BlockingBackend) -> None:
        try:
            with sync_backend.as_finetuned():
                seen.append("entered")
        except BaseException as exc:
            seen.append(type(exc))
            raise

    async with backend.as_base():
        with pytest.raises(TimeoutError), anyio.fail_after(2.0):
            await run_sync_probe(backend, probe)
        assert backend.statistics().waiting == 0
    assert seen == [BridgeCancelled]
    assert backend.is_free()
    assert "ft" not in backend.statistics().entries_per_view


async def test_op_timeout_bounds_each_op_of_a_sync_probe() -> None:
    faults = FaultPlan((FaultRule("hang", ops=("logprob_of",), nth=1),))
    backend = AsyncDummyDifferentialBackend(faults=faults)

    def probe(sync_backend: BlockingBackend) -> float:
        with sync_backend.as_base() as view:
            with pytest.raises(TimeoutError):
                view.logprob_of("q", "a")
            return view.logprob_of("q", "a")

    started = anyio.current_time()
    assert await run_sync_probe(backend, probe, op_timeout=10.0) == -10.0
    assert anyio.current_time() - started >= 10.0


async def test_sync_probes_and_async_tasks_take_turns_on_an_exclusive_backend() -> None:
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(0.1)))
    intervals: list[tuple[float, float, str]] = []

    async def async_user(name: str) -> None:
        async with backend.as_base() as view:
            start = anyio.current_time()
            for index in range(3):
                await view.logprob_of(f"{name} {index}", "a")
            intervals.append((start, anyio.current_time(), name))

    def sync_user(sync_backend: BlockingBackend, name: str) -> None:
        with sync_backend.as_finetuned() as view:
            start = sync_backend.current_time()
            for index in range(3):
                view.logprob_of(f"{name} {index}", "a")
            intervals.append((start, sync_backend.current_time(), name))

    async with anyio.create_task_group() as tg:
        tg.start_soon(async_user, "async-1")
        tg.start_soon(run_sync_probe, backend, sync_user, "sync-1")
        tg.start_soon(run_sync_probe, backend, sync_user, "sync-2")
        tg.start_soon(async_user, "async-2")
    intervals.sort()
    assert sorted(name for _, _, name in intervals) == ["async-1", "async-2", "sync-1", "sync-2"]
    for (_, end, _), (start, _, _) in itertools.pairwise(intervals):
        assert start >= end
    stats = backend.statistics()
    assert (stats.entries, stats.peak_live_views) == (4, 1)
    assert stats.waits >= 1


async def test_strict_refuses_a_sync_probe_while_an_async_task_holds_a_view() -> None:
    backend = AsyncDummyDifferentialBackend(exclusivity="strict")

    def probe(sync_backend: BlockingBackend) -> None:
        with sync_backend.as_finetuned():
            pass

    async with backend.as_base():
        with pytest.raises(ViewConflictError, match="'base' held by task"):
            await run_sync_probe(backend, probe)


async def test_nested_entry_in_a_sync_probe_is_an_error_not_a_deadlock() -> None:
    backend = AsyncDummyDifferentialBackend()

    def probe(sync_backend: BlockingBackend) -> None:
        with sync_backend.as_base(), sync_backend.as_finetuned():
            pass

    with pytest.raises(NestedViewError, match="already holds view 'base'"):
        await run_sync_probe(backend, probe)
    assert backend.is_free()


async def test_a_sync_probe_holds_its_views_under_its_thread_name() -> None:
    backend = AsyncDummyDifferentialBackend()

    def probe(sync_backend: BlockingBackend) -> tuple[str, dict[str, str]]:
        with sync_backend.as_base():
            holders = sync_backend.run_sync(backend.statistics).holders
            return threading.current_thread().name, dict(holders)

    thread_name, holders = await run_sync_probe(backend, probe)
    assert list(holders) == ["base"]
    assert holders["base"].startswith(f"sync {thread_name}#")


async def test_an_exception_in_a_sync_probe_propagates_and_releases_its_view() -> None:
    backend = AsyncDummyDifferentialBackend()

    def probe(sync_backend: BlockingBackend) -> None:
        with sync_backend.as_base():
            raise LookupError("probe bug")

    with pytest.raises(LookupError, match="probe bug"):
        await run_sync_probe(backend, probe)
    assert backend.is_free()


async def test_a_view_a_sync_probe_leaks_is_released_when_it_returns() -> None:
    backend = AsyncDummyDifferentialBackend()

    def probe(sync_backend: BlockingBackend) -> str:
        return sync_backend.as_base().__enter__().id

    assert await run_sync_probe(backend, probe) == "base"
    assert backend.is_free()


async def test_calling_a_blocking_view_from_the_loop_thread_is_an_error() -> None:
    backend = AsyncDummyDifferentialBackend()

    async def from_the_loop(sync_backend: BlockingBackend) -> str:
        await anyio.lowlevel.checkpoint()
        try:
            sync_backend.as_base().__enter__()
        except BridgeError as exc:
            return str(exc)
        return "no error"

    def probe(sync_backend: BlockingBackend) -> str:
        return anyio.from_thread.run(from_the_loop, sync_backend)

    assert "its own event loop's thread" in await run_sync_probe(backend, probe)
    assert backend.is_free()


async def test_run_sync_probe_rejects_bad_arguments() -> None:
    backend = AsyncDummyDifferentialBackend()
    with pytest.raises(InvalidArgumentError, match=r"func='probe' must be callable") as raised:
        await run_sync_probe(backend, "probe")  # type: ignore[arg-type]
    assert (raised.value.field, raised.value.value) == ("func", "probe")
    with pytest.raises(InvalidArgumentError, match=r"op_timeout=-2 must be") as raised:
        await run_sync_probe(backend, lambda sync_backend: None, op_timeout=-2)
    assert (raised.value.field, raised.value.value) == ("op_timeout", -2)
    with pytest.raises(InvalidArgumentError, match=r"backend=None must be an async") as raised:
        await run_sync_probe(None, lambda sync_backend: None)  # type: ignore[arg-type]
    assert (raised.value.field, raised.value.value) == ("backend", None)
