"""What every benchmark script shares: repeats, median/min/max, machine facts, JSON output.

A script collects its figures in a :class:`Report` and, given ``--json PATH``,
writes them there; ``benchmarks/run_all.py`` runs every script that way and
renders ``benchmarks/RESULTS.md`` from the files. One figure is one measured
quantity (median/min/max over the repeats of this run) compared with one
reference measured in the same run, with its target and whether it was met.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "swaysim",
    "numpy",
    "anyio",
    "trio",
    "sniffio",
    "dlm-sway",
    "looptime",
    "psutil",
    "distributed",
)
Compare = Literal["ratio", "difference"]


@dataclass(frozen=True)
class Spread:
    """Median, min and max of one quantity over the repeats of a run."""

    median: float
    min: float
    max: float
    repeats: int

    @classmethod
    def of(cls, samples: Iterable[float]) -> Spread:
        values = [float(value) for value in samples]
        if not values:
            raise ValueError("a figure needs at least one sample")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Figure:
    """One row of RESULTS.md: a measured value against a reference from the same run.

    ``comparison`` is the ratio (or difference) computed per repeat when the
    value and the reference were measured in pairs, otherwise from the
    medians. ``met`` is None for a figure reported without a target.
    """

    group: str
    name: str
    unit: str
    value: Spread
    reference_name: str | None = None
    reference: Spread | None = None
    compare: Compare = "ratio"
    comparison: Spread | None = None
    target: str | None = None
    met: bool | None = None
    cause: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.to_dict() if isinstance(value, Spread) else value
        return out


@dataclass
class Report:
    """The figures and notes of one benchmark script's run."""

    bench: str
    title: str
    settings: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def add(
        self,
        group: str,
        name: str,
        unit: str,
        samples: Sequence[float],
        *,
        reference_name: str | None = None,
        reference: Sequence[float] | None = None,
        compare: Compare = "ratio",
        paired: Sequence[float] | None = None,
        target: str | None = None,
        met: bool | None = None,
        cause: str | None = None,
        note: str | None = None,
    ) -> Figure:
        """Record a figure; ``paired`` holds the per-repeat comparison when there is one."""
        value = Spread.of(samples)
        ref = Spread.of(reference) if reference is not None else None
        comparison: Spread | None = None
        if paired is not None:
            comparison = Spread.of(paired)
        elif ref is not None:
            single = value.median / ref.median if compare == "ratio" else value.median - ref.median
            comparison = Spread(single, single, single, 1)
        figure = Figure(
            group=group,
            name=name,
            unit=unit,
            value=value,
            reference_name=reference_name,
            reference=ref,
            compare=compare,
            comparison=comparison,
            target=target,
            met=met,
            cause=cause if met is False else None,
            note=note,
        )
        self.figures.append(figure)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def missed(self) -> list[Figure]:
        return [figure for figure in self.figures if figure.met is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "title": self.title,
            "settings": self.settings,
            "wall_seconds": time.perf_counter() - self.started,
            "load_before": list(self.load_before),
            "load_after": list(os.getloadavg()),
            "machine": machine_facts(),
            "figures": [figure.to_dict() for figure in self.figures],
            "notes": self.notes,
        }

    def write(self, path: str | os.PathLike[str] | None) -> None:
        """Write the report as JSON to ``path`` (nothing when None)."""
        if path is None:
            return
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the figures as JSON (benchmarks/run_all.py reads it)",
    )


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return round(psutil.virtual_memory().total / 2**30, 1)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine_facts() -> dict[str, Any]:
    """The machine, OS, Python and package versions a figure was measured with."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {package: version(package) for package in PACKAGES},
        "commit": None if commit is None else commit + (" (modified tree)" if dirty else ""),
        "load_average": list(os.getloadavg()),
    }


def fmt(value: float) -> str:
    """A number with three significant digits, plainly (no exponent for usual sizes)."""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def print_figures(report: Report) -> None:
    """The figures as one compact table on stdout (median [min..max] over repeats)."""
    print(f"\nfigures (median [min..max] over repeats): {report.title}")
    for figure in report.figures:
        value = figure.value
        line = (
            f"  {figure.group} | {figure.name}: {fmt(value.median)} "
            f"[{fmt(value.min)}..{fmt(value.max)}] {figure.unit} (n={value.repeats})"
        )
        if figure.comparison is not None:
            sign = "x" if figure.compare == "ratio" else f" {figure.unit}"
            line += f"; vs {figure.reference_name}: {fmt(figure.comparison.median)}{sign}"
        if figure.target is not None:
            line += f"; target {figure.target}: " + ("met" if figure.met else "MISSED")
        print(line)
    sys.stdout.flush()


BEFORE_ISSUE_18 = "9cc1b00"
"""main before issue 18 (hand-offs and tracing at their floor): bench_handoff and
bench_trace measure its code too, in the same run, for their before/after rows."""


def source_at(commit: str, scratch: Path) -> Path | None:
    """``src/`` of ``commit``, extracted under ``scratch``; None without git or the commit."""
    target = scratch / f"src-{commit}"
    if (target / "src" / "swaysim").is_dir():
        return target / "src"
    target.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(
            ["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return target / "src" if (target / "src" / "swaysim").is_dir() else None


def run_with_source(script: Path, source: Path, args: Sequence[str]) -> Any:
    """Run ``script args`` with ``source`` first on sys.path; returns its last line's JSON."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
