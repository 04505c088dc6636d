"""Results do not depend on scheduling: a Hypothesis property over suites, seeds and faults.

For a drawn suite, fault plan and seeds, ``run_suite`` gives byte-identical
results (``to_dict(include_timing=False)``: verdicts, scores, z-scores,
messages, evidence) at concurrency 1, 4 and 32, on asyncio and on trio, with
latency on and off, on an exclusive (strict) and a concurrent-safe backend. Fault
plans use every kind and every targeting form except the two documented as
timing-dependent (``window`` and ``max_fires``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import swaysim
from swaysim import (
    AdapterAblation,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    FaultPlan,
    FaultRule,
    LatencyPlan,
    LogNormal,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    Probe,
    Verdict,
    run_suite,
)
from swaysim._chaos.faults import APPLICABLE_OPS, FAULT_KINDS, FaultKind

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn

PROMPTS = ("q1", "q2", "t1", "t2")
PROBE_TIMEOUT = 1000.0
CONCURRENCY = (1, 4, 32)


@st.composite
def suites(draw: DrawFn) -> list[Probe]:
    """A few reference probes over a small prompt alphabet, sometimes z-scored."""

    def prompts() -> list[str]:
        return draw(st.lists(st.sampled_from(PROMPTS), min_size=1, max_size=3, unique=True))

    probes: list[Probe] = []
    null_target = draw(st.booleans())
    if null_target:
        probes.append(DeltaKL("dkl", prompts(), null="null_dkl"))
        seeds = draw(st.lists(st.integers(0, 5), min_size=2, max_size=3, unique=True))
        probes.append(NullAdapter("null_dkl", "dkl", seeds=seeds, init_scale=0.5))
    else:
        probes.append(DeltaKL("dkl", prompts(), divergence=draw(st.sampled_from(["js", "kl"]))))
    if draw(st.booleans()):
        lams = draw(st.lists(st.sampled_from([0.0, 0.5, 1.25]), max_size=2, unique=True))
        probes.append(AdapterAblation("abl", prompts(), lams=[*lams, 1.0]))
    if draw(st.booleans()):
        triples = [(p, "yes", "no") for p in prompts()]
        probes.append(PreferenceFlip("pref", triples))
    if draw(st.booleans()):
        probes.append(PerplexityShift("ppl", [f"{p} and more words" for p in prompts()]))
    order = draw(st.permutations(range(len(probes))))
    return [probes[i] for i in order]


@st.composite
def fault_rules(draw: DrawFn, index: int) -> FaultRule:
    kind = cast("FaultKind", draw(st.sampled_from(FAULT_KINDS)))
    view_event = not APPLICABLE_OPS[kind]
    views = draw(st.lists(st.sampled_from(["base", "ft", "scaled", "null"]), max_size=2))
    prompt = None if view_event else draw(st.sampled_from([None, "q*", "t1*", "*2*"]))
    targeting = draw(st.sampled_from(["all", "nth", "after", "every", "probability"]))
    options: dict[str, Any] = {}
    if targeting == "nth":
        options["nth"] = draw(st.integers(1, 2))
    elif targeting == "after":
        options["after"] = draw(st.integers(0, 2))
    elif targeting == "every":
        options["every"] = draw(st.integers(1, 3))
    elif targeting == "probability":
        options["probability"] = draw(st.sampled_from([0.2, 0.5, 0.8]))
    return FaultRule(kind, name=f"r{index}", views=tuple(views), prompt=prompt, **options)


@st.composite
def fault_plans(draw: DrawFn) -> FaultPlan:
    count = draw(st.integers(0, 3))
    rules = tuple(draw(fault_rules(i)) for i in range(count))
    return FaultPlan(rules, seed=draw(st.integers(0, 2**16)))


def build_backend(safe: bool, latency: LatencyPlan | None, faults: FaultPlan) -> Any:
    # The exclusive backend is strict: a runner that ever entered two views at once
    # would get ViewConflictError, an ERROR the concurrent-safe run would not have.
    return AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=safe,
        exclusivity="wait" if safe else "strict",
        latency=latency,
        faults=faults,
    )


def latency_plan(seed: int) -> LatencyPlan:
    return LatencyPlan(
        seed=seed,
        default=LogNormal(median=0.2, sigma=0.8),
        view_switch=Constant(1.5, jitter=0.5),
    )


async def variants(
    probes: list[Probe], faults: FaultPlan, latency_seed: int, run_seed: int
) -> dict[tuple[Any, ...], str]:
    latency = latency_plan(latency_seed)
    out = {}
    for safe in (False, True):
        for plan in (latency, None):
            for concurrency in CONCURRENCY:
                backend = build_backend(safe, plan, faults)
                result = await run_suite(
                    backend,
                    probes,
                    concurrency=concurrency,
                    probe_timeout=PROBE_TIMEOUT,
                    seed=run_seed,
                )
                assert backend.is_free()
                key = (safe, plan is not None, concurrency)
                out[key] = json.dumps(result.to_dict(include_timing=False), sort_keys=True)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    probes=suites(),
    faults=fault_plans(),
    latency_seed=st.integers(0, 2**16),
    run_seed=st.integers(0, 2**16),
)
def test_results_are_identical_across_concurrency_loops_latency_and_backend_kind(
    probes: list[Probe], faults: FaultPlan, latency_seed: int, run_seed: int
) -> None:
    seen: dict[str, dict[tuple[Any, ...], str]] = {}
    for loop in ("asyncio", "trio"):
        seen[loop] = swaysim.run(variants, probes, faults, latency_seed, run_seed, backend=loop)
    reference = seen["asyncio"][(False, True, 1)]
    for loop, results in seen.items():
        for key, text in results.items():
            assert text == reference, (loop, key)


async def untouched_probes_match_a_clean_run(
    probes: list[Probe], faults: FaultPlan, latency_seed: int, concurrency: int
) -> set[str]:
    """Compare every probe no fault touched with a fault-free run; return the touched."""
    options: dict[str, Any] = {"concurrency": concurrency, "probe_timeout": PROBE_TIMEOUT}
    backend = build_backend(False, latency_plan(latency_seed), faults)
    faulty = await run_suite(backend, probes, **options)
    clean = await run_suite(build_backend(False, latency_plan(latency_seed), FaultPlan()), probes)
    if faulty.aborted:
        return {p.name for p in probes}
    fired = {(f.view_id, f.op, f.prompt) for f in backend.fault_log}
    unloadable = {f.view_id for f in backend.fault_log if f.op == "enter"}
    touched = {
        name
        for name, keys in faulty.requests.items()
        if any(key in fired or key[0] in unloadable for key in keys)
    }
    while grown := {p.name for p in probes if set(p.requires) & touched} - touched:
        touched |= grown
    for result in clean.results:
        if result.name not in touched:
            got = faulty.result(result.name).to_dict(include_timing=False)
            assert got == result.to_dict(include_timing=False), result.name
    return touched


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    probes=suites(),
    faults=fault_plans(),
    latency_seed=st.integers(0, 2**16),
    concurrency=st.sampled_from(CONCURRENCY),
)
def test_a_fault_changes_only_the_probes_that_consumed_it(
    probes: list[Probe], faults: FaultPlan, latency_seed: int, concurrency: int
) -> None:
    swaysim.run(untouched_probes_match_a_clean_run, probes, faults, latency_seed, concurrency)


def test_isolation_sees_a_hang_that_only_one_probe_consumes() -> None:
    # 'spans' asks base before the hang and the scaled views after it.
    probes: list[Probe] = [
        AdapterAblation("spans", ["q1"], lams=(0.0, 1.0)),
        DeltaKL("hung", ["t1"]),
        PerplexityShift("other", ["q2 c d"]),
    ]
    hang = FaultPlan((FaultRule("hang", views=("base",), prompt="t1"),))
    touched = swaysim.run(untouched_probes_match_a_clean_run, probes, hang, 0, 1)
    assert touched == {"hung"}


def test_the_property_can_see_a_difference() -> None:
    # Guard against a vacuous comparison: different faults give different results.
    probes: list[Probe] = [DeltaKL("dkl", ["q1"]), PerplexityShift("ppl", ["q1 a b"])]
    clean = swaysim.run(variants, probes, FaultPlan(), 0, 0)
    broken = swaysim.run(variants, probes, FaultPlan((FaultRule("fatal", prompt="q1*"),)), 0, 0)
    assert len(set(clean.values())) == 1
    assert len(set(broken.values())) == 1
    assert set(clean.values()) != set(broken.values())
    verdicts = json.loads(next(iter(broken.values())))["results"]
    assert {r["verdict"] for r in verdicts} == {Verdict.ERROR.value}


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_z_scores_are_identical_across_concurrency(loop: str) -> None:
    probes: list[Probe] = [
        DeltaKL("dkl", ["q1", "q2", "t1"], null="null_dkl"),
        NullAdapter("null_dkl", "dkl", seeds=(0, 1, 2, 3), init_scale=0.5),
    ]
    results = swaysim.run(variants, probes, FaultPlan(), 1, 2, backend=loop)
    assert len(set(results.values())) == 1
    dkl = json.loads(next(iter(results.values())))["results"][0]
    assert isinstance(dkl["z"], float)
