"""Bad latency and fault plans are rejected at construction, naming the field and value."""

from __future__ import annotations

import dataclasses
import math
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    FaultPlan,
    FaultRule,
    InvalidArgumentError,
    LatencyPlan,
    LatencyRule,
    LogNormal,
    SwaysimError,
    Uniform,
)

if TYPE_CHECKING:
    from collections.abc import Callable

BAD_PLANS: list[tuple[str, Callable[[], object], tuple[str, ...]]] = [
    ("negative constant", lambda: Constant(-0.5), ("Constant.seconds=-0.5", ">= 0")),
    ("negative jitter", lambda: Constant(1.0, jitter=-1), ("Constant.jitter=-1",)),
    ("nan constant", lambda: Constant(math.nan), ("Constant.seconds=nan", "finite")),
    ("inf constant", lambda: Constant(math.inf), ("Constant.seconds=inf", "finite")),
    ("string seconds", lambda: Constant("1"), ("Constant.seconds='1'", "number")),  # type: ignore[arg-type]
    ("bool seconds", lambda: Constant(True), ("Constant.seconds=True", "number")),
    ("negative uniform low", lambda: Uniform(-1, 2), ("Uniform.low=-1",)),
    ("uniform high below low", lambda: Uniform(2, 1), ("Uniform.high=1", "Uniform.low=2")),
    ("uniform negative jitter", lambda: Uniform(0, 1, jitter=-0.1), ("Uniform.jitter=-0.1",)),
    ("sigma zero", lambda: LogNormal(0.1, 0.0), ("LogNormal.sigma=0.0", "> 0")),
    ("sigma negative", lambda: LogNormal(0.1, -0.5), ("LogNormal.sigma=-0.5", "> 0")),
    ("median zero", lambda: LogNormal(0.0, 0.5), ("LogNormal.median=0.0", "> 0")),
    ("median negative", lambda: LogNormal(-1.0, 0.5), ("LogNormal.median=-1.0",)),
    ("lognormal nan sigma", lambda: LogNormal(0.1, math.nan), ("LogNormal.sigma=nan",)),
    ("negative seed", lambda: LatencyPlan(seed=-1), ("LatencyPlan.seed=-1",)),
    ("float seed", lambda: LatencyPlan(seed=1.5), ("LatencyPlan.seed=1.5", "integer")),  # type: ignore[arg-type]
    ("default not a model", lambda: LatencyPlan(default=0.5), ("LatencyPlan.default=0.5",)),  # type: ignore[arg-type]
    (
        "switch not a model",
        lambda: LatencyPlan(view_switch="slow"),  # type: ignore[arg-type]
        ("LatencyPlan.view_switch='slow'",),
    ),
    (
        "latency rule not a rule",
        lambda: LatencyPlan(rules=(Constant(1),)),  # type: ignore[arg-type]
        ("LatencyPlan.rules[0]=Constant",),
    ),
    (
        "latency unknown op",
        lambda: LatencyRule(Constant(1), ops=("forward",)),  # type: ignore[arg-type]
        ("LatencyRule.ops", "'forward'", "generate"),
    ),
    (
        "latency unknown view kind",
        lambda: LatencyRule(Constant(1), views=("gpu",)),
        ("LatencyRule.views", "'gpu'", "base, ft, scaled, null"),
    ),
    (
        "latency views as one string",
        lambda: LatencyRule(Constant(1), views="ft"),  # type: ignore[arg-type]
        ("LatencyRule.views='ft'", "not one string"),
    ),
    ("latency rule model", lambda: LatencyRule(1.0), ("LatencyRule.model=1.0",)),  # type: ignore[arg-type]
    ("unknown fault kind", lambda: FaultRule("boom"), ("FaultRule.kind='boom'", "transient")),  # type: ignore[arg-type]
    (
        "probability above one",
        lambda: FaultRule("fatal", probability=1.5),
        ("FaultRule.probability=1.5", "[0, 1]"),
    ),
    (
        "probability below zero",
        lambda: FaultRule("fatal", probability=-0.1),
        ("FaultRule.probability=-0.1", "[0, 1]"),
    ),
    ("probability nan", lambda: FaultRule("fatal", probability=math.nan), ("probability=nan",)),
    (
        "fault unknown op",
        lambda: FaultRule("fatal", ops=("score",)),  # type: ignore[arg-type]
        ("FaultRule.ops", "'score'"),
    ),
    (
        "fault unknown view",
        lambda: FaultRule("nan", views=("adapter",)),
        ("FaultRule.views", "'adapter'"),
    ),
    ("malformed view id", lambda: FaultRule("nan", views=("scaled_1",)), ("'scaled_1'",)),
    ("empty prompt glob", lambda: FaultRule("fatal", prompt=""), ("FaultRule.prompt=''", "glob")),
    ("nth zero", lambda: FaultRule("fatal", nth=0), ("FaultRule.nth=0", ">= 1")),
    ("every zero", lambda: FaultRule("fatal", every=0), ("FaultRule.every=0", ">= 1")),
    ("after negative", lambda: FaultRule("fatal", after=-1), ("FaultRule.after=-1", ">= 0")),
    ("max_fires zero", lambda: FaultRule("fatal", max_fires=0), ("FaultRule.max_fires=0",)),
    (
        "window reversed",
        lambda: FaultRule("fatal", window=(5.0, 1.0)),
        ("FaultRule.window=(5.0, 1.0)", "start < end"),
    ),
    (
        "window negative",
        lambda: FaultRule("fatal", window=(-1.0, 1.0)),
        ("FaultRule.window start=-1.0",),
    ),
    (
        "window not a pair",
        lambda: FaultRule("fatal", window=(1.0,)),  # type: ignore[arg-type]
        ("FaultRule.window=(1.0,)", "(start, end)"),
    ),
    (
        "nan on generate",
        lambda: FaultRule("nan", ops=("generate",)),
        ("FaultRule.ops", "'generate'", "'nan'"),
    ),
    (
        "unsorted on logprob_of",
        lambda: FaultRule("corrupt_unsorted", ops=("logprob_of",)),
        ("'logprob_of'", "'corrupt_unsorted'"),
    ),
    (
        "exit fault with ops",
        lambda: FaultRule("exit_error", ops=("generate",)),
        ("FaultRule.ops", "'exit_error'"),
    ),
    (
        "enter fault with prompt",
        lambda: FaultRule("enter_error", prompt="q*"),
        ("FaultRule.prompt='q*'", "enter_error"),
    ),
    (
        "fault ops as one string",
        lambda: FaultRule("fatal", ops="generate"),  # type: ignore[arg-type]
        ("FaultRule.ops='generate'",),
    ),
    ("name not a string", lambda: FaultRule("fatal", name=3), ("FaultRule.name=3",)),  # type: ignore[arg-type]
    (
        "duplicate rule names",
        lambda: FaultPlan((FaultRule("fatal", name="x"), FaultRule("nan", name="x"))),
        ("FaultPlan.rules[1].name='x'", "unique"),
    ),
    (
        "duplicate default names",
        lambda: FaultPlan((FaultRule("fatal"), FaultRule("nan", name="fatal#0"))),
        ("FaultPlan.rules[1].name='fatal#0'",),
    ),
    ("fault rule not a rule", lambda: FaultPlan(("fatal",)), ("FaultPlan.rules[0]='fatal'",)),  # type: ignore[arg-type]
    (
        "one fault rule, not a sequence",
        lambda: FaultPlan(FaultRule("fatal")),  # type: ignore[arg-type]
        ("FaultPlan.rules=FaultRule(", "must be a sequence of FaultRule"),
    ),
    (
        "fault rules none",
        lambda: FaultPlan(None),  # type: ignore[arg-type]
        ("FaultPlan.rules=None", "sequence of FaultRule"),
    ),
    (
        "latency rules none",
        lambda: LatencyPlan(rules=None),  # type: ignore[arg-type]
        ("LatencyPlan.rules=None", "sequence of LatencyRule"),
    ),
    (
        "one latency rule, not a sequence",
        lambda: LatencyPlan(rules=LatencyRule(Constant(1))),  # type: ignore[arg-type]
        ("LatencyPlan.rules=LatencyRule(", "sequence of LatencyRule"),
    ),
    (
        "fault views none",
        lambda: FaultRule("nan", views=None),  # type: ignore[arg-type]
        ("FaultRule.views=None", "sequence of names"),
    ),
    (
        "latency ops a number",
        lambda: LatencyRule(Constant(1), ops=3),  # type: ignore[arg-type]
        ("LatencyRule.ops=3", "sequence of names"),
    ),
    ("fault seed negative", lambda: FaultPlan(seed=-3), ("FaultPlan.seed=-3",)),
]


