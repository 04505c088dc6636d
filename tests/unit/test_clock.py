"""Virtual time on asyncio and trio: sleeps, timeouts, hangs, hold_virtual_time.

Outside work (threads, processes, portals) is in test_outside_work.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import anyio
import anyio.lowlevel
import pytest

import swaysim
from swaysim import InvalidArgumentError, VirtualClockEventLoop, hold_virtual_time

LOOPS = ["asyncio", "trio"]
# Generous: a real clock would need the full virtual duration (30 s and more).
WALL_BUDGET = 5.0


async def test_sleep_advances_the_clock_exactly_and_costs_no_wall_time() -> None:
    wall = time.perf_counter()
    start = anyio.current_time()
    for _ in range(100):
        await anyio.sleep(0.05)
    assert anyio.current_time() - start == pytest.approx(5.0, abs=1e-9)
    await anyio.sleep(3600)
    assert anyio.current_time() - start == pytest.approx(3605.0, abs=1e-6)
    assert time.perf_counter() - wall < WALL_BUDGET


async def test_fail_after_times_out_in_virtual_time() -> None:
    wall = time.perf_counter()
    start = anyio.current_time()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(30):
            await anyio.sleep_forever()
    assert anyio.current_time() - start == pytest.approx(30.0, abs=1e-6)
    assert time.perf_counter() - wall < WALL_BUDGET


async def test_move_on_after_cancels_in_virtual_time() -> None:
    start = anyio.current_time()
    with anyio.move_on_after(12.5) as scope:
        await anyio.sleep(1000)
    assert scope.cancelled_caught
    assert anyio.current_time() - start == pytest.approx(12.5, abs=1e-6)


async def test_a_timeout_that_is_not_reached_lets_the_sleep_finish() -> None:
    start = anyio.current_time()
    with anyio.fail_after(10):
        await anyio.sleep(9.5)
    assert anyio.current_time() - start == pytest.approx(9.5, abs=1e-6)


async def test_concurrent_sleepers_wake_in_deadline_order() -> None:
    woke: list[tuple[float, int]] = []
    start = anyio.current_time()

    async def sleeper(index: int, seconds: float) -> None:
        await anyio.sleep(seconds)
        woke.append((anyio.current_time() - start, index))

    async with anyio.create_task_group() as tg:
        for index, seconds in enumerate([3.0, 1.0, 2.0, 1.0]):
            tg.start_soon(sleeper, index, seconds)
    # Equal deadlines may wake in either order (trio shuffles ready tasks).
    assert [sorted(i for at, i in woke if round(at, 9) == t) for t in (1.0, 2.0, 3.0)] == [
        [1, 3],
        [2],
        [0],
    ]
    assert [round(at, 9) for at, _ in woke] == [1.0, 1.0, 2.0, 3.0]


async def test_a_sleep_forever_does_not_run_the_clock_while_a_thread_works() -> None:
    # Nothing but an infinite timer pending: the loop must wait for the thread,
    # not spin its clock forward.
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep_forever)
        await anyio.to_thread.run_sync(time.sleep, 0.002)
        elapsed = anyio.current_time() - start
        tg.cancel_scope.cancel()
    assert elapsed < 1.0


async def test_hold_virtual_time_makes_sleeps_real_then_virtual_again() -> None:
    with hold_virtual_time():
        wall = time.perf_counter()
        start = anyio.current_time()
        await anyio.sleep(0.002)
        assert time.perf_counter() - wall >= 0.002
        assert anyio.current_time() - start >= 0.002
    wall = time.perf_counter()
    start = anyio.current_time()
    await anyio.sleep(600)
    assert anyio.current_time() - start == pytest.approx(600, abs=1e-6)
    assert time.perf_counter() - wall < WALL_BUDGET


async def test_overlapping_holds_from_two_tasks_keep_the_clock_held_until_the_last_ends() -> None:
    first_released = anyio.Event()
    second_may_leave = anyio.Event()
    observed: dict[str, float] = {}

    async def first() -> None:
        with hold_virtual_time():
            await anyio.lowlevel.checkpoint()
        first_released.set()

    async def second() -> None:
        with hold_virtual_time():
            await first_released.wait()
            wall = time.perf_counter()
            await anyio.sleep(0.002)
            observed["held_wall"] = time.perf_counter() - wall
            await second_may_leave.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        tg.start_soon(first)
        await first_released.wait()
        await anyio.sleep(0.003)
        second_may_leave.set()
    # The second task's sleep took real time although the first hold had ended.
    assert observed["held_wall"] >= 0.002
    wall = time.perf_counter()
    await anyio.sleep(600)
    assert time.perf_counter() - wall < WALL_BUDGET


async def test_holds_nest() -> None:
    with hold_virtual_time(), hold_virtual_time():
        pass
    wall = time.perf_counter()
    await anyio.sleep(600)
    assert time.perf_counter() - wall < WALL_BUDGET


def test_hold_virtual_time_outside_an_event_loop_does_nothing() -> None:
    with hold_virtual_time():
        pass


def test_hold_virtual_time_in_a_worker_thread_does_nothing() -> None:
    def in_thread() -> None:
        with hold_virtual_time():
            pass

    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockEventLoop)
        await anyio.to_thread.run_sync(in_thread)
        held = loop.holding_virtual_time
        start = anyio.current_time()
        await anyio.sleep(600)
        return held, anyio.current_time() - start

    held, slept = swaysim.run(main, backend="asyncio")
    assert not held
    assert slept == pytest.approx(600, abs=1e-6)


@pytest.mark.parametrize("loop", LOOPS)
def test_hold_virtual_time_on_a_real_clock_does_nothing(loop: str) -> None:
    async def main() -> float:
        start = anyio.current_time()
        with hold_virtual_time():
            await anyio.sleep(0.002)
        return anyio.current_time() - start

    assert swaysim.run(main, backend=loop, virtual_time=False) >= 0.002


@pytest.mark.parametrize("loop", LOOPS)
def test_run_returns_the_result_and_uses_virtual_time(loop: str) -> None:
    async def main(seconds: float, tag: str) -> tuple[str, float]:
        start = anyio.current_time()
        await anyio.sleep(seconds)
        return tag, anyio.current_time() - start

    wall = time.perf_counter()
    tag, elapsed = swaysim.run(main, 86_400.0, "done", backend=loop)
    assert tag == "done"
    assert elapsed == pytest.approx(86_400.0, abs=1e-6)
    assert time.perf_counter() - wall < WALL_BUDGET


@pytest.mark.parametrize("loop", LOOPS)
def test_run_with_real_time_sleeps_for_real(loop: str) -> None:
    async def main() -> None:
        await anyio.sleep(0.002)

    wall = time.perf_counter()
    swaysim.run(main, backend=loop, virtual_time=False)
    assert time.perf_counter() - wall >= 0.002


@pytest.mark.parametrize("loop", LOOPS)
def test_every_run_starts_a_fresh_clock_at_zero(loop: str) -> None:
    async def main() -> float:
        await anyio.sleep(10)
        return anyio.current_time()

    assert swaysim.run(main, backend=loop) == pytest.approx(10.0)
    assert swaysim.run(main, backend=loop) == pytest.approx(10.0)


def test_run_rejects_an_unknown_backend() -> None:
    async def main() -> None:
        return None

    with pytest.raises(InvalidArgumentError, match="backend='curio'"):
        swaysim.run(main, backend="curio")


def test_virtual_anyio_backend_gives_each_call_its_own_clock() -> None:
    _, first = swaysim.virtual_anyio_backend("trio")
    _, second = swaysim.virtual_anyio_backend("trio")
    assert first["clock"] is not second["clock"]
    assert first["clock"].autojump_threshold == 0
    assert swaysim.virtual_anyio_backend("asyncio") == (
        "asyncio",
        {"loop_factory": VirtualClockEventLoop},
    )
    assert swaysim.virtual_anyio_backend("trio", virtual_time=False) == ("trio", {})


def test_the_asyncio_loop_jumps_once_per_idle_wait_straight_to_the_deadline() -> None:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockEventLoop)
        jumps = loop.clock_jumps
        for _ in range(10):
            await asyncio.sleep(0.3)
        return loop.clock_jumps - jumps, loop.time()

    jumps, now = swaysim.run(main, backend="asyncio")
    assert jumps == 10
    assert now == pytest.approx(3.0, abs=1e-9)


def test_the_asyncio_loop_reaches_deadlines_where_a_double_is_coarser_than_its_resolution() -> None:
    # Past 2**24 s, now + clock resolution rounds back to now: a clock set exactly
    # to the deadline would never see the timer as due, and the loop would spin.
    async def main() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        watchdog = threading.Timer(WALL_BUDGET, loop.call_soon_threadsafe, (task.cancel,))
        watchdog.start()
        try:
            await asyncio.sleep(2.0**25)
            await asyncio.sleep(0.5)
        finally:
            watchdog.cancel()
        return loop.time()

    assert swaysim.run(main, backend="asyncio") == pytest.approx(2.0**25 + 0.5, abs=1e-6)


def test_the_asyncio_loop_reports_holds() -> None:
    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockEventLoop)
        seen = [loop.holding_virtual_time]
        with hold_virtual_time():
            seen.append(loop.holding_virtual_time)
        seen.append(loop.holding_virtual_time)
        return seen

    assert swaysim.run(main, backend="asyncio") == [False, True, False]


def test_the_asyncio_loop_still_serves_real_io_while_a_timer_is_pending() -> None:
    async def main() -> tuple[bytes, float]:
        start = anyio.current_time()
        left, right = socket.socketpair()
        with left, right:
            left.setblocking(False)
            right.setblocking(False)
            with anyio.fail_after(5):
                left.send(b"ping")
                await anyio.wait_readable(right)
                data = right.recv(4)
        return data, anyio.current_time() - start

    data, elapsed = swaysim.run(main, backend="asyncio")
    assert data == b"ping"
    assert elapsed < 5
