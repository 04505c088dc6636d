"""One exception tree; bad arguments raise before any view is entered, naming argument and value."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import swaysim
from swaysim import (
    AsyncDummyDifferentialBackend,
    InvalidArgumentError,
    MissingResponseError,
    NestedViewError,
    StaleViewError,
    SwaysimError,
    ViewConflictError,
    ViewError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from swaysim import DummyView


def test_every_exported_exception_is_a_swaysim_error() -> None:
    exported = [getattr(swaysim, name) for name in swaysim.__all__]
    exceptions = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, Exception)]
    assert len(exceptions) >= 8
    for exc in exceptions:
        assert issubclass(exc, SwaysimError), exc


def test_the_tree() -> None:
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(MissingResponseError, KeyError)
    assert issubclass(ViewConflictError, ViewError)
    assert issubclass(NestedViewError, ViewConflictError)
    assert issubclass(StaleViewError, ViewError)
    assert issubclass(ViewError, SwaysimError)
    assert str(MissingResponseError("no canned generation for 'x'")) == (
        "no canned generation for 'x'"
    )


# Each case: keyword arguments for the constructor, and what the message must contain.
CONSTRUCTOR_CASES: list[tuple[dict[str, Any], str]] = [
    ({"exclusivity": "bogus"}, "exclusivity='bogus' is not a policy; expected one of wait, strict"),
    ({"exclusivity": None}, "exclusivity=None"),
    ({"max_concurrent_views": 0, "safe_for_concurrent_views": True}, "max_concurrent_views=0"),
    ({"max_concurrent_views": -3, "safe_for_concurrent_views": True}, "max_concurrent_views=-3"),
    ({"max_concurrent_views": 1.5, "safe_for_concurrent_views": True}, "max_concurrent_views=1.5"),
    ({"max_concurrent_views": 2}, "max_concurrent_views=2 needs safe_for_concurrent_views=True"),
    ({"cache_size": 0}, "cache_size=0 must be >= 1"),
    ({"cache_size": -1}, "cache_size=-1 must be >= 1"),
    ({"cache_size": True}, "cache_size=True must be an integer"),
    ({"safe_for_concurrent_views": "yes"}, "safe_for_concurrent_views='yes' must be True or False"),
    ({"base": "canned"}, "base='canned' must be a DummyResponses"),
    ({"ft": {}}, "ft={} must be a DummyResponses"),
]


@pytest.mark.parametrize(("kwargs", "message"), CONSTRUCTOR_CASES)
def test_constructor_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        AsyncDummyDifferentialBackend(**kwargs)
    assert message in str(caught.value)


VIEW_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("null", {"seed": 1, "rank_scale": 0.0}, "rank_scale=0.0 must be positive and finite"),
    ("null", {"seed": 1, "rank_scale": -2.0}, "rank_scale=-2.0 must be positive and finite"),
    ("null", {"seed": 1, "rank_scale": math.nan}, "rank_scale=nan must be positive and finite"),
    ("null", {"seed": 1, "rank_scale": math.inf}, "rank_scale=inf must be positive and finite"),
    ("null", {"seed": 1, "rank_scale": "2"}, "rank_scale='2' must be a number"),
    ("null", {"seed": 1, "init_scale": -0.1}, "init_scale=-0.1 must be finite and >= 0"),
    ("null", {"seed": 1, "init_scale": math.nan}, "init_scale=nan must be finite and >= 0"),
    ("null", {"seed": -1}, "seed=-1 must be an integer >= 0"),
    ("null", {"seed": 1.5}, "seed=1.5 must be an integer >= 0"),
    ("null", {"seed": True}, "seed=True must be an integer >= 0"),
    ("null", {"seed": "3"}, "seed='3' must be an integer >= 0"),
    ("scaled", {"lam": math.nan}, "lam=nan must be a finite number"),
    ("scaled", {"lam": -math.inf}, "lam=-inf must be a finite number"),
    ("scaled", {"lam": None}, "lam=None must be a number"),
    ("scaled", {"lam": True}, "lam=True must be a number"),
    ("scaled", {"lam": np.float64("nan")}, "lam=np.float64(nan) must be a finite number"),
]


@pytest.mark.parametrize(("view", "kwargs", "message"), VIEW_CASES)
async def test_view_arguments_raise_before_any_view_is_entered(
    view: str, kwargs: dict[str, Any], message: str
) -> None:
    backend = AsyncDummyDifferentialBackend()
    method: Callable[..., Any] = (
        backend.as_null_adapter if view == "null" else backend.as_scaled_adapter
    )
    with pytest.raises(InvalidArgumentError) as caught:
        method(**kwargs)  # raises on the call itself, before `async with`
    assert message in str(caught.value)
    with pytest.raises(InvalidArgumentError):
        async with method(**kwargs):
            pytest.fail("entered a view with an invalid argument")
    stats = backend.statistics()
    assert stats.entries == 0
    assert backend.is_free()


@pytest.mark.parametrize(
    ("lam", "seed", "scaled_id", "null_id"),
    [
        (np.float32(0.5), np.int64(3), "scaled_0.50", "null_3"),
        (1, np.uint8(7), "scaled_1.00", "null_7"),
        (np.float64(1.25), 0, "scaled_1.25", "null_0"),
    ],
)
async def test_numpy_and_integer_arguments_are_accepted(
    lam: Any, seed: Any, scaled_id: str, null_id: str
) -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_scaled_adapter(lam) as view:
        assert view.id == scaled_id
        assert (await view.next_token_dist("p")).logprobs.dtype == np.float32
    init_scale: Any = np.float32(0.02)
    async with backend.as_null_adapter(seed, init_scale=init_scale) as view:
        assert view.id == null_id


async def call_op(view: DummyView, op: str, value: Any) -> object:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "top_k": lambda: view.next_token_dist("p", top_k=value),
        "batch top_k": lambda: view.next_token_dist_batch(["p"], top_k=value),
        "max_new_tokens": lambda: view.generate("p", max_new_tokens=value),
        "prompts": lambda: view.next_token_dist_batch(value),
    }
    return await calls[op]()


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        ("top_k", 0, "top_k=0 must be an integer from 1 to 1,000,000"),
        ("top_k", -5, "top_k=-5 must be an integer from 1 to 1,000,000"),
        ("top_k", 2.0, "top_k=2.0 must be an integer from 1 to 1,000,000"),
        ("top_k", True, "top_k=True must be an integer from 1 to 1,000,000"),
        ("batch top_k", 0, "top_k=0 must be an integer from 1 to 1,000,000"),
        ("max_new_tokens", -1, "max_new_tokens=-1 must be an integer from 0 to 1,000,000"),
        ("max_new_tokens", None, "max_new_tokens=None must be an integer from 0 to 1,000,000"),
        ("prompts", "one prompt", "prompts='one prompt' must be a sequence of prompts"),
    ],
)
async def test_op_arguments_are_checked_before_any_work(op: str, value: Any, message: str) -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_base() as view:
        with pytest.raises(InvalidArgumentError) as caught:
            await call_op(view, op, value)
    assert message in str(caught.value)
    stats = backend.statistics()
    assert stats.total_calls == 0
    assert stats.forward_passes == 0


async def test_a_missing_generation_is_a_key_error_and_a_swaysim_error() -> None:
    async with AsyncDummyDifferentialBackend().as_finetuned() as view:
        with pytest.raises(KeyError) as caught:
            await view.generate("nothing canned", max_new_tokens=1)
    assert isinstance(caught.value, MissingResponseError)
    assert isinstance(caught.value, SwaysimError)
    assert str(caught.value) == (
        "dummy backend (ft): no canned generation for prompt 'nothing canned'"
    )
