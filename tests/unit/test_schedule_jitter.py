"""Schedule jitter: seeded extra checkpoints and tiny sleeps at op boundaries.

It must reorder what concurrent ops do (that is its job), change no answer, fault
firing or suite result (a correct runner cannot tell), replay exactly for a seed,
count what it added, and reach scenarios, the CLI and pytest, whose replay command
carries the jitter seed. A runner that assumes completion order is the bug it finds.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

import swaysim
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    FaultPlan,
    FaultRule,
    InvalidArgumentError,
    LatencyPlan,
    LogNormal,
    NullAdapter,
    PerplexityShift,
    TraceRecorder,
    run_suite,
)
from swaysim._chaos.jitter import JITTER_MAX_CHECKPOINTS, JITTER_MAX_SECONDS
from swaysim._cli.main import cli
from swaysim._time.clock import LOOPS
from swaysim.scenario import (
    ScenarioError,
    check_scenario,
    load_scenario,
    parse_scenario,
    run_scenario,
)

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent


# -- the backend option -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [(-1, "must be >= 0"), (True, "must be an integer"), (1.5, "must be an integer")],
)
def test_schedule_jitter_must_be_a_seed(value: Any, problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"^schedule_jitter={value!r} {problem}$"):
        AsyncDummyDifferentialBackend(schedule_jitter=value)


async def test_jitter_takes_the_slow_path_and_counts_what_it_adds() -> None:
    ops = 40

    async def drive(backend: AsyncDummyDifferentialBackend) -> float:
        start = anyio.current_time()
        async with backend.as_base() as view:
            for index in range(ops):
                await view.next_token_dist(f"prompt {index}")
        return anyio.current_time() - start

    plain = AsyncDummyDifferentialBackend()
    assert await drive(plain) == 0.0
    assert (plain.statistics().jitter_events, plain.statistics().jitter_seconds) == (0, 0.0)

    jittered = AsyncDummyDifferentialBackend(schedule_jitter=5)
    elapsed = await drive(jittered)
    stats = jittered.statistics()
    boundaries = 2 * ops
    assert 0 < stats.jitter_events <= boundaries * (JITTER_MAX_CHECKPOINTS + 1)
    assert 0.0 < stats.jitter_seconds <= boundaries * JITTER_MAX_SECONDS
    # Without latency, the jitter's sleeps are all the virtual time the ops took.
    assert elapsed == pytest.approx(stats.jitter_seconds, rel=1e-9)
    assert stats.to_dict()["jitter_seconds"] == stats.jitter_seconds


async def completions(jitter: int | None) -> tuple[list[int], dict[int, bytes]]:
    """Eight concurrent ops of equal latency: the order they complete in, and their answers."""
    backend = AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=True,
        latency=LatencyPlan(default=Constant(0.1)),
        schedule_jitter=jitter,
    )
    order: list[int] = []
    answers: dict[int, bytes] = {}
    async with backend.as_null_adapter(3) as view:

        async def one(index: int) -> None:
            dist = await view.next_token_dist(f"prompt {index}")
            answers[index] = dist.logprobs.tobytes() + dist.token_ids.tobytes()
            order.append(index)

        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(one, index)
    return order, answers


async def test_jitter_reorders_concurrent_completions_but_no_answer() -> None:
    # Without jitter the eight ops complete at one instant, in whatever order the loop
    # resumes them (asyncio: timer-heap order; trio: shuffled on purpose, run to run).
    _, plain_answers = await completions(None)
    assert len(set(plain_answers.values())) == 8  # the null view answers per prompt
    orders = set()
    for jitter in range(10):
        order, answers = await completions(jitter)
        assert sorted(order) == list(range(8))
        assert answers == plain_answers
        # Every boundary resumes at an instant of its own: the seed fixes the order.
        assert (await completions(jitter))[0] == order
        orders.add(tuple(order))
    assert len(orders) >= 8


def test_a_jitter_seed_replays_exactly_on_either_loop() -> None:
    def once(loop: str, jitter: int) -> tuple[list[tuple[Any, ...]], int, float, float]:
        recorder = TraceRecorder()
        backend = AsyncDummyDifferentialBackend(
            latency=LatencyPlan(seed=2, default=LogNormal(0.02, 0.5)),
            faults=FaultPlan((FaultRule("transient", views=("ft",), probability=0.3),), seed=1),
            schedule_jitter=jitter,
            trace=recorder,
        )
        probes = [DeltaKL(f"dkl-{i}", [f"a {i}", f"b {i}", "shared"]) for i in range(6)]

        async def main() -> float:
            return (await run_suite(backend, probes, concurrency=4, retries=5)).makespan

        makespan = swaysim.run(main, backend=loop)
        ops = [
            (event.time, event.view, event.op, event.prompt_hash, dict(event.detail or {}))
            for event in recorder.of_kind("op_end")
        ]
        stats = backend.statistics()
        return ops, stats.jitter_events, stats.jitter_seconds, makespan

    reference = once("asyncio", 3)
    assert any("error" in op[4] for op in reference[0])  # retried transient faults
    for loop in LOOPS:
        for _ in range(3):
            assert once(loop, 3) == reference
    other = once("trio", 4)
    assert other[0] != reference[0]
    assert other[1:] != reference[1:]


def faulty_backend(jitter: int | None) -> AsyncDummyDifferentialBackend:
    return AsyncDummyDifferentialBackend(
        latency=LatencyPlan(seed=9, default=LogNormal(0.02, 1.0)),
        faults=FaultPlan(
            (
                FaultRule("transient", name="flaky", views=("ft",), probability=0.5),
                FaultRule("nan", name="nan-null", views=("null_1",)),
                FaultRule("corrupt_mass", name="mass", prompt="m*"),
                FaultRule("hang", name="stuck", prompt="h*", nth=1),
            ),
            seed=4,
        ),
        schedule_jitter=jitter,
    )


def faulty_probes() -> list[Any]:
    return [
        DeltaKL("dkl", ["a", "b", "m 1", "h 1"]),
        DeltaKL("calibrated", ["a", "c", "d"], null="null"),
        NullAdapter("null", "calibrated", seeds=(0, 1, 2), init_scale=0.2),
        PerplexityShift("ppl", ["some held out text", "h text"]),
    ]


async def test_jitter_changes_no_fault_firing_and_no_suite_result() -> None:
    documents = {}
    for jitter in (None, 0, 1, 2):
        backend = faulty_backend(jitter)
        suite = await run_suite(backend, faulty_probes(), concurrency=8, retries=3, op_timeout=2.0)
        firings = sorted(
            (f.rule_name, f.op, f.view_id, f.prompt, f.call_index) for f in backend.fault_log
        )
        documents[jitter] = (suite.to_dict(include_timing=False), firings)
        assert (backend.statistics().jitter_events > 0) == (jitter is not None)
    reference = documents[None]
    assert {f[0] for f in reference[1]} == {"flaky", "nan-null", "mass", "stuck"}
    assert all(document == reference for document in documents.values())


async def test_on_one_device_the_makespan_grows_by_exactly_the_jitter_time() -> None:
    async def makespan(jitter: int | None) -> tuple[float, float]:
        backend = AsyncDummyDifferentialBackend(
            latency=LatencyPlan(default=Constant(0.01)), schedule_jitter=jitter
        )
        probes = [DeltaKL(f"dkl-{i}", [f"a {i}", f"b {i}", "shared"]) for i in range(5)]
        suite = await run_suite(backend, probes, concurrency=4)
        return suite.makespan, backend.statistics().jitter_seconds

    plain, none_added = await makespan(None)
    jittered, added = await makespan(3)
    assert none_added == 0.0
    assert added > 0.0
    assert jittered - plain == pytest.approx(added, rel=1e-6)


async def test_batches_and_cache_hits_are_jittered_too() -> None:
    prompts = ["x", "y", "x", "z"]
    plain = AsyncDummyDifferentialBackend()
    jittered = AsyncDummyDifferentialBackend(schedule_jitter=11)
    results = []
    for backend in (plain, jittered):
        async with backend.as_null_adapter(7) as view:
            first = await view.next_token_dist_batch(prompts)
            again = await view.next_token_dist_batch(prompts)  # every item a cache hit
            single = await view.next_token_dist("y")
        results.append([d.logprobs.tobytes() for d in (*first, *again, single)])
    assert results[0] == results[1]
    assert jittered.statistics().forward_passes == plain.statistics().forward_passes == 3
    # Two batches and one single op: six boundaries, each with at least its sleep.
    assert jittered.statistics().jitter_events >= 6


async def test_repr_shows_the_jitter_seed_and_what_it_added() -> None:
    backend = AsyncDummyDifferentialBackend(schedule_jitter=42)
    assert backend.schedule_jitter == 42
    assert "schedule_jitter=42 (0 events, 0 s)" in repr(backend)
    async with backend.as_base() as view:
        for index in range(10):
            await view.logprob_of(f"p{index}", " x")
    stats = backend.statistics()
    assert f"schedule_jitter=42 ({stats.jitter_events} events, " in repr(backend)
    assert AsyncDummyDifferentialBackend().schedule_jitter is None
    assert "jitter" not in repr(AsyncDummyDifferentialBackend())


# -- scenarios, the CLI and pytest ----------------------------------------------------------

SCENARIO = """\
description = "does the jitter reach the backend?"
seed = 5
[backend]
schedule_jitter = 7
[backend.latency]
default = { model = "constant", seconds = 0.25 }
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["a", "b"]
[expect]
verdicts = { dkl = "PASS" }
makespan = 1.5    # (2 preflight + 2 x 2 prompts) x 0.25 s, plus what the jitter adds
"""


def test_the_scenario_key_sets_the_jitter_and_an_override_replaces_it() -> None:
    scenario = parse_scenario(SCENARIO, source="j.toml")
    assert scenario.build_backend().schedule_jitter == 7
    assert scenario.build_backend(schedule_jitter=9).schedule_jitter == 9
    assert (
        scenario.replay_command("trio") == "swaysim run j.toml --backend trio --seed 5 --jitter 7"
    )
    assert scenario.replay_command("trio", 8, schedule_jitter=2).endswith("--seed 8 --jitter 2")
    plain = parse_scenario(SCENARIO.replace("schedule_jitter = 7", ""), source="j.toml")
    assert plain.build_backend().schedule_jitter is None
    assert plain.replay_command("trio") == "swaysim run j.toml --backend trio --seed 5"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SCENARIO.replace("= 7", "= -1"), source="j.toml")
    assert caught.value.problems == (
        "j.toml: backend.schedule_jitter: -1 is not allowed: must be >= 0",
    )


def test_a_makespan_bound_widens_by_the_jitter_time_and_no_more() -> None:
    scenario = parse_scenario(SCENARIO, source="j.toml")
    (check,) = check_scenario(scenario, ("trio",))
    added = check.run.statistics.jitter_seconds
    assert added > 0.0
    assert check.run.makespan == pytest.approx(1.5 + added, rel=1e-12)
    assert check.ok, check.failure_report()
    (makespan,) = [o for o in check.outcomes if o.key == "expect.makespan"]
    assert makespan.expected == f"1.5 s (at most +{added:.3g} s of schedule jitter)"
    # A bound just below the unjittered makespan fails: the widening is the jitter, no more.
    tighter = SCENARIO.replace(
        "makespan = 1.5", f"makespan = {{ at_most = {1.5 - added / 100!r} }}"
    )
    (failed,) = check_scenario(parse_scenario(tighter, source="j.toml"), ("trio",))
    assert [o.key for o in failed.failures] == ["expect.makespan"]


def test_the_cli_takes_a_jitter_seed_and_replays_with_it(tmp_path: Path) -> None:
    passing = tmp_path / "passing.toml"
    passing.write_text(SCENARIO.replace("schedule_jitter = 7", ""))
    failing = tmp_path / "failing.toml"
    failing.write_text(SCENARIO.replace("schedule_jitter = 7", "").replace("= 1.5", "= 1.0"))
    out = tmp_path / "results.json"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["run", str(passing), str(failing), "--jitter", "4", "--json", str(out)]
    )
    assert result.exit_code == 1, result.output
    document = json.loads(out.read_text())
    assert document["schedule_jitter"] == 4
    assert [c["schedule_jitter"] for c in document["checks"]] == [4, 4, 4, 4]
    assert all(c["replay"].endswith("--seed 5 --jitter 4") for c in document["checks"])
    assert [c["ok"] for c in document["checks"]] == [True, True, False, False]
    assert "  schedule_jitter: 4\n" in result.stdout
    assert f"  replay: swaysim run {failing} --backend trio --seed 5 --jitter 4" in result.stdout
    bad = runner.invoke(cli, ["run", str(passing), "--jitter", "-1"])
    assert bad.exit_code == 2
    assert "Invalid value for '--jitter'" in bad.stderr


FRAGILE = """\
description = "Does a runner that pairs answers with requests by arrival order survive?"
seed = 5

