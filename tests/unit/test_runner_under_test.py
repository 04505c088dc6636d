"""The runner under test: named by a spec or passed as a callable, called with what it accepts.

A scenario's own ``[runner] runner`` wins; a ``reference_only`` scenario is skipped for any
other runner; ``[expect.reference]`` applies to the configured runner only; a plain ``def``
runner runs on a worker thread through the blocking bridge; replay commands name the runner.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pytest

import custom_runners
from swaysim import BlockingBackend, ProbeResult, SuiteResult, Verdict, run_suite
from swaysim._scenario.under_test import REFERENCE, RUNNER_OPTIONS, resolve_runner
from swaysim.errors import InvalidArgumentError
from swaysim.scenario import check_scenario, parse_scenario, run_scenario

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from swaysim import Probe
    from swaysim.scenario import Scenario

LOOPS = ("asyncio", "trio")
SCENARIO = """\
description = "q?"
seed = 4
[backend.latency]
default = { model = "constant", seconds = 0.5 }
view_switch = { model = "constant", seconds = 2.0 }
[runner]
retries = 5
[[probes]]
kind = "delta_kl"
name = "first"
prompts = ["p1"]
[[probes]]
kind = "delta_kl"
name = "second"
prompts = ["p2"]
[expect]
verdicts = { "*" = "PASS" }
view_switches = { at_most = 4 }
[expect.reference]
view_switches = 3
"""
RUNNER_FILE = """\
from swaysim import run_suite

MARK = {mark!r}

async def run(backend, probes, **options):
    return await run_suite(backend, probes, **options)
"""


def scenario(text: str = SCENARIO) -> Scenario:
    # A scenario's own runner here comes from tests/custom_runners.py, on sys.path: an opt-in.
    return parse_scenario(text, source="s.toml", allow_sys_path_runners=True)


async def base_first(backend: Any, probes: Sequence[Probe], *, retries: int = 2) -> object:
    """run_suite's results, after an extra entry of ft (a 4th switch: another visit order)."""
    async with backend.as_finetuned():
        pass
    return (await run_suite(backend, probes, retries=retries)).results


# -- resolving ----------------------------------------------------------------------------


def test_no_runner_and_run_suite_are_the_reference() -> None:
    assert resolve_runner(None) is REFERENCE
    assert resolve_runner(run_suite) is REFERENCE
    assert resolve_runner("swaysim:run_suite") is REFERENCE
    assert resolve_runner(functools.partial(run_suite, retries=1)).reference


def test_a_module_spec_and_a_callable_name_the_same_runner() -> None:
    by_spec = resolve_runner("custom_runners:plain")
    by_function = resolve_runner(custom_runners.plain)
    assert by_spec.function is by_function.function is custom_runners.plain
    assert by_spec.spec == by_function.spec == "custom_runners:plain"
    assert by_spec.is_async
    assert not resolve_runner(custom_runners.synchronous).is_async


def test_two_files_of_the_same_name_are_two_modules(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "runners.py").write_text(RUNNER_FILE.format(mark=folder))
    one = resolve_runner(f"{tmp_path}/one/runners.py:run")
    two = resolve_runner(f"{tmp_path}/two/runners.py:run")
    assert one.function is not two.function
    assert one.function.__globals__["MARK"] == "one"
    assert two.function.__globals__["MARK"] == "two"
    assert resolve_runner(f"{tmp_path}/one/runners.py:run").function is one.function


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("custom_runners", "must look like package.module:function or path/to/file.py:function"),
        ("no_such_module_here:run", "cannot import 'no_such_module_here': ModuleNotFoundError"),
        ("custom_runners:nope", "module 'custom_runners' has no attribute 'nope' (it has: "),
        ("custom_runners:NOT_CALLABLE", "NOT_CALLABLE is a int, not a callable"),
        ("missing/runner.py:run", "no such file: missing/runner.py"),
        ("1bad:run", "'1bad' is neither a module name nor a .py file"),
    ],
)
def test_a_bad_spec_names_the_spec_and_the_reason(spec: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        resolve_runner(spec)
    assert str(raised.value).startswith(f"runner {spec!r}: {reason}")
    assert raised.value.field == "runner"
    assert raised.value.value == spec


def test_a_broken_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InvalidArgumentError, match=r"importing .*broken.py failed: RuntimeError"):
        resolve_runner(f"{tmp_path}/broken.py:run")


