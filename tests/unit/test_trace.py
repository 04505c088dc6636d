"""The trace format: a known scenario's exact events, the JSONL writer and reader, the recorder."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import swaysim._trace.schema
from swaysim import (
    AdapterAblation,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    DummyResponses,
    FaultPlan,
    FaultRule,
    FunctionProbe,
    InjectedFault,
    InjectedTransientError,
    InjectedViewEnterError,
    InvalidArgumentError,
    JsonlTraceWriter,
    LatencyPlan,
    LatencyRule,
    NullAdapter,
    ProbeContext,
    ProbeResult,
    SwaysimError,
    TraceEvent,
    TraceFormatError,
    TraceRecorder,
    Verdict,
    read_trace,
    run_suite,
)
from swaysim._trace.encode import encode_event, event_record
from swaysim._trace.read import decode_event
from swaysim._trace.schema import EVENT_KINDS

if TYPE_CHECKING:
    from collections.abc import Callable

DOC = Path(__file__).resolve().parents[2] / "docs" / "trace-format.md"


def sha12(text: str) -> str:
    """The documented prompt_hash: first 12 hex digits of SHA-1, computed independently."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def known_backend(sink: Any) -> AsyncDummyDifferentialBackend:
    """next_token_dist costs 0.5 s, a view switch 0.25 s; the first logprob_of call fails."""
    return AsyncDummyDifferentialBackend(
        latency=LatencyPlan(
            rules=(LatencyRule(Constant(0.5), ops=("next_token_dist",)),),
            view_switch=Constant(0.25),
        ),
        faults=FaultPlan((FaultRule("transient", name="flaky", ops=("logprob_of",), nth=1),)),
        trace=sink,
    )


async def run_known_scenario(backend: AsyncDummyDifferentialBackend) -> None:
    """alpha holds base for two ops (the second fails); beta waits for ft from t=0.125."""

    async def alpha() -> None:
        async with backend.as_base() as view:
            await view.next_token_dist("q", top_k=4)
            with pytest.raises(InjectedTransientError):
                await view.logprob_of("q", "a")

    async def beta() -> None:
        await anyio.sleep(0.125)
        async with backend.as_finetuned() as view:
            await view.next_token_dist("q", top_k=4)

    async with anyio.create_task_group() as group:
        group.start_soon(alpha, name="alpha")
        group.start_soon(beta, name="beta")


# Worked out by hand from the contract: alpha enters base at 0 and pays the 0.25 s
# switch (the first entry loads the adapter); its next_token_dist misses the cache
# and costs 0.5 s (0.25 -> 0.75); its logprob_of is the rule's first call, fails
# after zero service time, and alpha leaves at 0.75 having held base for 0.75 s.
# beta asked for ft at 0.125, so it waited 0.625 s; it enters at 0.75, pays the
# switch (0.75 -> 1.0), misses (1.0 -> 1.5) and leaves having held ft 0.75 s.
Q = sha12("q")
QA = sha12("q\x00a")
EXPECTED: list[tuple[Any, ...]] = [
    # kind, time, task, view, op, prompt_hash, hit, duration, detail
    ("view_enter", 0.0, "alpha", "base", None, None, None, None, None),
    ("latency", 0.0, "alpha", "base", "switch", None, None, 0.25, None),
    # Version 2: a key text's first use writes it once; later events refer to its hash.
    ("prompt", 0.25, "alpha", None, None, Q, None, None, {"text": "q"}),
    ("op_start", 0.25, "alpha", "base", "next_token_dist", Q, None, None, None),
    ("latency", 0.25, "alpha", "base", "next_token_dist", None, None, 0.5, None),
    ("op_end", 0.75, "alpha", "base", "next_token_dist", Q, False, 0.5, {"call": 1}),
    ("prompt", 0.75, "alpha", None, None, QA, None, None, {"text": "q\x00a"}),
    ("op_start", 0.75, "alpha", "base", "logprob_of", QA, None, None, None),
    (
        "fault",
        0.75,
        "alpha",
        "base",
        "logprob_of",
        Q,
        None,
        None,
        {"rule": "flaky", "kind": "transient", "call": 1},
    ),
    (
        "op_end",
        0.75,
        "alpha",
        "base",
        "logprob_of",
        QA,
        None,
        0.0,
        {"error": "InjectedTransientError"},
    ),
    ("view_exit", 0.75, "alpha", "base", None, None, None, 0.75, None),
    ("view_wait", 0.75, "beta", "ft", None, None, None, 0.625, None),
    ("view_enter", 0.75, "beta", "ft", None, None, None, None, None),
    ("latency", 0.75, "beta", "ft", "switch", None, None, 0.25, None),
    ("op_start", 1.0, "beta", "ft", "next_token_dist", Q, None, None, None),
    ("latency", 1.0, "beta", "ft", "next_token_dist", None, None, 0.5, None),
    ("op_end", 1.5, "beta", "ft", "next_token_dist", Q, False, 0.5, {"call": 1}),
    ("view_exit", 1.5, "beta", "ft", None, None, None, 0.75, None),
]


