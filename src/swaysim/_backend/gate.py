"""The exclusivity gate: who may have a view live, and in what order the rest wait.

Nothing here binds to an event loop: a task that has to wait queues the
running loop's own primitive, created on the spot (an asyncio future, or a
parked trio task), so one gate serves asyncio and trio alike, one run after
another. Releasing is synchronous: a cancelled holder frees its slot in a
``finally`` without awaiting anything.

A hand-off costs what a bare ``anyio.Lock`` costs plus the exclusivity
bookkeeping proper: the holder is the loop's task object itself, and
anything derived from it (its name, for messages, traces and statistics)
is worked out only when asked for (benchmarks/bench_handoff.py).
"""

from __future__ import annotations

import sys
from asyncio import _get_running_loop
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from anyio.lowlevel import checkpoint

from swaysim._validation import invalid
from swaysim.errors import NestedViewError, ViewConflictError

if TYPE_CHECKING:
    from asyncio import Future
    from collections.abc import Callable

    from swaysim._backend.tracing import LoopClock

__all__ = ["ExclusivityGate", "ExclusivityPolicy", "FifoSlots", "Holding", "task_display_name"]

ExclusivityPolicy = Literal["wait", "strict"]
POLICIES: Final[tuple[str, ...]] = ("wait", "strict")


def task_display_name(task: object) -> str:
    """A native task's name as anyio's ``TaskInfo`` gives it; ``task-<id>`` when it has none."""
    get_name = getattr(task, "get_name", None)  # an asyncio task
    name = get_name() if get_name is not None else getattr(task, "name", "")
    return str(name) if name else f"task-{id(task)}"


