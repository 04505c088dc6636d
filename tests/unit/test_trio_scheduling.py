"""A virtual trio run schedules its tasks the same way every time (swaysim._time.scheduling).

Trio runs tasks that became runnable together in a random order, on purpose; on a virtual
clock that was the one thing left that made a contended schedule (and so a makespan)
change from run to run and from process to process. ``swaysim.run`` seeds it per run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import anyio
import trio._core._run as trio_run

import swaysim
from swaysim._time.scheduling import seeded_trio_scheduler

PROGRAM = textwrap.dedent(
    """
    import anyio
    import swaysim

    async def main():
        order = []
        limiter = anyio.CapacityLimiter(3)

        async def worker(index):
            for step in range(4):
                async with limiter:
                    order.append((index, step))
                    await anyio.sleep(0.1)

        async with anyio.create_task_group() as group:
            for index in range(12):
                group.start_soon(worker, index)
        return order

    print(swaysim.run(main, backend="trio"))
    """
)


def _order() -> list[tuple[int, int]]:
    namespace: dict[str, object] = {}
    exec(PROGRAM.replace('print(swaysim.run(main, backend="trio"))', ""), namespace)
    return swaysim.run(namespace["main"], backend="trio")  # type: ignore[arg-type]


def test_a_contended_trio_schedule_is_the_same_on_every_run() -> None:
    first = _order()
    assert len(first) == 48
    assert all(_order() == first for _ in range(6))


def test_a_contended_trio_schedule_is_the_same_in_every_process() -> None:
    outputs = {
        subprocess.run(
            [sys.executable, "-c", PROGRAM],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        for seed in ("0", "1", "4242")
    }
    assert len(outputs) == 1, outputs


def _deterministic() -> bool:
    """trio's flag (typed Final False: only Hypothesis and swaysim switch it on)."""
    return bool(vars(trio_run)["_ALLOW_DETERMINISTIC_SCHEDULING"])


def test_the_scheduler_is_put_back_after_the_run() -> None:
    before = (_deterministic(), trio_run._r.getstate())
    with seeded_trio_scheduler(5):
        assert _deterministic()
        assert trio_run._r.getstate() != before[1]
    assert (_deterministic(), trio_run._r.getstate()) == before


def test_a_real_time_trio_run_is_left_as_trio_makes_it() -> None:
    async def flag() -> bool:
        return _deterministic()

    before = _deterministic()
    assert swaysim.run(flag, backend="trio", virtual_time=False) is before
    assert swaysim.run(flag, backend="trio") is True
    assert anyio.run(flag, backend="trio") is before
