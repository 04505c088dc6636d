"""The same task order on every trio run: trio's scheduler, seeded for a virtual run.

Trio runs the tasks that became runnable together in a random order, on purpose
(half the time it reverses the batch, drawing from a module-level generator
seeded from the operating system), so that no program comes to rely on one order.
On a virtual clock that randomness is the one thing left that is not a pure
function of the scenario: where tasks contend (workers sharing a limiter, views
queueing at a gate), which one goes first decides the schedule, so a makespan
changed from run to run and from process to process while asyncio's FIFO order
never did. :func:`seeded_trio_scheduler` runs trio's own deterministic mode (the
one Hypothesis switches on: runnable tasks in creation order, then shuffled by
that generator) with the generator seeded, for the duration of one run, and puts
both back afterwards. Every order stays possible across seeds; the schedule
jitter (``schedule_jitter``) is how a scenario asks for other orders on purpose.
"""

from __future__ import annotations

import random
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["seeded_trio_scheduler"]

_RUN_MODULE: Final = "trio._core._run"
_FLAG: Final = "_ALLOW_DETERMINISTIC_SCHEDULING"


@contextmanager
def seeded_trio_scheduler(seed: int = 0) -> Iterator[None]:
    """Trio's scheduler in its deterministic mode, its generator seeded with ``seed``.

    A no-op when trio is not imported or keeps its scheduler elsewhere (another
    trio version): runs are then only as reproducible as trio makes them.
    """
    module = sys.modules.get(_RUN_MODULE)
    generator = getattr(module, "_r", None)
    if module is None or not isinstance(generator, random.Random) or not hasattr(module, _FLAG):
        yield
        return
    state, flag = generator.getstate(), getattr(module, _FLAG)
    generator.seed(seed)
    setattr(module, _FLAG, True)
    try:
        yield
    finally:
        setattr(module, _FLAG, flag)
        generator.setstate(state)
