"""Divergence maths: validation of next-token distributions, alignment, KL and JS.

Expected values are hand-derived closed forms, or an independent formula (JS as
an entropy difference, computed with ``math`` on Python floats) that shares no
code with the implementation's KL-based one.
"""

from __future__ import annotations

import math
import pickle
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from swaysim import SwaysimError, TokenDist
from swaysim._backend.models import SYNTH_DISTS, ModeModel, NullModel, ScaledModel
from swaysim._chaos.corrupt import corrupt
from swaysim._runner.divergence import (
    _check_js_bounds,
    aligned_probs,
    divergence,
    js_divergence,
    kl_divergence,
)
from swaysim._runner.output_validation import Normalization, validate_token_dist
from swaysim._types import DummyResponses
from swaysim.errors import InvalidArgumentError, ProbeMathError

if TYPE_CHECKING:
    import random
    from collections.abc import Sequence

LN2 = math.log(2.0)
SYNTH_BASE = SYNTH_DISTS["base"]
SYNTH_FT = SYNTH_DISTS["ft"]


def dist(
    probs: dict[int, float], tail: float | None = None, *, vocab: int = 100, ordered: bool = True
) -> TokenDist:
    """A TokenDist over ``probs`` (id -> probability), sorted by descending probability."""
    items = sorted(probs.items(), key=lambda kv: -kv[1]) if ordered else list(probs.items())
    ids = np.array([i for i, _ in items], dtype=np.int64)
    logprobs = np.array([math.log(p) for _, p in items], dtype=np.float32)
    return TokenDist(ids, logprobs, vocab, tail)


def raw_dist(
    ids: Sequence[int], logprobs: Sequence[float], tail: float | None = None, vocab: int = 100
) -> TokenDist:
    return TokenDist(
        np.array(ids, dtype=np.int64),
        np.array(logprobs, dtype=np.float32),
        vocab,
        tail,
    )


def entropy(p: Sequence[float]) -> float:
    return -math.fsum(x * math.log(x) for x in p if x > 0.0)


