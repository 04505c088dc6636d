"""Outside work: what an autojumping clock must not jump past.

A virtual clock jumps to the next deadline when every task is blocked. That
is only true to real time if nothing *outside* the loop is about to wake one
of them: a worker thread still computing, a child process still answering, a
thread about to call in through a blocking portal. :class:`OutsideWork` keeps
one clock's account of such work and tells the clock when to hold: while any
is running, the clock follows real time instead of jumping, exactly as a real
clock would have; when the last piece finishes, jumping resumes.

The account counts work the loop started and is waiting for: a worker-thread
call, an executor job, an awaited child process, a task a thread started and
left running, an open blocking portal, an explicit
:func:`~swaysim.hold_virtual_time`. A worker thread that calls back into the
loop (``anyio.from_thread.run``, ``portal.call``) stops counting while the
loop serves that call: it is waiting for the loop, not working. The account
is touched only from the loop's thread.

Where a loop cannot see the work (a thread started by hand, a socket whose
peer is another program), ``hold_virtual_time()`` is the escape hatch.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import weakref
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Protocol

import sniffio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "OutsideWork",
    "caller_accounts_for_threads",
    "current_outside_work",
]

#: Attribute under which a virtual asyncio loop keeps its account.
LOOP_ATTRIBUTE: Final = "_swaysim_outside_work"

_CALLER_ACCOUNTS: ContextVar[bool] = ContextVar("swaysim_caller_accounts", default=False)


class ClockControl(Protocol):
    """What a clock does when its account starts or stops holding it."""

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def now(self) -> float: ...


class OutsideWork:
    """One virtual clock's account of work running outside its event loop.

    ``automatic`` says whether swaysim's hooks (threads, processes, portals)
    report to this account; explicit holds always do. Loop thread only.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_held",
        "_held_before",
        "_held_since",
        "_running",
        "automatic",
    )

    def __init__(self, clock: ClockControl, *, automatic: bool) -> None:
        self._clock = clock
        self._running = 0
        self._held = False
        self._held_since = 0.0
        self._held_before = 0.0
        self.automatic = automatic

    def __repr__(self) -> str:
        return (
            f"OutsideWork(running={self._running}, held={self._held}, "
            f"held_seconds={self.held_seconds:.6g})"
        )

    @property
    def held(self) -> bool:
        """Whether the clock follows real time now instead of jumping."""
        return self._held

    @property
    def held_seconds(self) -> float:
        """Clock seconds spent following real time so far, the current hold included.

        Virtual time that outside work (a synchronous runner's own Python on a
        worker thread) took in real time: what a schedule-based bound on
        virtual time cannot foresee.
        """
        if self._held:
            return self._held_before + (self._clock.now() - self._held_since)
        return self._held_before

    def begin(self) -> None:
        self._running += 1
        if not self._held:
            self._held = True
            self._held_since = self._clock.now()  # read while the clock still stands
            self._clock.hold()

    def end(self) -> None:
        self._running -= 1
        if self._held and not self._running:
            self._held = False
            self._clock.release()
            self._held_before += self._clock.now() - self._held_since  # stands again

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count the block as outside work the loop is waiting for."""
        self.begin()
        try:
            yield
        finally:
            self.end()


# -- finding the account of the running loop ------------------------------------


class _TrioClockControl:
    """Holds a trio MockClock: real-time rate and no autojump, then back as it was."""

    __slots__ = ("_clock", "_saved")

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._saved: tuple[float, float] = (clock.rate, clock.autojump_threshold)

    def hold(self) -> None:
        clock = self._clock
        self._saved = (clock.rate, clock.autojump_threshold)
        clock.autojump_threshold = math.inf
        clock.rate = 1.0

    def release(self) -> None:
        self._clock.rate, self._clock.autojump_threshold = self._saved

    def now(self) -> float:
        now: float = self._clock.current_time()
        return now


_TRIO_ACCOUNTS: weakref.WeakKeyDictionary[Any, OutsideWork] = weakref.WeakKeyDictionary()


def asyncio_outside_work() -> OutsideWork | None:
    """The running asyncio loop's account, if it is a virtual loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    account: OutsideWork | None = getattr(loop, LOOP_ATTRIBUTE, None)
    return account


