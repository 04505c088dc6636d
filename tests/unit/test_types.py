"""TokenDist, RollingLogprob and DummyResponses: dlm-sway's shapes and semantics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from swaysim import DummyResponses, RollingLogprob, TokenDist
from swaysim._types import new_token_dist


def dist(logprobs: list[float], tail: float | None = None) -> TokenDist:
    return TokenDist(
        np.arange(len(logprobs), dtype=np.int64), np.array(logprobs, dtype=np.float32), 100, tail
    )


def rolling(logprobs: list[float]) -> RollingLogprob:
    n = len(logprobs) + 1
    return RollingLogprob(
        np.arange(n, dtype=np.int64), np.array(logprobs, dtype=np.float32), n, float(sum(logprobs))
    )


def test_token_dist_tail_defaults_to_none() -> None:
    assert TokenDist(np.arange(2), np.zeros(2, dtype=np.float32), 10).tail_logprob is None


@pytest.mark.parametrize(
    ("logprobs", "tail", "finite"),
    [
        ([-0.1, -2.0], None, True),
        ([-0.1, -2.0], 0.0, True),
        ([-0.1, -2.0], -3.5, True),
        ([-0.1, math.nan], None, False),
        ([math.inf, -2.0], None, False),
        ([-0.1, -math.inf], None, False),
        ([-0.1, -2.0], math.nan, False),
        ([-0.1, -2.0], -math.inf, False),
        ([], None, True),
    ],
)
def test_token_dist_is_finite(logprobs: list[float], tail: float | None, finite: bool) -> None:
    assert dist(logprobs, tail).is_finite() is finite


@pytest.mark.parametrize(
    ("logprobs", "mean"),
    [([], 0.0), ([-2.0], -2.0), ([-1.0, -2.0, -3.0], -2.0), ([-0.5, -1.5], -1.0)],
)
def test_rolling_mean_and_perplexity(logprobs: list[float], mean: float) -> None:
    value = rolling(logprobs)
    assert value.mean_logprob == pytest.approx(mean)
    assert value.perplexity == pytest.approx(math.exp(-mean))
    assert isinstance(value.mean_logprob, float)
    assert isinstance(value.perplexity, float)


def test_rolling_is_finite() -> None:
    assert rolling([-1.0, -2.0]).is_finite()
    assert not rolling([-1.0, math.nan]).is_finite()
    assert not RollingLogprob(
        np.arange(2), np.array([-1.0], dtype=np.float32), 2, -math.inf
    ).is_finite()


@pytest.mark.parametrize("value", [dist([-0.1]), rolling([-1.0])])
def test_values_are_frozen(value: TokenDist | RollingLogprob) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.token_ids = np.arange(3)  # type: ignore[misc]


def test_new_token_dist_builds_the_same_value_as_the_class() -> None:
    ids = np.arange(3, dtype=np.int64)
    logprobs = np.array([-0.5, -1.0, -2.0], dtype=np.float32)
    fast = new_token_dist(ids, logprobs, 50, -1.25)
    slow = TokenDist(ids, logprobs, 50, -1.25)
    assert type(fast) is TokenDist
    for name in ("token_ids", "logprobs", "vocab_size", "tail_logprob"):
        assert getattr(fast, name) is getattr(slow, name)
    assert repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.vocab_size = 3  # type: ignore[misc]


def test_dummy_responses_default_to_independent_empty_tables() -> None:
    first, second = DummyResponses(), DummyResponses()
    first.generations["p"] = "x"
    first.logprobs[("p", "c")] = -1.0
    assert second.generations == {}
    assert second.logprobs == {}
    assert second.rolling == {}
    assert second.token_dists == {}


def test_field_names_match_dlm_sways() -> None:
    scoring = pytest.importorskip(
        "dlm_sway.core.scoring", reason="dlm-sway (a dev dependency) is not installed"
    )
    dummy = pytest.importorskip("dlm_sway.backends.dummy")
    for ours, theirs in (
        (TokenDist, scoring.TokenDist),
        (RollingLogprob, scoring.RollingLogprob),
        (DummyResponses, dummy.DummyResponses),
    ):
        assert [f.name for f in dataclasses.fields(ours)] == [
            f.name for f in dataclasses.fields(theirs)
        ]
    assert TokenDist.__dataclass_params__.frozen  # type: ignore[attr-defined]
