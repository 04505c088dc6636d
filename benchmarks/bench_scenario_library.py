"""Wall time of the whole scenario library on both event loops (target: under 60 s).

Run: ``.venv/bin/python benchmarks/bench_scenario_library.py`` (``--rounds N`` to repeat,
``--quick`` for one round, ``--json PATH`` for run_all.py).

Every scenario in ``scenarios/`` runs on asyncio and trio on the virtual clock,
exactly as ``swaysim run scenarios/`` does, and its expectations are checked.
The table reports, per scenario, the virtual seconds it simulates and the best
wall seconds per loop over the rounds; the total is the best round's sum. The
script exits 1 when any expectation fails or the total is 60 s or more.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _harness import Report, add_json_argument, print_figures
from swaysim._time.clock import LOOPS
from swaysim.scenario import check_scenario, discover_scenarios, load_scenario

TARGET_SECONDS = 60.0
LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    scenarios = [load_scenario(path) for path in discover_scenarios([LIBRARY])]
    best: dict[tuple[str, str], float] = {}
    virtual: dict[str, float] = {}
    totals = []
    per_loop: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    failed = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for loop in LOOPS:
            per_loop[loop].append(0.0)
        for scenario in scenarios:
            for check in check_scenario(scenario, LOOPS):
                key = (scenario.name, check.loop)
                best[key] = min(best.get(key, float("inf")), check.run.wall_seconds)
                per_loop[check.loop][-1] += check.run.wall_seconds
                virtual[scenario.name] = check.run.makespan
                if not check.ok:
                    failed.append(check.failure_report())
        totals.append(time.perf_counter() - started)
    print(f"{'scenario':38} {'probes':>6} {'virtual s':>10} {'wall asyncio':>13} {'wall trio':>10}")
    for scenario in scenarios:
        name = scenario.name
        print(
            f"{name:38} {len(scenario.probe_plan):6d} {virtual[name]:10.3f} "
            f"{best[(name, 'asyncio')]:13.3f} {best[(name, 'trio')]:10.3f}"
        )
    total = min(totals)
    simulated = sum(virtual.values()) * len(LOOPS)
    print(
        f"\n{len(scenarios)} scenarios x {len(LOOPS)} loops: {simulated:.1f} virtual s in "
        f"{total:.2f} wall s (best of {args.rounds}; target < {TARGET_SECONDS:.0f} s)"
    )
    for report in dict.fromkeys(failed):
        print(report, file=sys.stderr)
    out = Report("bench_scenario_library", "the scenario library on both loops")
    out.settings.update(rounds=args.rounds, scenarios=len(scenarios), loops=list(LOOPS))
    group = "scenario library"
    out.add(
        group,
        f"{len(scenarios)} scenarios x {len(LOOPS)} loops, expectations checked: wall time",
        "s",
        totals,
        target=f"< {TARGET_SECONDS:.0f} s",
        met=max(totals) < TARGET_SECONDS and not failed,
        cause="; ".join(dict.fromkeys(failed)) or "the library took too long",
        note=f"{simulated:.1f} virtual seconds simulated per round",
    )
    for loop, walls in per_loop.items():
        out.add(group, f"scenario runs on {loop} alone (sum of run wall times)", "s", walls)
    out.add(
        group,
        "expectations that failed",
        "failures",
        [len(dict.fromkeys(failed))],
        target="== 0",
        met=not failed,
        cause="; ".join(dict.fromkeys(failed)),
    )
    print_figures(out)
    out.write(args.json)
    return 0 if total < TARGET_SECONDS and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
