"""swaysim.dlm_sway.runner: dlm-sway's own suite runner, driven with the library's probes.

The mapping is checked field by field; the runner, run through the blocking bridge
as swaysim runs any synchronous runner, gives exactly the reference runner's numbers
where dlm-sway computes the same statistic (delta_kl, perplexity without a null), puts
null adapters first, skips what it cannot map, stops at a failed preflight and leaves
no process-wide state behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

pytest.importorskip("dlm_sway", reason="dlm-sway (a dev dependency) is not installed")

import swaysim
from swaysim._dlm_sway.probes import PERPLEXITY_KIND, sway_spec
from swaysim.dlm_sway import runner
from swaysim.scenario import check_scenario, load_scenario

if TYPE_CHECKING:
    from collections.abc import Sequence

LOOPS = ("asyncio", "trio")


def _probes() -> list[Any]:
    return [
        swaysim.DeltaKL("dkl", ["q1", "q2"], top_k=16, threshold=0.05, null="null"),
        swaysim.PreferenceFlip("flip", [("Q:", " a", " b")], z_threshold=2.0),
        swaysim.PerplexityShift("ppl", ["some held out text"], threshold=-0.5),
        swaysim.AdapterAblation("ablation", ["q1"], lams=(0.0, 0.5, 1.0, 1.25)),
        swaysim.NullAdapter("null", target="dkl", seeds=(5, 6, 7), init_scale=0.05),
    ]


def test_each_reference_probe_maps_to_its_dlm_sway_spec() -> None:
    spec = sway_spec(_probes(), seed=9)
    assert spec.defaults.seed == 9
    assert [(entry["name"], entry["kind"]) for entry in spec.suite] == [
        ("null", "null_adapter"),  # dlm-sway calibrates only the probes after it
        ("dkl", "delta_kl"),
        ("flip", "preference_flip"),
        ("ppl", PERPLEXITY_KIND),
        ("ablation", "adapter_ablation"),
    ]
    null, dkl, flip, ppl, ablation = spec.suite
    assert null["runs"] == 3
    assert null["seed_base"] == 5
    assert null["init_scale"] == 0.05
    assert null["calibrate_kinds"] == ["delta_kl"]
    assert null["cache"] is False
    assert (dkl["prompts"], dkl["top_k"], dkl["assert_mean_gte"]) == (["q1", "q2"], 16, 0.05)
    assert flip["triples"] == [{"prompt": "Q:", "chosen": " a", "rejected": " b"}]
    assert flip["assert_z_gte"] == 2.0
    assert (ppl["texts"], ppl["assert_mean_delta_gte"]) == (["some held out text"], -0.5)
    assert ablation["lambdas"] == [0.0, 0.5, 1.0, 1.25]


async def _run_both(probes: Sequence[Any], **options: Any) -> tuple[list[Any], list[Any]]:
    backend = swaysim.AsyncDummyDifferentialBackend()
    mine = await swaysim.run_sync_probe(backend, lambda sync: runner(sync, probes, **options))
    assert backend.is_free()
    reference = await swaysim.run_suite(swaysim.AsyncDummyDifferentialBackend(), probes)
    return mine, list(reference.results)


@pytest.mark.parametrize("loop", LOOPS)
def test_where_dlm_sway_measures_the_same_statistic_the_numbers_are_the_reference_runners(
    loop: str,
) -> None:
    def probes() -> list[Any]:
        return [
            swaysim.DeltaKL("dkl", ["q1", "q2", "q3"]),
            swaysim.PerplexityShift("ppl", ["a held out text", "another one here"]),
        ]

    async def main() -> None:
        mine, reference = await _run_both(probes())
        assert [(r.name, r.kind, r.verdict, r.z) for r in mine] == [
            (r.name, r.kind, r.verdict, r.z) for r in reference
        ]
        for result, expected in zip(mine, reference, strict=True):  # up to summation order
            assert result.raw == pytest.approx(expected.raw, rel=1e-12)
            assert result.score == pytest.approx(expected.score, rel=1e-12)
        assert mine[0].evidence["dlm_sway_kind"] == "delta_kl"
        assert mine[1].evidence["dlm_sway_kind"] == PERPLEXITY_KIND

    swaysim.run(main, backend=loop)


def test_a_probe_dlm_sway_has_no_counterpart_for_is_a_skip_saying_so() -> None:
    async def measure(backend: Any, ctx: Any) -> swaysim.ProbeResult:
        return swaysim.ProbeResult("mine", "function", swaysim.Verdict.PASS)

    probes: list[Any] = [swaysim.DeltaKL("dkl", ["q1"]), swaysim.FunctionProbe("mine", measure)]

    async def main() -> list[Any]:
        return await swaysim.run_sync_probe(
            swaysim.AsyncDummyDifferentialBackend(), lambda sync: runner(sync, probes)
        )

    results = swaysim.run(main)
    assert [(r.name, r.verdict) for r in results] == [
        ("dkl", swaysim.Verdict.PASS),
        ("mine", swaysim.Verdict.SKIP),
    ]
    assert results[1].message == "dlm-sway has no probe for swaysim's 'function' probes"


def test_a_failed_preflight_is_the_only_result_and_nothing_else_runs() -> None:
    faults = swaysim.FaultPlan((swaysim.FaultRule("nan", views=("ft",), prompt="preflight"),))
    backend = swaysim.AsyncDummyDifferentialBackend(faults=faults)

    async def main() -> list[Any]:
        return await swaysim.run_sync_probe(backend, lambda sync: runner(sync, _probes()))

    results = swaysim.run(main, backend="trio")
    assert [(r.name, r.verdict) for r in results] == [("__preflight__", swaysim.Verdict.ERROR)]
    assert "ft view produced 8/8 non-finite logprob(s)" in results[0].message
    assert backend.statistics().calls_per_view == {"base": 1, "ft": 1}


def test_dlm_sways_process_wide_seeding_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    random.seed(1234)
    np.random.seed(1234)

    async def main() -> list[Any]:
        return await swaysim.run_sync_probe(
            swaysim.AsyncDummyDifferentialBackend(),
            lambda sync: runner(sync, [swaysim.DeltaKL("dkl", ["q1"])], seed=77),
        )

    swaysim.run(main)
    after_the_run = (random.random(), np.random.random())
    random.seed(1234)
    np.random.seed(1234)
    assert after_the_run == (random.random(), np.random.random())
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


# -- under the scenario library ---------------------------------------------------------

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
FINDINGS = {
    # docs/dlm-sway.md's findings 1, 3 and 4: what the library reports, line for line.
    "nan_in_null_view_only": [
        "expect.verdicts.null-dkl",
        "expect.verdicts.dkl-z",
        "expect.matches_reference",
        "expect.view_switches",
        "expect.faults_fired.nan-null",
    ],
    "probe_timeout_slow_view": [
        "expect.verdicts.slow",
        "expect.matches_reference",
        "expect.makespan",
        "expect.timeouts",
    ],
    "flaky_ft_view": [
        "expect.verdict_counts.PASS",
        "expect.matches_reference",
        "expect.retries",
    ],
}


@pytest.mark.parametrize("loop", LOOPS)
def test_the_library_reports_dlm_sways_weaknesses_and_nothing_of_its_being_synchronous(
    loop: str,
) -> None:
    # Tight makespan bounds hold: the runner's own Python on its worker thread (which the
    # clock follows in real time) widens them, so a correct synchronous runner passes.
    for name in ("hang_under_timeout", "nan_adapter_preflight"):
        (check,) = check_scenario(load_scenario(LIBRARY / f"{name}.toml"), (loop,), runner=runner)
        assert check.ok, check.failure_report()
        assert check.run.outside_seconds > 0.0
    for name, keys in FINDINGS.items():
        (check,) = check_scenario(load_scenario(LIBRARY / f"{name}.toml"), (loop,), runner=runner)
        assert [o.key for o in check.failures] == keys, check.failure_report()
        assert "--runner swaysim.dlm_sway:runner" in check.failure_report()
