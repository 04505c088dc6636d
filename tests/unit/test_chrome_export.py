"""Chrome trace-event export: a schema check, and the known scenario's tracks and slices."""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    LatencyPlan,
    TraceEvent,
    TraceRecorder,
    export_chrome,
)
from swaysim._trace.chrome import write_chrome
from test_trace import known_backend, run_known_scenario

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

PHASES = {"B", "E", "i", "C", "M"}


def check_chrome_trace(document: Any) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Validate a Chrome trace-event document; return the slices and instants per track.

    Checks what Perfetto and chrome://tracing rely on: every event has a known
    phase and integer pid/tid, numeric ts; along each track (pid, tid) the
    timestamps never decrease; every B has a matching E (same name) and every
    E closes an open B; every track with events is named by a thread_name
    metadata event.
    """
    assert isinstance(document, dict)
    events = document["traceEvents"]
    assert isinstance(events, list)
    tracks: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    counters: dict[tuple[int, str], list[float]] = defaultdict(list)
    named: set[tuple[int, int]] = set()
    for chrome_event in events:
        phase = chrome_event["ph"]
        assert phase in PHASES, chrome_event
        assert isinstance(chrome_event["pid"], int)
        assert isinstance(chrome_event["tid"], int)
        assert isinstance(chrome_event["name"], str)
        if phase == "M":
            if chrome_event["name"] == "thread_name":
                named.add((chrome_event["pid"], chrome_event["tid"]))
            continue
        ts = chrome_event["ts"]
        assert isinstance(ts, int | float)
        assert math.isfinite(ts)
        if phase == "C":
            counters[chrome_event["pid"], chrome_event["name"]].append(ts)
            continue
        if phase == "i":
            assert chrome_event["s"] in ("t", "p", "g")
        tracks[chrome_event["pid"], chrome_event["tid"]].append(chrome_event)
    for track, track_events in tracks.items():
        assert track in named, f"track {track} has no thread_name"
        stamps = [e["ts"] for e in track_events]
        assert stamps == sorted(stamps), f"timestamps go back on track {track}"
        open_names: list[str] = []
        for chrome_event in track_events:
            if chrome_event["ph"] == "B":
                open_names.append(chrome_event["name"])
            elif chrome_event["ph"] == "E":
                assert open_names, f"an E without a B on track {track}"
                assert open_names.pop() == chrome_event["name"]
        assert not open_names, f"B without E on track {track}: {open_names}"
    for name, stamps in counters.items():
        assert stamps == sorted(stamps), f"counter {name} goes back in time"
    return dict(tracks)


def export(events: Iterable[TraceEvent]) -> dict[str, Any]:
    stream = io.StringIO()
    write_chrome(events, stream)
    document: dict[str, Any] = json.loads(
        stream.getvalue(), parse_constant=lambda name: pytest.fail(f"non-JSON {name}")
    )
    return document


def thread_names(document: dict[str, Any]) -> dict[tuple[int, int], str]:
    return {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in document["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


def slices(track_events: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(name, begin, end) per B/E pair, in order of their E."""
    out = []
    stack: list[dict[str, Any]] = []
    for chrome_event in track_events:
        if chrome_event["ph"] == "B":
            stack.append(chrome_event)
        elif chrome_event["ph"] == "E":
            begin = stack.pop()
            out.append((begin["name"], begin["ts"], chrome_event["ts"]))
    return out


async def test_the_known_scenario_exports_to_valid_tracks_and_slices(tmp_path: Path) -> None:
    recorder = TraceRecorder()
    await run_known_scenario(known_backend(recorder))
    trace_path = recorder.save(tmp_path / "trace.jsonl")
    output = tmp_path / "chrome.json"
    export_chrome(trace_path, output)
    document = json.loads(output.read_text(encoding="utf-8"))
    tracks = check_chrome_trace(document)
    names = {
        name.rpartition("#")[0] or name: track for track, name in thread_names(document).items()
    }
    assert set(names) == {"view base", "view ft", "alpha", "beta"}

    # Microseconds, from the hand-worked timeline in test_trace.EXPECTED.
    assert slices(tracks[names["view base"]])[0][1:] == (0.0, 750_000.0)
    assert slices(tracks[names["view ft"]])[0][1:] == (750_000.0, 1_500_000.0)
    assert slices(tracks[names["alpha"]]) == [
        ("next_token_dist", 250_000.0, 750_000.0),
        ("logprob_of", 750_000.0, 750_000.0),
    ]
    assert slices(tracks[names["beta"]]) == [
        ("wait ft", 125_000.0, 750_000.0),
        ("next_token_dist", 1_000_000.0, 1_500_000.0),
    ]
    alpha_instants = [(e["name"], e["ts"]) for e in tracks[names["alpha"]] if e["ph"] == "i"]
    assert alpha_instants == [
        ("latency switch", 0.0),
        ("latency next_token_dist", 250_000.0),
        ("fault transient", 750_000.0),
    ]
    failed = [e for e in tracks[names["alpha"]] if e["ph"] == "E"][1]
    assert failed["args"]["error"] == "InjectedTransientError"
    counters = [
        (e["name"], e["ts"], e["args"]["live"]) for e in document["traceEvents"] if e["ph"] == "C"
    ]
    assert counters == [
        ("live base", 0.0, 1),
        ("live base", 750_000.0, 0),
        ("live ft", 750_000.0, 1),
        ("live ft", 1_500_000.0, 0),
    ]


