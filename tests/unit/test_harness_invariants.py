"""The invariants every run checks the moment the runner returns, each on both loops.

Each buggy runner here breaks one invariant on purpose (a view left live, a task left
running, an op after returning...); the harness must name it, and a correct runner must
break none. Detached tasks are what a runner leaks on each loop: ``loop.create_task`` on
asyncio, a system task on trio.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import sniffio

from swaysim import InjectedFatalError, ProbeResult, Verdict, run_suite
from swaysim._scenario.harness import GRACE_SECONDS, INVARIANTS
from swaysim.scenario import check_scenario, parse_scenario, run_scenario

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from swaysim import Probe
    from swaysim.scenario import Scenario

LOOPS = ("asyncio", "trio")

SCENARIO = """\
description = "q?"
seed = 3
[backend.latency]
default = { model = "constant", seconds = 0.5 }
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["p1"]
[expect]
verdicts = { dkl = "PASS" }
"""


def scenario(text: str = SCENARIO) -> Scenario:
    return parse_scenario(text, source="s.toml")


def spawn_detached(func: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start ``func()`` outside every task group, as a runner that leaks a task does."""
    if sniffio.current_async_library() == "trio":
        import trio

        trio.lowlevel.spawn_system_task(func)
    else:
        asyncio.get_running_loop().create_task(func())


def passes(probes: Sequence[Probe]) -> list[ProbeResult]:
    return [ProbeResult(p.name, p.kind, Verdict.PASS) for p in probes]


def broken(loop: str, runner: Callable[..., Any], text: str = SCENARIO) -> dict[str, str]:
    """Invariant name -> what was observed, for ``runner`` on ``loop``."""
    run = run_scenario(scenario(text), loop, runner=runner)
    return {v.name: v.observed for v in run.violations}


@pytest.mark.parametrize("loop", LOOPS)
def test_a_correct_runner_breaks_no_invariant(loop: str) -> None:
    assert broken(loop, run_suite) == {}
    (check,) = check_scenario(scenario(), (loop,), runner=run_suite)
    assert check.ok, check.failure_report()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_view_left_live_is_named_with_its_holder(loop: str) -> None:
    async def keeps_the_view(backend: Any, probes: Sequence[Probe], **_: Any) -> object:
        await backend.as_finetuned().__aenter__()  # never exited
        return passes(probes)

    found = broken(loop, keeps_the_view)
    assert set(found) == {"view_live"}
    assert found["view_live"].startswith("'ft' held by 'runner ")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_still_waiting_at_the_gate(loop: str) -> None:
    async def queues_an_entry(backend: Any, probes: Sequence[Probe], **_: Any) -> object:
        await backend.as_finetuned().__aenter__()

        async def enter_base() -> None:
            async with backend.as_base():
                pass

        spawn_detached(enter_base)
        await anyio.sleep(0.1)  # the detached task is now queued behind ft
        return passes(probes)

    found = broken(loop, queues_an_entry)
    assert {"view_live", "gate_waiter", "leaked_task"} <= set(found)
    assert found["gate_waiter"] == "1 task(s) waiting to enter"


