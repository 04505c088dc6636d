"""Declarative TOML scenarios: load, discover, run and check them.

A scenario file sets up a backend, a probe suite, a runner configuration and
what must hold afterwards (README, "Scenarios")::

    from swaysim.scenario import check_scenario, load_scenario

    for check in check_scenario(load_scenario("scenarios/flaky_ft_view.toml")):
        print(check.loop, "ok" if check.ok else check.failure_report())

- :func:`load_scenario` / :func:`parse_scenario` validate a file or a string
  into a :class:`Scenario`, raising :class:`ScenarioError` with one line per
  problem; :func:`discover_scenarios` finds scenario files in folders.
- :func:`check_scenario` runs a scenario on each event loop and evaluates
  its expectations: a :class:`ScenarioCheck` per loop, holding the
  :class:`ScenarioRun` and one :class:`Outcome` per ``[expect]`` key.
  :func:`run_scenario` runs once without checking.
- :func:`scenario_json_schema` is the file format as JSON Schema.

Importing this module loads the scenario machinery (pydantic); ``import
swaysim`` alone does not.
"""

from __future__ import annotations

from swaysim._scenario.check import ScenarioCheck, check_scenario
from swaysim._scenario.expect import Outcome
from swaysim._scenario.load import Scenario, discover_scenarios, load_scenario, parse_scenario
from swaysim._scenario.reference import scenario_json_schema
from swaysim._scenario.run import ScenarioRun, run_scenario
from swaysim.errors import ScenarioError, ScenarioFailedError

__all__ = [
    "Outcome",
    "Scenario",
    "ScenarioCheck",
    "ScenarioError",
    "ScenarioFailedError",
    "ScenarioRun",
    "check_scenario",
    "discover_scenarios",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
    "scenario_json_schema",
]
