"""Exploration: a trial is a pure function of its seed; shrinking ends at a fixpoint that replays.

Small budgets on the library's own scenarios, on both loops; every run is on the virtual clock.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from click.testing import CliRunner

from swaysim import explore
from swaysim._cli.main import cli
from swaysim._explore import bounds
from swaysim._explore.config import make_config
from swaysim._explore.generate import trial_document
from swaysim._explore.parallel import run_trials
from swaysim._explore.shrink import _Judge, candidates, size
from swaysim._explore.trial import run_trial
from swaysim.errors import InvalidArgumentError
from swaysim.scenario import check_scenario, load_scenario, parse_scenario

if TYPE_CHECKING:
    from swaysim._explore.api import ExploreResult

ROOT: Final = Path(__file__).resolve().parents[2]
SAFE: Final = str(ROOT / "scenarios" / "safe_backend_faults.toml")
FLAKY: Final = str(ROOT / "scenarios" / "flaky_ft_view.toml")
LOOPS: Final = ("asyncio", "trio")


def test_a_trial_is_the_same_scenario_in_a_fresh_process() -> None:
    config = make_config("runners.correct:run", [SAFE, FLAKY])
    here = [trial_document(config, seed) for seed in range(8)]
    code = (
        "import json, pickle, sys\n"
        "from swaysim._explore.generate import trial_document\n"
        "config = pickle.loads(sys.stdin.buffer.read())\n"
        "print(json.dumps([trial_document(config, s) for s in range(8)]))\n"
    )
    env_path = f"{ROOT / 'tests'}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps(config),
        capture_output=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    there = json.loads(done.stdout)
    assert there == json.loads(json.dumps(here))
    assert len({json.dumps(doc, sort_keys=True) for _, doc in here}) == len(here)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_trial_outcome_is_a_function_of_its_seed(loop: str) -> None:
    config = make_config("runners.mutants:unretried_transient", [SAFE], loop=loop)
    first = [run_trial(config, seed) for seed in range(6)]
    again = [run_trial(pickle.loads(pickle.dumps(config)), seed) for seed in range(6)]
    assert first == again
    assert any(outcome.failure is not None for outcome in first)


def test_narrowing_keeps_every_rule_within_the_kinds_and_views_asked_for() -> None:
    config = make_config(
        "runners.correct:run", [SAFE, FLAKY], faults=["transient", "nan"], views=["ft", "null"]
    )
    rules = [
        rule
        for seed in range(40)
        for rule in trial_document(config, seed)[1]
        .get("backend", {})
        .get("faults", {})
        .get("rules", [])
    ]
    assert rules
    assert {rule["kind"] for rule in rules} <= {"transient", "nan"}
    assert all(rule["views"] and set(rule["views"]) <= {"ft", "null"} for rule in rules)


def test_bad_input_names_the_option() -> None:
    with pytest.raises(InvalidArgumentError, match=r"faults=.*unknown bogus") as caught:
        make_config("runners.correct:run", [SAFE], faults=["bogus"])
    assert caught.value.field == "faults"
    with pytest.raises(InvalidArgumentError, match="reference_only"):
        make_config("runners.correct:run", [str(ROOT / "scenarios" / "naive_runner_swaps.toml")])


def test_run_trials_yields_in_seed_order_and_stops_at_the_first_accepted() -> None:
    def square(offset: int, seed: int) -> int:
        return offset + seed * seed

    seen = list(run_trials(square, 1, range(10), stop=lambda outcome: outcome > 10))
    assert seen == [(0, 1), (1, 2), (2, 5), (3, 10), (4, 17)]


def _found(
    loop: str, runner: str, tmp_path: Path, scenarios: tuple[str, ...] = (SAFE, FLAKY)
) -> ExploreResult:
    result = explore(list(scenarios), runner, trials=40, loop=loop, out=tmp_path)
    assert result.found is not None, f"{runner} not found in 40 trials on {loop}"
    assert result.shrunk is not None
    assert result.written is not None
    return result


ZSCORE: Final = str(ROOT / "scenarios" / "zscore_calibration.toml")
RETRIES: Final = str(ROOT / "scenarios" / "retries_exhausted.toml")
MUTANT_CASES: Final[dict[str, tuple[tuple[str, ...], str | tuple[str, ...]]]] = {
    # mutant: (the scenarios explored, the oracle that catches it)
    "unretried_transient": ((SAFE, FLAKY), "expect.matches_reference"),
    "leaked_task": ((SAFE, FLAKY), "invariant.leaked_task"),
    "nested_entry": ((SAFE, FLAKY), "expect.matches_reference"),
    "failure_as_fail": ((ZSCORE,), "expect.verdicts."),
    "swap_storm": ((ZSCORE,), "expect.view_switches"),
    "serial_views_on_safe": ((SAFE,), "expect.peak_live_views"),
    "uncoordinated_views": ((FLAKY,), "expect.matches_reference"),
    # Entering base at once after preflight's entry failed is an unbacked-off retry, too.
    "ignored_preflight_result": (
        (FLAKY,),
        ("expect.verdicts.__preflight__", "expect.retry_backoff"),
    ),
    "entry_per_request": ((SAFE,), "expect.view_entries"),
    "concurrency_unbounded": ((SAFE,), "expect.peak_ops_in_flight"),
    "no_backoff": ((RETRIES,), "expect.retry_backoff"),
    "timeout_includes_queueing": ((FLAKY,), "expect.op_timeout_applied"),
    "one_timeout_around_retries": ((FLAKY,), "expect.op_timeout_applied"),
}


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("mutant", list(MUTANT_CASES))
def test_a_mutant_is_found_and_the_shrunk_file_replays_against_it_only(
    mutant: str, loop: str, tmp_path: Path
) -> None:
    runner = f"runners.mutants:{mutant}"
    scenarios, oracle = MUTANT_CASES[mutant]
    result = _found(loop, runner, tmp_path, scenarios)
    shrunk, written = result.shrunk, result.written
    assert shrunk is not None
    assert written is not None
    assert shrunk.failure.key.startswith(oracle)
    assert shrunk.fixpoint
    assert shrunk.rules <= 2
    scenario = load_scenario(written.path)
    (mine,) = check_scenario(scenario, [loop], runner=runner)
    assert shrunk.failure.key in {o.key for o in mine.failures}
    (reference,) = check_scenario(scenario, [loop])
    assert reference.ok, reference.failure_report()
    assert f"--runner {runner}" in written.replay
    assert written.trace_dir is not None
    assert (written.trace_dir / "trace.jsonl").is_file()
    assert (written.trace_dir / "results.json").is_file()


@pytest.mark.parametrize("loop", LOOPS)
def test_no_smaller_candidate_of_a_shrunk_scenario_still_fails(loop: str, tmp_path: Path) -> None:
    result = _found(loop, "runners.mutants:unretried_transient", tmp_path)
    shrunk = result.shrunk
    assert shrunk is not None
    judge = _Judge(result.config, shrunk.failure.key, "<test>")
    final = {k: v for k, v in shrunk.document.items() if k != "expect"}
    smaller = [c for c in candidates(final) if size(c) < size(final)]
    assert smaller
    assert all(judge.same_failure(candidate) is None for candidate in smaller)


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    "runner",
    ["runners.correct:run", "runners.correct_base_first:run", "minimal_runner:run"],
)
def test_correct_runners_break_nothing_in_a_small_budget(
    runner: str, loop: str, tmp_path: Path
) -> None:
    result = explore([SAFE, FLAKY], runner, trials=25, loop=loop, out=tmp_path)
    assert result.found is None, repr(result)
    assert result.trials == 25
    assert repr(result).endswith("25 trials, nothing found>")
    assert not list(tmp_path.iterdir())


def test_the_command_exits_0_1_2_and_writes_a_json_summary(tmp_path: Path) -> None:
    invoke = CliRunner().invoke
    summary = tmp_path / "summary.json"
    out = tmp_path / "out"
    common = ["--trials", "20", "--out", str(out), "--json", str(summary)]
    clean = invoke(cli, ["explore", FLAKY, "--runner", "runners.correct:run", *common])
    assert clean.exit_code == 0, clean.output
    assert "nothing found within the budget" in clean.output
    assert json.loads(summary.read_text())["found"] is None
    found = invoke(cli, ["explore", FLAKY, "--runner", "runners.mutants:leaked_task", *common])
    assert found.exit_code == 1, found.output
    document = json.loads(summary.read_text())
    assert document["shrunk"]["property"] == "invariant.leaked_task"
    assert Path(document["file"]).is_file()
    assert f"replay: {document['replay']}" in found.output
    report = invoke(cli, ["report", document["trace"], "-o", str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    bad = invoke(cli, ["explore", FLAKY, "--runner", "runners.correct:run", "--time", "soon"])
    assert bad.exit_code == 2
    assert "--time 'soon'" in bad.output


def test_every_bound_is_written_in_the_docs() -> None:
    doc = (ROOT / "docs" / "explore.md").read_text("utf-8")
    for name in ("MAX_RULES", "MAX_NTH", "MAX_EVERY", "MAX_FIRES", "MAX_RETRIES"):
        assert f"`{name}` = {getattr(bounds, name)}" in doc, name
    factors = ", ".join(f"{factor:g}" for factor in bounds.BACKOFF_CAP_FACTORS[:-1])
    assert f"{factors} or {bounds.BACKOFF_CAP_FACTORS[-1]:g} times" in doc
    ranges = (bounds.LATENCY_SECONDS, bounds.SIGMA_RANGE, bounds.SWITCH_SECONDS)
    for low, high in (*ranges, bounds.BACKOFF_SECONDS):
        assert f"[{low:g}, {high:g}]" in doc


MINIMAL_PROBE_BUDGET: Final = """
# Found by swaysim explore against docs/examples/minimal_runner.py (trial seed 287 of the
# scenarios of tests/runners/explore_table.py): it charged a probe's probe_timeout for the
# time its requests waited for the device behind other probes' work.
name = "minimal-runner-probe-budget"
seed = 151
[backend.latency.default]
model = "lognormal"
median = 0.1894
sigma = 0.6812
[runner]
probe_timeout = 2.0
concurrency = 16
[[probes]]
kind = "delta_kl"
name = "fast"
prompts = ["a", "b"]
[[probes]]
kind = "perplexity_shift"
name = "slow"
texts = ["held out text"]
[expect]
matches_reference = true
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_the_minimal_runner_keeps_the_probe_budget_explore_found_it_breaking(loop: str) -> None:
    scenario = parse_scenario(MINIMAL_PROBE_BUDGET, source="<regression>")
    (check,) = check_scenario(scenario, [loop], runner="minimal_runner:run")
    assert check.ok, check.failure_report()


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
def test_a_scenario_with_function_probes_is_explored_and_replays_from_out(
    loop: str, tmp_path: Path
) -> None:
    runner = "runners.mutants:function_probe_unbounded"
    functions = str(ROOT / "scenarios" / "function_probes.toml")
    result = explore([functions], runner, trials=200, loop=loop, out=tmp_path)
    assert result.found is not None, f"{runner} not found in 200 trials on {loop}"
    written = result.written
    assert written is not None
    assert (written.path.parent / "function_probes.py").is_file()  # the module travels along
    scenario = load_scenario(written.path)
    assert scenario.function_targets
    (mine,) = check_scenario(scenario, [loop], runner=runner)
    assert not mine.ok
    (reference,) = check_scenario(scenario, [loop])
    assert reference.ok, reference.failure_report()
