"""Expectations: each ``[expect]`` key holds or fails with the observed value, on both loops.

Expected numbers come from the plan (service times, switch costs, call counts), not from
a previous run.
"""

from __future__ import annotations

import dataclasses

import pytest

import custom_runners
from swaysim import ProbeResult, Verdict
from swaysim._scenario.expect import evaluate
from swaysim._scenario.run import STALL_SECONDS
from swaysim.scenario import Scenario, check_scenario, parse_scenario, run_scenario

LOOPS = ("asyncio", "trio")

TWO_PROBES = """\
description = "q?"
seed = 5
[backend.latency]
default = { model = "constant", seconds = 0.5 }
view_switch = { model = "constant", seconds = 2.0 }
[[probes]]
kind = "delta_kl"
name = "first"
prompts = ["p1"]
[[probes]]
kind = "delta_kl"
name = "second"
prompts = ["p2"]
"""


def scenario(text: str) -> Scenario:
    # Custom runners here come from tests/custom_runners.py, on sys.path: an opt-in.
    return parse_scenario(text, source="s.toml", allow_sys_path_runners=True)


def outcomes(text: str, loop: str) -> dict[str, tuple[str, str]]:
    """Expectation key -> (status, observed)."""
    (check,) = check_scenario(scenario(text), (loop,))
    return {o.key: (o.status, o.observed) for o in check.outcomes}


@pytest.mark.parametrize("loop", LOOPS)
def test_counts_and_makespan_hold_when_they_match_the_plan(loop: str) -> None:
    # Preflight enters base then ft; the runner continues on ft and then enters base: 3
    # switches. Forward passes: 2 preflight + 2 per view = 6 x 0.5 s, plus 3 x 2 s.
    result = outcomes(
        TWO_PROBES
        + """[expect]
view_switches = 3
peak_live_views = 1
makespan = 9.0
retries = 0
timeouts = 0
verdict_counts = { PASS = 2 }
verdicts = { "*" = "PASS" }
gate_free = true
""",
        loop,
    )
    assert result == {
        'expect.verdicts."*"': ("ok", "PASS x2"),
        "expect.verdict_counts.PASS": ("ok", "2"),
        "expect.peak_live_views": ("ok", "1"),
        "expect.view_switches": ("ok", "3"),
        "expect.makespan": ("ok", "9 s"),
        "expect.retries": ("ok", "0"),
        "expect.timeouts": ("ok", "0"),
        "expect.gate_free": ("ok", "free"),
    }


@pytest.mark.parametrize("loop", LOOPS)
def test_wrong_expectations_fail_with_the_observed_value(loop: str) -> None:
    result = outcomes(
        TWO_PROBES
        + """[expect]
view_switches = { at_most = 2 }
makespan = { at_least = 9.5 }
retries = { at_least = 1 }
verdicts = { first = "FAIL", "sec*" = ["WARN", "ERROR"] }
verdict_counts = { PASS = 1 }
gate_free = false
""",
        loop,
    )
    assert result["expect.view_switches"] == ("failed", "3")
    assert result["expect.makespan"] == ("failed", "9 s")
    assert result["expect.retries"] == ("failed", "0")
    assert result["expect.verdicts.first"][0] == "failed"
    assert result["expect.verdicts.first"][1].startswith("'first': PASS (delta_kl=")
    assert result['expect.verdicts."sec*"'][0] == "failed"
    assert result["expect.verdict_counts.PASS"] == ("failed", "2")
    assert result["expect.gate_free"] == ("failed", "free")


