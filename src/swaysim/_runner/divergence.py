"""The probe maths: validation, divergences, null statistics, response curves.

Pure, synchronous numpy (float64) functions that probes call on what views
returned. A backend under fault injection hands probes NaN/Inf logprobs,
unsorted or duplicate token ids, mismatched lengths and probability mass above
1; every entry point here turns such an input into a :class:`ProbeMathError`
that names the side (``base``, ``ft`` or a view id), what is wrong and the
offending value, so a probe reports ERROR instead of a number computed from
garbage.

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
  the structural, finiteness and degeneracy checks apply; :func:`aligned_probs`
  renormalises anyway.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from swaysim.errors import InvalidArgumentError, ProbeMathError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

    from swaysim._types import RollingLogprob, TokenDist

__all__ = [
    "DEFAULT_STD_FLOOR",
    "DivergenceKind",
    "ProbeMathError",
    "ResponseCurve",
    "ZScore",
    "aligned_probs",
    "divergence",
    "js_divergence",
    "kl_divergence",
    "mean_logprob_shift",
    "mean_std",
    "preference_margin",
    "response_curve",
    "validate_logprob",
    "validate_rolling",
    "validate_token_dist",
    "z_score",
]

DivergenceKind = Literal["js", "kl"]

LN2: Final = math.log(2.0)
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
PROB_SUM_TOLERANCE: Final = 1e-6
"""How far from 1 a probability vector handed to KL/JS may sum."""
ROUNDOFF: Final = 1e-9
"""Largest excursion of a divergence out of its bounds that is fp round-off."""
DEFAULT_STD_FLOOR: Final = 1e-6
"""Below this null std a z-score is absurd, so it is flagged degenerate (dlm-sway's MIN_STD)."""
OVERSHOOT_DENOMINATOR_FLOOR: Final = 1e-12
"""Below this, the divergence at lam=1.0 is zero and an overshoot ratio is undefined."""
_REAL: Final = (int, float, np.integer, np.floating)


# ---------------------------------------------------------------- validation


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


def _require_finite_values(
    label: str, subject: str, what: str, values: NDArray[np.float64]
) -> None:
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


def _tail_mass(label: str, subject: str, tail: float | None) -> float:
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


Normalization = bool | Literal["top_k"]
"""How much of the TokenDist contract a view keeps: True, "top_k" or False (see above)."""


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
    what = "TokenDist"

    def fail(problem: str) -> ProbeMathError:
        return ProbeMathError(label, problem, what)

    vocab_size = dist.vocab_size
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer):
        raise fail(f"vocab_size={vocab_size!r} must be an integer")
    if vocab_size < 1:
        raise fail(f"vocab_size={vocab_size!r} must be positive")
    ids = _as_vector(label, what, "token_ids", dist.token_ids, integer=True)
    raw = _as_vector(label, what, "logprobs", dist.logprobs, integer=False)
    if ids.size != raw.size:
        raise fail(
            f"has {ids.size} token_ids but {raw.size} logprobs; they must match one to one",
        )
    if ids.size == 0:
        raise fail("empty: a top-k needs at least one token")
    if ids.size > vocab_size:
        raise fail(f"lists {ids.size} tokens, more than its vocab_size={vocab_size}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise fail(f"token id {bad} is outside the vocabulary [0, {vocab_size})")
    order = np.argsort(ids, kind="stable")
    repeats = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeats.size:
        first, second = sorted((int(order[repeats[0]]), int(order[repeats[0] + 1])))
        raise fail(
            f"token id {int(ids[first])} appears twice (positions {first} and {second}); "
            "token_ids must be unique",
        )
    logprobs = raw.astype(np.float64)
    _require_finite_values(label, what, "logprobs", logprobs)
    tail_mass = _tail_mass(label, what, dist.tail_logprob)
    if normalized is not False:
        _require_at_most_zero(label, what, "logprobs", logprobs)
    if normalized == "top_k":
        top_mass = math.fsum(np.exp(logprobs).tolist())
        if top_mass > 1.0 + MASS_TOLERANCE:
            raise fail(
                f"holds probability mass {top_mass:.6g} in its top-{logprobs.size} > 1 "
                f"(tolerance {MASS_TOLERANCE:g})",
            )
    elif normalized:
        if logprobs.size > 1:
            rises = logprobs[1:] - np.maximum.accumulate(logprobs)[:-1]
            worst = int(np.argmax(rises))
            if rises[worst] > SORT_TOLERANCE:
                raise fail(
                    f"not sorted by descending logprob: position {worst + 1} holds "
                    f"{float(logprobs[worst + 1])!r}, {float(rises[worst]):.6g} nats above an "
                    f"earlier logprob (tolerance {SORT_TOLERANCE:g})",
                )
        top_mass = math.fsum(np.exp(logprobs).tolist())
        if top_mass + tail_mass > 1.0 + MASS_TOLERANCE:
            raise fail(
                f"holds probability mass {top_mass:.6g} in its top-{logprobs.size} plus "
                f"{tail_mass:.6g} in its tail = {top_mass + tail_mass:.6g} > 1 "
                f"(tolerance {MASS_TOLERANCE:g})",
            )
    if logprobs.size > 1:
        spread = float(logprobs.max() - logprobs.min())
        if spread < DEGENERATE_SPREAD:
            raise fail(
                f"degenerate: its top-{logprobs.size} logprobs are all equal (spread "
                f"{spread:.3g} < {DEGENERATE_SPREAD:g}), which no working model returns; "
                "check the lm_head and logits pipeline",
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
    _require_finite_values(label, what, "logprobs", logprobs)
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


# ---------------------------------------------------------------- divergences


def _on_support(dist: TokenDist, support: NDArray[np.int64], label: str) -> NDArray[np.float64]:
    probs = np.zeros(support.size, dtype=np.float64)
    slots = np.searchsorted(support, dist.token_ids)
    with np.errstate(over="ignore"):  # an overflowing score is caught by the sum check below
        probs[slots] = np.exp(np.asarray(dist.logprobs, dtype=np.float64))
    missing = support.size - slots.size
    tail_mass = _tail_mass(label, "TokenDist", dist.tail_logprob)
    if missing and tail_mass > 0.0:
        covered = np.zeros(support.size, dtype=bool)
        covered[slots] = True
        probs[~covered] = tail_mass / missing
    total = math.fsum(probs.tolist())
    if not (math.isfinite(total) and total > 0.0):
        raise ProbeMathError(
            label,
            f"probabilities sum to {total!r} over the union of both supports; cannot renormalise",
            "TokenDist",
        )
    return probs / total


def aligned_probs(
    base: TokenDist,
    ft: TokenDist,
    *,
    labels: tuple[str, str] = ("base", "ft"),
    normalized: tuple[Normalization, Normalization] = (True, True),
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both distributions as probability vectors over the union of their top-k ids.

    The union is sorted by token id. A slot a distribution does not list gets
    an even share of its tail mass (a ``None`` or ``0.0`` tail has no mass to
    share, so such slots stay 0); each vector is then renormalised to sum to
    1, i.e. both are compared conditioned on the union. Both inputs are
    validated first (see :func:`validate_token_dist`; ``labels`` and
    ``normalized`` apply to ``base`` and ``ft`` in that order).
    """
    validate_token_dist(base, label=labels[0], normalized=normalized[0])
    validate_token_dist(ft, label=labels[1], normalized=normalized[1])
    support = np.union1d(
        np.asarray(base.token_ids, dtype=np.int64), np.asarray(ft.token_ids, dtype=np.int64)
    )
    return _on_support(base, support, labels[0]), _on_support(ft, support, labels[1])


def _prob_vector(label: str, values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ProbeMathError(
            label, f"a probability vector must be one-dimensional and non-empty, got {array.shape}"
        )
    _require_finite_values(label, "", "probability vector", array)
    if array.min() < 0.0:
        worst = int(np.argmin(array))
        raise ProbeMathError(
            label, f"probability {float(array[worst])!r} at position {worst} is negative"
        )
    total = math.fsum(array.tolist())
    if abs(total - 1.0) > PROB_SUM_TOLERANCE:
        raise ProbeMathError(
            label, f"probabilities sum to {total!r}, not 1 (tolerance {PROB_SUM_TOLERANCE:g})"
        )
    return array / total


def _kl(p: NDArray[np.float64], q: NDArray[np.float64], p_label: str, q_label: str) -> float:
    mask = p > 0.0
    impossible = mask & (q <= 0.0)
    if impossible.any():
        first = int(np.argmax(impossible))
        raise ProbeMathError(
            f"KL({p_label} || {q_label})",
            f"the divergence is infinite: {p_label} puts mass {float(p[first])!r} at position "
            f"{first} where {q_label} has none ({int(impossible.sum())} such position(s)); "
            "use JS, or give the distribution a tail",
        )
    return math.fsum(_weighted_log_ratios(p, np.log(q, out=np.zeros_like(q), where=mask)))


def kl_divergence(p: ArrayLike, q: ArrayLike, *, labels: tuple[str, str] = ("p", "q")) -> float:
    """``KL(p || q)`` in nats, >= 0; terms where ``p`` is 0 contribute 0.

    Raises :class:`ProbeMathError` on malformed vectors (non-finite, negative,
    not summing to 1) and when ``p`` has mass where ``q`` has none, since the
    divergence is then infinite and no finite number is honest.
    """
    p_vec, q_vec = _prob_vector(labels[0], p), _prob_vector(labels[1], q)
    if p_vec.shape != q_vec.shape:
        raise ProbeMathError(
            f"KL({labels[0]} || {labels[1]})",
            f"vectors have {p_vec.size} and {q_vec.size} entries; they must align",
        )
    result = _kl(p_vec, q_vec, labels[0], labels[1])
    if result < -ROUNDOFF or not math.isfinite(result):
        raise ProbeMathError(
            f"KL({labels[0]} || {labels[1]})", f"computed {result!r}, but KL is never negative"
        )
    return max(result, 0.0)


def _check_js_bounds(value: float, labels: tuple[str, str]) -> float:
    """Clamp fp round-off into ``[0, ln 2]``; a larger excursion is an error."""
    if not (-ROUNDOFF <= value <= LN2 + ROUNDOFF):
        raise ProbeMathError(
            f"JS({labels[0]}, {labels[1]})",
            f"computed {value!r} nats, outside its bounds [0, ln 2 = {LN2:.6f}]",
        )
    return min(max(value, 0.0), LN2)


def js_divergence(p: ArrayLike, q: ArrayLike, *, labels: tuple[str, str] = ("p", "q")) -> float:
    """Jensen-Shannon divergence in nats: symmetric, always finite, in ``[0, ln 2]``."""
    p_vec, q_vec = _prob_vector(labels[0], p), _prob_vector(labels[1], q)
    if p_vec.shape != q_vec.shape:
        raise ProbeMathError(
            f"JS({labels[0]}, {labels[1]})",
            f"vectors have {p_vec.size} and {q_vec.size} entries; they must align",
        )
    both = p_vec + q_vec
    mixture = 0.5 * both  # exactly p where p == q, so JS(p, p) is exactly 0
    log_mixture = np.log(mixture, out=np.zeros_like(both), where=mixture > 0.0)
    # Halving the smallest subnormal underflows to 0; log(p + q) - ln 2 does not.
    lost = (mixture == 0.0) & (both > 0.0)
    log_mixture[lost] = np.log(both[lost]) - LN2
    value = 0.5 * math.fsum(
        [*_weighted_log_ratios(p_vec, log_mixture), *_weighted_log_ratios(q_vec, log_mixture)]
    )
    return _check_js_bounds(value, labels)


def _weighted_log_ratios(p: NDArray[np.float64], log_q: NDArray[np.float64]) -> list[float]:
    mask = p > 0.0
    terms: NDArray[np.float64] = p[mask] * (np.log(p[mask]) - log_q[mask])
    return terms.tolist()  # type: ignore[no-any-return]


def divergence(
    base: TokenDist,
    ft: TokenDist,
    kind: DivergenceKind = "js",
    *,
    labels: tuple[str, str] = ("base", "ft"),
    normalized: tuple[Normalization, Normalization] = (True, True),
) -> float:
    """JS(base, ft), or for ``kind="kl"`` KL(ft || base): how far ft moved from base.

    Aligns both over the union of their supports (:func:`aligned_probs`). For
    a scaled or null view in place of ``ft``, pass its id in ``labels`` and
    the contract that view keeps (see the module docstring): ``(True,
    "top_k")`` for null views and scaled views with lam in [0, 1], ``(True,
    False)`` beyond.
    """
    if kind not in ("js", "kl"):
        raise InvalidArgumentError(f"kind={kind!r} is unknown; expected 'js' or 'kl'")
    p_base, p_ft = aligned_probs(base, ft, labels=labels, normalized=normalized)
    if kind == "js":
        return js_divergence(p_base, p_ft, labels=labels)
    return kl_divergence(p_ft, p_base, labels=(labels[1], labels[0]))


# ---------------------------------------------------------------- logprob deltas


def preference_margin(chosen: float, rejected: float, *, label: str) -> float:
    """``logprob(chosen) - logprob(rejected)`` for one view; > 0 means chosen is preferred."""
    return validate_logprob(chosen, label=f"{label} chosen") - validate_logprob(
        rejected, label=f"{label} rejected"
    )


def mean_logprob_shift(
    base: RollingLogprob, ft: RollingLogprob, *, labels: tuple[str, str] = ("base", "ft")
) -> float:
    """ft's mean per-token logprob minus base's, in nats/token (> 0: ft finds the text likelier).

    Equals ``log(ppl_base / ppl_ft)``. A text of one token has no scored
    token, so its shift is undefined and raises instead of reading as 0.
    """
    for rolling, label in ((base, labels[0]), (ft, labels[1])):
        validate_rolling(rolling, label=label)
        if rolling.num_tokens < 2:
            raise ProbeMathError(
                label,
                f"num_tokens={rolling.num_tokens} scores no token; a perplexity shift needs 2+",
                "RollingLogprob",
            )
    return (ft.total_logprob / (ft.num_tokens - 1)) - (base.total_logprob / (base.num_tokens - 1))


# ---------------------------------------------------------------- null statistics


def mean_std(values: Sequence[float], *, label: str = "null") -> tuple[float, float]:
    """Mean and *population* standard deviation (ddof=0) of the null runs' statistics.

    Population std matches dlm-sway's null calibration (``statistics.pstdev``),
    so z-scores agree with dlm-sway's for the same null runs; one run gives
    std 0, which :func:`z_score` flags as degenerate instead of dividing.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ProbeMathError(label, f"needs at least one value to average, got {len(values)}")
    _require_finite_values(label, "", "statistics", array)
    mean = math.fsum(array.tolist()) / array.size
    variance = math.fsum(((array - mean) ** 2).tolist()) / array.size
    return mean, math.sqrt(variance)


@dataclass(frozen=True, slots=True)
class ZScore:
    """A z-score against a null distribution, or why there is none.

    ``value`` is None exactly when ``degenerate`` is true; ``reason`` then
    says why (the null's std is below the floor) and is empty otherwise.
    """

    value: float | None
    degenerate: bool
    reason: str = ""


def z_score(
    value: float, mean: float, std: float, *, std_floor: float = DEFAULT_STD_FLOOR
) -> ZScore:
    """``(value - mean) / std``, or a degenerate :class:`ZScore` when ``std < std_floor``.

    A null whose runs all agree (std 0, or one run) would turn any difference
    into an enormous z; flagging it keeps an absurd number out of the report.
    Non-finite inputs raise :class:`ProbeMathError`.
    """
    if isinstance(std_floor, bool) or not isinstance(std_floor, _REAL):
        raise InvalidArgumentError(f"std_floor={std_floor!r} must be a positive finite number")
    if not (math.isfinite(std_floor) and std_floor > 0.0):
        raise InvalidArgumentError(f"std_floor={std_floor!r} must be positive and finite")
    for name, number in (("value", value), ("null mean", mean), ("null std", std)):
        if not math.isfinite(number):
            raise ProbeMathError("z-score", f"{name}={number!r} is not finite")
    if std < 0.0:
        raise InvalidArgumentError(f"std={std!r} must be >= 0")
    if std < std_floor:
        return ZScore(
            None,
            True,
            f"degenerate null: std {std:.3g} is below the floor {std_floor:g}, "
            "so a z-score would be meaningless",
        )
    return ZScore((value - mean) / std, False)


# ---------------------------------------------------------------- response curve


@dataclass(frozen=True, slots=True)
class ResponseCurve:
    """Divergence from base as a function of the adapter scale ``lam``.

    ``monotonic`` judges the points with ``0 <= lam <= 1``: no step down by
    more than the tolerance; ``largest_drop`` is the biggest step down there
    (0.0 if none). ``overshoot`` is ``div(overshoot_lam) / div(1.0)``, or None
    with ``overshoot_note`` saying why.
    """

    lams: tuple[float, ...]
    divergences: tuple[float, ...]
    monotonic: bool
    largest_drop: float
    overshoot: float | None
    overshoot_note: str = ""


def response_curve(
    lams: Sequence[float],
    divergences: Sequence[float],
    *,
    tolerance: float = 1e-6,
    overshoot_lam: float = 1.25,
) -> ResponseCurve:
    """Summarise an adapter-ablation sweep: monotonicity over [0, 1] and overshoot.

    Points are sorted by ``lam``. ``tolerance`` (nats) absorbs the float32
    noise of divergences computed from float32 logprobs. Non-finite or
    negative divergences raise :class:`ProbeMathError`.
    """
    if len(lams) != len(divergences):
        raise InvalidArgumentError(
            f"lams has {len(lams)} entries but divergences {len(divergences)}; they must pair up"
        )
    if isinstance(tolerance, bool) or not (
        isinstance(tolerance, _REAL) and math.isfinite(tolerance) and tolerance >= 0
    ):
        raise InvalidArgumentError(f"tolerance={tolerance!r} must be finite and >= 0")
    points: list[tuple[float, float]] = []
    for lam, div in zip(lams, divergences, strict=True):
        if isinstance(lam, bool) or not (isinstance(lam, _REAL) and math.isfinite(lam)):
            raise InvalidArgumentError(f"lam={lam!r} must be a finite number")
        if isinstance(div, bool) or not (
            isinstance(div, _REAL) and math.isfinite(div) and div >= -ROUNDOFF
        ):
            raise ProbeMathError(f"lam={lam!r}", f"divergence {div!r} is not finite and >= 0")
        points.append((float(lam), max(float(div), 0.0)))
    points.sort()
    ordered = [lam for lam, _ in points]
    if len(set(ordered)) != len(ordered):
        raise InvalidArgumentError(f"lams={list(lams)!r} repeat a value; each lam once")
    inside = [div for lam, div in points if 0.0 <= lam <= 1.0]
    if len(inside) < 2:
        raise InvalidArgumentError(
            f"lams={list(lams)!r} hold {len(inside)} value(s) in [0, 1]; "
            "judging monotonicity needs at least 2"
        )
    largest_drop = max(0.0, *(a - b for a, b in itertools.pairwise(inside)))
    at_one = next((d for lam, d in points if math.isclose(lam, 1.0, abs_tol=1e-9)), None)
    at_over = next((d for lam, d in points if math.isclose(lam, overshoot_lam, abs_tol=1e-9)), None)
    overshoot: float | None = None
    note = ""
    if at_one is None:
        note = "no lam=1.0 in the sweep"
    elif at_over is None:
        note = f"no lam={overshoot_lam!r} in the sweep"
    elif at_one < OVERSHOOT_DENOMINATOR_FLOOR:
        note = f"divergence at lam=1.0 is {at_one!r}: the adapter has no effect to overshoot"
    else:
        overshoot = at_over / at_one
    return ResponseCurve(
        lams=tuple(ordered),
        divergences=tuple(div for _, div in points),
        monotonic=largest_drop <= tolerance,
        largest_drop=largest_drop,
        overshoot=overshoot,
        overshoot_note=note,
    )
