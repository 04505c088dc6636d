"""Exploration throughput: per core against plain scenario runs, on 2 local workers, on Dask.

Run: ``.venv/bin/python benchmarks/bench_explore.py`` (``--trials N``, ``--repeats N``,
``--quick`` for a smoke run, ``--json PATH`` for run_all.py).

The same seeds of a small scenario (``scenarios/safe_backend_faults.toml`` on
asyncio) are run four ways, side by side in each repeat, against a correct runner
that is not the reference (``tests/runners/correct.py:run``, by its path: what a
user explores is their own runner, and the engine may not save work by knowing it
is the reference):

- **plain**: each trial's generated scenario run once, as ``swaysim run`` runs a
  file (written to TOML, parsed, run by the runner with its plain expectations:
  the reference for what exploring costs; target: exploring at most 1.25x);
- **explore, 1 process**: the exploration trials (oracles, fault-free reference
  runs, twin runs on the other loop, the reference under the same faults) in this
  process;
- **explore, 2 local workers**: the same trials through ``run_trials(workers=2)``
  (``spawn`` processes; target: >= 1.7x the single process);
- **explore, Dask**: on a ``LocalCluster`` of 2 worker processes with 1 thread each,
  reached by its address as ``--dask`` does (target: >= 1.5x).

Speed-ups compare steady throughput: the parallel runs are timed from their
first chunk of outcomes to the last, and the start-up before it (spawning
workers, importing swaysim there) is reported on its own row, as a cost paid
once per exploration. Every way must give the same outcomes. Without the
explore engine (``swaysim._explore.trial``) every trial is a plain scenario run
with the trial's seed, so the parallel rows still measure real runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from distributed import LocalCluster

from _explore_trials import ENGINE, explore_trial, make_config, plain_trial
from _harness import Report, add_json_argument, print_figures
from swaysim._explore.parallel import DEFAULT_CHUNK_SIZE, run_trials

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = str(ROOT / "scenarios" / "safe_backend_faults.toml")
RUNNER = f"{ROOT / 'tests' / 'runners' / 'correct.py'}:run"
"""A correct runner of one's own, by its path (importable from a clean checkout)."""
OVERHEAD_TARGET = 1.25
LOCAL_TARGET = 1.7
DASK_TARGET = 1.5


def timed(trial: Any, config: Any, seeds: range, **spread: Any) -> tuple[float, float, list[Any]]:
    """(steady trials per second, seconds to the first chunk, outcomes) for one way of running."""
    started = time.perf_counter()
    first = None
    outcomes = []
    for _, outcome in run_trials(trial, config, seeds, **spread):
        outcomes.append(outcome)
        if len(outcomes) == DEFAULT_CHUNK_SIZE:
            first = time.perf_counter()
    ended = time.perf_counter()
    if not spread:  # in process: nothing to start, every trial counts
        return len(seeds) / (ended - started), 0.0, outcomes
    assert first is not None
    return (len(seeds) - DEFAULT_CHUNK_SIZE) / (ended - first), first - started, outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 trials, one repeat")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeats = 40, 1
    out = Report("bench_explore", "exploration throughput, local workers and Dask")
    config = make_config(SCENARIO, RUNNER, "asyncio")
    rates: dict[str, list[float]] = {"plain": [], "here": [], "local": [], "dask": []}
    startup: dict[str, list[float]] = {"local": [], "dask": []}
    same = []
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        list(run_trials(explore_trial, config, range(4), dask_address=address))  # imports
        for repeat in range(args.repeats):
            # Fresh seeds per repeat: no process starts a repeat with the previous one's
            # fault-free reference runs cached, and every way starts as cold as the others.
            seeds = range((repeat + 1) * args.trials, (repeat + 2) * args.trials)
            rates["plain"].append(timed(plain_trial, config, seeds)[0])
            rate, _, here = timed(explore_trial, config, seeds)
            rates["here"].append(rate)
            for name, spread in (("local", {"workers": 2}), ("dask", {"dask_address": address})):
                rate, start, there = timed(explore_trial, config, seeds, **spread)
                rates[name].append(rate)
                startup[name].append(start)
                same.append(there == here)
    return report(out, args, rates, startup, same)


def report(
    out: Report,
    args: argparse.Namespace,
    rates: dict[str, list[float]],
    startup: dict[str, list[float]],
    same: list[bool],
) -> int:
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    out.settings.update(
        trials=args.trials,
        repeats=args.repeats,
        scenario=Path(SCENARIO).name,
        runner=str(Path(RUNNER).relative_to(ROOT)),
        engine=ENGINE,
        chunk_size=DEFAULT_CHUNK_SIZE,
        cores=cores,
    )
    group = "explore"
    plain, here = rates["plain"], rates["here"]
    cost = [p / h for p, h in zip(plain, here, strict=True)]
    load_note = f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {cores} cores"
    out.add(group, "plain scenario runs, 1 process", "runs/s", plain)
    out.add(
        group,
        "exploration trials, 1 process (per core)",
        "trials/s",
        here,
        reference_name="plain runs",
        reference=plain,
        paired=cost,
        target=f"cost <= {OVERHEAD_TARGET}x" if ENGINE else None,
        met=statistics.median(cost) <= OVERHEAD_TARGET if ENGINE else None,
        cause="the oracles' own runs: the other loop on every 4th trial where invariance "
        "can fail, the reference under the same faults where verdicts can differ",
        note=None if ENGINE else "no explore engine: trials are plain runs",
    )
    for name, label, target in (
        ("local", "2 local workers", LOCAL_TARGET),
        ("dask", "Dask LocalCluster, 2 workers", DASK_TARGET),
    ):
        speedup = [r / h for r, h in zip(rates[name], here, strict=True)]
        out.add(
            group,
            f"exploration trials, {label}",
            "trials/s",
            rates[name],
            reference_name="1 process",
            reference=here,
            paired=speedup,
            target=f">= {target}x",
            met=statistics.median(speedup) >= target,
            cause=f"the 2 cores are shared ({load_note})",
        )
        out.add(group, f"start-up before the first chunk, {label}", "s", startup[name])
    out.add(
        group,
        "outcomes identical to 1 process (all ways, all repeats)",
        "bool",
        [float(all(same))],
        target="== 1",
        met=all(same),
        cause="a trial's outcome depended on where it ran",
    )
    out.note(load_note)
    print_figures(out)
    out.write(args.json)
    return 0 if not out.missed else 1


if __name__ == "__main__":
    sys.exit(main())