def as_rows(events: list[TraceEvent]) -> list[tuple[Any, ...]]:
    """Events as EXPECTED rows, with the task's name (its id differs per run)."""
    return [
        (
            e.kind,
            e.time,
            e.task.rpartition("#")[0],
            e.view,
            e.op,
            e.prompt_hash,
            e.hit,
            e.duration,
            None if e.detail is None else dict(e.detail),
        )
        for e in events
    ]


async def test_known_scenario_emits_exactly_the_expected_events() -> None:
    recorder = TraceRecorder()
    await run_known_scenario(known_backend(recorder))
    assert as_rows(list(recorder.events)) == EXPECTED
    # One id per task name, and different tasks have different ids.
    ids = {e.task.rpartition("#")[0]: e.task for e in recorder}
    assert len(ids) == 2
    assert len(set(ids.values())) == 2
    assert all(e.kind in EVENT_KINDS for e in recorder)


async def test_known_scenario_round_trips_through_a_jsonl_file(tmp_path: Path) -> None:
    recorder = TraceRecorder()
    path = tmp_path / "trace.jsonl"
    with JsonlTraceWriter(path, flush_every=4) as writer:

        class Both:
            def emit(self, event: TraceEvent) -> None:
                recorder.emit(event)
                writer.emit(event)

        await run_known_scenario(known_backend(Both()))
    assert writer.events_written == len(EXPECTED)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(EXPECTED)
    first = json.loads(lines[0])
    assert first["v"] == 2
    assert first["kind"] == "view_enter"
    assert "hit" not in first  # absent, not null
    assert list(read_trace(path)) == list(recorder.events)


async def test_time_never_decreases_along_the_trace() -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(
        latency=LatencyPlan(seed=5, default=Constant(0.01, jitter=0.05), view_switch=Constant(0.1)),
        faults=FaultPlan((FaultRule("transient", probability=0.3),), seed=5),
        trace=recorder,
    )

    async def worker(index: int) -> None:
        enter = backend.as_base if index % 2 else backend.as_finetuned
        async with enter() as view:
            for item in range(6):
                with contextlib.suppress(InjectedTransientError):
                    await view.next_token_dist(f"p{item % 3}", top_k=4)

    async with anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(worker, index)
    times = [e.time for e in recorder]
    assert len(times) > 40
    assert times == sorted(times)
    starts = recorder.of_kind("op_start")
    ends = recorder.of_kind("op_end")
    assert len(starts) == len(ends) == 30
    assert recorder.of_kind("fault")
    assert len(recorder.of_kind("view_wait")) == 4


async def test_a_cancelled_op_ends_with_error_cancelled() -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(
        faults=FaultPlan((FaultRule("hang", name="stuck", ops=("rolling_logprob",)),)),
        trace=recorder,
    )
    async with backend.as_base() as view:
        with anyio.move_on_after(2.0):
            await view.rolling_logprob("some text")
    assert recorder.kinds() == ["view_enter", "prompt", "op_start", "fault", "op_end", "view_exit"]
    end = recorder.of_kind("op_end")[0]
    assert end.detail == {"error": "cancelled"}
    assert end.hit is None
    assert end.duration == 2.0
    assert end.time == 2.0


async def test_a_batch_is_one_op_with_items_and_computed() -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(trace=recorder)
    async with backend.as_finetuned() as view:
        await view.next_token_dist("b", top_k=4)
        await view.next_token_dist_batch(["a", "b", "c"], top_k=4)
    start, end = recorder.of_kind("op_start")[1], recorder.of_kind("op_end")[1]
    assert start.op == end.op == "next_token_dist_batch"
    assert start.detail == {"items": 3}
    assert end.detail == {"items": 3, "computed": 2, "call": 1}
    assert end.hit is False
    assert end.prompt_hash == start.prompt_hash == sha12("a\x1eb\x1ec")


