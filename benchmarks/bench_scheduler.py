"""How close run_suite's schedule comes to the best possible, against the naive runner.

Run: ``.venv/bin/python benchmarks/bench_scheduler.py`` (``--loop trio`` for trio
only; it takes a few seconds: everything runs in virtual time). ``--repeats N``
runs the whole measurement N times per loop (virtual makespans repeat exactly;
wall time varies); ``--json PATH`` writes the figures for run_all.py.

A reference suite of 30 probes (10 delta_kl, 4 null_adapter, 4 adapter_ablation,
6 preference_flip, 6 perplexity_shift) over 12 distinct views (base, ft, six
scaled, four null) runs on the dummy backend with log-normal op latency
(median 40 ms, sigma 0.5) and a constant 1.5 s view-switch cost (loading an
adapter), once with ``mode="naive"`` (declaration order, views entered per
probe, one request at a time, as dlm-sway 0.1.0 runs) and once pooled, on an
exclusive backend and on a concurrent-safe one, with ``preflight=False`` so
every switch counted belongs to the suite (preflight enters base and ft; a
row with preflight shows the one extra switch it costs).

With preflight, the bound adds the preflight's own duration (measured alone on
a fresh backend) and, on an exclusive backend, subtracts ft's switch, which
the suite saves by starting on ft where preflight ends; the switch floor is
then views + 1 (base is loaded twice).

Lower bounds are computed from the backend's own statistics of the pooled
run: ``work`` is the service time drawn for every forward pass
(``latency_seconds`` minus the switch latency, ``switches x 1.5 s``; each
distinct request is served once), ``max request`` is the longest single
service time in the trace, ``views`` the number of distinct views entered.

- exclusive (one device, one live view): ``work + views x switch``; every
  request is served one after another and every view must be loaded once.
- concurrent-safe at concurrency c: ``switch + max(work / c, max request)``;
  no request starts before its view is loaded (views load in parallel), c
  requests at most are in flight, and the longest probe cannot finish
  before its longest request.

Targets: exclusive: switches == distinct views and makespan within 5 % of
its bound; concurrent-safe at concurrency 8: makespan within 10 % of its
bound and at least 5x faster than the naive runner. The exit status is 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import anyio

import swaysim
from _harness import Report, add_json_argument, print_figures
from swaysim import (
    AdapterAblation,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    LatencyPlan,
    LogNormal,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    Probe,
    SuiteResult,
    TraceEvent,
    run_suite,
)

SWITCH_SECONDS = 1.5
EXCLUSIVE_SLACK = 0.05
SAFE_SLACK = 0.10
SAFE_SPEEDUP = 5.0
SAFE_CONCURRENCY = 8
CONCURRENCY_SWEEP = (1, 4, 8, 32)
PROMPTS = [f"prompt-{i:02d}" for i in range(16)]


def reference_suite() -> list[Probe]:
    """30 probes over base, ft, scaled(0, .25, .5, .75, 1, 1.25) and null(0..3)."""

    def window(start: int, size: int) -> list[str]:
        return [PROMPTS[(start + i) % len(PROMPTS)] for i in range(size)]

    probes: list[Probe] = []
    for i in range(10):
        null = f"null-{i}" if i < 4 else None
        probes.append(DeltaKL(f"delta-{i}", window(3 * i, 6), null=null))
    for i in range(4):
        probes.append(NullAdapter(f"null-{i}", f"delta-{i}", seeds=(0, 1, 2, 3), init_scale=0.5))
    for i in range(4):
        probes.append(AdapterAblation(f"ablation-{i}", window(4 * i + 1, 4)))
    for i in range(6):
        triples = [(p, f"good answer {p}", f"bad answer {p}") for p in window(5 * i, 4)]
        probes.append(PreferenceFlip(f"preference-{i}", triples))
    for i in range(6):
        texts = [f"{p} is followed by a held-out sentence number {i}" for p in window(2 * i, 4)]
        probes.append(PerplexityShift(f"perplexity-{i}", texts))
    return probes


class OpLatency:
    """A trace sink that keeps the longest op service time drawn and the sum per view."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.per_view: dict[str, float] = {}

    def emit(self, event: TraceEvent) -> None:
        if event.kind == "latency" and event.op not in ("switch", "enter", "exit"):
            seconds = event.duration or 0.0
            self.longest = max(self.longest, seconds)
            view = event.view or ""
            self.per_view[view] = self.per_view.get(view, 0.0) + seconds


def make_backend(*, safe: bool, trace: OpLatency | None = None) -> Any:
    latency = LatencyPlan(
        seed=7,
        default=LogNormal(median=0.040, sigma=0.5),
        view_switch=Constant(SWITCH_SECONDS),
    )
    return AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=safe, latency=latency, cache_size=4096, trace=trace
    )


