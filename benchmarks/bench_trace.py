"""Trace cost and streaming: what tracing costs per op, and a 1,000,000-op trace in bounded memory.

Part 1 times one cache-hit ``logprob_of`` (microseconds per op, min and
median of several runs) on each event loop with: no sink on a plain backend
(the fast path), no sink on a backend that takes the slow path (tracing off,
an empty latency plan), a sink that drops events (the cost of building
them), and a :class:`~swaysim.JsonlTraceWriter` (tracing on).

Part 2 runs ``--ops`` ops (default 1,000,000; each a cache miss with drawn
latency on the virtual clock, so three events per op) into a JSONL trace,
sampling RSS along the way, then reads the trace back twice: the summary
digest, and the HTML report. Bounded memory shows as RSS that does not grow
with the number of ops written or read.

    .venv/bin/python benchmarks/bench_trace.py [--ops N] [--cost-ops N] [--repeats N]

``--quick`` is a smoke run; ``--json PATH`` writes the figures for run_all.py,
where "tracing off" (the slow path with ``trace=None``) is held to the cost of
no sink on the fast path within noise: its median must not exceed the fast
path's slowest repeat. The configurations of Part 1 take turns within each
repeat, so drift on a busy machine hits them alike.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from _harness import Report, add_json_argument, print_figures
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    JsonlTraceWriter,
    LatencyPlan,
    TraceEvent,
    run,
)
from swaysim._trace.digest import digest_trace
from swaysim._trace.report.render import write_report

PROMPTS = tuple(f"prompt {i}" for i in range(1000))
PROCESS = psutil.Process()


def rss_mib() -> float:
    return float(PROCESS.memory_info().rss) / 2**20


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class DroppingSink:
    """Receives every event and keeps none: the cost of building events alone."""

    def emit(self, event: TraceEvent) -> None:
        del event


async def hit_loop(backend: AsyncDummyDifferentialBackend, ops: int) -> float:
    async with backend.as_base() as view:
        await view.logprob_of("p", "c")
        start = time.perf_counter()
        for _ in range(ops):
            await view.logprob_of("p", "c")
        return (time.perf_counter() - start) / ops * 1e6


def op_cost(ops: int, repeats: int, scratch: Path, report: Report) -> None:
    print(f"Part 1: microseconds per cache-hit logprob_of ({ops:,} ops, {repeats} runs)")
    print(f"  {'loop':<8} {'configuration':<44} {'min':>7} {'median':>7} {'max':>7}")
    configurations: list[tuple[str, object]] = [
        ("no sink, plain backend (fast path)", None),
        ("no sink, slow path (tracing off)", "slow"),
        ("sink that drops events (tracing on)", "drop"),
        ("JsonlTraceWriter (tracing on)", "jsonl"),
    ]
    for loop in ("asyncio", "trio"):
        by_label: dict[str, list[float]] = {label: [] for label, _ in configurations}
        for repeat in range(repeats):
            for label, kind in configurations:
                writer = None
                if kind is None:
                    backend = AsyncDummyDifferentialBackend()
                elif kind == "slow":
                    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan())
                elif kind == "drop":
                    backend = AsyncDummyDifferentialBackend(trace=DroppingSink())
                else:
                    writer = JsonlTraceWriter(scratch / f"cost-{loop}-{repeat}.jsonl")
                    backend = AsyncDummyDifferentialBackend(trace=writer)
                by_label[label].append(run(hit_loop, backend, ops, backend=loop))
                if writer is not None:
                    writer.close()
        for label, samples in by_label.items():
            print(
                f"  {loop:<8} {label:<44} {min(samples):7.3f} "
                f"{statistics.median(samples):7.3f} {max(samples):7.3f}"
            )
        add_cost_figures(report, loop, [by_label[label] for label, _ in configurations])


def add_cost_figures(report: Report, loop: str, samples: list[list[float]]) -> None:
    fast, slow, drop, jsonl = samples
    group = f"trace cost per cache-hit logprob_of, {loop}"
    reference = "no sink, fast path"
    report.add(group, "no sink, plain backend (fast path)", "us", fast)
    report.add(
        group,
        "tracing off (trace=None) on the slow path (an empty LatencyPlan)",
        "us",
        slow,
        reference_name=reference,
        reference=fast,
        compare="difference",
        target="within noise: median <= the reference's max",
        met=statistics.median(slow) <= max(fast),
        cause=(
            "the gap is the slow path itself, not tracing: with a latency plan a cache hit "
            "goes through _call (one more coroutine frame with keyword arguments, the "
            "single-flight check), where tracing off adds only 'is None' tests; on a "
            "backend with nothing configured, tracing off is the fast path itself, which "
            "builds no event"
        ),
    )
    report.add(
        group,
        "a sink that drops events (building events only)",
        "us",
        drop,
        reference_name=reference,
        reference=fast,
        compare="difference",
    )
    report.add(
        group,
        "JsonlTraceWriter (tracing on)",
        "us",
        jsonl,
        reference_name=reference,
        reference=fast,
        compare="difference",
    )


async def miss_loop(backend: AsyncDummyDifferentialBackend, ops: int, marks: list[int]) -> None:
    async with backend.as_base() as view:
        for index in range(ops):
            await view.logprob_of(PROMPTS[index % len(PROMPTS)], "c")
            if index + 1 in marks:
                print(f"    after {index + 1:>9,} ops: RSS {rss_mib():7.1f} MiB", flush=True)


def streaming(ops: int, scratch: Path, *, report: bool, out: Report) -> None:
    print(f"\nPart 2: {ops:,} ops into a JSONL trace (asyncio, virtual clock)")
    trace_path = scratch / "trace.jsonl"
    writer = JsonlTraceWriter(trace_path)
    # cache_size 256 < 1000 distinct prompts: every op misses and draws its latency.
    backend = AsyncDummyDifferentialBackend(
        latency=LatencyPlan(default=Constant(0.001)), cache_size=256, trace=writer
    )
    marks = sorted({ops // 10, ops // 2, ops})
    before = rss_mib()
    print(f"    before:              RSS {before:7.1f} MiB")
    start = time.perf_counter()
    run(miss_loop, backend, ops, marks, backend="asyncio")
    writer.close()
    wall = time.perf_counter() - start
    size = trace_path.stat().st_size
    print(
        f"  wrote {writer.events_written:,} events ({size / 2**20:.0f} MiB) in {wall:.1f} s: "
        f"{ops / wall:,.0f} ops/s, {writer.events_written / wall:,.0f} events/s"
    )
    print(f"  peak RSS so far: {peak_rss_mib():.1f} MiB")
    group = f"trace streaming, {ops:,} ops (one run)"
    out.add(group, "ops/s written (3 events per op)", "ops/s", [ops / wall])
    out.add(group, "events/s written", "events/s", [writer.events_written / wall])
    out.add(
        group,
        "peak RSS while writing",
        "MiB",
        [peak_rss_mib()],
        reference_name="RSS before writing",
        reference=[before],
        compare="difference",
    )

    start = time.perf_counter()
    digest = digest_trace(trace_path)
    wall = time.perf_counter() - start
    print(
        f"  summary digest: {digest.events:,} events read in {wall:.1f} s "
        f"({digest.events / wall:,.0f} events/s), RSS {rss_mib():.1f} MiB, "
        f"peak {peak_rss_mib():.1f} MiB"
    )
    out.add(group, "summary digest: events/s read", "events/s", [digest.events / wall])
    if report:
        output = scratch / "report.html"
        start = time.perf_counter()
        write_report(scratch, output)
        wall = time.perf_counter() - start
        print(
            f"  HTML report: {output.stat().st_size / 2**20:.2f} MiB in {wall:.1f} s, "
            f"RSS {rss_mib():.1f} MiB, peak {peak_rss_mib():.1f} MiB"
        )
        out.add(group, "HTML report from the trace: wall time", "s", [wall])
        out.add(group, "peak RSS after the report", "MiB", [peak_rss_mib()])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--cost-ops", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report pass")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.ops, args.cost_ops, args.repeats = 20_000, 5_000, 3
    out = Report("bench_trace", "trace cost and streaming")
    out.settings.update(ops=args.ops, cost_ops=args.cost_ops, repeats=args.repeats)
    print(f"python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="swaysim-bench-trace-") as scratch:
        op_cost(args.cost_ops, args.repeats, Path(scratch), out)
        streaming(args.ops, Path(scratch), report=not args.no_report, out=out)
    print_figures(out)
    out.write(args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
