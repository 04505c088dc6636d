"""Parity: every op on every view returns the seed's numbers, bit for bit.

Expected values are written here from the seed's definitions (dlm-sway's
dummy backend, see ../shared/seed/): the sharp-base / broad-ft synthesized
distributions, the rolling logprobs, the null view's noise from
``numpy.random.default_rng(seed + md5(prompt) % 1_000_003)`` and its top-k
renormalisation, the scaled view's linear blend, the -10.0 default and the
KeyError for a missing generation. A second set of tests runs dlm-sway 0.1.0's
own ``DummyDifferentialBackend`` side by side on the same inputs.
"""

from __future__ import annotations

import collections
import hashlib
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swaysim import (
    AsyncDummyDifferentialBackend,
    DummyResponses,
    InvalidArgumentError,
    MissingResponseError,
    RollingLogprob,
    TokenDist,
)
from swaysim._backend import models as _dummy
from swaysim._backend.models import FAST_SEEDING, ModeModel, NullModel, pcg64_start, seeded_normal

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from numpy.typing import NDArray

    from swaysim import DummyView

# -- the seed's definitions, written out independently -------------------------------


def expected_synth(mode: str) -> tuple[NDArray[np.float32], float | None]:
    """The seed's synthesized next-token logprobs (k=8) and tail for a mode."""
    if mode == "base":
        logprobs = np.array([-0.1] + [-5.0] * 7, dtype=np.float32)
    else:
        logprobs = np.full(8, -math.log(8), dtype=np.float32)
        logprobs += np.linspace(-1e-4, 1e-4, 8, dtype=np.float32)
    residual = 1.0 - float(np.exp(logprobs).sum())
    return logprobs, (math.log(residual) if residual > 1e-12 else None)


def expected_null(
    base_logprobs: NDArray[Any],
    seed: int,
    prompt: str,
    init_scale: float = 0.02,
    rank_scale: float = 1.0,
) -> NDArray[np.float32]:
    """The seed's null view: md5-seeded Gaussian noise, then renormalise the slice."""
    prompt_hash = int(hashlib.md5(prompt.encode("utf-8")).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed + prompt_hash % 1_000_003)
    std = init_scale * math.sqrt(rank_scale)
    noise = rng.normal(0.0, std, size=base_logprobs.shape).astype(np.float32)
    noisy = base_logprobs + noise
    probs = np.exp(noisy - noisy.max())
    probs /= probs.sum()
    logprobs: NDArray[np.float32] = np.log(probs).astype(np.float32)
    return logprobs


def expected_blend(base: NDArray[Any], ft: NDArray[Any], lam: float) -> NDArray[Any]:
    """The seed's scaled view: ``(1 - lam) * base + lam * ft`` on the logprobs."""
    blended: NDArray[Any] = (1 - lam) * base + lam * ft
    return blended


def expected_rolling(text: str, mode: str) -> tuple[list[int], list[float], int, float]:
    """The seed's synthesized rolling logprob: whitespace tokens, -2.0 base / -1.5 ft each."""
    n = max(len(text.split()), 1)
    per_token = -2.0 if mode == "base" else -1.5
    return list(range(n)), [per_token] * (n - 1), n, per_token * (n - 1)


# -- canned data ---------------------------------------------------------------------

CANNED_IDS = np.array([3, 1, 2, 0, 4, 5, 6, 7], dtype=np.int64)


def canned_dist(first: float, tail: float | None) -> TokenDist:
    logprobs = np.array([first, -1.5, -2.0, -2.5, -3.0, -4.0, -5.0, -6.0], dtype=np.float32)
    return TokenDist(CANNED_IDS.copy(), logprobs, 50, tail)