def test_a_runner_gets_only_the_options_it_accepts() -> None:
    offered = dict.fromkeys(RUNNER_OPTIONS, 1)
    assert resolve_runner(base_first).accepted(offered) == {"retries": 1}
    assert resolve_runner(custom_runners.plain).accepted(offered) == offered


# -- which runner runs ----------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_a_runner_under_test_gets_run_suites_options_with_the_defaults_filled_in(
    loop: str,
) -> None:
    custom_runners.CALLS.clear()
    run = run_scenario(scenario(), loop, runner=custom_runners.plain)
    assert custom_runners.CALLS == [
        {
            "concurrency": 1,
            "op_timeout": None,
            "probe_timeout": None,
            "retries": 5,
            "backoff": 0.1,
            "backoff_max": 5.0,
            "retry_on": (),
            "preflight": True,
            "seed": 4,
        }
    ]
    assert (run.runner, run.runner_spec, run.configured) == (
        "custom_runners:plain",
        "custom_runners:plain",
        False,
    )


@pytest.mark.parametrize("loop", LOOPS)
def test_reference_expectations_apply_to_the_configured_runner_only(loop: str) -> None:
    (reference,) = check_scenario(scenario(), (loop,))
    (other,) = check_scenario(scenario(), (loop,), runner=base_first)
    assert reference.ok, reference.failure_report()
    assert other.ok, other.failure_report()
    assert [o.key for o in reference.outcomes] == [
        'expect.verdicts."*"',
        "expect.view_switches",
        "expect.reference.view_switches",
    ]
    assert [(o.key, o.observed) for o in other.outcomes] == [
        ('expect.verdicts."*"', "PASS x2"),
        ("expect.view_switches", "4"),
    ]


def test_the_scenarios_own_runner_wins_over_the_runner_under_test() -> None:
    text = SCENARIO.replace("[runner]", '[runner]\nrunner = "custom_runners:suite"')
    custom_runners.CALLS.clear()
    run = run_scenario(scenario(text), "trio", runner=base_first)
    assert custom_runners.CALLS == [{"retries": 5, "seed": 4}]
    assert run.configured
    assert run.suite is not None


REFERENCE_ONLY = SCENARIO.replace(
    "[runner]", '[runner]\nreference_only = "it measures run_suite\'s own pooling"'
)


def test_a_reference_only_scenario_is_skipped_for_any_other_runner_and_says_why() -> None:
    checks = check_scenario(scenario(REFERENCE_ONLY), LOOPS, runner="custom_runners:plain")
    reason = "skipped for this runner, because it measures run_suite's own pooling"
    assert [(c.loop, c.skipped, c.ok, c.outcomes) for c in checks] == [
        ("asyncio", reason, True, ()),
        ("trio", reason, True, ()),
    ]
    assert checks[0].to_dict()["status"] == "skipped"
    with pytest.raises(InvalidArgumentError, match="was not run on asyncio: skipped for"):
        checks[0].run  # noqa: B018 - the property raises
    assert all(c.ok and c.skipped is None for c in check_scenario(scenario(REFERENCE_ONLY)))


