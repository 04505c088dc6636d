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
Target: the backend's rate >= 0.8x the lock's (median of the per-repeat
ratios), on each loop: what swaysim's exclusivity (FIFO gate, entry
bookkeeping, statistics, stale-view protection) may cost over a lock.

The code of main before issue 18 (``_harness.BEFORE_ISSUE_18``) is measured
the same way in a child process, for the "before" rows (each against its own
lock, measured alongside).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from _harness import (
    BEFORE_ISSUE_18,
    Report,
    add_json_argument,
    print_figures,
    run_with_source,
    source_at,
)
from swaysim import AsyncDummyDifferentialBackend

TASKS = 100
MIN_CONTENDED = 0.95
RATIO_TARGET = 0.8
LOOPS = ("asyncio", "trio")


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


Pairs = dict[str, tuple[list[Sample], list[Sample]]]
"""Per loop: the backend's samples and the lock's."""


def measure_all(rounds: int, repeats: int) -> Pairs:
    return {loop: anyio.run(measure, rounds, repeats, backend=loop) for loop in LOOPS}


def before_samples(
    rounds: int, repeats: int
) -> dict[str, tuple[list[Sample], list[Sample]]] | None:
    """The same measurement of main before issue 18, in a child process (None: unavailable)."""
    with tempfile.TemporaryDirectory(prefix="swaysim-before-") as scratch:
        source = source_at(BEFORE_ISSUE_18, Path(scratch))
        if source is None:
            return None
        args = ["--child-json", "--rounds", str(rounds), "--repeats", str(repeats)]
        raw = run_with_source(Path(__file__), source, args)
    return {
        loop: ([Sample(**s) for s in pair[0]], [Sample(**s) for s in pair[1]])
        for loop, pair in raw.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="entries per task per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-before", action="store_true", help="skip the before rows")
    parser.add_argument("--child-json", action="store_true", help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args(argv)
    rounds, repeats = (20, 3) if args.quick else (args.rounds, args.repeats)
    if args.child_json:
        results = measure_all(rounds, repeats)
        print(
            json.dumps(
                {loop: [[asdict(s) for s in g] for g in pair] for loop, pair in results.items()}
            )
        )
        return 0
    report = Report("bench_handoff", "contended view hand-offs vs a bare anyio.Lock")
    report.settings.update(tasks=TASKS, rounds=rounds, repeats=repeats, before=BEFORE_ISSUE_18)
    print(
        f"python {sys.version.split()[0]}: {TASKS} tasks x {rounds} entries each, "
        f"{repeats} repeats, real clock"
    )
    before = None if args.no_before else before_samples(rounds, repeats)
    if before is None:
        report.note(f"before rows: main at {BEFORE_ISSUE_18} could not be measured (no git?)")
    after = measure_all(rounds, repeats)
    header = (
        f"  {'loop':8} {'what':34} {'hand-offs/s':>12} {'min':>10} {'max':>10} "
        f"{'us each':>8} {'contended':>9}"
    )
    print(header)
    ok = True
    for loop in LOOPS:
        runs = [("after", after[loop])] + ([("before", before[loop])] if before else [])
        for when, (gate_samples, lock_samples) in runs:
            ok &= add_rows(report, loop, when, gate_samples, lock_samples)
    if not ok:
        print(f"an entry found the view or lock free more than {1 - MIN_CONTENDED:.0%} of the time")
    print_figures(report)
    report.write(args.json)
    return 0 if ok else 1


def add_rows(
    report: Report, loop: str, when: str, gate_samples: list[Sample], lock_samples: list[Sample]
) -> bool:
    """Print one loop's rows and add its figure; False when a run was not contended."""
    ok = True
    label = "exclusive backend" + (", before" if when == "before" else ", as_base()")
    for what, samples in (("anyio.Lock", lock_samples), (label, gate_samples)):
        rates = [s.per_second for s in samples]
        contended = min(s.contended for s in samples)
        ok &= contended >= MIN_CONTENDED
        print(
            f"  {loop:8} {what:34} {statistics.median(rates):12,.0f} {min(rates):10,.0f} "
            f"{max(rates):10,.0f} {1e6 / statistics.median(rates):8.2f} {contended:9.1%}"
        )
    ratios = [g.per_second / k.per_second for g, k in zip(gate_samples, lock_samples, strict=True)]
    print(f"  {loop:8} {'ratio (backend / lock)':34} {statistics.median(ratios):12.2f}")
    name = f"{TASKS} tasks contending an exclusive backend (wait)"
    note = (
        f"contended: backend {min(s.contended for s in gate_samples):.1%}, "
        f"lock {min(s.contended for s in lock_samples):.1%} of entries (min over repeats)"
    )
    common: dict[str, Any] = {
        "reference_name": f"bare anyio.Lock, {TASKS} tasks",
        "reference": [s.per_second for s in lock_samples],
        "paired": ratios,
    }
    if when == "before":
        report.add(
            f"view hand-offs, {loop}",
            f"before: main at {BEFORE_ISSUE_18}, {name}",
            "hand-offs/s",
            [s.per_second for s in gate_samples],
            note=note,
            **common,
        )
        return ok
    report.add(
        f"view hand-offs, {loop}",
        name,
        "hand-offs/s",
        [s.per_second for s in gate_samples],
        target=f">= {RATIO_TARGET}x",
        met=statistics.median(ratios) >= RATIO_TARGET,
        cause=(
            "the gate's own work per hand-off (nested-entry check, holder, entry and switch "
            "counts, a view object) outweighed what a busy machine left of the lock's margin; "
            "rerun on a quiet machine"
        ),
        note=note,
        **common,
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
