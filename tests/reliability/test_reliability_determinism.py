"""Determinism: a fault-heavy scenario's results JSON is byte-identical everywhere.

The same suite, run in two processes whose ``PYTHONHASHSEED`` differ, on asyncio and
trio, at concurrency 1 and 32, with and without schedule jitter, must produce the
same bytes: ``SuiteResult.to_dict(include_timing=False)`` plus every fault firing
and the per-rule counts, as canonical JSON. And the scenario library run by pytest
across xdist worker processes (``pytest scenarios/ -n 2``) reports exactly what it
reports in one process: by default the scenarios whose schedules contend (tasks queueing
for a limiter, a gate or a device, faults drawn by probability, a cancellation, function
probes), the whole library with ``--swaysim-long`` (or ``SWAYSIM_LONG=1``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from swaysim._pytest.scenarios import results_digest
from swaysim._time.clock import LOOPS
from swaysim.scenario import check_scenario, discover_scenarios, load_scenario
from sweeps import is_long

if TYPE_CHECKING:
    import pytest

SCENARIOS = (
    "flaky_ft_view",  # transient faults by probability, retries with seeded backoff
    "corrupt_distributions",  # five output-corrupting fault kinds
    "nan_in_null_view_only",  # NaN nulls: calibration fails, dependants fail
    "hang_under_timeout",  # a hang cut off by op_timeout
    "retries_exhausted",  # a retry budget spent
)
ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"
CONTENDED = (
    "cancellation_mid_suite",  # cancelled mid-run, 8 tasks in flight
    "flaky_ft_view",  # faults by probability, 4 workers backing off
    "function_probes",  # function probes, a hang cut off by probe_timeout
    "retries_exhausted",  # 2 workers backing off around one device
    "safe_backend_capped_views",  # views queueing for 2 slots
    "safe_backend_faults",  # 36 requests queueing for 8 slots, reordered answers
    "strict_exclusivity_high_concurrency",  # 16 tasks on one view
)
"""What the xdist comparison runs by default: where a schedule could differ between
processes (the rest of the library differs from these only in what it measures)."""

CHILD = textwrap.dedent(
    """
    import json, sys
    import swaysim
    from swaysim import run_suite
    from swaysim.scenario import load_scenario

    names, folder = json.loads(sys.argv[1])
    out = {"hash": hash("swaysim"), "documents": {}}
    for name in names:
        scenario = load_scenario(f"{folder}/{name}.toml", source=f"scenarios/{name}.toml")
        for loop in ("asyncio", "trio"):
            for concurrency in (1, 32):
                for jitter in (None, 7):
                    backend = scenario.build_backend(schedule_jitter=jitter)
                    probes = scenario.build_probes()
                    options = {**scenario.runner_options(), "concurrency": concurrency}

                    async def main():
                        return await run_suite(backend, probes, **options)

                    suite = swaysim.run(main, backend=loop)
                    document = {
                        "suite": suite.to_dict(include_timing=False),
                        "faults_fired": dict(backend.statistics().faults_fired),
                        "firings": sorted(
                            [f.rule_name, f.kind, f.op, f.view_id, f.prompt, f.call_index]
                            for f in backend.fault_log
                        ),
                    }
                    variant = f"{name}/{loop}/c{concurrency}/j{jitter}"
                    out["documents"][variant] = json.dumps(document, sort_keys=True)
    print(json.dumps(out))
    """
)


def run_children(hash_seeds: tuple[str, ...]) -> list[dict[str, object]]:
    argument = json.dumps([list(SCENARIOS), str(LIBRARY)])
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, argument],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in hash_seeds
    ]
    outputs = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, stderr
        outputs.append(json.loads(stdout))
    return outputs


def test_results_json_is_byte_identical_across_processes_loops_concurrency_and_jitter() -> None:
    first, second = run_children(("0", "4242"))
    # The two processes really did hash strings differently...
    assert first["hash"] != second["hash"]
    # ...and yet produced the same bytes for every variant of every scenario.
    assert first["documents"] == second["documents"]
    documents = first["documents"]
    assert isinstance(documents, dict)
    for name in SCENARIOS:
        variants = {key: text for key, text in documents.items() if key.startswith(f"{name}/")}
        assert len(variants) == 2 * 2 * 2
        reference = variants[f"{name}/asyncio/c1/jNone"]
        different = sorted(key for key, text in variants.items() if text != reference)
        assert not different, f"{name}: {different} differ from asyncio/c1/jNone"
        # The document is not trivially empty: faults fired and probes were judged.
        parsed = json.loads(reference)
        assert parsed["firings"], name
        assert parsed["suite"]["results"], name


def test_the_library_under_xdist_reports_what_one_process_computes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    report = tmp_path / "parallel.xml"
    if is_long(request.config):
        paths = list(discover_scenarios([LIBRARY]))
    else:
        paths = [LIBRARY / f"{name}.toml" for name in CONTENDED]
    # The xdist run goes on in its own processes while this one computes the serial answer.
    parallel_run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *(f"scenarios/{path.name}" for path in paths),
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    serial = {}
    try:
        for path in paths:
            scenario = load_scenario(path, source=f"scenarios/{path.name}")
            for check in check_scenario(scenario, LOOPS):
                assert check.ok, check.failure_report()
                serial[check.replay] = {
                    "seed": str(check.run.seed),
                    "virtual_seconds": str(round(check.run.makespan, 6)),
                    "replay": check.replay,
                    "results": results_digest(check.run),
                }
        stdout, stderr = parallel_run.communicate(timeout=600)
    finally:
        if parallel_run.returncode is None:
            parallel_run.kill()
            parallel_run.communicate()
    assert parallel_run.returncode == 0, stdout + stderr
    assert "2 workers" in stdout
    parallel = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        parallel[properties["replay"]] = properties
    assert len(serial) == 2 * len(paths)
    assert parallel == serial
