"""The values views return, with dlm-sway's field names and semantics.

Code written against dlm-sway's ``TokenDist`` and ``RollingLogprob`` reads
swaysim's unchanged; only the ops that produce them became coroutines.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from swaysim._validation import invalid, require_number
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    _SetSlot = Callable[["TokenDist", object], None]

__all__ = ["DummyResponses", "RollingLogprob", "TokenDist"]


@dataclass(frozen=True, slots=True)
class RollingLogprob:
    """Per-token logprobs over a text: ``log p(token_i | token_<i)``.

    ``token_ids`` has length N, ``logprobs`` length N-1 (float32),
    ``num_tokens`` is N and ``total_logprob`` the sum of ``logprobs``.
    """

    token_ids: NDArray[np.int64]
    logprobs: NDArray[np.float32]
    num_tokens: int
    total_logprob: float

    @property
    def mean_logprob(self) -> float:
        """Mean per-token logprob in nats; 0.0 for a single-token text."""
        n = self.logprobs.size
        return float(self.total_logprob / n) if n else 0.0

    @property
    def perplexity(self) -> float:
        """``exp(-mean_logprob)``: natural-base perplexity."""
        return float(np.exp(-self.mean_logprob))

    def is_finite(self) -> bool:
        """True when every logprob and the total are finite (no NaN, no +-Inf)."""
        return math.isfinite(self.total_logprob) and bool(np.isfinite(self.logprobs).all())


@dataclass(frozen=True, slots=True)
class TokenDist:
    """A (possibly top-k truncated) next-token distribution.

    ``token_ids`` are sorted by descending probability and ``logprobs``
    (float32) match them one to one. ``tail_logprob`` is the log of the mass
    outside the slice, with three states a consumer must keep apart:

    - ``None``: no measurable tail (the slice covers the vocabulary, or the
      residual underflowed);
    - ``0.0``: a tail exists but its mass is exactly zero in float32;
    - a negative float: the log of a measurable tail mass, which divergence
      maths (``swaysim.divergence``, as dlm-sway's) shares evenly among the
      tokens another slice lists and this one does not.
    """

    token_ids: NDArray[np.int64]
    logprobs: NDArray[np.float32]
    vocab_size: int
    tail_logprob: float | None = field(default=None)

    def is_finite(self) -> bool:
        """True when every logprob (and the tail, if any) is finite."""
        tail = self.tail_logprob
        if tail is not None and not math.isfinite(tail):
            return False
        return bool(np.isfinite(self.logprobs).all())


_new_object = object.__new__
_SET_TOKEN_IDS: _SetSlot = vars(TokenDist)["token_ids"].__set__
_SET_LOGPROBS: _SetSlot = vars(TokenDist)["logprobs"].__set__
_SET_VOCAB_SIZE: _SetSlot = vars(TokenDist)["vocab_size"].__set__
_SET_TAIL: _SetSlot = vars(TokenDist)["tail_logprob"].__set__


def new_token_dist(
    token_ids: NDArray[np.int64],
    logprobs: NDArray[np.float32],
    vocab_size: int,
    tail_logprob: float | None,
) -> TokenDist:
    """``TokenDist(...)`` for hot paths: fills the slots directly.

    Equal to calling the class; it skips the frozen dataclass ``__init__``,
    which routes every field through ``object.__setattr__``.
    """
    dist: TokenDist = _new_object(TokenDist)
    _SET_TOKEN_IDS(dist, token_ids)
    _SET_LOGPROBS(dist, logprobs)
    _SET_VOCAB_SIZE(dist, vocab_size)
    _SET_TAIL(dist, tail_logprob)
    return dist


@dataclass(slots=True)
class DummyResponses:
    """Canned answers for one mode (base or ft) of the dummy backend.

    Anything not canned is synthesized exactly as dlm-sway's dummy does it:
    a missing ``logprobs`` entry scores ``-10.0``, a missing rolling text or
    token distribution is synthesized, and a missing generation is an error.
    """

    generations: dict[str, str] = field(default_factory=dict)
    """Prompt to canned completion, matched exactly."""
    logprobs: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(prompt, completion)`` to summed logprob; ``-10.0`` when missing."""
    rolling: dict[str, RollingLogprob] = field(default_factory=dict)
    """Text to canned :class:`RollingLogprob`."""
    token_dists: dict[str, TokenDist] = field(default_factory=dict)
    """Prompt to canned :class:`TokenDist`."""

    def __post_init__(self) -> None:
        _check_canned("generations", self.generations, _is_text, str, "a str")
        _check_canned("logprobs", self.logprobs, _is_prompt_pair, numbers.Real, "a number")
        _check_canned("rolling", self.rolling, _is_text, RollingLogprob, "a RollingLogprob")
        _check_canned("token_dists", self.token_dists, _is_text, TokenDist, "a TokenDist")


def _is_text(key: object) -> bool:
    return isinstance(key, str)


def _is_prompt_pair(key: object) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)


def _check_canned(
    name: str, table: object, key_ok: Callable[[object], bool], value_type: type, what: str
) -> None:
    """One table of canned answers: a mapping with well-formed keys and ``value_type`` values."""
    if not isinstance(table, Mapping):
        raise invalid(name, table, "must be a dict", owner="DummyResponses")
    for key, value in table.items():
        if not key_ok(key):
            shape = "(prompt, completion) pairs" if key_ok is _is_prompt_pair else "strings"
            raise InvalidArgumentError(
                f"DummyResponses.{name} has the key {key!r}; its keys must be {shape}",
                field=name,
                value=key,
            )
        if isinstance(value, bool) or not isinstance(value, value_type):
            raise invalid(f"{name}[{key!r}]", value, f"must be {what}", owner="DummyResponses")
        if value_type is numbers.Real:
            require_number(f"{name}[{key!r}]", value, numpy_scalars=True, owner="DummyResponses")
