"""Run dlm-sway's own unit tests against its dummy, then through swaysim's drop-in, and compare.

dlm-sway 0.1.0's test suite (from its sdist, fetched with pip into
``.cache/dlm-sway-suite/``, gitignored; never copied into this repository) runs
in the current environment, which must have dlm-sway 0.1.0 and swaysim
installed (``make .venv/.installed-dev`` does), in five ways:

- ``dummy``: as its maintainers run it, against dlm-sway's own dummy;
- ``switch-asyncio``, ``switch-trio``: ``pytest --swaysim-dlm-sway
  --swaysim-dlm-sway-loop LOOP``, the dummy replaced for the whole session;
- ``import-asyncio``, ``import-trio``: a copy of the tests whose imports of
  ``dlm_sway.backends.dummy`` import ``swaysim.dlm_sway`` instead (``from
  dlm_sway.backends.dummy import X`` and ``from dlm_sway.backends import dummy
  as m``), the drop-in's default loop set by ``dlm_sway_suite_loop.py``.

Every test that passes against the dummy must pass in each other way; one
that does not is a regression (exit 1). Run::

    .venv/bin/python tests/dlm_sway_suite/run_dlm_sway_suite.py   # or: make dlm-sway-suite
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

DLM_SWAY_VERSION: Final = "0.1.0"
REPO: Final = Path(__file__).resolve().parents[2]
HERE: Final = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the shared sdist helper

from sdists import fetch_sdist  # noqa: E402

IMPORTS: Final = (
    (
        re.compile(r"^(\s*)from dlm_sway\.backends\.dummy import ", re.M),
        r"\1from swaysim.dlm_sway import ",
    ),
    (
        re.compile(r"^(\s*)from dlm_sway\.backends import dummy as ", re.M),
        r"\1import swaysim.dlm_sway as ",
    ),
)


def log(message: str) -> None:
    print(message, flush=True)


def rewritten_copy(root: Path, cache: Path) -> tuple[Path, int]:
    """A copy of the sdist whose tests import the drop-in directly; how many imports changed."""
    copy = cache / "direct-import"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(root, copy)
    changed = 0
    for path in sorted((copy / "tests").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, replacement in IMPORTS:
            text, count = pattern.subn(replacement, text)
            changed += count
        path.write_text(text, encoding="utf-8")
    return copy, changed


def run_tests(root: Path, report: Path, extra: list[str], env: dict[str, str]) -> dict[str, str]:
    """dlm-sway's unit tests under ``root``; outcome per test id (passed, failed, skipped)."""
    command = [sys.executable, "-m", "pytest", "tests/unit", f"--rootdir={root}"]
    command += [f"-c={root / 'pyproject.toml'}", "-p", "no:cacheprovider", "-q", "-p", "no:xdist"]
    command += ["--tb=line", f"--junitxml={report}", *extra]
    subprocess.run(command, cwd=root, env=env, check=False, capture_output=True)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        outcomes[name] = outcome
    return outcomes


def count(outcomes: dict[str, str], outcome: str) -> int:
    return sum(1 for value in outcomes.values() if value == outcome)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "dlm-sway-suite")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    root = fetch_sdist(sys.executable, "dlm-sway", DLM_SWAY_VERSION, args.cache, log)
    direct, changed = rewritten_copy(root, args.cache)
    log(f"direct-import copy: {changed} imports of dlm_sway.backends.dummy now swaysim.dlm_sway")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    ways: list[tuple[str, Path, list[str], dict[str, str]]] = [("dummy", root, [], env)]
    for loop in ("asyncio", "trio"):
        switch = ["--swaysim-dlm-sway", "--swaysim-dlm-sway-loop", loop]
        ways.append((f"switch-{loop}", root, switch, env))
        direct_env = {**env, "SWAYSIM_DLM_SWAY_SUITE_LOOP": loop}
        ways.append((f"import-{loop}", direct, ["-p", "dlm_sway_suite_loop"], direct_env))
    results: dict[str, dict[str, str]] = {}
    for name, where, extra, environment in ways:
        started = time.perf_counter()
        outcomes = run_tests(where, args.cache / f"{name}.xml", extra, environment)
        results[name] = outcomes
        log(
            f"{name:15} {count(outcomes, 'passed'):4} passed {count(outcomes, 'failed'):3} failed "
            f"{count(outcomes, 'skipped'):3} skipped  ({time.perf_counter() - started:.1f} s)"
        )
    baseline = {test for test, outcome in results["dummy"].items() if outcome == "passed"}
    regressions = 0
    for name, outcomes in results.items():
        lost = sorted(test for test in baseline if outcomes.get(test) != "passed")
        regressions += len(lost)
        for test in lost:
            log(f"REGRESSION ({name}): {test} passes against dlm-sway's dummy, not here")
    log(f"{len(baseline)} pass against dlm-sway's dummy; {regressions} regressions")
    return 1 if regressions or not baseline else 0


if __name__ == "__main__":
    sys.exit(main())
