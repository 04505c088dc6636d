"""Reference probes: the measurements dlm-sway users run, with careful maths.

Each numeric probe (:class:`DeltaKL`, :class:`PreferenceFlip`,
:class:`PerplexityShift`) can measure its statistic on any view against
base, so a :class:`~swaysim.NullAdapter` probe can re-run that statistic on
K seeded null views and give the probe a z-score (see
:mod:`swaysim._runner.calibration`). Broken inputs (NaN/Inf, corrupt or
degenerate distributions) become an ERROR with the reason, never a number.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from swaysim._protocols import ScalableDifferentialBackend
from swaysim._runner import divergence as maths
from swaysim._runner.calibration import NumericProbe
from swaysim._runner.output_validation import validate_logprob
from swaysim._runner.probes import Probe
from swaysim._runner.requests import BASE, FT, Ask, ViewRef, scaled_view
from swaysim._runner.results import Verdict
from swaysim._validation import MAX_MAGNITUDE, require_count, require_finite, require_number
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from swaysim._runner.output_validation import Normalization
    from swaysim._runner.probes import ProbeContext
    from swaysim._runner.requests import Answers
    from swaysim._runner.results import ProbeResult

__all__ = [
    "AdapterAblation",
    "DeltaKL",
    "PerplexityShift",
    "PreferenceFlip",
]


def _divergence_kind(divergence: object) -> maths.DivergenceKind:
    if divergence == "js" or divergence == "kl":
        return divergence
    raise InvalidArgumentError(
        f"divergence={divergence!r} must be 'js' or 'kl'", field="divergence", value=divergence
    )


def _strings(owner: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidArgumentError(
            f"{owner}={values!r} must be a list of strings, not a string", field=owner, value=values
        )
    items = tuple(values)
    if not items:
        raise InvalidArgumentError(
            f"{owner}={values!r} must not be empty", field=owner, value=values
        )
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidArgumentError(
                f"{owner}[{index}]={item!r} must be a string", field=f"{owner}[{index}]", value=item
            )
    return items


def _contract(view: ViewRef) -> Normalization:
    """How much of the TokenDist contract the seed's ``view`` keeps (see output_validation)."""
    if view.kind in ("base", "ft"):
        return True
    if view.kind == "null" or (view.lam is not None and 0.0 <= view.lam <= 1.0):
        return "top_k"
    return False


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _divergences(
    answers: Answers,
    view: ViewRef,
    prompts: Sequence[str],
    *,
    top_k: int,
    kind: maths.DivergenceKind,
) -> list[float]:
    """Per prompt, the divergence of ``view``'s next-token distribution from base's."""
    values = []
    for prompt in prompts:
        ask = Ask.next_token_dist(prompt, top_k=top_k)
        base = answers.get(BASE, ask)
        other = answers.get(view, ask)
        values.append(
            maths.divergence(
                base,
                other,
                kind,
                labels=("base", view.label),
                normalized=(True, _contract(view)),
            )
        )
    return values


class DeltaKL(NumericProbe):
    """Mean JS (or KL(ft || base)) divergence between next-token distributions."""

    kind = "delta_kl"

    def __init__(
        self,
        name: str,
        prompts: Sequence[str],
        *,
        divergence: maths.DivergenceKind = "js",
        top_k: int = 256,
        threshold: float = 0.01,
        null: str | None = None,
        z_threshold: float = 3.0,
    ) -> None:
        super().__init__(name, threshold=threshold, null=null, z_threshold=z_threshold)
        self.divergence = _divergence_kind(divergence)
        self.prompts = _strings("prompts", prompts)
        self.top_k = require_count("top_k", top_k, minimum=1)

    def statistic_requests(self, view: ViewRef) -> dict[ViewRef, list[Ask]]:
        asks = [Ask.next_token_dist(p, top_k=self.top_k) for p in self.prompts]
        return {BASE: asks, view: asks}

    def per_prompt(self, answers: Answers, view: ViewRef) -> list[float]:
        """Divergence of ``view`` from base for every prompt."""
        return _divergences(answers, view, self.prompts, top_k=self.top_k, kind=self.divergence)

    def statistic(self, answers: Answers, view: ViewRef) -> float:
        values = self.per_prompt(answers, view)
        return _mean(values)

    def score(self, raw: float) -> float:
        if self.divergence == "js":
            return min(max(raw / math.log(2.0), 0.0), 1.0)
        return super().score(raw)

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        values = self.per_prompt(answers, FT)
        raw = _mean(values)
        evidence = {"divergence": self.divergence, "per_prompt": values, "prompts": len(values)}
        return self.judge(raw, ctx, evidence=evidence)


