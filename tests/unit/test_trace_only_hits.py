"""A backend that only traces serves cache hits in the view: the same run, the same trace.

With a sink and nothing else configured, a view serves an op's cache hit
itself (``OpPipeline.hit_tracer``) instead of awaiting the pipeline; a miss,
a batch, ``generate`` and every op of a backend with anything else
configured still go down the pipeline. Nothing a run returns, counts or
traces may tell the two apart: each check below runs once that way and once
with the view's lane switched off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import types
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    JsonlTraceWriter,
    LatencyPlan,
    MissingResponseError,
    TraceEvent,
    TraceRecorder,
    run,
)
from swaysim._backend.ledger import CallLedger
from swaysim._backend.tracing import _trio_current_task
from test_trace_fields import reference_line
from test_trace_op_lane import times

if TYPE_CHECKING:
    from pathlib import Path

    from swaysim._trace.events import TraceSink


async def mixed_run(backend: AsyncDummyDifferentialBackend) -> list[object]:
    """Hits and misses from four tasks, batches that share prompts, errors and cancellations."""
    results: list[object] = []

    async def worker(index: int) -> None:
        context = backend.as_base() if index % 2 else backend.as_finetuned()
        async with context as view:
            for prompt in ("q", "é ☃", f"p{index}", "q"):
                results.append(await view.next_token_dist(prompt, top_k=3))
                results.append(await view.logprob_of(prompt, " x"))
                results.append(await view.rolling_logprob(prompt))
            results.append(await view.next_token_dist_batch(["q", "r", f"p{index}"], top_k=3))
            results.append(await view.next_token_dist("r", top_k=3))  # a hit the batch stored
            with contextlib.suppress(MissingResponseError):
                await view.generate("never canned", max_new_tokens=2)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await view.logprob_of("q", " x")  # a hit, cancelled at its checkpoint

    async with anyio.create_task_group() as group:
        for index in range(4):
            group.start_soon(worker, index, name=f"w{index}")
    return results


def make_backend(sink: TraceSink, *, view_lane: bool) -> AsyncDummyDifferentialBackend:
    backend = AsyncDummyDifferentialBackend(
        ft=DummyResponses(logprobs={("q", " x"): -1.5}), trace=sink
    )
    pipeline = backend._pipeline
    assert pipeline.hit_tracer is not None  # tracing alone: the view's lane is on
    if not view_lane:
        pipeline.hit_tracer = None
    return backend


def without_task_ids(events: list[TraceEvent]) -> list[TraceEvent]:
    """Task labels end in ``#id(task)``, which differs between two runs: number them instead."""
    numbers: dict[str, int] = {}
    renamed = []
    for event in events:
        name, _, ident = event.task.rpartition("#")
        number = numbers.setdefault(ident, len(numbers))
        renamed.append(dataclasses.replace(event, task=f"{name}#{number}"))
    return renamed


TASK_ID = re.compile(r"#(\d+)\"")


def numbered_tasks(text: str) -> str:
    """Each ``#id(task)`` in a trace's text replaced by the task's number in order of appearance."""
    numbers: dict[str, str] = {}
    return TASK_ID.sub(lambda match: f'#{numbers.setdefault(match[1], str(len(numbers)))}"', text)


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "trio"])
"""Each variant in a run of its own: a fresh run replays trio's seeded schedule."""


@LOOPS
def test_the_view_lane_changes_nothing_a_run_returns_counts_or_traces(loop: str) -> None:
    outcomes = []
    for view_lane in (True, False):
        recorder = TraceRecorder()
        backend = make_backend(recorder, view_lane=view_lane)
        results = run(mixed_run, backend, backend=loop)
        outcomes.append((results, without_task_ids(list(recorder)), backend.statistics()))
    (results, events, statistics), (ref_results, ref_events, ref_statistics) = outcomes
    assert repr(results) == repr(ref_results)  # numpy arrays inside: compared as text
    assert events == ref_events
    assert statistics == ref_statistics
    ends = [event for event in events if event.kind == "op_end"]
    assert sum(event.hit is True for event in ends) > 20
    assert any(event.detail == {"error": "cancelled"} for event in ends)
    assert any(event.detail == {"error": "MissingResponseError"} for event in ends)