@dataclass(frozen=True)
class Bounds:
    """Lower bounds on the makespan, from the pooled run's statistics and trace."""

    safe: bool
    work: float
    longest: float
    views: int
    ft_work: float

    def suite(self, concurrency: int) -> float:
        if not self.safe:
            return self.work + self.views * SWITCH_SECONDS
        return SWITCH_SECONDS + max(self.work / concurrency, self.longest)

    def with_preflight(self, preflight: float, concurrency: int) -> float:
        """After preflight ft is loaded: its switch is saved (exclusive) or its work
        may start while the other views load (concurrent-safe)."""
        if not self.safe:
            return preflight + self.work + (self.views - 1) * SWITCH_SECONDS
        early = min(self.ft_work, SWITCH_SECONDS * concurrency)
        after_load = SWITCH_SECONDS + (self.work - early) / concurrency
        return preflight + max(self.work / concurrency, after_load, self.longest)


@dataclass
class Row:
    backend: str
    runner: str
    concurrency: int
    makespan: float
    switches: int
    bound: float
    answers: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound


def answers(result: SuiteResult) -> str:
    return json.dumps(result.to_dict(include_timing=False), sort_keys=True)


def row(kind: str, runner: str, concurrency: int, result: SuiteResult, bound: float) -> Row:
    switches = result.view_switches or 0
    return Row(kind, runner, concurrency, result.makespan, switches, bound, answers(result))


async def measure() -> tuple[list[Row], dict[str, float], list[str]]:
    rows: list[Row] = []
    facts: dict[str, float] = {}
    checks: list[str] = []
    for safe in (False, True):
        kind = "concurrent-safe" if safe else "exclusive"
        tracer = OpLatency()
        backend = make_backend(safe=safe, trace=tracer)
        probes = reference_suite()
        pooled = await run_suite(backend, probes, concurrency=SAFE_CONCURRENCY, preflight=False)
        stats = backend.statistics()
        bounds = Bounds(
            safe=safe,
            work=stats.latency_seconds - stats.switches * SWITCH_SECONDS,
            longest=tracer.longest,
            views=len(stats.entries_per_view),
            ft_work=tracer.per_view.get("ft", 0.0),
        )
        facts[f"{kind} probes"] = len(probes)
        facts[f"{kind} views"] = bounds.views
        facts[f"{kind} forward passes"] = stats.forward_passes
        facts[f"{kind} work"] = bounds.work
        facts[f"{kind} max request"] = bounds.longest

        naive_backend = make_backend(safe=safe)
        naive = await run_suite(naive_backend, reference_suite(), mode="naive", preflight=False)
        naive_stats = naive_backend.statistics()
        facts[f"{kind} naive work"] = (
            naive_stats.latency_seconds - naive_stats.switches * SWITCH_SECONDS
        )
        rows.append(row(kind, "naive", 1, naive, bounds.suite(1)))
        for concurrency in CONCURRENCY_SWEEP if safe else (1, SAFE_CONCURRENCY):
            if concurrency == SAFE_CONCURRENCY:
                result = pooled
            else:
                result = await run_suite(
                    make_backend(safe=safe),
                    reference_suite(),
                    concurrency=concurrency,
                    preflight=False,
                )
            rows.append(row(kind, "run_suite", concurrency, result, bounds.suite(concurrency)))

        alone = make_backend(safe=safe)
        before = anyio.current_time()
        await alone.preflight_finite_check()
        preflight = anyio.current_time() - before
        result = await run_suite(
            make_backend(safe=safe), reference_suite(), concurrency=SAFE_CONCURRENCY
        )
        extra = row(
            kind,
            "run_suite",
            SAFE_CONCURRENCY,
            result,
            bounds.with_preflight(preflight, SAFE_CONCURRENCY),
        )
        extra.note = f"with preflight ({preflight:.3f} s alone)"
        rows.append(extra)

        distinct = {r.answers for r in rows if r.backend == kind}
        checks.append(f"{kind}: answers byte-identical in every row: {len(distinct) == 1}")
        if not safe:
            entries = dict(stats.entries_per_view)
            once = set(entries.values()) == {1}
            checks.append(f"{kind}: pooled run entered each view once: {once} {entries}")
    return rows, facts, checks


