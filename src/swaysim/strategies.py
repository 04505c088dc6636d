"""Hypothesis strategies over fault plans, latency plans and scenarios, for your own property tests.

They draw from the same documented bounds as ``swaysim explore``
(docs/explore.md, "Bounds"), and shrink the way Hypothesis shrinks::

    from hypothesis import given
    from swaysim import strategies

    @given(strategies.scenarios("scenarios/flaky_ft_view.toml"))
    def test_my_runner(scenario):
        for check in swaysim.check_scenario(scenario, ["asyncio"], runner=my_runner):
            assert check.ok, check.failure_report()

- :func:`fault_rule_tables` / :func:`fault_plans`: ``[[backend.faults.rules]]`` tables,
  and the :class:`~swaysim.FaultPlan` they make;
- :func:`latency_tables` / :func:`latency_plans`: ``[backend.latency]`` tables, and the
  :class:`~swaysim.LatencyPlan` they make;
- :func:`scenarios`: a base scenario file with a generated fault plan, latency plan and
  jitter seed, as a :class:`~swaysim.scenario.Scenario`.

``swaysim explore`` itself draws with numpy from hashlib-derived seeds instead, so that
each trial is a pure function of one integer that any process or cluster worker can
replay; Hypothesis is for tests written by hand. Needs ``hypothesis`` installed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from hypothesis import strategies as st

from swaysim._chaos.faults import APPLICABLE_OPS, FAULT_KINDS, VIEW_EVENT_KINDS, FaultPlan
from swaysim._explore.bounds import (
    JITTER_SEED_BOUND,
    LATENCY_SECONDS,
    MAX_EVERY,
    MAX_FIRES,
    MAX_NTH,
    MAX_RULES,
    PROBABILITY_CHOICES,
    SIGMA_RANGE,
    SWITCH_SECONDS,
    VIEW_KIND_CHOICES,
)
from swaysim._explore.trial import expect_for
from swaysim._scenario.build import backend_spec_from_table, build_backend
from swaysim._scenario.load import Scenario, parse_scenario
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from swaysim._chaos.latency import LatencyPlan

__all__ = [
    "fault_plans",
    "fault_rule_tables",
    "latency_plans",
    "latency_tables",
    "scenarios",
]

_SECONDS = st.floats(*LATENCY_SECONDS, allow_nan=False).map(lambda s: round(s, 4))


@st.composite
def fault_rule_tables(
    draw: st.DrawFn,
    kinds: tuple[str, ...] = FAULT_KINDS,
    views: tuple[str, ...] = VIEW_KIND_CHOICES,
    prompts: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One ``[[backend.faults.rules]]`` table: a kind, its targets and its trigger."""
    kind = draw(st.sampled_from(kinds))
    rule: dict[str, Any] = {"kind": kind}
    if draw(st.booleans()):
        rule["views"] = draw(st.lists(st.sampled_from(views), min_size=1, max_size=2, unique=True))
    ops: tuple[str, ...] = APPLICABLE_OPS[kind]
    aim_ops: bool = draw(st.booleans())
    if ops and aim_ops:
        rule["ops"] = [draw(st.sampled_from(ops))]
    if prompts and kind not in VIEW_EVENT_KINDS and draw(st.booleans()):
        rule["prompt"] = draw(st.sampled_from(prompts))
    trigger = draw(st.sampled_from(("always", "nth", "every", "after", "probability")))
    if trigger == "nth":
        rule["nth"] = draw(st.integers(1, MAX_NTH))
    elif trigger == "every":
        rule["every"] = draw(st.integers(2, MAX_EVERY))
    elif trigger == "after":
        rule["after"] = draw(st.integers(0, MAX_NTH))
    elif trigger == "probability":
        rule["probability"] = draw(st.sampled_from(PROBABILITY_CHOICES))
    if draw(st.booleans()):
        rule["max_fires"] = draw(st.integers(1, MAX_FIRES))
    return rule


def _named(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": f"{rule['kind']}-{i + 1}", **rule} for i, rule in enumerate(rules)]


def fault_plans(
    kinds: tuple[str, ...] = FAULT_KINDS, views: tuple[str, ...] = VIEW_KIND_CHOICES
) -> st.SearchStrategy[FaultPlan]:
    """A :class:`~swaysim.FaultPlan` of 1 to 3 generated rules (seed 0)."""
    tables = st.lists(fault_rule_tables(kinds, views), min_size=1, max_size=MAX_RULES).map(_named)
    return tables.map(_fault_plan)


def _fault_plan(rules: list[dict[str, Any]]) -> FaultPlan:
    spec = backend_spec_from_table({"faults": {"rules": rules}}, source="strategies")
    plan = build_backend(spec, 0, source="strategies").faults
    if plan is None:
        raise InvalidArgumentError("a fault table built no plan", field="rules", value=rules)
    return plan


@st.composite
def latency_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A ``[backend.latency]`` table: constant, uniform or log-normal, maybe a switch cost."""
    form = draw(st.sampled_from(("constant", "uniform", "lognormal")))
    if form == "constant":
        default: dict[str, Any] = {"model": "constant", "seconds": draw(_SECONDS)}
    elif form == "uniform":
        low, high = sorted((draw(_SECONDS), draw(_SECONDS)))
        default = {"model": "uniform", "low": low, "high": high}
    else:
        sigma = draw(st.floats(*SIGMA_RANGE, allow_nan=False))
        default = {"model": "lognormal", "median": draw(_SECONDS), "sigma": round(sigma, 4)}
    table: dict[str, Any] = {"default": default}
    if draw(st.booleans()):
        seconds = round(draw(st.floats(*SWITCH_SECONDS, allow_nan=False)), 4)
        table["view_switch"] = {"model": "constant", "seconds": seconds}
    return table


def latency_plans() -> st.SearchStrategy[LatencyPlan]:
    """A :class:`~swaysim.LatencyPlan` from :func:`latency_tables` (seed 0)."""
    return latency_tables().map(_latency_plan)


def _latency_plan(table: dict[str, Any]) -> LatencyPlan:
    spec = backend_spec_from_table({"latency": table}, source="strategies")
    plan = build_backend(spec, 0, source="strategies").latency
    if plan is None:
        raise InvalidArgumentError("a latency table built no plan", field="latency", value=table)
    return plan


@st.composite
def scenarios(draw: st.DrawFn, base: str | Path, kinds: tuple[str, ...] = FAULT_KINDS) -> Scenario:
    """The scenario file ``base`` with a generated fault plan, latency plan and jitter seed.

    Its ``[expect]`` is replaced by explore's expectation-free oracles (``no_false_pass``,
    ``matches_reference``): the file's own expectations were written for its own faults.
    """
    path = Path(base)
    document = tomllib.loads(path.read_text("utf-8"))
    backend = document.setdefault("backend", {})
    rules = draw(st.lists(fault_rule_tables(kinds), min_size=0, max_size=MAX_RULES))
    backend.pop("faults", None)
    if rules:
        backend["faults"] = {"rules": _named(rules)}
    if draw(st.booleans()):
        backend["latency"] = draw(latency_tables())
    jitter = draw(st.none() | st.integers(0, JITTER_SEED_BOUND - 1))
    if jitter is not None:
        backend["schedule_jitter"] = jitter
    document["expect"] = expect_for(None)
    return parse_scenario(tomli_w.dumps(document), source=str(path), path=path)
