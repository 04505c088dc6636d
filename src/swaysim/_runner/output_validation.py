"""Checks of what a view returned, before any probe computes on it.

A backend under fault injection hands probes NaN/Inf logprobs, unsorted or
duplicate token ids, mismatched lengths and probability mass above 1; every
entry point here turns such an output into a :class:`ProbeMathError` that
names the side (``base``, ``ft`` or a view id), what is wrong and the
offending value, so a probe reports ERROR instead of a number computed from
garbage. The maths that runs on validated outputs is in
:mod:`swaysim._runner.divergence`.

Three validation contracts exist for next-token distributions, because the
seed's own views do not all keep the :class:`TokenDist` contract:

- ``normalized=True`` (the contract; use it for ``base`` and ``ft``): logprobs
  are at most 0, sorted by descending logprob, and the top-k mass plus the
  tail mass is at most 1.
- ``normalized="top_k"`` (use it for ``null`` views and ``scaled`` views with
  ``0 <= lam <= 1``): logprobs at most 0 and the top-k mass alone at most 1,
  order not checked. The null view adds noise without re-sorting and keeps
  the base tail after renormalising its top-k to 1 (mass 1.048 with the
  tail); a log-linear blend ``p**(1-lam) * q**lam`` of two distributions has
  mass at most 1 for lam in [0, 1] (Hoelder), but is not sorted.
- ``normalized=False`` (log-scores; ``scaled`` views with lam outside [0, 1]):
  extrapolated blends are not distributions at all (top-k mass 1.89 and the
  top token last at ``lam=1.25``, positive logprobs from about 1.7), so only
  the structural, finiteness and degeneracy checks apply;
  :func:`~swaysim._runner.divergence.aligned_probs` renormalises anyway.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from swaysim.errors import ProbeMathError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from swaysim._types import RollingLogprob, TokenDist

__all__ = [
    "Normalization",
    "require_finite_values",
    "tail_mass",
    "validate_logprob",
    "validate_rolling",
    "validate_token_dist",
]

LOGPROB_TOLERANCE: Final = 1e-4
"""How far above 0 a float32 logprob may round before it means probability > 1."""
MASS_TOLERANCE: Final = 1e-3
"""How far above 1 the top-k plus tail mass may round (float32 sums err ~1e-6)."""
SORT_TOLERANCE: Final = 1e-3
"""How far a logprob may rise above an earlier one and still count as sorted.

The seed's ft distribution is ``-ln 8`` plus an *ascending* ``linspace(-1e-4,
1e-4)`` perturbation, so it rises by 2e-4 nats across its top-8."""
DEGENERATE_SPREAD: Final = 1e-9
"""A top-k whose logprobs spread less than this is a broken lm_head, not a model."""

Normalization = bool | Literal["top_k"]
"""How much of the TokenDist contract a view keeps: True, "top_k" or False (see above)."""


def _as_vector(
    label: str, subject: str, what: str, values: ArrayLike, *, integer: bool
) -> NDArray[np.generic]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ProbeMathError(
            label, f"{what} must be one-dimensional, got shape {array.shape}", subject
        )
    if integer and array.size and not np.issubdtype(array.dtype, np.integer):
        raise ProbeMathError(label, f"{what} must hold integers, got dtype {array.dtype}", subject)
    if not integer and array.size and not np.issubdtype(array.dtype, np.floating):
        raise ProbeMathError(label, f"{what} must hold floats, got dtype {array.dtype}", subject)
    return array


def require_finite_values(label: str, subject: str, what: str, values: NDArray[np.float64]) -> None:
    """Raise :class:`ProbeMathError` naming the first NaN/Inf in ``values`` and their count."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.argmax(bad))
        raise ProbeMathError(
            label,
            f"{what} holds {int(bad.sum())} non-finite value(s), the first "
            f"{float(values[first])!r} at position {first}; refusing to compute on NaN/Inf output",
            subject,
        )


def _require_at_most_zero(label: str, subject: str, what: str, values: NDArray[np.float64]) -> None:
    if values.size and values.max() > LOGPROB_TOLERANCE:
        worst = int(np.argmax(values))
        raise ProbeMathError(
            label,
            f"{what} holds {float(values[worst])!r} at position {worst}, a probability of "
            f"{math.exp(min(float(values[worst]), 700.0)):.6g} > 1",
            subject,
        )