class AdapterAblation(Probe):
    """Divergence from base as the adapter is scaled: the response curve.

    PASS when the divergence at lam=1 exceeds ``threshold`` and the curve is
    monotone over lam in [0, 1]; WARN when it is not monotone; FAIL when the
    adapter has no measurable effect. Reports the overshoot at the largest
    lam above 1 relative to lam=1. ``score`` is the share of steps over
    [0, 1] that do not fall by more than ``tolerance``. SKIP on a backend
    that cannot scale.
    """

    kind = "adapter_ablation"

    def __init__(
        self,
        name: str,
        prompts: Sequence[str],
        *,
        lams: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25),
        divergence: maths.DivergenceKind = "js",
        top_k: int = 256,
        threshold: float = 0.01,
        tolerance: float = 1e-6,
    ) -> None:
        super().__init__(name)
        self.prompts = _strings("prompts", prompts)
        lam_values = sorted({require_number(f"lams[{i}]", v) for i, v in enumerate(lams)})
        if 1.0 not in lam_values:
            raise InvalidArgumentError(
                f"lams={list(lams)!r} must include 1.0", field="lams", value=lams
            )
        self.lams = tuple(lam_values)
        self.divergence = _divergence_kind(divergence)
        self.top_k = require_count("top_k", top_k, minimum=1)
        self.threshold = require_number("threshold", threshold)
        self.tolerance = require_finite("tolerance", tolerance, minimum=0.0, maximum=MAX_MAGNITUDE)

    def skip_reason(self, backend: object) -> str | None:
        if not isinstance(backend, ScalableDifferentialBackend):
            return "the backend is not scalable (no as_scaled_adapter)"
        return None

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, list[Ask]]:
        asks = [Ask.next_token_dist(p, top_k=self.top_k) for p in self.prompts]
        plan = {BASE: asks}
        for lam in self.lams:
            plan[scaled_view(lam)] = asks
        return plan

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        curve = [
            _mean(
                _divergences(
                    answers, scaled_view(lam), self.prompts, top_k=self.top_k, kind=self.divergence
                )
            )
            for lam in self.lams
        ]
        overshoot_lam = self.lams[-1] if self.lams[-1] > 1.0 else 1.25
        # Raises unless 2+ lams lie in [0, 1], so ``steps`` below is never empty.
        shape = maths.response_curve(
            self.lams, curve, tolerance=self.tolerance, overshoot_lam=overshoot_lam
        )
        at_one = curve[self.lams.index(1.0)]
        steps = [
            b >= a - self.tolerance
            for a, b in itertools.pairwise(
                d for lam, d in zip(self.lams, curve, strict=True) if 0.0 <= lam <= 1.0
            )
        ]
        evidence = {
            "lams": list(self.lams),
            "curve": curve,
            "monotonic": shape.monotonic,
            "largest_drop": shape.largest_drop,
            "overshoot": shape.overshoot,
            "divergence": self.divergence,
        }
        verdict, message = self._verdict(at_one, shape)
        if shape.overshoot is not None:
            message += f", overshoot x{shape.overshoot:.3g} at lam={overshoot_lam:g}"
        return self.result(
            verdict, raw=at_one, score=sum(steps) / len(steps), evidence=evidence, message=message
        )

    def _verdict(self, at_one: float, shape: maths.ResponseCurve) -> tuple[Verdict, str]:
        if at_one <= self.threshold:
            return (
                Verdict.FAIL,
                f"divergence at lam=1 is {at_one:.6g}, not above {self.threshold:g}",
            )
        if not shape.monotonic:
            return (
                Verdict.WARN,
                "response curve is not monotone over [0, 1] "
                f"(largest drop {shape.largest_drop:.3g})",
            )
        return Verdict.PASS, f"monotone response, divergence {at_one:.6g} at lam=1"