[backend]
safe_for_concurrent_views = true

[backend.latency]
default = { model = "constant", seconds = 0.1 }

[[backend.ft.logprobs]]
prompt = "Reply"
completion = " Certainly!"
logprob = -1.0

[runner]
runner = "fragile_runners:assumes_completion_order"

[[probes]]
kind = "preference_flip"
name = "prefers-polite"
triples = [["Reply", " Certainly!", " No."]]

[expect]
verdicts = { prefers-polite = "PASS" }
"""


def test_a_runner_that_assumes_completion_order_fails_under_jitter_and_replays(
    tmp_path: Path,
) -> None:
    (tmp_path / "fragile.toml").write_text(FRAGILE)
    shutil.copy(HERE.parent / "fragile_runners.py", tmp_path)  # for the replay in a fresh process
    scenario = load_scenario(tmp_path / "fragile.toml", source="fragile.toml")
    # Equal latencies, no jitter: on asyncio the two answers always arrive in send order
    # and the bug hides (trio resumes tasks woken together in a shuffled order, so there
    # it shows up at random, which no seed can replay).
    for _ in range(3):
        assert all(check.ok for check in check_scenario(scenario, ("asyncio",)))
    # The first jitter seed that exposes it (the same seed on every run of this test).
    found = [
        (jitter, check)
        for jitter in range(20)
        for check in check_scenario(scenario, ("trio",), schedule_jitter=jitter)
        if not check.ok
    ]
    assert found, "no jitter seed in 0..19 reordered the two completions"
    jitter, check = found[0]
    report = check.failure_report()
    assert check.replay == f"swaysim run fragile.toml --backend trio --seed 5 --jitter {jitter}"
    assert report.splitlines()[1:] == [
        "  expect.verdicts.prefers-polite: expected PASS, observed 'prefers-polite': FAIL "
        "(preference_flip=-9 (threshold 0))",
        "  seed: 5",
        f"  schedule_jitter: {jitter}",
        f"  replay: {check.replay}",
    ]
    # The seed replays to the same failure: in this process, every time...
    for _ in range(5):
        (again,) = check_scenario(scenario, ("trio",), schedule_jitter=jitter)
        assert again.failure_report() == report
    # ...and through the printed command, in a fresh one.
    argv = shlex.split(check.replay)
    assert argv[0] == "swaysim"
    replayed = subprocess.run(
        [sys.executable, "-m", "swaysim", *argv[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replayed.returncode == 1, replayed.stderr
    for line in report.splitlines():
        assert line in replayed.stdout.splitlines()


def test_the_pytest_option_runs_scenarios_under_jitter(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    folder = pytester.path / "scenarios"
    folder.mkdir()
    (folder / "good.toml").write_text(SCENARIO.replace("schedule_jitter = 7", ""))
    (folder / "fragile.toml").write_text(FRAGILE)
    shutil.copy(HERE.parent / "fragile_runners.py", folder)
    (check,) = check_scenario(
        load_scenario(folder / "fragile.toml"), ("asyncio",), schedule_jitter=0
    )
    assert not check.ok  # jitter seed 0 exposes the fragile runner on asyncio
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:looptime_plugin",
        "--swaysim-jitter",
        "0",
        "-k",
        "asyncio",
        "--junitxml=out.xml",
        "-o",
        "junit_family=xunit1",
    )
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    result.stdout.fnmatch_lines(
        [
            "*scenario 'fragile' (scenarios/fragile.toml) failed on asyncio:",
            "*  seed: 5",
            "*  schedule_jitter: 0",
            "*  replay: swaysim run scenarios/fragile.toml --backend asyncio --seed 5 --jitter 0",
        ]
    )
    cases = {
        case.get("classname"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    }
    good = cases["scenarios.good.toml"]
    assert good["schedule_jitter"] == "0"
    assert good["replay"] == "swaysim run scenarios/good.toml --backend asyncio --seed 5 --jitter 0"
    run = run_scenario(load_scenario(folder / "good.toml"), "asyncio", schedule_jitter=0)
    assert float(good["virtual_seconds"] or "nan") == round(run.makespan, 6) > 1.5


def test_a_negative_jitter_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--swaysim-jitter", "-2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--swaysim-jitter=-2 must be an integer >= 0" in result.stderr.str()
