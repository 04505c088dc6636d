"""Every fault kind, injected under run_suite, leads to the right outcome.

transient: retried, and the result is what a clean run gives; fatal: ERROR
naming the rule, never retried; hang: a timeout ERROR in virtual time;
NaN/Inf and corrupt outputs: a preflight abort or an ERROR, never a PASS;
view enter/exit failures: retried or reported. Whatever one probe meets,
every probe that does not consume the faulty answer gets exactly the result
of a clean run.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from swaysim import (
    BASE,
    FT,
    AdapterAblation,
    Answers,
    Ask,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    FaultPlan,
    FaultRule,
    LatencyPlan,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    Probe,
    ProbeContext,
    ProbeResult,
    SuiteResult,
    Verdict,
    ViewRef,
    run_suite,
)
from swaysim._chaos.faults import APPLICABLE_OPS, FAULT_KINDS, VIEW_EVENT_KINDS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

PROBE_TIMEOUT = 60.0
VIEW_KINDS = ("base", "ft", "scaled", "null")


def fault_suite() -> list[Probe]:
    """Probes on 'q*' prompts that no targeted fault touches, and 't*' ones that it may."""
    return [
        DeltaKL("dkl", ["q1", "q2"]),
        PreferenceFlip("pref", [("q1", "yes", "no")]),
        PerplexityShift("ppl", ["q1 two three"]),
        AdapterAblation("abl", ["q1"], lams=(0.0, 0.5, 1.0)),
        NullAdapter("null_dkl", "dkl", seeds=(0, 1), init_scale=0.5),
        DeltaKL("t_dkl", ["t1", "t2"]),
        PreferenceFlip("t_pref", [("t1", "yes", "no")]),
        PerplexityShift("t_ppl", ["t1 two three"]),
        AdapterAblation("t_abl", ["t1"], lams=(0.0, 0.5, 1.0)),
        NullAdapter("t_null", "t_dkl", seeds=(0, 1), init_scale=0.5),
    ]


def make_backend(faults: FaultPlan | None = None, **kwargs: Any) -> AsyncDummyDifferentialBackend:
    latency = LatencyPlan(seed=3, default=Constant(0.25, jitter=0.5), view_switch=Constant(1.0))
    return AsyncDummyDifferentialBackend(latency=latency, faults=faults, **kwargs)


async def run(faults: FaultPlan | None, probes: list[Probe] | None = None, **kwargs: Any) -> Any:
    backend = make_backend(faults)
    options: dict[str, Any] = {"probe_timeout": PROBE_TIMEOUT, "concurrency": 4} | kwargs
    result = await run_suite(backend, probes or fault_suite(), **options)
    assert backend.is_free()
    return result, backend


def bare(result: SuiteResult, name: str) -> dict[str, Any]:
    return result.result(name).to_dict(include_timing=False)


def consumers(result: SuiteResult, rule: FaultRule) -> set[str]:
    """Probes that asked for an answer ``rule`` can hit (by op, view and prompt)."""
    ops = rule.ops or APPLICABLE_OPS[rule.kind]
    hit = set()
    for name, keys in result.requests.items():
        for view_id, op, prompt in keys:
            kind = view_id.split("_")[0]
            if (
                op in ops
                and (not rule.views or kind in rule.views or view_id in rule.views)
                and (rule.prompt is None or fnmatch.fnmatchcase(prompt, rule.prompt))
            ):
                hit.add(name)
    return hit


def assert_untouched(result: SuiteResult, clean: SuiteResult, affected: set[str]) -> None:
    for probe in clean.results:
        if probe.name not in affected:
            assert bare(result, probe.name) == bare(clean, probe.name), probe.name


OP_KINDS = [k for k in FAULT_KINDS if k not in VIEW_EVENT_KINDS]
CASES = [(kind, view) for kind in OP_KINDS for view in VIEW_KINDS]


@pytest.mark.parametrize(("kind", "view"), CASES)
async def test_every_op_fault_kind_on_every_view_kind(kind: str, view: str) -> None:
    clean, _ = await run(None)
    assert Verdict.ERROR not in clean.verdicts.values()
    # A transient fault fires on each key's first call only, so that a retry gets past it.
    nth = 1 if kind == "transient" else None
    rule = FaultRule(kind, name=f"{kind}-on-{view}", views=(view,), prompt="t*", nth=nth)  # type: ignore[arg-type]
    started = anyio.current_time()
    result, backend = await run(FaultPlan((rule,)))
    affected = consumers(result, rule)
    assert affected
    assert all(name.startswith("t_") for name in affected)
    assert backend.statistics().faults_fired[rule.name] >= 1
    assert_untouched(result, clean, affected)
    for name in affected:
        outcome = result.result(name)
        if kind == "transient":
            continue
        if kind == "corrupt_unsorted" and outcome.verdict is not Verdict.ERROR:
            # A permutation nobody relies on: allowed only if it changed nothing.
            assert bare(result, name) == bare(clean, name), name
            continue
        assert outcome.verdict is Verdict.ERROR, (name, outcome)
        if kind == "fatal":
            assert outcome.evidence["fault_rule"] == rule.name
            assert outcome.evidence["error"] == "InjectedFatalError"
            assert rule.name in outcome.message
        elif kind == "hang":
            assert outcome.message == f"probe timed out after {PROBE_TIMEOUT} s (probe_timeout)"
        elif kind in ("nan", "posinf", "neginf"):
            assert "finite" in outcome.message
    if kind == "transient":
        assert canonical_equal(result, clean)
        assert result.retries == len(backend.fault_log)
        assert {f.call_index for f in backend.fault_log} == {1}
    elif kind == "fatal":
        assert result.retries == 0
    elif kind == "hang":
        assert result.timeouts == len(affected)
        assert anyio.current_time() - started >= PROBE_TIMEOUT


def canonical_equal(left: SuiteResult, right: SuiteResult) -> bool:
    return left.to_dict(include_timing=False) == right.to_dict(include_timing=False)


def test_the_kind_table_covers_every_fault_kind() -> None:
    covered = {kind for kind, _ in CASES} | VIEW_EVENT_KINDS
    assert covered == set(FAULT_KINDS)


async def test_a_transient_fault_that_outlasts_the_retries_is_an_error() -> None:
    rule = FaultRule("transient", name="flaky-t2", views=("ft",), prompt="t2")
    result, backend = await run(FaultPlan((rule,)), retries=3)
    failed = result.result("t_dkl")
    assert failed.verdict is Verdict.ERROR
    assert failed.evidence["fault_rule"] == "flaky-t2"
    assert failed.evidence["error"] == "InjectedTransientError"
    assert result.retries == 3
    assert len(backend.fault_log) == 4
    assert result.verdicts["dkl"] is Verdict.PASS


async def test_transient_faults_everywhere_are_retried_to_the_clean_result() -> None:
    # Every key's first call fails, including preflight's: a backend hiccup, then fine.
    clean, _ = await run(None)
    rule = FaultRule("transient", name="first-call", nth=1)
    result, backend = await run(FaultPlan((rule,)), preflight=False)
    assert canonical_equal(result, clean)
    assert result.retries == len(backend.fault_log) > 20


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf"])
async def test_non_finite_logits_everywhere_abort_at_preflight(kind: str) -> None:
    rule = FaultRule(kind, ops=("next_token_dist",))  # type: ignore[arg-type]
    result, backend = await run(FaultPlan((rule,)))
    assert result.aborted
    assert [r.verdict for r in result.results] == [Verdict.ERROR]
    assert "non-finite" in result.results[0].message
    assert backend.statistics().entries == 1


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf"])
async def test_non_finite_outputs_without_preflight_are_errors_never_passes(kind: str) -> None:
    rule = FaultRule(kind)  # type: ignore[arg-type]
    result, _ = await run(FaultPlan((rule,)), preflight=False)
    assert Verdict.PASS not in result.verdicts.values()
    for name in ("dkl", "pref", "ppl", "abl", "null_dkl"):
        assert result.verdicts[name] is Verdict.ERROR, result.result(name)


@pytest.mark.parametrize("view", VIEW_KINDS)
async def test_a_view_that_fails_to_enter_once_is_retried(view: str) -> None:
    clean, _ = await run(None, preflight=False)
    rule = FaultRule("enter_error", name="enter-once", views=(view,), nth=1)
    result, backend = await run(FaultPlan((rule,)), preflight=False)
    assert canonical_equal(result, clean)
    assert result.retries == len(backend.fault_log) >= 1


@pytest.mark.parametrize("view", VIEW_KINDS)
async def test_a_view_that_never_enters_fails_only_its_probes(view: str) -> None:
    clean, _ = await run(None, preflight=False)
    rule = FaultRule("enter_error", name="no-entry", views=(view,))
    result, _ = await run(FaultPlan((rule,)), preflight=False, retries=2)
    needs_view = {
        name
        for name, keys in result.requests.items()
        if any(view_id.split("_")[0] == view for view_id, _, _ in keys)
    }
    assert needs_view
    for name in needs_view:
        outcome = result.result(name)
        assert outcome.verdict is Verdict.ERROR
        assert outcome.evidence["error"] == "InjectedViewEnterError"
        assert outcome.evidence["fault_rule"] == "no-entry"
    assert_untouched(result, clean, needs_view)


async def test_a_view_that_fails_to_exit_is_an_incident_not_a_failure() -> None:
    clean, _ = await run(None)
    rule = FaultRule("exit_error", name="sticky-adapter", views=("scaled",))
    result, backend = await run(FaultPlan((rule,)))
    assert canonical_equal(result, clean)
    assert len(result.incidents) == 3
    assert all("sticky-adapter" in incident for incident in result.incidents)
    assert backend.is_free()


class _Batched(Probe):
    """Asks ft for one batch and reports how many distributions came back."""

    kind = "batched"

    def __init__(self, name: str, prompts: Sequence[str]) -> None:
        super().__init__(name)
        self.ask = Ask.next_token_dist_batch(prompts, top_k=8)

    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        return {FT: [self.ask], BASE: [Ask.next_token_dist("b1", top_k=8)]}

    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        dists = answers.get(FT, self.ask)
        return self.result(Verdict.PASS, raw=float(len(dists)))


async def test_one_failing_item_fails_the_batch_and_names_the_item() -> None:
    rule = FaultRule("fatal", name="bad-item", ops=("next_token_dist_batch",), prompt="b3")
    probes: list[Probe] = [_Batched("batch", ["b1", "b2", "b3", "b4"]), DeltaKL("dkl", ["q1"])]
    result, _ = await run(FaultPlan((rule,)), probes)
    failed = result.result("batch")
    assert failed.verdict is Verdict.ERROR
    assert "batch item 2" in failed.message
    assert failed.evidence["fault_rule"] == "bad-item"
    assert result.verdicts["dkl"] is Verdict.PASS
    clean, _ = await run(None, probes)
    assert clean.result("batch").raw == 4.0


async def test_a_hang_without_any_timeout_is_cut_by_an_op_timeout() -> None:
    rule = FaultRule("hang", name="stuck", views=("base",), prompt="t1*")
    result, _ = await run(FaultPlan((rule,)), probe_timeout=None, op_timeout=5.0)
    stuck = {name for name, v in result.verdicts.items() if v is Verdict.ERROR}
    assert stuck == {"t_dkl", "t_pref", "t_ppl", "t_abl", "t_null"}
    for name in stuck:
        assert "op timed out after 5.0 s (op_timeout)" in result.result(name).message
    # Each distinct hung request on base is cut once: next_token_dist('t1'),
    # logprob_of('t1', 'yes'), logprob_of('t1', 'no'), rolling_logprob('t1 two three').
    assert result.timeouts == 4


@pytest.mark.parametrize("safe", [False, True])
async def test_the_fault_log_is_the_same_on_every_loop_and_concurrency(safe: bool) -> None:
    rules = (
        FaultRule("transient", name="flaky", probability=0.3),
        FaultRule("fatal", name="dead", prompt="t2", views=("ft",)),
        FaultRule("nan", name="nan", prompt="t1", views=("null",)),
    )
    logs = set()
    for concurrency in (1, 4, 32):
        backend = make_backend(FaultPlan(rules, seed=5), safe_for_concurrent_views=safe)
        await run_suite(backend, fault_suite(), concurrency=concurrency)
        logs.add(
            tuple(
                sorted(
                    (f.rule_name, f.op, f.view_id, f.prompt, f.call_index)
                    for f in backend.fault_log
                )
            )
        )
    assert len(logs) == 1


async def test_a_preflight_that_hangs_is_bounded_by_the_probe_timeout() -> None:
    rule = FaultRule("hang", name="stuck-ft", views=("ft",))
    started = anyio.current_time()
    result, backend = await run(FaultPlan((rule,)), probe_timeout=30.0)
    assert result.aborted
    only = result.results[0]
    assert only.verdict is Verdict.ERROR
    assert "preflight timed out after 30.0 s (probe_timeout)" in only.message
    assert result.timeouts == 1
    assert anyio.current_time() - started == pytest.approx(30.0, abs=5.0)
    assert backend.is_free()
