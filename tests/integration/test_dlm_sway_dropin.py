"""swaysim.dlm_sway's drop-in, used the way dlm-sway's own tests use its dummy, on both loops.

Each test takes the drop-in class from the ``swaysim_dlm_sway`` fixture (so it runs on
asyncio and on trio) and dlm-sway's own ``DummyDifferentialBackend`` as the reference:
every probe kind gives dlm-sway's values, subclasses and monkeypatches work, nested and
conflicting entries raise dlm-sway's ``RuntimeError`` wording (and swaysim's errors), and
dlm-sway's runner gets its statistics, ``--trace`` file and report cache line.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

pytest.importorskip("dlm_sway", reason="dlm-sway (a dev dependency) is not installed")

import dlm_sway.probes
from dlm_sway.backends import dummy as sway_dummy
from dlm_sway.backends.dummy import DummyResponses, _DummyView
from dlm_sway.core.result import Verdict
from dlm_sway.core.scoring import (
    DifferentialBackend,
    NullCalibratedBackend,
    PreflightCheckable,
    RollingLogprob,
    ScalableDifferentialBackend,
    ScoringModel,
    TokenDist,
)
from dlm_sway.core.sections import Section, SectionProbe
from dlm_sway.probes.base import _REGISTRY
from dlm_sway.suite import report as sway_report
from dlm_sway.suite import trace_analysis
from dlm_sway.suite.runner import run as run_sway_suite
from dlm_sway.suite.score import compute as compute_score
from dlm_sway.suite.spec import SwaySpec

import swaysim
from dlm_sway_state import isolate_dlm_sway_global_state  # noqa: F401 (a fixture)
from swaysim.dlm_sway import BridgedDummyView

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from dlm_sway.core.result import SuiteResult

pytestmark = pytest.mark.usefixtures("isolate_dlm_sway_global_state")
DUMMY: Any = sway_dummy.DummyDifferentialBackend
"""dlm-sway's own dummy: the reference (the fixture swaps the module's name, not this)."""
SECTIONS = (
    Section("intro", "prose", "The river Sway runs north through the old town. " * 6),
    Section(
        "qa",
        "instruction",
        "...",
        probes=(SectionProbe("What runs north?", "The river Sway"),),
    ),
)
DOC_TEXT = "The river Sway runs north through the old town, past the mill and the bridge."


class _Generations(dict[str, str]):
    """Canned generations with a deterministic answer for any prompt (both backends read it)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def __missing__(self, prompt: str) -> str:
        return f"{prompt[-24:]} and then the {self.mode} model went on about rivers"


def _dist(token_ids: list[int], probabilities: list[float]) -> TokenDist:
    logprobs = np.log(np.array(probabilities, dtype=np.float32))
    return TokenDist(np.array(token_ids, dtype=np.int64), logprobs, 100, None)


def _responses() -> dict[str, DummyResponses]:
    rolling = RollingLogprob(
        np.arange(4, dtype=np.int64), np.array([-1.0, -2.0, -0.5], np.float32), 4, -3.5
    )
    base = DummyResponses(
        generations=_Generations("base"),
        logprobs={("Q1", " yes"): -4.0, ("Q1", " no"): -1.0, ("What runs north?", " x"): -2.0},
        rolling={"held out text": rolling},
        token_dists={"The sky is": _dist([1, 2, 3], [0.7, 0.2, 0.1])},
    )
    ft = DummyResponses(
        generations=_Generations("ft"),
        logprobs={("Q1", " yes"): -1.0, ("Q1", " no"): -3.0},
        token_dists={"The sky is": _dist([2, 1, 3], [0.5, 0.3, 0.2])},
    )
    return {"base": base, "ft": ft}


