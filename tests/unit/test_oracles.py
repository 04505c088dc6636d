"""The oracles any runner is judged by: no false PASS, the fault-free result, nothing unchecked.

The runners here are small and wrong on purpose: one that PASSes whatever it is told, one
that calls views itself (dlm-sway style) and says which probe each call is for, one that
reports other scores than the probes measure.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

import swaysim
from swaysim import ProbeResult, Verdict, run_suite
from swaysim.scenario import check_scenario, parse_scenario

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swaysim import Probe
    from swaysim.scenario import Scenario

LOOPS = ("asyncio", "trio")

CORRUPTED = """\
description = "q?"
seed = 8
[[backend.faults.rules]]
name = "nan-ft"
kind = "nan"
views = ["ft"]
prompt = "bad"
[[probes]]
kind = "delta_kl"
name = "clean"
prompts = ["good"]
[[probes]]
kind = "delta_kl"
name = "tainted"
prompts = ["bad"]
[expect]
no_false_pass = true
"""


def scenario(text: str) -> Scenario:
    return parse_scenario(text, source="s.toml")


def outcome(text: str, loop: str, runner: Any, key: str) -> tuple[str, str]:
    (check,) = check_scenario(scenario(text), (loop,), runner=runner)
    found = {o.key: (o.status, o.observed) for o in check.outcomes}
    return found[key]


async def says_pass(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
    """run_suite's work, then PASS for every probe whatever it measured."""
    suite = await run_suite(backend, probes, **options)
    return [dataclasses.replace(r, verdict=Verdict.PASS) for r in suite.results]


async def drives_views(backend: Any, probes: Sequence[Probe], **_: Any) -> object:
    """Calls views directly (no requests()), attributing each call to its probe; all PASS."""
    results = []
    for probe in probes:
        prompts = getattr(probe, "prompts", ())
        with swaysim.attribute(probe.name):
            for opened in (backend.as_finetuned(), backend.as_base()):
                async with opened as view:
                    for prompt in prompts:
                        await view.next_token_dist(f"{prompt} (asked directly)")
        results.append(ProbeResult(probe.name, probe.kind, Verdict.PASS))
    return results


@pytest.mark.parametrize("loop", LOOPS)
def test_a_pass_on_a_corrupted_answer_is_caught_whatever_the_runner_returns(loop: str) -> None:
    assert outcome(CORRUPTED, loop, None, "expect.no_false_pass") == ("ok", "none")
    status, observed = outcome(CORRUPTED, loop, says_pass, "expect.no_false_pass")
    assert status == "failed"
    assert observed == "'tainted' passed on a nan next_token_dist('bad') on ft"


@pytest.mark.parametrize("loop", LOOPS)
def test_calls_attributed_with_swaysim_attribute_count_for_their_probe(loop: str) -> None:
    text = CORRUPTED.replace('prompt = "bad"', 'prompt = "bad (asked directly)"')
    status, observed = outcome(text, loop, drives_views, "expect.no_false_pass")
    assert status == "failed"
    assert observed == ("'tainted' passed on a nan next_token_dist('bad (asked directly)') on ft")


REFERENCE = """\
description = "q?"
seed = 9
[[backend.faults.rules]]
name = "broken"
kind = "fatal"
views = ["ft"]
prompt = "broken"
[[backend.faults.rules]]
name = "flaky"
kind = "transient"
views = ["base"]
prompt = "flaky"
nth = 1
[[probes]]
kind = "delta_kl"
name = "clean"
prompts = ["good"]
[[probes]]
kind = "delta_kl"
name = "retried"
prompts = ["flaky"]
[[probes]]
kind = "delta_kl"
name = "hit"
prompts = ["broken"]
[expect]
matches_reference = true
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_probes_that_met_no_fault_or_only_retried_ones_must_match_the_fault_free_run(
    loop: str,
) -> None:
    # "hit" met a fatal fault: its ERROR is not compared with the fault-free PASS.
    assert outcome(REFERENCE, loop, None, "expect.matches_reference") == (
        "ok",
        "2 comparable probe(s) identical",
    )

    async def scores_off(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
        suite = await run_suite(backend, probes, **options)
        return [dataclasses.replace(r, score=(r.score or 0.0) / 2) for r in suite.results]

    status, observed = outcome(REFERENCE, loop, scores_off, "expect.matches_reference")
    assert status == "failed"
    assert observed.startswith("'clean': score ")
    assert "'retried': score " in observed
    assert "'hit'" not in observed


@pytest.mark.parametrize("loop", LOOPS)
def test_a_retry_budget_too_small_for_the_faults_makes_a_probe_incomparable(loop: str) -> None:
    text = REFERENCE.replace("[[probes]]", "[runner]\nretries = 0\n[[probes]]", 1)
    assert outcome(text, loop, None, "expect.matches_reference") == (
        "ok",
        "1 comparable probe(s) identical",
    )


def test_an_expectation_that_cannot_be_checked_fails_unless_optional() -> None:
    text = CORRUPTED.replace("no_false_pass = true", "identical_across_loops = true")
    parsed = scenario(text)
    checks = check_scenario(parsed, ("asyncio", "trio"))
    assert all(c.ok for c in checks)
    from swaysim._scenario.expect import evaluate

    (unchecked,) = evaluate(checks[0].run)
    assert (unchecked.status, unchecked.failed) == ("n/a", True)
    assert unchecked.line() == (
        "expect.identical_across_loops: expected identical, could not be checked: "
        "ran on one loop only"
    )
    optional = scenario(text + 'optional = ["identical_across_loops"]\n')
    (skipped,) = evaluate(dataclasses.replace(checks[0].run, scenario=optional))
    assert (skipped.status, skipped.failed) == ("skipped", False)


def test_optional_names_an_expectation_the_scenario_states() -> None:
    with pytest.raises(swaysim.ScenarioError) as raised:
        scenario(CORRUPTED + 'optional = ["retires", "retries"]\n')
    first, second = raised.value.problems
    assert first.startswith(
        "s.toml: expect.optional[0]: \"retires\" is not an expectation key; did you mean 'retries'?"
    )
    assert second.startswith(
        's.toml: expect.optional[1]: "retries" is not stated in [expect] or '
        "[expect.reference]: nothing to make optional"
    )