async def test_a_failed_entry_exits_aborted_with_its_hold_time() -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(
        latency=LatencyPlan(view_switch=Constant(0.5)),
        faults=FaultPlan((FaultRule("enter_error", name="no-load"),)),
        trace=recorder,
    )
    with pytest.raises(InjectedViewEnterError):
        async with backend.as_base():
            pass
    assert recorder.kinds() == ["view_enter", "latency", "fault", "view_exit"]
    exit_event = recorder.of_kind("view_exit")[0]
    assert exit_event.detail == {"aborted": True}
    assert exit_event.duration == 0.5
    assert recorder.of_kind("fault")[0].op == "enter"


async def test_tracing_changes_no_result_and_no_count() -> None:
    async def drive(backend: AsyncDummyDifferentialBackend) -> list[Any]:
        out: list[Any] = []
        async with backend.as_scaled_adapter(0.5) as view:
            for prompt in ("x", "y", "x"):
                out.append((await view.next_token_dist(prompt, top_k=4)).logprobs.tolist())
                out.append(await view.logprob_of(prompt, "z"))
                out.append((await view.rolling_logprob(prompt)).total_logprob)
            out.append(await view.generate("x", max_new_tokens=3))
        return out

    canned = DummyResponses(generations={"x": "an answer"})
    plain = AsyncDummyDifferentialBackend(canned, canned)
    traced = AsyncDummyDifferentialBackend(canned, canned, trace=TraceRecorder())
    assert await drive(plain) == await drive(traced)
    assert plain.statistics() == traced.statistics()


# -- the schema as documented is the schema as written ---------------------------------


def documented_in_markdown() -> dict[str, set[str]]:
    """Per kind, every backticked name in its row of docs/trace-format.md's kind tables."""
    fields: dict[str, set[str]] = {}
    in_kind_table = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_kind_table = False
        elif line == "| kind | emitted when | fields |":
            in_kind_table = True
        elif in_kind_table and (match := re.fullmatch(r"\| `(\w+)` \| [^|]+ \| (.+) \|", line)):
            fields[match.group(1)] = set(re.findall(r"`([\w.]+)", match.group(2)))
    return fields


def documented_in_docstring() -> dict[str, set[str]]:
    """Per kind, every ``name`` in its row of the swaysim._trace.schema docstring's kind table."""
    doc = swaysim._trace.schema.__doc__ or ""
    table = doc.split("kind           by  when, and its fields")[1].split("\n\n")[0]
    rows = re.split(r"\n(?=[a-z_]+ +[BR] )", table.split("=\n", 1)[1])
    fields: dict[str, set[str]] = {}
    for row in rows:
        kind = row.split()[0]
        if kind in EVENT_KINDS:
            fields[kind] = set(re.findall(r"``([\w.]+)``", row))
    return fields


def written_fields(trace_event: TraceEvent) -> set[str]:
    """The keys one event's line holds besides the four every line has, details as detail.x."""
    record = event_record(trace_event)
    record.pop("detail", None)
    keys = set(record) - {"v", "kind", "time", "task"}
    return keys | {f"detail.{key}" for key in trace_event.detail or {}}


