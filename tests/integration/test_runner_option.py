"""The runner under test as an input: ``swaysim run --runner`` and pytest's ``--swaysim-runner``.

A bad spec is invalid input (exit 2, a usage error); a scenario that applies only to the
runner it configures is a SKIP row or a skipped item, never a pass; a failure's replay
command names the runner.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from swaysim._cli.main import cli

if TYPE_CHECKING:
    from pathlib import Path

pytest_plugins = ["pytester"]

PLUGIN_ARGS = ("-p", "no:looptime_plugin", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
SCENARIO = """\
description = "does it pass?"
seed = 4
[backend.latency]
default = { model = "constant", seconds = 0.25 }
view_switch = { model = "constant", seconds = 1.0 }
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["a", "b"]
[expect]
verdicts = { dkl = "PASS" }
view_switches = { at_most = 4 }
[expect.reference]
view_switches = 3
"""
REFERENCE_ONLY = SCENARIO.replace(
    "[[probes]]", '[runner]\nreference_only = "it tests run_suite itself"\n[[probes]]', 1
)
RUNNERS = """\
from swaysim import run_suite


async def run(backend, probes, **options):
    return list((await run_suite(backend, probes, **options)).results)


async def extra_swap(backend, probes, **options):
    async with backend.as_finetuned():
        pass
    return await run(backend, probes, **options)


async def swap_storm(backend, probes, **options):
    for _ in range(3):
        async with backend.as_finetuned():
            pass
        async with backend.as_base():
            pass
    return await run(backend, probes, **options)
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "any.toml").write_text(SCENARIO)
    (tmp_path / "scenarios" / "reference_only.toml").write_text(REFERENCE_ONLY)
    (tmp_path / "my_runners.py").write_text(RUNNERS)
    return tmp_path


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.startswith(("any ", "reference"))]


def test_a_runner_under_test_passes_and_the_reference_only_scenario_is_a_skip_row(
    folder: Path,
) -> None:
    runner = f"{folder}/my_runners.py:extra_swap"
    out = folder / "out.json"
    junit = folder / "junit.xml"
    result = invoke(
        "run", str(folder / "scenarios"), "--runner", runner, "--json", str(out), "--junit",
        str(junit),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [(r[0], r[1], r[-1]) for r in rows(result.stdout)] == [
        ("any", "asyncio", "ok"),
        ("any", "trio", "ok"),
        ("reference_only", "asyncio", "SKIP"),
        ("reference_only", "trio", "SKIP"),
    ]
    assert (
        "SKIP reference_only: skipped for this runner, because it tests run_suite itself"
        in result.stdout
    )
    assert f"runner under test: {runner}" in result.stdout
    assert "2 scenarios x 2 loops: 2 passed, 2 skipped for this runner, all expectations hold" in (
        result.stdout
    )
    document = json.loads(out.read_text())
    assert document["runner"] == runner
    statuses = [(c["name"], c["loop"], c["status"]) for c in document["checks"]]
    assert statuses == [
        ("any", "asyncio", "ok"),
        ("any", "trio", "ok"),
        ("reference_only", "asyncio", "skipped"),
        ("reference_only", "trio", "skipped"),
    ]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == ("4", "2", "0")


def test_a_failure_replays_with_its_runner_in_a_fresh_process(folder: Path) -> None:
    # The replay must work from the folder the user ran in: run there, in a process of its own.
    completed = subprocess.run(
        [sys.executable, "-m", "swaysim", "run", "scenarios/any.toml", "--backend", "trio",
         "--runner", "my_runners.py:swap_storm"],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.splitlines()
    assert "  expect.view_switches: expected at most 4, observed 8" in lines
    assert "  runner: my_runners.py:swap_storm" in lines
    replay = next(line for line in lines if line.startswith("  replay: ")).removeprefix(
        "  replay: "
    )
    assert replay == (
        "swaysim run scenarios/any.toml --backend trio --seed 4 --runner my_runners.py:swap_storm"
    )
    again = subprocess.run(
        [sys.executable, "-m", "swaysim", *shlex.split(replay)[1:]],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "  expect.view_switches: expected at most 4, observed 8" in again.stdout.splitlines()


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("my_runners.py:nope", "has no attribute 'nope'"),
        ("no_module_of_that_name:run", "cannot import 'no_module_of_that_name'"),
        ("not a spec", "must look like package.module:function or path/to/file.py:function"),
    ],
)
def test_a_bad_runner_spec_is_invalid_input(folder: Path, spec: str, reason: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "swaysim", "run", "scenarios/any.toml", "--runner", spec],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"swaysim: --runner: runner {spec!r}: ")
    assert reason in completed.stderr
    assert completed.stdout == ""


# -- pytest ---------------------------------------------------------------------------------


def make(pytester: pytest.Pytester, ini: str = "") -> None:
    pytester.makeini(f"[pytest]\nfilterwarnings = error\n{ini}")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "any.toml").write_text(SCENARIO)
    (pytester.path / "scenarios" / "reference_only.toml").write_text(REFERENCE_ONLY)
    (pytester.path / "my_runners.py").write_text(RUNNERS)


def test_the_pytest_option_runs_every_item_against_the_runner(pytester: pytest.Pytester) -> None:
    make(pytester)
    result = pytester.runpytest(*PLUGIN_ARGS, "--swaysim-runner", "my_runners.py:swap_storm", "-rs")
    result.assert_outcomes(failed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*expect.view_switches: expected at most 4, observed 8",
            "*replay: swaysim run scenarios/any.toml --backend asyncio --seed 4 "
            "--runner my_runners.py:swap_storm",
            "*skipped for this runner, because it tests run_suite itself",
        ]
    )


def test_the_ini_option_names_the_runner_relative_to_the_ini_file(
    pytester: pytest.Pytester,
) -> None:
    make(pytester, "swaysim_runner = my_runners.py:extra_swap\n")
    pytester.makepyfile(
        test_fixture="""
        from swaysim import run_suite

        def test_the_fixture_is_the_runner_under_test(swaysim_runner):
            assert swaysim_runner.__name__ == "extra_swap"
            assert swaysim_runner is not run_suite
        """
    )
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=3, skipped=2)


def test_without_a_runner_the_fixture_is_the_reference_runner(pytester: pytest.Pytester) -> None:
    make(pytester)
    pytester.makepyfile(
        test_fixture="""
        from swaysim import run_suite

        def test_reference(swaysim_runner):
            assert swaysim_runner is run_suite
        """
    )
    pytester.runpytest(*PLUGIN_ARGS).assert_outcomes(passed=5)


def test_a_bad_pytest_runner_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make(pytester)
    result = pytester.runpytest(*PLUGIN_ARGS, "--swaysim-runner", "my_runners.py:nope")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR or result.ret != 0
    assert "--swaysim-runner: runner 'my_runners.py:nope': " in result.stdout.str() + (
        result.stderr.str()
    )