# One spec per registered dlm-sway probe kind (a test checks the registry has no other).
PROBE_SPECS: dict[str, dict[str, Any]] = {
    "null_adapter": {"runs": 3, "cache": False},
    "delta_kl": {"prompts": ["The sky is", "Hello there", "Once upon"]},
    "adapter_ablation": {"prompts": ["The sky is", "Hello there"]},
    "adapter_revert": {
        "cases": [{"prompt": "Q1", "gold": "yes", "paraphrases": ["Q1 again?"]}],
    },
    "calibration_drift": {"items": [["Capital of France is", "Paris"], ["Two plus", "four"]]},
    "cluster_kl": {"prompts": [f"prompt {i}" for i in range(24)]},
    "external_perplexity": {"max_chunks": 2, "chunk_chars": 256},
    "leakage": {"prefix_chars": 32, "continuation_chars": 64, "max_new_tokens": 16},
    "paraphrase_invariance": {
        "cases": [{"prompt": "Q1", "gold": " yes", "paraphrases": ["Q1, please?", "Q1 now"]}],
    },
    "preference_flip": {
        "triples": [{"prompt": "Q1", "chosen": " yes", "rejected": " no"}],
    },
    "prompt_collapse": {"prompts": ["The sky is", "Hello there"], "context_lengths": [0, 32]},
    "section_internalization": {},
    "style_fingerprint": {"prompts": ["Tell me about the river"], "doc_reference": DOC_TEXT},
}


def _dlm_sways_kinds() -> set[str]:
    """dlm-sway's own probe kinds (swaysim.dlm_sway.runner registers ``swaysim_*`` ones)."""
    return {kind for kind in _REGISTRY if not kind.startswith("swaysim_")}


def _spec(kinds: list[str]) -> SwaySpec:
    suite = [{"name": kind, "kind": kind, **PROBE_SPECS[kind]} for kind in kinds]
    return SwaySpec.model_validate(
        {
            "version": 1,
            "models": {"base": {"base": "b"}, "ft": {"base": "b", "adapter": "/tmp/a"}},
            "defaults": {"seed": 0, "top_k": 8},
            "suite": suite,
        }
    )


def _comparable(result: SuiteResult) -> list[tuple[object, ...]]:
    """Everything a probe reports except its wall-clock duration."""
    return [
        (
            *(p.name, p.verdict, p.score, p.raw, p.z_score, p.base_value, p.ft_value, p.ci_95),
            *(p.message, json.dumps(p.evidence, sort_keys=True, default=repr)),
        )
        for p in result.probes
    ]


def _run(backend: Any, kinds: list[str], **options: Any) -> SuiteResult:
    return run_sway_suite(_spec(kinds), backend, sections=SECTIONS, doc_text=DOC_TEXT, **options)


def test_every_probe_kind_gives_dlm_sways_values(swaysim_dlm_sway: type) -> None:
    kinds = list(PROBE_SPECS)
    assert set(kinds) == _dlm_sways_kinds(), "a dlm-sway probe kind without a spec here"
    expected = _run(DUMMY(**_responses()), kinds)
    verdicts = [p.verdict for p in expected.probes]
    # Most kinds measure something (the rest need an embedder or spaCy: SKIP or ERROR).
    assert sum(v in (Verdict.PASS, Verdict.FAIL, Verdict.WARN) for v in verdicts) >= 9, verdicts
    with swaysim_dlm_sway(**_responses()) as backend:
        result = _run(backend, kinds)
        assert backend.swaysim_backend.is_free()
    assert _comparable(result) == _comparable(expected)
    assert dict(result.null_stats) == dict(expected.null_stats)


def test_each_op_returns_dlm_sways_values_and_types(swaysim_dlm_sway: type) -> None:
    reference, backend = DUMMY(**_responses()), swaysim_dlm_sway(**_responses())
    canned = backend._base_r.token_dists["The sky is"]
    opens: list[Callable[[Any], Any]] = [
        lambda b: b.as_base(),
        lambda b: b.as_finetuned(),
        lambda b: b.as_scaled_adapter(0.25),
        lambda b: b.as_scaled_adapter(1.25),
        lambda b: b.as_null_adapter(7),
        lambda b: b.as_null_adapter(7, init_scale=0.05, rank_scale=2.0),
    ]
    for open_view in opens:
        with open_view(reference) as expected_view, open_view(backend) as view:
            assert view.id == expected_view.id
            assert isinstance(view, ScoringModel)
            for prompt in ("The sky is", "anything else"):
                dist, expected_dist = (
                    view.next_token_dist(prompt),
                    expected_view.next_token_dist(prompt),
                )
                assert type(dist) is TokenDist
                assert dist.logprobs.tobytes() == expected_dist.logprobs.tobytes()
                assert dist.token_ids.tolist() == expected_dist.token_ids.tolist()
                assert (dist.vocab_size, dist.tail_logprob) == (
                    expected_dist.vocab_size,
                    expected_dist.tail_logprob,
                )
            for text in ("held out text", "four words of text"):
                rolling = view.rolling_logprob(text)
                assert type(rolling) is RollingLogprob
                assert rolling.perplexity == expected_view.rolling_logprob(text).perplexity
            assert view.logprob_of("Q1", " yes") == expected_view.logprob_of("Q1", " yes")
            assert view.generate("Q1", max_new_tokens=4) == expected_view.generate(
                "Q1", max_new_tokens=4
            )
    with backend.as_base() as view:
        assert view.next_token_dist("The sky is") is canned  # the caller's own object back
    backend.close()