async def test_overlapping_entries_of_one_view_get_their_own_tracks() -> None:
    recorder = TraceRecorder()
    backend = AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=True,
        latency=LatencyPlan(default=Constant(0.25)),
        trace=recorder,
    )

    async def worker(index: int) -> None:
        await anyio.sleep(0.1 * index)
        async with backend.as_base() as view:
            await view.next_token_dist(f"p{index}", top_k=4)

    async with anyio.create_task_group() as group:
        for index in range(3):
            group.start_soon(worker, index)
    document = export(recorder)
    tracks = check_chrome_trace(document)
    view_tracks = [t for t, name in thread_names(document).items() if name.startswith("view")]
    assert sorted(thread_names(document)[t] for t in view_tracks) == [
        "view base",
        "view base [2]",
        "view base [3]",
    ]
    assert sum(len(slices(tracks[t])) for t in view_tracks) == 3


def test_a_truncated_trace_still_closes_every_slice() -> None:
    events = [
        TraceEvent(
            "probe_start", 0.0, "runner#1", detail={"probe": "kl", "probe_kind": "delta_kl"}
        ),
        TraceEvent("view_enter", 0.0, "w#2", view="base"),
        TraceEvent("op_start", 0.5, "w#2", view="base", op="generate"),
        # An op_end whose op_start a capped recorder dropped:
        TraceEvent("op_end", 2.0, "w#3", view="ft", op="logprob_of", hit=True, duration=0.5),
        # A view_exit whose view_enter is missing is skipped, not a dangling E:
        TraceEvent("view_exit", 2.5, "w#4", view="ft", duration=1.0),
        TraceEvent("retry", 3.0, "runner#1", op="generate", detail={"attempt": 1}),
    ]
    tracks = check_chrome_trace(export(events))
    unfinished = [
        e["name"]
        for track_events in tracks.values()
        for e in track_events
        if e["ph"] == "E" and e["args"].get("unfinished")
    ]
    assert sorted(unfinished) == ["generate", "kl", "w#2"]
    assert all(
        e["ts"] == 3_000_000.0
        for t in tracks.values()
        for e in t
        if e["ph"] == "E" and e["args"].get("unfinished")
    )


def test_probes_run_at_once_get_their_own_tracks_and_verdicts() -> None:
    def probe(kind: str, time: float, name: str, **detail: Any) -> TraceEvent:
        return TraceEvent(kind, time, "runner#1", detail={"probe": name, **detail})

    events = [
        probe("probe_start", 0.0, "a", probe_kind="delta_kl"),
        probe("probe_start", 1.0, "b", probe_kind="delta_kl"),
        probe("probe_end", 2.0, "a", verdict="PASS"),
        probe("probe_start", 2.5, "c", probe_kind="null_adapter"),
        probe("probe_end", 3.0, "b", verdict="FAIL"),
        probe("probe_end", 4.0, "c", verdict="ERROR"),
        TraceEvent(
            "timeout", 4.0, "runner#1", detail={"probe": "c", "op": "probe", "seconds": 1.5}
        ),
    ]
    document = export(events)
    tracks = check_chrome_trace(document)
    names = thread_names(document)
    probe_slices = {
        names[t]: slices(events_) for t, events_ in tracks.items() if names[t].startswith("probes")
    }
    assert probe_slices == {
        "probes": [("a", 0.0, 2_000_000.0), ("c", 2_500_000.0, 4_000_000.0)],
        "probes [2]": [("b", 1_000_000.0, 3_000_000.0)],
    }
    ends = [e for e in document["traceEvents"] if e["ph"] == "E"]
    assert [e["args"]["verdict"] for e in ends] == ["PASS", "FAIL", "ERROR"]


def test_non_finite_values_become_strings_so_the_json_stays_valid() -> None:
    events = [TraceEvent("timeout", 1.0, "t#1", detail={"seconds": math.inf, "x": [math.nan]})]
    document = export(events)
    instant = next(e for e in document["traceEvents"] if e["ph"] == "i")
    assert instant["args"] == {"seconds": "inf", "x": ["nan"]}


def test_unknown_kinds_become_instants_on_the_task_track() -> None:
    tracks = check_chrome_trace(export([TraceEvent("custom_marker", 0.5, "t#1")]))
    (only,) = tracks.values()
    assert [(e["ph"], e["name"]) for e in only] == [("i", "custom_marker (unknown kind)")]
