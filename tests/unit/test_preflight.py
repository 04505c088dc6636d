"""The async preflight finite check: one forward pass per view, (ok, reason), never a crash."""

from __future__ import annotations

import math
from typing import Any

import anyio
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
    PreflightCheckable,
    TokenDist,
)


def dist_with(values: list[float], tail: float | None = -3.0) -> TokenDist:
    return TokenDist(
        np.arange(len(values), dtype=np.int64), np.array(values, dtype=np.float32), 100, tail
    )


def with_preflight_dist(dist: TokenDist) -> DummyResponses:
    return DummyResponses(token_dists={"preflight": dist})


FINITE = [-0.1, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]
TWO_NAN = [-0.1, math.nan, -3.0, math.nan, -5.0, -6.0, -7.0, -8.0]
ONE_INF = [math.inf, -2.0, -3.0, -4.0]


async def test_a_healthy_backend_passes_with_one_forward_pass_per_view() -> None:
    backend = AsyncDummyDifferentialBackend()
    assert await backend.preflight_finite_check() == (True, "")
    stats = backend.statistics()
    assert stats.forward_passes == 2
    assert dict(stats.entries_per_view) == {"base": 1, "ft": 1}
    assert dict(stats.calls_per_view) == {"base": 1, "ft": 1}
    assert backend.is_free()


async def test_scaled_and_null_views_are_checked_when_asked() -> None:
    backend = AsyncDummyDifferentialBackend()
    ok = await backend.preflight_finite_check(scaled=(0.5, 1.25), null_seeds=(0, 42))
    assert ok == (True, "")
    stats = backend.statistics()
    assert stats.forward_passes == 6
    assert dict(stats.entries_per_view) == {
        "base": 1,
        "ft": 1,
        "null_0": 1,
        "null_42": 1,
        "scaled_0.50": 1,
        "scaled_1.25": 1,
    }


@pytest.mark.parametrize("broken", ["base", "ft"])
async def test_a_non_finite_view_is_named_with_its_count_and_the_prompt(broken: str) -> None:
    bad = with_preflight_dist(dist_with(TWO_NAN))
    good = with_preflight_dist(dist_with(FINITE))
    backend = AsyncDummyDifferentialBackend(
        bad if broken == "base" else good, bad if broken == "ft" else good
    )
    ok, reason = await backend.preflight_finite_check()
    assert not ok
    assert reason == f"{broken} view produced 2/8 non-finite logprob(s) on prompt 'preflight'"
    assert backend.is_free()


async def test_a_non_finite_tail_fails_too() -> None:
    backend = AsyncDummyDifferentialBackend(with_preflight_dist(dist_with(FINITE, math.nan)))
    ok, reason = await backend.preflight_finite_check()
    assert not ok
    assert reason.startswith("base view produced 0/8 non-finite logprob(s)")
    assert "tail_logprob (nan)" in reason
    assert "'preflight'" in reason


async def test_an_overflowing_scaled_view_is_named() -> None:
    base = with_preflight_dist(dist_with([-1.0] * 8))
    ft = with_preflight_dist(dist_with([-3e30] * 8))
    backend = AsyncDummyDifferentialBackend(base, ft)
    with pytest.warns(RuntimeWarning, match="overflow"):  # numpy's, as in the seed
        ok, reason = await backend.preflight_finite_check(scaled=(0.5, 1e10))
    assert not ok
    assert reason == (
        "scaled_10000000000.00 view produced 8/8 non-finite logprob(s) on prompt 'preflight'"
    )


async def test_a_null_view_with_injected_nan_is_named() -> None:
    faults = FaultPlan((FaultRule("nan", views=("null",)),))
    backend = AsyncDummyDifferentialBackend(faults=faults)
    assert await backend.preflight_finite_check(scaled=(0.5,)) == (True, "")
    ok, reason = await backend.preflight_finite_check(null_seeds=(3,))
    assert not ok
    assert reason == "null_3 view produced 8/8 non-finite logprob(s) on prompt 'preflight'"


async def test_an_exception_becomes_false_and_a_reason_never_a_crash() -> None:
    faults = FaultPlan((FaultRule("fatal", name="boom", views=("ft",)),))
    backend = AsyncDummyDifferentialBackend(faults=faults)
    ok, reason = await backend.preflight_finite_check()
    assert not ok
    assert reason.startswith("preflight raised InjectedFatalError on the ft view: ")
    assert backend.is_free()