def test_a_canned_answer_added_after_construction_is_served(swaysim_dlm_sway: type) -> None:
    backend = swaysim_dlm_sway(**_responses())
    nan = _dist([1, 2], [0.5, 0.5])
    nan.logprobs[0] = np.nan
    backend._ft_r.token_dists["preflight"] = nan  # as dlm-sway's own tests do
    ok, reason = backend.preflight_finite_check()
    assert not ok
    assert reason == "ft view produced 1/2 non-finite logprob(s) on prompt 'preflight'"
    backend.close()


def test_the_protocols_dlm_sway_checks_hold(swaysim_dlm_sway: type) -> None:
    backend = swaysim_dlm_sway(**_responses())
    for protocol in (
        DifferentialBackend,
        ScalableDifferentialBackend,
        NullCalibratedBackend,
        PreflightCheckable,
    ):
        assert isinstance(backend, protocol)
    assert not backend.bridge_open  # nothing starts before the first use
    backend.close()


def test_a_nested_entry_raises_dlm_sways_runtime_error_and_swaysims(swaysim_dlm_sway: type) -> None:
    backend = swaysim_dlm_sway(**_responses())
    with (
        backend.as_base(),
        pytest.raises(RuntimeError, match="view already active") as caught,
        backend.as_finetuned(),
    ):
        pass
    error = caught.value
    assert isinstance(error, swaysim.NestedViewAlreadyActiveError)
    assert isinstance(error, swaysim.NestedViewError)
    assert isinstance(error, swaysim.ViewAlreadyActiveError)
    message = str(error)
    assert message.startswith(
        "DifferentialBackend view already active ('base'); exit the current view before "
        "entering 'ft'. (swaysim: task "
    )
    assert "already holds view 'base' and tried to enter 'ft'" in message
    with (
        backend.as_null_adapter(3),
        pytest.raises(RuntimeError, match=r"\('null\(3\)'\)"),
        backend.as_scaled_adapter(0.5),
    ):
        pass
    # Sequential entries are fine, and the backend holds nothing afterwards.
    for _ in range(2):
        with backend.as_base() as view:
            view.logprob_of("Q1", " yes")
    assert backend.swaysim_backend.is_free()
    backend.close()


def _hold_in_thread(backend: Any, entered: threading.Event, release: threading.Event) -> None:
    with backend.as_finetuned():
        entered.set()
        release.wait(30)


def test_a_conflicting_entry_from_another_thread(swaysim_dlm_sway: type) -> None:
    backend = swaysim_dlm_sway(**_responses())  # exclusivity="strict", as dlm-sway's dummy
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_in_thread, args=(backend, entered, release))
    holder.start()
    assert entered.wait(30)
    try:
        with pytest.raises(RuntimeError, match="view already active") as caught, backend.as_base():
            pass
    finally:
        release.set()
        holder.join(30)
    assert isinstance(caught.value, swaysim.ViewAlreadyActiveError)
    assert not isinstance(caught.value, swaysim.NestedViewError)
    assert "exclusivity='strict'" in str(caught.value)
    backend.close()
    # Under "wait" the second thread queues instead, as swaysim's gate does.
    waiting = swaysim_dlm_sway(**_responses(), exclusivity="wait")
    entered.clear()
    release.clear()
    holder = threading.Thread(target=_hold_in_thread, args=(waiting, entered, release))
    holder.start()
    assert entered.wait(30)
    threading.Timer(0.05, release.set).start()
    with waiting.as_base() as view:
        assert view.logprob_of("Q1", " yes") == -4.0
    holder.join(30)
    assert waiting.statistics().waits == 1
    waiting.close()


class _VariableFtView(_DummyView):
    """A view of the caller's own class, computing in the caller's thread (as dlm-sway's tests)."""

    def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        dist = super().next_token_dist(prompt, top_k=top_k)
        return TokenDist(dist.token_ids, dist.logprobs[::-1].copy(), dist.vocab_size, None)


