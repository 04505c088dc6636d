"""Every targeting form of a fault rule, and how rules compose, on both loops."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InjectedFatalError,
    InjectedViewEnterError,
)

if TYPE_CHECKING:
    from swaysim import DummyView


def make_backend(*rules: FaultRule, seed: int = 0, **kwargs: Any) -> AsyncDummyDifferentialBackend:
    responses = DummyResponses(generations={"p": "answer", "q": "other"})
    return AsyncDummyDifferentialBackend(
        responses, responses, faults=FaultPlan(rules, seed=seed), **kwargs
    )


def fired(backend: AsyncDummyDifferentialBackend) -> list[tuple[str, str, str, int]]:
    return [(f.op, f.view_id, f.prompt, f.call_index) for f in backend.fault_log]


async def score_all_ops(view: DummyView, prompt: str = "p") -> None:
    await view.generate(prompt, max_new_tokens=1)
    await view.logprob_of(prompt, "x")
    await view.rolling_logprob(prompt)
    await view.next_token_dist(prompt)
    await view.next_token_dist_batch([prompt])


async def test_an_op_filter_fires_on_that_op_only() -> None:
    backend = make_backend(FaultRule("nan", ops=("rolling_logprob", "next_token_dist")))
    async with backend.as_base() as view:
        await score_all_ops(view)
    assert fired(backend) == [
        ("rolling_logprob", "base", "p", 1),
        ("next_token_dist", "base", "p", 1),
    ]


async def test_without_an_op_filter_a_kind_fires_on_every_op_it_applies_to() -> None:
    backend = make_backend(FaultRule("corrupt_length"))
    async with backend.as_base() as view:
        await score_all_ops(view)
    assert [op for op, *_ in fired(backend)] == [
        "rolling_logprob",
        "next_token_dist",
        "next_token_dist_batch",
    ]


async def test_a_view_kind_filter_fires_on_every_view_of_that_kind() -> None:
    backend = make_backend(FaultRule("nan", ops=("logprob_of",), views=("scaled",)))
    for context in (
        backend.as_base(),
        backend.as_finetuned(),
        backend.as_scaled_adapter(0.5),
        backend.as_scaled_adapter(1.25),
        backend.as_null_adapter(1),
    ):
        async with context as view:
            await view.logprob_of("p", "x")
    assert [view for _, view, _, _ in fired(backend)] == ["scaled_0.50", "scaled_1.25"]


async def test_a_view_id_filter_fires_on_that_view_only() -> None:
    backend = make_backend(FaultRule("nan", ops=("logprob_of",), views=("null_2", "scaled_0.50")))
    for context in (
        backend.as_null_adapter(1),
        backend.as_null_adapter(2),
        backend.as_null_adapter(2, rank_scale=2.0),
        backend.as_scaled_adapter(0.5),
        backend.as_scaled_adapter(0.25),
    ):
        async with context as view:
            await view.logprob_of("p", "x")
    assert [view for _, view, _, _ in fired(backend)] == ["null_2", "scaled_0.50"]


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("q*", ["q1", "q22", "q"]),
        ("q?", ["q1"]),
        ("*2*", ["q22", "x2"]),
        ("[!q]*", ["a", "x2"]),
        ("Q*", []),
    ],
)
async def test_a_prompt_glob_selects_prompts_case_sensitively(
    glob: str, expected: list[str]
) -> None:
    backend = make_backend(FaultRule("nan", ops=("next_token_dist",), prompt=glob))
    async with backend.as_base() as view:
        for prompt in ["q1", "a", "q22", "x2", "q"]:
            await view.next_token_dist(prompt)
    assert [prompt for _, _, prompt, _ in fired(backend)] == expected


async def test_the_rolling_text_and_the_logprob_prompt_are_matched() -> None:
    backend = make_backend(FaultRule("nan", prompt="target*"))
    async with backend.as_base() as view:
        await view.rolling_logprob("target text")
        await view.rolling_logprob("other text")
        await view.logprob_of("target prompt", "completion")
        await view.logprob_of("other prompt", "target")
    assert fired(backend) == [
        ("rolling_logprob", "base", "target text", 1),
        ("logprob_of", "base", "target prompt", 1),
    ]


async def calls_of_one_key(backend: AsyncDummyDifferentialBackend, count: int) -> list[int]:
    async with backend.as_base() as view:
        for _ in range(count):
            await view.logprob_of("p", "x")
    return [index for _, _, _, index in fired(backend)]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (FaultRule("nan", nth=3), [3]),
        (FaultRule("nan", after=7), [8, 9, 10]),
        (FaultRule("nan", after=0), list(range(1, 11))),
        (FaultRule("nan", every=4), [4, 8]),
        (FaultRule("nan", every=1), list(range(1, 11))),
        (FaultRule("nan", every=3, after=3), [6, 9]),
        (FaultRule("nan", nth=12), []),
        (FaultRule("nan", max_fires=2), [1, 2]),
        (FaultRule("nan", every=2, max_fires=3), [2, 4, 6]),
    ],
    ids=[
        "nth",
        "after",
        "after0",
        "every",
        "every1",
        "every+after",
        "nth-never",
        "max",
        "every+max",
    ],
)
async def test_call_count_forms(rule: FaultRule, expected: list[int]) -> None:
    assert await calls_of_one_key(make_backend(rule), 10) == expected


async def test_calls_are_counted_per_op_view_and_prompt() -> None:
    backend = make_backend(FaultRule("nan", nth=2))
    async with backend.as_base() as base:
        await base.logprob_of("a", "x")
        await base.logprob_of("b", "x")  # first call of another prompt: no fire
        await base.next_token_dist("a")  # first call of another op: no fire
        await base.logprob_of("a", "y")  # another completion is another key
        await base.logprob_of("a", "x")  # second call of the first key: fires
    async with backend.as_finetuned() as ft:
        await ft.logprob_of("a", "x")  # first call on another view: no fire
    assert fired(backend) == [("logprob_of", "base", "a", 2)]


async def test_view_entries_are_counted_per_view_for_enter_faults() -> None:
    backend = make_backend(FaultRule("enter_error", views=("ft",), every=2))
    outcomes: list[str] = []
    for enter in [backend.as_finetuned, backend.as_base] * 3 + [backend.as_finetuned]:
        try:
            async with enter() as view:
                outcomes.append(view.id)
        except InjectedViewEnterError as error:
            outcomes.append(f"{error.view_id} failed (entry {error.call_index})")
    assert outcomes == [
        "ft",
        "base",
        "ft failed (entry 2)",
        "base",
        "ft",
        "base",
        "ft failed (entry 4)",
    ]


async def test_probability_zero_never_fires_and_one_always_does() -> None:
    never = make_backend(FaultRule("nan", probability=0.0))
    always = make_backend(FaultRule("nan", probability=1.0))
    assert await calls_of_one_key(never, 20) == []
    assert await calls_of_one_key(always, 20) == list(range(1, 21))


async def test_a_probability_fires_about_that_often_and_the_same_calls_every_run() -> None:
    async def firing_set(seed: int) -> set[tuple[str, int]]:
        backend = make_backend(
            FaultRule("nan", ops=("next_token_dist",), probability=0.3), seed=seed
        )
        async with backend.as_base() as view:
            for round_ in range(4):
                for i in range(100):
                    await view.next_token_dist(f"prompt {i}", top_k=4 + round_)
        return {(prompt, index) for _, _, prompt, index in fired(backend)}

    first = await firing_set(seed=7)
    # 400 Bernoulli(0.3) trials: mean 120, sd about 9.2; allow 4 sd.
    assert abs(len(first) - 120) < 37
    assert await firing_set(seed=7) == first
    other = await firing_set(seed=8)
    assert other != first
    assert abs(len(other) - 120) < 37


async def test_max_fires_is_a_cap_over_every_key() -> None:
    backend = make_backend(FaultRule("nan", ops=("logprob_of",), max_fires=3))
    async with backend.as_base() as view:
        for prompt in "abcdef":
            await view.logprob_of(prompt, "x")
    assert [prompt for _, _, prompt, _ in fired(backend)] == ["a", "b", "c"]


async def test_a_window_fires_only_inside_its_loop_time_interval() -> None:
    backend = make_backend(FaultRule("nan", ops=("logprob_of",), window=(10.0, 20.0)))
    async with backend.as_base() as view:
        times = [0.0, 9.5, 10.0, 15.0, 19.99, 20.0, 30.0]
        start = anyio.current_time()
        for at in times:
            await anyio.sleep(start + at - anyio.current_time())
            await view.logprob_of(f"t={at}", "x")
    assert [prompt for _, _, prompt, _ in fired(backend)] == ["t=10.0", "t=15.0", "t=19.99"]
    assert [round(f.time, 6) for f in backend.fault_log] == [10.0, 15.0, 19.99]


async def test_the_first_matching_rule_wins() -> None:
    backend = make_backend(
        FaultRule("fatal", name="narrow", ops=("logprob_of",), prompt="bad"),
        FaultRule("nan", name="broad", ops=("logprob_of",)),
        FaultRule("posinf", name="shadowed", ops=("logprob_of",)),
    )
    async with backend.as_base() as view:
        with pytest.raises(InjectedFatalError):
            await view.logprob_of("bad", "x")
        assert math.isnan(await view.logprob_of("good", "x"))
    assert [f.rule_name for f in backend.fault_log] == ["narrow", "broad"]
    assert backend.statistics().faults_fired == {"broad": 1, "narrow": 1}


async def test_a_rule_whose_draw_says_no_lets_the_next_rule_fire() -> None:
    backend = make_backend(
        FaultRule("fatal", name="coin", ops=("next_token_dist",), probability=0.5),
        FaultRule("nan", name="fallback", ops=("next_token_dist",)),
    )
    async with backend.as_base() as view:
        for i in range(40):
            with contextlib.suppress(InjectedFatalError):
                await view.next_token_dist(f"p{i}")
    names = [f.rule_name for f in backend.fault_log]
    assert len(names) == 40  # every call fired exactly one rule
    assert 5 < names.count("coin") < 35
    assert names.count("fallback") == 40 - names.count("coin")


async def test_an_exhausted_rule_lets_the_next_rule_fire() -> None:
    backend = make_backend(
        FaultRule("nan", name="first", max_fires=1),
        FaultRule("posinf", name="second", nth=2),
    )
    assert await calls_of_one_key(backend, 3) == [1, 2]
    assert [f.rule_name for f in backend.fault_log] == ["first", "second"]


async def test_filters_combine_with_and() -> None:
    backend = make_backend(FaultRule("nan", ops=("logprob_of",), views=("ft",), prompt="p*", nth=2))
    async with backend.as_finetuned() as ft:
        for prompt in ["p1", "p1", "q1", "q1", "p2"]:
            await ft.logprob_of(prompt, "x")
            await ft.next_token_dist(prompt)
    async with backend.as_base() as base:
        for prompt in ["p1", "p1"]:
            await base.logprob_of(prompt, "x")
    assert fired(backend) == [("logprob_of", "ft", "p1", 2)]
