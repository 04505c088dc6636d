"""What keeps an exploration trial cheap keeps what it checks: each shortcut, held to its claim.

- A trial's document is validated without writing it to TOML (``parse_document``): the
  loader must validate a document exactly as it validates the file holding it.
- The fault-free reference run is cached without the latency plan, jitter and concurrency
  when nothing is timed, and then without the scenario seed unless a function probe could
  read it: fault-free results must not change with any of them.
- The reference run under an order-independent plan (the ``expect.verdicts`` oracle) is
  run without the timing when nothing is timed: its verdicts must not change.
- The invariance twin runs only where invariance can fail: it must still catch a runner
  whose results differ on the other loop.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest
import tomli_w

from swaysim._explore.config import make_config
from swaysim._explore.generate import trial_document
from swaysim._explore.trial import (
    IDENTICAL,
    _arrival_dependent,
    _fault_free_key,
    _order_dependent,
    _reference_key,
    _under_faults,
    _verdict_table,
    document_scenario,
    expect_for,
    run_trial,
    scenario_of,
)
from swaysim._scenario.load import load_scenario, parse_document, parse_scenario
from swaysim._scenario.run import run_reference, run_scenario
from swaysim.errors import ScenarioError

ROOT: Final = Path(__file__).resolve().parents[2]
LIBRARY: Final = sorted((ROOT / "scenarios").glob("*.toml"))
MALFORMED: Final = sorted((Path(__file__).parent / "malformed").glob("*.toml"))
EXPLORED: Final = tuple(
    str(ROOT / "scenarios" / f"{name}.toml")
    for name in (
        "safe_backend_faults",
        "flaky_ft_view",
        "zscore_calibration",
        "retries_exhausted",
        "nan_scalar_answers",
        "fault_on_view_exit",
    )
)
LOOPS: Final = ("asyncio", "trio")
_LINE: Final = re.compile(r" \(line \d+(, column \d+)?\)$")
_TIMERS: Final = {"op_timeout", "probe_timeout", "cancel_after"}


def _problems(error: ScenarioError) -> list[str]:
    return [_LINE.sub("", problem) for problem in error.problems]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_a_library_document_validates_to_the_scenario_its_file_does(path: Path) -> None:
    from_file = load_scenario(path)
    document = tomllib.loads(path.read_text("utf-8"))
    from_document = parse_document(document, source=str(path), path=path)
    assert from_document.spec == from_file.spec
    assert from_document.probe_plan == from_file.probe_plan
    assert from_document.runner_target == from_file.runner_target
    assert from_document.function_targets == from_file.function_targets


def _documents(paths: list[Path]) -> list[Path]:
    """The malformed files that are TOML documents (the rest are problems of the text alone)."""
    found = []
    for path in paths:
        try:
            text = path.read_text("utf-8")
            tomllib.loads(text)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError):
            continue
        if text.strip():
            found.append(path)
    return found


@pytest.mark.parametrize("path", _documents(MALFORMED), ids=lambda p: p.stem)
def test_a_malformed_document_is_refused_with_the_problems_of_its_file(path: Path) -> None:
    document = tomllib.loads(path.read_text("utf-8"))
    with pytest.raises(ScenarioError) as from_file:
        parse_scenario(path.read_bytes(), source="s.toml")
    with pytest.raises(ScenarioError) as from_document:
        parse_document(document, source="s.toml")
    assert _problems(from_document.value) == _problems(from_file.value)


def test_a_trial_document_is_the_scenario_its_written_file_is() -> None:
    config = make_config("runners.correct:run", EXPLORED)
    for seed in range(24):
        _, document = trial_document(config, seed)
        document["expect"] = expect_for(None)
        written = scenario_of(document, "t.toml")
        assert document_scenario(document, "t.toml").spec == written.spec


def _runs_alike(document: dict[str, Any], loop: str) -> list[object]:
    """What the fault-free oracles read of a reference run on ``document``, per seed and
    retry policy."""
    seen: list[object] = []
    policies: tuple[dict[str, Any], ...] = (
        {},
        {"retries": 0},
        {"retries": 5, "backoff": 0.5, "backoff_max": 1.0},
    )
    for seed, policy in zip((0, 171, 40_000), policies, strict=True):
        runner = {**document.get("runner", {}), **policy}
        scenario = document_scenario({**document, "seed": seed, "runner": runner}, "<fault-free>")
        run = run_reference(scenario, loop)
        assert run.retries == 0, "a fault-free reference run retried"
        seen.append(
            (
                [result.to_dict(include_timing=False) for result in run.results],
                run.statistics.entries,
                run.statistics.peak_live_views,
            )
        )
    return seen


def _untimed(path: Path) -> dict[str, Any] | None:
    document = tomllib.loads(path.read_text("utf-8"))
    if (_TIMERS | {"runner"}) & document.get("runner", {}).keys():
        return None
    if any(p.get("kind") == "function" for p in document.get("probes", ())):
        return None
    return document


@pytest.mark.parametrize("loop", LOOPS)
def test_fault_free_results_of_declarative_suites_do_not_depend_on_the_seed(loop: str) -> None:
    """Why the fault-free cache key drops the seed and the retry policy: the same results."""
    checked = 0
    for path in LIBRARY:
        document = _untimed(path)
        if document is None or path.stem == "large_suite_1000":
            continue
        keys = {
            _fault_free_key({**document, "seed": seed, "runner": {"retries": seed}}, loop, "<t>")
            for seed in (1, 2)
        }
        assert len(keys) == 1
        _, _, kept = json.loads(keys.pop())
        seen = _runs_alike(kept, loop)
        assert seen[1:] == seen[:-1], f"{path.name}: fault-free results depend on the seed"
        checked += 1
    assert checked >= 10


def test_a_function_probe_that_reads_the_seed_keeps_it_in_the_key(tmp_path: Path) -> None:
    (tmp_path / "seeded.py").write_text(
        "from swaysim import ProbeResult, Verdict\n"
        "async def seeded(backend, ctx):\n"
        "    return ProbeResult('', 'function', Verdict.PASS, raw=float(ctx.seed))\n",
        "utf-8",
    )
    document = {
        "probes": [{"kind": "function", "name": "s", "function": "seeded:seeded"}],
        "expect": {"no_false_pass": True},
    }
    raws = set()
    for seed in (1, 2):
        path = tmp_path / f"s{seed}.toml"
        path.write_text(tomli_w.dumps({**document, "seed": seed}), "utf-8")
        raws.add(run_reference(load_scenario(path), "asyncio").results[-1].raw)
    assert raws == {1.0, 2.0}, "the function probe does not see the seed: the test proves nothing"
    keys = {_fault_free_key({**document, "seed": seed}, "asyncio", "<t>") for seed in (1, 2)}
    assert len(keys) == 2


def _order_independent_trials(loop: str) -> list[dict[str, Any]]:
    config = make_config("runners.correct:run", EXPLORED, loop=loop)
    found = []
    for seed in range(60):
        _, document = trial_document(config, seed)
        rules = document.get("backend", {}).get("faults", {}).get("rules")
        timed = _TIMERS & document.get("runner", {}).keys()
        if rules and not timed and not _order_dependent(document):
            found.append({**document, "expect": expect_for(None)})
    return found


@pytest.mark.parametrize("loop", LOOPS)
def test_verdicts_under_order_independent_faults_do_not_depend_on_timing(loop: str) -> None:
    """Why the reference under faults runs without latency, jitter and concurrency."""
    trials = _order_independent_trials(loop)
    assert len(trials) >= 15
    calm_keys = set()
    for document in trials:
        timed = run_scenario(document_scenario(document, "<timed>"), loop)
        key = _reference_key(document, loop, "<t>", faults=True)
        _, _, calm = json.loads(key)
        calm_keys.add(json.dumps(calm.get("backend", {}).get("latency")))
        assert _verdict_table(_under_faults(key)) == _verdict_table(timed), document
    assert calm_keys == {"null"}, "the reference under faults kept a latency plan"


def test_the_twin_runs_where_invariance_counts_and_only_there() -> None:
    config = make_config("runners.correct:run", [EXPLORED[0]])
    outcomes = [run_trial(config, seed) for seed in range(0, 48, config.invariance_every)]
    ran = {o.seed for o in outcomes if o.twin}
    arrival = {s for s in range(0, 48, 4) if _arrival_dependent(trial_document(config, s)[1])}
    assert ran
    assert arrival
    assert not ran & arrival
    assert all(not o.twin for o in outcomes if o.seed % config.invariance_every)


def test_the_twin_still_catches_a_runner_that_differs_on_the_other_loop(tmp_path: Path) -> None:
    runner = tmp_path / "loop_bound.py"
    runner.write_text(
        "import sniffio\n"
        "from swaysim import run_suite\n"
        "async def run(backend, probes, **options):\n"
        "    if sniffio.current_async_library() == 'trio':\n"
        "        probes = probes[:-1]\n"
        "    return await run_suite(backend, probes, **options)\n",
        "utf-8",
    )
    config = make_config(f"{runner}:run", [EXPLORED[0]])
    outcomes = [run_trial(config, seed) for seed in range(0, 24, config.invariance_every)]
    caught = [o for o in outcomes if o.failed]
    assert caught
    assert {o.failure.key for o in caught if o.failure is not None} == {IDENTICAL}
    assert all(o.twin for o in caught)
