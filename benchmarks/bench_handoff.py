"""Contended view hand-offs per second: 100 tasks on one exclusive backend vs a bare anyio.Lock.

Run: ``.venv/bin/python benchmarks/bench_handoff.py`` (``--quick`` for a smoke run,
``--json PATH`` for run_all.py).

100 tasks each enter a view ``--rounds`` times on one exclusive
``AsyncDummyDifferentialBackend(exclusivity="wait")`` (the default backend),
holding it across one ``anyio.lowlevel.checkpoint()`` so that the others are
queued on the gate when it is released: every release hands the view to the
oldest waiter. The reference does the same with a bare ``anyio.Lock``: 100
tasks, ``async with lock: await checkpoint()``. Both run on each loop (plain
asyncio and trio, real clock: nothing sleeps), alternating, over several
repeats; the figure is hand-offs per second (entries / wall seconds) and its
ratio to the lock's, repeat by repeat.

Both are checked to be contended: the share of entries that found the view
(or lock) taken is printed, and must be above 95 %. The view is always
``base``, so a hand-off here is the gate alone: no switch latency, no op.
There is no target: the figure says what swaysim's exclusivity (FIFO gate,
entry bookkeeping, statistics, stale-view protection) costs over a lock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

import anyio
from anyio.lowlevel import checkpoint

from _harness import Report, add_json_argument, print_figures
from swaysim import AsyncDummyDifferentialBackend

TASKS = 100
MIN_CONTENDED = 0.95


@dataclass(frozen=True)
class Sample:
    handoffs: int
    wall: float
    contended: float

    @property
    def per_second(self) -> float:
        return self.handoffs / self.wall


async def views(rounds: int) -> Sample:
    backend = AsyncDummyDifferentialBackend()
    taken = 0

    async def worker() -> None:
        nonlocal taken
        for _ in range(rounds):
            if not backend.is_free():
                taken += 1
            async with backend.as_base():
                await checkpoint()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(TASKS):
            group.start_soon(worker)
    wall = time.perf_counter() - started
    stats = backend.statistics()
    assert stats.entries == stats.exits == TASKS * rounds, stats
    assert backend.is_free()
    return Sample(stats.entries, wall, taken / stats.entries)


async def lock(rounds: int) -> Sample:
    mutex = anyio.Lock()
    taken = entries = 0

    async def worker() -> None:
        nonlocal taken, entries
        for _ in range(rounds):
            if mutex.locked():
                taken += 1
            async with mutex:
                entries += 1
                await checkpoint()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(TASKS):
            group.start_soon(worker)
    wall = time.perf_counter() - started
    assert entries == TASKS * rounds
    return Sample(entries, wall, taken / entries)


async def measure(rounds: int, repeats: int) -> tuple[list[Sample], list[Sample]]:
    await views(max(1, rounds // 10))  # warm-up
    await lock(max(1, rounds // 10))
    gate_samples, lock_samples = [], []
    for _ in range(repeats):
        lock_samples.append(await lock(rounds))
        gate_samples.append(await views(rounds))
    return gate_samples, lock_samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="entries per task per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    rounds, repeats = (20, 3) if args.quick else (args.rounds, args.repeats)
    report = Report("bench_handoff", "contended view hand-offs vs a bare anyio.Lock")
    report.settings.update(tasks=TASKS, rounds=rounds, repeats=repeats)
    print(
        f"python {sys.version.split()[0]}: {TASKS} tasks x {rounds} entries each, "
        f"{repeats} repeats, real clock"
    )
    header = (
        f"  {'loop':8} {'what':34} {'hand-offs/s':>12} {'min':>10} {'max':>10} "
        f"{'us each':>8} {'contended':>9}"
    )
    print(header)
    ok = True
    for loop in ("asyncio", "trio"):
        gate_samples, lock_samples = anyio.run(measure, rounds, repeats, backend=loop)
        for label, samples in (
            ("anyio.Lock", lock_samples),
            ("exclusive backend, as_base()", gate_samples),
        ):
            rates = [s.per_second for s in samples]
            contended = min(s.contended for s in samples)
            ok &= contended >= MIN_CONTENDED
            print(
                f"  {loop:8} {label:34} {statistics.median(rates):12,.0f} {min(rates):10,.0f} "
                f"{max(rates):10,.0f} {1e6 / statistics.median(rates):8.2f} {contended:9.1%}"
            )
        ratios = [
            g.per_second / k.per_second for g, k in zip(gate_samples, lock_samples, strict=True)
        ]
        print(f"  {loop:8} {'ratio (backend / lock)':34} {statistics.median(ratios):12.2f}")
        report.add(
            f"view hand-offs, {loop}",
            f"{TASKS} tasks contending an exclusive backend (wait)",
            "hand-offs/s",
            [s.per_second for s in gate_samples],
            reference_name=f"bare anyio.Lock, {TASKS} tasks",
            reference=[s.per_second for s in lock_samples],
            paired=ratios,
            note=(
                f"contended: backend {min(s.contended for s in gate_samples):.1%}, "
                f"lock {min(s.contended for s in lock_samples):.1%} of entries (min over repeats)"
            ),
        )
    if not ok:
        print(f"an entry found the view or lock free more than {1 - MIN_CONTENDED:.0%} of the time")
    print_figures(report)
    report.write(args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
