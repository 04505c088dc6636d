"""The probe maths: divergences, logprob deltas, null statistics, response curves.

Pure, synchronous numpy (float64) functions that probes call on what views
returned. Every entry point validates its inputs first (see
:mod:`swaysim._runner.output_validation` for the checks and the three
contracts a next-token distribution may keep) and raises
:class:`ProbeMathError` rather than return a number computed from garbage or
one outside its mathematical bounds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from swaysim._runner.output_validation import (
    require_finite_values,
    tail_mass,
    validate_logprob,
    validate_rolling,
    validate_token_dist,
)
from swaysim.errors import InvalidArgumentError, ProbeMathError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

    from swaysim._runner.output_validation import Normalization
    from swaysim._types import RollingLogprob, TokenDist

__all__ = [
    "DEFAULT_STD_FLOOR",
    "DivergenceKind",
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
    "z_score",
]

DivergenceKind = Literal["js", "kl"]

LN2: Final = math.log(2.0)
PROB_SUM_TOLERANCE: Final = 1e-6
"""How far from 1 a probability vector handed to KL/JS may sum."""
ROUNDOFF: Final = 1e-9
"""Largest excursion of a divergence out of its bounds that is fp round-off."""
DEFAULT_STD_FLOOR: Final = 1e-6
"""Below this null std a z-score is absurd, so it is flagged degenerate (dlm-sway's MIN_STD)."""
OVERSHOOT_DENOMINATOR_FLOOR: Final = 1e-12
"""Below this, the divergence at lam=1.0 is zero and an overshoot ratio is undefined."""
_REAL: Final = (int, float, np.integer, np.floating)


# ---------------------------------------------------------------- divergences


def _on_support(dist: TokenDist, support: NDArray[np.int64], label: str) -> NDArray[np.float64]:
    probs = np.zeros(support.size, dtype=np.float64)
    slots = np.searchsorted(support, dist.token_ids)
    with np.errstate(over="ignore"):  # an overflowing score is caught by the sum check below
        probs[slots] = np.exp(np.asarray(dist.logprobs, dtype=np.float64))
    missing = support.size - slots.size
    tail = tail_mass(label, "TokenDist", dist.tail_logprob)
    if missing and tail > 0.0:
        covered = np.zeros(support.size, dtype=bool)
        covered[slots] = True
        probs[~covered] = tail / missing
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
    require_finite_values(label, "", "probability vector", array)
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
        raise InvalidArgumentError(
            f"kind={kind!r} is unknown; expected 'js' or 'kl'", field="kind", value=kind
        )
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
    require_finite_values(label, "", "statistics", array)
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
        raise InvalidArgumentError(
            f"std_floor={std_floor!r} must be a positive finite number",
            field="std_floor",
            value=std_floor,
        )
    if not (math.isfinite(std_floor) and std_floor > 0.0):
        raise InvalidArgumentError(
            f"std_floor={std_floor!r} must be positive and finite",
            field="std_floor",
            value=std_floor,
        )
    for name, number in (("value", value), ("null mean", mean), ("null std", std)):
        if not math.isfinite(number):
            raise ProbeMathError("z-score", f"{name}={number!r} is not finite")
    if std < 0.0:
        raise InvalidArgumentError(f"std={std!r} must be >= 0", field="std", value=std)
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
    points = _curve_points(lams, divergences, tolerance)
    inside = [div for lam, div in points if 0.0 <= lam <= 1.0]
    if len(inside) < 2:
        raise InvalidArgumentError(
            f"lams={list(lams)!r} hold {len(inside)} value(s) in [0, 1]; "
            "judging monotonicity needs at least 2",
            field="lams",
            value=lams,
        )
    largest_drop = max(0.0, *(a - b for a, b in itertools.pairwise(inside)))
    overshoot, note = _overshoot(points, overshoot_lam)
    return ResponseCurve(
        lams=tuple(lam for lam, _ in points),
        divergences=tuple(div for _, div in points),
        monotonic=largest_drop <= tolerance,
        largest_drop=largest_drop,
        overshoot=overshoot,
        overshoot_note=note,
    )


def _curve_points(
    lams: Sequence[float], divergences: Sequence[float], tolerance: float
) -> list[tuple[float, float]]:
    """The sweep as ``(lam, divergence)`` sorted by lam; raise on anything unusable."""
    if len(lams) != len(divergences):
        raise InvalidArgumentError(
            f"lams has {len(lams)} entries but divergences {len(divergences)}; they must pair up"
        )
    if isinstance(tolerance, bool) or not (
        isinstance(tolerance, _REAL) and math.isfinite(tolerance) and tolerance >= 0
    ):
        raise InvalidArgumentError(
            f"tolerance={tolerance!r} must be finite and >= 0", field="tolerance", value=tolerance
        )
    points: list[tuple[float, float]] = []
    for index, (lam, div) in enumerate(zip(lams, divergences, strict=True)):
        if isinstance(lam, bool) or not (isinstance(lam, _REAL) and math.isfinite(lam)):
            raise InvalidArgumentError(
                f"lam={lam!r} must be a finite number", field=f"lams[{index}]", value=lam
            )
        if isinstance(div, bool) or not (
            isinstance(div, _REAL) and math.isfinite(div) and div >= -ROUNDOFF
        ):
            raise ProbeMathError(f"lam={lam!r}", f"divergence {div!r} is not finite and >= 0")
        points.append((float(lam), max(float(div), 0.0)))
    points.sort()
    ordered = [lam for lam, _ in points]
    if len(set(ordered)) != len(ordered):
        raise InvalidArgumentError(
            f"lams={list(lams)!r} repeat a value; each lam once", field="lams", value=lams
        )
    return points


def _overshoot(points: list[tuple[float, float]], overshoot_lam: float) -> tuple[float | None, str]:
    """``div(overshoot_lam) / div(1.0)``, or None and why there is no such ratio."""
    at_one = next((d for lam, d in points if math.isclose(lam, 1.0, abs_tol=1e-9)), None)
    at_over = next((d for lam, d in points if math.isclose(lam, overshoot_lam, abs_tol=1e-9)), None)
    if at_one is None:
        return None, "no lam=1.0 in the sweep"
    if at_over is None:
        return None, f"no lam={overshoot_lam!r} in the sweep"
    if at_one < OVERSHOOT_DENOMINATOR_FLOOR:
        return None, f"divergence at lam=1.0 is {at_one!r}: the adapter has no effect to overshoot"
    return at_over / at_one, ""
