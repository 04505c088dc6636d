"""The reference probes' verdict logic, measured against independently computed values.

Expected numbers come from the views themselves (entered directly, not through
the runner) and a few lines of numpy here, never from swaysim's probe maths.
"""

from __future__ import annotations

import math
import statistics
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

from swaysim import (
    BASE,
    AdapterAblation,
    Ask,
    AsyncDummyDifferentialBackend,
    DeltaKL,
    DummyResponses,
    FaultPlan,
    FaultRule,
    FunctionProbe,
    InvalidArgumentError,
    NullAdapter,
    NullCalibratedBackend,
    PerplexityShift,
    PreferenceFlip,
    Probe,
    ProbeContext,
    ProbeResult,
    RollingLogprob,
    ScalableDifferentialBackend,
    SuiteResult,
    TokenDist,
    Verdict,
    ViewRef,
    null_view,
    run_suite,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

PROMPTS = ["q1", "q2", "q3"]
LN2 = math.log(2.0)


# -- independent maths ----------------------------------------------------------------


def probs(dist: TokenDist) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The top-k renormalised, by token id (only for dists over the same ids)."""
    order = np.argsort(dist.token_ids)
    p = np.exp(dist.logprobs[order].astype(np.float64))
    return p / p.sum()  # type: ignore[no-any-return]


def js(a: TokenDist, b: TokenDist) -> float:
    assert sorted(a.token_ids.tolist()) == sorted(b.token_ids.tolist())
    p, q = probs(a), probs(b)
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))


def kl(a: TokenDist, b: TokenDist) -> float:
    p, q = probs(a), probs(b)
    return float(np.sum(p * np.log(p / q)))


async def dist_of(enter: Any, prompt: str) -> TokenDist:
    async with enter as view:
        result: TokenDist = await view.next_token_dist(prompt)
        return result


async def run(backend: Any, probes: list[Probe], **kwargs: Any) -> SuiteResult:
    return await run_suite(backend, probes, **kwargs)


# -- a minimal custom backend ------------------------------------------------------------


def token_dist(logprobs: list[float], ids: list[int] | None = None) -> TokenDist:
    token_ids = np.array(ids if ids is not None else range(len(logprobs)), dtype=np.int64)
    return TokenDist(token_ids, np.array(logprobs, dtype=np.float32), 100, None)


def normalised(weights: list[float]) -> TokenDist:
    total = sum(weights)
    return token_dist([math.log(w / total) for w in sorted(weights, reverse=True)])


class TableView:
    """Answers from fixed tables; ``dist`` maps a prompt to a TokenDist."""

    def __init__(
        self,
        view_id: str,
        dist: Callable[[str], TokenDist],
        logprobs: dict[tuple[str, str], float] | None = None,
        rolling: dict[str, RollingLogprob] | None = None,
    ) -> None:
        self.id = view_id
        self.dist = dist
        self.logprobs = logprobs or {}
        self.rolling = rolling or {}

    async def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        await anyio.lowlevel.checkpoint()
        return self.dist(prompt)

    async def next_token_dist_batch(self, prompts: list[str], *, top_k: int = 256) -> Any:
        return [self.dist(p) for p in prompts]

    async def logprob_of(self, prompt: str, completion: str) -> float:
        await anyio.lowlevel.checkpoint()
        return self.logprobs[(prompt, completion)]

    async def rolling_logprob(self, text: str) -> RollingLogprob:
        await anyio.lowlevel.checkpoint()
        return self.rolling[text]

    async def generate(self, prompt: str, *, max_new_tokens: int, **kwargs: Any) -> str:
        raise AssertionError("no probe here generates")


class BaseFtBackend:
    """Base and ft only: neither scalable nor null-calibrated."""

    safe_for_concurrent_views = False

    def __init__(self, views: dict[str, TableView]) -> None:
        self.views = views
        self.live = 0

    @asynccontextmanager
    async def open(self, key: str) -> AsyncIterator[TableView]:
        assert self.live == 0, "the runner entered two views at once"
        self.live += 1
        try:
            yield self.views[key]
        finally:
            self.live -= 1

    def as_base(self) -> Any:
        return self.open("base")

    def as_finetuned(self) -> Any:
        return self.open("ft")


class ScalableBackend(BaseFtBackend):
    """Adds scaled views (looked up as ``scaled:<lam>``), still no null adapter."""

    def as_scaled_adapter(self, lam: float) -> Any:
        return self.open(f"scaled:{lam!r}")


def test_the_custom_backends_have_the_capabilities_they_claim() -> None:
    plain = BaseFtBackend({})
    scalable = ScalableBackend({})
    assert not isinstance(plain, ScalableDifferentialBackend)
    assert not isinstance(plain, NullCalibratedBackend)
    assert isinstance(scalable, ScalableDifferentialBackend)
    assert not isinstance(scalable, NullCalibratedBackend)


SHARP = normalised([90.0, 4.0, 3.0, 2.0, 1.0])
BROAD = normalised([30.0, 25.0, 20.0, 15.0, 10.0])
MIDDLE = normalised([60.0, 15.0, 10.0, 10.0, 5.0])


def constant(view_id: str, dist: TokenDist) -> TableView:
    return TableView(view_id, lambda _prompt: dist)


def table(dists: dict[str, TokenDist]) -> dict[str, TableView]:
    """Views answering one distribution for every prompt; keys as the backends look them up."""
    return {key: constant(key, dist) for key, dist in dists.items()}


# -- DeltaKL -------------------------------------------------------------------------------


async def test_delta_kl_reports_the_mean_js_of_the_views() -> None:
    backend = AsyncDummyDifferentialBackend()
    expected = [
        js(await dist_of(backend.as_base(), p), await dist_of(backend.as_finetuned(), p))
        for p in PROMPTS
    ]
    result = (await run(backend, [DeltaKL("dkl", PROMPTS)])).result("dkl")
    assert result.verdict is Verdict.PASS
    assert result.raw == pytest.approx(statistics.fmean(expected), rel=1e-9)
    assert result.score == pytest.approx(statistics.fmean(expected) / LN2, rel=1e-9)
    assert result.evidence["per_prompt"] == pytest.approx(expected, rel=1e-9)
    assert result.z is None
    assert "delta_kl=" in result.message


async def test_delta_kl_fails_below_its_threshold_and_can_use_kl() -> None:
    backend = AsyncDummyDifferentialBackend()
    base = await dist_of(backend.as_base(), "q1")
    ft = await dist_of(backend.as_finetuned(), "q1")
    high = await run(backend, [DeltaKL("dkl", ["q1"], threshold=js(base, ft) + 0.01)])
    assert high.result("dkl").verdict is Verdict.FAIL
    result = (await run(backend, [DeltaKL("kl", ["q1"], divergence="kl")])).result("kl")
    assert result.raw == pytest.approx(kl(ft, base), rel=1e-9)
    assert result.score == pytest.approx(1.0 - math.exp(-kl(ft, base)), rel=1e-9)
    assert result.verdict is Verdict.PASS


async def test_identical_views_have_no_divergence() -> None:
    backend = BaseFtBackend(table({"base": SHARP, "ft": SHARP}))
    result = (await run(backend, [DeltaKL("dkl", ["a", "b"])])).result("dkl")
    assert result.verdict is Verdict.FAIL
    assert result.raw == pytest.approx(0.0, abs=1e-12)


# -- null calibration and z-scores ---------------------------------------------------------


async def test_z_score_against_the_null_adapter() -> None:
    backend = AsyncDummyDifferentialBackend()
    seeds = (0, 1, 2, 3)
    base = {p: await dist_of(backend.as_base(), p) for p in PROMPTS}
    raw = statistics.fmean([js(base[p], await dist_of(backend.as_finetuned(), p)) for p in PROMPTS])
    null_values = []
    for seed in seeds:
        per_prompt = [
            js(base[p], await dist_of(backend.as_null_adapter(seed, init_scale=0.5), p))
            for p in PROMPTS
        ]
        null_values.append(statistics.fmean(per_prompt))
    mean, std = statistics.fmean(null_values), statistics.pstdev(null_values)
    z = (raw - mean) / std

    probes: list[Probe] = [
        DeltaKL("dkl", PROMPTS, null="null"),
        NullAdapter("null", "dkl", seeds=seeds, init_scale=0.5),
        DeltaKL("strict", PROMPTS, null="null_strict", z_threshold=z + 1.0),
        NullAdapter("null_strict", "strict", seeds=seeds, init_scale=0.5),
    ]
    result = await run(AsyncDummyDifferentialBackend(), probes)
    dkl = result.result("dkl")
    assert dkl.z == pytest.approx(z, rel=1e-6)
    assert dkl.raw == pytest.approx(raw, rel=1e-9)
    assert dkl.verdict is Verdict.PASS
    assert dkl.evidence["null_mean"] == pytest.approx(mean, rel=1e-6)
    assert dkl.evidence["null_std"] == pytest.approx(std, rel=1e-6)
    assert dkl.evidence["null_degenerate"] is False
    null = result.result("null")
    assert null.verdict is Verdict.PASS
    assert null.evidence["values"] == pytest.approx(null_values, rel=1e-6)
    assert null.raw == pytest.approx(mean, rel=1e-6)
    strict = result.result("strict")
    assert strict.verdict is Verdict.FAIL
    assert strict.z == pytest.approx(z, rel=1e-6)


async def test_a_null_adapter_accepts_its_target_as_a_probe_object() -> None:
    target = DeltaKL("dkl", PROMPTS, null="null")
    probes: list[Probe] = [target, NullAdapter("null", target, seeds=(4, 5), init_scale=0.5)]
    result = await run(AsyncDummyDifferentialBackend(), probes)
    assert result.result("null").evidence["target"] == "dkl"
    assert result.result("dkl").z is not None


async def test_a_degenerate_null_gives_warn_and_no_z() -> None:
    # The dummy's null view answers logprob_of and rolling_logprob as base does: std 0.
    responses = DummyResponses(logprobs={("p", "good"): -1.0, ("p", "bad"): -3.0})
    ft = DummyResponses(logprobs={("p", "good"): -0.5, ("p", "bad"): -4.0})
    probes: list[Probe] = [
        PreferenceFlip("pref", [("p", "good", "bad")], null="null_pref"),
        NullAdapter("null_pref", "pref"),
        PerplexityShift("ppl", ["a b c d"], null="null_ppl"),
        NullAdapter("null_ppl", "ppl", seeds=(1, 2, 3)),
        DeltaKL("dkl", PROMPTS, null="null_dkl"),
        NullAdapter("null_dkl", "dkl", init_scale=0.5, std_floor=1.0),
    ]
    result = await run(AsyncDummyDifferentialBackend(responses, ft), probes)
    for name in ("pref", "ppl", "dkl"):
        outcome = result.result(name)
        assert outcome.verdict is Verdict.WARN, outcome
        assert outcome.z is None
        assert outcome.raw is not None
        assert outcome.evidence["null_degenerate"] is True
        assert "no z-score" in outcome.message
        null = result.result(f"null_{name}")
        assert null.verdict is Verdict.WARN
        assert null.evidence["degenerate"] is True
        assert "degenerate null" in null.message
    assert result.result("null_pref").evidence["std"] == 0.0
    # ft prefers 'good' by 3.5 nats, base by 2: the statistic survives, only z is withheld.
    assert result.result("pref").raw == pytest.approx(1.5)


async def test_calibration_unavailable_is_an_error_naming_why() -> None:
    backend = BaseFtBackend(table({"base": SHARP, "ft": BROAD}))
    probes: list[Probe] = [DeltaKL("dkl", ["a"], null="null"), NullAdapter("null", "dkl")]
    result = await run(backend, probes)
    assert result.verdicts == {"dkl": Verdict.ERROR, "null": Verdict.SKIP}
    # The message is about the calibration, not a request that never existed.
    assert result.result("dkl").message == (
        "null calibration 'null' is unavailable "
        "(SKIP: skipped: the backend has no null adapter (no as_null_adapter))"
    )
    assert result.result("dkl").evidence == {"error": "CalibrationUnavailableError"}

    broken = FaultPlan((FaultRule("fatal", name="null-dead", views=("null",)),))
    result = await run(AsyncDummyDifferentialBackend(faults=broken), probes)
    assert result.verdicts == {"dkl": Verdict.ERROR, "null": Verdict.ERROR}
    assert result.result("null").evidence["fault_rule"] == "null-dead"
    assert result.result("dkl").message.startswith("null calibration 'null' is unavailable (ERROR")


# -- SKIP on backends that cannot --------------------------------------------------------------


async def test_probes_needing_a_missing_capability_skip() -> None:
    probes: list[Probe] = [
        DeltaKL("dkl", ["a"]),
        AdapterAblation("abl", ["a"]),
        NullAdapter("null", "dkl"),
    ]
    plain = await run(BaseFtBackend(table({"base": SHARP, "ft": BROAD})), probes)
    assert plain.verdicts == {"dkl": Verdict.PASS, "abl": Verdict.SKIP, "null": Verdict.SKIP}
    assert "not scalable" in plain.result("abl").message
    assert "no null adapter" in plain.result("null").message

    views = table(
        {"base": SHARP, "ft": BROAD, "scaled:0.0": SHARP, "scaled:0.5": MIDDLE, "scaled:1.0": BROAD}
    )
    abl = AdapterAblation("abl", ["a"], lams=(0.0, 0.5, 1.0))
    scalable = await run(ScalableBackend(views), [probes[0], abl, probes[2]])
    assert scalable.verdicts == {"dkl": Verdict.PASS, "abl": Verdict.PASS, "null": Verdict.SKIP}


# -- AdapterAblation ----------------------------------------------------------------------------


async def test_adapter_ablation_on_the_dummy_is_monotone_with_overshoot() -> None:
    backend = AsyncDummyDifferentialBackend()
    lams = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)
    curve = []
    for lam in lams:
        values = [
            js(
                await dist_of(backend.as_base(), p),
                await dist_of(backend.as_scaled_adapter(lam), p),
            )
            for p in PROMPTS[:2]
        ]
        curve.append(statistics.fmean(values))
    result = (await run(backend, [AdapterAblation("abl", PROMPTS[:2])])).result("abl")
    assert result.verdict is Verdict.PASS
    assert result.evidence["curve"] == pytest.approx(curve, rel=1e-6, abs=1e-12)
    assert result.evidence["monotonic"] is True
    assert result.evidence["overshoot"] == pytest.approx(curve[5] / curve[4], rel=1e-6)
    assert result.raw == pytest.approx(curve[4], rel=1e-6)
    assert result.score == 1.0
    failing = await run(backend, [AdapterAblation("abl", ["q1"], threshold=curve[4] + 0.01)])
    assert failing.result("abl").verdict is Verdict.FAIL


async def test_the_overshoot_is_taken_at_the_largest_lam_above_one() -> None:
    backend = AsyncDummyDifferentialBackend()
    lams = (-0.5, 0.0, 0.5, 1.0, 1.5)
    curve = []
    for lam in lams:
        base = await dist_of(backend.as_base(), "q1")
        curve.append(js(base, await dist_of(backend.as_scaled_adapter(lam), "q1")))
    assert curve[0] > curve[1] == 0.0  # lam=-0.5 moves away from base too
    result = await run(backend, [AdapterAblation("abl", ["q1"], lams=lams)])
    outcome = result.result("abl")
    assert outcome.evidence["overshoot"] == pytest.approx(curve[4] / curve[3], rel=1e-6)
    assert outcome.message.endswith(f"overshoot x{curve[4] / curve[3]:.3g} at lam=1.5")
    # Monotone over [0, 1]: the fall from lam=-0.5 to 0 is outside it, for the score too.
    assert outcome.evidence["monotonic"] is True
    assert outcome.score == 1.0
    assert outcome.verdict is Verdict.PASS


async def test_a_non_monotone_response_warns() -> None:
    # Divergence from base: 0 at lam=0, large at 0.5, medium at 1.0: a drop.
    views = table(
        {"base": SHARP, "ft": BROAD, "scaled:0.0": SHARP, "scaled:0.5": BROAD, "scaled:1.0": MIDDLE}
    )
    result = await run(
        ScalableBackend(views), [AdapterAblation("abl", ["a"], lams=(0.0, 0.5, 1.0))]
    )
    outcome = result.result("abl")
    assert outcome.verdict is Verdict.WARN
    assert outcome.evidence["monotonic"] is False
    assert outcome.evidence["largest_drop"] == pytest.approx(js(SHARP, BROAD) - js(SHARP, MIDDLE))
    assert outcome.score == 0.5
    assert outcome.evidence["overshoot"] is None


# -- PreferenceFlip -----------------------------------------------------------------------------


async def test_preference_flip_counts_flips_and_reversals() -> None:
    base = DummyResponses(
        logprobs={
            ("p1", "a"): -3.0,
            ("p1", "b"): -1.0,
            ("p2", "c"): -1.0,
            ("p2", "d"): -2.0,
            ("p3", "e"): -2.0,
            ("p3", "f"): -2.0,
        }
    )
    ft = DummyResponses(
        logprobs={
            ("p1", "a"): -1.0,
            ("p1", "b"): -2.0,
            ("p2", "c"): -3.0,
            ("p2", "d"): -1.0,
            ("p3", "e"): -1.0,
            ("p3", "f"): -3.0,
        }
    )
    triples = [("p1", "a", "b"), ("p2", "c", "d"), ("p3", "e", "f")]
    # Margins (chosen - rejected): base -2, 1, 0; ft 1, -2, 2.
    result = await run(AsyncDummyDifferentialBackend(base, ft), [PreferenceFlip("pf", triples)])
    outcome = result.result("pf")
    assert outcome.evidence == {"flips": 2, "reversals": 1, "pairs": 3}
    assert outcome.raw == pytest.approx((3 - 3 + 2) / 3)
    assert outcome.base_value == pytest.approx(-1 / 3)
    assert outcome.ft_value == pytest.approx(1 / 3)
    assert outcome.verdict is Verdict.PASS
    strict = await run(
        AsyncDummyDifferentialBackend(base, ft), [PreferenceFlip("pf", triples, threshold=1.0)]
    )
    assert strict.result("pf").verdict is Verdict.FAIL


# -- PerplexityShift ------------------------------------------------------------------------------


async def test_perplexity_shift_is_the_per_token_logprob_gain() -> None:
    backend = AsyncDummyDifferentialBackend()
    texts = ["one two three", "four five six seven"]
    gains = []
    for text in texts:
        async with backend.as_base() as view:
            base = await view.rolling_logprob(text)
        async with backend.as_finetuned() as view:
            ft = await view.rolling_logprob(text)
        gains.append(
            ft.total_logprob / (ft.num_tokens - 1) - base.total_logprob / (base.num_tokens - 1)
        )
    result = (await run(backend, [PerplexityShift("ppl", texts)])).result("ppl")
    assert result.verdict is Verdict.PASS
    assert result.raw == pytest.approx(statistics.fmean(gains))
    assert result.evidence["per_text"] == pytest.approx(gains)
    # The seed's synthesized rolling logprobs: -2.0 per token on base, -1.5 on ft.
    assert result.base_value == pytest.approx(math.exp(2.0), rel=1e-6)
    assert result.ft_value == pytest.approx(math.exp(1.5), rel=1e-6)


async def test_a_one_token_text_has_no_perplexity_shift() -> None:
    result = await run(AsyncDummyDifferentialBackend(), [PerplexityShift("ppl", ["single"])])
    assert result.verdicts == {"ppl": Verdict.ERROR}
    assert "needs 2+" in result.result("ppl").message


# -- corrupt outputs are errors, never a PASS ---------------------------------------------


def rolling(
    logprobs: list[float], total: float | None = None, n: int | None = None
) -> RollingLogprob:
    count = n if n is not None else len(logprobs) + 1
    return RollingLogprob(
        np.arange(count, dtype=np.int64),
        np.array(logprobs, dtype=np.float32),
        count,
        sum(logprobs) if total is None else total,
    )


CORRUPT_DISTS = {
    "nan": token_dist([-0.5, math.nan, -2.0, -3.0, -4.0]),
    "posinf": token_dist([math.inf, -1.0, -2.0, -3.0, -4.0]),
    "unsorted": token_dist([-4.0, -3.0, -2.0, -1.0, -0.5]),
    "duplicate": token_dist([-0.5, -1.5, -2.5, -3.5, -4.5], ids=[0, 1, 2, 1, 4]),
    "length": TokenDist(np.arange(5), np.array([-0.5, -1.5, -2.5, -3.5], dtype=np.float32), 100),
    "mass": token_dist([-0.1, -0.2, -0.3, -0.4, -0.5]),
    "degenerate": token_dist([-1.6094] * 5),
    "bad_tail": TokenDist(SHARP.token_ids, SHARP.logprobs, 100, math.nan),
    "out_of_vocab": token_dist([-0.5, -1.5, -2.5, -3.5, -4.5], ids=[0, 1, 2, 3, 400]),
}


@pytest.mark.parametrize("side", ["base", "ft"])
@pytest.mark.parametrize("corruption", sorted(CORRUPT_DISTS))
async def test_a_corrupt_distribution_is_an_error(side: str, corruption: str) -> None:
    bad = CORRUPT_DISTS[corruption]
    views = table(
        {
            "base": bad if side == "base" else SHARP,
            "ft": bad if side == "ft" else BROAD,
            "scaled:0.0": SHARP,
            "scaled:1.0": BROAD,
        }
    )
    probes: list[Probe] = [DeltaKL("js", ["a"]), DeltaKL("kl", ["a"], divergence="kl")]
    if side == "base":
        probes.append(AdapterAblation("abl", ["a"], lams=(0.0, 1.0)))
    result = await run(ScalableBackend(views), probes)
    for outcome in result.results:
        assert outcome.verdict is Verdict.ERROR, outcome
        assert f"{side} TokenDist" in outcome.message


@pytest.mark.parametrize("view", ["scaled:1.0", "scaled:0.0"])
@pytest.mark.parametrize("corruption", ["nan", "duplicate", "length", "degenerate", "bad_tail"])
async def test_a_corrupt_scaled_view_is_an_error(view: str, corruption: str) -> None:
    views = table({"base": SHARP, "ft": BROAD, "scaled:0.0": SHARP, "scaled:1.0": BROAD})
    views[view] = constant(view, CORRUPT_DISTS[corruption])
    result = await run(ScalableBackend(views), [AdapterAblation("abl", ["a"], lams=(0.0, 1.0))])
    assert result.verdicts == {"abl": Verdict.ERROR}


@pytest.mark.parametrize(
    ("good", "bad"),
    [(math.nan, -1.0), (-1.0, math.inf), (0.5, -1.0), (-math.inf, -1.0)],
)
async def test_a_corrupt_logprob_is_an_error(good: float, bad: float) -> None:
    base = TableView("base", lambda _p: SHARP, logprobs={("p", "x"): -1.0, ("p", "y"): -2.0})
    ft = TableView("ft", lambda _p: BROAD, logprobs={("p", "x"): good, ("p", "y"): bad})
    result = await run(
        BaseFtBackend({"base": base, "ft": ft}), [PreferenceFlip("pf", [("p", "x", "y")])]
    )
    assert result.verdicts == {"pf": Verdict.ERROR}
    assert "ft logprob_of('p'" in result.result("pf").message


@pytest.mark.parametrize(
    "bad",
    [
        rolling([-1.0, math.nan]),
        rolling([-1.0, -1.0], total=-5.0),
        rolling([-1.0, -1.0], n=5),
        rolling([-1.0, 0.5]),
        rolling([-1.0, -1.0], total=math.inf),
    ],
)
async def test_a_corrupt_rolling_logprob_is_an_error(bad: RollingLogprob) -> None:
    text = "a b c"
    base = TableView("base", lambda _p: SHARP, rolling={text: rolling([-2.0, -2.0])})
    ft = TableView("ft", lambda _p: BROAD, rolling={text: bad})
    result = await run(BaseFtBackend({"base": base, "ft": ft}), [PerplexityShift("ppl", [text])])
    assert result.verdicts == {"ppl": Verdict.ERROR}
    assert result.result("ppl").message.startswith("ft rolling_logprob('a b c') RollingLogprob: ")


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match", "field"),
    [
        (lambda: DeltaKL("d", "q1"), "prompts='q1' must be a list of strings", "prompts"),
        (lambda: DeltaKL("d", []), r"prompts=\[\] must not be empty", "prompts"),
        (lambda: DeltaKL("d", ["q", 3]), r"prompts\[1\]=3 must be a string", "prompts[1]"),  # type: ignore[list-item]
        (
            lambda: DeltaKL("d", ["q"], divergence="tv"),  # type: ignore[arg-type]
            "divergence='tv' must be 'js' or 'kl'",
            "divergence",
        ),
        (lambda: DeltaKL("d", ["q"], top_k=0), "top_k=0 must be >= 1", "top_k"),
        (
            lambda: DeltaKL("d", ["q"], threshold=math.nan),
            "threshold=nan must be finite",
            "threshold",
        ),
        (
            lambda: DeltaKL("d", ["q"], null=""),
            "null='' must be the name of a null_adapter",
            "null",
        ),
        (lambda: DeltaKL("", ["q"]), "probe name='' must be a non-empty string", "name"),
        (lambda: DeltaKL("__x", ["q"]), "not starting with '__'", "name"),
        (lambda: AdapterAblation("a", ["q"], lams=(0.0, 0.5)), "must include 1.0", "lams"),
        (
            lambda: AdapterAblation("a", ["q"], tolerance=-1.0),
            "tolerance=-1.0 must be >= 0",
            "tolerance",
        ),
        (lambda: NullAdapter("n", "d", seeds=(1,)), "at least 2 distinct seeds", "seeds"),
        (lambda: NullAdapter("n", "d", seeds=(1, 1)), "at least 2 distinct seeds", "seeds"),
        (
            lambda: NullAdapter("n", "d", seeds=(0, -1)),
            r"seeds\[1\]=-1 must be >= 0",
            "seeds[1]",
        ),
        (
            lambda: NullAdapter("n", "d", rank_scale=0.0),
            "rank_scale=0.0 must be positive",
            "rank_scale",
        ),
        (
            lambda: NullAdapter("n", "d", std_floor=0.0),
            "std_floor=0.0 must be positive",
            "std_floor",
        ),
        (lambda: DeltaKL("d", ["q"], null=3), "null=3 must be the name", "null"),  # type: ignore[arg-type]
        (
            lambda: ViewRef("scaled"),
            r"ViewRef.lam=None must be a number for kind='scaled'",
            "lam",
        ),
        (
            lambda: ViewRef("null"),
            r"ViewRef.seed=None must be an integer >= 0 for kind='null'",
            "seed",
        ),
        (lambda: ViewRef("null", seed=-2), r"seed=-2 must be >= 0", "seed"),
        (
            lambda: Ask("forward", prompt="q"),  # type: ignore[arg-type]
            "Ask.op: unknown op 'forward'; expected one of",
            "op",
        ),
        (lambda: FunctionProbe("f", 3), "func=3 must be callable", "func"),  # type: ignore[arg-type]
        (
            lambda: FunctionProbe("f", lambda backend, ctx: None, requires="null"),  # type: ignore[arg-type]
            "requires='null' must be a sequence of names, not one string",
            "requires",
        ),
        (lambda: NullAdapter("n", 3), "target=3 must be a numeric probe", "target"),  # type: ignore[arg-type]
        (lambda: PreferenceFlip("p", []), r"triples=\[\] must not be empty", "triples"),
        (
            lambda: PreferenceFlip("p", [("a", "b")]),  # type: ignore[list-item]
            r"triples\[0\]=\('a', 'b'\) must be",
            "triples[0]",
        ),
        (
            lambda: PerplexityShift("p", "text"),
            "texts='text' must be a list of strings",
            "texts",
        ),
    ],
)
def test_invalid_probe_arguments_name_the_argument(
    build: Callable[[], object], match: str, field: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match) as raised:
        build()
    assert raised.value.field == field


def test_every_probe_binds_so_a_runner_need_not_ask_which_do() -> None:
    async def measure(backend: object, ctx: ProbeContext) -> ProbeResult:
        raise NotImplementedError

    target = DeltaKL("dkl", ["q"])
    null = NullAdapter("null", "dkl")
    suite: dict[str, Probe | FunctionProbe] = {
        probe.name: probe for probe in (target, null, FunctionProbe("f", measure))
    }
    for probe in suite.values():
        probe.bind(suite)
    assert null.target is target
    with pytest.raises(InvalidArgumentError, match="target='gone' must name a numeric") as raised:
        NullAdapter("other", "gone").bind(suite)
    assert raised.value.field == "target"


def test_a_null_adapter_asks_base_each_question_once_in_order() -> None:
    target = DeltaKL("dkl", ["q2", "q1", "q2"], top_k=8)
    null = NullAdapter("null", target, seeds=(3, 1, 2))
    plan = null.requests(ProbeContext(AsyncDummyDifferentialBackend(), seed=0))
    asks = [Ask.next_token_dist(p, top_k=8) for p in ("q2", "q1")]
    assert plan == {
        BASE: asks,
        null_view(3): asks,
        null_view(1): asks,
        null_view(2): asks,
    }
    assert list(plan) == [BASE, null_view(3), null_view(1), null_view(2)]