def trio_outside_work(*, explicit: bool = False) -> OutsideWork | None:
    """The running trio MockClock's account (made on first use); ``None`` on a real clock.

    Automatic accounting applies to autojumping clocks only: a MockClock
    driven by hand keeps its own pace unless the user holds it explicitly.
    """
    import trio.lowlevel
    import trio.testing

    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        return None
    account = _TRIO_ACCOUNTS.get(clock)
    if account is None:
        autojumping = clock.autojump_threshold < math.inf
        if not (explicit or autojumping):
            return None
        account = _TRIO_ACCOUNTS[clock] = OutsideWork(
            _TrioClockControl(clock), automatic=autojumping
        )
    return account


def current_outside_work(*, explicit: bool = False) -> OutsideWork | None:
    """The account of the virtual clock driving the current task, or ``None``.

    ``None`` outside an event loop's thread, on a real clock, and (unless
    ``explicit``) where automatic accounting does not apply.
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
    if library == "asyncio":
        account = asyncio_outside_work()
    elif library == "trio":
        account = trio_outside_work(explicit=explicit)
    else:
        return None
    if account is None or not (explicit or account.automatic):
        return None
    return account


@contextmanager
def caller_accounts_for_threads() -> Iterator[None]:
    """Worker-thread calls made inside the block are not counted automatically.

    For code that already tells the clock when its thread works and when it
    waits (the blocking bridge holds virtual time while its thread runs probe
    code and releases it while the thread waits for an op).
    """
    token = _CALLER_ACCOUNTS.set(True)
    try:
        yield
    finally:
        _CALLER_ACCOUNTS.reset(token)


def caller_accounts() -> bool:
    return _CALLER_ACCOUNTS.get()


# -- worker-thread calls and calls back into the loop ---------------------------


class _ThreadState(threading.local):
    call: WorkerCall | None = None


_THREAD = _ThreadState()


class WorkerCall:
    """A function a loop task runs in a worker thread, counted while it works.

    Made and started on the loop thread; ``__call__`` runs in the worker, where
    it records itself so that calls the worker makes back into the loop can
    pause the count (:class:`LoopSideCall`).
    """

    __slots__ = ("_counting", "_done", "_func", "account")

    def __init__(self, func: Callable[..., Any], account: OutsideWork) -> None:
        self._func = func
        self.account = account
        self._counting = False
        self._done = False

    def __repr__(self) -> str:
        return f"WorkerCall({self._func!r}, counting={self._counting})"

    def __call__(self, *args: Any) -> Any:
        previous, _THREAD.call = _THREAD.call, self
        try:
            return self._func(*args)
        finally:
            _THREAD.call = previous

    def start(self) -> None:
        self._counting = True
        self.account.begin()

    def finish(self) -> None:
        """The loop stopped waiting (result, error or abandoned by cancellation)."""
        self._done = True
        self._pause()

    def _pause(self) -> bool:
        if not self._counting:
            return False
        self._counting = False
        self.account.end()
        return True

    def _resume(self) -> None:
        if not self._done:
            self._counting = True
            self.account.begin()

    @contextmanager
    def waiting_on_loop(self) -> Iterator[None]:
        paused = self._pause()
        try:
            yield
        finally:
            if paused:
                self._resume()


class LoopSideCall:
    """A callable sent from another thread to run on the loop, accounted there.

    Made in the calling thread, which it remembers; called on the loop thread
    (by anyio's portal or ``from_thread`` machinery), where it returns the
    function's result or, for an awaitable one, a coroutine that awaits it
    while the account knows what the caller does meanwhile: a worker thread of
    this loop waits (its count pauses); a thread that goes on running
    (``detached``, ``portal.start_task_soon``) makes the task count.
    """

    __slots__ = ("_caller", "_detached", "_func")

    def __init__(self, func: Callable[..., Any], *, detached: bool = False) -> None:
        self._func = func
        self._detached = detached
        self._caller = _THREAD.call

    def __repr__(self) -> str:
        return f"LoopSideCall({self._func!r}, detached={self._detached})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._func(*args, **kwargs)
        if not inspect.isawaitable(result):
            return result
        return self._accounted(result)

    async def _accounted(self, awaitable: Awaitable[Any]) -> Any:
        account = current_outside_work()
        if account is None:
            return await awaitable
        with self._scope(account):
            return await awaitable

    def _scope(self, account: OutsideWork) -> AbstractContextManager[None]:
        if self._detached:
            return account.running()
        caller = self._caller
        if caller is not None and caller.account is account:
            return caller.waiting_on_loop()
        return nullcontext()
