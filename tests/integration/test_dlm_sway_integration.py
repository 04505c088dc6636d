"""dlm-sway's own synchronous runner and probes, run through the blocking bridge.

The reference is dlm-sway's ``DummyDifferentialBackend`` with the same canned
responses; swaysim's numbers are the seed's, so every probe value must match
exactly (no float tolerance), verdicts and evidence included.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

pytest.importorskip(
    "dlm_sway",
    reason="dlm-sway (optional test dependency) is not installed; pip install -e '.[dev]'",
)

from dlm_sway.backends.dummy import DummyDifferentialBackend
from dlm_sway.backends.dummy import DummyResponses as SwayResponses
from dlm_sway.core import scoring as sway_scoring
from dlm_sway.core.model import ModelSpec
from dlm_sway.core.result import Verdict
from dlm_sway.suite.runner import run as run_sway_suite
from dlm_sway.suite.spec import SuiteDefaults, SuiteModels, SwaySpec

import swaysim
from dlm_sway_state import isolate_dlm_sway_global_state  # noqa: F401 (a fixture)

if TYPE_CHECKING:
    from dlm_sway.core.result import SuiteResult

pytestmark = pytest.mark.usefixtures("isolate_dlm_sway_global_state")
LOOPS = ("asyncio", "trio")

# Canned answers shared by both backends; everything else is synthesized by each.
TOKEN_DISTS = {
    "base": {"The sky is": ([3, 1, 2, 5], [-0.5, -2.0, -3.0, -4.0])},
    "ft": {"The sky is": ([1, 3, 2, 6], [-0.9, -1.2, -2.5, -4.5])},
}
LOGPROBS = {
    "base": {
        ("Q1", "good"): -4.0,
        ("Q1", "bad"): -2.0,
        ("Q2", "yes"): -5.0,
        ("Q2", "no"): -1.0,
        ("Capital of France is", "Paris"): -1.0,
    },
    "ft": {
        ("Q1", "good"): -1.0,
        ("Q1", "bad"): -3.0,
        ("Q2", "yes"): -2.0,
        ("Q2", "no"): -2.5,
        ("Capital of France is", "Paris"): -0.5,
    },
}

SPEC = SwaySpec(
    models=SuiteModels(
        base=ModelSpec(kind="dummy", base="dummy"), ft=ModelSpec(kind="dummy", base="dummy")
    ),
    defaults=SuiteDefaults(seed=0, top_k=8),
    suite=[
        {"name": "null", "kind": "null_adapter", "runs": 3, "cache": False},
        {"name": "kl", "kind": "delta_kl", "prompts": ["The sky is", "Hello there", "Once upon"]},
        {"name": "ablation", "kind": "adapter_ablation", "prompts": ["The sky is", "Hello there"]},
        {
            "name": "flip",
            "kind": "preference_flip",
            "triples": [
                {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
                {"prompt": "Q2", "chosen": "yes", "rejected": "no"},
                {"prompt": "Q3", "chosen": "a", "rejected": "b"},
            ],
        },
        {
            "name": "drift",
            "kind": "calibration_drift",
            "items": [["Capital of France is", "Paris"], ["Two plus two is", "four"]],
        },
        {
            "name": "collapse",
            "kind": "prompt_collapse",
            "prompts": ["The sky is", "Hello there"],
            "context_lengths": [0, 32, 64],
        },
        {"name": "perplexity", "kind": "external_perplexity", "max_chunks": 2, "chunk_chars": 256},
    ],
)


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    """The event loop the blocking portal runs."""
    name: str = request.param
    return name


def _dist(cls: Any, token_ids: list[int], logprobs: list[float]) -> Any:
    lps = np.array(logprobs, dtype=np.float32)
    tail = math.log(1.0 - float(np.exp(lps).sum()))
    return cls(np.array(token_ids, dtype=np.int64), lps, 1000, tail)


def _sway_reference(token_dists: dict[str, dict[str, Any]] | None = None) -> Any:
    responses = {
        mode: SwayResponses(
            logprobs=dict(LOGPROBS[mode]),
            token_dists={
                prompt: _dist(sway_scoring.TokenDist, *canned)
                for prompt, canned in TOKEN_DISTS[mode].items()
            }
            | (token_dists or {}).get(mode, {}),
        )
        for mode in ("base", "ft")
    }
    return DummyDifferentialBackend(base=responses["base"], ft=responses["ft"])


def _swaysim_backend(**options: Any) -> swaysim.AsyncDummyDifferentialBackend:
    base, ft = (
        swaysim.DummyResponses(
            logprobs=dict(LOGPROBS[mode]),
            token_dists={
                prompt: _dist(swaysim.TokenDist, *canned)
                for prompt, canned in TOKEN_DISTS[mode].items()
            },
        )
        for mode in ("base", "ft")
    )
    return swaysim.AsyncDummyDifferentialBackend(base, ft, **options)


def _untyped(value: object) -> Any:
    """Hide a bridged object's type from mypy when handing it to dlm-sway.

    dlm-sway's protocols name its own ``TokenDist`` and ``RollingLogprob``;
    swaysim's have the same fields but are other classes, so the match is
    structural at run time (what ``isinstance`` and the probes see), not
    nominal for a type checker.
    """
    return value


def _comparable(result: SuiteResult) -> list[tuple[object, ...]]:
    """Everything a probe reports except its wall-clock duration."""
    return [
        (
            probe.name,
            probe.kind,
            probe.verdict,
            probe.score,
            probe.raw,
            probe.z_score,
            probe.base_value,
            probe.ft_value,
            probe.ci_95,
            probe.message,
            probe.evidence,
        )
        for probe in result.probes
    ]


def _reference_results() -> tuple[list[tuple[object, ...]], dict[str, Any]]:
    result = run_sway_suite(SPEC, _sway_reference())
    verdicts = {probe.name: probe.verdict for probe in result.probes}
    # A comparison is only worth something if the probes actually measured.
    assert len(verdicts) == len(SPEC.suite)
    assert Verdict.ERROR not in verdicts.values()
    assert Verdict.SKIP not in verdicts.values()
    assert result.null_stats
    return _comparable(result), dict(result.null_stats)


def test_the_bridged_backend_satisfies_dlm_sways_protocols(loop: str) -> None:
    with swaysim.blocking_backend(_swaysim_backend(), loop=loop) as sync_backend:
        for protocol in (
            sway_scoring.DifferentialBackend,
            sway_scoring.ScalableDifferentialBackend,
            sway_scoring.NullCalibratedBackend,
            sway_scoring.PreflightCheckable,
        ):
            assert isinstance(sync_backend, protocol)
        with sync_backend.as_scaled_adapter(0.5) as view:
            assert isinstance(_untyped(view), sway_scoring.ScoringModel)
            assert view.id == "scaled_0.50"


def test_dlm_sway_suite_gives_the_same_results_through_the_bridge(loop: str) -> None:
    expected, expected_null_stats = _reference_results()
    backend = _swaysim_backend()
    with swaysim.blocking_backend(backend, loop=loop) as sync_backend:
        result = run_sway_suite(SPEC, _untyped(sync_backend))
    assert _comparable(result) == expected
    assert dict(result.null_stats) == expected_null_stats
    assert backend.is_free()


async def test_dlm_sway_suite_gives_the_same_results_from_a_worker_thread() -> None:
    expected, expected_null_stats = _reference_results()
    # A second per op: slept on the wall clock, the suite would take minutes (the
    # timeout fails it); on the loop's virtual clock it takes as long as the maths.
    latency = swaysim.LatencyPlan(default=swaysim.Constant(1.0))
    backend = _swaysim_backend(latency=latency)
    started, wall_started = anyio.current_time(), time.perf_counter()
    result = await swaysim.run_sync_probe(
        backend, lambda sync: run_sway_suite(SPEC, _untyped(sync))
    )
    elapsed, wall = anyio.current_time() - started, time.perf_counter() - wall_started
    assert _comparable(result) == expected
    assert dict(result.null_stats) == expected_null_stats
    stats = backend.statistics()
    # One device serves the ops one at a time, so loop time covers every latency draw,
    # and none of it is slept on the wall clock.
    assert stats.latency_seconds > 0
    assert elapsed >= stats.latency_seconds - 1e-9
    assert wall < stats.latency_seconds / 2
    assert backend.is_free()


def test_dlm_sways_preflight_gate_reports_a_nan_fault_on_the_ft_view(loop: str) -> None:
    # Reference: dlm-sway's dummy with a NaN distribution canned for its preflight prompt.
    nan_dist = sway_scoring.TokenDist(
        np.arange(8, dtype=np.int64), np.full(8, np.nan, dtype=np.float32), 1000, None
    )
    reference = run_sway_suite(SPEC, _sway_reference({"ft": {"preflight": nan_dist}}))
    faults = swaysim.FaultPlan((swaysim.FaultRule("nan", views=("ft",)),))
    backend = _swaysim_backend(faults=faults)
    with swaysim.blocking_backend(backend, loop=loop) as sync_backend:
        result = run_sway_suite(SPEC, _untyped(sync_backend))
    assert [(p.name, p.kind, p.verdict) for p in result.probes] == [
        ("__preflight__", "preflight", Verdict.ERROR)
    ]
    gate = result.probes[0]
    assert gate.evidence["preflight_reason"].startswith("ft view ")
    assert (gate.message, gate.evidence) == (
        reference.probes[0].message,
        reference.probes[0].evidence,
    )
    assert [firing.view_id for firing in backend.fault_log] == ["ft"]
    assert backend.is_free()