def make_responses() -> tuple[DummyResponses, DummyResponses]:
    base = DummyResponses(
        generations={"hi": "hello from base", "only-base": "b"},
        logprobs={("Q:", " yes"): -0.25, ("Q:", " no"): -3.0},
        rolling={
            "canned text": RollingLogprob(
                np.array([5, 6, 7], dtype=np.int64),
                np.array([-0.5, -0.75], dtype=np.float32),
                3,
                -1.25,
            )
        },
        token_dists={"canned": canned_dist(-0.2, -4.0)},
    )
    ft = DummyResponses(
        generations={"hi": "hello from ft", "only-ft": "f"},
        logprobs={("Q:", " yes"): -0.1, ("A:", " ok"): -1.0},
        token_dists={"canned": canned_dist(-0.6, None)},
    )
    return base, ft


PROMPTS = ("", "The capital of France is", "canned", "héllo wörld ✓", "a\x00b", "x" * 300)


def enter(backend: AsyncDummyDifferentialBackend, view: str) -> AbstractAsyncContextManager[Any]:
    """``base``, ``ft``, ``scaled:<lam>``, ``null:<seed>[:<init_scale>:<rank_scale>]``."""
    name, *args = view.split(":")
    if name == "base":
        return backend.as_base()
    if name == "ft":
        return backend.as_finetuned()
    if name == "scaled":
        return backend.as_scaled_adapter(float(args[0]))
    if len(args) == 1:
        return backend.as_null_adapter(int(args[0]))
    return backend.as_null_adapter(
        int(args[0]), init_scale=float(args[1]), rank_scale=float(args[2])
    )


def assert_bitwise(actual: NDArray[Any], expected: NDArray[Any]) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes(), (actual, expected)


def assert_dist(
    dist: TokenDist,
    logprobs: NDArray[Any],
    *,
    token_ids: NDArray[np.int64] | None = None,
    vocab_size: int = 1000,
    tail: float | None,
) -> None:
    assert isinstance(dist, TokenDist)
    assert_bitwise(dist.logprobs, logprobs)
    assert_bitwise(dist.token_ids, np.arange(8, dtype=np.int64) if token_ids is None else token_ids)
    assert dist.vocab_size == vocab_size
    assert dist.tail_logprob == tail
    assert type(dist.tail_logprob) is type(tail)


# -- base and ft ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["base", "ft"])
async def test_synthesized_distributions_are_the_seeds(mode: str) -> None:
    backend = AsyncDummyDifferentialBackend()
    logprobs, tail = expected_synth(mode)
    async with enter(backend, mode) as view:
        for prompt in ("The capital of France is", "", "anything"):
            for top_k in (1, 8, 256):  # the seed ignores top_k
                assert_dist(await view.next_token_dist(prompt, top_k=top_k), logprobs, tail=tail)


async def test_the_synthesized_tails_are_measurable_for_base_and_none_for_ft() -> None:
    # Written out, so a change in how the tail is derived cannot hide behind the helper.
    base_lp, base_tail = expected_synth("base")
    assert base_tail is not None
    assert base_tail == math.log(1.0 - float(np.exp(base_lp).sum()))
    assert expected_synth("ft")[1] is None
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_base() as view:
        assert (await view.next_token_dist("p")).tail_logprob == base_tail
    async with backend.as_finetuned() as view:
        assert (await view.next_token_dist("p")).tail_logprob is None


@pytest.mark.parametrize("mode", ["base", "ft"])
async def test_canned_distributions_come_back_unchanged(mode: str) -> None:
    base, ft = make_responses()
    canned = (base if mode == "base" else ft).token_dists["canned"]
    async with enter(AsyncDummyDifferentialBackend(base, ft), mode) as view:
        dist = await view.next_token_dist("canned")
    assert_dist(
        dist, canned.logprobs, token_ids=CANNED_IDS, vocab_size=50, tail=canned.tail_logprob
    )


