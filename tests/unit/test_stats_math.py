"""Null statistics, z-scores, ablation response curves and the logprob-based probe maths."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swaysim import RollingLogprob
from swaysim._backend.models import SYNTH_DISTS, ModeModel, ScaledModel
from swaysim._chaos.corrupt import corrupt
from swaysim._runner.divergence import (
    ZScore,
    divergence,
    mean_logprob_shift,
    mean_std,
    preference_margin,
    response_curve,
    z_score,
)
from swaysim._runner.output_validation import validate_logprob, validate_rolling
from swaysim._types import DummyResponses
from swaysim.errors import InvalidArgumentError, ProbeMathError

BASE_MODEL = ModeModel("base", DummyResponses())
FT_MODEL = ModeModel("ft", DummyResponses())


# ---------------------------------------------------------------- mean and std


def test_mean_std_uses_the_population_std() -> None:
    # mean 2.5; squared deviations 2.25, 0.25, 0.25, 2.25 -> variance 5/4.
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(1.25)))


def test_one_null_run_has_std_zero() -> None:
    assert mean_std([0.3]) == (0.3, 0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20))
def test_mean_std_agrees_with_the_standard_library(values: list[float]) -> None:
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-9)
    assert std == pytest.approx(statistics.pstdev(values), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [([], "at least one value"), ([0.1, math.nan], "the first nan"), ([math.inf], "inf")],
)
def test_mean_std_rejects_what_it_cannot_average(values: list[float], fragment: str) -> None:
    with pytest.raises(ProbeMathError, match=rf"^null_adapter: .*{fragment}"):
        mean_std(values, label="null_adapter")


# ---------------------------------------------------------------- z-scores


def test_z_score_divides_by_the_null_std() -> None:
    assert z_score(5.0, 3.0, 0.5) == ZScore(4.0, False, "")
    assert z_score(2.0, 3.0, 0.5).value == -2.0


def test_a_null_std_below_the_floor_is_flagged_not_divided_by() -> None:
    flagged = z_score(0.4, 0.1, 0.0)
    assert flagged.value is None
    assert flagged.degenerate
    assert "std 0 is below the floor 1e-06" in flagged.reason
    assert z_score(0.4, 0.1, 1e-3, std_floor=1e-2).degenerate
    # At the floor exactly, the z-score is defined.
    at_floor = z_score(0.4, 0.1, 1e-3, std_floor=1e-3)
    assert at_floor.value == pytest.approx(300.0)
    assert not at_floor.degenerate


@pytest.mark.parametrize(
    ("value", "mean", "std", "fragment"),
    [
        (math.nan, 0.0, 1.0, "value=nan"),
        (1.0, math.inf, 1.0, "null mean=inf"),
        (1.0, 0.0, math.nan, "null std=nan"),
    ],
)
def test_non_finite_z_inputs_are_errors(
    value: float, mean: float, std: float, fragment: str
) -> None:
    with pytest.raises(ProbeMathError, match=rf"^z-score: {fragment} is not finite"):
        z_score(value, mean, std)


@pytest.mark.parametrize("floor", [0.0, -1.0, math.inf, math.nan])
def test_the_std_floor_must_be_positive_and_finite(floor: float) -> None:
    with pytest.raises(InvalidArgumentError, match=r"std_floor=.* must be positive and finite"):
        z_score(1.0, 0.0, 1.0, std_floor=floor)


def test_numpy_scalars_are_numbers_too() -> None:
    floor = np.float32(1e-4)
    assert z_score(0.4, 0.1, 1e-3, std_floor=floor).value == pytest.approx(300.0)  # type: ignore[arg-type]
    lams = np.array([0.0, 0.5, 1.0, 1.25], dtype=np.float32)
    divergences = np.array([0.0, 0.2, 0.4, 0.5], dtype=np.float32)
    curve = response_curve(lams, divergences)  # type: ignore[arg-type]
    assert curve.lams == (0.0, 0.5, 1.0, 1.25)
    assert curve.monotonic
    assert curve.overshoot == pytest.approx(1.25)


def test_a_negative_std_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match=r"std=-0\.5 must be >= 0"):
        z_score(1.0, 0.0, -0.5)


def test_a_null_of_identical_runs_flags_the_z_of_any_statistic() -> None:
    mean, std = mean_std([0.25, 0.25, 0.25])
    result = z_score(0.4, mean, std)
    assert (result.value, result.degenerate) == (None, True)


# ---------------------------------------------------------------- response curves


def test_a_rising_curve_is_monotonic_and_its_overshoot_is_the_ratio_at_1_25() -> None:
    curve = response_curve([0.0, 0.5, 1.0, 1.25], [0.0, 0.2, 0.4, 0.5])
    assert curve.monotonic
    assert curve.largest_drop == 0.0
    assert curve.overshoot == pytest.approx(1.25)
    assert curve.overshoot_note == ""


def test_points_are_sorted_by_lam_before_judging() -> None:
    curve = response_curve([1.0, 0.0, 1.25, 0.5], [0.4, 0.0, 0.5, 0.2])
    assert curve.lams == (0.0, 0.5, 1.0, 1.25)
    assert curve.divergences == (0.0, 0.2, 0.4, 0.5)
    assert curve.monotonic


def test_a_drop_inside_zero_to_one_beyond_the_tolerance_is_not_monotonic() -> None:
    curve = response_curve([0.0, 0.5, 0.75, 1.0], [0.0, 0.3, 0.25, 0.4])
    assert not curve.monotonic
    assert curve.largest_drop == pytest.approx(0.05)
    assert response_curve([0.0, 0.5, 0.75, 1.0], [0.0, 0.3, 0.25, 0.4], tolerance=0.06).monotonic


def test_a_drop_after_lam_one_does_not_break_monotonicity() -> None:
    curve = response_curve([0.0, 1.0, 1.25], [0.0, 0.4, 0.2])
    assert curve.monotonic
    assert curve.overshoot == pytest.approx(0.5)


def test_overshoot_is_none_with_a_reason_when_it_is_undefined() -> None:
    assert response_curve([0.0, 0.5, 1.0], [0.0, 0.1, 0.2]).overshoot_note == (
        "no lam=1.25 in the sweep"
    )
    assert response_curve([0.0, 0.5, 1.25], [0.0, 0.1, 0.2]).overshoot_note == (
        "no lam=1.0 in the sweep"
    )
    flat = response_curve([0.0, 1.0, 1.25], [0.0, 0.0, 0.1])
    assert flat.overshoot is None
    assert "divergence at lam=1.0 is 0.0" in flat.overshoot_note


@pytest.mark.parametrize(
    ("lams", "divs", "error", "fragment"),
    [
        ([0.0, 1.0], [0.0], InvalidArgumentError, "lams has 2 entries but divergences 1"),
        ([0.0, 0.5, 0.5], [0.0, 0.1, 0.1], InvalidArgumentError, "repeat a value"),
        ([0.0, math.nan], [0.0, 0.1], InvalidArgumentError, "lam=nan must be a finite number"),
        ([1.0, 1.25], [0.1, 0.2], InvalidArgumentError, "1 value.s. in \\[0, 1\\]"),
        ([0.0, 0.5], [0.0, math.nan], ProbeMathError, "^lam=0.5: divergence nan"),
        ([0.0, 0.5], [0.0, -0.1], ProbeMathError, "^lam=0.5: divergence -0.1"),
        ([0.0, 0.5], [0.0, True], ProbeMathError, "^lam=0.5: divergence True"),
        ([0.0, 0.5], [0.0, "0.1"], ProbeMathError, "^lam=0.5: divergence '0.1'"),
    ],
)
def test_bad_sweeps_are_errors(
    lams: list[float], divs: list[float], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        response_curve(lams, divs)


def test_the_seeds_scaled_views_rise_monotonically_and_overshoot() -> None:
    """JS(base, scaled(lam)) on the dummy: 0, 0.0148, 0.0882, 0.2394, 0.4033, 0.5101.

    Each scaled view is the seed's log-linear blend ``(1 - lam) * base + lam * ft``;
    the expected JS is recomputed here from that formula as an entropy difference.
    """
    lams = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    base = SYNTH_DISTS["base"]
    observed = [
        divergence(
            base,
            ScaledModel(BASE_MODEL, FT_MODEL, lam).next_token_dist("prompt", 8),
            labels=("base", f"scaled_{lam:.2f}"),
            normalized=(True, False),
        )
        for lam in lams
    ]

    def entropy(p: list[float]) -> float:
        return -math.fsum(x * math.log(x) for x in p if x > 0)

    def probs(logprobs: list[float]) -> list[float]:
        weights = [math.exp(x) for x in logprobs]
        return [w / math.fsum(weights) for w in weights]

    base_lp = [float(x) for x in base.logprobs]
    ft_lp = [float(x) for x in SYNTH_DISTS["ft"].logprobs]
    p = probs(base_lp)
    expected = []
    for lam in lams:
        q = probs([(1 - lam) * b + lam * f for b, f in zip(base_lp, ft_lp, strict=True)])
        m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
        expected.append(entropy(m) - (entropy(p) + entropy(q)) / 2)
    # The view blends in float32, this formula in float64.
    assert observed == pytest.approx(expected, abs=1e-6)

    curve = response_curve(lams, observed)
    assert curve.monotonic
    assert curve.overshoot == pytest.approx(expected[-1] / expected[-2], rel=1e-5)
    assert curve.overshoot is not None
    assert curve.overshoot > 1.0


# ---------------------------------------------------------------- logprob_of and preference_flip


def test_preference_margin_is_chosen_minus_rejected() -> None:
    assert preference_margin(-1.25, -3.5, label="ft") == 2.25
    assert preference_margin(-4.0, -3.0, label="base") == -1.0


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf", "corrupt_mass"])
def test_a_corrupt_logprob_is_an_error_naming_view_and_side(kind: str) -> None:
    bad = corrupt(kind, -10.0)
    shown = {"nan": "nan", "posinf": "inf", "neginf": "-inf", "corrupt_mass": "11.0"}[kind]
    with pytest.raises(ProbeMathError, match=rf"^ft rejected: logprob {shown} is"):
        preference_margin(-1.0, bad, label="ft")
    with pytest.raises(ProbeMathError, match=rf"^null_3 chosen: logprob {shown} is"):
        preference_margin(bad, -1.0, label="null_3")


def test_validate_logprob_accepts_finite_non_positive_numbers_only() -> None:
    assert validate_logprob(-2, label="base") == -2.0
    assert validate_logprob(np.float32(-0.5), label="base") == -0.5
    assert validate_logprob(0.0, label="base") == 0.0
    with pytest.raises(ProbeMathError, match="logprob True is not a number"):
        validate_logprob(True, label="base")
    with pytest.raises(ProbeMathError, match=r"logprob 0\.5 is positive"):
        validate_logprob(0.5, label="base")


# ---------------------------------------------------------------- rolling and perplexity_shift


def rolling(logprobs: list[float], *, total: float | None = None) -> RollingLogprob:
    n = len(logprobs) + 1
    return RollingLogprob(
        np.arange(n, dtype=np.int64),
        np.array(logprobs, dtype=np.float32),
        n,
        math.fsum(logprobs) if total is None else total,
    )


def test_the_synth_rolling_shift_is_half_a_nat_per_token() -> None:
    # The seed scores every token -2.0 on base and -1.5 on ft.
    text = "one two three four five"
    base = BASE_MODEL.rolling_logprob(text)
    ft = FT_MODEL.rolling_logprob(text)
    validate_rolling(base, label="base")
    validate_rolling(ft, label="ft")
    shift = mean_logprob_shift(base, ft)
    assert shift == pytest.approx(-1.5 - -2.0)
    assert shift == pytest.approx(math.log(base.perplexity / ft.perplexity))


def test_a_one_token_text_has_no_perplexity_shift() -> None:
    one = BASE_MODEL.rolling_logprob("word")
    validate_rolling(one, label="base")
    with pytest.raises(ProbeMathError, match=r"^ft RollingLogprob: num_tokens=1 scores no token"):
        mean_logprob_shift(rolling([-1.0]), one, labels=("base", "ft"))


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf", "corrupt_length"])
def test_every_corrupt_rolling_is_an_error_naming_the_view(kind: str) -> None:
    clean = FT_MODEL.rolling_logprob("a b c")
    with pytest.raises(ProbeMathError, match=r"^scaled_0\.50 RollingLogprob: ") as caught:
        validate_rolling(corrupt(kind, clean), label="scaled_0.50")
    if kind == "corrupt_length":
        assert "num_tokens=3, 3 token_ids and 3 logprobs; expected 3 token_ids and 2" in str(
            caught.value
        )
    else:
        assert "non-finite" in str(caught.value)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (rolling([-1.0, -2.0], total=-2.5), r"total_logprob=-2\.5 does not equal .*-3\.0"),
        (rolling([-1.0, -2.0], total=math.nan), "total_logprob=nan is not finite"),
        (rolling([-1.0, 0.5]), r"holds 0\.5 at position 1"),
        (
            RollingLogprob(np.arange(3), np.zeros(2, dtype=np.float32), 0, 0.0),
            "num_tokens=0 must be an integer >= 1",
        ),
        (
            RollingLogprob(np.arange(2), np.zeros(2, dtype=np.float32), 3, 0.0),
            "2 token_ids and 2 logprobs; expected 3 token_ids and 2",
        ),
    ],
)
def test_each_rolling_contract_breach_is_a_clear_error(bad: RollingLogprob, fragment: str) -> None:
    with pytest.raises(ProbeMathError, match=rf"^base RollingLogprob: .*{fragment}"):
        validate_rolling(bad, label="base")


def test_a_total_within_float32_summation_error_is_accepted() -> None:
    validate_rolling(rolling([-1.0] * 999, total=-999.0 + 5e-4), label="base")