@pytest.mark.parametrize(
    ("build", "fragments"),
    [pytest.param(build, fragments, id=name) for name, build, fragments in BAD_PLANS],
)
def test_bad_plans_are_rejected_with_the_field_and_value(
    build: Callable[[], object], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        build()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(caught.value, SwaysimError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("latency", Constant(1.0)), ("faults", FaultRule("fatal")), ("faults", ())],
)
def test_the_backend_rejects_something_that_is_not_a_plan(argument: str, value: object) -> None:
    kwargs: dict[str, Any] = {argument: value}
    with pytest.raises(InvalidArgumentError, match=f"^{argument}="):
        AsyncDummyDifferentialBackend(**kwargs)


def test_valid_edge_values_are_accepted() -> None:
    plan = LatencyPlan(seed=3)
    assert plan.draw(Constant(0.0), "op", 0, "base", "p", 1) == 0.0
    assert plan.draw(Uniform(0.25, 0.25), "op", 0, "base", "p", 1) == 0.25
    assert plan.draw(LogNormal(1e-6, 1e-6), "op", 0, "base", "p", 1) == pytest.approx(1e-6)
    FaultRule("fatal", probability=0.0)
    FaultRule("fatal", probability=1.0)
    assert FaultRule("fatal", after=0, window=(0.0, 1e-9)).window == (0.0, 1e-9)
    views = ("base", "ft", "scaled", "null", "scaled_-0.50", "null_7_rank2.00")
    assert FaultRule("nan", views=views).views == views
    rule = LatencyRule(Constant(1.0), ops=["generate"], views=["null_3"])  # type: ignore[arg-type]
    assert (rule.ops, rule.views) == (("generate",), ("null_3",))


