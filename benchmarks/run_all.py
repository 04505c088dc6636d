"""Run every benchmark script and write benchmarks/RESULTS.md from their figures.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/run_all.py``; ``--quick``
for a smoke run of every script, ``--only NAME`` for some of them).

Each ``benchmarks/bench_*.py`` runs in its own process, one after another, with
``--json PATH``; its text output is shown as it runs and kept for the raw-output
section. RESULTS.md then gets the machine facts, a summary of every target, and
one table per figure group: median/min/max over the script's repeats, the
reference measured in the same run, the ratio (or difference) against it, the
target, whether it was met and, when missed, the cause the script states.

Exit status: 0 when every script ran and wrote its figures (missed targets are
reported, with their causes, not treated as a crash), 1 otherwise; with
``--strict``, also 1 when a target was missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import fmt, machine_facts

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PARTIAL = HERE / "_work" / "RESULTS-partial.md"
"""Where smoke and partial runs write (gitignored): only a full run may replace RESULTS.md."""

# Arguments for the full run. bench_scale streams the 1,000,000-op trace (and holds
# RSS flat while writing it), so bench_trace's streaming part is cut to 200,000 ops
# to keep `make bench` near seven minutes on two cores.
FULL_ARGS: dict[str, list[str]] = {
    "bench_trace.py": ["--ops", "200000"],
}
EXIT_OK = (0, 1)  # 1: the script ran but reports a missed target


def discover(only: list[str]) -> list[Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(name in s.stem for name in only)]
    return scripts


def run_script(script: Path, json_path: Path, quick: bool) -> tuple[int, str, float]:
    """Run one script, echoing its output; returns (exit status, output, wall seconds)."""
    args = ["--quick"] if quick else FULL_ARGS.get(script.name, [])
    command = [sys.executable, str(script), *args, "--json", str(json_path)]
    print(f"\n$ {' '.join([Path(sys.executable).name, script.name, *command[2:-2]])}", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    status = process.wait()
    return status, "".join(lines), time.perf_counter() - started


def unit_text(unit: str) -> str:
    return unit.replace("us", "µs") if unit.startswith("us") else unit


def comparison_text(figure: dict[str, Any]) -> str:
    comparison = figure["comparison"]
    if comparison is None:
        return ""
    if figure["compare"] == "ratio":
        value = f"{fmt(comparison['median'])}x"
        spread = f"{fmt(comparison['min'])}..{fmt(comparison['max'])}x"
    else:
        unit = unit_text(figure["unit"])
        value = f"{comparison['median']:+.3g} {unit}"
        spread = f"{comparison['min']:+.3g}..{comparison['max']:+.3g}"
    if comparison["repeats"] > 1:
        return f"{value} ({spread})"
    return value


def verdict_text(figure: dict[str, Any]) -> str:
    if figure["met"] is None:
        return ""
    return "met" if figure["met"] else "**missed**"


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def target_text(target: str | None) -> str:
    return (target or "").replace(" us", " µs")


def measured(figure: dict[str, Any]) -> str:
    if figure["comparison"] is not None:
        return comparison_text(figure)
    return f"{fmt(figure['value']['median'])} {unit_text(figure['unit'])}"


def badness(figure: dict[str, Any]) -> tuple[int, float]:
    """Sort key (largest is worst): missed first, then the furthest toward or past its target."""
    value = figure["comparison"] or figure["value"]
    text = figure["target"] or ""
    median = float(value["median"])
    lower_is_better = "<" in text
    return (0 if figure["met"] else 1, median if lower_is_better else -median)


def figure_table(figures: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| figure | median | min | max | n | reference (median) | vs reference | target | met |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for figure in figures:
        value = figure["value"]
        unit = unit_text(figure["unit"])
        reference = ""
        if figure["reference"] is not None:
            reference = f"{figure['reference_name']}: {fmt(figure['reference']['median'])} {unit}"
        elif figure["reference_name"]:
            reference = figure["reference_name"]
        name = figure["name"]
        if figure["note"]:
            name += f" <br><sub>{figure['note']}</sub>"
        lines.append(
            "| "
            + " | ".join(
                escape(cell)
                for cell in (
                    name,
                    f"{fmt(value['median'])} {unit}",
                    fmt(value["min"]),
                    fmt(value["max"]),
                    str(value["repeats"]),
                    reference,
                    comparison_text(figure),
                    target_text(figure["target"]),
                    verdict_text(figure),
                )
            )
            + " |"
        )
    return lines


def header_lines(facts: dict[str, Any], load_start: list[float], wall: float) -> list[str]:
    packages = facts["packages"]
    load = ", ".join(f"{x:.2f}" for x in load_start)
    rows = [
        ("CPU", f"{facts['cpu']} ({facts['cpus']} CPUs)"),
        ("memory", f"{facts['memory_gib']} GiB"),
        ("OS", facts["os"]),
        ("Python", facts["python"]),
        ("swaysim", f"{packages['swaysim']} (commit {facts['commit']})"),
        (
            "loops and numerics",
            f"anyio {packages['anyio']}, trio {packages['trio']}, sniffio "
            f"{packages['sniffio']}, numpy {packages['numpy']}",
        ),
        ("the seed", f"dlm-sway {packages['dlm-sway'] or 'not installed'} (from PyPI)"),
        (
            "also",
            f"looptime {packages['looptime'] or 'not installed'}, psutil {packages['psutil']}",
        ),
        ("load average at start (1, 5, 15 min)", load),
        ("total wall time", f"{wall:.0f} s"),
    ]
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {name} | {escape(str(value))} |" for name, value in rows]
    return lines


def render(
    reports: list[dict[str, Any]],
    outputs: dict[str, str],
    failures: list[str],
    load_start: list[float],
    wall: float,
    quick: bool,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = reports[0]["machine"] if reports else machine_facts()
    out = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`benchmarks/run_all.py`) on {now}; rerun it rather than "
        "editing this file. Every number below was measured in that one run on this machine; "
        "each ratio is against a reference measured in the same run (paired repeat by repeat "
        "where the range is shown). n is the number of repeats.",
        "",
    ]
    if quick:
        out += ["**`--quick` smoke run: too short to judge the targets.**", ""]
    out += ["## Machine", "", *header_lines(facts, load_start, wall), ""]

    targeted = [(r, f) for r in reports for f in r["figures"] if f["met"] is not None]
    missed = [(r, f) for r, f in targeted if not f["met"]]
    out += [
        "## Targets",
        "",
        f"{len(targeted) - len(missed)} of {len(targeted)} targets met"
        + (f"; {len(missed)} missed, each with its cause below." if missed else "."),
        "",
        "| benchmark | group | target | met | worst (least favourable) figure |",
        "| --- | --- | --- | --- | --- |",
    ]
    summary: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for report, figure in targeted:
        key = (report["bench"], figure["group"], figure["target"])
        summary.setdefault(key, []).append(figure)
    for (bench, group, target), figures in summary.items():
        met = sum(1 for figure in figures if figure["met"])
        worst = max(figures, key=badness)
        verdict = f"{met} of {len(figures)}" if len(figures) > 1 else verdict_text(worst)
        if met < len(figures) and len(figures) > 1:
            verdict = f"**{verdict}**"
        cells = (bench, group, target_text(target), verdict, f"{worst['name']}: {measured(worst)}")
        out.append("| " + " | ".join(escape(cell) for cell in cells) + " |")
    out.append("")
    if missed:
        out += ["### Missed targets and their causes", ""]
        for report, figure in missed:
            load = ", ".join(f"{x:.2f}" for x in report["load_before"])
            out.append(
                f"- **{report['bench']}**, {figure['group']}, {figure['name']}: measured "
                f"{measured(figure)}, target {target_text(figure['target'])}. Cause: "
                f"{target_text(figure['cause'] or 'not diagnosed by the script')} "
                f"(load average when the script started: {load})."
            )
        out.append("")
    if failures:
        out += ["## Scripts that did not finish", ""]
        out += [f"- {failure}" for failure in failures]
        out.append("")

    for report in reports:
        load_before = ", ".join(f"{x:.2f}" for x in report["load_before"])
        load_after = ", ".join(f"{x:.2f}" for x in report["load_after"])
        settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
        out += [
            f"## {report['title']} (`{report['bench']}.py`)",
            "",
            f"{report['wall_seconds']:.0f} s wall; load average {load_before} at start, "
            f"{load_after} at the end; settings: {settings}.",
            "",
        ]
        groups: dict[str, list[dict[str, Any]]] = {}
        for figure in report["figures"]:
            groups.setdefault(figure["group"], []).append(figure)
        for group, figures in groups.items():
            out += [f"### {group}", "", *figure_table(figures), ""]
        if report["notes"]:
            out += [f"- {note}" for note in report["notes"]]
            out.append("")

    out += [
        "## Raw output",
        "",
        "What each script printed, for the numbers the tables leave out.",
        "",
    ]
    for name, text in outputs.items():
        out += [
            f"<details><summary><code>{name}</code></summary>",
            "",
            "```text",
            text.rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run every script")
    parser.add_argument(
        "--only", action="append", default=[], help="run scripts whose name contains this"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where the results go (default: benchmarks/RESULTS.md for a full run of every "
        "script, benchmarks/_work/RESULTS-partial.md for --quick or --only, which never "
        "overwrite the tracked file)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    scripts = discover(args.only)
    if args.output is None:
        args.output = RESULTS if not (args.quick or args.only) else PARTIAL
    elif args.output.resolve() == RESULTS and (args.quick or args.only):
        parser.error(
            f"{RESULTS} is written only by a full run (no --quick, no --only); "
            "pass another --output"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not scripts:
        parser.error(f"no benchmark script matches {args.only}")
    load_start = list(os.getloadavg())
    load = ", ".join(f"{x:.2f}" for x in load_start)
    busy = " (above 1.0: other work is running, figures may be noisy)" if load_start[0] > 1 else ""
    print(f"{len(scripts)} benchmark scripts; load average {load}{busy}")
    reports: list[dict[str, Any]] = []
    outputs: dict[str, str] = {}
    failures: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="swaysim-bench-") as scratch:
        for script in scripts:
            json_path = Path(scratch) / f"{script.stem}.json"
            status, output, wall = run_script(script, json_path, args.quick)
            outputs[script.name] = output
            if status not in EXIT_OK or not json_path.exists():
                failures.append(f"`{script.name}` exited with status {status} after {wall:.0f} s")
                continue
            reports.append(json.loads(json_path.read_text(encoding="utf-8")))
    wall = time.perf_counter() - started
    args.output.write_text(
        render(reports, outputs, failures, load_start, wall, args.quick), encoding="utf-8"
    )
    missed = [
        f"{r['bench']}: {f['group']}: {f['name']}"
        for r in reports
        for f in r["figures"]
        if f["met"] is False
    ]
    print(f"\nwrote {args.output} in {wall:.0f} s")
    for line in missed:
        print(f"  target missed: {line}")
    for failure in failures:
        print(f"  did not finish: {failure}")
    if failures:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
