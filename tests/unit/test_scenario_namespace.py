"""``swaysim.scenario``: the public scenario namespace, loaded on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import swaysim
import swaysim.scenario
from swaysim.scenario import check_scenario, load_scenario


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert swaysim.scenario.__all__ == sorted(swaysim.scenario.__all__)
    # pytest's assertion rewriting (swaysim ships a pytest11 plugin) adds "@py_..." names.
    public = {
        n
        for n in vars(swaysim.scenario)
        if n.isidentifier() and not n.startswith("_") and n != "annotations"
    }
    assert public == set(swaysim.scenario.__all__)


def test_the_top_level_scenario_names_are_the_namespaces() -> None:
    for name in ("Scenario", "ScenarioCheck", "ScenarioError", "check_scenario", "load_scenario"):
        assert getattr(swaysim, name) is getattr(swaysim.scenario, name)


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_namespace_loads_on_first_use() -> None:
    lazy = "import sys, swaysim; print('pydantic' in sys.modules, 'scenario' in dir(swaysim))"
    assert _fresh(lazy) == "False True"
    used = "import sys, swaysim; swaysim.scenario.Scenario; print('pydantic' in sys.modules)"
    assert _fresh(used) == "True"


def test_a_library_scenario_checks_through_the_namespace() -> None:
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "flaky_ft_view.toml")
    checks = check_scenario(scenario, ("trio",))
    assert [check.loop for check in checks] == ["trio"]
    assert checks[0].ok, checks[0].failure_report()
    assert repr(checks[0]) == "<ScenarioCheck 'flaky_ft_view' on trio: ok>"
