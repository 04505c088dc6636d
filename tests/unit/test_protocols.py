"""The runtime-checkable capability protocols, and a runner written only against them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from swaysim import (
    BASE,
    FT,
    AsyncDummyDifferentialBackend,
    DifferentialBackend,
    DummyView,
    InvalidArgumentError,
    NullCalibratedBackend,
    Observable,
    PreflightCheckable,
    ScalableDifferentialBackend,
    ScoringModel,
    null_view,
    scaled_view,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager


def test_the_backend_has_every_capability() -> None:
    backend = AsyncDummyDifferentialBackend()
    for protocol in (
        DifferentialBackend,
        ScalableDifferentialBackend,
        NullCalibratedBackend,
        PreflightCheckable,
        Observable,
    ):
        assert isinstance(backend, protocol), protocol


class OnlyTwoViews:
    """A backend with base and ft only: no scaling, no null adapter, no preflight."""

    safe_for_concurrent_views = False

    def as_base(self) -> AbstractAsyncContextManager[ScoringModel]:
        raise NotImplementedError

    def as_finetuned(self) -> AbstractAsyncContextManager[ScoringModel]:
        raise NotImplementedError


def test_a_runner_can_tell_capabilities_apart() -> None:
    plain = OnlyTwoViews()
    assert isinstance(plain, DifferentialBackend)
    assert not isinstance(plain, ScalableDifferentialBackend)
    assert not isinstance(plain, NullCalibratedBackend)
    assert not isinstance(plain, PreflightCheckable)
    assert not isinstance(plain, Observable)
    assert not isinstance(object(), DifferentialBackend)
    assert not isinstance(object(), ScoringModel)


async def test_every_view_is_a_scoring_model() -> None:
    backend = AsyncDummyDifferentialBackend()
    for enter in (
        backend.as_base,
        backend.as_finetuned,
        lambda: backend.as_scaled_adapter(0.5),
        lambda: backend.as_null_adapter(1),
    ):
        async with enter() as view:
            assert isinstance(view, ScoringModel)
            assert isinstance(view, DummyView)


async def kl_base_to(backend: ScalableDifferentialBackend, lam: float, prompts: list[str]) -> float:
    """A probe written against the protocols only, as a runner would."""
    async with backend.as_base() as base:
        p = await base.next_token_dist_batch(prompts)
    async with backend.as_scaled_adapter(lam) as scaled:
        q = await scaled.next_token_dist_batch(prompts)
    total = 0.0
    for left, right in zip(p, q, strict=True):
        lp = left.logprobs.astype(np.float64)
        total += float(np.sum(np.exp(lp) * (lp - right.logprobs.astype(np.float64))))
    return total / len(prompts)


async def calibrate(backend: NullCalibratedBackend, seeds: range) -> list[str]:
    ids = []
    for seed in seeds:
        async with backend.as_null_adapter(seed) as view:
            await view.next_token_dist("calibrate")
            ids.append(view.id)
    return ids


async def preflight(backend: PreflightCheckable) -> tuple[bool, str]:
    return await backend.preflight_finite_check()


async def test_a_runner_typed_on_the_protocols_drives_the_backend() -> None:
    backend = AsyncDummyDifferentialBackend()
    assert await preflight(backend) == (True, "")
    assert await kl_base_to(backend, 0.0, ["a", "b"]) == 0.0
    assert await kl_base_to(backend, 1.0, ["a", "b"]) > 1.0  # sharp base vs broad ft
    assert await calibrate(backend, range(3)) == ["null_0", "null_1", "null_2"]
    generic: DifferentialBackend = backend
    assert generic.safe_for_concurrent_views is False


def test_the_concurrency_flag_is_read_only() -> None:
    backend = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True)
    assert backend.safe_for_concurrent_views is True
    with pytest.raises(AttributeError):
        backend.safe_for_concurrent_views = False  # type: ignore[misc]


def test_a_view_the_backend_cannot_open_is_refused_naming_why() -> None:
    plain = OnlyTwoViews()
    with pytest.raises(InvalidArgumentError, match=r"cannot open view scaled\(0.5\)") as raised:
        scaled_view(0.5).open(plain)
    assert "not scalable" in str(raised.value)
    assert (raised.value.field, raised.value.value) == ("backend", plain)
    with pytest.raises(InvalidArgumentError, match=r"no null adapter"):
        null_view(3).open(plain)


async def test_a_view_ref_opens_the_view_it_names() -> None:
    backend = AsyncDummyDifferentialBackend()
    for ref in (BASE, FT, scaled_view(0.5), null_view(3, rank_scale=2.0)):
        async with ref.open(backend) as view:
            assert view.id == ref.view_id
