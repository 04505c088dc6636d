"""Class 3 of issue 13: a scenario's runner is code, imported only to run, from its own folder.

Loading and ``swaysim validate`` locate the module and read its source but never execute
it; running imports it as a submodule of a package private to the scenario's folder, so
nothing from the standard library or site-packages is reachable and same-named modules in
two folders stay two modules. ``--allow-sys-path-runners`` (the user's opt-in) adds sys.path.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from swaysim._cli.main import cli
from swaysim._scenario.runners import PACKAGE_PREFIX
from swaysim.scenario import ScenarioError, check_scenario, load_scenario, parse_scenario

if TYPE_CHECKING:
    from pathlib import Path

SCENARIO = """\
description = "whose runner runs?"
[[probes]]
kind = "delta_kl"
name = "d"
prompts = ["a"]
[runner]
runner = "{runner}"
[expect]
verdicts = {{ d = "PASS" }}
"""

RUNNER = """\
from __future__ import annotations

import pathlib

from swaysim import run_suite

pathlib.Path(__file__).with_name("imported-{tag}").touch()
TAG = "{tag}"


async def run(backend, probes, **options):
    pathlib.Path(__file__).with_name("ran-{tag}").touch()
    return await run_suite(backend, probes, **options)
"""


def folder_with_runner(root: Path, name: str, tag: str, module: str = "my_runner") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(RUNNER.format(tag=tag))
    (folder / "s.toml").write_text(SCENARIO.format(runner=f"{module}:run"))
    return folder


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_validate_never_imports_and_run_does(tmp_path: Path) -> None:
    folder = folder_with_runner(tmp_path, "a", "a")
    code, stdout, _ = invoke("validate", str(folder / "s.toml"))
    assert (code, stdout.count(": ok")) == (0, 1)
    assert not (folder / "imported-a").exists()
    load_scenario(folder / "s.toml")
    assert not (folder / "imported-a").exists()
    code, _, stderr = invoke("run", str(folder / "s.toml"), "--backend", "trio")
    assert code == 0, stderr
    assert (folder / "imported-a").exists()
    assert (folder / "ran-a").exists()


def test_same_named_modules_in_two_folders_never_collide(tmp_path: Path) -> None:
    first = folder_with_runner(tmp_path, "one", "one")
    second = folder_with_runner(tmp_path, "two", "two")
    functions = [load_scenario(f / "s.toml").load_runner() for f in (first, second)]
    modules = [sys.modules[f.__module__] for f in functions if f is not None]
    assert [getattr(m, "TAG", None) for m in modules] == ["one", "two"]
    assert all(m.__name__.startswith(PACKAGE_PREFIX) for m in modules)
    assert modules[0].__name__ != modules[1].__name__
    assert "my_runner" not in sys.modules
    for folder in (first, second):
        (check,) = check_scenario(load_scenario(folder / "s.toml"), ("asyncio",))
        assert check.ok, check.failure_report()
    assert (first / "ran-one").exists()
    assert (second / "ran-two").exists()


@pytest.mark.parametrize(
    "runner", ["os:system", "shutil:rmtree", "builtins:print", "subprocess:run", "swaysim:run"]
)
def test_the_standard_library_and_installed_packages_are_out_of_reach(
    tmp_path: Path, runner: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(runner=runner))
    module = runner.partition(":")[0]
    code, _, stderr = invoke("validate", str(path))
    assert code == 2
    assert stderr.splitlines()[0] == (
        f"{path}: runner.runner: no module named {module!r} in the scenario's folder "
        f"{tmp_path.resolve()}; a scenario imports its runner from its own folder only, unless "
        "you allow sys.path with --allow-sys-path-runners (line 7)"
    )
    code, _, _ = invoke("run", str(path))
    assert code == 2


def test_the_opt_in_reaches_sys_path(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(runner="custom_runners:suite"))
    assert invoke("validate", str(path))[0] == 2
    code, stdout, _ = invoke("validate", "--allow-sys-path-runners", str(path))
    assert (code, stdout.count(": ok")) == (0, 1)
    code, stdout, stderr = invoke(
        "run", "--allow-sys-path-runners", "--backend", "asyncio", str(path)
    )
    assert code == 0, stdout + stderr
    # The replay command keeps the opt-in, or it would not replay.
    scenario = load_scenario(path, allow_sys_path_runners=True)
    assert scenario.replay_command("trio").endswith("--seed 0 --allow-sys-path-runners")


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.py").write_text(RUNNER.format(tag="x"))
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "my_runner.py").symlink_to(outside / "elsewhere.py")
    (folder / "s.toml").write_text(SCENARIO.format(runner="my_runner:run"))
    with pytest.raises(ScenarioError, match="resolves outside the scenario's folder"):
        load_scenario(folder / "s.toml")


def test_a_runner_package_imports_its_siblings_relatively(tmp_path: Path) -> None:
    package = tmp_path / "runners"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("WHO = 'helper'\n")
    (package / "main.py").write_text(
        "from . import helpers\n\n\nasync def run(backend, probes, **options):\n    return []\n"
    )
    (tmp_path / "s.toml").write_text(SCENARIO.format(runner="runners.main:run"))
    function = load_scenario(tmp_path / "s.toml").load_runner()
    assert function is not None
    helpers = sys.modules[function.__module__.rpartition(".")[0] + ".helpers"]
    assert getattr(helpers, "WHO", None) == "helper"


def test_a_failing_import_is_one_line_at_run_time(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "raise RuntimeError('no GPU here')\n\n\nasync def run(backend, probes):\n    return []\n"
    )
    (tmp_path / "s.toml").write_text(SCENARIO.format(runner="broken:run"))
    scenario = load_scenario(tmp_path / "s.toml")
    with pytest.raises(ScenarioError) as info:
        scenario.load_runner()
    assert str(info.value).endswith("failed: RuntimeError: no GPU here")
    code, stdout, stderr = invoke("run", str(tmp_path / "s.toml"))
    assert (code, stdout) == (2, "")
    assert stderr.splitlines()[-1] == "swaysim: 1 scenario is invalid; nothing was run"


def test_a_scenario_without_a_folder_has_nowhere_to_import_from() -> None:
    with pytest.raises(ScenarioError, match=r"\(the scenario has no folder\)"):
        parse_scenario(SCENARIO.format(runner="custom_runners:suite"))
    scenario = parse_scenario(
        SCENARIO.format(runner="custom_runners:suite"), allow_sys_path_runners=True
    )
    assert scenario.runner_target is not None
    assert scenario.runner_target.package is None


# -- function probes: found and imported like a runner ----------------------------------

FUNCTION_SCENARIO = """\
description = "whose probe runs?"
[[probes]]
kind = "delta_kl"
name = "d"
prompts = ["a"]
[[probes]]
kind = "function"
name = "mine"
function = "{function}"
requires = ["d"]
options = {options}
[expect]
verdicts = {{ d = "PASS", mine = "PASS" }}
"""

PROBE_MODULE = """\
from __future__ import annotations

