"""Null calibration: numeric probes, and the null-adapter probe that z-scores them.

A :class:`NumericProbe` measures one statistic of a view against base. A
:class:`NullAdapter` probe re-runs a numeric probe's statistic on K seeded
null views (adapters of random weights: the noise floor) and publishes
their mean and std as a :class:`~swaysim.NullCalibration`; a numeric probe
naming it in ``null=`` then judges by z-score instead of a raw threshold.
A degenerate null (std below its floor) gives WARN with no z, never an
absurd one.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import TYPE_CHECKING

from swaysim._protocols import NullCalibratedBackend
from swaysim._runner import divergence as maths
from swaysim._runner.probes import Probe
from swaysim._runner.requests import FT, null_view
from swaysim._runner.results import NullCalibration, Verdict
from swaysim._validation import (
    MAX_MAGNITUDE,
    MAX_SCALE,
    require_finite,
    require_number,
    require_seed,
)
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from swaysim._runner.probes import ProbeContext
    from swaysim._runner.requests import Answers, Ask, ViewRef
    from swaysim._runner.results import ProbeResult

__all__ = ["NullAdapter", "NumericProbe"]


class NumericProbe(Probe):
    """A probe with one statistic of a view against base, calibratable by a null adapter.

    With ``null="<null probe name>"`` the verdict is ``z >= z_threshold``;
    without, it is ``raw > threshold``. A degenerate null (std below its
    floor) gives WARN with no z, never an absurd z. A FAIL says why: the
    statistic is not above the threshold, and, for probes that compare one
    number on both views (``sides``), what base and ft measured.
    """

    sides: str = ""
    """What ``base_value`` and ``ft_value`` are (``"mean margin"``...), for FAIL messages."""

    def __init__(
        self,
        name: str,
        *,
        threshold: float,
        null: str | None = None,
        z_threshold: float = 3.0,
    ) -> None:
        if null is not None and (not isinstance(null, str) or not null):
            raise InvalidArgumentError(
                f"null={null!r} must be the name of a null_adapter probe", field="null", value=null
            )
        super().__init__(name, requires=(null,) if null else ())
        self.threshold = require_number("threshold", threshold)
        self.z_threshold = require_number("z_threshold", z_threshold)
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
        self,
        raw: float,
        ctx: ProbeContext,
        *,
        evidence: Mapping[str, object],
        base_value: float | None = None,
        ft_value: float | None = None,
    ) -> ProbeResult:
        """Verdict from the raw statistic, z-scored when a null calibration is named."""
        sides = (base_value, ft_value)
        if self.null is None:
            verdict = Verdict.PASS if raw > self.threshold else Verdict.FAIL
            message = f"{self.kind}={raw:.6g} (threshold {self.threshold:g})"
            if verdict is Verdict.FAIL:
                message += f": not above the threshold{self._sides_text(sides)}"
            return self._measured(verdict, raw, None, evidence, message, sides)
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
            message = f"{self.kind}={raw:.6g}; no z-score: {z.reason}"
            return self._measured(Verdict.WARN, raw, None, evidence, message, sides)
        verdict = Verdict.PASS if z.value >= self.z_threshold else Verdict.FAIL
        message = f"{self.kind}={raw:.6g}, z={z.value:.3g} (threshold {self.z_threshold:g})"
        if verdict is Verdict.FAIL:
            message += (
                f": within {self.z_threshold:g} null standard deviations of the null mean "
                f"{calibration.mean:.6g}{self._sides_text(sides)}"
            )
        return self._measured(verdict, raw, z.value, evidence, message, sides)

    def _sides_text(self, sides: tuple[float | None, float | None]) -> str:
        base, ft = sides
        if not self.sides or base is None or ft is None:
            return ""
        return f"; {self.sides} on base {base:.6g}, on ft {ft:.6g}"

    def _measured(
        self,
        verdict: Verdict,
        raw: float,
        z: float | None,
        evidence: Mapping[str, object],
        message: str,
        sides: tuple[float | None, float | None],
    ) -> ProbeResult:
        """A measured result: ``sides`` are the base and ft values, when the probe has them."""
        return self.result(
            verdict,
            raw=raw,
            z=z,
            score=self.score(raw),
            evidence=evidence,
            message=message,
            base_value=sides[0],
            ft_value=sides[1],
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
                f"target={target!r} must be a numeric probe or the name of one",
                field="target",
                value=target,
            )
        self.target = target
        seed_values = tuple(require_seed(f"seeds[{i}]", s) for i, s in enumerate(seeds))
        if len(seed_values) < 2 or len(set(seed_values)) != len(seed_values):
            raise InvalidArgumentError(
                f"seeds={list(seeds)!r} must be at least 2 distinct seeds",
                field="seeds",
                value=seeds,
            )
        self.seeds = seed_values
        self.init_scale = require_finite("init_scale", init_scale, minimum=0.0, maximum=MAX_SCALE)
        self.rank_scale = require_finite("rank_scale", rank_scale, maximum=MAX_SCALE)
        if self.rank_scale <= 0:
            raise InvalidArgumentError(
                f"rank_scale={rank_scale!r} must be positive and finite",
                field="rank_scale",
                value=rank_scale,
            )
        self.std_floor = require_finite("std_floor", std_floor, maximum=MAX_MAGNITUDE)
        if self.std_floor <= 0:
            raise InvalidArgumentError(
                f"std_floor={std_floor!r} must be positive and finite",
                field="std_floor",
                value=std_floor,
            )

    def bind(self, probes: Mapping[str, object]) -> None:
        """Resolve a target given by name against the suite."""
        if isinstance(self.target, str):
            found = probes.get(self.target)
            if not isinstance(found, NumericProbe):
                raise InvalidArgumentError(
                    f"null_adapter {self.name!r}: target={self.target!r} must name a numeric "
                    "probe (delta_kl, preference_flip, perplexity_shift) in the suite",
                    field="target",
                    value=self.target,
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
