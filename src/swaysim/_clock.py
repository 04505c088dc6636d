"""Virtual time on both event loops, and ``swaysim.run``.

Trio has :class:`trio.testing.MockClock`; with ``autojump_threshold=0`` it
jumps to the next deadline as soon as every task is blocked. asyncio has no
such clock, so :class:`VirtualClockEventLoop` provides one: a selector event
loop whose ``time()`` is virtual and whose I/O wait, when nothing is ready
and a timer is pending, advances virtual time to that timer instead of
sleeping. Everything anyio builds on the loop clock (``anyio.sleep``,
``fail_after``, ``move_on_after``) then runs in virtual time.

Work in other threads is invisible to an autojumping clock: the clock would
jump past a timeout while a worker thread is still busy. Wrap such waits in
:func:`hold_virtual_time`, which lets the clock follow real time meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, TypeVarTuple

import anyio
import sniffio

from swaysim._errors import InvalidArgumentError

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
LoopName = Literal["asyncio", "trio"]
LOOPS: Final[tuple[str, ...]] = ("asyncio", "trio")


class _JumpingSelector(selectors.BaseSelector):
    """Delegates to a real selector, but turns an idle timed wait into a clock jump."""

    def __init__(self, loop_clock: _VirtualClock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = loop_clock

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
        clock = self._clock
        if timeout is not None and timeout <= 0:
            return self._real.select(0)
        if clock.holds:
            before = time.perf_counter()
            ready = self._real.select(timeout)
            clock.now += time.perf_counter() - before
            return ready
        if timeout is None:
            # No timer pending: only another thread or real I/O can wake us.
            return self._real.select(None)
        ready = self._real.select(0)
        if not ready:
            clock.now += timeout
            clock.jumps += 1
        return ready


class _VirtualClock:
    __slots__ = ("holds", "jumps", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self.jumps = 0
        self.holds = 0


class VirtualClockEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on a virtual clock that starts at 0.0.

    When no callback is ready and no I/O arrives, the loop jumps its clock to
    the next scheduled timer instead of sleeping: ten thousand 50 ms sleeps
    take milliseconds of wall time. Pass the class as anyio's
    ``loop_factory`` (see :func:`virtual_anyio_backend`).
    """

    def __init__(self) -> None:
        self._virtual = _VirtualClock()
        super().__init__(_JumpingSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now

    @property
    def clock_jumps(self) -> int:
        """How many times the clock jumped ahead (one per idle wait for a timer)."""
        return self._virtual.jumps

    def _hold(self, delta: int) -> None:
        # Called from the loop's own thread only.
        self._virtual.holds += delta


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
    would fire timeouts that real time has not reached. Under a real clock,
    or outside an event loop's thread, it does nothing. Nests.
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
        loop._hold(+1)
        try:
            yield
        finally:
            loop._hold(-1)
        return
    clock = _trio_clock()
    if clock is None:
        yield
        return
    saved = (clock.rate, clock.autojump_threshold)
    clock.autojump_threshold = math.inf
    clock.rate = 1.0
    try:
        yield
    finally:
        clock.rate, clock.autojump_threshold = saved


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