@pytest.mark.parametrize(
    ("view", "pair", "expected"),
    [
        ("base", ("Q:", " yes"), -0.25),
        ("base", ("A:", " ok"), -10.0),
        ("ft", ("Q:", " yes"), -0.1),
        ("ft", ("Q:", " no"), -10.0),
        ("null:7", ("Q:", " no"), -3.0),
        ("null:7:0.5:4.0", ("A:", " ok"), -10.0),
        ("scaled:0.0", ("Q:", " yes"), (1 - 0.0) * -0.25 + 0.0 * -0.1),
        ("scaled:0.25", ("Q:", " yes"), (1 - 0.25) * -0.25 + 0.25 * -0.1),
        ("scaled:1.25", ("Q:", " no"), (1 - 1.25) * -3.0 + 1.25 * -10.0),
        ("scaled:-0.5", ("A:", " ok"), (1 - -0.5) * -10.0 + -0.5 * -1.0),
        ("scaled:0.5", ("nothing", "canned"), (1 - 0.5) * -10.0 + 0.5 * -10.0),
    ],
)
async def test_logprob_of(view: str, pair: tuple[str, str], expected: float) -> None:
    async with enter(AsyncDummyDifferentialBackend(*make_responses()), view) as live:
        assert await live.logprob_of(*pair) == expected


@pytest.mark.parametrize("text", ["", "one", "a b c", "  spaced \t out\nover lines  ", "x " * 50])
@pytest.mark.parametrize(
    ("view", "mode"),
    [
        ("base", "base"),
        ("ft", "ft"),
        ("null:3", "base"),
        ("scaled:0.49", "base"),
        ("scaled:0.5", "ft"),
        ("scaled:1.25", "ft"),
        ("scaled:-1.0", "base"),
    ],
)
async def test_synthesized_rolling_logprob(text: str, view: str, mode: str) -> None:
    ids, logprobs, n, total = expected_rolling(text, mode)
    async with enter(AsyncDummyDifferentialBackend(), view) as live:
        rolling = await live.rolling_logprob(text)
    assert_bitwise(rolling.token_ids, np.array(ids, dtype=np.int64))
    assert_bitwise(rolling.logprobs, np.array(logprobs, dtype=np.float32))
    assert rolling.num_tokens == n
    assert rolling.total_logprob == total


@pytest.mark.parametrize("view", ["base", "null:1", "scaled:0.2"])
async def test_canned_rolling_logprob_comes_back_unchanged(view: str) -> None:
    base, ft = make_responses()
    async with enter(AsyncDummyDifferentialBackend(base, ft), view) as live:
        assert await live.rolling_logprob("canned text") is base.rolling["canned text"]
    async with enter(AsyncDummyDifferentialBackend(base, ft), "scaled:0.8") as live:
        # ft has no canned rolling text: synthesized as ft.
        rolling = await live.rolling_logprob("canned text")
    assert rolling.total_logprob == -1.5


@pytest.mark.parametrize(
    ("view", "mode"),
    [
        ("base", "base"),
        ("ft", "ft"),
        ("null:0", "base"),
        ("scaled:0.49", "base"),
        ("scaled:0.5", "ft"),
        ("scaled:2.0", "ft"),
    ],
)
async def test_generate_is_canned_and_a_missing_prompt_is_a_key_error(view: str, mode: str) -> None:
    async with enter(AsyncDummyDifferentialBackend(*make_responses()), view) as live:
        assert await live.generate("hi", max_new_tokens=4) == f"hello from {mode}"
        with pytest.raises(MissingResponseError) as caught:
            await live.generate("never canned", max_new_tokens=4)
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == (
        f"dummy backend ({mode}): no canned generation for prompt 'never canned'"
    )


async def test_generate_ignores_decoding_options() -> None:
    async with AsyncDummyDifferentialBackend(*make_responses()).as_base() as view:
        text = await view.generate("hi", max_new_tokens=0, temperature=1.3, top_p=0.1, seed=9)
    assert text == "hello from base"


