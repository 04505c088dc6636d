"""Tracing through ``emit_fields``: the same events, the same bytes, as through ``emit``.

A backend hands its events to a sink with ``emit_fields`` as nine positional
fields and builds no :class:`TraceEvent`; the JSONL writer keeps the fields and
encodes them in batches. None of that may change what a trace says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import sniffio
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import swaysim._trace.encode as encode_module
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InjectedTransientError,
    JsonlTraceWriter,
    LatencyPlan,
    TraceEvent,
    TraceRecorder,
)
from swaysim._trace.encode import (
    encode_event,
    encode_fields,
    event_fields,
    event_record,
    finite_or_name,
)

if TYPE_CHECKING:
    from pathlib import Path


def reference_line(event: TraceEvent) -> str:
    """The line as the plain standard-library encoder writes the documented record."""
    return json.dumps(finite_or_name(event_record(event)), separators=(",", ":"), allow_nan=False)


class EmitOnly:
    """A sink of one's own: ``emit`` only, so the backend builds every TraceEvent for it."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        self.events.append(event)


class Both:
    """Several sinks at once, each told every event the way it asks for."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def emit_fields(self, *fields: Any) -> None:
        for sink in self.sinks:
            emit_fields = getattr(sink, "emit_fields", None)
            if emit_fields is not None:
                emit_fields(*fields)
            else:
                sink.emit(TraceEvent(*fields))

    def emit(self, event: TraceEvent) -> None:  # pragma: no cover - the backend calls emit_fields
        raise AssertionError("a sink with emit_fields is not sent TraceEvents by the backend")


async def busy_run(sink: Any) -> None:
    """Waits, switches, misses, hits, a batch, a fault, a cancelled op and odd prompt text."""
    ft = DummyResponses(logprobs={("é ☃", " x"): -1.5})
    backend = AsyncDummyDifferentialBackend(
        ft=ft,
        latency=LatencyPlan(default=Constant(0.00001), view_switch=Constant(0.25)),
        faults=FaultPlan((FaultRule("transient", name="once", ops=("logprob_of",), nth=2),)),
        trace=sink,
    )

    async def worker(view_kind: str, index: int) -> None:
        context = backend.as_base() if view_kind == "base" else backend.as_finetuned()
        async with context as view:
            for prompt in ("q", "é ☃", "q\x7f", f"p{index}"):
                await view.next_token_dist(prompt, top_k=4)
                with contextlib.suppress(InjectedTransientError):
                    await view.logprob_of(prompt, " x")
            await view.next_token_dist_batch(["q", "r", f"p{index}"], top_k=4)
            with anyio.move_on_after(0.0):
                await view.next_token_dist(f"slow {index}", top_k=4)

    async with anyio.create_task_group() as group:
        for index in range(4):
            group.start_soon(worker, "base" if index % 2 else "ft", index, name=f"w{index}")


async def test_the_writer_writes_what_encode_event_writes_for_each_event(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    reference = EmitOnly()
    recorder = TraceRecorder()
    with JsonlTraceWriter(path, flush_every=7) as writer:
        await busy_run(Both(writer, reference, recorder))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 100
    assert lines == [reference_line(event) for event in reference.events]
    assert list(recorder) == reference.events
    kinds = {event.kind for event in reference.events}
    assert {"prompt", "view_wait", "fault", "latency", "op_start", "op_end"} <= kinds
    assert '"duration":1e-05' in path.read_text(encoding="utf-8")  # repr's exponent form
    assert "\\u00e9 \\u2603" in path.read_text(encoding="utf-8")  # ASCII-only, as json writes


async def test_a_renamed_task_is_traced_under_its_new_name() -> None:
    """Task names are formatted once per task, yet a rename shows in the next event."""
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(trace=recorder)

    async def worker() -> None:
        async with backend.as_base() as view:
            await view.logprob_of("a", "b")
            rename_current_task("renamed")
            await view.logprob_of("a", "b")

    async with anyio.create_task_group() as group:
        group.start_soon(worker, name="original")
    names = [event.task.rpartition("#")[0] for event in recorder.of_kind("op_start", "op_end")]
    assert names == ["original", "original", "renamed", "renamed"]


def rename_current_task(name: str) -> None:
    if sniffio.current_async_library() == "asyncio":
        task = asyncio.current_task()
        assert task is not None
        task.set_name(name)
    else:
        trio.lowlevel.current_task().name = name


texts = st.text(max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
odd_floats = st.sampled_from([0.0, -0.0, 1e-05, 1e16, 1e-300, math.inf, -math.inf, math.nan])
details = st.dictionaries(
    texts,
    st.one_of(st.integers(), finite, odd_floats, texts, st.booleans(), st.none()),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=texts,
    time=finite | odd_floats,
    task=texts,
    view=st.none() | texts,
    op=st.none() | texts,
    prompt_hash=st.none() | texts,
    hit=st.none() | st.booleans(),
    duration=st.none() | finite | odd_floats,
    detail=st.none() | details,
)
def test_encode_fields_writes_what_the_standard_encoder_writes(**fields: Any) -> None:
    event = TraceEvent(**fields)
    assert encode_fields(*event_fields(event)) == reference_line(event)
    # Again, now that whatever recurs is kept: a kept text must be the same text.
    assert encode_fields(*event_fields(event)) == reference_line(event)
    assert encode_event(event) == reference_line(event)


@pytest.mark.parametrize(("first", "second"), [(0.0, -0.0), (-0.0, 0.0)])
def test_zero_and_negative_zero_are_kept_apart(first: float, second: float) -> None:
    for _ in range(2):  # the second time, what was kept is looked up
        line = encode_fields("x", first, "t#1", duration=second, detail={"z": first, "y": 1})
        assert f'"time":{first!r},' in line
        assert f'"duration":{second!r},' in line
        assert line.endswith(f'"detail":{{"z":{first!r},"y":1}}}}')


def test_the_text_caches_start_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encode_module, "_CACHE_CAP", 8)
    for kept in (encode_module._QUOTED, encode_module._FLOAT_TEXT, encode_module._SHAPES):
        kept.clear()  # what earlier tests left; the lookups are bound to these very dicts
    for index in range(100):
        event = TraceEvent(f"k{index}", 1.0 + index, "t#1", detail={f"d{index}": 0.5 + index})
        assert encode_fields(*event_fields(event)) == reference_line(event)
        assert len(encode_module._QUOTED) <= 8
        assert len(encode_module._FLOAT_TEXT) <= 8
        assert len(encode_module._SHAPES) <= 8


def test_long_strings_are_quoted_every_time_not_kept() -> None:
    long_task = "t" * 5000
    before = len(encode_module._QUOTED)
    event = TraceEvent("op_start", 1.0, long_task)
    assert encode_fields(*event_fields(event)) == reference_line(event)
    assert long_task not in encode_module._QUOTED
    assert len(encode_module._QUOTED) <= before + 1


def test_an_event_that_cannot_be_encoded_raises_where_it_is_emitted(tmp_path: Path) -> None:
    """As ``emit`` does: the line is encoded on the spot, and the writer goes on."""
    path = tmp_path / "t.jsonl"
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with JsonlTraceWriter(path) as writer:
        writer.emit_fields("probe_start", 0.0, "t#1", detail={"probe": "a"})
        with pytest.raises((ValueError, RecursionError)):
            writer.emit_fields("probe_start", 0.5, "t#1", detail=cyclic)
        writer.emit(TraceEvent("probe_end", 1.0, "t#1", detail={"probe": "a"}))
    assert writer.events_written == 2
    assert writer.complete
    times = [line.split('"time":')[1].split(",")[0] for line in path.read_text().splitlines()]
    assert times == ["0.0", "1.0"]


def test_events_from_emit_and_emit_fields_keep_their_order_and_the_buffer_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.jsonl"
    writer = JsonlTraceWriter(path, flush_every=3)
    on_disk = []
    for index in range(7):
        if index % 2:
            writer.emit(TraceEvent("op_start", float(index), "t#1"))
        else:
            writer.emit_fields("op_start", float(index), "t#1")
        on_disk.append(len(path.read_text(encoding="utf-8").splitlines()))
    assert on_disk == [0, 0, 3, 3, 3, 6, 6]
    writer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [reference_line(TraceEvent("op_start", float(i), "t#1")) for i in range(7)]
