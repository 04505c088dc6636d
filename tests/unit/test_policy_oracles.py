"""The contract's policy, from the ledger: backoff, op_timeout and an idle device.

Correct runners keep them on every loop; the corpus's backoff and timeout mutants break them,
and the failure line names the request, the retry, cut-off or idle stretch, and the bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

from runners.mutants import MUTANTS
from swaysim import run_suite
from swaysim.scenario import check_scenario, parse_scenario

if TYPE_CHECKING:
    from swaysim._scenario.check import ScenarioCheck

LOOPS: Final = ("asyncio", "trio")
CORRECT: Final = (None, "runners.correct:run", "runners.correct_base_first:run")

RETRIES: Final = """
name = "retries"
seed = 5
[backend.latency]
default = { model = "constant", seconds = 0.1 }
[[backend.faults.rules]]
name = "doomed"
kind = "transient"
views = ["ft"]
prompt = "doomed"
[[backend.faults.rules]]
name = "flaky"
kind = "transient"
views = ["ft"]
prompt = "a"
nth = 1
[runner]
retries = 3
backoff = 1.0
backoff_max = 1.5
concurrency = 2
[[probes]]
kind = "delta_kl"
name = "plain"
prompts = ["a", "b", "c"]
[[probes]]
kind = "delta_kl"
name = "needs-doomed"
prompts = ["doomed"]
[expect]
retry_backoff = {wanted}
work_conserving = true
"""

TIMEOUTS: Final = """
name = "timeouts"
seed = 3
[backend.latency]
default = { model = "constant", seconds = 0.2 }
[[backend.faults.rules]]
name = "stuck"
kind = "hang"
views = ["ft"]
prompt = "stuck"
[[backend.faults.rules]]
name = "flaky"
kind = "transient"
views = ["ft"]
prompt = "a"
nth = 1
[runner]
op_timeout = 0.5
backoff = 0.2
concurrency = 3
[[probes]]
kind = "delta_kl"
name = "plain"
prompts = ["a", "b", "c", "d"]
[[probes]]
kind = "delta_kl"
name = "needs-stuck"
prompts = ["stuck"]
[expect]
op_timeout_applied = {wanted}
"""


def _outcome(text: str, runner: object, key: str) -> list[tuple[str, str, str]]:
    scenario = parse_scenario(text, source="<test>")
    checks: list[ScenarioCheck] = check_scenario(scenario, LOOPS, runner=runner)  # type: ignore[arg-type]
    found: list[tuple[str, str, str]] = []
    for check in checks:
        (outcome,) = [o for o in check.outcomes if o.key == key]
        found.append((check.loop, outcome.status, outcome.observed))
    return found


@pytest.mark.parametrize("runner", [*CORRECT, "minimal_runner:run"])
def test_correct_runners_keep_the_backoff_and_the_device_busy(runner: str | None) -> None:
    text = RETRIES.replace("{wanted}", "true")
    for loop, status, observed in _outcome(text, runner, "expect.retry_backoff"):
        assert status == "ok", (loop, observed)
        assert observed == "every retry waited its backoff"
    for loop, status, observed in _outcome(text, runner, "expect.work_conserving"):
        assert status == "ok", (loop, observed)


@pytest.mark.parametrize(
    ("mutant", "key", "shown"),
    [
        ("no_backoff", "retry_backoff", "1st retry after 0.1 s, before its backoff of 1 s"),
        ("uncapped_backoff", "retry_backoff", "2nd retry after 2 s, the device idle"),
        (
            "device_held_during_backoff",
            "work_conserving",
            "no op in flight from 0.4 s to 1.4 s while next_token_dist('c') on ft waited to be "
            "sent (concurrency 2, exclusive backend)",
        ),
    ],
)
def test_backoff_mutants_break_it_and_the_line_names_the_retry(
    mutant: str, key: str, shown: str
) -> None:
    text = RETRIES.replace("{wanted}", "true")
    for loop, status, observed in _outcome(text, MUTANTS[mutant].runner, f"expect.{key}"):
        assert status == "failed", (loop, observed)
        assert shown in observed, observed


def test_the_retries_are_numbered_in_a_row_per_request() -> None:
    scenario = parse_scenario(RETRIES.replace("{wanted}", "true"), source="<test>")
    (check,) = check_scenario(scenario, ["asyncio"])
    ledger = check.run.ledger
    assert ledger is not None
    doomed = [w for w in ledger.retry_waits if "doomed" in w.what]
    assert [w.attempt for w in doomed] == [0, 1, 2]
    for wait, backoff in zip(doomed, (1.0, 1.5, 1.5), strict=True):
        assert backoff <= wait.delay <= backoff * 1.25 + 0.1  # jitter, then one op's wait
    flaky = [w for w in ledger.retry_waits if "'a'" in w.what]
    assert [w.attempt for w in flaky] == [0]
    assert all(not w.entry for w in ledger.retry_waits)


def test_false_expects_a_breach() -> None:
    text = RETRIES.replace("{wanted}", "false")
    for loop, status, _ in _outcome(text, None, "expect.retry_backoff"):
        assert status == "failed", loop
    for loop, status, _ in _outcome(text, MUTANTS["no_backoff"].runner, "expect.retry_backoff"):
        assert status == "ok", loop


@pytest.mark.parametrize("runner", CORRECT)
def test_correct_runners_apply_op_timeout_per_attempt(runner: str | None) -> None:
    text = TIMEOUTS.replace("{wanted}", "true")
    for loop, status, observed in _outcome(text, runner, "expect.op_timeout_applied"):
        assert status == "ok", (loop, observed)


@pytest.mark.parametrize(
    ("mutant", "shown"),
    [
        ("one_timeout_around_retries", "before its op_timeout of 0.5 s"),
        ("timeout_includes_queueing", "before its op_timeout of 0.5 s"),
        ("no_timeout", "past op_timeout"),
    ],
)
def test_timeout_mutants_break_it_and_the_line_names_the_op(mutant: str, shown: str) -> None:
    text = TIMEOUTS.replace("{wanted}", "true")
    if mutant == "no_timeout":  # a hang nobody cuts stalls the run: slow ops show it instead
        text = text.replace('kind = "hang"', 'kind = "transient"\nnth = 99')
        text = text.replace("seconds = 0.2", "seconds = 0.8")
    for loop, status, observed in _outcome(
        text, MUTANTS[mutant].runner, "expect.op_timeout_applied"
    ):
        assert status == "failed", (loop, observed)
        assert shown in observed, observed


def test_without_op_timeout_there_is_nothing_to_apply() -> None:
    text = RETRIES.replace("retry_backoff = {wanted}", "op_timeout_applied = true")
    for loop, status, observed in _outcome(
        text, MUTANTS["no_timeout"].runner, "expect.op_timeout_applied"
    ):
        assert status == "ok", (loop, observed)


SAFE: Final = """
name = "safe"
[backend]
safe_for_concurrent_views = true
[backend.latency]
default = { model = "constant", seconds = 0.1 }
[runner]
concurrency = 4
[[probes]]
kind = "delta_kl"
name = "plain"
prompts = ["a", "b", "c", "d"]
[expect]
work_conserving = true
"""


async def _one_at_a_time(backend: object, probes: list[object], **options: object) -> object:
    """The reference runner told to keep one request in flight, whatever the scenario says."""
    return await run_suite(backend, probes, **{**options, "concurrency": 1})  # type: ignore[arg-type]


def test_a_concurrent_safe_backend_wants_concurrency_ops_in_flight() -> None:
    for loop, status, observed in _outcome(SAFE, None, "expect.work_conserving"):
        assert status == "ok", (loop, observed)
    for loop, status, observed in _outcome(SAFE, _one_at_a_time, "expect.work_conserving"):
        assert status == "failed", loop
        assert "1 op(s) in flight where 4 could be" in observed, observed
        assert "(concurrency 4, concurrent-safe backend)" in observed, observed
