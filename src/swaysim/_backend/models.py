"""The dummy's numbers: exactly dlm-sway's dummy backend, computed faster.

Every value here equals what the seed's synchronous dummy returns for the same
view and input: canned lookups, the sharp-base / broad-ft synthesized
distributions (k=8, vocab 1000), synthesized rolling logprobs (-2.0 base,
-1.5 ft per token), the null view's md5-seeded noise and renormalisation, and
the scaled view's linear blend. What does not depend on the prompt is computed
once; shared arrays are read-only so no caller can corrupt another's result.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from swaysim._types import DummyResponses, RollingLogprob, TokenDist, new_token_dist
from swaysim._vocab import (
    GENERATE_OP,
    LOGPROB_OF_OP,
    NEXT_TOKEN_DIST_OP,
    OPS,
    ROLLING_LOGPROB_OP,
)
from swaysim.errors import InvalidArgumentError, MissingResponseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

SYNTH_VOCAB: Final = 1000
SYNTH_K: Final = 8
ROLLING_PER_TOKEN: Final = {"base": -2.0, "ft": -1.5}
MISSING_LOGPROB: Final = -10.0
_NULL_SEED_MODULUS: Final = 1_000_003

_MASK32: Final = 0xFFFF_FFFF
_MASK128: Final = (1 << 128) - 1
_PCG64_MULTIPLIER: Final = (2549297995355413924 << 64) + 4865540595714422341


class _Digest(Protocol):
    def digest(self) -> bytes: ...


def _fastest_md5() -> Callable[[bytes], _Digest]:
    # CPython's own md5 beats OpenSSL's on prompt-sized inputs; same digest.
    try:
        return importlib.import_module("_md5").md5  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - a build without it
        return hashlib.md5


_MD5: Final = _fastest_md5()


def _state_word_constants() -> tuple[int, ...]:
    # SeedSequence.generate_state hashes pool word i % 4 into output word i with
    # a running constant: xor with it, advance it, multiply by the new value.
    constants: list[int] = []
    running = 0x8B51_F9DD
    for _ in range(8):
        xor = running
        running = running * 0x58F3_8DED & _MASK32
        constants += (xor, running)
    return tuple(constants)


(_X0, _K0, _X1, _K1, _X2, _K2, _X3, _K3, _X4, _K4, _X5, _K5, _X6, _K6, _X7, _K7) = (
    _state_word_constants()
)


class _ReusableGenerator(threading.local):
    """One PCG64-backed Generator per thread, restarted in place for each draw."""

    def __init__(self) -> None:
        self.bit_generator = np.random.PCG64(0)
        self.generator = np.random.Generator(self.bit_generator)
        self.entropy_word = np.zeros(1, dtype=np.uint32)


_REUSABLE = _ReusableGenerator()


def pcg64_start(entropy: int) -> tuple[int, int]:
    """The ``(state, inc)`` that ``numpy.random.PCG64(entropy)`` starts from.

    ``default_rng(entropy)`` builds a SeedSequence, asks it for four 64-bit
    words through a generic numpy path, then builds a PCG64 and a Generator:
    most of the null view's cost. Only the SeedSequence's entropy pool needs
    numpy; the words and PCG64's two seeding steps are a few integer operations
    (unrolled: this runs once per null-view forward pass). ``entropy`` is a
    non-negative int, as ``default_rng`` requires.

    This re-derives numpy's seeding, so :data:`seeded_normal` uses it only if
    an import-time check finds its draws bit-identical to ``default_rng``'s;
    otherwise every draw goes through ``default_rng`` itself.
    """
    if entropy <= _MASK32:
        # One word of entropy: a reused uint32 array skips numpy's int coercion.
        word = _REUSABLE.entropy_word
        word[0] = entropy
        p0, p1, p2, p3 = np.random.SeedSequence(word).pool.tolist()
    else:
        p0, p1, p2, p3 = np.random.SeedSequence(entropy).pool.tolist()
    mask = _MASK32
    w0 = (p0 ^ _X0) * _K0 & mask
    w1 = (p1 ^ _X1) * _K1 & mask
    w2 = (p2 ^ _X2) * _K2 & mask
    w3 = (p3 ^ _X3) * _K3 & mask
    w4 = (p0 ^ _X4) * _K4 & mask
    w5 = (p1 ^ _X5) * _K5 & mask
    w6 = (p2 ^ _X6) * _K6 & mask
    w7 = (p3 ^ _X7) * _K7 & mask
    # Each word ends with value ^= value >> 16; pairs form little-endian uint64s,
    # the first two the initial state (high, low), the last two the stream.
    init_state = (
        (w1 ^ w1 >> 16) << 96 | (w0 ^ w0 >> 16) << 64 | (w3 ^ w3 >> 16) << 32 | (w2 ^ w2 >> 16)
    )
    stream = (w5 ^ w5 >> 16) << 96 | (w4 ^ w4 >> 16) << 64 | (w7 ^ w7 >> 16) << 32 | (w6 ^ w6 >> 16)
    inc = (stream << 1 | 1) & _MASK128
    # pcg_setseq_128_srandom_r: state = 0; step; state += init_state; step.
    return ((inc + init_state) * _PCG64_MULTIPLIER + inc) & _MASK128, inc


def _normal_restarted(entropy: int, scale: float, shape: tuple[int, ...]) -> NDArray[np.float64]:
    state, inc = pcg64_start(entropy)
    reusable = _REUSABLE
    # The public state setter: numpy validates it and resets the buffered word.
    reusable.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": inc},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return reusable.generator.normal(0.0, scale, size=shape)


def _normal_default_rng(entropy: int, scale: float, shape: tuple[int, ...]) -> NDArray[np.float64]:
    return np.random.default_rng(entropy).normal(0.0, scale, size=shape)


def _restarting_matches_default_rng() -> bool:
    """Whether the restarted generator draws exactly what ``default_rng`` draws.

    Checked once, at import, on entropies of one word and of several (both
    branches of :func:`pcg64_start`). A numpy release that seeds PCG64
    differently, or changes the state layout the restart relies on (an
    exception here), makes it False.
    """
    try:
        for entropy in (0, 1_000_002, 2**32 + 7, 2**70 + 3):
            fast = _normal_restarted(entropy, 1.0, (4,))
            if fast.tobytes() != _normal_default_rng(entropy, 1.0, (4,)).tobytes():
                return False
    except Exception:
        return False
    return True


def _choose_seeded_normal() -> Callable[[int, float, tuple[int, ...]], NDArray[np.float64]]:
    # If the restart is not bit-identical, every draw falls back to default_rng:
    # slower, but still the seed's numbers.
    return _normal_restarted if _restarting_matches_default_rng() else _normal_default_rng


seeded_normal: Final = _choose_seeded_normal()
"""``default_rng(entropy).normal(0.0, scale, size=shape)``, bit for bit."""
FAST_SEEDING: Final = seeded_normal is _normal_restarted
"""Whether :data:`seeded_normal` is the fast restart (False: plain ``default_rng``)."""


def _readonly(array: NDArray[np.generic]) -> NDArray[np.generic]:
    array.flags.writeable = False
    return array


def _synth_dist(mode: str) -> TokenDist:
    if mode == "base":
        lp = np.array([-0.1] + [-5.0] * (SYNTH_K - 1), dtype=np.float32)
    else:
        # Not literally uniform: a uniform top-k trips divergence guards.
        lp = np.full(SYNTH_K, -math.log(SYNTH_K), dtype=np.float32)
        lp += np.linspace(-1e-4, 1e-4, SYNTH_K, dtype=np.float32)
    residual = 1.0 - float(np.exp(lp).sum())
    tail = math.log(residual) if residual > 1e-12 else None
    ids = _readonly(np.arange(SYNTH_K, dtype=np.int64))
    return TokenDist(ids, _readonly(lp), SYNTH_VOCAB, tail)  # type: ignore[arg-type]


SYNTH_DISTS: Final = {"base": _synth_dist("base"), "ft": _synth_dist("ft")}
_FLOAT32: Final = np.dtype(np.float32)


class ViewModel(ABC):
    """What one view computes; shared by every entry of the same view.

    ``calls`` counts the op calls made on the view (every entry of the view
    adds to the same counters), one counter per op at its
    :data:`~swaysim._vocab.OP_SLOTS` position: a list, as the fast path
    counts every call and a list index is the cheapest counter.
    """

    __slots__ = ("cache_id", "calls", "id", "kind")

    kind: str
    id: str
    cache_id: str

    def __init__(self) -> None:
        self.calls = [0] * len(OPS)

    def forward(self, op: str, args: tuple[Any, ...]) -> TokenDist | RollingLogprob | float | str:
        """One forward pass of ``op`` on the op's arguments (what a cache miss computes).

        ``args`` are those of the op's method: ``(prompt, top_k)``,
        ``(prompt, completion)``, ``(text,)`` or ``(prompt,)`` for ``generate``.
        """
        if op == NEXT_TOKEN_DIST_OP:
            return self.next_token_dist(*args)
        if op == LOGPROB_OF_OP:
            return self.logprob_of(*args)
        if op == ROLLING_LOGPROB_OP:
            return self.rolling_logprob(*args)
        if op == GENERATE_OP:
            return self.generate(*args)
        raise AssertionError(f"no forward pass for op {op!r}")  # pragma: no cover - a bug

    @abstractmethod
    def next_token_dist(self, prompt: str, top_k: int) -> TokenDist:
        """The next-token distribution after ``prompt``."""

    @abstractmethod
    def logprob_of(self, prompt: str, completion: str) -> float:
        """Summed completion logprob."""

    @abstractmethod
    def rolling_logprob(self, text: str) -> RollingLogprob:
        """Rolling logprob over ``text``."""

    @abstractmethod
    def generate(self, prompt: str) -> str:
        """The canned generation for ``prompt``."""


class ModeModel(ViewModel):
    """The base or ft view: canned answers, else the seed's synthesized ones."""

    __slots__ = ("_mode", "_responses", "_rolling_memo", "_synth")

    def __init__(self, mode: str, responses: DummyResponses) -> None:
        super().__init__()
        self.kind = self.id = self.cache_id = mode
        self._mode = mode
        self._responses = responses
        self._synth = SYNTH_DISTS[mode]
        self._rolling_memo: dict[int, RollingLogprob] = {}

    def next_token_dist(self, prompt: str, top_k: int) -> TokenDist:
        canned = self._responses.token_dists.get(prompt)
        return self._synth if canned is None else canned

    def logprob_of(self, prompt: str, completion: str) -> float:
        return self._responses.logprobs.get((prompt, completion), MISSING_LOGPROB)

    def rolling_logprob(self, text: str) -> RollingLogprob:
        canned = self._responses.rolling.get(text)
        if canned is not None:
            return canned
        n = max(len(text.split()), 1)
        memo = self._rolling_memo.get(n)
        if memo is None:
            per_token = ROLLING_PER_TOKEN[self._mode]
            memo = RollingLogprob(
                token_ids=_readonly(np.arange(n, dtype=np.int64)),  # type: ignore[arg-type]
                logprobs=_readonly(np.full(max(n - 1, 0), per_token, dtype=np.float32)),  # type: ignore[arg-type]
                num_tokens=n,
                total_logprob=per_token * max(n - 1, 0),
            )
            self._rolling_memo[n] = memo
        return memo

    def generate(self, prompt: str) -> str:
        try:
            return self._responses.generations[prompt]
        except KeyError:
            raise MissingResponseError(
                f"dummy backend ({self._mode}): no canned generation for prompt {prompt!r}"
            ) from None


