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

Part 3 is the writer alone: ``--writer-events`` events shaped like Part 2's
(``op_start``, ``latency``, ``op_end``; every time distinct, a thousand
prompts, ten tasks) handed to a :class:`~swaysim.JsonlTraceWriter` as a
backend hands them (``emit_fields``; before issue 18, a ``TraceEvent`` each),
encoded and written: events per second.

Targets: tracing on (the JSONL writer) costs at most +5 us per cache-hit op
over no sink, on each loop (median of the per-repeat differences); the writer
writes at least 300,000 events/s; RSS grows by at most 2 MiB from a tenth of
Part 2's ops to the end (flat). The code of main before issue 18
(``_harness.BEFORE_ISSUE_18``) is measured too, in a child process, for the
"before" rows of Part 1 and Part 3.

    .venv/bin/python benchmarks/bench_trace.py [--ops N] [--cost-ops N] [--repeats N]

``--quick`` is a smoke run; ``--json PATH`` writes the figures for run_all.py,
where "tracing off" (the slow path with ``trace=None``) is held to the cost of
no sink on the fast path within noise: its median must not exceed the fast
path's slowest repeat. The configurations of Part 1 take turns within each
repeat, so drift on a busy machine hits them alike.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from _harness import (
    BEFORE_ISSUE_18,
    Report,
    add_json_argument,
    print_figures,
    run_with_source,
    source_at,
)
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
TRACED_OP_TARGET_US = 5.0
WRITER_TARGET = 300_000
FLAT_RSS_MIB = 2.0
LOOPS = ("asyncio", "trio")


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
        ("sink with emit only (tracing on)", "drop"),
        ("JsonlTraceWriter (tracing on)", "jsonl"),
    ]
    for loop in LOOPS:
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
            "goes through the op pipeline (one more coroutine frame, the single-flight "
            "check), where tracing off adds only 'is None' tests; on a backend with nothing "
            "configured, tracing off is the fast path itself, which builds no event"
        ),
    )
    report.add(
        group,
        "a sink with emit only (the backend builds a TraceEvent per event)",
        "us",
        drop,
        reference_name=reference,
        reference=fast,
        compare="difference",
    )
    differences = [j - f for j, f in zip(jsonl, fast, strict=True)]
    report.add(
        group,
        "JsonlTraceWriter (tracing on)",
        "us",
        jsonl,
        reference_name=reference,
        reference=fast,
        compare="difference",
        paired=differences,
        target=f"<= +{TRACED_OP_TARGET_US:g} us",
        met=statistics.median(differences) <= TRACED_OP_TARGET_US,
        cause=(
            "per op: two events (op_start, op_end) around the view's own cache hit, handed to "
            "the writer's op lane, encoded and written; a busy machine stretches all of it alike"
        ),
    )


def add_before_cost_figures(
    report: Report, loop: str, fast: list[float], jsonl: list[float]
) -> None:
    differences = [j - f for j, f in zip(jsonl, fast, strict=True)]
    report.add(
        f"trace cost per cache-hit logprob_of, {loop}",
        f"before: main at {BEFORE_ISSUE_18}, JsonlTraceWriter (tracing on)",
        "us",
        jsonl,
        reference_name="its no sink, fast path",
        reference=fast,
        compare="difference",
        paired=differences,
    )


def cost_pairs(ops: int, repeats: int, scratch: Path) -> dict[str, dict[str, list[float]]]:
    """Part 1's fast path and JSONL writer only, alternating (what a before row needs)."""
    out: dict[str, dict[str, list[float]]] = {}
    for loop in LOOPS:
        fast, jsonl = [], []
        for repeat in range(repeats):
            fast.append(run(hit_loop, AsyncDummyDifferentialBackend(), ops, backend=loop))
            with JsonlTraceWriter(scratch / f"pair-{loop}-{repeat}.jsonl") as writer:
                backend = AsyncDummyDifferentialBackend(trace=writer)
                jsonl.append(run(hit_loop, backend, ops, backend=loop))
        out[loop] = {"fast": fast, "jsonl": jsonl}
    return out


