"""The trace line encoder's fast path writes exactly what the general JSON encoder writes."""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from swaysim import AsyncDummyDifferentialBackend, TraceEvent, TraceRecorder
from swaysim._trace.encode import encode_event, event_record, finite_or_name
from swaysim._trace.read import decode_event

texts = st.text(max_size=12)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
)
details = st.dictionaries(
    texts,
    st.one_of(st.integers(), st.floats(allow_nan=True), texts, st.booleans(), st.none()),
    max_size=4,
)
events = st.builds(
    TraceEvent,
    kind=texts,
    time=st.floats(allow_nan=False, allow_infinity=False) | st.integers(0, 10**6),
    task=texts,
    view=st.none() | texts,
    op=st.none() | texts,
    prompt_hash=st.none() | texts,
    hit=st.none() | st.booleans(),
    duration=st.none() | numbers,
    detail=st.none() | details,
)


def reference_line(event: TraceEvent) -> str:
    """The line as the plain standard-library encoder writes the documented record."""
    record = finite_or_name(event_record(event))
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(events)
def test_encode_event_matches_the_standard_encoder(event: TraceEvent) -> None:
    assert encode_event(event) == reference_line(event)


def test_common_backend_event_round_trips() -> None:
    event = TraceEvent(
        "op_end", 1.25, "probe-3#140", "base", "logprob_of", "0123456789ab", True, 0.5, {"call": 2}
    )
    line = encode_event(event)
    assert line == reference_line(event)
    assert decode_event(line) == event


def test_non_finite_values_take_the_general_path() -> None:
    event = TraceEvent("latency", 0.0, "t#1", duration=math.inf, detail={"x": math.nan})
    record: dict[str, Any] = json.loads(encode_event(event))
    assert record["duration"] == "inf"
    assert record["detail"] == {"x": "nan"}


async def test_task_names_are_anyio_task_names() -> None:
    """Each backend event names its task as anyio's TaskInfo does: ``name#id``."""
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(trace=recorder)
    seen: dict[str, str] = {}

    async def worker(label: str) -> None:
        task = anyio.get_current_task()
        seen[label] = f"{task.name}#{task.id}"
        async with backend.as_base() as view:
            await view.logprob_of(label, " x")

    async with anyio.create_task_group() as group:
        for label in ("first", "second"):
            group.start_soon(worker, label, name=f"worker-{label}")
    by_task = {event.task for event in recorder if event.kind == "op_start"}
    assert by_task == set(seen.values())
    assert all(name.startswith("worker-") for name in by_task)