async def test_garbage_canned_data_is_reported_not_raised() -> None:
    garbage: Any = TokenDist(np.arange(2), np.array(["x", "y"]), 10, None)
    backend = AsyncDummyDifferentialBackend(with_preflight_dist(garbage))
    ok, reason = await backend.preflight_finite_check()
    assert not ok
    assert reason.startswith("preflight raised ValueError on the base view: ")


async def test_a_failing_view_entry_is_reported() -> None:
    faults = FaultPlan((FaultRule("enter_error", views=("scaled",)),))
    backend = AsyncDummyDifferentialBackend(faults=faults)
    ok, reason = await backend.preflight_finite_check(scaled=(0.25,))
    assert not ok
    assert reason.startswith("preflight raised InjectedViewEnterError on the scaled_0.25 view")
    assert backend.is_free()


async def test_preflight_inside_a_held_view_reports_the_nesting() -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_finetuned():
        ok, reason = await backend.preflight_finite_check()
    assert not ok
    assert reason.startswith("preflight raised NestedViewError on the base view")


async def test_preflight_waits_its_turn_on_an_exclusive_backend() -> None:
    backend = AsyncDummyDifferentialBackend()
    results: list[tuple[bool, str]] = []

    async def holder() -> None:
        async with backend.as_null_adapter(1):
            await anyio.sleep(2.0)

    async def check() -> None:
        await anyio.sleep(0.5)
        results.append(await backend.preflight_finite_check())
        results.append((anyio.current_time() == 2.0, "finished when the holder left"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        tg.start_soon(check)
    assert results == [(True, ""), (True, "finished when the holder left")]
    assert backend.statistics().waits == 1


async def test_cancellation_propagates_and_frees_the_gate() -> None:
    backend = AsyncDummyDifferentialBackend(latency=LatencyPlan(default=Constant(1.0)))
    with anyio.move_on_after(1.5) as scope:  # base done at 1.0, ft still in its forward pass
        await backend.preflight_finite_check()
        pytest.fail("preflight finished despite two 1 s forward passes")
    assert scope.cancelled_caught
    assert backend.is_free()
    assert backend.statistics().entries == backend.statistics().exits == 2


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"scaled": (math.nan,)}, "lam=nan"),
        ({"scaled": 0.5}, "scaled=0.5 must be a sequence"),
        ({"null_seeds": 3}, "null_seeds=3 must be a sequence"),
        ({"null_seeds": (-1,)}, "seed=-1 must be an integer >= 0"),
        ({"scaled": (0.5, "x")}, "lam='x' must be a number"),
    ],
)
async def test_invalid_arguments_raise_before_any_view_is_entered(
    kwargs: dict[str, Any], complaint: str
) -> None:
    backend = AsyncDummyDifferentialBackend()
    with pytest.raises(InvalidArgumentError, match=complaint):
        await backend.preflight_finite_check(**kwargs)
    assert backend.statistics().entries == 0


def test_the_backend_is_preflight_checkable() -> None:
    assert isinstance(AsyncDummyDifferentialBackend(), PreflightCheckable)


# -- side by side with dlm-sway 0.1.0 --------------------------------------------------


@pytest.mark.parametrize(
    ("base_values", "ft_values"),
    [(None, None), (TWO_NAN, None), (None, TWO_NAN), (ONE_INF, TWO_NAN), (FINITE, FINITE)],
)
async def test_the_verdict_matches_dlm_sway(
    base_values: list[float] | None, ft_values: list[float] | None
) -> None:
    dummy = pytest.importorskip(
        "dlm_sway.backends.dummy", reason="dlm-sway (a dev dependency) is not installed"
    )
    scoring = pytest.importorskip("dlm_sway.core.scoring")

    def ours(values: list[float] | None) -> DummyResponses:
        return DummyResponses() if values is None else with_preflight_dist(dist_with(values))

    def theirs(values: list[float] | None) -> Any:
        if values is None:
            return dummy.DummyResponses()
        ours_dist = dist_with(values)
        return dummy.DummyResponses(
            token_dists={
                "preflight": scoring.TokenDist(
                    ours_dist.token_ids, ours_dist.logprobs, 100, ours_dist.tail_logprob
                )
            }
        )

    seed = dummy.DummyDifferentialBackend(base=theirs(base_values), ft=theirs(ft_values))
    backend = AsyncDummyDifferentialBackend(ours(base_values), ours(ft_values))
    assert await backend.preflight_finite_check() == seed.preflight_finite_check()
