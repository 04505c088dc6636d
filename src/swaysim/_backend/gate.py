"""The exclusivity gate: who may have a view live, and in what order the rest wait.

Nothing here touches the event loop until a task actually waits (an
``anyio.Event`` per waiter, created on the spot), so one gate serves asyncio
and trio alike, one run after another. Releasing is synchronous: a cancelled
holder frees its slot in a ``finally`` without awaiting anything.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

import anyio
from anyio.lowlevel import checkpoint

from swaysim._validation import invalid
from swaysim.errors import NestedViewError, ViewConflictError

__all__ = ["ExclusivityGate", "ExclusivityPolicy", "FifoSlots", "Holding"]

ExclusivityPolicy = Literal["wait", "strict"]
POLICIES: Final[tuple[str, ...]] = ("wait", "strict")


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


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
        if self.free_now():
            self._held += 1
            return True
        return False

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
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def __repr__(self) -> str:
        capacity = "unbounded" if self._capacity is None else self._capacity
        return f"<FifoSlots held={self._held}/{capacity} waiting={len(self._waiters)}>"

    def release(self) -> None:
        """Free one slot, handing it to the oldest waiter if there is one."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True
            waiter.event.set()
            return
        if self._held <= 0:
            raise RuntimeError("FifoSlots.release() called with no slot held")
        self._held -= 1


@dataclass(slots=True, eq=False)
class Holding:
    """A live view entry: which view, which task, since when (loop time)."""

    view_id: str
    task_id: int
    task_name: str
    since: float
    released: bool = field(default=False)

    def describe(self) -> str:
        """``'ft' held by task 'probe-3'`` style description for messages."""
        return f"{self.view_id!r} held by task {self.task_name!r}"


class ExclusivityGate:
    """Enforces the exclusivity contract of DESIGN.md.

    Exclusive (``concurrent=False``): one live view; ``"wait"`` queues FIFO,
    ``"strict"`` raises :class:`ViewConflictError` at once. A task that
    already holds a view and enters another gets :class:`NestedViewError`
    under both policies (it would wait for itself). Concurrent-safe: up to
    ``max_live`` views (None: unbounded); a nested entry is allowed while a
    slot is free and an error when it would have to wait for one.
    """

    __slots__ = (
        "_concurrent",
        "_live",
        "_max_live",
        "_policy",
        "_slots",
        "entries",
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
        self._max_live = max_live
        self._slots = FifoSlots(max_live if concurrent else 1)
        self._live: list[Holding] = []
        self.entries = 0
        self.exits = 0
        self.waits = 0
        self.wait_time = 0.0
        self.peak_live = 0

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
        return not self._live and not self._slots.waiting

    async def enter(self, view_id: str) -> Holding:
        """Wait for (or refuse) a slot for ``view_id`` in the current task.

        Always a checkpoint. A free slot is taken, and the entry made live, at
        once (so a conflicting entrant can name it) before that checkpoint; a
        cancellation there, or while waiting, leaves nothing held.
        """
        task = anyio.get_current_task()
        task_name = task.name or f"task-{task.id}"
        mine = [h for h in self._live if h.task_id == task.id]
        if mine and (not self._concurrent or not self._slots.free_now()):
            held = ", ".join(h.view_id for h in mine)
            raise NestedViewError(
                f"task {task_name!r} already holds view {held!r} and tried to enter "
                f"{view_id!r}; on this backend that would wait for itself forever. "
                "Exit the first view before entering the next."
            )
        if self._policy == "strict" and not self._slots.free_now():
            others = "; ".join(h.describe() for h in self._live) or "a queued entry"
            raise ViewConflictError(
                f"exclusivity='strict': task {task_name!r} tried to enter view {view_id!r} "
                f"while {others} (live views: {len(self._live)}, "
                f"limit {self._limit_text()}). Serialise view use, or use exclusivity='wait'."
            )
        if self._slots.try_acquire():
            holding = self._admit(view_id, task.id, task_name, anyio.current_time())
            try:
                await checkpoint()
            except BaseException:
                self._withdraw(holding)
                raise
            return holding
        started = anyio.current_time()
        await self._slots.acquire()
        now = anyio.current_time()
        self.waits += 1
        self.wait_time += now - started
        return self._admit(view_id, task.id, task_name, now)

    def _admit(self, view_id: str, task_id: int, task_name: str, now: float) -> Holding:
        holding = Holding(view_id, task_id, task_name, now)
        self._live.append(holding)
        self.entries += 1
        if len(self._live) > self.peak_live:
            self.peak_live = len(self._live)
        return holding

    def _withdraw(self, holding: Holding) -> None:
        # An entry cancelled before its caller saw it: not an entry, not an exit.
        holding.released = True
        self._live.remove(holding)
        self.entries -= 1
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