@pytest.mark.parametrize("loop", LOOPS)
def test_view_entries_and_peak_ops_in_flight_are_observed_counts(loop: str) -> None:
    # Preflight enters base and ft, the runner each view once more: 4 entries. A
    # concurrent-safe backend serves the 4 requests of a view 2 at a time (concurrency 2).
    text = (
        TWO_PROBES.replace('prompts = ["p1"]', 'prompts = ["p1", "p3"]')
        + "[backend]\nsafe_for_concurrent_views = true\n[runner]\nconcurrency = 2\n"
    )
    holds = outcomes(text + "[expect]\nview_entries = 4\npeak_ops_in_flight = 2\n", loop)
    assert holds == {
        "expect.view_entries": ("ok", "4"),
        "expect.peak_ops_in_flight": ("ok", "2"),
    }
    fails = outcomes(
        text + "[expect]\nview_entries = { at_most = 3 }\npeak_ops_in_flight = 1\n", loop
    )
    assert fails == {
        "expect.view_entries": ("failed", "4"),
        "expect.peak_ops_in_flight": ("failed", "2"),
    }


FLAKY = """\
description = "q?"
[backend.latency]
default = { model = "constant", seconds = 0.5 }
[[backend.faults.rules]]
kind = "transient"
prompt = "p1"
views = ["ft"]
nth = 1
[runner]
backoff = 0.3
[[probes]]
kind = "delta_kl"
name = "first"
prompts = ["p1"]
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_retry_delay_bounds_the_seconds_from_a_failure_to_its_retry(loop: str) -> None:
    # run_suite backs off 0.3 s plus up to 25 % seeded jitter before the one retry.
    holds = outcomes(FLAKY + "[expect]\nretry_delay = { at_least = 0.3, at_most = 0.375 }\n", loop)
    status, observed = holds["expect.retry_delay"]
    assert status == "ok"
    assert observed.endswith(" s over 1 retry")
    fails = outcomes(FLAKY + "[expect]\nretry_delay = { at_most = 0.2 }\n", loop)
    status, observed = fails["expect.retry_delay"]
    assert status == "failed"
    assert observed.endswith("(next_token_dist('p1') on ft after " + observed.split()[0] + " s)")
    nothing = FLAKY.replace('prompt = "p1"', 'prompt = "none"')
    quiet = outcomes(nothing + "[expect]\nretry_delay = { at_most = 0.2 }\n", loop)
    assert quiet["expect.retry_delay"] == ("ok", "no retries")


@pytest.mark.parametrize("loop", LOOPS)
def test_faults_fired_counts_firings_per_rule(loop: str) -> None:
    text = (
        TWO_PROBES
        + """[[backend.faults.rules]]
name = "once"
kind = "transient"
views = ["ft"]
prompt = "p1"
nth = 1
[[backend.faults.rules]]
kind = "transient"
views = ["base"]
prompt = "never"
[expect]
faults_fired = { once = 1, "transient#1" = 0 }
retries = 1
verdicts = { first = "PASS" }
"""
    )
    result = outcomes(text, loop)
    assert result["expect.faults_fired.once"] == ("ok", "1")
    assert result['expect.faults_fired."transient#1"'] == ("ok", "0")
    assert result["expect.retries"] == ("ok", "1")


@pytest.mark.parametrize("loop", LOOPS)
def test_no_false_pass_catches_a_pass_on_a_corrupted_answer(loop: str) -> None:
    # Reversing ids and logprobs together leaves a null view's distribution intact, so the
    # null probe still PASSes: exactly the PASS-on-corrupt-data no_false_pass must flag.
    text = """\