def js_by_entropy(p: Sequence[float], q: Sequence[float]) -> float:
    """JS = H((p+q)/2) - (H(p) + H(q)) / 2: an independent formula for JS."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return entropy(m) - (entropy(p) + entropy(q)) / 2


def kl_by_loop(p: Sequence[float], q: Sequence[float]) -> float:
    return math.fsum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0.0)


def normalised(logprobs: Sequence[float]) -> list[float]:
    weights = [math.exp(float(x)) for x in logprobs]
    total = math.fsum(weights)
    return [w / total for w in weights]


# ---------------------------------------------------------------- alignment


def test_each_missing_slot_gets_the_whole_tail_when_it_is_the_only_one() -> None:
    base = dist({0: 0.6, 1: 0.3}, math.log(0.1))
    ft = dist({1: 0.5, 2: 0.4}, math.log(0.1))
    p_base, p_ft = aligned_probs(base, ft)
    assert p_base.tolist() == pytest.approx([0.6, 0.3, 0.1], rel=1e-6)
    assert p_ft.tolist() == pytest.approx([0.1, 0.5, 0.4], rel=1e-6)


def test_the_tail_is_spread_evenly_over_every_slot_a_side_misses() -> None:
    base = dist({0: 0.7}, math.log(0.3))
    ft = dist({1: 0.6, 2: 0.4})
    p_base, p_ft = aligned_probs(base, ft)
    assert p_base.tolist() == pytest.approx([0.7, 0.15, 0.15], rel=1e-6)
    assert p_ft.tolist() == pytest.approx([0.0, 0.6, 0.4], rel=1e-6)


@pytest.mark.parametrize("tail", [None, 0.0])
def test_a_none_or_zero_tail_spreads_nothing_and_the_rest_is_renormalised(
    tail: float | None,
) -> None:
    base = dist({0: 0.5, 1: 0.25}, tail)
    ft = dist({1: 0.6, 2: 0.3}, math.log(0.1))
    p_base, p_ft = aligned_probs(base, ft)
    assert p_base.tolist() == pytest.approx([2 / 3, 1 / 3, 0.0], rel=1e-6)
    assert p_ft.tolist() == pytest.approx([0.1, 0.6, 0.3], rel=1e-6)


def test_a_listed_token_whose_probability_underflows_is_not_a_missing_slot() -> None:
    # exp(-800) is 0.0 in float64; slot 1 is listed, so only slot 2 shares the tail.
    base = raw_dist([0, 1], [math.log(0.8), -800.0], math.log(0.2))
    ft = dist({2: 0.9, 0: 0.1})
    p_base, _ = aligned_probs(base, ft)
    assert p_base.tolist() == pytest.approx([0.8, 0.0, 0.2], rel=1e-6)


def test_a_distribution_covering_the_union_drops_its_tail_by_renormalising() -> None:
    p_base, _ = aligned_probs(SYNTH_BASE, SYNTH_FT)
    expected = normalised(SYNTH_BASE.logprobs.tolist())
    assert p_base.tolist() == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- KL and JS closed forms


def test_js_of_a_half_half_and_a_point_mass_is_three_quarters_ln_four_thirds() -> None:
    # m = (3/4, 1/4); KL(p||m) = ln(4/3)/2, KL(q||m) = ln(4/3); JS = 3/4 ln(4/3).
    assert js_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.75 * math.log(4 / 3))


def test_js_of_disjoint_supports_is_ln2_and_of_identical_ones_is_zero() -> None:
    assert js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(LN2, abs=1e-15)
    assert js_divergence([0.2, 0.8], [0.2, 0.8]) == 0.0


def test_kl_closed_forms() -> None:
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(LN2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert kl_divergence([0.25, 0.75], [0.5, 0.5]) == pytest.approx(expected)
    assert kl_divergence([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_kl_with_mass_where_the_other_side_has_none_is_an_error_not_infinity() -> None:
    with pytest.raises(
        ProbeMathError, match=r"^KL\(ft \|\| base\): the divergence is infinite.*position 1"
    ):
        kl_divergence([0.5, 0.5], [1.0, 0.0], labels=("ft", "base"))


def test_divergence_kl_means_ft_against_base_and_names_both_sides() -> None:
    base = dist({0: 0.6, 1: 0.4})  # no tail: base has no mass on token 2
    ft = dist({0: 0.5, 2: 0.3, 1: 0.2})
    with pytest.raises(ProbeMathError, match=r"^KL\(ft \|\| base\): the divergence is infinite"):
        divergence(base, ft, "kl")
    # The other direction is finite: base puts no mass where ft has none.
    p_base, p_ft = aligned_probs(base, ft)
    assert divergence(ft, base, "kl") == pytest.approx(
        kl_by_loop(p_base.tolist(), p_ft.tolist()), rel=1e-12
    )


@pytest.mark.parametrize(
    ("p", "q", "fragment"),
    [
        ([0.5, 0.6], [0.5, 0.5], "sum to 1.1"),
        ([1.5, -0.5], [0.5, 0.5], "-0.5 at position 1 is negative"),
        ([math.nan, 1.0], [0.5, 0.5], "non-finite"),
        ([0.5, 0.5], [0.2, 0.3, 0.5], "must align"),
        ([], [], "non-empty"),
    ],
)
def test_malformed_probability_vectors_are_errors(
    p: list[float], q: list[float], fragment: str
) -> None:
    for function in (js_divergence, kl_divergence):
        with pytest.raises(ProbeMathError, match=fragment):
            function(p, q)


def test_js_clamps_only_round_off_and_rejects_a_real_excursion() -> None:
    assert _check_js_bounds(-1e-12, ("base", "ft")) == 0.0
    assert _check_js_bounds(LN2 + 1e-12, ("base", "ft")) == LN2
    with pytest.raises(ProbeMathError, match=r"JS\(base, ft\).*0\.75.*outside its bounds"):
        _check_js_bounds(0.75, ("base", "ft"))
    with pytest.raises(ProbeMathError, match="outside its bounds"):
        _check_js_bounds(-1e-6, ("base", "ft"))


def test_an_unknown_kind_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match=r"kind='tv' is unknown; expected 'js' or 'kl'"):
        divergence(SYNTH_BASE, SYNTH_FT, "tv")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the seed's synthesized dists


def test_js_and_kl_between_the_synth_base_and_ft_match_independent_formulas() -> None:
    """JS(base, ft) = 0.40334 nats, KL(ft || base) = 2.25893 nats for the seed's synth pair.

    Both share ids 0..7, so alignment only renormalises each top-8 (base's tail
    of mass 0.048 drops out).
    """
    p = normalised(SYNTH_BASE.logprobs.tolist())
    q = normalised(SYNTH_FT.logprobs.tolist())
    js = divergence(SYNTH_BASE, SYNTH_FT)
    kl = divergence(SYNTH_BASE, SYNTH_FT, "kl")
    assert js == pytest.approx(js_by_entropy(p, q), abs=1e-12)
    assert kl == pytest.approx(kl_by_loop(q, p), abs=1e-12)
    # Closed form ignoring float32 and ft's +-1e-4 perturbation: base is
    # e^-0.1 : e^-5 (x7) renormalised, ft is uniform over 8.
    a = math.exp(-0.1) / (math.exp(-0.1) + 7 * math.exp(-5.0))
    b = (1 - a) / 7
    u = 1 / 8
    m1, m2 = (a + u) / 2, (b + u) / 2
    ideal_js = 0.5 * (a * math.log(a / m1) + 7 * b * math.log(b / m2)) + 0.5 * (
        u * math.log(u / m1) + 7 * u * math.log(u / m2)
    )
    ideal_kl = u * math.log(u / a) + 7 * u * math.log(u / b)
    assert js == pytest.approx(ideal_js, abs=1e-4)
    assert kl == pytest.approx(ideal_kl, abs=1e-4)
    assert 0.0 < js < LN2


def test_the_synth_distributions_keep_the_strict_contract() -> None:
    validate_token_dist(SYNTH_BASE, label="base")
    validate_token_dist(SYNTH_FT, label="ft")  # rises 2e-4 nats: within the sort tolerance


def _backend_models() -> tuple[ModeModel, ModeModel]:
    return ModeModel("base", DummyResponses()), ModeModel("ft", DummyResponses())


def test_the_seeds_null_view_breaks_the_contract_but_is_valid_log_scores() -> None:
    base, _ = _backend_models()
    null = NullModel(base, 0, 0.02, 1.0).next_token_dist("hello", 8)
    # Renormalised top-8 (mass 1) plus the base's tail (0.048) > 1.
    with pytest.raises(ProbeMathError, match=r"null_0 TokenDist.*tail = 1\.04"):
        validate_token_dist(null, label="null_0")
    validate_token_dist(null, label="null_0", normalized=False)
    value = divergence(SYNTH_BASE, null, labels=("base", "null_0"), normalized=(True, False))
    expected = js_by_entropy(
        normalised(SYNTH_BASE.logprobs.tolist()), normalised(null.logprobs.tolist())
    )
    assert value == pytest.approx(expected, abs=1e-12)


def test_the_seeds_overshooting_scaled_view_is_unnormalised_log_scores() -> None:
    base, ft = _backend_models()
    scaled = ScaledModel(base, ft, 1.25).next_token_dist("x", 8)
    with pytest.raises(ProbeMathError, match="not sorted by descending logprob"):
        validate_token_dist(scaled, label="scaled_1.25")
    validate_token_dist(scaled, label="scaled_1.25", normalized=False)


# ---------------------------------------------------------------- corrupt outputs (fault layer)

NON_FINITE = ["nan", "posinf", "neginf"]


@pytest.mark.parametrize("kind", [*NON_FINITE, "corrupt_duplicate", "corrupt_length"])
@pytest.mark.parametrize("side", ["base", "ft"])
@pytest.mark.parametrize("normalized", [True, False])
def test_every_structural_or_non_finite_corruption_is_an_error_naming_the_side(
    kind: str, side: str, normalized: bool
) -> None:
    base, ft = SYNTH_BASE, SYNTH_FT
    if side == "base":
        base = corrupt(kind, base)
    else:
        ft = corrupt(kind, ft)
    with pytest.raises(ProbeMathError, match=rf"^{side} TokenDist: ") as caught:
        divergence(base, ft, normalized=(normalized, normalized))
    assert (caught.value.label, caught.value.subject) == (side, "TokenDist")
    message = str(caught.value)
    if kind in NON_FINITE:
        shown = {"nan": "nan", "posinf": "inf", "neginf": "-inf"}[kind]
        assert f"the first {shown} at position 0" in message
    elif kind == "corrupt_duplicate":
        assert "token id 0 appears twice (positions 0 and 7)" in message
    else:
        assert "8 token_ids but 9 logprobs" in message


@pytest.mark.parametrize("side", ["base", "ft"])
def test_mass_above_one_is_an_error_on_either_side(side: str) -> None:
    base, ft = SYNTH_BASE, SYNTH_FT
    if side == "base":
        base = corrupt("corrupt_mass", base)
        fragment = "0.593147"  # -0.1 + ln 2: the top token alone has probability 1.81
    else:
        ft = corrupt("corrupt_mass", ft)
        fragment = "mass 2 in its top-8"
    with pytest.raises(ProbeMathError, match=rf"^{side} TokenDist: .*{fragment}"):
        divergence(base, ft)


def test_an_unsorted_base_is_an_error() -> None:
    with pytest.raises(ProbeMathError, match=r"^base TokenDist: not sorted.*position 7"):
        divergence(corrupt("corrupt_unsorted", SYNTH_BASE), SYNTH_FT)


@pytest.mark.parametrize("view", ["ft", "null", "scaled_0.50", "scaled_1.00"])
def test_an_unsorted_corruption_that_no_contract_sees_changes_nothing(view: str) -> None:
    # corrupt_unsorted is a pure permutation. The seed's ft is flat within the sort
    # tolerance and null/scaled views carry no order contract, so it goes unseen
    # there; the divergence, which does not depend on order, must then be unchanged.
    base, ft = _backend_models()
    contract: Normalization
    if view == "ft":
        dist, contract = SYNTH_FT, True
    elif view == "null":
        dist, contract = NullModel(base, 3, 0.02, 1.0).next_token_dist("prompt", 8), "top_k"
    else:
        lam = float(view.split("_")[1])
        dist, contract = ScaledModel(base, ft, lam).next_token_dist("prompt", 8), "top_k"
    dirty = corrupt("corrupt_unsorted", dist)
    assert sorted(zip(dirty.token_ids.tolist(), dirty.logprobs.tolist(), strict=True)) == sorted(
        zip(dist.token_ids.tolist(), dist.logprobs.tolist(), strict=True)
    )
    labels = ("base", view)
    value = divergence(SYNTH_BASE, dirty, normalized=(True, contract), labels=labels)
    assert value == divergence(SYNTH_BASE, dist, normalized=(True, contract), labels=labels)


def test_a_mass_corruption_is_caught_under_the_top_k_contract() -> None:
    base, ft = _backend_models()
    for dist in (
        NullModel(base, 3, 0.02, 1.0).next_token_dist("prompt", 8),
        ScaledModel(base, ft, 0.5).next_token_dist("prompt", 8),
        ScaledModel(base, ft, 1.0).next_token_dist("prompt", 8),
    ):
        validate_token_dist(dist, label="view", normalized="top_k")
        with pytest.raises(ProbeMathError, match=r"^view TokenDist: .*> 1"):
            validate_token_dist(corrupt("corrupt_mass", dist), label="view", normalized="top_k")


@pytest.mark.parametrize("kind", ["corrupt_unsorted", "corrupt_mass"])
def test_order_and_mass_corruptions_of_log_scores_do_not_change_the_divergence(
    kind: str,
) -> None:
    # Log-score views (normalized=False) are renormalised over the union, so a
    # reversed order or a uniform shift in log space cannot move the number.
    base, _ = _backend_models()
    null = NullModel(base, 3, 0.02, 1.0).next_token_dist("prompt", 8)
    clean = divergence(SYNTH_BASE, null, normalized=(True, False))
    dirty = divergence(SYNTH_BASE, corrupt(kind, null), normalized=(True, False))
    # corrupt_mass re-rounds the shifted logprobs to float32 (~5e-7 nats each).
    assert dirty == pytest.approx(clean, abs=1e-9)


# ---------------------------------------------------------------- validation rules, one by one


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (raw_dist([0, 1], [-0.1]), "2 token_ids but 1 logprobs"),
        (raw_dist([], []), "empty: a top-k"),
        (raw_dist([3, 1, 3], [-0.5, -1.5, -2.5]), "token id 3 appears twice .positions 0 and 2"),
        (raw_dist([0, 1], [-2.0, -0.5]), "position 1 holds -0.5, 1.5 nats above"),
        (raw_dist([0, 1], [0.2, -3.0]), "holds 0.2.* a probability of 1.2214 > 1"),
        (raw_dist([0, 1], [math.log(0.7), math.log(0.2)], math.log(0.2)), "= 1.1 > 1"),
        (raw_dist([0, 1], [-0.5, -1.0], 0.5), r"tail_logprob=0.5 must be None, 0.0 or a negative"),
        (raw_dist([0, 1], [-0.5, -1.0], math.nan), "tail_logprob=nan"),
        (raw_dist([0, 1], [-0.5, -1.0], -math.inf), "tail_logprob=-inf"),
        (raw_dist([0, 1], [-0.5, -1.0], math.inf), "tail_logprob=inf"),
        (raw_dist([0, 1, 2], [-1.5, -1.5, -1.5]), r"degenerate.*top-3.*spread 0 < 1e-09"),
        (raw_dist([0, 100], [-0.5, -1.0]), r"token id 100 is outside the vocabulary \[0, 100\)"),
        (raw_dist([-1, 0], [-0.5, -1.0]), "token id -1 is outside"),
        (raw_dist([0, 1, 2], [-1.0, -2.0, -3.0], vocab=2), "lists 3 tokens, more than"),
        (raw_dist([0, 1], [-0.5, -1.0], vocab=0), "vocab_size=0 must be positive"),
        (
            TokenDist(np.array([0.0, 1.0]), np.array([-0.5, -1.0]), 10),
            "token_ids must hold integers",
        ),
        (
            TokenDist(np.zeros((2, 1), dtype=np.int64), np.zeros((2, 1)), 10),  # type: ignore[arg-type]
            "one-dimensional",
        ),
    ],
)
def test_each_contract_breach_is_a_clear_error(bad: TokenDist, fragment: str) -> None:
    with pytest.raises(ProbeMathError, match=rf"^null_7 TokenDist: .*{fragment}"):
        validate_token_dist(bad, label="null_7")


@pytest.mark.parametrize("tail", [None, 0.0, -0.0, math.log(0.25)])
def test_the_three_tail_states_are_accepted(tail: float | None) -> None:
    validate_token_dist(raw_dist([4, 9], [math.log(0.5), math.log(0.25)], tail), label="ft")


def test_a_single_token_top_k_is_not_degenerate() -> None:
    validate_token_dist(raw_dist([5], [math.log(0.9)], math.log(0.1)), label="ft")


def test_log_scores_skip_sign_order_and_mass_but_not_structure_or_degeneracy() -> None:
    scores = raw_dist([0, 1], [0.5, 1.5], math.log(0.5))
    validate_token_dist(scores, label="scaled_2.00", normalized=False)
    with pytest.raises(ProbeMathError, match="degenerate"):
        validate_token_dist(raw_dist([0, 1], [0.5, 0.5]), label="s", normalized=False)
    with pytest.raises(ProbeMathError, match=r"tail_logprob=0\.5"):
        validate_token_dist(raw_dist([0, 1], [0.5, 1.5], 0.5), label="s", normalized=False)


def test_scores_that_overflow_are_an_error_not_infinity() -> None:
    huge = raw_dist([0, 1], [800.0, 1.0])
    with pytest.raises(ProbeMathError, match=r"^scaled_9 TokenDist: probabilities sum to inf"):
        divergence(SYNTH_BASE, huge, labels=("base", "scaled_9"), normalized=(True, False))


def test_the_error_is_a_swaysim_error_and_survives_pickling() -> None:
    with pytest.raises(ProbeMathError) as caught:
        validate_token_dist(raw_dist([0, 0], [-1.0, -2.0]), label="ft")
    assert isinstance(caught.value, SwaysimError)
    clone = pickle.loads(pickle.dumps(caught.value))
    assert (type(clone), str(clone), clone.label) == (
        ProbeMathError,
        str(caught.value),
        "ft",
    )


# ---------------------------------------------------------------- properties


@st.composite
def token_dists(
    draw: st.DrawFn, *, vocab: int = 12, tail_states: Sequence[str] = ("none", "zero", "mass")
) -> TokenDist:
    """A valid TokenDist: distinct ids from a small vocabulary, a random tail state."""
    k = draw(st.integers(1, 6))
    ids = draw(st.lists(st.integers(0, vocab - 1), min_size=k, max_size=k, unique=True))
    weights = draw(st.lists(st.floats(1e-3, 1.0), min_size=k + 1, max_size=k + 1))
    tail_state = draw(st.sampled_from(tail_states))
    total = math.fsum(weights)
    probs = {i: w / total for i, w in zip(ids, weights, strict=False)}
    if k > 1:
        spread = max(probs.values()) / min(probs.values())
        assume(spread > 1.0 + 1e-6)
    tail = {"none": None, "zero": 0.0, "mass": math.log(weights[-1] / total)}[tail_state]
    return dist(probs, tail, vocab=vocab)


@settings(max_examples=150, deadline=None)
@given(token_dists(), token_dists())
def test_js_is_symmetric_bounded_and_matches_the_entropy_formula(
    a: TokenDist, b: TokenDist
) -> None:
    forward = divergence(a, b)
    assert forward == pytest.approx(divergence(b, a), abs=1e-12)
    assert 0.0 <= forward <= LN2
    p, q = aligned_probs(a, b)
    assert forward == pytest.approx(js_by_entropy(p.tolist(), q.tolist()), abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(token_dists(), token_dists())
def test_aligned_vectors_are_distributions_over_the_union(a: TokenDist, b: TokenDist) -> None:
    p, q = aligned_probs(a, b)
    union = set(a.token_ids.tolist()) | set(b.token_ids.tolist())
    assert p.shape == q.shape == (len(union),)
    for vector in (p, q):
        assert (vector >= 0.0).all()
        assert math.fsum(vector.tolist()) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(token_dists())
def test_a_distribution_is_at_zero_divergence_from_itself(a: TokenDist) -> None:
    assert divergence(a, a) == 0.0
    assert divergence(a, a, "kl") == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=150, deadline=None)
@given(token_dists(tail_states=["mass"]), token_dists(tail_states=["mass"]))
def test_kl_is_non_negative_and_bounds_js(a: TokenDist, b: TokenDist) -> None:
    p, q = aligned_probs(a, b)
    # With a tail, every union slot has mass on both sides, so both KLs are finite.
    assert (p > 0).all()
    assert (q > 0).all()
    kl_pq, kl_qp = kl_divergence(p, q), kl_divergence(q, p)
    assert kl_pq >= 0.0
    assert kl_qp >= 0.0
    assert kl_pq == pytest.approx(kl_by_loop(p.tolist(), q.tolist()), abs=1e-12)
    # Convexity of KL in its second argument: KL(p||m) <= KL(p||q)/2.
    assert js_divergence(p, q) <= (kl_pq + kl_qp) / 4 + 1e-12


@settings(max_examples=100, deadline=None)
@given(token_dists(), token_dists(), st.randoms(use_true_random=False))
def test_divergence_ignores_token_labels_and_input_order(
    a: TokenDist, b: TokenDist, rnd: random.Random
) -> None:
    expected_js, expected_kl = divergence(a, b), None
    try:
        expected_kl = divergence(a, b, "kl")
    except ProbeMathError:
        expected_kl = None

    # One bijection applied to both sides' ids relabels the union consistently.
    mapping = list(range(12))
    rnd.shuffle(mapping)

    def relabel(d: TokenDist) -> TokenDist:
        ids = np.array([mapping[i] for i in d.token_ids.tolist()], dtype=np.int64)
        return TokenDist(ids, d.logprobs, d.vocab_size, d.tail_logprob)

    assert divergence(relabel(a), relabel(b)) == pytest.approx(expected_js, abs=1e-12)

    # Shuffled pairs are the same distribution: equal as log-scores, and equal
    # under the strict contract once re-sorted by descending logprob.
    def shuffled(d: TokenDist) -> TokenDist:
        order = list(range(d.token_ids.size))
        rnd.shuffle(order)
        return TokenDist(
            d.token_ids[order],
            d.logprobs[order],
            d.vocab_size,
            d.tail_logprob,
        )

    def resorted(d: TokenDist) -> TokenDist:
        order = np.argsort(-d.logprobs, kind="stable")
        return TokenDist(
            d.token_ids[order],
            d.logprobs[order],
            d.vocab_size,
            d.tail_logprob,
        )

    loose = (False, False)
    assert divergence(shuffled(a), shuffled(b), normalized=loose) == pytest.approx(
        expected_js, abs=1e-12
    )
    assert divergence(resorted(shuffled(a)), resorted(shuffled(b))) == pytest.approx(
        expected_js, abs=1e-12
    )
    if expected_kl is not None:
        assert divergence(resorted(shuffled(a)), resorted(shuffled(b)), "kl") == pytest.approx(
            expected_kl, abs=1e-12
        )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8).filter(lambda w: sum(w) > 1e-3),
    st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8),
)
def test_js_of_raw_vectors_with_zeros_stays_in_bounds(
    left: list[float], right_pool: list[float]
) -> None:
    right = right_pool[: len(left)]
    assume(sum(right) > 1e-3)
    p = [x / math.fsum(left) for x in left]
    q = [x / math.fsum(right) for x in right]
    value = js_divergence(p, q)
    assert 0.0 <= value <= LN2
    assert value == pytest.approx(js_by_entropy(p, q), abs=1e-12)


def test_js_survives_a_subnormal_probability_whose_half_underflows() -> None:
    # Found by Hypothesis: 0.5 * 5e-324 == 0.0, so a naive mixture has no mass there.
    assert js_divergence([5e-324, 1.0], [0.0, 1.0]) == pytest.approx(0.0, abs=1e-300)
    assert js_divergence([5e-324, 1.0], [0.0, 1.0]) >= 0.0