async def run_everything_once(sink: TraceRecorder) -> None:
    """A suite that makes the backend and the runner write every kind and every variant.

    Retries of a request (flaky) and of a view entry (no-load, which also
    aborts an entry), an exit fault (no-unload), an op timeout on a hung op
    (stuck), a function probe that times out, and batches that pass and fail.
    """
    backend = AsyncDummyDifferentialBackend(
        latency=LatencyPlan(default=Constant(0.01), view_switch=Constant(0.05)),
        faults=FaultPlan(
            (
                FaultRule("transient", name="flaky", views=("ft",), prompt="q1", nth=1),
                FaultRule("enter_error", name="no-load", views=("scaled",), nth=1),
                FaultRule("exit_error", name="no-unload", views=("null",), max_fires=1),
                FaultRule("hang", name="stuck", views=("base",), prompt="slow*"),
                FaultRule(
                    "transient", name="bad-batch", ops=("next_token_dist_batch",), prompt="b2"
                ),
            )
        ),
        trace=sink,
    )

    async def batches(backend: Any, ctx: ProbeContext) -> ProbeResult:
        async with backend.as_finetuned() as view:
            await view.next_token_dist_batch(["b1", "b3"], top_k=4)
            with pytest.raises(InjectedFault):
                await view.next_token_dist_batch(["b1", "b2"], top_k=4)
        return ProbeResult("batches", "function", Verdict.PASS)

    async def hangs(backend: Any, ctx: ProbeContext) -> ProbeResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    await run_suite(
        backend,
        [
            DeltaKL("dkl", ["q1", "q2"], top_k=4, null="null"),
            NullAdapter("null", target="dkl", seeds=(0, 1)),
            AdapterAblation("ablation", ["q1"], lams=(0.5, 1.0), top_k=4),
            DeltaKL("slow", ["slow prompt"], top_k=4),
            FunctionProbe("batches", batches),
            FunctionProbe("hangs", hangs),
        ],
        op_timeout=1.0,
        probe_timeout=30.0,
        retries=2,
    )


@pytest.mark.parametrize("documented", [documented_in_markdown, documented_in_docstring])
async def test_every_field_written_is_documented_for_its_kind(
    documented: Callable[[], dict[str, set[str]]],
) -> None:
    fields = documented()
    assert sorted(fields) == sorted(EVENT_KINDS)
    recorder = TraceRecorder()
    await run_known_scenario(known_backend(recorder))
    await run_everything_once(recorder)
    assert {e.kind for e in recorder} == set(EVENT_KINDS)
    undocumented = {
        (e.kind, field) for e in recorder for field in written_fields(e) - fields[e.kind]
    }
    assert not undocumented
    variants = {(e.kind, frozenset(written_fields(e))) for e in recorder}
    # The variants the documentation describes in words, each seen at least once.
    for kind, shape in [
        ("retry", {"view", "op", "detail.attempt", "detail.delay"}),
        ("retry", {"view", "op", "detail.attempt", "detail.delay", "detail.probe", "detail.error"}),
        ("timeout", {"op", "detail.probe", "detail.seconds"}),
        ("timeout", {"view", "op", "detail.probe", "detail.seconds"}),
        ("fault", {"view", "op", "detail.rule", "detail.kind", "detail.call"}),
        ("view_exit", {"view", "duration", "detail.aborted"}),
        ("op_end", {"view", "op", "prompt_hash", "duration", "detail.items", "detail.error"}),
    ]:
        assert (kind, frozenset(shape)) in variants, (kind, shape)
    # As documented, runner events name a scaled view the runner's way, not by its id.
    assert "scaled_0.50" in {e.view for e in recorder.of_kind("retry")}


def event(kind: str = "op_end", **fields: Any) -> TraceEvent:
    base: dict[str, Any] = {"time": 1.5, "task": "t#1"}
    base.update(fields)
    return TraceEvent(kind=kind, **base)


def test_encoding_leaves_absent_fields_out_and_keeps_field_order() -> None:
    line = encode_event(event(view="base", op="generate", hit=True, duration=0.25))
    assert line == (
        '{"v":2,"kind":"op_end","time":1.5,"task":"t#1","view":"base","op":"generate",'
        '"hit":true,"duration":0.25}'
    )
    assert decode_event(line) == event(view="base", op="generate", hit=True, duration=0.25)