def tail_mass(label: str, subject: str, tail: float | None) -> float:
    """The tail's probability mass; raises unless the tail is None, 0.0 or negative finite."""
    if tail is None:
        return 0.0
    if isinstance(tail, bool) or not isinstance(tail, int | float | np.floating):
        raise ProbeMathError(label, f"tail_logprob={tail!r} must be None or a float", subject)
    value = float(tail)
    if not math.isfinite(value) or value > 0.0:
        raise ProbeMathError(
            label,
            f"tail_logprob={tail!r} must be None, 0.0 or a negative finite log mass",
            subject,
        )
    # 0.0 is the "exactly zero in float32" state, not log(1): no mass to spread.
    return 0.0 if value == 0.0 else math.exp(value)


def validate_token_dist(dist: TokenDist, *, label: str, normalized: Normalization = True) -> None:
    """Raise :class:`ProbeMathError` unless ``dist`` is a distribution one may compute on.

    Always checked: one-dimensional integer ids and float logprobs of equal,
    non-zero length (at most ``vocab_size``), ids unique and inside the
    vocabulary, every logprob finite, the tail None, 0.0 or negative finite,
    and a top-k that is not all-equal (spread below 1e-9 means a broken
    lm_head, and every divergence would be a meaningless constant).

    With ``normalized=True`` (the :class:`TokenDist` contract) also: each
    logprob at most 0, sorted by descending logprob (within
    :data:`SORT_TOLERANCE`), and top-k plus tail mass at most 1 (within
    :data:`MASS_TOLERANCE`). With ``normalized="top_k"``: each logprob at
    most 0 and the top-k mass alone at most 1 (the seed's null views and
    scaled views with lam in [0, 1]). Pass ``normalized=False`` for views
    whose logprobs are log-scores to renormalise (the seed's scaled views with
    lam outside [0, 1]; see the module docstring).
    """
    logprobs = _token_dist_logprobs(dist, label)
    tail = tail_mass(label, "TokenDist", dist.tail_logprob)
    if normalized is not False:
        _require_at_most_zero(label, "TokenDist", "logprobs", logprobs)
    if normalized == "top_k":
        _require_top_k_mass(label, logprobs)
    elif normalized:
        _require_sorted(label, logprobs)
        _require_total_mass(label, logprobs, tail)
    _require_spread(label, logprobs)


def _token_dist_logprobs(dist: TokenDist, label: str) -> NDArray[np.float64]:
    """The structural checks of :func:`validate_token_dist`; the finite logprobs as float64."""
    what = "TokenDist"
    vocab_size = dist.vocab_size
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer):
        raise ProbeMathError(label, f"vocab_size={vocab_size!r} must be an integer", what)
    if vocab_size < 1:
        raise ProbeMathError(label, f"vocab_size={vocab_size!r} must be positive", what)
    ids = _as_vector(label, what, "token_ids", dist.token_ids, integer=True)
    raw = _as_vector(label, what, "logprobs", dist.logprobs, integer=False)
    if ids.size != raw.size:
        raise ProbeMathError(
            label,
            f"has {ids.size} token_ids but {raw.size} logprobs; they must match one to one",
            what,
        )
    if ids.size == 0:
        raise ProbeMathError(label, "empty: a top-k needs at least one token", what)
    if ids.size > vocab_size:
        raise ProbeMathError(
            label, f"lists {ids.size} tokens, more than its vocab_size={vocab_size}", what
        )
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ProbeMathError(
            label, f"token id {bad} is outside the vocabulary [0, {vocab_size})", what
        )
    order = np.argsort(ids, kind="stable")
    repeats = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeats.size:
        first, second = sorted((int(order[repeats[0]]), int(order[repeats[0] + 1])))
        raise ProbeMathError(
            label,
            f"token id {int(ids[first])} appears twice (positions {first} and {second}); "
            "token_ids must be unique",
            what,
        )
    logprobs = raw.astype(np.float64)
    require_finite_values(label, what, "logprobs", logprobs)
    return logprobs


