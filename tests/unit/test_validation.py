"""Validation errors carry the field and the value as data (see swaysim._validation).

``field`` is the Python API name relative to what was being built or called,
``name[index]`` for one item of a sequence and ``name[key]`` for one entry of a
mapping, so a caller that built the arguments from its own structure (a
scenario file) can map the error back without reading the message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InvalidArgumentError,
    LatencyPlan,
    LatencyRule,
    LogNormal,
    Uniform,
)
from swaysim._validation import (
    invalid,
    name_tuple,
    require_finite,
    require_int,
    require_sequence,
    typed_tuple,
    validate_ops,
    validate_views,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

CONSTANT = Constant(1.0)
RULES = (FaultRule("fatal", name="x"), FaultRule("nan", name="x"))

# (what is built, the field to blame, the value given)
API_CASES: list[tuple[str, Callable[[], object], str, object]] = [
    ("Constant seconds", lambda: Constant(-0.5), "seconds", -0.5),
    ("Constant jitter", lambda: Constant(1.0, jitter=-1), "jitter", -1),
    ("Uniform low", lambda: Uniform(-1, 2), "low", -1),
    ("Uniform high below low", lambda: Uniform(2, 1), "high", 1),
    ("LogNormal median", lambda: LogNormal(0.0, 0.5), "median", 0.0),
    ("LogNormal sigma", lambda: LogNormal(0.1, -1.0), "sigma", -1.0),
    ("LogNormal jitter", lambda: LogNormal(0.1, 0.5, jitter=-2.0), "jitter", -2.0),
    ("LatencyPlan seed", lambda: LatencyPlan(seed=-1), "seed", -1),
    ("LatencyPlan default", lambda: LatencyPlan(default=0.5), "default", 0.5),  # type: ignore[arg-type]
    ("LatencyPlan view_exit", lambda: LatencyPlan(view_exit="x"), "view_exit", "x"),  # type: ignore[arg-type]
    ("LatencyPlan rules item", lambda: LatencyPlan(rules=(CONSTANT,)), "rules[0]", CONSTANT),  # type: ignore[arg-type]
    ("LatencyPlan rules none", lambda: LatencyPlan(rules=None), "rules", None),  # type: ignore[arg-type]
    ("LatencyRule model", lambda: LatencyRule(1.0), "model", 1.0),  # type: ignore[arg-type]
    (
        "LatencyRule ops item",
        lambda: LatencyRule(CONSTANT, ops=("generate", "forward")),  # type: ignore[arg-type]
        "ops[1]",
        "forward",
    ),
    (
        "LatencyRule views item",
        lambda: LatencyRule(CONSTANT, views=("base", "gpu")),
        "views[1]",
        "gpu",
    ),
    ("LatencyRule views one string", lambda: LatencyRule(CONSTANT, views="ft"), "views", "ft"),  # type: ignore[arg-type]
    ("FaultRule kind", lambda: FaultRule("boom"), "kind", "boom"),  # type: ignore[arg-type]
    ("FaultRule name", lambda: FaultRule("fatal", name=3), "name", 3),  # type: ignore[arg-type]
    ("FaultRule probability", lambda: FaultRule("fatal", probability=2), "probability", 2),
    (
        "FaultRule ops not for kind",
        lambda: FaultRule("nan", ops=("generate",)),
        "ops[0]",
        "generate",
    ),
    (
        "FaultRule ops on a view event",
        lambda: FaultRule("exit_error", ops=("generate",)),
        "ops",
        ("generate",),
    ),
    (
        "FaultRule prompt on a view event",
        lambda: FaultRule("enter_error", prompt="q*"),
        "prompt",
        "q*",
    ),
    ("FaultRule empty prompt", lambda: FaultRule("fatal", prompt=""), "prompt", ""),
    ("FaultRule nth", lambda: FaultRule("fatal", nth=0), "nth", 0),
    ("FaultRule after", lambda: FaultRule("fatal", after=-1), "after", -1),
    ("FaultRule every", lambda: FaultRule("fatal", every=1.5), "every", 1.5),  # type: ignore[arg-type]
    ("FaultRule max_fires", lambda: FaultRule("fatal", max_fires=0), "max_fires", 0),
    ("FaultRule window start", lambda: FaultRule("fatal", window=(-1.0, 1.0)), "window[0]", -1.0),
    ("FaultRule window end", lambda: FaultRule("fatal", window=(1.0, "x")), "window[1]", "x"),  # type: ignore[arg-type]
    (
        "FaultRule window reversed",
        lambda: FaultRule("fatal", window=(5.0, 1.0)),
        "window",
        (5.0, 1.0),
    ),
    ("FaultRule window not a pair", lambda: FaultRule("fatal", window=(1.0,)), "window", (1.0,)),  # type: ignore[arg-type]
    ("FaultPlan seed", lambda: FaultPlan(seed=-3), "seed", -3),
    ("FaultPlan rules item", lambda: FaultPlan(("fatal",)), "rules[0]", "fatal"),  # type: ignore[arg-type]
    ("FaultPlan duplicate name", lambda: FaultPlan(RULES), "rules[1].name", "x"),
    (
        "DummyResponses generation",
        lambda: DummyResponses(generations={"p": 3}),  # type: ignore[dict-item]
        "generations['p']",
        3,
    ),
    ("DummyResponses logprobs key", lambda: DummyResponses(logprobs={"p": -1.0}), "logprobs", "p"),  # type: ignore[dict-item]
    ("DummyResponses rolling", lambda: DummyResponses(rolling=[]), "rolling", []),  # type: ignore[arg-type]
    (
        "DummyResponses token dist",
        lambda: DummyResponses(token_dists={"p": 0.5}),  # type: ignore[dict-item]
        "token_dists['p']",
        0.5,
    ),
]

BACKEND_CASES: list[tuple[dict[str, Any], str]] = [
    ({"base": "canned"}, "base"),
    ({"ft": {}}, "ft"),
    ({"safe_for_concurrent_views": "yes"}, "safe_for_concurrent_views"),
    ({"exclusivity": "bogus"}, "exclusivity"),
    ({"max_concurrent_views": 0, "safe_for_concurrent_views": True}, "max_concurrent_views"),
    ({"max_concurrent_views": 2}, "max_concurrent_views"),
    ({"max_concurrent_ops": 0}, "max_concurrent_ops"),
    ({"cache_size": True}, "cache_size"),
    ({"latency": CONSTANT}, "latency"),
    ({"faults": ()}, "faults"),
    ({"trace": object()}, "trace"),
    ({"schedule_jitter": -1}, "schedule_jitter"),
]


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [pytest.param(build, field, value, id=name) for name, build, field, value in API_CASES],
)
def test_plan_and_response_errors_name_the_field_and_carry_the_value(
    build: Callable[[], object], field: str, value: object
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        build()
    assert (caught.value.field, caught.value.value, caught.value.has_value) == (field, value, True)


@pytest.mark.parametrize(("kwargs", "field"), BACKEND_CASES)
def test_backend_argument_errors_name_the_argument(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        AsyncDummyDifferentialBackend(**kwargs)
    assert caught.value.field == field
    assert caught.value.value is kwargs[field]
    assert str(caught.value).startswith(f"{field}=")


def test_view_argument_errors_name_the_argument() -> None:
    backend = AsyncDummyDifferentialBackend()
    cases: list[tuple[Callable[[], object], str, object]] = [
        (lambda: backend.as_scaled_adapter(math.inf), "lam", math.inf),
        (lambda: backend.as_null_adapter(-1), "seed", -1),
        (lambda: backend.as_null_adapter(1, init_scale=-0.5), "init_scale", -0.5),
        (lambda: backend.as_null_adapter(1, rank_scale=0.0), "rank_scale", 0.0),
    ]
    for call, field, value in cases:
        with pytest.raises(InvalidArgumentError) as caught:
            call()
        assert (caught.value.field, caught.value.value) == (field, value)


async def test_op_and_preflight_argument_errors_name_the_argument() -> None:
    backend = AsyncDummyDifferentialBackend()
    bad_prompts: Any = "p"
    async with backend.as_base() as view:
        calls: list[tuple[Callable[[], Awaitable[object]], str, object]] = [
            (lambda: view.next_token_dist("p", top_k=0), "top_k", 0),
            (lambda: view.next_token_dist_batch(["p"], top_k=-2), "top_k", -2),
            (lambda: view.next_token_dist_batch(bad_prompts), "prompts", "p"),
            (lambda: view.generate("p", max_new_tokens=-1), "max_new_tokens", -1),
        ]
        for call, field, value in calls:
            with pytest.raises(InvalidArgumentError) as caught:
                await call()
            assert (caught.value.field, caught.value.value) == (field, value)
    preflights: list[tuple[dict[str, Any], str]] = [
        ({"scaled": 0.5}, "scaled"),
        ({"null_seeds": 3}, "null_seeds"),
    ]
    for kwargs, field in preflights:
        with pytest.raises(InvalidArgumentError) as caught:
            await backend.preflight_finite_check(**kwargs)
        assert (caught.value.field, caught.value.value) == (field, kwargs[field])


# -- the checkers themselves ------------------------------------------------------------


def test_the_message_names_owner_field_and_value_and_a_label_can_replace_them() -> None:
    error = invalid("seconds", -1, "must be >= 0", owner="Constant")
    assert (str(error), error.field, error.value) == (
        "Constant.seconds=-1 must be >= 0",
        "seconds",
        -1,
    )
    labelled = invalid("window[0]", -1, "must be >= 0", label="FaultRule.window start")
    assert str(labelled) == "FaultRule.window start=-1 must be >= 0"
    assert labelled.field == "window[0]"


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (True, {}, "x=True must be a number"),
        ("1", {}, "x='1' must be a number"),
        (np.float32(0.5), {}, "x=np.float32(0.5) must be a number"),
        (math.nan, {}, "x=nan must be finite"),
        (10**400, {}, "must be finite"),
        (-1.0, {"minimum": 0.0}, "x=-1.0 must be >= 0"),
        (0.0, {"positive": True}, "x=0.0 must be > 0"),
        (math.nan, {"must": "positive and finite"}, "x=nan must be positive and finite"),
        (None, {"must": "a finite number"}, "x=None must be a number, a finite number"),
    ],
)
def test_require_finite_says_what_failed(
    value: object, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        require_finite("x", value, **kwargs)
    assert message in str(caught.value)
    assert caught.value.field == "x"


def test_numpy_scalars_are_accepted_only_where_asked_and_come_back_as_python_numbers() -> None:
    number = require_finite("x", np.float32(0.5), numpy_scalars=True)
    integer = require_int("x", np.int64(3), minimum=0, numpy_scalars=True)
    assert (type(number), number, type(integer), integer) == (float, 0.5, int, 3)
    with pytest.raises(InvalidArgumentError, match="must be an integer"):
        require_int("x", np.int64(3), minimum=0)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (1.0, {}, "x=1.0 must be an integer"),
        (False, {}, "x=False must be an integer"),
        (0, {}, "x=0 must be >= 1"),
        (0, {"must": "an integer >= 1"}, "x=0 must be an integer >= 1"),
        ("2", {"must": "an integer >= 1"}, "x='2' must be an integer >= 1"),
    ],
)
def test_require_int_says_what_failed(value: object, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{message}$"):
        require_int("x", value, minimum=1, **kwargs)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ab", "xs='ab' must be a sequence of names, not one string; write ('ab',)"),
        (3, "xs=3 must be a sequence of names, not one int; write (3,)"),
        (None, "xs=None must be a sequence of names, not None"),
    ],
)
def test_one_item_is_not_a_sequence(value: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        require_sequence("xs", value, of="names")
    assert str(caught.value) == message


def test_a_sequence_becomes_a_tuple_and_an_iteration_error_is_not_disguised() -> None:
    assert require_sequence("xs", ["a", "b"], of="names") == ("a", "b")
    assert require_sequence("xs", (c for c in "ab"), of="names") == ("a", "b")

    def broken() -> Iterator[str]:
        yield "a"
        raise TypeError("a bug inside the caller's iterable")

    with pytest.raises(TypeError, match="a bug inside"):
        require_sequence("xs", broken(), of="names")


def test_item_checks_name_the_index() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        typed_tuple("rules", [CONSTANT, "x"], Constant, owner="Plan")
    assert (str(caught.value), caught.value.field) == (
        "Plan.rules[1]='x' must be a Constant",
        "rules[1]",
    )
    with pytest.raises(InvalidArgumentError) as caught:
        validate_ops("ops", name_tuple("ops", ["generate", "score"]))
    assert (caught.value.field, caught.value.value) == ("ops[1]", "score")
    with pytest.raises(InvalidArgumentError) as caught:
        validate_views("views", ("ft", "null_x"), owner="Rule")
    assert str(caught.value).startswith("Rule.views: unknown view 'null_x'")
    assert caught.value.field == "views[1]"
