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
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Final

import numpy as np

from swaysim._errors import InvalidArgumentError, MissingResponseError
from swaysim._types import DummyResponses, RollingLogprob, TokenDist

if TYPE_CHECKING:
    from numpy.typing import NDArray

SYNTH_VOCAB: Final = 1000
SYNTH_K: Final = 8
ROLLING_PER_TOKEN: Final = {"base": -2.0, "ft": -1.5}
MISSING_LOGPROB: Final = -10.0
_NULL_SEED_MODULUS: Final = 1_000_003


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


class ViewModel(ABC):
    """What one view computes; shared by every entry of the same view."""

    __slots__ = ("cache_id", "calls", "id", "kind")

    kind: str
    id: str
    cache_id: str

    def __init__(self) -> None:
        # One counter per op, in swaysim._vocab.OPS order.
        self.calls = [0, 0, 0, 0, 0]

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
        digest = hashlib.md5(prompt.encode("utf-8"), usedforsecurity=False).hexdigest()
        rng = np.random.default_rng(self._seed + int(digest[:8], 16) % _NULL_SEED_MODULUS)
        noise = rng.normal(0.0, self._scale, size=base.logprobs.shape).astype(np.float32)
        noisy = base.logprobs + noise
        probs = np.exp(noisy - noisy.max())
        probs /= probs.sum()
        logprobs = np.log(probs).astype(np.float32, copy=False)
        return TokenDist(base.token_ids, logprobs, base.vocab_size, base.tail_logprob)

    def logprob_of(self, prompt: str, completion: str) -> float:
        return self._base.logprob_of(prompt, completion)

    def rolling_logprob(self, text: str) -> RollingLogprob:
        return self._base.rolling_logprob(text)

    def generate(self, prompt: str) -> str:
        return self._base.generate(prompt)
