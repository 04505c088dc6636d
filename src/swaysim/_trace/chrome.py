"""Export a trace to the Chrome trace-event format (Perfetto, chrome://tracing).

The output is a JSON object whose ``traceEvents`` array holds, one per line:

- process "views": one track per view (more when a concurrent-safe backend
  has the same view live several times at once), with a slice named after
  the holding task for every time the view was live, and a counter track
  ``live <view>`` with the number of live entries;
- process "tasks": one track per task, with a slice per op (named after the
  op; args: view, prompt hash, prompt text from a version 2 trace, hit,
  call, error) and per wait for a view (``wait <view>``), and instant events
  for faults, latency draws, retries and timeouts;
- process "probes": a slice per probe from its ``probe_start``, as long as
  the ``duration`` its ``probe_end`` carries (the result's duration), else to
  the ``probe_end`` (args: probe_kind, verdict), on as many tracks as probes
  ran at once.

Slices are ``B``/``E`` pairs; every ``B`` gets its ``E`` (a slice still open
when the trace ends is closed at the trace's last timestamp with
``args.unfinished``), and timestamps never decrease along a track. Times are
microseconds of loop time. The conversion streams: memory holds a few
entries per task, view and probe name, one per open slice and the prompt
texts it has seen (at most ``PROMPTS_KEPT``, each a display copy), never the
events.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, TypedDict

from swaysim._files import write_file_atomically
from swaysim._trace.digest import PROMPTS_KEPT, display_prompt
from swaysim._trace.encode import finite_or_name
from swaysim._trace.events import interval_seconds, probe_name
from swaysim._trace.read import read_trace
from swaysim._trace.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from swaysim._trace.events import TraceEvent

__all__ = ["ChromeEvent", "chrome_events", "export_chrome", "write_chrome"]

VIEWS_PID: Final = 1
TASKS_PID: Final = 2
PROBES_PID: Final = 3
_PROCESS_NAMES: Final = {VIEWS_PID: "views", TASKS_PID: "tasks", PROBES_PID: "probes"}
_INSTANT_KINDS: Final = frozenset({"latency", "fault", "retry", "timeout"})

Track = tuple[int, int]
#: A Chrome event's ``args``: JSON values shown as they are, never inspected here.
Args = dict[str, object]


class ChromeEvent(TypedDict, total=False):
    """One entry of ``traceEvents`` (the fields swaysim writes)."""

    name: str
    cat: str
    ph: str
    s: str
    ts: float
    pid: int
    tid: int
    args: Args


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def _detail(event: TraceEvent) -> Args:
    return dict(event.detail) if event.detail else {}


class _Converter:
    """The per-track state of one streaming conversion."""

    def __init__(self) -> None:
        self.next_tid = 1
        self.named_pids: set[int] = set()
        self.task_tids: dict[str, int] = {}
        self.view_lanes: dict[str, list[bool]] = {}  # view -> whether each lane is busy
        self.lane_tids: dict[tuple[str, int], int] = {}
        self.held: dict[tuple[str, str], list[int]] = {}  # (task, view) -> lanes, innermost last
        self.live: dict[str, int] = {}
        self.probe_lanes: list[bool] = []
        self.probe_tids: list[int] = []
        self.open_probes: dict[str, list[tuple[int, float]]] = {}
        self.prompts: dict[str, str] = {}
        self.open_ops: dict[str, str] = {}  # task -> op name of its open op slice
        self.open_slices: dict[Track, list[str]] = {}
        self.last_ts: dict[Track, float] = {}
        self.max_ts = 0.0
        self.orphans = 0

    # -- tracks ------------------------------------------------------------------

    def _new_track(self, pid: int, name: str, out: list[ChromeEvent]) -> int:
        if pid not in self.named_pids:
            self.named_pids.add(pid)
            out.append(_meta("process_name", pid, 0, {"name": _PROCESS_NAMES[pid]}))
            out.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
        tid = self.next_tid
        self.next_tid += 1
        out.append(_meta("thread_name", pid, tid, {"name": name}))
        out.append(_meta("thread_sort_index", pid, tid, {"sort_index": tid}))
        return tid

    def _task_track(self, task: str, out: list[ChromeEvent]) -> Track:
        tid = self.task_tids.get(task)
        if tid is None:
            tid = self.task_tids[task] = self._new_track(TASKS_PID, task, out)
        return TASKS_PID, tid

    def _view_lane(self, view: str, out: list[ChromeEvent]) -> int:
        lanes = self.view_lanes.setdefault(view, [])
        for lane, busy in enumerate(lanes):
            if not busy:
                lanes[lane] = True
                return lane
        lanes.append(True)
        lane = len(lanes) - 1
        name = f"view {view}" if lane == 0 else f"view {view} [{lane + 1}]"
        self.lane_tids[view, lane] = self._new_track(VIEWS_PID, name, out)
        return lane

    def _probe_lane(self, out: list[ChromeEvent]) -> int:
        for lane, busy in enumerate(self.probe_lanes):
            if not busy:
                self.probe_lanes[lane] = True
                return lane
        self.probe_lanes.append(True)
        lane = len(self.probe_lanes) - 1
        name = "probes" if lane == 0 else f"probes [{lane + 1}]"
        self.probe_tids.append(self._new_track(PROBES_PID, name, out))
        return lane

    # -- slices ------------------------------------------------------------------

    def _ts(self, track: Track, ts: float) -> float:
        """Clamp to the track's last timestamp: a begin reconstructed from a duration
        may land a rounding error before the event that preceded it."""
        last = self.last_ts.get(track, 0.0)
        ts = max(ts, last)
        self.last_ts[track] = ts
        self.max_ts = max(self.max_ts, ts)
        return ts

    def _begin(
        self,
        track: Track,
        name: str,
        cat: str,
        ts: float,
        args: Args,
        out: list[ChromeEvent],
    ) -> None:
        pid, tid = track
        out.append(
            {
                "name": name,
                "cat": cat,
                "ph": "B",
                "ts": self._ts(track, ts),
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )
        self.open_slices.setdefault(track, []).append(name)

    def _end(self, track: Track, ts: float, args: Args, out: list[ChromeEvent]) -> None:
        pid, tid = track
        stack = self.open_slices.get(track)
        if not stack:
            self.orphans += 1
            return
        name = stack.pop()
        out.append(
            {
                "name": name,
                "ph": "E",
                "ts": self._ts(track, ts),
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )

    def _instant(self, track: Track, name: str, cat: str, ts: float, args: Args) -> ChromeEvent:
        pid, tid = track
        return {
            "name": name,
            "cat": cat,
            "ph": "i",
            "s": "t",
            "ts": self._ts(track, ts),
            "pid": pid,
            "tid": tid,
            "args": args,
        }

    # -- events ------------------------------------------------------------------

    def convert(self, event: TraceEvent) -> list[ChromeEvent]:
        """The Chrome events for one trace event, in order."""
        out: list[ChromeEvent] = []
        kind = event.kind
        ts = _us(event.time)
        if kind == "view_enter" and event.view is not None:
            self._view_enter(event, ts, out)
        elif kind == "view_exit" and event.view is not None:
            self._view_exit(event, ts, out)
        elif kind == "view_wait":
            track = self._task_track(event.task, out)
            name = f"wait {event.view}"
            begin = ts - _us(interval_seconds(event))
            self._begin(track, name, "wait", begin, {"view": event.view}, out)
            self._end(track, ts, {"waited_s": event.duration}, out)
        elif kind == "op_start":
            self._op_start(event, ts, out)
        elif kind == "op_end":
            self._op_end(event, ts, out)
        elif kind == "probe_start":
            self._probe_start(event, ts, out)
        elif kind == "probe_end":
            self._probe_end(event, ts, out)
        elif kind == "prompt":
            text = (event.detail or {}).get("text")
            if event.prompt_hash and isinstance(text, str) and len(self.prompts) < PROMPTS_KEPT:
                self.prompts.setdefault(event.prompt_hash, display_prompt(text))
        else:
            track = self._task_track(event.task, out)
            out.append(self._instant(track, _instant_name(event), kind, ts, _instant_args(event)))
        return out

    def _view_enter(self, event: TraceEvent, ts: float, out: list[ChromeEvent]) -> None:
        view = event.view
        assert view is not None
        lane = self._view_lane(view, out)
        self.held.setdefault((event.task, view), []).append(lane)
        track = (VIEWS_PID, self.lane_tids[view, lane])
        self._begin(track, event.task, "view", ts, {"task": event.task}, out)
        self._live(view, +1, ts, out)

    def _view_exit(self, event: TraceEvent, ts: float, out: list[ChromeEvent]) -> None:
        view = event.view
        assert view is not None
        lanes = self.held.get((event.task, view))
        if not lanes:
            self.orphans += 1
            return
        lane = lanes.pop()
        self.view_lanes[view][lane] = False
        track = (VIEWS_PID, self.lane_tids[view, lane])
        args: Args = {"held_s": event.duration}
        args.update(_detail(event))
        self._end(track, ts, args, out)
        self._live(view, -1, ts, out)

    def _live(self, view: str, change: int, ts: float, out: list[ChromeEvent]) -> None:
        live = self.live[view] = self.live.get(view, 0) + change
        track = (VIEWS_PID, 0)
        out.append(
            {
                "name": f"live {view}",
                "ph": "C",
                "ts": self._ts(track, ts),
                "pid": VIEWS_PID,
                "tid": 0,
                "args": {"live": live},
            }
        )

    def _op_start(self, event: TraceEvent, ts: float, out: list[ChromeEvent]) -> None:
        track = self._task_track(event.task, out)
        if event.task in self.open_ops:
            # The previous op of this task never ended in the trace.
            self._end(track, ts, {"unfinished": True}, out)
        name = event.op or "op"
        self.open_ops[event.task] = name
        args: Args = {"view": event.view, "prompt_hash": event.prompt_hash}
        prompt = self.prompts.get(event.prompt_hash or "")
        if prompt is not None:
            args["prompt"] = prompt
        args.update(_detail(event))
        self._begin(track, name, "op", ts, args, out)

    def _op_end(self, event: TraceEvent, ts: float, out: list[ChromeEvent]) -> None:
        track = self._task_track(event.task, out)
        args: Args = {"duration_s": event.duration}
        if event.hit is not None:
            args["hit"] = event.hit
        args.update(_detail(event))
        if self.open_ops.pop(event.task, None) is None:
            # No op_start in the trace (a capped recorder dropped it): rebuild the begin.
            name = event.op or "op"
            begin = ts - _us(interval_seconds(event))
            self._begin(track, name, "op", begin, {"view": event.view}, out)
        self._end(track, ts, args, out)

    def _probe_start(self, event: TraceEvent, ts: float, out: list[ChromeEvent]) -> None:
        name = probe_name(event)
        lane = self._probe_lane(out)
        self.open_probes.setdefault(name, []).append((lane, ts))
        track = (PROBES_PID, self.probe_tids[lane])
        self._begin(track, name, "probe", ts, _probe_args(event), out)

    def _probe_end(self, event: TraceEvent, ts: float, out: list[ChromeEvent]) -> None:
        name = probe_name(event)
        lanes = self.open_probes.get(name)
        args = _probe_args(event)
        if lanes:
            lane, start = lanes.pop()
            if event.duration is not None:
                ts = start + _us(event.duration)  # the result's duration, from its start
        else:
            lane = self._probe_lane(out)
            track = (PROBES_PID, self.probe_tids[lane])
            begin = ts - _us(interval_seconds(event))
            self._begin(track, name, "probe", begin, {}, out)
        self.probe_lanes[lane] = False
        self._end((PROBES_PID, self.probe_tids[lane]), ts, args, out)

    def finish(self) -> list[ChromeEvent]:
        """Close every slice still open at the last timestamp seen."""
        out: list[ChromeEvent] = []
        for track, stack in self.open_slices.items():
            while stack:
                self._end(track, self.max_ts, {"unfinished": True}, out)
        return out


def _meta(name: str, pid: int, tid: int, args: Args) -> ChromeEvent:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _probe_args(event: TraceEvent) -> Args:
    """A probe event's detail without the probe's name, which names the slice."""
    return {k: v for k, v in _detail(event).items() if k != "probe"}


def _instant_name(event: TraceEvent) -> str:
    detail = event.detail or {}
    if event.kind == "fault":
        return f"fault {detail.get('kind', '?')}"
    if event.kind == "latency":
        return f"latency {event.op}"
    if event.kind in _INSTANT_KINDS:
        return event.kind
    return f"{event.kind} (unknown kind)"


def _instant_args(event: TraceEvent) -> Args:
    args: Args = {}
    if event.view is not None:
        args["view"] = event.view
    if event.op is not None:
        args["op"] = event.op
    if event.prompt_hash is not None:
        args["prompt_hash"] = event.prompt_hash
    if event.duration is not None:
        args["seconds"] = event.duration
    args.update(_detail(event))
    return args


def chrome_events(events: Iterable[TraceEvent]) -> Iterator[ChromeEvent]:
    """The Chrome trace events for ``events``, lazily, in file order."""
    converter = _Converter()
    for event in events:
        yield from converter.convert(event)
    yield from converter.finish()


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)


def write_chrome(events: Iterable[TraceEvent], stream: IO[str], *, source: str = "") -> int:
    """Stream the Chrome trace JSON for ``events`` to ``stream``; returns the event count."""
    other = {"producer": "swaysim", "trace_schema": SCHEMA_VERSION, "source": source}
    stream.write('{"displayTimeUnit":"ms","otherData":')
    stream.write(_ENCODER.encode(other))
    stream.write(',"traceEvents":[\n')
    count = 0
    for chrome_event in chrome_events(events):
        if count:
            stream.write(",\n")
        try:
            line = _ENCODER.encode(chrome_event)
        except ValueError:
            line = _ENCODER.encode(finite_or_name(chrome_event))
        stream.write(line)
        count += 1
    stream.write("\n]}\n")
    return count


def export_chrome(trace_path: Path, output: Path) -> None:
    """Convert the trace file at ``trace_path`` to a Chrome trace JSON file at ``output``.

    Open the result in https://ui.perfetto.dev or chrome://tracing. ``output``
    is replaced whole, never written through a link; a trace that stops
    being readable halfway leaves it as it was.
    """
    trace_path = Path(trace_path)
    events = read_trace(trace_path)

    def write(binary: IO[bytes]) -> None:
        with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as stream:
            write_chrome(events, stream, source=trace_path.name)

    write_file_atomically(Path(output), write)
