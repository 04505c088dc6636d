"""Scale: 1,000,000 ops from 10,000 tasks, traced to a JSONL file, in bounded memory.

Run: ``.venv/bin/python benchmarks/bench_scale.py`` (``--quick`` for a smoke run,
``--json PATH`` for run_all.py).

Every run happens in a fresh child process (so its peak RSS is its own), on the
virtual clock, against one *exclusive* backend (the default: one device, one
live view, ``max_concurrent_ops=1``) with ``LatencyPlan(default=Constant(1 ms))``
and a :class:`~swaysim.JsonlTraceWriter` to a temporary file. The parent task
enters the base view once and shares it with ``ops / 100`` tasks, each of which
issues 100 ops in turn (``next_token_dist``, ``logprob_of``,
``rolling_logprob``). Why exclusive: it is the contract's central case (a
GPU), and the hardest for the op path's bookkeeping, since every op queues on
the device FIFO behind the other 9,999 tasks' ops; on a concurrent-safe
backend (``--backend safe``) the same ops sleep side by side instead.

The op stream is the same at every size: the device serves ops round-robin
over tasks, and the op kind and prompt are chosen from the op's position in
that order, cycling through 30,000 distinct (op, prompt) keys. With the default
256-entry cache every op is a miss: one forward pass, 1 ms of virtual service
time and three trace events (``op_start``, ``latency``, ``op_end``). So the
cost per op at 10,000 ops and at 1,000,000 ops measure the same work, with
100 and 10,000 tasks.

Reported per size (median/min/max over repeats, sizes interleaved): wall
seconds, ops/s, wall microseconds per op, peak RSS and its growth over the
process's RSS before the run, RSS sampled at each quarter of the run, and the
sizes of what could grow with ops (the per-key call counter, the fault log,
the trace writer's buffer, the forward cache, the in-flight table).
Targets: peak RSS < 300 MB at 1,000,000 ops, and flat while writing them
(at most +2 MB from a quarter of the ops to the end); cost per op at
1,000,000 within 1.2x of the cost at 10,000.

Two memory checks follow (one run each, at two sizes): with every prompt
distinct, how the per-key call counter grows; with a ``nan`` fault rule at
probability 0.01, how the fault log grows.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import psutil

import swaysim
from _harness import Report, add_json_argument, print_figures
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    FaultPlan,
    FaultRule,
    JsonlTraceWriter,
    LatencyPlan,
)

OPS_PER_TASK = 100
LATENCY = 0.001
PROMPTS = 10_000  # with 3 op kinds: 30,000 distinct keys, cycled in service order
RSS_TARGET_MB = 300.0
FLAT_RSS_MB = 2.0
COST_RATIO_TARGET = 1.2
MB = 1e6


@dataclass(frozen=True)
class Config:
    ops: int
    loop: str = "asyncio"
    backend: str = "exclusive"
    distinct_prompts: bool = False
    fault_probability: float = 0.0


@dataclass
class Outcome:
    ops: int
    tasks: int
    wall: float
    cpu: float
    virtual: float
    rss_before_mb: float
    peak_rss_mb: float
    rss_samples_mb: list[tuple[int, float]]
    events_written: int
    trace_bytes: int
    key_calls: int
    key_calls_bytes: int
    fault_log: int
    fault_log_bytes: int
    trace_buffer: int
    cache_entries: int
    inflight: int
    forward_passes: int
    cache_hits: int
    device_peak_waiting: int


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / MB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux


def retained_bytes(root: object) -> int:
    """``sys.getsizeof`` summed over ``root`` and everything it reaches (each object once)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


