"""The scenario library's reference probes as dlm-sway probe specs, and dlm-sway's results back.

Each reference probe maps to the dlm-sway probe that asks the same question
of the same inputs, so a scenario's fault rules hit what dlm-sway sends:

======================  ==================================================
swaysim                 dlm-sway 0.1.0
======================  ==================================================
``DeltaKL``             ``delta_kl`` (same prompts, divergence, top_k;
                        ``threshold`` is ``assert_mean_gte``)
``NullAdapter``         ``null_adapter`` (``runs`` = number of seeds, at
                        most 10, from the first seed; ``init_scale``;
                        ``rank_multipliers`` = [rank_scale]; calibrating
                        the target's kind; no disk cache; its constant
                        score of 1.0 left out)
``PreferenceFlip``      ``preference_flip`` (same triples)
``AdapterAblation``     ``adapter_ablation`` (same prompts; ``lambdas``)
``PerplexityShift``     ``swaysim_perplexity_shift``: dlm-sway's
                        ``external_perplexity`` statistic and verdict over
                        the probe's texts instead of a packaged corpus
                        (registered as a dlm-sway probe kind)
======================  ==================================================

dlm-sway runs its suite in declaration order and only calibrates probes
*after* a ``null_adapter``, so null probes come first. What dlm-sway computes
differently from swaysim's reference probes (its null calibration measures on
sentinel prompts; its ``preference_flip`` is a flip rate, its
``adapter_ablation`` a linearity fit) is docs/dlm-sway.md's business.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import TYPE_CHECKING, Any, Final, Literal

from dlm_sway.core.result import ProbeResult as SwayResult
from dlm_sway.core.result import Verdict as SwayVerdict
from dlm_sway.core.result import safe_finalize
from dlm_sway.probes._zscore import (
    no_calibration_note,
    score_from_z,
    verdict_from_z,
    z_score,
)
from dlm_sway.probes.base import SENTINEL_PROMPTS, Probe, ProbeSpec, RunContext
from dlm_sway.probes.null_adapter import get_null_stats
from dlm_sway.suite.spec import SwaySpec
from pydantic import Field

from swaysim._runner.calibration import NullAdapter
from swaysim._runner.reference_probes import (
    AdapterAblation,
    DeltaKL,
    PerplexityShift,
    PreferenceFlip,
)
from swaysim._runner.results import ProbeResult, Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from swaysim._runner.probes import FunctionProbe
    from swaysim._runner.probes import Probe as SwaysimProbe

__all__ = ["PERPLEXITY_KIND", "sway_spec", "swaysim_result", "unmapped"]

PERPLEXITY_KIND: Final = "swaysim_perplexity_shift"
_MAX_NULL_RUNS: Final = 10
"""dlm-sway's ``null_adapter`` allows at most 10 runs."""


class TextsPerplexitySpec(ProbeSpec):
    """Spec for ``kind: swaysim_perplexity_shift``: external_perplexity over given texts."""

    kind: Literal["swaysim_perplexity_shift"] = "swaysim_perplexity_shift"
    texts: list[str] = Field(default_factory=list)
    assert_mean_delta_gte: float = -0.1
    assert_z_gte: float = 3.0


class TextsPerplexityProbe(Probe):
    """dlm-sway's ``external_perplexity`` measurement, over the texts a scenario names.

    The same statistic (mean over texts of ft's minus base's per-token
    logprob, each text's views entered one after the other), the same
    handling of a non-finite text (dropped from the mean, as dlm-sway drops
    such a chunk), the same verdict rules (z against a null calibration of
    this kind when there is one, else ``assert_mean_delta_gte``). Without a
    calibration the 0..1 score is the reference probe's (``1 - exp(-delta)``):
    dlm-sway has no probe over given texts to take one from.
    """

    kind = PERPLEXITY_KIND
    spec_cls = TextsPerplexitySpec
    category = "calibration"

    @classmethod
    def calibrate_spec(cls, ctx: RunContext) -> TextsPerplexitySpec | None:
        del ctx
        return TextsPerplexitySpec(name="_calibration", texts=list(SENTINEL_PROMPTS))

    def run(self, spec: ProbeSpec, ctx: RunContext) -> SwayResult:
        assert isinstance(spec, TextsPerplexitySpec)
        deltas: list[float] = []
        for text in spec.texts:
            with ctx.backend.as_base() as base_view:
                base = base_view.rolling_logprob(text)
            with ctx.backend.as_finetuned() as ft_view:
                ft = ft_view.rolling_logprob(text)
            delta = float(ft.total_logprob) / max(ft.logprobs.size, 1) - float(
                base.total_logprob
            ) / max(base.logprobs.size, 1)
            if math.isfinite(delta):
                deltas.append(delta)
        if not deltas:
            return SwayResult(
                spec.name,
                spec.kind,
                SwayVerdict.ERROR,
                None,
                message="every text produced a non-finite delta",
            )
        mean_delta = statistics.fmean(deltas)
        z = z_score(mean_delta, get_null_stats(ctx, spec.kind))
        verdict = verdict_from_z(z, spec.assert_z_gte)
        if verdict is not None:
            score = score_from_z(z) or 0.0
            message = f"perplexity delta={mean_delta:+.3f} nats/tok, z={z:+.2f} vs null"
        else:
            passed = mean_delta >= spec.assert_mean_delta_gte
            verdict = SwayVerdict.PASS if passed else SwayVerdict.FAIL
            # The reference's 0..1 strength: dlm-sway has no such probe to take it from.
            score = 1.0 - math.exp(-max(mean_delta, 0.0))
            message = (
                f"perplexity delta={mean_delta:+.3f} nats/tok "
                f"(threshold {spec.assert_mean_delta_gte}) {no_calibration_note(spec.kind)}"
            )
        return safe_finalize(
            name=spec.name,
            kind=spec.kind,
            verdict=verdict,
            score=score,
            raw=mean_delta,
            z_score=z,
            evidence={"per_text_delta": deltas, "texts": len(spec.texts)},
            message=message,
        )