def test_non_finite_numbers_are_written_as_strings_and_read_back() -> None:
    original = event(duration=math.inf, detail={"seconds": -math.inf, "nested": [math.nan]})
    line = encode_event(original)
    json.loads(line, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert '"duration":"inf"' in line
    assert '"seconds":"-inf"' in line
    back = decode_event(line)
    assert back.duration == math.inf
    assert back.detail == {"seconds": "-inf", "nested": ["nan"]}


def test_values_json_cannot_hold_are_written_as_text() -> None:
    line = encode_event(event(detail={"error": ValueError("boom"), "ids": {3}}))
    assert json.loads(line)["detail"] == {"error": "boom", "ids": [3]}


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "expected a JSON object"),
        ('{"kind":"op_end","time":1,"task":"t"}', "v=None"),
        ('{"v":3,"kind":"op_end","time":1,"task":"t"}', "v=3"),
        ('{"v":true,"kind":"op_end","time":1,"task":"t"}', "v=True"),
        ('{"v":1,"time":1,"task":"t"}', "kind=None"),
        ('{"v":1,"kind":"x","time":"soon","task":"t"}', "time='soon'"),
        ('{"v":1,"kind":"x","time":"inf","task":"t"}', "time='inf'"),
        ('{"v":1,"kind":"x","time":1,"task":7}', "task=7"),
        ('{"v":1,"kind":"x","time":1,"task":"t","view":3}', "view=3"),
        ('{"v":1,"kind":"x","time":1,"task":"t","hit":1}', "hit=1"),
        ('{"v":1,"kind":"x","time":1,"task":"t","duration":false}', "duration=False"),
        ('{"v":1,"kind":"x","time":1,"task":"t","detail":[]}', "detail=[]"),
    ],
)
def test_malformed_lines_are_rejected_naming_the_problem(line: str, complaint: str) -> None:
    with pytest.raises(TraceFormatError, match="somewhere:3") as info:
        decode_event(line, where="somewhere:3")
    assert complaint in str(info.value)


def test_readers_ignore_unknown_keys_and_treat_null_as_absent(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"v":1,"kind":"future_kind","time":2,"task":"t#1","view":null,"new_key":[1]}\n'
        "\n"
        '{"v":1,"kind":"op_end","time":3.5,"task":"t#1","hit":false}\n',
        encoding="utf-8",
    )
    assert list(read_trace(path)) == [
        TraceEvent("future_kind", 2.0, "t#1"),
        TraceEvent("op_end", 3.5, "t#1", hit=False),
    ]


def test_a_bad_line_is_reported_with_file_and_line_number(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(encode_event(event()) + "\n" + '{"v":1,"kind":\n', encoding="utf-8")
    events = read_trace(path)
    assert next(events) == event()
    with pytest.raises(TraceFormatError, match=r"t\.jsonl:2: not a JSON object"):
        next(events)


def test_reading_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"nothing\.jsonl"):
        read_trace(tmp_path / "nothing.jsonl")


def test_the_writer_holds_at_most_flush_every_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    writer = JsonlTraceWriter(path, flush_every=3)
    on_disk = []
    for index in range(7):
        writer.emit(event(time=float(index)))
        on_disk.append(len(path.read_text(encoding="utf-8").splitlines()))
    # Lines reach the file in blocks of three, as soon as a block is full.
    assert on_disk == [0, 0, 3, 3, 3, 6, 6]
    assert writer.events_written == 7
    assert "open events=7 flush_every=3" in repr(writer)
    writer.close()
    writer.close()
    assert writer.closed
    assert [e.time for e in read_trace(path)] == [float(i) for i in range(7)]
    with pytest.raises(SwaysimError, match="closed"):
        writer.emit(event())
    with pytest.raises(SwaysimError, match="closed"):
        writer.flush()


def test_a_gz_path_is_compressed_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    with JsonlTraceWriter(path) as writer:
        for index in range(100):
            writer.emit(event(time=float(index), detail={"call": index}))
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        assert sum(1 for _ in stream) == 100
    assert [e.detail for e in read_trace(path)] == [{"call": i} for i in range(100)]


def test_writer_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="flush_every=0"):
        JsonlTraceWriter(tmp_path / "t.jsonl", flush_every=0)
    with pytest.raises(InvalidArgumentError, match="max_events=0"):
        TraceRecorder(max_events=0)


def test_the_recorder_keeps_the_most_recent_events(tmp_path: Path) -> None:
    recorder = TraceRecorder(max_events=3)
    for index, kind in enumerate(["view_enter", "op_start", "op_end", "op_start", "op_end"]):
        recorder.emit(event(kind, time=float(index)))
    assert len(recorder) == 3
    assert recorder.dropped == 2
    assert recorder.kinds() == ["op_end", "op_start", "op_end"]
    assert [e.time for e in recorder.of_kind("op_end")] == [2.0, 4.0]
    assert repr(recorder) == "<TraceRecorder 3/3 events dropped=2 {op_end=2, op_start=1}>"
    saved = recorder.save(tmp_path / "kept.jsonl")
    assert list(read_trace(saved)) == list(recorder)
    recorder.clear()
    assert (len(recorder), recorder.dropped) == (0, 0)