def test_a_failure_report_names_the_runner_and_the_replay_command_runs_it_again() -> None:
    text = SCENARIO.replace("at_most = 4", "at_most = 3")
    (check,) = check_scenario(scenario(text), ("trio",), runner="custom_runners:plain")
    assert check.ok  # plain is run_suite: 3 switches
    (check,) = check_scenario(scenario(text), ("trio",), runner=base_first)
    assert check.failure_report().splitlines() == [
        "scenario 's' (s.toml) failed on trio:",
        "  expect.view_switches: expected at most 3, observed 4",
        "  runner: test_runner_under_test:base_first",
        "  seed: 4",
        "  replay: swaysim run s.toml --backend trio --seed 4 "
        "--runner test_runner_under_test:base_first",
    ]


# -- a synchronous runner -------------------------------------------------------------------


def sync_runner(backend: BlockingBackend, probes: Sequence[Probe], **_: Any) -> list[ProbeResult]:
    """dlm-sway style: a blocking backend on a worker thread, views as plain with blocks."""
    assert isinstance(backend, BlockingBackend)
    with backend.as_finetuned() as ft:
        ft.next_token_dist("p1")
    return [ProbeResult(p.name, p.kind, Verdict.PASS) for p in probes]


def sync_hang(backend: BlockingBackend, probes: Sequence[Probe], **_: Any) -> SuiteResult:
    with backend.as_finetuned() as ft:
        ft.next_token_dist("stuck")
    raise AssertionError("unreachable: the op hangs until op_timeout cuts it off")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_plain_def_runner_runs_through_the_blocking_bridge(loop: str) -> None:
    run = run_scenario(scenario(), loop, runner=sync_runner)
    assert [r.verdict for r in run.results] == [Verdict.PASS, Verdict.PASS]
    assert run.statistics.calls_per_view == {"ft": 1}
    assert run.violations == ()
    # The one switch and op jumped on the virtual clock (which holds, following real time,
    # while the thread runs its own code: a few milliseconds here).
    assert run.makespan == pytest.approx(2.5, abs=0.2)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_makespan_bound_widens_by_the_synchronous_runners_own_time_and_no_more(
    loop: str,
) -> None:
    # The plan: one 2 s switch and one 0.5 s pass. The thread's own Python (starting, the
    # hand-offs) takes real time the held clock follows; a bound at the plan widens by
    # exactly that, so a correct synchronous runner holds it on every run.
    exact = SCENARIO.replace("[expect]\n", "[expect]\nmakespan = 2.5\n")
    (check,) = check_scenario(scenario(exact), (loop,), runner=sync_runner)
    outside = check.run.outside_seconds
    assert outside > 0.0
    assert check.run.makespan == pytest.approx(2.5 + outside, abs=1e-9)
    assert check.ok, check.failure_report()
    (makespan,) = [o for o in check.outcomes if o.key == "expect.makespan"]
    assert makespan.expected == (
        f"2.5 s (at most +{outside:.3g} s of the runner's own work on a worker thread)"
    )
    # The same runner's makespan against a bound below the plan still fails.
    tighter = exact.replace("makespan = 2.5", "makespan = { at_most = 2.4 }")
    (failed,) = check_scenario(scenario(tighter), (loop,), runner=sync_runner)
    assert [o.key for o in failed.failures] == ["expect.makespan"]
    # An async runner does its own work on the loop, in no virtual time: nothing to widen by.
    (plain,) = check_scenario(scenario(exact), (loop,), runner=custom_runners.plain)
    assert plain.run.outside_seconds == 0.0


@pytest.mark.parametrize("loop", LOOPS)
def test_a_synchronous_runner_gets_the_scenarios_op_timeout_per_op(loop: str) -> None:
    text = SCENARIO.replace("retries = 5", "retries = 5\nop_timeout = 1.5").replace(
        "[expect]", '[[backend.faults.rules]]\nkind = "hang"\nprompt = "stuck"\n[expect]'
    )
    run = run_scenario(scenario(text), loop, runner=sync_hang)
    assert run.error is not None
    assert run.error.startswith("TimeoutError")
    assert run.timeouts == 1
    assert run.makespan == pytest.approx(2.0 + 1.5, abs=0.2)