import pathlib

from swaysim import ProbeResult, Verdict

pathlib.Path(__file__).with_name("imported-probe").touch()


async def probe(backend, ctx, *, prompt):
    async with backend.as_finetuned() as ft:
        await ft.next_token_dist(prompt)
    seen = "ran-after-d" if "d" in ctx.results else "ran-before-d"
    pathlib.Path(__file__).with_name(seen).touch()
    return ProbeResult("", "function", Verdict.PASS)
"""


def folder_with_probe(root: Path, function: str = "my_probes:probe", options: str = "") -> Path:
    (root / "my_probes.py").write_text(PROBE_MODULE)
    (root / "s.toml").write_text(
        FUNCTION_SCENARIO.format(function=function, options=options or '{ prompt = "q" }')
    )
    return root / "s.toml"


def test_a_function_probe_is_imported_only_to_run_after_what_it_requires(tmp_path: Path) -> None:
    path = folder_with_probe(tmp_path)
    code, stdout, _ = invoke("validate", str(path))
    assert (code, stdout.count(": ok")) == (0, 1)
    scenario = load_scenario(path)
    assert not (tmp_path / "imported-probe").exists()
    (check,) = check_scenario(scenario, ("trio",))
    assert check.ok, check.failure_report()
    assert (tmp_path / "imported-probe").exists()
    assert (tmp_path / "ran-after-d").exists()
    assert not (tmp_path / "ran-before-d").exists()


@pytest.mark.parametrize(
    ("function", "options", "expected"),
    [
        (
            "os:system",
            "",
            "probes[1].function: no module named 'os' in the scenario's folder {folder}; a "
            "scenario imports its function probes from its own folder only, unless you allow "
            "sys.path with --allow-sys-path-runners (line 9)",
        ),
        (
            "my_probes:prob",
            "",
            "probes[1].function: module 'my_probes' ({folder}/my_probes.py) has no function "
            "'prob'; did you mean 'probe'? (line 9)",
        ),
        (
            "my_probes:probe",
            '{ prompt = "q", promt = "r" }',
            "probes[1].options.promt: 'my_probes:probe' takes no option 'promt'; did you mean "
            "'prompt'? (line 11)",
        ),
        (
            "my_probes:probe",
            "{}",
            "probes[1].options: 'my_probes:probe' requires option 'prompt', which "
            "probes[1].options does not set (line 11)",
        ),
        (
            "my_probes",
            "",
            'probes[1].function: "my_probes" is not allowed: must look like '
            '"package.module:function" (line 9)',
        ),
    ],
    ids=["stdlib-out-of-reach", "misspelt", "unknown-option", "missing-option", "no-colon"],
)
def test_a_function_probe_is_checked_from_its_source_without_importing_it(
    tmp_path: Path, function: str, options: str, expected: str
) -> None:
    path = folder_with_probe(tmp_path, function, options)
    code, _, stderr = invoke("validate", str(path))
    assert code == 2
    assert stderr.splitlines()[0] == f"{path}: " + expected.format(folder=tmp_path.resolve())
    assert not (tmp_path / "imported-probe").exists()


def test_a_function_probes_requires_must_name_another_probe(tmp_path: Path) -> None:
    path = folder_with_probe(tmp_path)
    path.write_text(path.read_text().replace('requires = ["d"]', 'requires = ["dd", "mine"]'))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    lines = str(info.value).splitlines()
    assert any(
        line.endswith(
            'probes[1].requires[0]: "dd" is not allowed: must name another probe in the suite; '
            "did you mean 'd'? (line 10)"
        )
        for line in lines
    ), lines
    assert any('probes[1].requires[1]: "mine" is not allowed' in line for line in lines), lines


def test_a_function_probe_that_fails_to_import_stops_swaysim_run_before_anything_runs(
    tmp_path: Path,
) -> None:
    path = folder_with_probe(tmp_path)
    (tmp_path / "my_probes.py").write_text(
        "raise RuntimeError('no GPU here')\n\n\nasync def probe(backend, ctx, *, prompt):\n"
        "    return None\n"
    )
    scenario = load_scenario(path)
    with pytest.raises(ScenarioError) as info:
        scenario.build_probes()
    assert "probes[1].function: importing 'my_probes'" in str(info.value)
    assert str(info.value).endswith("failed: RuntimeError: no GPU here")
    code, stdout, stderr = invoke("run", str(path))
    assert (code, stdout) == (2, "")
    assert stderr.splitlines()[-1] == "swaysim: 1 scenario is invalid; nothing was run"
