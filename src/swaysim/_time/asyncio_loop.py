"""asyncio's virtual clock: :class:`VirtualClockEventLoop`.

A selector event loop whose ``time()`` is virtual: when nothing is ready and
a timer is pending, its selector sets the clock to the timer instead of
sleeping. Three things keep that jump honest:

- outside work (:mod:`swaysim._time.outside`): while the loop waits for a
  worker thread, an executor job, a child process or a portal caller, the
  clock follows real time instead;
- real I/O: for a moment after data arrives from a real socket or pipe
  (``REAL_IO_SETTLE`` seconds of wall time) the clock follows real time
  too, since a peer that just spoke (a client thread in a TLS handshake, a
  child) may well answer within its timeout;
- debug mode times callbacks with a wall clock, so slow callbacks are still
  reported.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import math
import selectors
import time
from asyncio.log import logger
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, TypeVarTuple

from swaysim._time.anyio_hooks import install_anyio_hooks
from swaysim._time.outside import LOOP_ATTRIBUTE, OutsideWork

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

__all__ = ["VirtualClockEventLoop"]

T = TypeVar("T")
PosArgs = TypeVarTuple("PosArgs")

_wall = time.perf_counter


class _JumpingSelector(selectors.BaseSelector):
    """Delegates to a real selector, but turns an idle timed wait into a clock jump.

    asyncio calls ``select(timeout)`` with a positive timeout only when no
    callback is ready and a timer is pending: every task is blocked. The
    selector then polls once (real I/O wins) and otherwise jumps the clock
    straight to the earliest timer, unless the loop holds its clock or real
    I/O arrived moments ago; then it waits in real time. A timer at infinity
    (``sleep(inf)``, a hang) never fires, so with nothing else pending the
    loop blocks on real I/O instead of spinning its clock forward.
    """

    def __init__(self, loop: VirtualClockEventLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if timeout is None or timeout <= 0 or loop._virtual_holds:
            return self._noting_real_io(self._real.select(timeout))
        ready = self._real.select(0)
        if ready:
            return self._noting_real_io(ready)
        if loop._real_io_at is not None:
            settling = loop._real_io_at + loop.REAL_IO_SETTLE - _wall()
            if settling > 0:
                loop._hold()
                try:
                    return self._noting_real_io(self._real.select(min(timeout, settling)))
                finally:
                    loop._release()
            loop._real_io_at = None
        # asyncio pruned cancelled timers from the heap head just before calling us.
        when: float = loop._scheduled[0]._when  # type: ignore[attr-defined]
        if when == math.inf:
            return self._noting_real_io(self._real.select(None))
        if when > loop._virtual_now:
            # asyncio runs timers before now + clock resolution; past 2**24 s that sum rounds
            # to now, so land one ulp past the timer or it never fires and the loop spins.
            due = when + loop._clock_resolution > when  # type: ignore[attr-defined]
            loop._virtual_now = when if due else math.nextafter(when, math.inf)
            loop._virtual_jumps += 1
        return ready

    def _noting_real_io(
        self, ready: list[tuple[selectors.SelectorKey, int]]
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """Remember when real I/O last arrived (the loop's own wakeup pipe is not real I/O)."""
        if ready:
            wakeup = self._loop._wakeup_fd
            if any(key.fd != wakeup for key, _ in ready):
                self._loop._real_io_at = _wall()
        return ready


class _LoopClock:
    """The loop's side of its outside-work account."""

    __slots__ = ("_loop",)

    def __init__(self, loop: VirtualClockEventLoop) -> None:
        self._loop = loop

    def hold(self) -> None:
        self._loop._hold()

    def release(self) -> None:
        self._loop._release()

    def now(self) -> float:
        return self._loop.time()


class VirtualClockEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on a virtual clock that starts at 0.0.

    When no callback is ready and no I/O arrives, the loop sets its clock to
    the next scheduled timer instead of sleeping: ten thousand 50 ms sleeps
    take milliseconds of wall time. While it waits for work outside itself
    (anyio worker threads, ``run_in_executor`` jobs, child processes,
    blocking-portal callers; see the README's "Virtual time"), inside
    :func:`~swaysim.hold_virtual_time`, and for ``REAL_IO_SETTLE`` seconds
    after real I/O, its clock runs at the rate of real time instead. Pass
    the class as anyio's ``loop_factory`` (see
    :func:`~swaysim.virtual_anyio_backend`).

    Chosen over ``looptime`` after measuring both (benchmarks/
    bench_virtual_time.py): looptime runs ``noop_cycles`` (default 42) idle
    loop iterations before every jump, about 20 times the wall cost per sleep,
    and is still about twice as slow with ``noop_cycles=0``. Those cycles
    exist for code that needs several iterations to settle; on asyncio a
    positive select timeout already means every task is blocked.
    """

    #: Wall seconds after real I/O during which the clock follows real time.
    REAL_IO_SETTLE: ClassVar[float] = 0.25

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self._virtual_jumps = 0
        self._virtual_holds = 0
        self._virtual_anchor = 0.0
        self._real_io_at: float | None = None
        self._timed_handle: Any = None
        self._timed_since = (0.0, 0.0)
        super().__init__(_JumpingSelector(self))
        self._wakeup_fd: int = self._ssock.fileno()  # type: ignore[attr-defined]
        self._outside_work = OutsideWork(_LoopClock(self), automatic=True)
        setattr(self, LOOP_ATTRIBUTE, self._outside_work)
        install_anyio_hooks()

    def time(self) -> float:
        if self._virtual_holds:
            return self._virtual_now + (_wall() - self._virtual_anchor)
        return self._virtual_now

    @property
    def clock_jumps(self) -> int:
        """How many times the clock jumped ahead (one per idle wait for a timer)."""
        return self._virtual_jumps

    @property
    def holding_virtual_time(self) -> bool:
        """Whether outside work or a :func:`~swaysim.hold_virtual_time` block holds the clock."""
        return self._outside_work.held

    def _hold(self) -> None:
        # Loop thread only. While held, time() is the frozen virtual time plus real elapsed time.
        if not self._virtual_holds:
            self._virtual_anchor = _wall()
        self._virtual_holds += 1

    def _release(self) -> None:
        self._virtual_holds -= 1
        if not self._virtual_holds:
            self._virtual_now += _wall() - self._virtual_anchor

    # -- outside work the loop itself starts -----------------------------------------

    def run_in_executor(
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[[*PosArgs], T],
        *args: *PosArgs,
    ) -> asyncio.Future[T]:
        """``loop.run_in_executor``, counted as outside work until the job's future is done."""
        future = super().run_in_executor(executor, func, *args)
        account = self._outside_work
        account.begin()
        future.add_done_callback(lambda _: account.end())
        return future

    async def shutdown_default_executor(self, *args: Any) -> None:
        """Joining the executor's threads is outside work too (its timeout is loop time)."""
        with self._outside_work.running():
            await super().shutdown_default_executor(*args)

    # -- debug mode: slow callbacks by the wall clock --------------------------------

    @property
    def _current_handle(self) -> Any:
        return self._timed_handle

    @_current_handle.setter
    def _current_handle(self, handle: Any) -> None:
        # asyncio sets this around each callback in debug mode, and times the callback with
        # time(), which stands still on this loop: report slow callbacks by wall time here.
        if handle is not None:
            self._timed_handle = handle
            self._timed_since = (_wall(), self.time())
            return
        finished, self._timed_handle = self._timed_handle, None
        if finished is None:
            return
        wall = _wall() - self._timed_since[0]
        virtual = self.time() - self._timed_since[1]
        limit = self.slow_callback_duration
        if wall >= limit > virtual:  # asyncio itself reported it when virtual >= limit
            describe: Callable[[Any], str] = getattr(asyncio.base_events, "_format_handle", str)
            logger.warning("Executing %s took %.3f seconds", describe(finished), wall)