class ScaledModel(ViewModel):
    """``lam`` times the adapter: a linear blend of the base and ft answers.

    Generation and rolling logprobs follow ft at ``lam >= 0.5`` and base
    below, as in the seed (canned strings have no notion of "how much").
    Canned distributions of one prompt must have the same length in both
    modes; where the seed would broadcast or fail inside numpy, this raises
    :class:`InvalidArgumentError` naming the view, the prompt and the lengths.
    """

    __slots__ = ("_base", "_ft", "_lam", "_nearest", "_synth")

    def __init__(self, base: ModeModel, ft: ModeModel, lam: float) -> None:
        super().__init__()
        self.kind = "scaled"
        self.id = f"scaled_{lam:.2f}"
        self.cache_id = f"scaled:{lam!r}"
        self._base = base
        self._ft = ft
        self._lam = lam
        self._nearest = ft if lam >= 0.5 else base
        self._synth = self._blend(SYNTH_DISTS["base"], SYNTH_DISTS["ft"])
        _readonly(self._synth.logprobs)  # shared by every synthesized prompt

    def _blend(self, base: TokenDist, ft: TokenDist, prompt: str = "") -> TokenDist:
        if base.logprobs.shape != ft.logprobs.shape:
            raise InvalidArgumentError(
                f"scaled view {self.id!r} cannot blend prompt {prompt!r}: the base distribution "
                f"has {base.logprobs.size} logprobs and the ft one {ft.logprobs.size}; "
                "canned token_dists for a prompt must have the same length in both modes"
            )
        lam = self._lam
        blended = (1 - lam) * base.logprobs + lam * ft.logprobs
        return TokenDist(base.token_ids, blended, base.vocab_size, base.tail_logprob)

    def next_token_dist(self, prompt: str, top_k: int) -> TokenDist:
        base = self._base.next_token_dist(prompt, top_k)
        ft = self._ft.next_token_dist(prompt, top_k)
        if base is SYNTH_DISTS["base"] and ft is SYNTH_DISTS["ft"]:
            return self._synth
        return self._blend(base, ft, prompt)

    def logprob_of(self, prompt: str, completion: str) -> float:
        lam = self._lam
        base_value = self._base.logprob_of(prompt, completion)
        ft_value = self._ft.logprob_of(prompt, completion)
        return (1 - lam) * base_value + lam * ft_value

    def rolling_logprob(self, text: str) -> RollingLogprob:
        return self._nearest.rolling_logprob(text)

    def generate(self, prompt: str) -> str:
        return self._nearest.generate(prompt)