def _kind_of(probe: object) -> str | None:
    """The dlm-sway kind a reference probe maps to (None: no dlm-sway equivalent)."""
    kinds: tuple[tuple[type, str], ...] = (
        (DeltaKL, "delta_kl"),
        (PreferenceFlip, "preference_flip"),
        (PerplexityShift, PERPLEXITY_KIND),
        (AdapterAblation, "adapter_ablation"),
        (NullAdapter, "null_adapter"),
    )
    return next((kind for cls, kind in kinds if isinstance(probe, cls)), None)


def _entry(probe: object, by_name: Mapping[str, object]) -> dict[str, Any]:
    if isinstance(probe, DeltaKL):
        return {
            "prompts": list(probe.prompts),
            "divergence": probe.divergence,
            "top_k": probe.top_k,
            "assert_mean_gte": probe.threshold,
            "assert_z_gte": probe.z_threshold,
        }
    if isinstance(probe, PreferenceFlip):
        triples = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in probe.triples]
        return {"triples": triples, "assert_z_gte": probe.z_threshold}
    if isinstance(probe, PerplexityShift):
        return {
            "texts": list(probe.texts),
            "assert_mean_delta_gte": probe.threshold,
            "assert_z_gte": probe.z_threshold,
        }
    if isinstance(probe, AdapterAblation):
        return {
            "prompts": list(probe.prompts),
            "lambdas": list(probe.lams),
            "divergence": probe.divergence,
            "top_k": probe.top_k,
        }
    assert isinstance(probe, NullAdapter)
    target = probe.target if isinstance(probe.target, str) else probe.target.name
    target_kind = _kind_of(by_name.get(target))
    return {
        "runs": min(len(probe.seeds), _MAX_NULL_RUNS),
        "seed_base": probe.seeds[0],
        "init_scale": probe.init_scale,
        "rank_multipliers": [probe.rank_scale],
        "calibrate_kinds": [target_kind] if target_kind else [],
        "cache": False,
    }


def unmapped(probes: Sequence[SwaysimProbe | FunctionProbe]) -> list[SwaysimProbe | FunctionProbe]:
    """The probes no dlm-sway probe corresponds to (they become SKIP results)."""
    return [probe for probe in probes if _kind_of(probe) is None]


def sway_spec(probes: Sequence[SwaysimProbe | FunctionProbe], *, seed: int) -> SwaySpec:
    """dlm-sway's suite for ``probes``: null adapters first, then the rest in order."""
    by_name = {probe.name: probe for probe in probes}
    mapped = [probe for probe in probes if _kind_of(probe) is not None]
    ordered = sorted(mapped, key=lambda probe: _kind_of(probe) != "null_adapter")
    suite = [
        {"name": probe.name, "kind": _kind_of(probe), **_entry(probe, by_name)} for probe in ordered
    ]
    return SwaySpec.model_validate(
        {
            "version": 1,
            "models": {"base": {"base": "swaysim"}, "ft": {"base": "swaysim"}},
            "defaults": {"seed": seed},
            "suite": suite,
        }
    )


def _plain(value: object) -> object:
    """Evidence as JSON values (numpy scalars and arrays, tuples and the like)."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "tolist", lambda: repr(v))()))


def swaysim_result(result: SwayResult, kinds: Mapping[str, str]) -> ProbeResult:
    """dlm-sway's result as swaysim's, under the reference probe's kind.

    A ``null_adapter``'s score is left out (kept in the evidence): dlm-sway
    reports a constant 1.0 there, not a measurement, and swaysim's null
    probes report none.
    """
    null = result.kind == "null_adapter"
    return ProbeResult(
        name=result.name,
        kind=kinds.get(result.name, result.kind),
        verdict=Verdict(result.verdict.value.upper()),
        score=None if null else result.score,
        raw=result.raw,
        z=result.z_score,
        base_value=result.base_value,
        ft_value=result.ft_value,
        evidence={
            "dlm_sway_kind": result.kind,
            **({"dlm_sway_score": result.score} if null else {}),
            **dict(_plain(dict(result.evidence))),  # type: ignore[call-overload]
        },
        message=result.message,
        duration=result.duration_s or 0.0,
    )