@pytest.mark.parametrize("loop", LOOPS)
def test_an_op_still_in_flight(loop: str) -> None:
    async def fire_and_forget(backend: Any, probes: Sequence[Probe], **_: Any) -> object:
        async def ask() -> None:
            async with backend.as_finetuned() as ft:
                await ft.next_token_dist("late answer")

        spawn_detached(ask)
        await anyio.sleep(0.1)  # entered ft (no switch cost) and sent the op: 0.5 s to go
        return passes(probes)

    found = broken(loop, fire_and_forget)
    assert {"op_in_flight", "view_live", "leaked_task"} <= set(found)
    assert found["op_in_flight"].startswith("1: next_token_dist('late answer') on ft")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_leaked_task_is_named_and_nothing_else_is_blamed(loop: str) -> None:
    async def reporter() -> None:
        await anyio.sleep(3600)

    async def leaks(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
        spawn_detached(reporter)
        return await run_suite(backend, probes, **options)

    found = broken(loop, leaks)
    assert set(found) == {"leaked_task"}
    assert "reporter" in found["leaked_task"]


@pytest.mark.parametrize("loop", LOOPS)
def test_an_op_after_the_runner_returned_is_late(loop: str) -> None:
    async def prefetch(backend: Any) -> None:
        await anyio.sleep(GRACE_SECONDS / 2)
        async with backend.as_base() as base:
            await base.next_token_dist("prefetched")

    async def prefetches(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
        spawn_detached(lambda: prefetch(backend))
        return await run_suite(backend, probes, **options)

    found = broken(loop, prefetches)
    assert set(found) == {"leaked_task", "late_op"}
    assert "an entry of view 'base'" in found["late_op"]
    assert "next_token_dist('prefetched') on base" in found["late_op"]


@pytest.mark.parametrize("loop", LOOPS)
def test_an_op_late_beyond_the_grace_period_is_not_seen(loop: str) -> None:
    async def much_later(backend: Any) -> None:
        await anyio.sleep(GRACE_SECONDS * 2)
        async with backend.as_base() as base:
            await base.next_token_dist("too late to see")

    async def leaks(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
        spawn_detached(lambda: much_later(backend))
        return await run_suite(backend, probes, **options)

    assert set(broken(loop, leaks)) == {"leaked_task"}


CANCELLED = SCENARIO.replace("[[probes]]", "[runner]\ncancel_after = 0.75\n[[probes]]", 1)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_swallowed_cancellation(loop: str) -> None:
    async def swallows(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
        try:
            return await run_suite(backend, probes, **options)
        except anyio.get_cancelled_exc_class():
            return []  # "an interrupted run still reports what it has"

    found = broken(loop, swallows, CANCELLED)
    assert found == {"swallowed_cancel": "cancelled at 0.75 s, it returned normally"}
    (check,) = check_scenario(scenario(CANCELLED), (loop,), runner=swallows)
    assert next(o.key for o in check.failures) == "invariant.swallowed_cancel"


@pytest.mark.parametrize("loop", LOOPS)
def test_a_cancellation_turned_into_another_error(loop: str) -> None:
    async def converts(backend: Any, probes: Sequence[Probe], **options: Any) -> object:
        try:
            return await run_suite(backend, probes, **options)
        except anyio.get_cancelled_exc_class():
            raise RuntimeError("interrupted") from None

    found = broken(loop, converts, CANCELLED)
    assert found == {"swallowed_cancel": "cancelled at 0.75 s, it raised RuntimeError: interrupted"}


@pytest.mark.parametrize("loop", LOOPS)
def test_a_propagated_cancellation_is_fine(loop: str) -> None:
    run = run_scenario(scenario(CANCELLED), loop, runner=run_suite)
    assert run.cancelled
    assert run.violations == ()


FAULTY = SCENARIO.replace(
    "[expect]",
    '[[backend.faults.rules]]\nkind = "fatal"\nviews = ["ft"]\nprompt = "p1"\n[expect]',
)


def _raising(wrap: Callable[[Exception], BaseException]) -> Callable[..., Any]:
    async def crashes(backend: Any, probes: Sequence[Probe], **_: Any) -> object:
        async with backend.as_finetuned() as ft:
            try:
                await ft.next_token_dist("p1")
            except InjectedFatalError as exc:
                raise wrap(exc) from None
        return passes(probes)

    return crashes


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    "wrap",
    [
        lambda exc: exc,
        lambda exc: ExceptionGroup("workers failed", [ValueError("other"), exc]),
        lambda exc: _caused(RuntimeError("request failed"), exc),
    ],
    ids=["itself", "in-a-group", "as-the-cause"],
)
def test_an_injected_fault_escaping_is_a_fault_crash(
    loop: str, wrap: Callable[[Exception], BaseException]
) -> None:
    found = broken(loop, _raising(wrap), FAULTY)
    assert set(found) == {"fault_crash"}
    assert found["fault_crash"].startswith("it raised InjectedFatalError: injected fatal fault")
    (check,) = check_scenario(scenario(FAULTY), (loop,), runner=_raising(wrap))
    # The crash is named once, as a fault crash, not also as a runner that did not complete.
    assert [o.key for o in check.failures][:1] == ["invariant.fault_crash"]
    assert "runner" not in [o.key for o in check.failures]


def _caused(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


def test_every_invariant_says_what_it_expects() -> None:
    assert set(INVARIANTS) == {
        "view_live",
        "gate_waiter",
        "op_in_flight",
        "leaked_task",
        "late_op",
        "swallowed_cancel",
        "fault_crash",
    }
    assert all(text and text[0].islower() for text in INVARIANTS.values())