async def miss_loop(
    backend: AsyncDummyDifferentialBackend, ops: int, marks: list[int], rss: list[float]
) -> None:
    async with backend.as_base() as view:
        for index in range(ops):
            await view.logprob_of(PROMPTS[index % len(PROMPTS)], "c")
            if index + 1 in marks:
                rss.append(rss_mib())
                print(f"    after {index + 1:>9,} ops: RSS {rss[-1]:7.1f} MiB", flush=True)


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
    rss: list[float] = []
    run(miss_loop, backend, ops, marks, rss, backend="asyncio")
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
    out.add(
        group,
        f"RSS after all {ops:,} ops",
        "MiB",
        [rss[-1]],
        reference_name=f"RSS after {marks[0]:,} ops",
        reference=[rss[0]],
        compare="difference",
        target=f"<= +{FLAT_RSS_MIB:g} MiB (flat)",
        met=rss[-1] - rss[0] <= FLAT_RSS_MIB,
        cause="memory grew with the ops written: something keeps per-op state",
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


def writer_rate(events: int, scratch: Path) -> float:
    """Events per second a JsonlTraceWriter takes as a backend hands them, encodes and writes."""
    tasks = [f"worker-{i}#{140_000_000 + 977 * i}" for i in range(10)]
    hashes = [f"{i * 2_654_435_761 % 16**12:012x}" for i in range(len(PROMPTS))]
    writer = JsonlTraceWriter(scratch / "writer.jsonl")
    emit_fields = getattr(writer, "emit_fields", None)
    send = emit_fields if emit_fields is not None else (lambda *f: writer.emit(TraceEvent(*f)))
    started = time.perf_counter()
    for op in range(events // 3):
        now, task, prompt = 0.001 * op + 0.25, tasks[op % 10], hashes[op % len(hashes)]
        send("op_start", now, task, "base", "logprob_of", prompt, None, None, None)
        send("latency", now, task, "base", "logprob_of", None, None, 0.001, None)
        done = now + 0.001
        send("op_end", done, task, "base", "logprob_of", prompt, False, 0.001, {"call": op // 1000})
    writer.close()
    return (events // 3 * 3) / (time.perf_counter() - started)


def writer_throughput(events: int, repeats: int, scratch: Path, out: Report, before: Any) -> None:
    print(f"\nPart 3: {events:,} events into a JsonlTraceWriter, as a backend hands them")
    rates = [writer_rate(events, scratch) for _ in range(repeats)]
    print(
        f"  {statistics.median(rates):,.0f} events/s (min {min(rates):,.0f}, max {max(rates):,.0f})"
    )
    group = "trace writer throughput"
    out.add(
        group,
        "events/s encoded and written (emit_fields, batched)",
        "events/s",
        rates,
        target=f">= {WRITER_TARGET:,} events/s",
        met=statistics.median(rates) >= WRITER_TARGET,
        cause="encoding is pure Python (see encode.py); a busy machine slows it alike",
    )
    if before is not None:
        print(f"  before: {statistics.median(before):,.0f} events/s")
        out.add(group, f"before: main at {BEFORE_ISSUE_18}, emit(TraceEvent)", "events/s", before)


def child(part: str, args: argparse.Namespace) -> None:
    """Measure one part with whatever swaysim is first on the path; print it as JSON."""
    with tempfile.TemporaryDirectory(prefix="swaysim-bench-trace-") as scratch:
        if part == "cost":
            result: Any = cost_pairs(args.cost_ops, args.repeats, Path(scratch))
        else:
            result = [writer_rate(args.writer_events, Path(scratch)) for _ in range(args.repeats)]
    print(json.dumps(result))


def measure_before(args: argparse.Namespace) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="swaysim-before-") as scratch:
        source = source_at(BEFORE_ISSUE_18, Path(scratch))
        if source is None:
            return None
        common = [
            "--cost-ops", str(args.cost_ops), "--repeats", str(args.repeats),
            "--writer-events", str(args.writer_events),
        ]  # fmt: skip
        script = Path(__file__)
        return {
            "cost": run_with_source(script, source, ["--child-json", "cost", *common]),
            "writer": run_with_source(script, source, ["--child-json", "writer", *common]),
        }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--cost-ops", type=int, default=50_000)
    parser.add_argument("--writer-events", type=int, default=600_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report pass")
    parser.add_argument("--no-before", action="store_true", help="skip the before rows")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--child-json", choices=("cost", "writer"), help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.ops, args.cost_ops, args.repeats, args.writer_events = 20_000, 5_000, 3, 60_000
    if args.child_json:
        child(args.child_json, args)
        return
    out = Report("bench_trace", "trace cost and streaming")
    out.settings.update(
        ops=args.ops,
        cost_ops=args.cost_ops,
        writer_events=args.writer_events,
        repeats=args.repeats,
        before=BEFORE_ISSUE_18,
    )
    print(f"python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs")
    before = None if args.no_before else measure_before(args)
    if before is None:
        out.note(f"before rows: main at {BEFORE_ISSUE_18} could not be measured (no git?)")
    with tempfile.TemporaryDirectory(prefix="swaysim-bench-trace-") as scratch:
        op_cost(args.cost_ops, args.repeats, Path(scratch), out)
        if before is not None:
            for loop in LOOPS:
                add_before_cost_figures(out, loop, **before["cost"][loop])
        writer_throughput(
            args.writer_events, args.repeats, Path(scratch), out, before and before["writer"]
        )
        streaming(args.ops, Path(scratch), report=not args.no_report, out=out)
    print_figures(out)
    out.write(args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