description = "q?"
[[backend.faults.rules]]
kind = "corrupt_unsorted"
views = ["null"]
prompt = "p1"
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["p1"]
null = "null"
[[probes]]
kind = "null_adapter"
name = "null"
target = "dkl"
seeds = [0, 1]
init_scale = 0.2
[expect]
no_false_pass = true
verdicts = { null = "PASS" }
"""
    result = outcomes(text, loop)
    assert result["expect.verdicts.null"][0] == "ok"
    status, observed = result["expect.no_false_pass"]
    assert status == "failed"
    assert observed.startswith(
        "'null' passed on a corrupt_unsorted next_token_dist('p1') on null_0"
    )


@pytest.mark.parametrize("loop", LOOPS)
def test_no_false_pass_holds_when_preflight_aborts(loop: str) -> None:
    text = TWO_PROBES + (
        '[[backend.faults.rules]]\nkind = "nan"\nviews = ["base"]\n'
        "[expect]\nno_false_pass = true\naborted = true\n"
    )
    result = outcomes(text, loop)
    assert result["expect.no_false_pass"] == ("ok", "none")
    assert result["expect.aborted"][0] == "ok"
    assert result["expect.aborted"][1].startswith("aborted (base view produced 8/8 non-finite")


@pytest.mark.parametrize("loop", LOOPS)
def test_cancellation_is_observed_and_the_gate_is_free(loop: str) -> None:
    # 0.5 s forward passes: the 1.25 s deadline falls inside the first probe request.
    text = (
        TWO_PROBES.replace("[[probes]]", "[runner]\ncancel_after = 1.25\n[[probes]]", 1)
        + "[expect]\ncancelled = true\ngate_free = true\nmakespan = 1.25\n"
        + "verdicts = { first = 'PASS' }\n"
    )
    result = outcomes(text, loop)
    assert result["expect.cancelled"] == ("ok", "cancelled at 1.25 s")
    assert result["expect.gate_free"] == ("ok", "free")
    assert result["expect.makespan"] == ("ok", "1.25 s")
    assert result["expect.verdicts.first"] == (
        "failed",
        "'first': no result [the suite was cancelled]",
    )


def test_identical_across_loops_compares_with_the_other_loop() -> None:
    text = TWO_PROBES + "[expect]\nidentical_across_loops = true\n"
    checks = check_scenario(scenario(text), LOOPS)
    assert [c.outcomes[0].observed for c in checks] == [
        "identical to trio",
        "identical to asyncio",
    ]
    run = checks[0].run
    altered = dataclasses.replace(
        run,
        loop="trio",
        results=(dataclasses.replace(run.results[0], raw=0.5), *run.results[1:]),
        suite=None,
    )
    (outcome,) = evaluate(run, altered)
    assert outcome.failed
    assert outcome.observed.startswith("probe 'first' raw: ")
    (alone,) = evaluate(run)
    assert alone.status == "n/a"


def test_one_loop_runs_the_other_as_reference_and_a_cache_shares_it() -> None:
    parsed = scenario(TWO_PROBES + "[expect]\nidentical_across_loops = true\n")
    cache: dict[tuple[str, str, int | None, int | None, str], object] = {}
    (first,) = check_scenario(parsed, ("asyncio",), cache=cache)  # type: ignore[arg-type]
    assert set(cache) == {
        ("s.toml", "asyncio", None, None, "reference"),
        ("s.toml", "trio", None, None, "reference"),
    }
    (second,) = check_scenario(parsed, ("trio",), cache=cache)  # type: ignore[arg-type]
    assert second.run is cache[("s.toml", "trio", None, None, "reference")]
    assert first.ok
    assert second.ok


def test_progress_is_reported_for_the_loops_asked_for_not_the_reference() -> None:
    parsed = scenario(TWO_PROBES + "[expect]\nidentical_across_loops = true\n")
    seen: list[str] = []
    (check,) = check_scenario(
        parsed, ("trio",), on_progress=lambda r, done, total: seen.append(r.name)
    )
    assert check.outcomes[0].observed == "identical to asyncio"
    assert sorted(seen) == ["first", "second"]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_hang_that_nothing_cuts_off_stalls_the_run_instead_of_the_process(loop: str) -> None:
    text = TWO_PROBES + (
        '[[backend.faults.rules]]\nkind = "hang"\nviews = ["ft"]\nprompt = "p2"\n'
        "[expect]\ngate_free = true\n"
    )
    (check,) = check_scenario(scenario(text), (loop,))
    run = check.run
    assert run.stalled
    assert not run.cancelled
    assert run.makespan == pytest.approx(STALL_SECONDS)
    assert [o.line() for o in check.failures] == [
        f"runner: expected to complete, observed it was still waiting after {STALL_SECONDS:g} "
        "virtual seconds, with nothing left to wake it (a hang that no op_timeout, "
        "probe_timeout or cancel_after cuts off?)"
    ]
    assert run.gate_free
    assert "stalled" in repr(run)


@pytest.mark.parametrize("loop", LOOPS)
def test_virtual_time_runs_past_two_to_the_24_seconds(loop: str) -> None:
    # A float cannot hold 2**24 s plus asyncio's clock resolution; the clock must still fire
    # timers there. Three switches (preflight's base and ft, then base) of 2e7 s each.
    text = (
        TWO_PROBES.replace("seconds = 2.0", "seconds = 2e7").replace("seconds = 0.5", "seconds = 0")
        + "[expect]\nmakespan = 6e7\n"
    )
    (check,) = check_scenario(scenario(text), (loop,))
    assert check.ok, check.failure_report()
    assert check.run.makespan == pytest.approx(6e7, rel=1e-12)


@pytest.mark.parametrize("loop", LOOPS)
def test_plain_results_from_a_custom_runner_are_checked_as_fully_as_a_suite(loop: str) -> None:
    # Retries, timeouts and false passes are what the backend observed, not what the
    # runner reports: a runner returning a plain list is checked like run_suite.
    text = (
        TWO_PROBES.replace(
            "[[probes]]",
            '[runner]\nrunner = "custom_runners:plain"\nconcurrency = 2\n[[probes]]',
            1,
        )
        + "[expect]\nretries = 0\ntimeouts = 0\nno_false_pass = true\nview_switches = 3\n"
    )
    custom_runners.CALLS.clear()
    result = outcomes(text, loop)
    assert custom_runners.CALLS == [{"concurrency": 2, "seed": 5}]
    assert result == {
        "expect.no_false_pass": ("ok", "none"),
        "expect.view_switches": ("ok", "3"),
        "expect.retries": ("ok", "0"),
        "expect.timeouts": ("ok", "0"),
    }


@pytest.mark.parametrize("loop", LOOPS)
def test_a_custom_runner_returning_a_suite_keeps_every_expectation(loop: str) -> None:
    text = (
        TWO_PROBES.replace("[[probes]]", '[runner]\nrunner = "custom_runners:suite"\n[[probes]]', 1)
        + "[expect]\nretries = 0\nno_false_pass = true\n"
    )
    result = outcomes(text, loop)
    assert result == {"expect.no_false_pass": ("ok", "none"), "expect.retries": ("ok", "0")}


@pytest.mark.parametrize(
    ("runner", "observed"),
    [
        ("crashes", "it raised ValueError: the runner fell over"),
        (
            "wrong_type",
            "it raised TypeError: the runner returned int; it must return a SuiteResult "
            "or a sequence of ProbeResult",
        ),
    ],
)
def test_a_runner_that_does_not_complete_fails_the_scenario(runner: str, observed: str) -> None:
    text = (
        TWO_PROBES.replace(
            "[[probes]]", f'[runner]\nrunner = "custom_runners:{runner}"\n[[probes]]', 1
        )
        + "[expect]\ngate_free = true\n"
    )
    (check,) = check_scenario(scenario(text), ("asyncio",))
    assert not check.ok
    assert check.failures[0].line() == f"runner: expected to complete, observed {observed}"


def test_a_synchronous_runner_is_called_without_awaiting() -> None:
    text = (
        TWO_PROBES.replace(
            "[[probes]]", '[runner]\nrunner = "custom_runners:synchronous"\n[[probes]]', 1
        )
        + "[expect]\nverdicts = { '*' = 'FAIL' }\n"
    )
    run = run_scenario(scenario(text), "trio")
    assert [r.verdict for r in run.results] == [Verdict.FAIL, Verdict.FAIL]
    assert all(isinstance(r, ProbeResult) for r in run.results)


def test_a_failure_report_names_expectations_seed_and_replay_command() -> None:
    text = TWO_PROBES + "[expect]\nview_switches = 4\n"
    (check,) = check_scenario(scenario(text), ("trio",), seed=17)
    assert check.failure_report() == (
        "scenario 's' (s.toml) failed on trio:\n"
        "  expect.view_switches: expected 4, observed 3\n"
        "  seed: 17\n"
        "  replay: swaysim run s.toml --backend trio --seed 17"
    )