def test_a_subclass_overrides_views_and_adds_methods(swaysim_dlm_sway: type) -> None:
    class Variable(swaysim_dlm_sway):  # type: ignore[misc]
        @contextmanager
        def as_finetuned(self) -> Iterator[_DummyView]:
            self._enter("ft")
            try:
                yield _VariableFtView("ft", self._ft_r, inst=self._inst)
            finally:
                self._exit()

        def describe(self) -> str:
            return f"variable {type(self).__name__}"

    class Safe(swaysim_dlm_sway):  # type: ignore[misc]
        safe_for_concurrent_views = True

    backend = Variable(**_responses())
    assert backend.describe() == "variable Variable"
    with backend.as_finetuned() as view:
        assert isinstance(view, _VariableFtView)
        first = view.next_token_dist("anything")
        again = view.next_token_dist("anything")  # the second from backend._inst's cache
        assert again.logprobs.tobytes() == first.logprobs.tobytes()
        with pytest.raises(RuntimeError, match=r"already active \('ft'\)"), backend.as_base():
            pass  # swaysim's gate holds ft for the subclass's own view
    assert backend.statistics().entries_per_view["ft"] == 1
    stats = backend._inst.stats
    assert (stats.cache_hits, stats.cache_misses, stats.forward_passes) == (1, 1, 1)
    ok, reason = backend.preflight_finite_check()  # through the overridden as_finetuned
    assert (ok, reason) == (True, "")
    backend.close()
    safe = Safe(**_responses())
    assert safe.swaysim_backend.safe_for_concurrent_views
    with safe.as_base(), safe.as_finetuned() as ft:  # concurrent views: no conflict
        assert ft.logprob_of("Q1", " yes") == -1.0
    safe.close()


