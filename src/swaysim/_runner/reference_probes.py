"""Reference probes: the measurements dlm-sway users run, with careful maths.

Each numeric probe can measure its statistic on any view against base, so a
:class:`NullAdapter` probe can re-run that statistic on K seeded null views
and give the probe a z-score. Broken inputs (NaN/Inf, corrupt or degenerate
distributions) become an ERROR with the reason, never a number.
"""

from __future__ import annotations

import itertools
import math
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from swaysim._protocols import NullCalibratedBackend, ScalableDifferentialBackend
from swaysim._runner import divergence as maths
from swaysim._runner.probes import (
    BASE,
    FT,
    Answers,
    Ask,
    NullCalibration,
    Probe,
    ProbeContext,
    ProbeResult,
    Verdict,
    ViewRef,
    null_view,
    scaled_view,
)
from swaysim._validation import require_finite, require_int
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "AdapterAblation",
    "DeltaKL",
    "NullAdapter",
    "NumericProbe",
    "PerplexityShift",
    "PreferenceFlip",
]


def _divergence_kind(divergence: object) -> maths.DivergenceKind:
    if divergence == "js" or divergence == "kl":
        return divergence
    raise InvalidArgumentError(f"divergence={divergence!r} must be 'js' or 'kl'")


def _strings(owner: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidArgumentError(f"{owner}={values!r} must be a list of strings, not a string")
    items = tuple(values)
    if not items:
        raise InvalidArgumentError(f"{owner}={values!r} must not be empty")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidArgumentError(f"{owner}[{index}]={item!r} must be a string")
    return items


def _contract(view: ViewRef) -> maths.Normalization:
    """How much of the TokenDist contract the seed's ``view`` keeps (see _divergence)."""
    if view.kind in ("base", "ft"):
        return True
    if view.kind == "null" or (view.lam is not None and 0.0 <= view.lam <= 1.0):
        return "top_k"
    return False


class NumericProbe(Probe):
    """A probe with one statistic of a view against base, calibratable by a null adapter.

    With ``null="<null probe name>"`` the verdict is ``z >= z_threshold``;
    without, it is ``raw > threshold``. A degenerate null (std below its
    floor) gives WARN with no z, never an absurd z.
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: float,
        null: str | None = None,
        z_threshold: float = 3.0,
    ) -> None:
        if null is not None and (not isinstance(null, str) or not null):
            raise InvalidArgumentError(f"null={null!r} must be the name of a null_adapter probe")
        super().__init__(name, requires=(null,) if null else ())
        self.threshold = require_finite("threshold", threshold)
        self.z_threshold = require_finite("z_threshold", z_threshold)
        self.null = null

    @abstractmethod
    def statistic_requests(self, view: ViewRef) -> dict[ViewRef, list[Ask]]:
        """What measuring the statistic on ``view`` (against base) needs."""

    @abstractmethod
    def statistic(self, answers: Answers, view: ViewRef) -> float:
        """The statistic of ``view`` against base."""

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, list[Ask]]:
        return self.statistic_requests(FT)

    def score(self, raw: float) -> float:
        """A 0..1 strength of the effect (1 - exp(-max(raw, 0)) unless overridden)."""
        return 1.0 - math.exp(-max(raw, 0.0))

    def judge(
        self, raw: float, ctx: ProbeContext, *, evidence: dict[str, Any], **fields: Any
    ) -> ProbeResult:
        """Verdict from the raw statistic, z-scored when a null calibration is named."""
        if self.null is None:
            verdict = Verdict.PASS if raw > self.threshold else Verdict.FAIL
            message = f"{self.kind}={raw:.6g} (threshold {self.threshold:g})"
            return self.result(
                verdict,
                raw=raw,
                score=self.score(raw),
                evidence=evidence,
                message=message,
                **fields,
            )
        calibration = ctx.calibration(self.null)
        z = maths.z_score(raw, calibration.mean, calibration.std, std_floor=calibration.std_floor)
        evidence = {
            **evidence,
            "null": self.null,
            "null_mean": calibration.mean,
            "null_std": calibration.std,
            "null_degenerate": z.degenerate,
        }
        if z.degenerate or z.value is None:
            return self.result(
                Verdict.WARN,
                raw=raw,
                score=self.score(raw),
                evidence=evidence,
                message=f"{self.kind}={raw:.6g}; no z-score: {z.reason}",
                **fields,
            )
        verdict = Verdict.PASS if z.value >= self.z_threshold else Verdict.FAIL
        return self.result(
            verdict,
            raw=raw,
            z=z.value,
            score=self.score(raw),
            evidence=evidence,
            message=f"{self.kind}={raw:.6g}, z={z.value:.3g} (threshold {self.z_threshold:g})",
            **fields,
        )


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
        self.top_k = require_int("top_k", top_k, minimum=1)

    def statistic_requests(self, view: ViewRef) -> dict[ViewRef, list[Ask]]:
        asks = [Ask.next_token_dist(p, top_k=self.top_k) for p in self.prompts]
        return {BASE: asks, view: asks}

    def per_prompt(self, answers: Answers, view: ViewRef) -> list[float]:
        """Divergence of ``view`` from base for every prompt."""
        values = []
        for prompt in self.prompts:
            ask = Ask.next_token_dist(prompt, top_k=self.top_k)
            base = answers.get(BASE, ask)
            other = answers.get(view, ask)
            values.append(
                maths.divergence(
                    base,
                    other,
                    self.divergence,
                    labels=("base", view.label),
                    normalized=(True, _contract(view)),
                )
            )
        return values

    def statistic(self, answers: Answers, view: ViewRef) -> float:
        values = self.per_prompt(answers, view)
        return math.fsum(values) / len(values)

    def score(self, raw: float) -> float:
        if self.divergence == "js":
            return min(max(raw / math.log(2.0), 0.0), 1.0)
        return super().score(raw)

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        values = self.per_prompt(answers, FT)
        raw = math.fsum(values) / len(values)
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
        lam_values = sorted({require_finite(f"lams[{i}]", v) for i, v in enumerate(lams)})
        if 1.0 not in lam_values:
            raise InvalidArgumentError(f"lams={list(lams)!r} must include 1.0")
        self.lams = tuple(lam_values)
        self.divergence = _divergence_kind(divergence)
        self.top_k = require_int("top_k", top_k, minimum=1)
        self.threshold = require_finite("threshold", threshold)
        self.tolerance = require_finite("tolerance", tolerance, minimum=0.0)

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
        curve = []
        for lam in self.lams:
            view = scaled_view(lam)
            values = []
            for prompt in self.prompts:
                ask = Ask.next_token_dist(prompt, top_k=self.top_k)
                values.append(
                    maths.divergence(
                        answers.get(BASE, ask),
                        answers.get(view, ask),
                        self.divergence,
                        labels=("base", view.label),
                        normalized=(True, _contract(view)),
                    )
                )
            curve.append(math.fsum(values) / len(values))
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
        if at_one <= self.threshold:
            verdict = Verdict.FAIL
            message = f"divergence at lam=1 is {at_one:.6g}, not above {self.threshold:g}"
        elif not shape.monotonic:
            verdict = Verdict.WARN
            message = (
                "response curve is not monotone over [0, 1] "
                f"(largest drop {shape.largest_drop:.3g})"
            )
        else:
            verdict = Verdict.PASS
            message = f"monotone response, divergence {at_one:.6g} at lam=1"
        if shape.overshoot is not None:
            message += f", overshoot x{shape.overshoot:.3g} at lam={overshoot_lam:g}"
        return self.result(
            verdict,
            raw=at_one,
            score=sum(steps) / len(steps),
            evidence=evidence,
            message=message,
        )


class NullAdapter(Probe):
    """Measures a target probe's statistic on K seeded null views: mean and std.

    Publishes a :class:`NullCalibration` that probes naming it in ``null=``
    z-score against. WARN when the null is degenerate (std below
    ``std_floor``); SKIP on a backend without null adapters.
    """

    kind = "null_adapter"

    def __init__(
        self,
        name: str,
        target: str | NumericProbe,
        *,
        seeds: Sequence[int] = (0, 1, 2, 3),
        init_scale: float = 0.02,
        rank_scale: float = 1.0,
        std_floor: float = 1e-6,
    ) -> None:
        super().__init__(name)
        if not isinstance(target, str | NumericProbe):
            raise InvalidArgumentError(
                f"target={target!r} must be a numeric probe or the name of one"
            )
        self.target = target
        seed_values = tuple(require_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds))
        if len(seed_values) < 2 or len(set(seed_values)) != len(seed_values):
            raise InvalidArgumentError(f"seeds={list(seeds)!r} must be at least 2 distinct seeds")
        self.seeds = seed_values
        self.init_scale = require_finite("init_scale", init_scale, minimum=0.0)
        self.rank_scale = require_finite("rank_scale", rank_scale)
        if self.rank_scale <= 0:
            raise InvalidArgumentError(f"rank_scale={rank_scale!r} must be positive and finite")
        self.std_floor = require_finite("std_floor", std_floor)
        if self.std_floor <= 0:
            raise InvalidArgumentError(f"std_floor={std_floor!r} must be positive and finite")

    def bind(self, probes: Mapping[str, object]) -> None:
        """Resolve a target given by name against the suite."""
        if isinstance(self.target, str):
            found = probes.get(self.target)
            if not isinstance(found, NumericProbe):
                raise InvalidArgumentError(
                    f"null_adapter {self.name!r}: target={self.target!r} must name a numeric "
                    "probe (delta_kl, preference_flip, perplexity_shift) in the suite"
                )
            self.target = found

    def _target(self) -> NumericProbe:
        if not isinstance(self.target, NumericProbe):
            raise InvalidArgumentError(
                f"null_adapter {self.name!r}: target {self.target!r} was never resolved"
            )
        return self.target

    def views(self) -> list[ViewRef]:
        """The null views, one per seed."""
        return [
            null_view(s, init_scale=self.init_scale, rank_scale=self.rank_scale) for s in self.seeds
        ]

    def skip_reason(self, backend: object) -> str | None:
        if not isinstance(backend, NullCalibratedBackend):
            return "the backend has no null adapter (no as_null_adapter)"
        return None

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, list[Ask]]:
        # Base's asks come once per null view; an ordered set keeps one of each.
        plan: dict[ViewRef, dict[Ask, None]] = {}
        target = self._target()
        for view in self.views():
            for ref, asks in target.statistic_requests(view).items():
                plan.setdefault(ref, {}).update(dict.fromkeys(asks))
        return {ref: list(asks) for ref, asks in plan.items()}

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        target = self._target()
        values = tuple(target.statistic(answers, view) for view in self.views())
        mean, std = maths.mean_std(values)
        calibration = NullCalibration(self.name, target.name, values, mean, std, self.std_floor)
        ctx.calibrations[self.name] = calibration
        evidence = {
            "target": target.name,
            "seeds": list(self.seeds),
            "values": list(values),
            "mean": mean,
            "std": std,
            "std_floor": self.std_floor,
            "degenerate": calibration.degenerate,
        }
        if calibration.degenerate:
            return self.result(
                Verdict.WARN,
                raw=mean,
                evidence=evidence,
                message=(
                    f"degenerate null for {target.name!r}: std={std:.3g} is below the floor "
                    f"{self.std_floor:g}; dependent probes report no z-score"
                ),
            )
        return self.result(
            Verdict.PASS,
            raw=mean,
            evidence=evidence,
            message=f"null {target.kind} over {len(values)} seeds: mean={mean:.6g}, std={std:.3g}",
        )


class PreferenceFlip(NumericProbe):
    """How much more ft prefers the chosen completion than base does.

    The statistic is the mean, over (prompt, chosen, rejected) triples, of
    the margin ``logprob(chosen) - logprob(rejected)`` on the view minus the
    margin on base; flips count triples base got wrong and the view gets right.
    """

    kind = "preference_flip"

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
            raise InvalidArgumentError(f"triples={triples!r} must not be empty")
        for index, triple in enumerate(items):
            if len(triple) != 3 or not all(isinstance(x, str) for x in triple):
                raise InvalidArgumentError(
                    f"triples[{index}]={triple!r} must be (prompt, chosen, rejected) strings"
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
            maths.validate_logprob(good, label=f"{view.label} logprob_of({prompt!r}, {chosen!r})")
            maths.validate_logprob(bad, label=f"{view.label} logprob_of({prompt!r}, {rejected!r})")
            out.append(good - bad)
        return out

    def statistic(self, answers: Answers, view: ViewRef) -> float:
        base = self.margins(answers, BASE)
        other = self.margins(answers, view)
        return math.fsum(o - b for o, b in zip(other, base, strict=True)) / len(base)

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        base = self.margins(answers, BASE)
        ft = self.margins(answers, FT)
        flips = sum(1 for b, f in zip(base, ft, strict=True) if b <= 0 < f)
        reversals = sum(1 for b, f in zip(base, ft, strict=True) if f <= 0 < b)
        raw = math.fsum(f - b for f, b in zip(ft, base, strict=True)) / len(base)
        evidence = {"flips": flips, "reversals": reversals, "pairs": len(base)}
        return self.judge(
            raw,
            ctx,
            evidence=evidence,
            base_value=math.fsum(base) / len(base),
            ft_value=math.fsum(ft) / len(ft),
        )


class PerplexityShift(NumericProbe):
    """Mean per-token logprob gain of the view over base on held-out texts (nats/token)."""

    kind = "perplexity_shift"

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
        return math.fsum(gains) / len(gains)

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        gains = self.gains(answers, FT)
        raw = math.fsum(gains) / len(gains)
        base = [answers.get(BASE, Ask.rolling_logprob(t)) for t in self.texts]
        ft = [answers.get(FT, Ask.rolling_logprob(t)) for t in self.texts]
        return self.judge(
            raw,
            ctx,
            evidence={"per_text": gains, "texts": len(gains)},
            base_value=math.fsum(b.perplexity for b in base) / len(base),
            ft_value=math.fsum(f.perplexity for f in ft) / len(ft),
        )