async def drive(config: Config, trace_path: Path) -> Outcome:
    tasks = max(1, config.ops // OPS_PER_TASK)
    faults = None
    if config.fault_probability:
        rule = FaultRule(
            "nan",
            name="nan-rolling",
            ops=("rolling_logprob",),
            probability=config.fault_probability,
        )
        faults = FaultPlan(seed=1, rules=(rule,))
    writer = JsonlTraceWriter(trace_path)
    backend = AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=config.backend == "safe",
        latency=LatencyPlan(seed=1, default=Constant(LATENCY)),
        faults=faults,
        trace=writer,
    )
    prompts = [f"scale prompt number {i}" for i in range(PROMPTS)]
    marks = {config.ops * quarter // 4 for quarter in (1, 2, 3, 4)}
    samples: list[tuple[int, float]] = []
    done = 0
    device = backend._device
    peak_waiting = 0

    async def worker(task: int, view: Any) -> None:
        nonlocal done, peak_waiting
        for index in range(OPS_PER_TASK):
            position = index * tasks + task  # this op's place in the device's service order
            if config.distinct_prompts:
                prompt = f"distinct prompt number {position}"
            else:
                prompt = prompts[position % PROMPTS]
            kind = position % 3
            if kind == 0:
                await view.next_token_dist(prompt, top_k=8)
            elif kind == 1:
                await view.logprob_of(prompt, " completion")
            else:
                await view.rolling_logprob(prompt)
            done += 1
            if done in marks:
                samples.append((done, rss_mb()))
                peak_waiting = max(peak_waiting, device.waiting)

    async with backend.as_base() as view:
        before = rss_mb()
        cpu = time.process_time()
        wall = time.perf_counter()
        virtual = anyio.current_time()
        async with anyio.create_task_group() as group:
            for task in range(tasks):
                group.start_soon(worker, task, view)
        virtual = anyio.current_time() - virtual
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    buffered = len(writer._buffer)
    writer.close()
    trace_bytes = os.path.getsize(trace_path)  # noqa: ASYNC240 - after the measured part
    stats = backend.statistics()
    assert stats.total_calls == tasks * OPS_PER_TASK, stats.total_calls
    return Outcome(
        ops=stats.total_calls,
        tasks=tasks,
        wall=wall,
        cpu=cpu,
        virtual=virtual,
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
        rss_samples_mb=samples,
        events_written=writer.events_written,
        trace_bytes=trace_bytes,
        key_calls=len(backend._pipeline.key_calls),
        key_calls_bytes=retained_bytes(backend._pipeline.key_calls),
        fault_log=len(backend.fault_log),
        fault_log_bytes=retained_bytes(backend._faults.log) if backend._faults else 0,
        trace_buffer=buffered,
        cache_entries=stats.cache_entries,
        inflight=len(backend._inflight),
        forward_passes=stats.forward_passes,
        cache_hits=stats.cache_hits,
        device_peak_waiting=peak_waiting,
    )


def child(config: Config) -> None:
    with tempfile.TemporaryDirectory(prefix="swaysim-bench-scale-") as scratch:
        outcome = swaysim.run(drive, config, Path(scratch) / "trace.jsonl", backend=config.loop)
    print(json.dumps(asdict(outcome)))


def measure(config: Config) -> Outcome:
    """One run in a fresh interpreter, so peak RSS belongs to this run alone."""
    command = [sys.executable, __file__, "--child", json.dumps(asdict(config))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child run {config} failed:\n{done.stderr}")
    fields = json.loads(done.stdout.strip().splitlines()[-1])
    fields["rss_samples_mb"] = [tuple(pair) for pair in fields["rss_samples_mb"]]
    return Outcome(**fields)


def median_of(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def scale_runs(
    loop: str, backend: str, sizes: list[int], repeats: int, largest_repeats: int | None
) -> dict[int, list[Outcome]]:
    """Every size ``repeats`` times (the largest ``largest_repeats`` times), interleaved."""
    runs: dict[int, list[Outcome]] = {size: [] for size in sizes}
    largest = sizes[-1]
    wanted = dict.fromkeys(sizes, repeats)
    if largest_repeats is not None:
        wanted[largest] = largest_repeats
    for repeat in range(max(wanted.values())):
        for size in sizes:
            if repeat >= wanted[size]:
                continue
            outcome = measure(Config(ops=size, loop=loop, backend=backend))
            runs[size].append(outcome)
            print(
                f"  {loop:8} run {repeat + 1}/{wanted[size]} {size:>9,} ops / {outcome.tasks:>6,} "
                f"tasks: {outcome.wall:7.2f} s wall, {outcome.ops / outcome.wall:>9,.0f} ops/s, "
                f"{outcome.wall / outcome.ops * 1e6:6.2f} us/op, peak RSS "
                f"{outcome.peak_rss_mb:6.1f} MB, {outcome.virtual:8.1f} virtual s",
                flush=True,
            )
    return runs


def report_scale(report: Report, loop: str, runs: dict[int, list[Outcome]]) -> None:
    sizes = sorted(runs)
    smallest, largest = sizes[0], sizes[-1]
    group = f"scale, {loop}"
    small_cost = [o.wall / o.ops * 1e6 for o in runs[smallest]]
    print(f"\n== {loop}: per size, medians over the runs (n)")
    header = (
        f"  {'ops':>9} {'n':>2} {'tasks':>6} {'wall s':>8} {'ops/s':>9} {'us/op':>7} "
        f"{'vs ' + f'{smallest:,}':>9} {'peak RSS':>9} {'growth':>8} {'events':>10} "
        f"{'trace MB':>8} {'key calls':>9} {'fault log':>9} {'buffer':>6} {'cache':>5} "
        f"{'in flight':>9} {'hits':>4}"
    )
    print(header)
    for size in sizes:
        outcomes = runs[size]
        walls = [o.wall for o in outcomes]
        costs = [o.wall / o.ops * 1e6 for o in outcomes]
        peaks = [o.peak_rss_mb for o in outcomes]
        last = outcomes[-1]
        growth = median_of([o.peak_rss_mb - o.rss_before_mb for o in outcomes])
        print(
            f"  {size:>9,} {len(outcomes):>2} {last.tasks:>6,} {median_of(walls):8.2f} "
            f"{size / median_of(walls):>9,.0f} {median_of(costs):7.2f} "
            f"{median_of(costs) / median_of(small_cost):8.2f}x {median_of(peaks):7.1f}MB "
            f"{growth:6.1f}MB {last.events_written:>10,} {last.trace_bytes / MB:8.0f} "
            f"{last.key_calls:>9,} {last.fault_log:>9} {last.trace_buffer:>6} "
            f"{last.cache_entries:>5} {last.inflight:>9} {last.cache_hits:>4}"
        )
        samples = ", ".join(f"{n:,}: {mb:.1f}" for n, mb in last.rss_samples_mb)
        print(
            f"  {'':>9} RSS (MB) after ops {samples}; deepest device queue seen "
            f"{last.device_peak_waiting:,}; per-key counter {last.key_calls_bytes / MB:.1f} MB"
        )
        name = f"{size:,} ops from {last.tasks:,} tasks"
        report.add(group, f"{name}: wall time", "s", walls)
        report.add(group, f"{name}: throughput", "ops/s", [size / w for w in walls])
        if size == smallest:
            report.add(group, f"{name}: wall cost per op", "us/op", costs)
        else:
            ratio = median_of(costs) / median_of(small_cost)
            targeted = size == largest
            report.add(
                group,
                f"{name}: wall cost per op",
                "us/op",
                costs,
                reference_name=f"cost per op at {smallest:,} ops",
                reference=small_cost,
                target=f"<= {COST_RATIO_TARGET}x" if targeted else None,
                met=ratio <= COST_RATIO_TARGET if targeted else None,
                cause="cost per op grows with the number of ops and tasks (see the raw output)",
            )
        quarter = last.rss_samples_mb[0][1] if last.rss_samples_mb else last.rss_before_mb
        report.add(
            group,
            f"{name}: peak RSS",
            "MB",
            peaks,
            reference_name="RSS before the run (imports, backend, view)",
            reference=[o.rss_before_mb for o in outcomes],
            compare="difference",
            target=f"< {RSS_TARGET_MB:.0f} MB in every run" if size == largest else None,
            met=max(peaks) < RSS_TARGET_MB if size == largest else None,
            cause="see the memory checks for what grows",
            note=(
                f"RSS {quarter:.0f} MB after a quarter of the ops, {last.peak_rss_mb:.0f} MB "
                f"peak, {(last.peak_rss_mb - last.rss_before_mb) * 1000 / last.tasks:.1f} kB "
                f"per task over the RSS before the run; per-key counter {last.key_calls:,} keys "
                f"({last.key_calls_bytes / MB:.1f} MB), fault log {last.fault_log}, trace "
                f"buffer {last.trace_buffer} lines, cache {last.cache_entries}, in flight "
                f"{last.inflight}; {last.events_written:,} events, "
                f"{last.trace_bytes / MB:,.0f} MB of trace"
            ),
        )
        if size == largest and len(last.rss_samples_mb) >= 2:
            (first_ops, first_mb), (last_ops, last_mb) = (
                last.rss_samples_mb[0],
                last.rss_samples_mb[-1],
            )
            report.add(
                group,
                f"{name}: RSS after all {last_ops:,} ops, traced to a file",
                "MB",
                [last_mb],
                reference_name=f"RSS after {first_ops:,} ops",
                reference=[first_mb],
                compare="difference",
                target=f"<= +{FLAT_RSS_MB:g} MB (flat)",
                met=last_mb - first_mb <= FLAT_RSS_MB,
                cause="memory grows with the ops written (see the memory checks)",
            )


def memory_checks(report: Report, sizes: tuple[int, int]) -> None:
    """How the per-key call counter and the fault log grow when their keys or firings do."""
    small, large = sizes
    print("\n== memory checks (asyncio; the structures are the same on trio), one run each")
    checks = (
        ("every prompt distinct", "per-key call counter", {"distinct_prompts": True}),
        ("a nan fault at p=0.01 on rolling_logprob", "fault log", {"fault_probability": 0.01}),
    )
    for label, what, options in checks:
        first = measure(Config(ops=small, **options))
        second = measure(Config(ops=large, **options))
        if what == "fault log":
            entries_small, entries_large = first.fault_log, second.fault_log
            size_large = second.fault_log_bytes
        else:
            entries_small, entries_large = first.key_calls, second.key_calls
            size_large = second.key_calls_bytes
        each = size_large / entries_large if entries_large else 0.0
        print(
            f"  {label}: {what} holds {entries_small:,} entries after {small:,} ops and "
            f"{entries_large:,} after {large:,} ops, {each:,.0f} bytes each "
            f"({size_large / MB:.1f} MB); peak RSS {first.peak_rss_mb:.1f} and "
            f"{second.peak_rss_mb:.1f} MB"
        )
        report.add(
            "scale: what grows (asyncio)",
            f"{label}: {what} entries after {large:,} ops",
            "entries",
            [entries_large],
            reference_name=f"entries after {small:,} ops",
            reference=[entries_small],
            note=f"{each:,.0f} bytes per entry, retained until the backend is dropped",
        )


def parse_loops(spec: str) -> list[tuple[str, int | None]]:
    """``"asyncio,trio:1"``: loops, each optionally with the repeats of its largest size."""
    loops: list[tuple[str, int | None]] = []
    for item in spec.split(","):
        name, _, repeats = item.partition(":")
        loops.append((name, int(repeats) if repeats else None))
    return loops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="ops per run, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per size")
    parser.add_argument(
        "--loops",
        default="asyncio,trio:1",
        help="comma-separated loops; 'trio:1' runs trio's largest size once (it takes ~75 s)",
    )
    parser.add_argument("--backend", choices=("exclusive", "safe"), default="exclusive")
    parser.add_argument(
        "--memory-sizes", default="20000,100000", help="the two sizes of the memory checks"
    )
    parser.add_argument("--no-memory-checks", action="store_true")
    parser.add_argument("--quick", action="store_true", help="10k and 100k ops, one repeat")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.child:
        child(Config(**json.loads(args.child)))
        return 0
    sizes = sorted(int(size) for size in args.sizes.split(","))
    repeats = args.repeats
    memory_sizes = [int(size) for size in args.memory_sizes.split(",")]
    if args.quick:
        sizes, repeats, memory_sizes = [10_000, 100_000], 1, [10_000, 50_000]
    if len(memory_sizes) != 2:
        parser.error("--memory-sizes takes two sizes")
    loops = parse_loops(args.loops)
    report = Report("bench_scale", "scale: ops from many tasks, traced to a file")
    report.settings.update(
        sizes=sizes,
        repeats=repeats,
        loops=args.loops,
        backend=args.backend,
        ops_per_task=OPS_PER_TASK,
        latency_s=LATENCY,
    )
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.backend} backend, "
        f"{OPS_PER_TASK} ops per task, Constant({LATENCY * 1000:g} ms) per op, virtual clock, "
        f"JsonlTraceWriter to a temp file"
    )
    for loop, largest_repeats in loops:
        runs = scale_runs(loop, args.backend, sizes, repeats, largest_repeats)
        report_scale(report, loop, runs)
    if not args.no_memory_checks:
        memory_checks(report, (memory_sizes[0], memory_sizes[1]))
    if args.backend == "exclusive":
        report.note(
            "Exclusive backend, the contract's central case (one GPU): every op queues on the "
            "one device, FIFO, behind the other tasks' ops (up to tasks - 1 deep), the hardest "
            "case for the op path's bookkeeping. The parent enters base once and shares the view."
        )
    report.note(
        "Every op is a cache miss (30,000 distinct keys cycled in service order, 256-entry "
        "cache) with three trace events (op_start, latency, op_end); what grows with ops is "
        "only the trace file. Peak RSS growth is the tasks themselves (task objects, coroutine "
        "frames, loop bookkeeping): flat from the first quarter of the ops to the end."
    )
    print_figures(report)
    report.write(args.json)
    if args.quick:
        return 0
    return 1 if report.missed else 0


if __name__ == "__main__":
    sys.exit(main())
