"""An op's two events through the JSONL writer's own lane: the same bytes as the general path.

A backend tracing into a :class:`JsonlTraceWriter` hands it ``op_start`` and
``op_end`` through ``emit_op_start``/``emit_op_end`` (the fields the two share
encoded once); every other sink, and every other event, goes through
``emit_fields``. The trace must not tell the two apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import swaysim._trace.encode as encode_module
from swaysim import AsyncDummyDifferentialBackend, JsonlTraceWriter, TraceEvent
from swaysim._backend.tracing import _trio_time
from swaysim._trace.encode import encode_op_end, encode_op_start, op_text
from swaysim.errors import SwaysimError
from test_trace_fields import busy_run, reference_line

if TYPE_CHECKING:
    from pathlib import Path

texts = st.text(max_size=12)
times = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1e-05, 1e16, 1e-300, float("inf"), float("-inf"), float("nan")]
)


@settings(max_examples=300, deadline=None)
@given(
    time=times,
    duration=times,
    task=texts,
    view=texts,
    op=texts,
    prompt_hash=texts,
    hit=st.booleans(),
    call=st.integers(min_value=0),
)
def test_the_op_lines_are_what_the_standard_encoder_writes(
    time: float,
    duration: float,
    task: str,
    view: str,
    op: str,
    prompt_hash: str,
    hit: bool,
    call: int,
) -> None:
    for _ in range(2):  # the second time, what was kept is looked up
        shared = op_text(task, view, op, prompt_hash)
        start = TraceEvent("op_start", time, task, view, op, prompt_hash)
        end = TraceEvent("op_end", time, task, view, op, prompt_hash, hit, duration, {"call": call})
        # None: left to the general path (a number JSON cannot write as it is).
        assert encode_op_start(time, shared) in (reference_line(start), None)
        assert encode_op_end(time, shared, hit, duration, call) in (reference_line(end), None)
    assert encode_op_start(0.5, op_text(task, view, op, prompt_hash)) is not None


def test_an_op_line_with_a_time_that_is_not_a_float_is_left_to_the_general_path() -> None:
    shared = op_text("t#1", "base", "logprob_of", "abc")
    assert encode_op_start(1, shared) is None
    assert encode_op_end(1.0, shared, True, 0, 3) is None


def test_the_shared_op_texts_start_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encode_module, "_CACHE_CAP", 8)
    encode_module._OP_TEXTS.clear()  # the lookup is bound to this very dict
    for index in range(100):
        shared = op_text(f"t#{index}", "base", "logprob_of", f"h{index}")
        assert shared.startswith(f',"task":"t#{index}"')
        assert len(encode_module._OP_TEXTS) <= 8


class TeeingWriter(JsonlTraceWriter):
    """The writer, its op lane also recorded as the events it stands for."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, flush_every=5)
        self.op_events: list[TraceEvent] = []

    def emit_op_start(self, time: float, task: str, view: str, op: str, prompt_hash: str) -> str:
        self.op_events.append(TraceEvent("op_start", time, task, view, op, prompt_hash))
        return super().emit_op_start(time, task, view, op, prompt_hash)

    def emit_op_end(self, *fields: Any) -> None:
        time, task, view, op, prompt_hash, hit, duration, call, _ = fields
        detail = {"call": call}
        self.op_events.append(
            TraceEvent("op_end", time, task, view, op, prompt_hash, hit, duration, detail)
        )
        super().emit_op_end(*fields)


async def test_the_writer_lane_writes_what_encode_event_writes(tmp_path: Path) -> None:
    """Hits, misses, a fault, a cancelled op: the lane's lines are the general path's."""
    path = tmp_path / "trace.jsonl"
    writer = TeeingWriter(path)
    with writer:
        await busy_run(writer)
    lines = path.read_text(encoding="utf-8").splitlines()
    single_ops = [
        line
        for line in lines
        if ('"kind":"op_start"' in line or '"kind":"op_end"' in line)
        and '"op":"next_token_dist_batch"' not in line
    ]
    returned = [line for line in single_ops if '"error"' not in line]
    assert len(returned) == len(writer.op_events) > 50
    assert returned == [reference_line(event) for event in writer.op_events]
    assert any(event.hit for event in writer.op_events)
    assert any('"error":"cancelled"' in line for line in single_ops)
    assert any('"error":"InjectedTransientError"' in line for line in single_ops)


async def test_an_op_traced_into_a_closed_writer_is_a_trace_error_not_an_op_error(
    tmp_path: Path,
) -> None:
    writer = JsonlTraceWriter(tmp_path / "trace.jsonl")
    backend = AsyncDummyDifferentialBackend(trace=writer)
    async with backend.as_base() as view:
        first = await view.logprob_of("p", "c")
        writer.close()
        assert await view.logprob_of("p", "c") == first
        assert await view.logprob_of("q", "c") == await view.logprob_of("q", "c")
    assert isinstance(backend.trace_error, SwaysimError)
    assert "closed" in str(backend.trace_error)


async def test_a_cancelled_cache_hit_ends_its_op_with_the_error(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    with JsonlTraceWriter(path) as writer:
        backend = AsyncDummyDifferentialBackend(trace=writer)
        async with backend.as_base() as view:
            await view.logprob_of("p", "c")
            await view.logprob_of("p", "c")
            with anyio.CancelScope() as scope:
                scope.cancel()
                await view.logprob_of("p", "c")
    ends = [line for line in path.read_text(encoding="utf-8").splitlines() if "op_end" in line]
    assert len(ends) == 3  # a miss, a hit, the cancelled hit
    assert ends[1].endswith('"hit":true,"duration":0.0,"detail":{"call":2}}')
    assert ends[2].endswith('","duration":0.0,"detail":{"error":"cancelled"}}')


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_the_mock_clock_shortcut_reads_what_current_time_reads(rate: float) -> None:
    clock = trio.testing.MockClock(rate=rate)
    clock.jump(2.5)
    read = _trio_time(clock)
    if rate == 0.0:
        assert read() == clock.current_time() == 2.5
    else:
        before = clock.current_time()
        assert before <= read() <= clock.current_time()
    clock.rate = 0.0
    clock.jump(1.0)
    assert read() == clock.current_time()


def test_another_clock_is_read_through_its_own_method() -> None:
    class OwnClock:
        def current_time(self) -> float:
            return 7.25

    assert _trio_time(OwnClock())() == 7.25