def test_plans_are_immutable_hashable_and_compare_by_value() -> None:
    rule = FaultRule("transient", ops=["logprob_of"], window=[1, 2])  # type: ignore[arg-type]
    assert rule.ops == ("logprob_of",)
    assert rule.window == (1.0, 2.0)
    plan = FaultPlan((rule,), seed=4)
    assert plan == FaultPlan((FaultRule("transient", ops=("logprob_of",), window=(1, 2)),), seed=4)
    assert hash(plan) == hash(FaultPlan([rule], seed=4))  # type: ignore[arg-type]
    latency = LatencyPlan(seed=1, default=LogNormal(0.1, 0.5), rules=[LatencyRule(Constant(1))])  # type: ignore[arg-type]
    assert latency == LatencyPlan(
        seed=1, default=LogNormal(0.1, 0.5), rules=(LatencyRule(Constant(1)),)
    )
    assert (
        len(
            {
                latency,
                LatencyPlan(seed=1, default=LogNormal(0.1, 0.5), rules=(LatencyRule(Constant(1)),)),
            }
        )
        == 1
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.probability = 0.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        latency.default = None  # type: ignore[misc]


def test_plans_survive_pickling() -> None:
    plan = FaultPlan((FaultRule("nan", views=("ft",), every=3, probability=0.5),), seed=9)
    latency = LatencyPlan(seed=2, default=Uniform(0.1, 0.2, jitter=0.01))
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert pickle.loads(pickle.dumps(latency)) == latency


def test_default_rule_names_are_kind_and_index() -> None:
    plan = FaultPlan((FaultRule("fatal"), FaultRule("nan", name="poison"), FaultRule("hang")))
    assert [plan.rule_name(i) for i in range(3)] == ["fatal#0", "poison", "hang#2"]