# -- the null view ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "init_scale", "rank_scale"),
    [
        (0, 0.02, 1.0),
        (42, 0.02, 1.0),
        (42, 0.02, 2.0),
        (7, 0.5, 0.25),
        (1_000_002, 0.1, 3.0),
        (2**40 + 5, 0.02, 1.0),  # entropy beyond one 32-bit word
        (3, 0.0, 1.0),  # no noise at all: the renormalised base
    ],
)
async def test_null_view_noise_is_the_seeds(
    seed: int, init_scale: float, rank_scale: float
) -> None:
    base, ft = make_responses()
    backend = AsyncDummyDifferentialBackend(base, ft)
    synth_lp, synth_tail = expected_synth("base")
    async with enter(backend, f"null:{seed}:{init_scale}:{rank_scale}") as view:
        for prompt in PROMPTS:
            dist = await view.next_token_dist(prompt)
            if prompt == "canned":
                canned = base.token_dists["canned"]
                expected = expected_null(canned.logprobs, seed, prompt, init_scale, rank_scale)
                assert_dist(dist, expected, token_ids=CANNED_IDS, vocab_size=50, tail=-4.0)
            else:
                expected = expected_null(synth_lp, seed, prompt, init_scale, rank_scale)
                assert_dist(dist, expected, tail=synth_tail)


async def test_null_views_differ_by_seed_prompt_and_scale() -> None:
    backend = AsyncDummyDifferentialBackend()
    seen = set()
    for view_spec in ("null:1", "null:2", "null:1:0.02:2.0", "null:1:0.05:1.0"):
        async with enter(backend, view_spec) as view:
            for prompt in ("a", "b"):
                seen.add((await view.next_token_dist(prompt)).logprobs.tobytes())
    assert len(seen) == 8


