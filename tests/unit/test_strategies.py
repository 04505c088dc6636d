"""swaysim.strategies: Hypothesis strategies that build valid plans and scenarios, within bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swaysim import FaultPlan, LatencyPlan, strategies
from swaysim._explore.bounds import MAX_RULES
from swaysim.scenario import Scenario, check_scenario

FLAKY: Final = Path(__file__).resolve().parents[2] / "scenarios" / "flaky_ft_view.toml"


@given(strategies.fault_plans(kinds=("transient", "nan"), views=("ft",)))
def test_fault_plans_hold_one_to_three_rules_of_the_kinds_asked_for(plan: FaultPlan) -> None:
    assert 1 <= len(plan.rules) <= MAX_RULES
    assert {rule.kind for rule in plan.rules} <= {"transient", "nan"}


@given(strategies.latency_plans())
def test_latency_plans_build(plan: LatencyPlan) -> None:
    assert plan.default is not None


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.scenarios(FLAKY, kinds=("transient",)), st.sampled_from(["asyncio", "trio"]))
def test_a_generated_scenario_runs_and_the_reference_keeps_every_invariant(
    scenario: Scenario, loop: str
) -> None:
    (check,) = check_scenario(scenario, [loop])
    assert not [o for o in check.outcomes if o.key.startswith("invariant.")]