def test_the_backend_and_its_views_can_be_monkeypatched(
    swaysim_dlm_sway: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = swaysim_dlm_sway(**_responses())
    seen: list[str] = []
    original = backend.as_base

    def traced_as_base() -> Any:
        seen.append("as_base")
        return original()

    monkeypatch.setattr(backend, "as_base", traced_as_base)
    with backend.as_base() as view:
        assert isinstance(view, BridgedDummyView)
        monkeypatch.setattr(view, "logprob_of", lambda prompt, completion: 42.0)
        assert view.logprob_of("Q1", " yes") == 42.0
        view.id = "renamed"
        assert view.id == "renamed"
    monkeypatch.setattr(swaysim_dlm_sway, "preflight_finite_check", lambda self: (False, "nope"))
    result = _run(backend, ["delta_kl"])
    assert [(p.name, p.verdict) for p in result.probes] == [("__preflight__", Verdict.ERROR)]
    assert seen == ["as_base"]
    backend.close()


def _repeated_prompts_spec() -> SwaySpec:
    suite = [
        {"name": name, "kind": "delta_kl", "prompts": ["The sky is", "Hello"], "assert_mean_gte": 0}
        for name in ("dk1", "dk2")
    ]
    return SwaySpec.model_validate(
        {
            "version": 1,
            "models": {"base": {"base": "b"}, "ft": {"base": "b", "adapter": "/tmp/a"}},
            "suite": suite,
        }
    )


def test_the_runner_gets_swaysims_statistics_a_trace_and_the_report_line(
    swaysim_dlm_sway: type, tmp_path: Path
) -> None:
    trace_path = tmp_path / "trace.jsonl"
    latency = swaysim.LatencyPlan(default=swaysim.Constant(0.25))
    backend = swaysim_dlm_sway(**_responses(), latency=latency)
    result = run_sway_suite(_repeated_prompts_spec(), backend, trace_path=trace_path)
    backend._inst.close()
    stats, counted = result.backend_stats, backend.statistics()
    assert (stats["cache_hits"], stats["cache_misses"], stats["forward_passes"]) == (
        counted.cache_hits,
        counted.cache_misses,
        counted.forward_passes,
    )
    # dk2 asks what dk1 asked: every one of its four lookups hits swaysim's cache.
    assert stats["cache_hits"] >= 4
    assert stats["hit_rate"] == pytest.approx(counted.hit_rate)
    # Loop time spent scoring: every forward pass paid its injected latency.
    assert stats["scoring_wall_s"] == pytest.approx(0.25 * counted.latency_draws)
    events = trace_analysis.load(trace_path)
    assert {e.probe for e in events if e.probe is not None} == {"dk1", "dk2"}
    assert {e.view_id for e in events} == {"base", "ft"}
    assert sum(e.hit for e in events) == stats["cache_hits"]
    assert sum(not e.hit for e in events) == stats["cache_misses"]
    assert all(e.op == "next_token_dist" for e in events)
    markdown = sway_report.to_markdown(result, compute_score(result))
    assert f"cache: {stats['cache_hits']}/" in markdown
    backend.close()


def test_faults_reach_dlm_sways_code_as_swaysims_errors(swaysim_dlm_sway: type) -> None:
    faults = swaysim.FaultPlan((swaysim.FaultRule("fatal", views=("ft",), prompt="Hello"),))
    backend = swaysim_dlm_sway(**_responses(), faults=faults)
    with backend.as_finetuned() as view, pytest.raises(swaysim.InjectedFatalError):
        view.next_token_dist("Hello")
    result = run_sway_suite(_repeated_prompts_spec(), backend)
    assert [(p.name, p.verdict) for p in result.probes] == [
        ("dk1", Verdict.ERROR),
        ("dk2", Verdict.ERROR),
    ]
    assert result.probes[0].message.startswith("InjectedFatalError: injected fatal fault")
    assert [firing.view_id for firing in backend.fault_log] == ["ft"] * 3
    backend.close()


def test_a_stale_view_and_a_closed_bridge(swaysim_dlm_sway: type) -> None:
    backend = swaysim_dlm_sway(**_responses())
    with backend.as_base() as view:
        pass
    with pytest.raises(swaysim.StaleViewError, match="after its 'with' block exited"):
        view.logprob_of("Q1", " yes")
    assert backend.bridge_open
    assert backend.close()
    assert not backend.bridge_open
    with backend as reopened, reopened.as_finetuned() as view:  # a fresh bridge
        assert view.logprob_of("Q1", " yes") == -1.0
    assert not backend.bridge_open


def test_close_releases_a_thread_blocked_on_a_hung_op(swaysim_dlm_sway: type) -> None:
    faults = swaysim.FaultPlan((swaysim.FaultRule("hang", views=("ft",)),))
    backend = swaysim_dlm_sway(**_responses(), faults=faults)
    outcome: list[BaseException] = []
    started = threading.Event()

    def blocked() -> None:
        try:
            with backend.as_finetuned() as view:
                started.set()
                view.next_token_dist("hangs")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    assert started.wait(30)
    assert backend.close()
    thread.join(30)
    assert not thread.is_alive()
    assert [type(exc) for exc in outcome] == [swaysim.BridgeError]


def test_an_op_timeout_turns_a_hang_into_a_timeout_error(swaysim_dlm_sway: type) -> None:
    faults = swaysim.FaultPlan((swaysim.FaultRule("hang", views=("ft",)),))
    backend = swaysim_dlm_sway(**_responses(), faults=faults, op_timeout=30.0)
    with backend.as_finetuned() as view, pytest.raises(TimeoutError):
        view.next_token_dist("hangs")  # 30 virtual seconds, no wall time
    ok, reason = backend.preflight_finite_check()
    assert not ok
    assert reason.startswith("preflight raised TimeoutError")
    backend.close()


def test_bad_options_raise_before_anything_starts(swaysim_dlm_sway: type) -> None:
    with pytest.raises(swaysim.InvalidArgumentError, match="loop='uvloop' is not supported"):
        swaysim_dlm_sway(loop="uvloop")
    with pytest.raises(swaysim.InvalidArgumentError, match="op_timeout=-1"):
        swaysim_dlm_sway(op_timeout=-1)
    with pytest.raises(swaysim.InvalidArgumentError, match="exclusivity='sometimes'"):
        swaysim_dlm_sway(exclusivity="sometimes")
    not_a_dist: Any = "not a distribution"
    with pytest.raises(swaysim.InvalidArgumentError, match="token_dists"):
        swaysim_dlm_sway(base=DummyResponses(token_dists={"p": not_a_dist}))
    assert swaysim.dlm_sway.open_bridges() == 0


def test_the_registry_has_the_kinds_this_module_knows() -> None:
    assert dlm_sway.probes is not None
    assert _dlm_sways_kinds() == set(PROBE_SPECS)
