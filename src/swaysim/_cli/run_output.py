"""What ``swaysim run`` reports: the summary table and totals, ``--json`` and ``--junit``.

Names and messages from scenario files pass through
:func:`~swaysim._printable.printable` on their way to the terminal and into
the XML (which cannot hold control characters at all).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from swaysim._printable import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from swaysim._scenario.check import ScenarioCheck

__all__ = ["json_document", "junit_tree", "print_results", "summary_table"]


def _verdict_summary(check: ScenarioCheck) -> str:
    if check.ran is None:
        return "-"
    counts: dict[str, int] = {}
    for result in check.run.results:
        counts[result.verdict.value] = counts.get(result.verdict.value, 0) + 1
    summary = " ".join(f"{verdict} {count}" for verdict, count in counts.items())
    if check.run.cancelled:
        summary = f"{summary} (cancelled)" if summary else "cancelled"
    return summary or "-"


def _row(check: ScenarioCheck) -> tuple[str, str, str, Text]:
    """The expect, virtual s, wall s and result cells of one check."""
    if check.ran is None:
        return "-", "-", "-", Text("SKIP", style="yellow")
    outcomes = check.outcomes
    held = sum(1 for o in outcomes if o.status == "ok")
    checked = sum(1 for o in outcomes if o.status != "skipped")
    result = Text("ok", style="green") if check.ok else Text("FAILED", style="bold red")
    if check.ok and checked < len(outcomes):
        result = Text(f"ok ({len(outcomes) - checked} optional skipped)", style="green")
    run = check.run
    return f"{held}/{checked}", f"{run.makespan:.3f}", f"{run.wall_seconds:.3f}", result


def summary_table(checks: Sequence[ScenarioCheck]) -> Table:
    """One row per scenario and loop: verdicts, outcomes held, virtual and wall time.

    "expect" counts the outcomes that hold over those that count (an optional
    expectation that could not be checked does not; one that is not optional
    counts, and fails). A scenario skipped for the runner under test is a SKIP row.
    """
    table = Table(
        title="swaysim scenarios",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    longest = max((len(c.scenario.name) for c in checks), default=8)
    table.add_column("scenario", min_width=min(longest, 28), overflow="fold")
    table.add_column("loop", no_wrap=True)
    table.add_column("verdicts", min_width=8, overflow="fold")
    table.add_column("expect", justify="right", no_wrap=True)
    table.add_column("virtual s", justify="right", no_wrap=True)
    table.add_column("wall s", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for check in checks:
        table.add_row(
            Text(printable(check.scenario.name)),
            check.loop,
            Text(printable(_verdict_summary(check))),
            *_row(check),
        )
    return table


def print_results(
    console: Console, checks: Sequence[ScenarioCheck], scenarios: int, loops: int, wall: float
) -> None:
    """The summary table, every skip's reason and failure's report, and one line of totals."""
    console.print(summary_table(checks))
    failed = [c for c in checks if not c.ok]
    skipped = [c for c in checks if c.ran is None]
    for check in skipped:
        if check.loop == skipped[0].loop:
            line = printable(f"SKIP {check.scenario.name}: {check.skipped}")
            console.print(Text(line), soft_wrap=True)
    for check in failed:
        console.print()
        console.print(Text(printable(check.failure_report(), multiline=True)), soft_wrap=True)
    console.print()
    ran = [c for c in checks if c.ran is not None]
    passed = len(ran) - len(failed)
    verdict = "all expectations hold" if not failed else f"{len(failed)} FAILED"
    skips = f", {len(skipped)} skipped for this runner" if skipped else ""
    outside = next((c.run.runner for c in ran if not c.run.configured), None)
    if outside is None and skipped:
        outside = skipped[0].runner
    if outside is not None:
        console.print(Text(printable(f"runner under test: {outside}")))
    console.print(
        Text(
            f"{scenarios} scenario{'s' if scenarios != 1 else ''} x "
            f"{loops} loop{'s' if loops != 1 else ''}: {passed} passed{skips}, "
            f"{verdict}; {sum(c.run.makespan for c in ran):.2f} virtual s in {wall:.2f} wall s"
        )
    )


def json_document(
    checks: Sequence[ScenarioCheck],
    *,
    exit_code: int,
    loops: Sequence[str],
    seed: int | None,
    jitter: int | None,
    wall: float,
) -> dict[str, object]:
    """The ``--json`` document: the run's options, its outcome, and every check."""
    from swaysim import __version__

    return {
        "swaysim": __version__,
        "ok": all(c.ok for c in checks),
        "exit_code": exit_code,
        "runner": checks[0].runner if checks else None,
        "loops": list(loops),
        "seed": seed,
        "schedule_jitter": jitter,
        "wall_seconds": wall,
        "checks": [c.to_dict() for c in checks],
    }


def _junit_case(suite: ET.Element, check: ScenarioCheck) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=printable(f"scenarios.{check.scenario.name}"),
        name=check.loop,
        file=printable(check.scenario.source),
        time=f"{check.run.wall_seconds:.3f}" if check.ran is not None else "0.000",
    )
    if check.ran is None:
        ET.SubElement(case, "skipped", message=printable(check.skipped or "skipped"))
        return
    properties = ET.SubElement(case, "properties")
    for name, value in (
        ("seed", str(check.run.seed)),
        ("virtual_seconds", f"{check.run.makespan:.6f}"),
        ("replay", check.replay),
    ):
        ET.SubElement(properties, "property", name=name, value=printable(value))
    if not check.ok:
        count = len(check.failures)
        failure = ET.SubElement(
            case,
            "failure",
            type="ExpectationFailed",
            message=printable(
                f"{count} expectation{'s' if count > 1 else ''} failed: "
                + "; ".join(o.line() for o in check.failures)
            ),
        )
        failure.text = printable(check.failure_report(), multiline=True)


def junit_tree(checks: Sequence[ScenarioCheck], wall: float) -> ET.ElementTree[ET.Element]:
    """The ``--junit`` report: one test case per scenario and loop, indented."""
    failures = sum(1 for c in checks if not c.ok)
    skipped = sum(1 for c in checks if c.ran is None)
    suites = ET.Element(
        "testsuites", name="swaysim", tests=str(len(checks)), failures=str(failures)
    )
    suites.set("time", f"{wall:.3f}")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="swaysim scenarios",
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{sum(c.run.wall_seconds for c in checks if c.ran is not None):.3f}",
    )
    for check in checks:
        _junit_case(suite, check)
    tree: ET.ElementTree[ET.Element] = ET.ElementTree(suites)
    ET.indent(tree)
    return tree
