"""Virtual time on both event loops, and ``swaysim.run``.

Trio has :class:`trio.testing.MockClock`; with ``autojump_threshold=0`` it
jumps to the next deadline as soon as every task is blocked. asyncio has no
such clock, so :class:`VirtualClockEventLoop` provides one: a selector event
loop whose ``time()`` is virtual and whose I/O wait, when nothing is ready
and a timer is pending, advances virtual time to that timer instead of
sleeping. Everything anyio builds on the loop clock (``anyio.sleep``,
``fail_after``, ``move_on_after``) then runs in virtual time.

Work the loop cannot see is invisible to an autojumping clock: a worker
thread still busy, or real I/O that has not arrived yet, while a timer is
pending. The clock would jump past that timeout. Wrap such waits in
:func:`hold_virtual_time`, which lets the clock follow real time meanwhile.
With no timer pending there is nothing to jump to, and both loops simply
wait for the thread or the I/O.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, TypeVarTuple

import anyio
import sniffio

from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "VirtualClockEventLoop",
    "hold_virtual_time",
    "run",
    "virtual_anyio_backend",
]

T = TypeVar("T")
PosArgs = TypeVarTuple("PosArgs")
LOOPS: Final[tuple[str, ...]] = ("asyncio", "trio")


class _JumpingSelector(selectors.BaseSelector):
    """Delegates to a real selector, but turns an idle timed wait into a clock jump.

    asyncio calls ``select(timeout)`` with a positive timeout only when no
    callback is ready and a timer is pending: every task is blocked. The
    selector then polls once (real I/O wins) and otherwise jumps the clock
    straight to the earliest timer. A timer at infinity (``sleep(inf)``, a
    hang) never fires, so with nothing else pending the loop blocks on real
    I/O instead of spinning its clock forward a day at a time.
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
        if timeout is None or timeout <= 0 or self._loop._virtual_holds:
            return self._real.select(timeout)
        ready = self._real.select(0)
        if ready:
            return ready
        # asyncio pruned cancelled timers from the heap head just before calling us.
        when: float = self._loop._scheduled[0]._when  # type: ignore[attr-defined]
        if when == math.inf:
            return self._real.select(None)
        loop = self._loop
        if when > loop._virtual_now:
            # asyncio runs timers before now + clock resolution; past 2**24 s that sum rounds
            # to now, so land one ulp past the timer or it never fires and the loop spins.
            due = when + loop._clock_resolution > when  # type: ignore[attr-defined]
            loop._virtual_now = when if due else math.nextafter(when, math.inf)
            loop._virtual_jumps += 1
        return ready


class VirtualClockEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on a virtual clock that starts at 0.0.

    When no callback is ready and no I/O arrives, the loop sets its clock to
    the next scheduled timer instead of sleeping: ten thousand 50 ms sleeps
    take milliseconds of wall time. With only timers at infinity pending it
    blocks on real I/O; inside :func:`hold_virtual_time` its clock runs at
    the rate of real time and it waits like an ordinary loop. Pass the class
    as anyio's ``loop_factory`` (see :func:`virtual_anyio_backend`).

    Chosen over ``looptime`` after measuring both (benchmarks/
    bench_virtual_time.py): looptime runs ``noop_cycles`` (default 42) idle
    loop iterations before every jump, about 20 times the wall cost per sleep,
    and is still about twice as slow with ``noop_cycles=0``. Those cycles
    exist for code that needs several iterations to settle; on asyncio a
    positive select timeout already means every task is blocked.
    """

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self._virtual_jumps = 0
        self._virtual_holds = 0
        self._virtual_anchor = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        if self._virtual_holds:
            return self._virtual_now + (time.perf_counter() - self._virtual_anchor)
        return self._virtual_now

    @property
    def clock_jumps(self) -> int:
        """How many times the clock jumped ahead (one per idle wait for a timer)."""
        return self._virtual_jumps

    @property
    def holding_virtual_time(self) -> bool:
        """Whether a :func:`hold_virtual_time` block is open on this loop."""
        return self._virtual_holds > 0

    def _hold(self) -> None:
        # Loop thread only. While held, time() is the frozen virtual time plus real elapsed time.
        if not self._virtual_holds:
            self._virtual_anchor = time.perf_counter()
        self._virtual_holds += 1

    def _release(self) -> None:
        self._virtual_holds -= 1
        if not self._virtual_holds:
            self._virtual_now += time.perf_counter() - self._virtual_anchor


class _TrioHold:
    """Hold count and the settings to restore, per MockClock."""

    __slots__ = ("count", "saved")

    def __init__(self, saved: tuple[float, float]) -> None:
        self.count = 0
        self.saved = saved


_TRIO_HOLDS: weakref.WeakKeyDictionary[Any, _TrioHold] = weakref.WeakKeyDictionary()


def _trio_clock() -> Any:
    import trio
    import trio.testing

    clock = trio.lowlevel.current_clock()
    return clock if isinstance(clock, trio.testing.MockClock) else None


@contextmanager
def hold_virtual_time() -> Iterator[None]:
    """Let a virtual clock follow real time instead of jumping, inside the block.

    Use it around waits for work in other threads (``anyio.to_thread``, a
    blocking portal's caller): an autojumping clock cannot see that work and
    would fire timeouts that real time has not reached. While any task holds
    it, the clock advances at the rate of real time and never jumps; it
    resumes jumping when the last hold ends. Under a real clock, or outside
    an event loop's thread, it does nothing. Holds nest and may overlap
    across tasks.
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        yield
        return
    if library == "asyncio":
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualClockEventLoop):
            yield
            return
        loop._hold()
        try:
            yield
        finally:
            loop._release()
        return
    clock = _trio_clock()
    if clock is None:
        yield
        return
    hold = _TRIO_HOLDS.get(clock)
    if hold is None:
        hold = _TRIO_HOLDS[clock] = _TrioHold((clock.rate, clock.autojump_threshold))
    if not hold.count:
        hold.saved = (clock.rate, clock.autojump_threshold)
        clock.autojump_threshold = math.inf
        clock.rate = 1.0
    hold.count += 1
    try:
        yield
    finally:
        hold.count -= 1
        if not hold.count:
            clock.rate, clock.autojump_threshold = hold.saved


def virtual_anyio_backend(name: str, *, virtual_time: bool = True) -> tuple[str, dict[str, Any]]:
    """``(backend, options)`` for ``anyio.run`` and anyio's pytest plugin.

    With ``virtual_time=True``: a fresh :class:`trio.testing.MockClock` with
    autojump on trio, :class:`VirtualClockEventLoop` on asyncio. Call it once
    per run: a clock must not be shared between runs.
    """
    if name not in LOOPS:
        raise InvalidArgumentError(f"backend={name!r} is not supported; expected asyncio or trio")
    if not virtual_time:
        return name, {}
    if name == "asyncio":
        return name, {"loop_factory": VirtualClockEventLoop}
    import trio.testing

    return name, {"clock": trio.testing.MockClock(autojump_threshold=0)}


def run(
    func: Callable[[*PosArgs], Awaitable[T]],
    *args: *PosArgs,
    backend: str = "asyncio",
    virtual_time: bool = True,
) -> T:
    """Run ``func(*args)`` on asyncio or trio, on a virtual clock by default.

    Like :func:`anyio.run`, plus the clock: with ``virtual_time=True`` every
    ``anyio.sleep``, ``fail_after`` and injected latency takes no wall time
    beyond the work itself.
    """
    name, options = virtual_anyio_backend(backend, virtual_time=virtual_time)
    return anyio.run(func, *args, backend=name, backend_options=options)