def report(loop: str, rows: list[Row], facts: dict[str, float], checks: list[str]) -> bool:
    print(f"\n== {loop} (virtual time) ==")
    for name, value in facts.items():
        unit = " s" if name.endswith(("work", "request")) else ""
        print(f"  {name:34} {value:10.3f}{unit}")
    header = (
        f"  {'backend':16} {'runner':10} {'conc':>4} {'makespan s':>11} {'switches':>8} "
        f"{'bound s':>9} {'ratio':>6} {'vs naive':>9}  target"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    ok = True
    for row in rows:
        naive = next(r for r in rows if r.backend == row.backend and r.runner == "naive")
        speedup = naive.makespan / row.makespan
        verdict = "-"
        views = int(facts[f"{row.backend} views"])
        if row.runner == "run_suite" and not row.note:
            if row.backend == "exclusive":
                met = row.switches == views and row.ratio <= 1 + EXCLUSIVE_SLACK
                verdict = "PASS" if met else "FAIL"
                ok &= met
            elif row.concurrency == SAFE_CONCURRENCY:
                met = row.ratio <= 1 + SAFE_SLACK and speedup >= SAFE_SPEEDUP
                verdict = "PASS" if met else "FAIL"
                ok &= met
        print(
            f"  {row.backend:16} {row.runner:10} {row.concurrency:>4} {row.makespan:11.3f} "
            f"{row.switches:>8} {row.bound:9.3f} {row.ratio:6.3f} {speedup:8.1f}x  {verdict}"
            + (f"  ({row.note})" if row.note else "")
        )
    for line in checks:
        print(f"  {line}")
    return ok


def add_figures(
    out: Report, loop: str, runs: list[list[Row]], facts: dict[str, float], walls: list[float]
) -> None:
    """Makespan and switches against their bounds and the naive runner, over the repeats."""
    group = f"scheduler, {loop} (virtual time)"
    for index, first in enumerate(runs[0]):
        rows = [run[index] for run in runs]
        naive = [
            next(r for r in run if r.backend == first.backend and r.runner == "naive")
            for run in runs
        ]
        label = f"{first.backend}, {first.runner} at concurrency {first.concurrency}"
        if first.note:
            label += f", {first.note.split(' (')[0]}"
        views = int(facts[f"{first.backend} views"])
        pooled = first.runner == "run_suite" and not first.note
        exclusive_target = pooled and first.backend == "exclusive"
        safe_target = (
            pooled and first.backend == "concurrent-safe" and first.concurrency == SAFE_CONCURRENCY
        )
        slack = EXCLUSIVE_SLACK if exclusive_target else SAFE_SLACK
        ratio = statistics.median(r.ratio for r in rows)
        out.add(
            group,
            f"{label}: makespan",
            "s",
            [r.makespan for r in rows],
            reference_name="lower bound",
            reference=[r.bound for r in rows],
            paired=[r.ratio for r in rows],
            target=f"<= {1 + slack:.2f}x" if exclusive_target or safe_target else None,
            met=ratio <= 1 + slack if exclusive_target or safe_target else None,
            cause="the schedule leaves the device idle or switches more than the bound assumes",
        )
        switches = statistics.median(r.switches for r in rows)
        out.add(
            group,
            f"{label}: view switches",
            "switches",
            [r.switches for r in rows],
            reference_name="distinct views",
            reference=[views for _ in rows],
            compare="difference",
            target="== distinct views" if exclusive_target else None,
            met=switches == views if exclusive_target else None,
            cause="a view was entered more than once",
        )
        if first.runner == "naive":
            continue
        speedups = [n.makespan / r.makespan for n, r in zip(naive, rows, strict=True)]
        out.add(
            group,
            f"{label}: makespan vs the naive runner",
            "s",
            [r.makespan for r in rows],
            reference_name="naive runner's makespan",
            reference=[n.makespan for n in naive],
            paired=[r.makespan / n.makespan for n, r in zip(naive, rows, strict=True)],
            target=f"<= {1 / SAFE_SPEEDUP:.2f}x (>= {SAFE_SPEEDUP:g}x faster)"
            if safe_target
            else None,
            met=statistics.median(speedups) >= SAFE_SPEEDUP if safe_target else None,
            cause="pooling does not overlap enough work at this concurrency",
        )
    out.add(group, "wall time of the whole measurement", "s", walls)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "trio", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per loop")
    parser.add_argument("--quick", action="store_true", help="one repeat")
    add_json_argument(parser)
    args = parser.parse_args()
    loops = ("asyncio", "trio") if args.loop == "both" else (args.loop,)
    repeats = 1 if args.quick else args.repeats
    out = Report("bench_scheduler", "scheduler: makespan and switches vs bounds and naive")
    out.settings.update(repeats=repeats, loops=list(loops), switch_s=SWITCH_SECONDS)
    ok = True
    for loop in loops:
        runs: list[list[Row]] = []
        walls: list[float] = []
        for repeat in range(repeats):
            started = time.perf_counter()
            rows, facts, checks = swaysim.run(measure, backend=loop)
            walls.append(time.perf_counter() - started)
            runs.append(rows)
            if repeat == 0:
                ok &= report(loop, rows, facts, checks)
        same = all([r.makespan for r in run] == [r.makespan for r in runs[0]] for run in runs)
        # trio shuffles its run queue on purpose, so its concurrent makespans may vary a little.
        print(
            f"  wall time: {statistics.median(walls):.2f} s (median of {repeats}); virtual "
            f"makespans identical in every repeat: {same}"
        )
        add_figures(out, loop, runs, facts, walls)
    print(
        "\nbounds: exclusive = work + views x switch; concurrent-safe = switch + "
        "max(work / concurrency, max request);\nwork and max request come from the "
        "pooled run's backend statistics and trace (preflight=False).\n"
        f"targets: exclusive switches == views and ratio <= {1 + EXCLUSIVE_SLACK:.2f}; "
        f"concurrent-safe at concurrency {SAFE_CONCURRENCY}: ratio <= {1 + SAFE_SLACK:.2f} "
        f"and >= {SAFE_SPEEDUP:g}x faster than naive."
    )
    print("result:", "all targets met" if ok else "TARGET MISSED")
    print_figures(out)
    out.write(args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