def _require_top_k_mass(label: str, logprobs: NDArray[np.float64]) -> None:
    top_mass = math.fsum(np.exp(logprobs).tolist())
    if top_mass > 1.0 + MASS_TOLERANCE:
        raise ProbeMathError(
            label,
            f"holds probability mass {top_mass:.6g} in its top-{logprobs.size} > 1 "
            f"(tolerance {MASS_TOLERANCE:g})",
            "TokenDist",
        )


def _require_sorted(label: str, logprobs: NDArray[np.float64]) -> None:
    if logprobs.size > 1:
        rises = logprobs[1:] - np.maximum.accumulate(logprobs)[:-1]
        worst = int(np.argmax(rises))
        if rises[worst] > SORT_TOLERANCE:
            raise ProbeMathError(
                label,
                f"not sorted by descending logprob: position {worst + 1} holds "
                f"{float(logprobs[worst + 1])!r}, {float(rises[worst]):.6g} nats above an "
                f"earlier logprob (tolerance {SORT_TOLERANCE:g})",
                "TokenDist",
            )


def _require_total_mass(label: str, logprobs: NDArray[np.float64], tail: float) -> None:
    top_mass = math.fsum(np.exp(logprobs).tolist())
    if top_mass + tail > 1.0 + MASS_TOLERANCE:
        raise ProbeMathError(
            label,
            f"holds probability mass {top_mass:.6g} in its top-{logprobs.size} plus "
            f"{tail:.6g} in its tail = {top_mass + tail:.6g} > 1 "
            f"(tolerance {MASS_TOLERANCE:g})",
            "TokenDist",
        )


def _require_spread(label: str, logprobs: NDArray[np.float64]) -> None:
    if logprobs.size > 1:
        spread = float(logprobs.max() - logprobs.min())
        if spread < DEGENERATE_SPREAD:
            raise ProbeMathError(
                label,
                f"degenerate: its top-{logprobs.size} logprobs are all equal (spread "
                f"{spread:.3g} < {DEGENERATE_SPREAD:g}), which no working model returns; "
                "check the lm_head and logits pipeline",
                "TokenDist",
            )


def validate_rolling(rolling: RollingLogprob, *, label: str) -> None:
    """Raise :class:`ProbeMathError` unless ``rolling`` keeps the RollingLogprob contract.

    ``num_tokens`` is N >= 1, ``token_ids`` has N entries and ``logprobs``
    N-1, every logprob is finite and at most 0, and ``total_logprob`` is
    finite and equals their sum (within float32 summation error).
    """
    what = "RollingLogprob"

    def fail(problem: str) -> ProbeMathError:
        return ProbeMathError(label, problem, what)

    n = rolling.num_tokens
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise fail(f"num_tokens={n!r} must be an integer >= 1")
    ids = _as_vector(label, what, "token_ids", rolling.token_ids, integer=True)
    raw = _as_vector(label, what, "logprobs", rolling.logprobs, integer=False)
    if ids.size != n or raw.size != n - 1:
        raise fail(
            f"has num_tokens={n}, {ids.size} token_ids and {raw.size} logprobs; "
            f"expected {n} token_ids and {n - 1} logprobs",
        )
    logprobs = raw.astype(np.float64)
    require_finite_values(label, what, "logprobs", logprobs)
    _require_at_most_zero(label, what, "logprobs", logprobs)
    total = rolling.total_logprob
    if isinstance(total, bool) or not isinstance(total, int | float | np.floating):
        raise fail(f"total_logprob={total!r} must be a float")
    if not math.isfinite(total):
        raise fail(f"total_logprob={total!r} is not finite")
    summed = math.fsum(logprobs.tolist())
    if abs(float(total) - summed) > 1e-3 + 1e-4 * abs(summed):
        raise fail(f"total_logprob={total!r} does not equal the sum of its logprobs ({summed!r})")


def validate_logprob(value: object, *, label: str) -> float:
    """Return ``value`` as a float if it is a finite logprob (at most 0), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ProbeMathError(label, f"logprob {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ProbeMathError(label, f"logprob {value!r} is not finite")
    if number > LOGPROB_TOLERANCE:
        raise ProbeMathError(
            label, f"logprob {value!r} is positive: a probability above 1 is impossible"
        )
    return number
