"""Run anyio's own asyncio tests natively, then on swaysim's virtual loop, and compare.

A test nobody here wrote: every anyio test whose event loop is plain asyncio
(about 1,100 in anyio 4.16.0) runs once natively; those that pass run again, natively
and then with every asyncio loop anyio starts replaced by
:class:`swaysim.VirtualClockEventLoop` (debug mode kept), and every test that passes
in the second native run must pass on the virtual loop. A virtual
failure is retried (twice, alternating with a native run) and reported as flaky
if a retry passes; one that never passes is a regression. Tests that took longer
on the virtual loop than natively are measured again, alternating, and compared
by their fastest run.

Everything lives under ``.cache/anyio-suite/`` (gitignored): a virtualenv with
anyio's test dependencies and this checkout of swaysim (editable), and anyio's
sdist, fetched from the package index with pip. First run: about a minute to
set up. Then::

    .venv/bin/python tests/anyio_suite/run_anyio_suite.py            # the full suite
    .venv/bin/python tests/anyio_suite/run_anyio_suite.py --subset   # the known-hard few

Exits 1 on a regression, or on a test more than ``--slower-limit`` seconds
slower on the virtual loop (after re-measuring); 0 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ANYIO_VERSION: Final = "4.16.0"
# anyio's "test" dependency group (uvloop left out: its tests are not selected).
REQUIREMENTS: Final = (
    f"anyio[trio]=={ANYIO_VERSION}",
    "blockbuster==1.5.29",
    "hypothesis",
    "psutil",
    "pytest",
    "pytest-mock==3.17.0",
    "pytest-timeout",
    "trustme==1.2.1",
    "truststore==0.10.5",
)
REPO: Final = Path(__file__).resolve().parents[2]
HERE: Final = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the shared sdist helper

from sdists import fetch_sdist  # noqa: E402

# Where virtual time used to lie (threads, worker processes, subprocesses, portals, TLS).
SUBSET: Final = (
    "tests/test_to_process.py",
    "tests/test_subprocesses.py::test_wait_returns_on_process_exit_with_open_stdout",
    "tests/test_subprocesses.py::test_close_with_stdout_blocked_subprocess",
    "tests/test_subprocesses.py::test_run_process",
    "tests/test_to_thread.py::test_cancel_wait_on_thread",
    "tests/test_from_thread.py::test_thread_cancelled_and_abandoned",
    "tests/test_from_thread.py::TestBlockingPortal::test_aexit_without_exception",
    "tests/test_from_thread.py::TestBlockingPortal::test_start_task_soon_cancel_later",
    "tests/test_from_thread.py::TestBlockingPortal::test_start_task_soon_cancel_immediately",
    "tests/test_from_thread.py::TestBlockingPortal::test_start_task_soon_cancel_after_stop",
    "tests/streams/test_tls.py::TestTLSListener::test_extra_attributes",
)
RETRIES: Final = 2
REMEASURES: Final = 3
SLOWER_NOTE: Final = 0.005
"""Report tests more than this many seconds slower on the virtual loop."""


@dataclass
class Outcome:
    outcome: str
    seconds: float
    reason: str = ""


Results = dict[str, Outcome]


def log(message: str) -> None:
    print(message, flush=True)


def ensure_environment(cache: Path) -> Path:
    """The suite's virtualenv (made once per requirements), with swaysim installed editable."""
    venv = cache / "venv"
    python = venv / "bin" / "python"
    wanted = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()
    marker = venv / ".swaysim-requirements"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    log(f"setting up {venv} (anyio {ANYIO_VERSION} and its test dependencies)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(REPO / "constraints.txt"), *REQUIREMENTS], check=True)
    subprocess.run([*pip, "-c", str(REPO / "constraints.txt"), "-e", str(REPO)], check=True)
    marker.write_text(wanted)
    return python


def run_suite(python: Path, root: Path, clock: str, work: Path, targets: list[str]) -> Results:
    """One pytest run of anyio's tests (or of ``targets``, files or node ids) on ``clock``."""
    report = work / f"{clock}-{time.monotonic_ns()}.json"
    # Paths among the options would make pytest look for its configuration above them.
    command = [str(python), "-m", "pytest", f"--rootdir={root}", f"-c={root / 'pyproject.toml'}"]
    command += ["-p", "anyio_suite_plugin", "-p", "no:swaysim", "-p", "no:cacheprovider"]
    command += ["-q", "--tb=line", "-rN", f"--swaysim-clock={clock}", f"--swaysim-report={report}"]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("SWAYSIM_LONG", None)
    completed = subprocess.run(
        [*command, *sorted(targets)], cwd=root, env=env, capture_output=True, text=True
    )
    if not report.exists():
        sys.stdout.write(completed.stdout[-5000:] + completed.stderr[-5000:])
        raise SystemExit(f"anyio's tests did not run on the {clock} loop")
    raw = json.loads(report.read_text())
    return {
        node: Outcome(r["outcome"], r["seconds"], r.get("reason", "")) for node, r in raw.items()
    }


def passed(results: Results) -> set[str]:
    return {node for node, result in results.items() if result.outcome == "passed"}


def summary(label: str, results: Results) -> str:
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    parts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    total = sum(result.seconds for result in results.values())
    return f"{label}: {len(results)} tests: {parts} ({total:.1f} s in tests)"


def retry_failures(
    python: Path, root: Path, work: Path, failures: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """Retry virtual failures, alternating with native runs: (regressions, flaky, native_flaky).

    Flaky: passed on a virtual retry. Native-flaky: never passed again on either loop
    (the machine, not the clock). Regression: never passed on the virtual loop again
    while passing natively.
    """
    still = set(failures)
    native_again: set[str] = set()
    for _ in range(RETRIES):
        if not still:
            break
        native_again |= passed(run_suite(python, root, "native", work, list(still)))
        still -= passed(run_suite(python, root, "virtual", work, list(still)))
    return sorted(still & native_again), sorted(failures - still), sorted(still - native_again)


def remeasure(
    python: Path, root: Path, work: Path, slower: set[str]
) -> list[tuple[float, str, float, float]]:
    """(virtual - native, node, native, virtual), fastest of alternating runs, slowest first."""
    fastest: dict[tuple[str, str], float] = {}
    for _ in range(REMEASURES):
        for clock in ("native", "virtual"):
            for node, result in run_suite(python, root, clock, work, list(slower)).items():
                key = (clock, node)
                fastest[key] = min(fastest.get(key, result.seconds), result.seconds)
    rows = []
    for node in slower:
        native, virtual = fastest.get(("native", node)), fastest.get(("virtual", node))
        if native is not None and virtual is not None:
            rows.append((virtual - native, node, native, virtual))
    return sorted(rows, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", action="store_true", help="only the known-hard tests")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "anyio-suite")
    parser.add_argument("--slower-limit", type=float, default=0.5, metavar="SECONDS")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    python = ensure_environment(args.cache)
    root = fetch_sdist(python, "anyio", ANYIO_VERSION, args.cache, log)
    work = args.cache / "runs"
    work.mkdir(exist_ok=True)
    targets = list(SUBSET) if args.subset else []

    everything = run_suite(python, root, "native", work, targets)
    log(summary("native", everything))
    # Some tests pass only after others that fail here (session-scoped TLS contexts that
    # tests modify): compare both clocks on the same selection, the native passes.
    selection = list(passed(everything))
    native = run_suite(python, root, "native", work, selection)
    log(summary("native, the native passes again", native))
    baseline = passed(native)
    virtual = run_suite(python, root, "virtual", work, selection)
    log(summary("virtual, the native passes", virtual))
    regressions, flaky, native_flaky = retry_failures(
        python, root, work, baseline - passed(virtual)
    )
    for node in flaky:
        log(f"flaky: {node} failed on the virtual loop, then passed on a retry")
        log(f"    {virtual[node].reason}")
    for node in native_flaky:
        log(f"flaky natively: {node} failed again on both loops")
    for node in regressions:
        log(f"REGRESSION: {node} passes natively, fails on the virtual loop")
        log(f"    {virtual[node].reason}")

    slower = {
        node
        for node in baseline & passed(virtual)
        if virtual[node].seconds - native[node].seconds > SLOWER_NOTE
    }
    rows = remeasure(python, root, work, slower) if slower else []
    too_slow = [row for row in rows if row[0] > args.slower_limit]
    log(
        f"{len(slower)} of {len(baseline)} took over {SLOWER_NOTE * 1000:.0f} ms longer on the "
        f"virtual loop in one run; fastest of {REMEASURES} alternating runs:"
    )
    for difference, node, native_s, virtual_s in rows:
        if difference > SLOWER_NOTE:
            log(f"  {difference * 1000:+8.1f} ms  {node} ({native_s:.3f} s -> {virtual_s:.3f} s)")
    log(
        f"{len(baseline)} native passes; {len(baseline) - len(regressions)} pass on the virtual "
        f"loop ({len(flaky)} after a retry, {len(native_flaky)} failed natively on retry too); "
        f"{len(regressions)} regressions; "
        f"{len(too_slow)} more than {args.slower_limit} s slower"
    )
    return 1 if regressions or too_slow else 0


if __name__ == "__main__":
    sys.exit(main())