class NullModel(ViewModel):
    """The base view plus seeded noise of std ``init_scale * sqrt(rank_scale)``.

    The noise for a prompt comes from ``default_rng(seed + md5(prompt) %
    1_000_003)`` (first 8 hex digits of the md5), then the top-k slice is
    renormalised; every other op answers as the base view.
    """

    __slots__ = ("_base", "_scale", "_seed")

    def __init__(self, base: ModeModel, seed: int, init_scale: float, rank_scale: float) -> None:
        super().__init__()
        self.kind = "null"
        self.id = f"null_{seed}" if rank_scale == 1.0 else f"null_{seed}_rank{rank_scale:.2f}"
        self.cache_id = f"null:{seed}:{init_scale!r}:{rank_scale!r}"
        self._base = base
        self._seed = seed
        self._scale = init_scale * math.sqrt(rank_scale)

    def next_token_dist(self, prompt: str, top_k: int) -> TokenDist:
        base = self._base.next_token_dist(prompt, top_k)
        # The first 8 hex digits of the md5 are its first 4 bytes, big-endian.
        digest = _MD5(prompt.encode()).digest()
        entropy = self._seed + int.from_bytes(digest[:4]) % _NULL_SEED_MODULUS
        base_logprobs = base.logprobs
        noise = seeded_normal(entropy, self._scale, base_logprobs.shape)
        if base_logprobs.dtype == _FLOAT32 and base_logprobs.ndim == 1:
            # The seed's arithmetic in fewer numpy calls: the float32 cast inside
            # the add, max and sum straight from the ufuncs, one buffer.
            noisy = np.add(base_logprobs, noise, dtype=np.float32, casting="unsafe")
            np.subtract(noisy, np.maximum.reduce(noisy), out=noisy)
            probs = np.exp(noisy)
            np.divide(probs, np.add.reduce(probs), out=probs)
            logprobs = np.log(probs)
        else:
            noisy = base_logprobs + noise.astype(np.float32)
            probs = np.exp(noisy - noisy.max())
            probs /= probs.sum()
            logprobs = np.log(probs).astype(np.float32)
        return new_token_dist(base.token_ids, logprobs, base.vocab_size, base.tail_logprob)

    def logprob_of(self, prompt: str, completion: str) -> float:
        return self._base.logprob_of(prompt, completion)

    def rolling_logprob(self, text: str) -> RollingLogprob:
        return self._base.rolling_logprob(text)

    def generate(self, prompt: str) -> str:
        return self._base.generate(prompt)
