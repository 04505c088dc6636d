"""What a backend observes of any runner: retries, timeouts, duplicates, attribution, corruption.

A :class:`CallLedger` attached to a backend counts what the backend saw, whatever the
runner reports; these tests drive the backend by hand on both loops and check each count
against what the calls plainly did.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import swaysim
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    FaultPlan,
    FaultRule,
    InjectedTransientError,
    InjectedViewEnterError,
    LatencyPlan,
)
from swaysim._backend.ledger import CallLedger, describe_key
from swaysim._trace.encode import event_fields
from swaysim.errors import InvalidArgumentError


def observed(backend: AsyncDummyDifferentialBackend) -> CallLedger:
    ledger = CallLedger()
    backend._observe(ledger)
    return ledger


@pytest.fixture
def ledger_and_backend() -> tuple[CallLedger, AsyncDummyDifferentialBackend]:
    backend = AsyncDummyDifferentialBackend(
        latency=LatencyPlan(default=Constant(0.1)),
        faults=FaultPlan(
            (
                FaultRule("transient", name="once", prompt="flaky", nth=1),
                FaultRule("nan", name="nan", prompt="nan*"),
            )
        ),
    )
    return observed(backend), backend


async def test_a_call_after_a_failed_one_is_a_retry(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend
    async with backend.as_finetuned() as ft:
        with pytest.raises(InjectedTransientError):
            await ft.next_token_dist("flaky")
        await ft.next_token_dist("flaky")  # the retry succeeds
        await ft.next_token_dist("flaky", top_k=8)  # another request: not a retry
    assert ledger.retries.count == 1
    assert ledger.retries.examples == ["next_token_dist('flaky') on ft"]
    assert [call.outcome for call in ledger.calls] == ["failed", "ok", "ok"]
    assert ledger.duplicates.count == 0


async def test_equal_requests_twice_in_one_entry_are_a_duplicate_but_not_across_entries(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend
    async with backend.as_base() as base:
        await base.logprob_of("p", " c")
        await base.logprob_of("p", " c")  # a cache hit: still sent again
        await base.logprob_of("p", " other")
    async with backend.as_base() as base:
        await base.logprob_of("p", " c")  # a new entry
    assert ledger.duplicates.count == 1
    assert ledger.duplicates.examples == ["logprob_of('p', ' c') on base sent again in one entry"]


@pytest.mark.parametrize("harness", [False, True], ids=["own-timeout", "harness-cancel"])
async def test_an_abandoned_op_is_a_timeout_unless_the_harness_cancelled_it(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend], harness: bool
) -> None:
    ledger, backend = ledger_and_backend
    ledger.harness_cancelling = lambda: harness
    async with backend.as_finetuned() as ft:
        with anyio.move_on_after(0.05):
            await ft.next_token_dist("slow")
        await ft.next_token_dist("slow")  # sent again after being cut off: a retry
    assert (ledger.timeouts.count, ledger.cancelled_ops.count) == ((0, 1) if harness else (1, 0))
    assert ledger.retries.count == 1
    counted = ledger.cancelled_ops if harness else ledger.timeouts
    assert counted.describe().startswith("1 (next_token_dist('slow') on ft (task ")


async def test_in_flight_and_late_calls(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend
    seen: list[int] = []
    async with backend.as_finetuned() as ft, anyio.create_task_group() as group:

        async def ask() -> None:
            await ft.next_token_dist("q")

        group.start_soon(ask)
        await anyio.sleep(0.05)
        seen.append(len(ledger.in_flight))
    assert seen == [1]
    assert not ledger.in_flight
    ledger.returned = True
    async with backend.as_base() as base:
        await base.next_token_dist("after")
    assert ledger.late.count == 2  # the entry and the op
    assert ledger.late.examples[0].startswith("an entry of view 'base'")


async def test_the_peak_of_calls_in_flight_counts_calls_waiting_for_the_device(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend  # exclusive: one op served at a time
    async with backend.as_finetuned() as ft, anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(ft.next_token_dist, f"q{index}")
    assert ledger.peak_in_flight == 5
    async with backend.as_base() as base:
        for index in range(3):
            await base.next_token_dist(f"q{index}")
    assert ledger.peak_in_flight == 5  # a peak, not the last count


async def test_each_retry_records_the_loop_seconds_since_its_failure(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend
    async with backend.as_finetuned() as ft:
        with pytest.raises(InjectedTransientError):
            await ft.next_token_dist("flaky")  # fails after 0.1 s of service
        await anyio.sleep(0.25)  # the backoff
        await ft.next_token_dist("flaky")
        await ft.next_token_dist("other")  # not a retry: no delay recorded
    assert [(round(delay, 9), what) for delay, what in ledger.retry_delays] == [
        (0.25, "next_token_dist('flaky') on ft")
    ]


async def test_an_entry_after_an_injected_enter_failure_is_a_retry() -> None:
    backend = AsyncDummyDifferentialBackend(
        faults=FaultPlan((FaultRule("enter_error", views=("ft",), nth=1),))
    )
    ledger = observed(backend)
    with pytest.raises(InjectedViewEnterError):
        async with backend.as_finetuned():
            pass
    async with backend.as_finetuned():
        pass
    async with backend.as_finetuned():
        pass
    assert ledger.retries.count == 1
    assert ledger.retries.examples == ["entry of view 'ft' after an injected enter failure"]
    assert ledger.retry_delays == [(0.0, "entry of view 'ft'")]


async def test_corrupted_answers_are_recorded_per_request_and_per_batch_item(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend
    async with backend.as_finetuned() as ft:
        await ft.logprob_of("nan 1", " c")
        await ft.next_token_dist_batch(["ok", "nan 2"], top_k=8)
    single, batch = ledger.calls
    assert single.answer_keys() == [(("ft", "logprob_of", "nan 1\x00 c", 0), "nan")]
    assert batch.answer_keys() == [
        (("ft", "next_token_dist", "ok", 8), None),
        (("ft", "next_token_dist", "nan 2", 8), "nan"),
    ]
    assert describe_key(batch.key) == "next_token_dist_batch(2 prompts) on ft"


async def test_calls_carry_the_attribution_of_the_code_that_makes_them(
    ledger_and_backend: tuple[CallLedger, AsyncDummyDifferentialBackend],
) -> None:
    ledger, backend = ledger_and_backend
    async with backend.as_finetuned() as ft:
        with swaysim.attribute("dkl", "ppl"):
            await ft.next_token_dist("shared")
            async with anyio.create_task_group() as group:
                group.start_soon(ft.next_token_dist, "child task")
        await ft.next_token_dist("nobody's")
    assert [call.attribution for call in ledger.calls] == [("dkl", "ppl"), ("dkl", "ppl"), ()]


async def test_attribution_crosses_the_blocking_bridge() -> None:
    backend = AsyncDummyDifferentialBackend()
    ledger = observed(backend)

    def probe(sync_backend: swaysim.BlockingBackend, name: str) -> None:
        with swaysim.attribute(name), sync_backend.as_finetuned() as ft:
            ft.next_token_dist("from a thread")

    await swaysim.run_sync_probe(backend, probe, "sync-probe")
    assert [call.attribution for call in ledger.calls] == [("sync-probe",)]


def test_attribution_names_must_be_probe_names() -> None:
    with pytest.raises(InvalidArgumentError, match=r"probe_names\[1\]=''"):
        swaysim.attribute("dkl", "").__enter__()


def observed_or_not_backend(configured: bool, sink: swaysim.TraceRecorder | None) -> Any:
    if not configured:
        return AsyncDummyDifferentialBackend(trace=sink)
    return AsyncDummyDifferentialBackend(
        latency=LatencyPlan(default=Constant(0.01), view_switch=Constant(0.1)),
        faults=FaultPlan((FaultRule("nan", name="nan", prompt="nan*"),)),
        trace=sink,
    )


async def ledger_workload(backend: AsyncDummyDifferentialBackend) -> list[object]:
    """Entries on two views one after another, hits and misses, a batch, a corrupted answer.

    One after another: trio runs tasks started together in a random order.
    """
    answers: list[object] = []
    for index in range(4):
        context = backend.as_base() if index % 2 else backend.as_finetuned()
        async with context as view:
            for prompt in ("q", f"p{index}", "q", "nan 1"):
                answers.append((index, prompt, await view.next_token_dist(prompt, top_k=3)))
                answers.append((index, prompt, await view.logprob_of(prompt, " x")))
            answers.append((index, await view.next_token_dist_batch(["q", "r"], top_k=3)))
            answers.append((index, await view.rolling_logprob(f"text {index}")))
    return answers


async def one_run(configured: bool, traced: bool, observe: bool) -> tuple[str, object, str]:
    """The workload's answers, statistics and trace events (task ids left out), as reprs.

    Reprs: a corrupted answer holds NaN, which equals nothing, itself included.
    """
    recorder = swaysim.TraceRecorder() if traced else None
    backend = observed_or_not_backend(configured, recorder)
    ledger = observed(backend) if observe else None
    answers = await ledger_workload(backend)
    events = [
        (event.kind, event.time, event.task.split("#")[0], *event_fields(event)[3:])
        for event in (recorder or ())
    ]
    if ledger is not None:
        assert len(ledger.calls) == 4 * 10
    else:  # the plain backend's fast path: no op pipeline at all
        assert (backend._view_pipeline is None) == (not configured and not traced)
    return repr(answers), backend.statistics(), repr(events)


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
@pytest.mark.parametrize("configured", [False, True], ids=["plain", "latency-faults"])
@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_an_observed_backend_answers_counts_and_traces_as_an_unobserved_one(
    loop: str, configured: bool, traced: bool
) -> None:
    """A ledger sends even a plain backend down the op pipeline: nothing else may change.

    Each run in a loop of its own, so both traces start at time zero.
    """
    unobserved = swaysim.run(one_run, configured, traced, False, backend=loop)
    observed_run = swaysim.run(one_run, configured, traced, True, backend=loop)
    assert observed_run == unobserved
