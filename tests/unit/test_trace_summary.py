"""The trace digest and ``summarize_trace``: occupancy, probe time, cache, slowest ops, faults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console

from swaysim import TraceEvent, TraceRecorder, summarize_trace
from swaysim._trace.digest import digest_events
from test_trace import known_backend, run_known_scenario

if TYPE_CHECKING:
    from pathlib import Path


async def test_the_known_scenario_digests_to_the_hand_worked_numbers() -> None:
    recorder = TraceRecorder()
    await run_known_scenario(known_backend(recorder))
    digest = digest_events(recorder)
    assert digest.events == 18  # 16 and two prompt events
    assert digest.span == 1.5
    assert len(digest.tasks) == 2
    base, ft = digest.views["base"], digest.views["ft"]
    assert (base.entries, base.busy, base.held, base.waits) == (1, 0.75, 0.75, 0)
    assert (base.ops, base.hits, base.misses, base.errors) == (2, 0, 1, 1)
    assert (ft.entries, ft.busy, ft.waits, ft.wait_time) == (1, 0.75, 1, 0.625)
    assert base.occupancy(digest.span) == ft.occupancy(digest.span) == 0.5
    ntd, lp = digest.ops["next_token_dist"], digest.ops["logprob_of"]
    assert (ntd.calls, ntd.misses, ntd.total_time, ntd.max_time) == (2, 2, 1.0, 0.5)
    assert (lp.calls, lp.errors) == (1, 1)
    assert digest.hit_rate == 0.0
    assert digest.faults == {("flaky", "transient"): 1}
    assert digest.fault_ops[("flaky", "transient")] == {"logprob_of": 1}
    assert (digest.latency_draws, digest.latency_seconds) == (4, 1.5)
    slowest = [(r.task.rpartition("#")[0], r.op, r.end, r.outcome) for r in digest.slowest]
    assert slowest == [
        ("alpha", "next_token_dist", 0.75, "miss"),
        ("beta", "next_token_dist", 1.5, "miss"),
        ("alpha", "logprob_of", 0.75, "InjectedTransientError"),
    ]


def test_occupancy_counts_overlapping_holds_once() -> None:
    events = [
        TraceEvent("view_enter", 0.0, "a#1", view="base"),
        TraceEvent("view_enter", 1.0, "b#2", view="base"),
        TraceEvent("view_exit", 2.0, "a#1", view="base", duration=2.0),
        TraceEvent("view_exit", 3.0, "b#2", view="base", duration=2.0),
        TraceEvent("view_enter", 3.0, "a#1", view="ft"),
        TraceEvent("op_end", 4.0, "a#1", view="ft", op="generate", hit=True, duration=1.0),
    ]
    digest = digest_events(events)
    base, ft = digest.views["base"], digest.views["ft"]
    assert (base.busy, base.held) == (3.0, 4.0)
    # ft is still live when the trace ends: its busy time runs to the last event.
    assert ft.busy == 1.0
    assert base.occupancy(digest.span) == 0.75
    assert digest.hit_rate == 1.0
    # base had no ops, so no hit rate at all (not 0 %).
    assert (base.hit_rate, ft.hit_rate, digest.ops["generate"].hit_rate) == (None, 1.0, 1.0)
    assert digest.calls == 1


def test_probes_retries_and_timeouts() -> None:
    def probe(kind: str, time: float, name: str, **detail: Any) -> TraceEvent:
        return TraceEvent(kind, time, "r#1", detail={"probe": name, **detail})

    events = [
        probe("probe_start", 0.0, "kl", probe_kind="delta_kl"),
        probe("probe_start", 0.5, "hang", probe_kind="null_adapter"),
        TraceEvent("retry", 1.0, "r#1", op="generate", detail={"probe": "kl", "attempt": 1}),
        probe("probe_end", 2.0, "kl", probe_kind="delta_kl", verdict="PASS"),
        TraceEvent("timeout", 2.5, "r#1", detail={"probe": "hang", "op": "probe"}),
        # A probe_end whose start is not in the trace: its duration gives the start.
        TraceEvent(
            "probe_end", 3.0, "r#1", duration=1.25, detail={"probe": "late", "verdict": "FAIL"}
        ),
    ]
    digest = digest_events(events)
    spans = [(p.name, p.kind, p.start, p.duration, p.verdict) for p in digest.probes]
    assert spans == [
        ("kl", "delta_kl", 0.0, 2.0, "PASS"),
        ("hang", "null_adapter", 0.5, None, None),
        ("late", "", 1.75, 1.25, "FAIL"),
    ]
    assert (digest.retries, digest.timeouts) == (1, 1)


@pytest.mark.parametrize("kept", [1, 3, 10])
def test_slowest_keeps_the_longest_ops_earliest_first_on_ties(kept: int) -> None:
    durations = [0.1, 0.5, 0.3, 0.5, 0.2, 0.5, 0.05]
    events = [
        TraceEvent("op_end", float(i), f"t#{i}", op="generate", hit=False, duration=d)
        for i, d in enumerate(durations)
    ]
    ranked = sorted(range(len(durations)), key=lambda i: (-durations[i], i))[:kept]
    digest = digest_events(events, slowest=kept)
    assert [r.end for r in digest.slowest] == [float(i) for i in ranked]


async def test_summarize_trace_prints_every_table(tmp_path: Path) -> None:
    recorder = TraceRecorder()
    await run_known_scenario(known_backend(recorder))
    recorder.emit(TraceEvent("probe_start", 1.5, "r#9", detail={"probe": "kl", "probe_kind": "x"}))
    recorder.emit(TraceEvent("probe_end", 1.5, "r#9", detail={"probe": "kl", "verdict": "WARN"}))
    path = recorder.save(tmp_path / "trace.jsonl")
    console = Console(record=True, width=200, color_system=None)
    summarize_trace(path, console)
    text = console.export_text()
    for expected in (
        "20 events over 1.5 s of loop time, 2 tasks, 3 ops (cache hit rate 0.0%), 1 faults",
        "Views",
        "Probes",
        "Ops and cache",
        "Slowest ops",
        "Faults fired",
        "InjectedTransientError",
        "flaky",
        "logprob_of x1",
        "WARN",
    ):
        assert expected in text, expected
    base_row = next(line for line in text.splitlines() if line.startswith("│ base"))
    assert "50.0%" in base_row


def _many_probes(count: int) -> list[TraceEvent]:
    events = []
    for index in range(count):
        detail = {"probe": f"p{index}", "probe_kind": "delta_kl"}
        events.append(TraceEvent("probe_start", 0.0, "runner#1", detail=detail))
        events.append(
            TraceEvent("probe_end", float(index), "runner#1", detail={**detail, "verdict": "PASS"})
        )
    for worker in range(30):
        events.append(
            TraceEvent(
                "op_end",
                float(count),
                f"swaysim-worker-{worker}#{1000 + worker}",
                view="ft",
                op="generate",
                hit=False,
                duration=0.01 * (worker + 1),
            )
        )
    return events


def test_long_tables_show_the_top_rows_longest_first_and_say_what_is_left_out(
    tmp_path: Path,
) -> None:
    recorder = TraceRecorder()
    for event in _many_probes(200):
        recorder.emit(event)
    path = recorder.save(tmp_path / "trace.jsonl")
    console = Console(record=True, width=200, color_system=None)
    summarize_trace(path, console)
    text = console.export_text()
    assert len(text.splitlines()) < 80
    probe_rows = [line.split()[1] for line in text.splitlines() if line.startswith("│ p")]
    assert probe_rows == [f"p{index}" for index in range(199, 189, -1)]
    assert "10 of 200 probes shown; --all lists all" in text
    assert "Probes (PASS 200)" in text
    assert "10 of 30 task names shown" in text
    assert "worker-29 · ft" in text  # no id, no swaysim- prefix, the views it worked in
    everything = Console(record=True, width=200, color_system=None)
    summarize_trace(path, everything, top=None)
    listed = everything.export_text()
    assert sum(line.startswith("│ p") for line in listed.splitlines()) == 200
    assert "shown" not in listed


def test_tasks_of_one_name_are_summed() -> None:
    events = [
        TraceEvent("op_end", 1.0, "swaysim-worker-0#1", view="base", op="generate", duration=1.0),
        TraceEvent("op_end", 3.0, "swaysim-worker-0#2", view="ft", op="generate", duration=2.0),
        TraceEvent("op_end", 3.0, "swaysim-worker-0#2", view="ft", op="generate", duration=0.5),
        TraceEvent("view_wait", 3.0, "runner#3", view="ft", duration=0.25),
    ]
    named = digest_events(events).named_tasks()
    assert [(u.task, u.tasks, u.ops, u.op_time, u.label) for u in named] == [
        ("worker-0", 2, 3, 3.5, "worker-0 · ft, base"),
        ("runner", 1, 0, 0.0, "runner"),
    ]
    assert named[1].waits == 1


def test_a_probe_end_with_a_duration_ends_the_span_there() -> None:
    # swaysim's runner writes the result's duration (first request sent to last answer in)
    # on probe_end, so the span is that long however late the result was final.
    detail = {"probe": "kl", "probe_kind": "delta_kl"}
    events = [
        TraceEvent("probe_start", 1.0, "runner#1", detail=detail),
        TraceEvent(
            "probe_end", 9.0, "runner#1", duration=0.5, detail={**detail, "verdict": "PASS"}
        ),
    ]
    (span,) = digest_events(events).probes
    assert (span.start, span.end, span.duration) == (1.0, 1.5, 0.5)
