"""Virtual time never outruns outside work: threads, processes, portals, executors, real I/O.

Each situation is one where an autojumping clock used to jump to a pending
deadline while real work was still running outside the loop; each test
fails that way on a clock that does not account for the work.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import socket
import sys
import threading
import time
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_process
import anyio.to_thread
import pytest
import trio.testing

import swaysim
from swaysim import VirtualClockEventLoop, hold_virtual_time
from swaysim._time import asyncio_loop
from swaysim._time.outside import OutsideWork

LOOPS = ["asyncio", "trio"]
# Generous: a clock that does not jump would need the full virtual duration.
WALL_BUDGET = 5.0
# A thread's or child's real work: small, but far longer than the loop needs to jump.
THREAD_WORK = 0.005
THREAD_TIMEOUT = 30.0
"""A deadline a jumping clock reaches at once and real thread work never does, even on a
loaded machine (a tight one made these tests fail under load)."""
# Starting a Python child takes real time; a 60 s timeout only fires if the clock jumps.
CHILD_TIMEOUT = 60.0


# -- threads --------------------------------------------------------------------------


async def test_a_timeout_does_not_fire_while_a_worker_thread_works() -> None:
    start = anyio.current_time()
    with anyio.fail_after(THREAD_TIMEOUT):
        await anyio.to_thread.run_sync(time.sleep, THREAD_WORK)
    assert THREAD_WORK <= anyio.current_time() - start < THREAD_TIMEOUT


async def test_a_sleeper_waits_in_real_time_while_a_thread_works_then_jumps_again() -> None:
    woke: list[float] = []
    start = anyio.current_time()

    async def sleeper() -> None:
        slept_from = anyio.current_time()
        await anyio.sleep(3600)
        woke.append(anyio.current_time() - slept_from)

    wall = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.to_thread.run_sync(time.sleep, THREAD_WORK)
        during_thread = anyio.current_time() - start
        assert woke == []
    assert THREAD_WORK <= during_thread < THREAD_TIMEOUT
    # It fell asleep while the clock followed real time, so microseconds may separate
    # its reading of the clock from its deadline; the wait itself was one jump.
    assert woke == [pytest.approx(3600, abs=0.01)]
    assert time.perf_counter() - wall < WALL_BUDGET


async def test_a_worker_thread_waiting_on_the_loop_lets_the_clock_jump() -> None:
    async def sleep_and_tell(seconds: float) -> float:
        start = anyio.current_time()
        await anyio.sleep(seconds)
        return anyio.current_time() - start

    def worker() -> float:
        return anyio.from_thread.run(sleep_and_tell, 30.0)

    wall = time.perf_counter()
    assert await anyio.to_thread.run_sync(worker) == pytest.approx(30.0, abs=1e-6)
    assert time.perf_counter() - wall < WALL_BUDGET


async def test_an_abandoned_thread_no_longer_holds_the_clock() -> None:
    release = threading.Event()
    try:
        with anyio.move_on_after(0.01) as scope:
            await anyio.to_thread.run_sync(release.wait, abandon_on_cancel=True)
        assert scope.cancelled_caught
        wall = time.perf_counter()
        await anyio.sleep(30)
        assert time.perf_counter() - wall < WALL_BUDGET
    finally:
        release.set()


def test_run_in_executor_jobs_hold_the_asyncio_clock() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(THREAD_TIMEOUT):
            await loop.run_in_executor(None, time.sleep, THREAD_WORK)
            await asyncio.to_thread(time.sleep, THREAD_WORK)
        return loop.time() - start

    assert 2 * THREAD_WORK <= swaysim.run(main, backend="asyncio") < THREAD_TIMEOUT


def test_a_hand_driven_mock_clock_is_left_alone() -> None:
    async def main() -> float:
        start = anyio.current_time()
        await anyio.to_thread.run_sync(time.sleep, THREAD_WORK)
        return anyio.current_time() - start

    clock = trio.testing.MockClock()
    assert anyio.run(main, backend="trio", backend_options={"clock": clock}) == 0.0


# -- child processes ------------------------------------------------------------------


async def test_a_timeout_around_a_child_process_does_not_fire_before_it_exits() -> None:
    with anyio.fail_after(CHILD_TIMEOUT):
        result = await anyio.run_process([sys.executable, "-c", "print('hi')"])
    assert result.stdout == b"hi\n"


async def test_a_worker_process_answers_in_time_and_idles_without_holding_the_clock() -> None:
    # anyio reads the worker's start-up handshake under a 20 s timeout.
    assert await anyio.to_process.run_sync(operator.add, 1, 2) == 3
    wall = time.perf_counter()
    await anyio.sleep(3600)  # the idle pooled worker is alive but not awaited
    assert time.perf_counter() - wall < WALL_BUDGET


# -- blocking portals -----------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_a_thread_waiting_in_a_portal_call_lets_the_clock_jump(loop: str) -> None:
    name, options = swaysim.virtual_anyio_backend(loop)
    wall = time.perf_counter()
    with anyio.from_thread.start_blocking_portal(name, options) as portal:
        start = portal.call(anyio.current_time)
        portal.call(anyio.sleep, 600)
        elapsed = portal.call(anyio.current_time) - start
    assert elapsed == pytest.approx(600, abs=1e-6)
    assert time.perf_counter() - wall < WALL_BUDGET


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_started_by_a_thread_that_goes_on_runs_in_real_time(loop: str) -> None:
    name, options = swaysim.virtual_anyio_backend(loop)
    with anyio.from_thread.start_blocking_portal(name, options) as portal:
        future = portal.start_task_soon(anyio.sleep, 2)
        portal.call(anyio.wait_all_tasks_blocked)
        time.sleep(THREAD_WORK)  # the thread's own work, while the task sleeps
        future.cancel()  # two real seconds to get here, not zero
    assert future.cancelled()


async def test_an_open_portal_holds_the_clock_while_threads_may_call_in() -> None:
    outcomes: list[object] = []

    def caller() -> None:
        time.sleep(THREAD_WORK)
        try:
            portal.call(anyio.sleep, 0.05)
        except BaseException as exc:
            outcomes.append(exc)
        else:
            outcomes.append("done")

    start = anyio.current_time()
    async with anyio.from_thread.BlockingPortal() as portal:
        thread = threading.Thread(target=caller)
        thread.start()
        await anyio.sleep(0.02)  # a jump would close the portal before the call arrives
        assert outcomes == []
    await anyio.to_thread.run_sync(thread.join)
    assert outcomes == ["done"]
    assert anyio.current_time() - start >= THREAD_WORK + 0.05


# -- work swaysim cannot see ------------------------------------------------------------


async def _wait_for_a_thread_started_by_hand(*, hold: bool) -> None:
    token = anyio.lowlevel.current_token()
    done = anyio.Event()

    def work() -> None:
        time.sleep(THREAD_WORK)
        anyio.from_thread.run_sync(done.set, token=token)

    thread = threading.Thread(target=work)
    try:
        with anyio.fail_after(THREAD_TIMEOUT):
            if hold:
                with hold_virtual_time():
                    thread.start()
                    await done.wait()
            else:
                thread.start()
                await done.wait()
    finally:
        await anyio.to_thread.run_sync(thread.join)


async def test_a_thread_started_by_hand_is_invisible_to_the_clock() -> None:
    """Why hold_virtual_time exists."""
    with pytest.raises(TimeoutError):
        await _wait_for_a_thread_started_by_hand(hold=False)


async def test_hold_virtual_time_covers_a_thread_started_by_hand() -> None:
    await _wait_for_a_thread_started_by_hand(hold=True)


# -- real-time facts on asyncio ---------------------------------------------------------


def test_the_clock_gives_a_peer_that_just_spoke_real_time_to_answer() -> None:
    # A client thread in a TLS handshake: it spoke, the loop answered, the client thinks.
    async def main() -> bytes:
        left, right = socket.socketpair()

        def peer() -> None:
            right.sendall(b"hello")
            assert right.recv(4) == b"ping"
            time.sleep(THREAD_WORK)
            right.sendall(b"pong")

        thread = threading.Thread(target=peer)
        with left, right:
            left.setblocking(False)
            thread.start()
            try:
                await anyio.wait_readable(left)
                assert left.recv(5) == b"hello"
                left.send(b"ping")
                with anyio.fail_after(5):
                    await anyio.wait_readable(left)
                return left.recv(4)
            finally:
                await anyio.to_thread.run_sync(thread.join)

    assert swaysim.run(main, backend="asyncio") == b"pong"


class _FakeWallClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_debug_mode_reports_slow_callbacks_by_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wall = _FakeWallClock()
    monkeypatch.setattr(asyncio_loop, "_wall", wall)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.1
        loop.call_soon(wall.advance, 0.25)  # a callback that blocks the loop for 0.25 s
        loop.call_soon(wall.advance, 0.05)  # and a quick one
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    options: dict[str, Any] = {"loop_factory": VirtualClockEventLoop, "debug": True}
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        anyio.run(main, backend="asyncio", backend_options=options)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert len(slow) == 1
    assert "advance(0.25)" in slow[0]
    assert slow[0].endswith("took 0.250 seconds")


# -- the account itself -----------------------------------------------------------------


class _RecordingClock:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.time = 0.0

    def hold(self) -> None:
        self.events.append("hold")

    def release(self) -> None:
        self.events.append("release")

    def now(self) -> float:
        return self.time


def test_the_account_holds_while_work_runs_and_tells_the_clock_only_on_changes() -> None:
    clock = _RecordingClock()
    account = OutsideWork(clock, automatic=True)
    seen = [account.held]
    with account.running():
        with account.running():
            seen.append(account.held)
        seen.append(account.held)
    seen.append(account.held)
    assert seen == [False, True, True, False]
    assert clock.events == ["hold", "release"]
    assert repr(account) == "OutsideWork(running=0, held=False, held_seconds=0)"


def test_the_account_adds_up_the_clock_time_it_held_the_clock_for() -> None:
    clock = _RecordingClock()
    account = OutsideWork(clock, automatic=True)
    clock.time = 5.0  # jumping time before the first hold is not held time
    with account.running():
        clock.time = 5.25
        with account.running():
            clock.time = 5.5
        assert account.held_seconds == 0.5  # the open hold counts so far
        clock.time = 6.0
    clock.time = 9.0
    with account.running():
        clock.time = 9.125
    clock.time = 12.0
    assert account.held_seconds == 1.125
    assert repr(account) == "OutsideWork(running=0, held=False, held_seconds=1.125)"