@settings(max_examples=60, deadline=None)
@given(
    prompt=st.text(max_size=40),
    seed=st.integers(min_value=0, max_value=2**34),
    rank_scale=st.sampled_from([0.5, 1.0, 2.0]),
)
async def test_null_view_matches_the_seed_for_any_prompt(
    prompt: str, seed: int, rank_scale: float
) -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_null_adapter(seed, rank_scale=rank_scale) as view:
        dist = await view.next_token_dist(prompt)
    expected = expected_null(expected_synth("base")[0], seed, prompt, 0.02, rank_scale)
    assert_bitwise(dist.logprobs, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
async def test_null_view_on_a_canned_base_of_another_dtype(dtype: type[np.floating[Any]]) -> None:
    logprobs = np.array([-0.3, -1.7, -2.2, -9.0], dtype=dtype)
    canned = TokenDist(np.arange(4, dtype=np.int64), logprobs, 10, None)
    backend = AsyncDummyDifferentialBackend(DummyResponses(token_dists={"p": canned}))
    async with backend.as_null_adapter(5) as view:
        dist = await view.next_token_dist("p")
    assert_dist(
        dist,
        expected_null(logprobs, 5, "p"),
        token_ids=np.arange(4, dtype=np.int64),
        vocab_size=10,
        tail=None,
    )


async def test_null_view_of_a_non_finite_base_is_non_finite_like_the_seeds() -> None:
    logprobs = np.array([-0.1, np.nan, -2.0, -np.inf], dtype=np.float32)
    canned = TokenDist(np.arange(4, dtype=np.int64), logprobs, 10, None)
    backend = AsyncDummyDifferentialBackend(DummyResponses(token_dists={"p": canned}))
    async with backend.as_null_adapter(5) as view:
        with np.errstate(invalid="ignore"):
            dist = await view.next_token_dist("p")
            expected = expected_null(logprobs, 5, "p")
    assert np.array_equal(dist.logprobs, expected, equal_nan=True)
    assert not dist.is_finite()


# -- the scaled view -------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.5, 1.0, 1.25, -0.5, 0.123456789])
async def test_scaled_view_blends_base_and_ft(lam: float) -> None:
    base, ft = make_responses()
    async with AsyncDummyDifferentialBackend(base, ft).as_scaled_adapter(lam) as view:
        synthesized = await view.next_token_dist("some prompt")
        canned = await view.next_token_dist("canned")
    base_lp, base_tail = expected_synth("base")
    assert_dist(synthesized, expected_blend(base_lp, expected_synth("ft")[0], lam), tail=base_tail)
    assert_dist(
        canned,
        expected_blend(base.token_dists["canned"].logprobs, ft.token_dists["canned"].logprobs, lam),
        token_ids=CANNED_IDS,
        vocab_size=50,
        tail=-4.0,  # the base's tail, as in the seed
    )


async def test_scaled_views_at_the_ends_equal_base_and_ft() -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_scaled_adapter(0.0) as view:
        assert_bitwise((await view.next_token_dist("p")).logprobs, expected_synth("base")[0])
    async with backend.as_scaled_adapter(1.0) as view:
        assert_bitwise((await view.next_token_dist("p")).logprobs, expected_synth("ft")[0])


async def test_blending_canned_distributions_of_different_lengths_is_an_error() -> None:
    short = TokenDist(np.arange(3, dtype=np.int64), np.zeros(3, dtype=np.float32), 10, None)
    backend = AsyncDummyDifferentialBackend(DummyResponses(token_dists={"p": short}))
    async with backend.as_scaled_adapter(0.5) as view:
        with pytest.raises(InvalidArgumentError, match=r"'scaled_0\.50'.*'p'.*3.*8"):
            await view.next_token_dist("p")


@pytest.mark.parametrize(
    ("view", "expected_id"),
    [
        ("base", "base"),
        ("ft", "ft"),
        ("scaled:0.5", "scaled_0.50"),
        ("scaled:1.25", "scaled_1.25"),
        ("scaled:-0.333", "scaled_-0.33"),
        ("null:42", "null_42"),
        ("null:42:0.02:1.0", "null_42"),
        ("null:42:0.02:2.0", "null_42_rank2.00"),
        ("null:0:0.1:0.5", "null_0_rank0.50"),
    ],
)
async def test_view_ids(view: str, expected_id: str) -> None:
    async with enter(AsyncDummyDifferentialBackend(), view) as live:
        assert live.id == expected_id


# -- the batch -------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["base", "ft", "scaled:0.5", "scaled:1.25", "null:42"])
async def test_batch_equals_the_per_prompt_path(view: str) -> None:
    prompts = ["canned", "b", "a", "b", "", "héllo"]
    base, ft = make_responses()
    async with enter(AsyncDummyDifferentialBackend(base, ft), view) as live:
        batched = await live.next_token_dist_batch(prompts, top_k=16)
        assert await live.next_token_dist_batch([]) == []
    async with enter(AsyncDummyDifferentialBackend(base, ft), view) as live:
        single = [await live.next_token_dist(p, top_k=16) for p in prompts]
    assert len(batched) == len(single)
    for got, want in zip(batched, single, strict=True):
        assert_dist(
            got,
            want.logprobs,
            token_ids=want.token_ids,
            vocab_size=want.vocab_size,
            tail=want.tail_logprob,
        )


async def test_batch_accepts_any_sequence_and_keeps_order() -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_null_adapter(1) as view:
        from_tuple = await view.next_token_dist_batch(("x", "y", "z"))
        from_deque = await view.next_token_dist_batch(collections.deque(["z", "0", "x"]))
    base_logprobs = expected_synth("base")[0]
    for batch, prompts in ((from_tuple, "xyz"), (from_deque, "z0x")):
        assert [d.logprobs.tobytes() for d in batch] == [
            expected_null(base_logprobs, 1, p).tobytes() for p in prompts
        ]


# -- the fast null-view seeding --------------------------------------------------------


def test_fast_seeding_is_active() -> None:
    assert FAST_SEEDING


@settings(max_examples=200, deadline=None)
@given(entropy=st.integers(min_value=0, max_value=2**96))
def test_pcg64_start_is_numpys_own_seeding(entropy: int) -> None:
    state = np.random.PCG64(entropy).state["state"]
    assert pcg64_start(entropy) == (state["state"], state["inc"])


@pytest.mark.parametrize("entropy", [0, 1, 2**32 - 1, 2**32, 2**64 + 1, 123_456_789])
def test_seeded_normal_is_default_rngs_normal(entropy: int) -> None:
    for scale, shape in ((0.02, (8,)), (1.0, (3,)), (0.0, (5,)), (2.5, (2, 3))):
        expected = np.random.default_rng(entropy).normal(0.0, scale, size=shape)
        assert_bitwise(seeded_normal(entropy, scale, shape), expected)


@pytest.mark.parametrize("broken", ["one-word entropy", "multi-word entropy", "raises"])
def test_a_restart_that_disagrees_with_default_rng_falls_back_to_it(
    monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    # As if a numpy release seeded PCG64 differently (or changed its state layout).
    real_start = _dummy.pcg64_start
    one_word = broken == "one-word entropy"

    def other_seeding(entropy: int) -> tuple[int, int]:
        if broken == "raises":
            raise ValueError("no such state layout")
        state, inc = real_start(entropy)
        return (state ^ 1, inc) if (entropy < 2**32) == one_word else (state, inc)

    monkeypatch.setattr(_dummy, "pcg64_start", other_seeding)
    if broken != "raises":
        entropy = 7 if one_word else 2**40 + 7
        restarted = _dummy._normal_restarted(entropy, 1.0, (4,))
        assert restarted.tobytes() != np.random.default_rng(entropy).normal(size=4).tobytes()
    chosen = _dummy._choose_seeded_normal()
    assert chosen is _dummy._normal_default_rng
    # The null view then draws through default_rng itself: still the seed's numbers.
    monkeypatch.setattr(_dummy, "seeded_normal", chosen)
    null = NullModel(ModeModel("base", DummyResponses()), 2**40, 0.02, 1.0)
    for prompt in ("p", "another prompt"):
        assert_bitwise(
            null.next_token_dist(prompt, 8).logprobs,
            expected_null(expected_synth("base")[0], 2**40, prompt),
        )


def test_seeded_normal_is_the_same_in_another_thread() -> None:
    results: list[NDArray[np.float64]] = []
    worker = threading.Thread(target=lambda: results.append(seeded_normal(99, 0.02, (8,))))
    worker.start()
    worker.join()
    assert_bitwise(results[0], np.random.default_rng(99).normal(0.0, 0.02, size=(8,)))


# -- side by side with dlm-sway 0.1.0 --------------------------------------------------


def seed_backend_for(base: DummyResponses, ft: DummyResponses) -> Any:
    dummy = pytest.importorskip(
        "dlm_sway.backends.dummy", reason="dlm-sway (a dev dependency) is not installed"
    )
    scoring = pytest.importorskip("dlm_sway.core.scoring")

    def convert(responses: DummyResponses) -> Any:
        return dummy.DummyResponses(
            generations=dict(responses.generations),
            logprobs=dict(responses.logprobs),
            rolling={
                text: scoring.RollingLogprob(r.token_ids, r.logprobs, r.num_tokens, r.total_logprob)
                for text, r in responses.rolling.items()
            },
            token_dists={
                prompt: scoring.TokenDist(d.token_ids, d.logprobs, d.vocab_size, d.tail_logprob)
                for prompt, d in responses.token_dists.items()
            },
        )

    return dummy.DummyDifferentialBackend(base=convert(base), ft=convert(ft))


SIDE_BY_SIDE_VIEWS = [
    "base",
    "ft",
    "scaled:0.0",
    "scaled:0.3",
    "scaled:0.5",
    "scaled:1.25",
    "null:0",
    "null:42",
    "null:42:0.02:2.0",
    "null:9:0.3:0.5",
]


def seed_view(seed_backend: Any, view: str) -> Any:
    name, *args = view.split(":")
    if name == "base":
        return seed_backend.as_base()
    if name == "ft":
        return seed_backend.as_finetuned()
    if name == "scaled":
        return seed_backend.as_scaled_adapter(float(args[0]))
    if len(args) == 1:
        return seed_backend.as_null_adapter(int(args[0]))
    return seed_backend.as_null_adapter(
        int(args[0]), init_scale=float(args[1]), rank_scale=float(args[2])
    )


async def answers(view: DummyView) -> list[object]:
    out: list[object] = []
    for prompt in PROMPTS:
        dist = await view.next_token_dist(prompt)
        out.append(("dist", dist.token_ids.tobytes(), dist.logprobs.tobytes(), dist.vocab_size))
        out.append(("tail", dist.tail_logprob))
        rolling = await view.rolling_logprob(prompt)
        out.append(("rolling", rolling.token_ids.tobytes(), rolling.logprobs.tobytes()))
        out.append(("rolling sums", rolling.num_tokens, rolling.total_logprob))
    for pair in (("Q:", " yes"), ("Q:", " no"), ("A:", " ok"), ("x", "y")):
        out.append(("logprob_of", await view.logprob_of(*pair)))
    for prompt in ("hi", "only-base", "only-ft", "nope"):
        try:
            out.append(("generate", await view.generate(prompt, max_new_tokens=3)))
        except KeyError as exc:
            out.append(("generate error", str(exc)))
    return out


def seed_answers(view: Any) -> list[object]:
    out: list[object] = []
    for prompt in PROMPTS:
        dist = view.next_token_dist(prompt)
        out.append(("dist", dist.token_ids.tobytes(), dist.logprobs.tobytes(), dist.vocab_size))
        out.append(("tail", dist.tail_logprob))
        rolling = view.rolling_logprob(prompt)
        out.append(("rolling", rolling.token_ids.tobytes(), rolling.logprobs.tobytes()))
        out.append(("rolling sums", rolling.num_tokens, rolling.total_logprob))
    for pair in (("Q:", " yes"), ("Q:", " no"), ("A:", " ok"), ("x", "y")):
        out.append(("logprob_of", view.logprob_of(*pair)))
    for prompt in ("hi", "only-base", "only-ft", "nope"):
        try:
            out.append(("generate", view.generate(prompt, max_new_tokens=3)))
        except KeyError as exc:
            out.append(("generate error", exc.args[0]))
    return out


@pytest.mark.parametrize("view", SIDE_BY_SIDE_VIEWS)
async def test_every_op_matches_dlm_sway_side_by_side(view: str) -> None:
    base, ft = make_responses()
    reference = seed_backend_for(base, ft)
    with seed_view(reference, view) as seed_live:
        expected = seed_answers(seed_live)
    async with enter(AsyncDummyDifferentialBackend(base, ft), view) as live:
        got = await answers(live)
        assert live.id == seed_live.id
    assert got == expected


@pytest.mark.parametrize("view", SIDE_BY_SIDE_VIEWS)
async def test_the_batch_matches_dlm_sway_per_prompt(view: str) -> None:
    base, ft = make_responses()
    reference = seed_backend_for(base, ft)
    with seed_view(reference, view) as seed_live:
        expected = [seed_live.next_token_dist(p).logprobs.tobytes() for p in PROMPTS]
    async with enter(AsyncDummyDifferentialBackend(base, ft), view) as live:
        got = [d.logprobs.tobytes() for d in await live.next_token_dist_batch(PROMPTS)]
    assert got == expected


@pytest.mark.parametrize("view", ["base", "ft", "scaled:0.5"])
async def test_shared_synthesized_results_are_read_only(view: str) -> None:
    # One array serves every synthesized prompt: a caller must not be able to
    # change another caller's numbers through it.
    async with enter(AsyncDummyDifferentialBackend(), view) as live:
        dist = await live.next_token_dist("p")
        rolling = await live.rolling_logprob("a b c")
    for array in (dist.logprobs, dist.token_ids, rolling.logprobs, rolling.token_ids):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
