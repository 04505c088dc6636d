"""Output corruption: what an output fault (``nan``, ``corrupt_mass``...) does to an op's value.

The kinds and their effects are listed in :mod:`swaysim._chaos.faults`. Every
function here returns a corrupted copy: the forward cache keeps the clean
value, so a later call that meets no fault gets the right answer.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar

import numpy as np

from swaysim._types import RollingLogprob, TokenDist

__all__ = ["corrupt"]

_V = TypeVar("_V", TokenDist, RollingLogprob, float)
_LN2: Final = math.log(2.0)
_CORRUPT_MASS: Final = 1.5


def corrupt(kind: str, value: _V) -> _V:
    """Return a corrupted copy of ``value``; cached values are never mutated."""
    if isinstance(value, TokenDist):
        return _corrupt_dist(kind, value)
    if isinstance(value, RollingLogprob):
        return _corrupt_rolling(kind, value)
    return _corrupt_float(kind, value)


def _non_finite(kind: str) -> float:
    return {"nan": math.nan, "posinf": math.inf, "neginf": -math.inf}[kind]


def _corrupt_dist(kind: str, dist: TokenDist) -> TokenDist:
    ids, lps = dist.token_ids, dist.logprobs
    if kind in ("nan", "posinf", "neginf"):
        lps = np.full(lps.shape, _non_finite(kind), dtype=np.float32)
    elif kind == "corrupt_unsorted":
        # The same (id, logprob) pairs, least probable first: code that takes
        # token_ids[0] as the argmax reads the wrong token. A pure permutation,
        # so a consumer that does not rely on the order is unaffected.
        order = np.argsort(lps, kind="stable")
        ids, lps = ids[order], lps[order]
    elif kind == "corrupt_duplicate":
        if ids.size >= 2:
            ids = ids.copy()
            ids[-1] = ids[0]
        elif ids.size:
            ids, lps = np.concatenate([ids, ids]), np.concatenate([lps, lps])
        else:
            ids, lps = np.zeros(2, dtype=np.int64), np.full(2, -1.0, dtype=np.float32)
    elif kind == "corrupt_length":
        lps = np.concatenate([lps, np.full(1, -20.0, dtype=np.float32)])
    elif kind == "corrupt_mass":
        # Double the slice's mass, or raise it to 1.5 if doubling gives less: a
        # slice of mass 0.5 doubled is 1.0, which any tolerant validator accepts.
        # The shape is kept. An empty (or all -inf) slice gets one token of mass 1.5.
        finite = lps[np.isfinite(lps)].astype(np.float64)
        mass = float(np.exp(finite).sum())
        if mass > 0.0:
            shift = _LN2 if 2.0 * mass >= _CORRUPT_MASS else math.log(_CORRUPT_MASS / mass)
            lps = (lps + np.float32(shift)).astype(np.float32)
        else:
            ids = np.append(ids, int(ids.max()) + 1 if ids.size else 0).astype(np.int64)
            lps = np.append(lps, math.log(_CORRUPT_MASS)).astype(np.float32)
    return TokenDist(ids, lps, dist.vocab_size, dist.tail_logprob)


def _corrupt_rolling(kind: str, rolling: RollingLogprob) -> RollingLogprob:
    if kind == "corrupt_length":
        lps = np.concatenate([rolling.logprobs, np.full(1, -20.0, dtype=np.float32)])
        return RollingLogprob(rolling.token_ids, lps, rolling.num_tokens, rolling.total_logprob)
    bad = _non_finite(kind)
    lps = np.full(rolling.logprobs.shape, bad, dtype=np.float32)
    return RollingLogprob(rolling.token_ids, lps, rolling.num_tokens, bad)


def _corrupt_float(kind: str, value: float) -> float:
    if kind == "corrupt_mass":
        return abs(value) + 1.0
    return _non_finite(kind)
