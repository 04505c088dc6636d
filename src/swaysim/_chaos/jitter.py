"""Schedule jitter: seeded extra checkpoints and tiny sleeps at op boundaries.

Chaos scheduling for the runner under test: before and after every op, up to
:data:`JITTER_MAX_CHECKPOINTS` extra checkpoints and a virtual sleep of at
most :data:`JITTER_MAX_SECONDS`, so concurrent ops interleave and complete in
other orders. Both are a pure function of (jitter seed, boundary, op, view,
key, per-key call index), so a seed perturbs the same calls the same way in
every run; fault decisions and latency draws do not change, so a correct
runner's results do not either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from swaysim._chaos.seeding import unit_draws

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["JITTER_MAX_CHECKPOINTS", "JITTER_MAX_SECONDS", "ScheduleJitter"]

JITTER_MAX_CHECKPOINTS: Final = 3
"""Extra checkpoints ``schedule_jitter`` may insert at one op boundary."""
JITTER_MAX_SECONDS: Final = 5e-6
"""Longest virtual sleep ``schedule_jitter`` may insert at one op boundary."""


class ScheduleJitter:
    """One backend's jitter: the seed, and how many pauses and seconds it has added."""

    __slots__ = ("events", "seconds", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.events = 0
        """Checkpoints and sleeps inserted so far."""
        self.seconds = 0.0
        """Virtual seconds those sleeps added (what a makespan bound may widen by)."""

    async def pause(
        self,
        checkpoint: Callable[[], Awaitable[object]],
        sleep: Callable[[float], Awaitable[object]],
        *boundary: str | int,
    ) -> None:
        """Extra ``checkpoint()`` calls, then one ``sleep``, as drawn for ``boundary``.

        ``boundary`` names the op boundary: ``("before" | "after", op, view
        id, key, call index)``. The sleep is never zero: no two boundaries
        resume at the same instant, so the order they resume in is the
        jitter's, not the scheduler's (trio deliberately shuffles tasks woken
        together).
        """
        u_count, u_seconds, _ = unit_draws(self.seed, "jitter", *boundary)
        checkpoints = int(u_count * (JITTER_MAX_CHECKPOINTS + 1))
        seconds = JITTER_MAX_SECONDS * (1.0 - u_seconds)
        self.events += checkpoints + 1
        self.seconds += seconds
        for _ in range(checkpoints):
            await checkpoint()
        await sleep(seconds)

    def __repr__(self) -> str:
        return f"ScheduleJitter(seed={self.seed}, events={self.events}, seconds={self.seconds:.6g})"