@LOOPS
def test_the_view_lane_writes_the_same_trace_file(loop: str, tmp_path: Path) -> None:
    texts = []
    for view_lane in (True, False):
        path = tmp_path / f"lane-{view_lane}.jsonl"
        with JsonlTraceWriter(path, flush_every=7) as writer:
            run(mixed_run, make_backend(writer, view_lane=view_lane), backend=loop)
        texts.append(numbered_tasks(path.read_text(encoding="utf-8")))
    assert texts[0] == texts[1]
    assert texts[0].count("\n") > 100


async def test_a_backend_with_anything_else_configured_has_no_view_lane() -> None:
    recorder = TraceRecorder()
    for extra in (
        {"latency": LatencyPlan(default=Constant(0.001))},
        {"faults": FaultPlan((FaultRule("transient", nth=99),))},
        {"schedule_jitter": 5},
    ):
        backend = AsyncDummyDifferentialBackend(trace=recorder, **extra)
        assert backend._pipeline.hit_tracer is None, extra
    assert AsyncDummyDifferentialBackend()._view_pipeline is None  # nothing: the plain fast path


async def test_a_scenario_ledger_turns_the_view_lane_off() -> None:
    backend = AsyncDummyDifferentialBackend(trace=TraceRecorder())
    backend._pipeline.observe(CallLedger())
    assert backend._pipeline.hit_tracer is None
    async with backend.as_base() as view:
        await view.logprob_of("p", "c")
        await view.logprob_of("p", "c")
    assert len(backend._pipeline._ledger.calls) == 2  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    time=times,
    duration=times,
    task=st.text(max_size=8),
    prompt_hash=st.text(max_size=8),
    hit=st.booleans(),
    call=st.integers(min_value=0),
)
def test_the_writer_lane_spells_kept_texts_as_the_standard_encoder_does(
    tmp_path_factory: pytest.TempPathFactory,
    time: float,
    duration: float,
    task: str,
    prompt_hash: str,
    hit: bool,
    call: int,
) -> None:
    """Twice: the second time the time, duration and shared texts are kept, spelled inline."""
    path = tmp_path_factory.mktemp("lane") / "trace.jsonl"
    with JsonlTraceWriter(path) as writer:
        for _ in range(2):
            shared = writer.emit_op_start(time, task, "base", "logprob_of", prompt_hash)
            writer.emit_op_end(
                time, task, "base", "logprob_of", prompt_hash, hit, duration, call, shared
            )
    start = TraceEvent("op_start", time, task, "base", "logprob_of", prompt_hash)
    end = TraceEvent(
        "op_end", time, task, "base", "logprob_of", prompt_hash, hit, duration, {"call": call}
    )
    expected = [reference_line(start), reference_line(end)] * 2
    assert path.read_text(encoding="utf-8").splitlines() == expected


def test_the_trio_task_shortcut_reads_what_current_task_reads() -> None:
    async def main() -> None:
        read = _trio_current_task(trio)
        assert read() is trio.lowlevel.current_task()

        async def child(into: list[Any]) -> None:
            into.append((read(), trio.lowlevel.current_task()))

        seen: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, seen)
        assert seen[0][0] is seen[0][1] is not trio.lowlevel.current_task()

    trio.run(main)


def test_a_trio_without_the_run_context_is_asked_through_its_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "trio._core._run", types.ModuleType("trio._core._run"))

    async def main() -> None:
        assert _trio_current_task(trio) is trio.lowlevel.current_task

    trio.run(main)


@LOOPS
def test_one_traced_backend_serves_hits_on_either_loop(loop: str) -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(trace=recorder)

    async def ops() -> float:
        async with backend.as_base() as view:
            await view.logprob_of("p", "c")
            return await view.logprob_of("p", "c")

    first = run(ops, backend="asyncio")
    assert run(ops, backend=loop) == first
    hits = [event.hit for event in recorder.of_kind("op_end")]
    assert hits == [False, True, True, True]
