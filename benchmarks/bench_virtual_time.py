"""How cheap is virtual time? 10,000 sequential ops of 50 ms each (500 virtual seconds).

For each event loop, in one run on a fresh virtual clock, alternating:

- *bare*: 10,000 ``await anyio.sleep(0.05)``;
- *ops*: 10,000 sequential ``next_token_dist`` calls on distinct prompts (each
  a forward pass, so each a latency event) on a backend with
  ``LatencyPlan(default=Constant(0.05))``;
- *ops, lognormal*: the same with ``LogNormal(0.05, 0.5)`` (a seeded draw per
  op; reported, not a target).

Reported per loop: wall time of the ops run, its virtual/wall ratio, the wall
cost per latency event and per bare sleep, and their ratio (median over the
repeats). Targets, on swaysim's two clocks: virtual/wall >= 1,000 and cost per
latency event <= 1.5 x a bare sleep. looptime (``noop_cycles`` 42, its
default, and 0) is measured on asyncio for comparison when installed.

Run: ``.venv/bin/python benchmarks/bench_virtual_time.py [--ops N] [--repeats R]``
(``--quick`` for a smoke run, ``--json PATH`` for run_all.py). Exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import trio.testing

from _harness import Report, add_json_argument, print_figures
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    LatencyPlan,
    LogNormal,
    VirtualClockEventLoop,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim._chaos.latency import LatencyModel

LATENCY = 0.05
RATIO_TARGET = 1_000.0
EVENT_COST_TARGET = 1.5


@dataclass
class Sample:
    bare_wall: float
    ops_wall: float
    ops_cpu: float
    ops_virtual: float
    lognormal_wall: float


async def bare_sleeps(count: int) -> float:
    gc.collect()
    wall = time.perf_counter()
    for _ in range(count):
        await anyio.sleep(LATENCY)
    return time.perf_counter() - wall


async def sequential_ops(count: int, model: LatencyModel, tag: str) -> tuple[float, float, float]:
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(seed=1, default=model))
    prompts = [f"{tag} prompt {i}" for i in range(count)]
    async with backend.as_base() as view:
        gc.collect()
        cpu = time.process_time()
        wall = time.perf_counter()
        start = anyio.current_time()
        for prompt in prompts:
            await view.next_token_dist(prompt, top_k=8)
        virtual = anyio.current_time() - start
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    stats = backend.statistics()
    assert stats.latency_draws == count, stats.latency_draws
    return wall, cpu, virtual


async def measure(count: int, repeats: int) -> list[Sample]:
    samples = []
    for repeat in range(repeats):
        bare = await bare_sleeps(count)
        ops_wall, ops_cpu, ops_virtual = await sequential_ops(
            count, Constant(LATENCY), f"c{repeat}"
        )
        lognormal_wall, _, _ = await sequential_ops(count, LogNormal(LATENCY, 0.5), f"l{repeat}")
        samples.append(Sample(bare, ops_wall, ops_cpu, ops_virtual, lognormal_wall))
    return samples


def looptime_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    try:
        import looptime
    except ImportError:
        return {}
    cls = looptime.make_event_loop_class(asyncio.SelectorEventLoop)
    return {
        "asyncio+looptime(noop_cycles=42)": cls,
        "asyncio+looptime(noop_cycles=0)": functools.partial(cls, noop_cycles=0),
    }


def configurations() -> list[tuple[str, str, Callable[[], dict[str, Any]], bool]]:
    """(label, anyio backend, fresh options, whether swaysim's targets apply)."""
    configs: list[tuple[str, str, Callable[[], dict[str, Any]], bool]] = [
        (
            "asyncio+VirtualClockEventLoop",
            "asyncio",
            lambda: {"loop_factory": VirtualClockEventLoop},
            True,
        ),
        (
            "trio+MockClock(autojump=0)",
            "trio",
            lambda: {"clock": trio.testing.MockClock(autojump_threshold=0)},
            True,
        ),
    ]
    for label, factory in looptime_factories().items():
        configs.append((label, "asyncio", functools.partial(dict, loop_factory=factory), False))
    return configs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000, help="sequential ops per run")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per loop")
    parser.add_argument("--quick", action="store_true", help="1,000 ops, 2 repeats")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.ops, args.repeats = 1_000, 2
    report = Report("bench_virtual_time", "virtual time: latency-heavy runs")
    report.settings.update(ops=args.ops, repeats=args.repeats, latency_s=LATENCY)

    header = (
        f"{'loop':34} {'ops wall s':>10} {'virtual s':>9} {'virt/wall':>10} {'virt/cpu':>9} "
        f"{'us/event':>9} {'us/sleep':>9} {'ratio':>6} {'lognormal us/event':>19}  target"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.ops} sequential ops x {LATENCY * 1000:g} ms, median of {args.repeats} runs "
        f"({os.cpu_count()} CPUs, load average {load})"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for label, backend, options, targeted in configurations():
        samples = anyio.run(
            measure, args.ops, args.repeats, backend=backend, backend_options=options()
        )
        ops_wall = statistics.median(s.ops_wall for s in samples)
        virtual = statistics.median(s.ops_virtual for s in samples)
        cpu = statistics.median(s.ops_cpu for s in samples)
        event_us = ops_wall / args.ops * 1e6
        sleep_us = statistics.median(s.bare_wall for s in samples) / args.ops * 1e6
        ratio = statistics.median(s.ops_wall / s.bare_wall for s in samples)
        lognormal_us = statistics.median(s.lognormal_wall for s in samples) / args.ops * 1e6
        speedup = virtual / ops_wall
        verdict = "-"
        if targeted:
            met = speedup >= RATIO_TARGET and ratio <= EVENT_COST_TARGET
            verdict = "PASS" if met else "FAIL"
            failed |= not met
        print(
            f"{label:34} {ops_wall:10.3f} {virtual:9.1f} {speedup:9.0f}x {virtual / cpu:8.0f}x "
            f"{event_us:9.2f} {sleep_us:9.2f} {ratio:5.2f}x {lognormal_us:19.2f}  {verdict}"
        )
        add_figures(report, label, args.ops, samples, targeted)
    print(
        f"\ntargets (swaysim's clocks): virtual/wall >= {RATIO_TARGET:,.0f}x, "
        f"cost per latency event <= {EVENT_COST_TARGET}x a bare virtual anyio.sleep.\n"
        "virt/cpu divides by the process's CPU time instead: when it is far above "
        "virt/wall, other processes were competing for the CPU."
    )
    print_figures(report)
    report.write(args.json)
    return 1 if failed and not args.quick else 0