class PreferenceFlip(NumericProbe):
    """How much more ft prefers the chosen completion than base does.

    The statistic is the mean, over (prompt, chosen, rejected) triples, of
    the margin ``logprob(chosen) - logprob(rejected)`` on the view minus the
    margin on base; flips count triples base got wrong and the view gets right.
    """

    kind = "preference_flip"
    sides = "mean margin logprob(chosen) - logprob(rejected)"

    def __init__(
        self,
        name: str,
        triples: Sequence[tuple[str, str, str]],
        *,
        threshold: float = 0.0,
        null: str | None = None,
        z_threshold: float = 3.0,
    ) -> None:
        super().__init__(name, threshold=threshold, null=null, z_threshold=z_threshold)
        items = tuple(tuple(t) for t in triples)
        if not items:
            raise InvalidArgumentError(
                f"triples={triples!r} must not be empty", field="triples", value=triples
            )
        for index, triple in enumerate(items):
            if len(triple) != 3 or not all(isinstance(x, str) for x in triple):
                raise InvalidArgumentError(
                    f"triples[{index}]={triple!r} must be (prompt, chosen, rejected) strings",
                    field=f"triples[{index}]",
                    value=triple,
                )
        self.triples: tuple[tuple[str, str, str], ...] = items  # type: ignore[assignment]

    def _asks(self) -> list[Ask]:
        asks = []
        for prompt, chosen, rejected in self.triples:
            asks.append(Ask.logprob_of(prompt, chosen))
            asks.append(Ask.logprob_of(prompt, rejected))
        return asks

    def statistic_requests(self, view: ViewRef) -> dict[ViewRef, list[Ask]]:
        return {BASE: self._asks(), view: self._asks()}

    def margins(self, answers: Answers, view: ViewRef) -> list[float]:
        """logprob(chosen) - logprob(rejected) per triple on ``view``."""
        out = []
        for prompt, chosen, rejected in self.triples:
            good = answers.get(view, Ask.logprob_of(prompt, chosen))
            bad = answers.get(view, Ask.logprob_of(prompt, rejected))
            validate_logprob(good, label=f"{view.label} logprob_of({prompt!r}, {chosen!r})")
            validate_logprob(bad, label=f"{view.label} logprob_of({prompt!r}, {rejected!r})")
            out.append(good - bad)
        return out

    def statistic(self, answers: Answers, view: ViewRef) -> float:
        base = self.margins(answers, BASE)
        other = self.margins(answers, view)
        return _mean([o - b for o, b in zip(other, base, strict=True)])

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        base = self.margins(answers, BASE)
        ft = self.margins(answers, FT)
        flips = sum(1 for b, f in zip(base, ft, strict=True) if b <= 0 < f)
        reversals = sum(1 for b, f in zip(base, ft, strict=True) if f <= 0 < b)
        raw = _mean([f - b for f, b in zip(ft, base, strict=True)])
        evidence = {"flips": flips, "reversals": reversals, "pairs": len(base)}
        return self.judge(
            raw,
            ctx,
            evidence=evidence,
            base_value=_mean(base),
            ft_value=_mean(ft),
        )


class PerplexityShift(NumericProbe):
    """Mean per-token logprob gain of the view over base on held-out texts (nats/token)."""

    kind = "perplexity_shift"
    sides = "mean perplexity"

    def __init__(
        self,
        name: str,
        texts: Sequence[str],
        *,
        threshold: float = 0.0,
        null: str | None = None,
        z_threshold: float = 3.0,
    ) -> None:
        super().__init__(name, threshold=threshold, null=null, z_threshold=z_threshold)
        self.texts = _strings("texts", texts)

    def statistic_requests(self, view: ViewRef) -> dict[ViewRef, list[Ask]]:
        asks = [Ask.rolling_logprob(t) for t in self.texts]
        return {BASE: asks, view: asks}

    def gains(self, answers: Answers, view: ViewRef) -> list[float]:
        """Per text: the view's mean per-token logprob minus base's."""
        out = []
        for text in self.texts:
            ask = Ask.rolling_logprob(text)
            out.append(
                maths.mean_logprob_shift(
                    answers.get(BASE, ask),
                    answers.get(view, ask),
                    labels=(
                        f"base rolling_logprob({text!r})",
                        f"{view.label} rolling_logprob({text!r})",
                    ),
                )
            )
        return out

    def statistic(self, answers: Answers, view: ViewRef) -> float:
        gains = self.gains(answers, view)
        return _mean(gains)

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        gains = self.gains(answers, FT)
        raw = _mean(gains)
        base = [answers.get(BASE, Ask.rolling_logprob(t)) for t in self.texts]
        ft = [answers.get(FT, Ask.rolling_logprob(t)) for t in self.texts]
        return self.judge(
            raw,
            ctx,
            evidence={"per_text": gains, "texts": len(gains)},
            base_value=_mean([b.perplexity for b in base]),
            ft_value=_mean([f.perplexity for f in ft]),
        )