class _Waiter(Protocol):
    """A queued task, as :class:`FifoSlots` sees it: the two methods of an asyncio future."""

    def cancelled(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...


class _ParkedTrioTask:
    """A trio task parked in a :class:`FifoSlots` queue, woken the way a future is set.

    Cancellation while parked takes it out of the queue (trio calls
    :meth:`abort`); once woken, trio no longer aborts it, so a woken waiter
    always resumes holding its slot.
    """

    __slots__ = ("_queue", "_task")

    def __init__(self, queue: deque[_Waiter], task: object) -> None:
        self._queue = queue
        self._task = task

    def cancelled(self) -> bool:
        """Never: a cancelled trio waiter has already left the queue."""
        return False

    def set_result(self, result: None, /) -> None:
        """Hand the slot over: wake the task."""
        sys.modules["trio"].lowlevel.reschedule(self._task)

    def abort(self, raise_cancel: object) -> object:
        """Trio's abort callback: cancelled while parked, so leave the queue."""
        self._queue.remove(self)
        return sys.modules["trio"].lowlevel.Abort.SUCCEEDED


class FifoSlots:
    """Up to ``capacity`` holders (None: unbounded); waiters are served strictly FIFO.

    A release hands the slot directly to the oldest waiter, so a newcomer can
    never overtake a task that was already waiting.
    """

    __slots__ = ("_capacity", "_held", "_waiters")

    def __init__(self, capacity: int | None) -> None:
        self._capacity = capacity
        self._held = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def held(self) -> int:
        """Slots currently held."""
        return self._held

    @property
    def waiting(self) -> int:
        """Tasks currently queued for a slot."""
        return len(self._waiters)

    def free_now(self) -> bool:
        """Whether an acquire would succeed without waiting."""
        return not self._waiters and (self._capacity is None or self._held < self._capacity)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued; never waits."""
        if self._waiters or (self._capacity is not None and self._held >= self._capacity):
            return False
        self._held += 1
        return True

    async def acquire(self) -> None:
        """Take a slot, waiting in FIFO order.

        Always a checkpoint. Cancellation while waiting (even after the slot
        was handed over but before the waiter resumed) leaves no slot taken.
        """
        if self.try_acquire():
            try:
                await checkpoint()
            except BaseException:
                self.release()
                raise
            return
        loop = _get_running_loop()
        await self.wait_turn(None if loop is None else loop.create_future)

    async def wait_turn(self, create_future: Callable[[], Future[None]] | None) -> None:
        """Queue until :meth:`release` hands this task a slot (call when none is free).

        On asyncio the waiter is a future of the running loop (``create_future``
        is the loop's); on trio (``create_future`` None) the task parks itself.
        Cancelled while queued, it leaves the queue; cancelled after the
        hand-over but before resuming, it passes the slot on.
        """
        if create_future is None:  # not asyncio: anyio's other loop, trio
            lowlevel = sys.modules["trio"].lowlevel
            parked = _ParkedTrioTask(self._waiters, lowlevel.current_task())
            self._waiters.append(parked)
            await lowlevel.wait_task_rescheduled(parked.abort)
            return
        future = self.join(create_future)
        try:
            await future
        except BaseException:
            self.abandon(future)
            raise

    def join(self, create_future: Callable[[], Future[None]]) -> Future[None]:
        """Queue an asyncio waiter: await the future, and :meth:`abandon` it on any exception.

        :meth:`wait_turn` does both; a hot caller does them itself, a coroutine
        frame cheaper.
        """
        future = create_future()
        self._waiters.append(future)
        return future

    def abandon(self, future: Future[None]) -> None:
        """A waiter interrupted: pass on the slot it was handed, or leave the queue."""
        if future.done() and not future.cancelled():
            self.release()
        elif future in self._waiters:
            self._waiters.remove(future)

    def release(self) -> None:
        """Free one slot, handing it to the oldest waiter if there is one."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.cancelled():  # a cancelled future not yet taken out
                waiter.set_result(None)
                return
        if self._held <= 0:
            raise RuntimeError("FifoSlots.release() called with no slot held")
        self._held -= 1

    def __repr__(self) -> str:
        capacity = "unbounded" if self._capacity is None else self._capacity
        return f"<FifoSlots held={self._held}/{capacity} waiting={len(self._waiters)}>"


class Holding:
    """A live view entry: which view, which task (the loop's own task object), since when.

    ``since`` (loop time) is set by whoever needs it (a traced backend, for
    the ``view_exit`` duration); the task's name is worked out when asked for.
    """

    __slots__ = ("released", "since", "task", "view_id")

    def __init__(self, view_id: str, task: object) -> None:
        self.view_id = view_id
        self.task = task
        self.since = 0.0
        self.released = False

    @property
    def task_name(self) -> str:
        """The holder's name, as anyio's ``TaskInfo.name`` (``task-<id>`` when empty)."""
        return task_display_name(self.task)

    def describe(self) -> str:
        """``'ft' held by task 'probe-3'`` style description for messages."""
        return f"{self.view_id!r} held by task {self.task_name!r}"

    def __repr__(self) -> str:
        state = "released" if self.released else "live"
        return f"<Holding {self.view_id!r} by {self.task_name!r} {state}>"


class ExclusivityGate:
    """Enforces the exclusivity contract of DESIGN.md.

    Exclusive (``concurrent=False``): one live view; ``"wait"`` queues FIFO,
    ``"strict"`` raises :class:`ViewConflictError` at once. A task that
    already holds a view and enters another gets :class:`NestedViewError`
    under both policies (it would wait for itself). Concurrent-safe: up to
    ``max_live`` views (None: unbounded); a nested entry is allowed while a
    slot is free and an error when it would have to wait for one.

    Counted as they happen: exits, waits, wait time and the peak of live
    views; :attr:`entries` follows from the exits and the live entries.
    """

    __slots__ = (
        "_concurrent",
        "_live",
        "_max_live",
        "_policy",
        "_slots",
        "_strict",
        "exits",
        "peak_live",
        "wait_time",
        "waits",
    )

    def __init__(
        self, *, concurrent: bool, policy: ExclusivityPolicy, max_live: int | None
    ) -> None:
        if policy not in POLICIES:
            raise invalid(
                "exclusivity", policy, f"is not a policy; expected one of {', '.join(POLICIES)}"
            )
        self._concurrent = concurrent
        self._policy = policy
        self._strict = policy == "strict"
        self._max_live = max_live
        self._slots = FifoSlots(max_live if concurrent else 1)
        self._live: list[Holding] = []
        self.peak_live = 0
        self.exits = 0
        self.waits = 0
        self.wait_time = 0.0

    @property
    def entries(self) -> int:
        """Entries admitted so far: every one has exited or is live."""
        return self.exits + len(self._live)

    @property
    def live(self) -> tuple[Holding, ...]:
        """The live entries, oldest first."""
        return tuple(self._live)

    @property
    def waiting(self) -> int:
        """Tasks queued to enter a view."""
        return self._slots.waiting

    @property
    def max_live(self) -> int | None:
        """How many views may be live at once (None: unbounded)."""
        return self._max_live if self._concurrent else 1

    def __repr__(self) -> str:
        mode = "concurrent" if self._concurrent else "exclusive"
        live = [h.view_id for h in self._live]
        return (
            f"<ExclusivityGate {mode} policy={self._policy!r} live={live} "
            f"limit={self._limit_text()} waiting={self._slots.waiting}>"
        )

    def is_free(self) -> bool:
        """No view live and nobody waiting."""
        return not self._live and not self._slots._waiters

    async def enter(self, view_id: str, clock: LoopClock) -> Holding:
        """Wait for (or refuse) a slot for ``view_id`` in the current task.

        ``clock`` is bound to the running loop (its task, time, checkpoint, futures).
        Always a checkpoint. A free slot is taken, and the entry made live, at
        once (so a conflicting entrant can name it) before that checkpoint; a
        cancellation there, or while waiting, leaves nothing held.
        """
        task = clock.current_task()
        slots = self._slots
        for holding in self._live:
            if holding.task is task:
                self._refuse_nested(view_id, task)
        if self._strict and not slots.free_now():
            raise self._conflict(view_id, task)
        if slots.try_acquire():
            holding = self._admit(view_id, task)
            try:
                await clock.checkpoint()
            except BaseException:
                self._withdraw(holding)
                raise
            return holding
        started = clock.time()
        if clock.create_future is None:
            await slots.wait_turn(None)
        else:  # slots.wait_turn() spelled out: a frame less on every contended hand-off
            future = slots.join(clock.create_future)
            try:
                await future
            except BaseException:
                slots.abandon(future)
                raise
        self.waits += 1
        self.wait_time += clock.time() - started
        return self._admit(view_id, task)

    def _refuse_nested(self, view_id: str, task: object) -> None:
        """:class:`NestedViewError` when ``task`` holds a view and would wait for itself."""
        mine = [h.view_id for h in self._live if h.task is task]
        if mine and (not self._concurrent or not self._slots.free_now()):
            raise NestedViewError(
                f"task {task_display_name(task)!r} already holds view {', '.join(mine)!r} and "
                f"tried to enter {view_id!r}; on this backend that would wait for itself "
                "forever. Exit the first view before entering the next."
            )

    def _conflict(self, view_id: str, task: object) -> ViewConflictError:
        others = "; ".join(h.describe() for h in self._live) or "a queued entry"
        return ViewConflictError(
            f"exclusivity='strict': task {task_display_name(task)!r} tried to enter view "
            f"{view_id!r} while {others} (live views: {len(self._live)}, "
            f"limit {self._limit_text()}). Serialise view use, or use exclusivity='wait'."
        )

    def _admit(self, view_id: str, task: Any) -> Holding:
        holding = Holding(view_id, task)
        live = self._live
        live.append(holding)
        if len(live) > self.peak_live:
            self.peak_live = len(live)
        return holding

    def _withdraw(self, holding: Holding) -> None:
        # An entry cancelled before its caller saw it: not an entry, not an exit.
        holding.released = True
        self._live.remove(holding)
        self._slots.release()

    def exit(self, holding: Holding) -> None:
        """Release ``holding``'s slot; idempotent and never awaits."""
        if holding.released:
            return
        holding.released = True
        self._live.remove(holding)
        self.exits += 1
        self._slots.release()

    def _limit_text(self) -> str:
        if not self._concurrent:
            return "1 (exclusive backend)"
        return "unbounded" if self._max_live is None else str(self._max_live)
