"""Issue 13, classes 1 and 3 under pytest: a hostile scenario in ``scenarios/`` is one
collection error, and collecting never imports a scenario's runner (running does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

pytest_plugins = ["pytester"]

PLUGIN_ARGS = ("-p", "no:looptime_plugin", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")

HOSTILE = (
    'description = "hostile"\n'
    + "".join(
        f'[[probes]]\nkind = "perplexity_shift"\nname = "p{n}"\nrepeat = 100000\ntexts = ["a"]\n'
        for n in range(30)
    )
    + "[expect]\ngate_free = true\n"
)

WITH_RUNNER = """\
description = "whose runner runs?"
[[probes]]
kind = "delta_kl"
name = "d"
prompts = ["a"]
[runner]
runner = "my_runner:run"
[expect]
verdicts = { d = "PASS" }
"""

RUNNER = """\
import pathlib

from swaysim import run_suite

with pathlib.Path(__file__).with_name("imports.log").open("a") as log:
    log.write("imported\\n")


async def run(backend, probes, **options):
    return await run_suite(backend, probes, **options)
"""


def test_a_hostile_file_in_scenarios_is_one_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "huge.toml").write_text(HOSTILE)
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--collect-only", timeout=60)
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "scenarios/huge.toml: probes[0].repeat: the suite would make 3,000,000 probes" in text
    assert "MemoryError" not in text
    assert "Traceback" not in text


def test_collection_never_imports_a_runner_and_running_does(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    folder = pytester.path / "scenarios"
    folder.mkdir()
    (folder / "s.toml").write_text(WITH_RUNNER)
    (folder / "my_runner.py").write_text(RUNNER)
    log = folder / "imports.log"
    collected = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--collect-only", "-q", timeout=60)
    assert "s.toml::asyncio" in collected.stdout.str()
    assert not log.exists()
    ran = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-q", timeout=120)
    ran.assert_outcomes(passed=2)
    assert log.read_text() == "imported\n"  # once, under the folder's private package


def test_a_runner_from_sys_path_needs_the_ini_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "s.toml").write_text(
        WITH_RUNNER.replace("my_runner:run", "os:system")
    )
    refused = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--collect-only", timeout=60)
    refused.assert_outcomes(errors=1)
    assert "runner.runner: no module named 'os' in the scenario's folder" in refused.stdout.str()
    pytester.makeini("[pytest]\nswaysim_allow_sys_path_runners = true\n")
    allowed = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--collect-only", "-q", timeout=60)
    # Found on sys.path now; its options are checked at run time (os.system is no runner).
    assert "s.toml::asyncio" in allowed.stdout.str()