def add_figures(
    report: Report, label: str, ops: int, samples: list[Sample], targeted: bool
) -> None:
    """Per configuration: virtual/wall, and the wall cost per latency event vs a bare sleep."""
    group = f"virtual time, {label}"
    speedups = [s.ops_virtual / s.ops_wall for s in samples]
    report.add(
        group,
        f"virtual/wall ratio, {ops:,} sequential 50 ms ops",
        "x",
        speedups,
        target=f">= {RATIO_TARGET:,.0f}x" if targeted else None,
        met=statistics.median(speedups) >= RATIO_TARGET if targeted else None,
        cause="wall cost per latency event too high for 50 ms events (see the next row)",
        note=None if targeted else "for comparison; swaysim's targets apply to its own clocks",
    )
    ratios = [s.ops_wall / s.bare_wall for s in samples]
    report.add(
        group,
        "wall cost per latency event (Constant)",
        "us",
        [s.ops_wall / ops * 1e6 for s in samples],
        reference_name="bare virtual anyio.sleep(0.05)",
        reference=[s.bare_wall / ops * 1e6 for s in samples],
        paired=ratios,
        target=f"<= {EVENT_COST_TARGET}x" if targeted else None,
        met=statistics.median(ratios) <= EVENT_COST_TARGET if targeted else None,
        cause="the op path around the sleep (lookups, draw, device slot) costs more than a sleep",
    )
    report.add(
        group,
        "wall cost per latency event (LogNormal, seeded draw)",
        "us",
        [s.lognormal_wall / ops * 1e6 for s in samples],
        reference_name="bare virtual anyio.sleep(0.05)",
        reference=[s.bare_wall / ops * 1e6 for s in samples],
        paired=[s.lognormal_wall / s.bare_wall for s in samples],
    )


if __name__ == "__main__":
    sys.exit(main())
