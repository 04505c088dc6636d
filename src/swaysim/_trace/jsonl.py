"""The trace format: one JSON object per line, and the sinks that write it.

A backend (and the runner driving it) reports what happened as
:class:`~swaysim.TraceEvent` objects to a :class:`~swaysim.TraceSink`. This
module fixes how those events look on disk, so a trace can be summarised,
exported to Perfetto or rendered as an HTML report after the run:

- :class:`JsonlTraceWriter` streams events to a ``.jsonl`` (or ``.jsonl.gz``)
  file, holding at most ``flush_every`` encoded lines in memory.
- :func:`read_trace` streams them back, one event at a time, validating as
  it goes.
- :class:`TraceRecorder` keeps the most recent events in memory (capped), for
  tests.

Schema, version 1 (``docs/trace-format.md`` has the same text with examples).
Every line is a JSON object; keys that do not apply are absent (``null`` is
read as absent). Readers ignore keys they do not know: adding a key keeps
``v``; changing or removing one bumps it.

``v`` (int, always)
    Schema version: ``1``.
``kind`` (string, always)
    What happened; see the table below. Readers skip kinds they do not know.
``time`` (number, always)
    Loop time in seconds since the backend's epoch (its first use in the
    current event loop), taken when the event was emitted. Events are
    written in the order they were emitted, so ``time`` never decreases
    along a file written from one event loop.
``task`` (string, always)
    The emitting task as ``"name#id"`` (anyio's task name and id).
``view`` (string)
    The view id: ``"base"``, ``"ft"``, ``"scaled_0.50"``, ``"null_42"``...
    (the runner's ``retry`` and ``timeout`` events use the same ids).
``op`` (string)
    The op name (``"next_token_dist"``...); for ``latency`` what was priced
    (an op name, ``"switch"``, ``"enter"`` or ``"exit"``); for ``fault`` the
    op or ``"enter"``/``"exit"``.
``prompt_hash`` (string)
    First 12 hex digits of the SHA-1 of the op's key text (the prompt; the
    prompt and completion joined by NUL for ``logprob_of``; the prompts
    joined by RS for a batch). Prompts themselves are never written.
``hit`` (bool)
    ``op_end`` only: true when the forward cache answered (no forward pass).
``duration`` (number, seconds)
    For an event that closes an interval (``view_wait``, ``view_exit``,
    ``op_end``, ``probe_end``), the interval's length: it began at
    ``time - duration``. For ``latency``, the seconds drawn, which the
    caller then spends.
``detail`` (object)
    Kind-specific fields, listed below.

Kinds (B = emitted by the backend, R = by the runner):

=============  ==  =============================================================
kind           by  when, and its fields
=============  ==  =============================================================
view_wait      B   a task that had to wait for the exclusivity gate got in;
                   ``view``, ``duration`` = seconds waited. Followed at the
                   same ``time`` by that task's ``view_enter``.
view_enter     B   a task got a view (before any switch/enter latency); ``view``.
view_exit      B   the view was released; ``view``, ``duration`` = seconds held
                   since ``view_enter``; ``detail.aborted`` true when entering
                   failed after the gate let the task in (a fault on enter,
                   cancelled during the switch latency).
op_start       B   an op call began; ``view``, ``op``, ``prompt_hash``; a batch
                   adds ``detail.items``.
op_end         B   the call finished, successfully or not; ``view``, ``op``,
                   ``prompt_hash``, ``duration``; a batch adds ``detail.items``.
                   On success: ``hit`` and ``detail.call`` (the per-key call
                   index); a batch adds ``detail.computed`` (items that needed
                   a forward pass). On failure: no ``hit``, and
                   ``detail.error`` is the exception class name, or
                   ``"cancelled"``.
latency        B   a latency draw; ``view``, ``op`` = what was priced,
                   ``duration`` = seconds drawn.
fault          B   a fault rule fired; ``view``, ``op``, ``prompt_hash`` (of the
                   prompt alone, when the call has one), ``detail.rule``,
                   ``detail.kind``, ``detail.call``.
probe_start    R   a probe began; ``detail.probe`` (its name),
                   ``detail.probe_kind``.
probe_end      R   a probe finished; ``detail.probe``, ``detail.probe_kind``,
                   ``detail.verdict``; optionally ``duration`` (swaysim's
                   runner leaves it out: pair it with ``probe_start``).
retry          R   the runner retries a failed request or view entry; ``view``,
                   ``op`` (``"enter"`` for an entry), ``detail.attempt``,
                   ``detail.delay`` (seconds of backoff); a request's retry
                   adds ``detail.probe`` and ``detail.error``.
timeout        R   a per-op or per-probe timeout expired; ``op`` (``"probe"``
                   for a probe timeout), ``detail.probe``, ``detail.seconds``;
                   ``view`` except for a function probe's timeout.
=============  ==  =============================================================

Non-finite numbers, which JSON cannot hold, are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"``; values JSON has no type for are written
as their ``str()``.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from swaysim._trace.events import TraceEvent
from swaysim._validation import require_int
from swaysim.errors import InvalidArgumentError, SwaysimError, TraceFormatError

if TYPE_CHECKING:
    import os
    from types import TracebackType

__all__ = [
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "JsonlTraceWriter",
    "TraceFormatError",
    "TraceRecorder",
    "decode_event",
    "encode_event",
    "read_trace",
]

SCHEMA_VERSION: Final = 1
BACKEND_KINDS: Final[tuple[str, ...]] = (
    "view_wait",
    "view_enter",
    "view_exit",
    "op_start",
    "op_end",
    "latency",
    "fault",
)
RUNNER_KINDS: Final[tuple[str, ...]] = ("probe_start", "probe_end", "retry", "timeout")
EVENT_KINDS: Final[tuple[str, ...]] = BACKEND_KINDS + RUNNER_KINDS
_OPTIONAL_STRINGS: Final = ("view", "op", "prompt_hash")
_NON_FINITE_NAMES: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        result: object = item()
        return result
    return str(value)


_ENCODER: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_json_default)


def finite_or_name(value: Any) -> Any:
    """``value`` with non-finite floats replaced by "nan", "inf" or "-inf", recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): finite_or_name(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_name(v) for v in value]
    return value


def event_record(event: TraceEvent) -> dict[str, Any]:
    """The event as the JSON object of one trace line (absent fields left out)."""
    record: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": event.kind,
        "time": event.time,
        "task": event.task,
    }
    if event.view is not None:
        record["view"] = event.view
    if event.op is not None:
        record["op"] = event.op
    if event.prompt_hash is not None:
        record["prompt_hash"] = event.prompt_hash
    if event.hit is not None:
        record["hit"] = event.hit
    if event.duration is not None:
        record["duration"] = event.duration
    if event.detail is not None:
        detail = event.detail
        record["detail"] = detail if type(detail) is dict else dict(detail)
    return record


# The C encoder ``_ENCODER.encode`` builds on every call, made once: a trace
# detail is a small acyclic dict, so the circular-reference check is skipped.
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_DETAIL_ENCODER: Final = (
    None
    if _C_MAKE_ENCODER is None
    else _C_MAKE_ENCODER(
        None, _json_default, encode_basestring_ascii, None, ":", ",", *(False,) * 3
    )
)


_LINE_START: Final = f'{{"v":{SCHEMA_VERSION},"kind":'


def _encode_detail(detail: Mapping[str, Any]) -> str:
    if type(detail) is not dict:
        detail = dict(detail)
    if _DETAIL_ENCODER is None:  # pragma: no cover - CPython always has _json
        return _ENCODER.encode(detail)
    return "".join(_DETAIL_ENCODER(detail, 0))


def _encode_fast(event: TraceEvent) -> str:
    """``encode_event`` for the common event, spelled out: half the cost of encoding a dict.

    Byte-identical to ``_ENCODER.encode(event_record(event))`` (a test checks
    it); raises ``TypeError`` or ``ValueError`` for anything unusual (a
    non-float or non-finite number, a non-string field), which the caller
    hands to the general path.
    """
    time = event.time
    if type(time) is not float or not math.isfinite(time):
        raise ValueError(time)
    quote = encode_basestring_ascii
    parts = [
        _LINE_START,
        quote(event.kind),
        ',"time":',
        float.__repr__(time),
        ',"task":',
        quote(event.task),
    ]
    if event.view is not None:
        parts += (',"view":', quote(event.view))
    if event.op is not None:
        parts += (',"op":', quote(event.op))
    if event.prompt_hash is not None:
        parts += (',"prompt_hash":', quote(event.prompt_hash))
    hit = event.hit
    if hit is not None:
        if type(hit) is not bool:
            raise TypeError(hit)
        parts.append(',"hit":true' if hit else ',"hit":false')
    duration = event.duration
    if duration is not None:
        if type(duration) is not float or not math.isfinite(duration):
            raise ValueError(duration)
        parts += (',"duration":', float.__repr__(duration))
    if event.detail is not None:
        parts += (',"detail":', _encode_detail(event.detail))
    parts.append("}")
    return "".join(parts)


def encode_event(event: TraceEvent) -> str:
    """One trace line for ``event``, without the newline."""
    try:
        return _encode_fast(event)
    except (TypeError, ValueError):
        pass
    record = event_record(event)
    try:
        return _ENCODER.encode(record)
    except ValueError:
        # Only non-finite floats get here; the common case pays nothing for them.
        return _ENCODER.encode(finite_or_name(record))


def probe_name(event: TraceEvent) -> str:
    """A ``probe_start``/``probe_end`` event's ``detail.probe``, ``"?"`` when absent."""
    return str((event.detail or {}).get("probe", "?"))


def probe_kind(event: TraceEvent) -> str:
    """A probe event's ``detail.probe_kind``, ``""`` when absent."""
    return str((event.detail or {}).get("probe_kind", ""))


def _number(value: object, name: str, where: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, str) and value in _NON_FINITE_NAMES and name != "time":
        return _NON_FINITE_NAMES[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceFormatError(f"{where}: {name}={value!r} must be a number")
    number = float(value)
    if name == "time" and not math.isfinite(number):
        raise TraceFormatError(f"{where}: time={value!r} must be finite")
    return number


def decode_event(line: str, *, where: str = "trace line") -> TraceEvent:
    """Parse one trace line, raising :class:`TraceFormatError` that names ``where``."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(
            f"{where}: not a JSON object ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(record, dict):
        raise TraceFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    version = record.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise TraceFormatError(
            f"{where}: v={version!r} is not a trace schema version this swaysim reads "
            f"(it reads v={SCHEMA_VERSION})"
        )
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        raise TraceFormatError(f"{where}: kind={kind!r} must be a non-empty string")
    task = record.get("task")
    if not isinstance(task, str):
        raise TraceFormatError(f"{where}: task={task!r} must be a string")
    time = _number(record.get("time"), "time", where, optional=False)
    assert time is not None
    strings: dict[str, str | None] = {}
    for name in _OPTIONAL_STRINGS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise TraceFormatError(f"{where}: {name}={value!r} must be a string")
        strings[name] = value
    hit = record.get("hit")
    if hit is not None and not isinstance(hit, bool):
        raise TraceFormatError(f"{where}: hit={hit!r} must be true or false")
    duration = _number(record.get("duration"), "duration", where, optional=True)
    detail = record.get("detail")
    if detail is not None and not isinstance(detail, dict):
        raise TraceFormatError(f"{where}: detail={detail!r} must be a JSON object")
    return TraceEvent(
        kind=kind,
        time=time,
        task=task,
        view=strings["view"],
        op=strings["op"],
        prompt_hash=strings["prompt_hash"],
        hit=hit,
        duration=duration,
        detail=detail,
    )


def _open_text(path: Path, *, write: bool) -> IO[str]:
    """A UTF-8 text stream on ``path``, gzip-compressed when it ends in ``.gz``."""
    if path.suffix == ".gz":
        if write:
            return gzip.open(path, "wt", encoding="utf-8", newline="\n")
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, "w" if write else "r", encoding="utf-8", newline="\n")


def read_trace(path: str | os.PathLike[str]) -> Iterator[TraceEvent]:
    """Stream the events of a trace file (``.jsonl``, or gzipped ``.jsonl.gz``).

    Memory stays constant whatever the file's size. Blank lines are skipped;
    a malformed line raises :class:`TraceFormatError` naming the file and
    line number when the iteration reaches it. A missing file is reported at
    once.
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidArgumentError(f"path={str(source)!r} must be an existing trace file")
    return _events(source)


def _events(source: Path) -> Iterator[TraceEvent]:
    with _open_text(source, write=False) as stream:
        for number, line in enumerate(stream, start=1):
            if not line or line.isspace():
                continue
            yield decode_event(line, where=f"{source}:{number}")


class JsonlTraceWriter:
    """A trace sink that streams events to a JSON-lines file.

    At most ``flush_every`` encoded lines are held in memory; then they are
    written and flushed to the operating system, so a run of any length
    writes its trace in constant memory and a crash loses at most that
    many events. A path ending in ``.gz`` is gzip-compressed. Use it as a
    context manager, or call :meth:`close`.
    """

    __slots__ = ("_buffer", "_file", "_flush_every", "_path", "_written")

    def __init__(self, path: str | os.PathLike[str], *, flush_every: int = 1024) -> None:
        require_int("flush_every", flush_every, minimum=1)
        self._path = Path(path)
        self._flush_every = flush_every
        self._buffer: list[str] = []
        self._written = 0
        self._file: IO[str] | None = _open_text(self._path, write=True)

    @property
    def path(self) -> Path:
        """Where the trace goes."""
        return self._path

    @property
    def events_written(self) -> int:
        """Events emitted so far (written or still buffered)."""
        return self._written + len(self._buffer)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file is None

    def emit(self, event: TraceEvent) -> None:
        """Encode ``event`` into the buffer, writing the buffer out when it is full."""
        if self._file is None:
            raise self._closed_error()
        buffer = self._buffer
        buffer.append(encode_event(event))
        if len(buffer) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Write buffered lines and flush them to the operating system."""
        stream = self._file
        if stream is None:
            raise self._closed_error()
        buffer = self._buffer
        if buffer:
            stream.write("\n".join(buffer))
            stream.write("\n")
            self._written += len(buffer)
            buffer.clear()
        stream.flush()

    def _closed_error(self) -> SwaysimError:
        return SwaysimError(
            f"the JsonlTraceWriter for {str(self._path)!r} is closed; "
            "events emitted after close() would be lost"
        )

    def close(self) -> None:
        """Write what is buffered and close the file; closing twice is harmless."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonlTraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._file is None else "open"
        return (
            f"<JsonlTraceWriter {str(self._path)!r} {state} events={self.events_written} "
            f"flush_every={self._flush_every}>"
        )


class TraceRecorder:
    """A trace sink that keeps the most recent ``max_events`` events in memory.

    Meant for tests: assert on :attr:`events` or :meth:`kinds`. Older events
    are dropped past the cap (counted in :attr:`dropped`), so a long run
    cannot exhaust memory through a forgotten recorder.
    """

    __slots__ = ("_events", "_max_events", "dropped")

    def __init__(self, *, max_events: int = 100_000) -> None:
        require_int("max_events", max_events, minimum=1)
        self._max_events = max_events
        self._events: deque[TraceEvent] = deque(maxlen=max_events)
        self.dropped = 0

    @property
    def max_events(self) -> int:
        """How many events are kept."""
        return self._max_events

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        """The kept events, oldest first."""
        return tuple(self._events)

    def emit(self, event: TraceEvent) -> None:
        """Keep ``event``, dropping the oldest one when full."""
        events = self._events
        if len(events) == self._max_events:
            self.dropped += 1
        events.append(event)

    def kinds(self) -> list[str]:
        """The kind of every kept event, in order."""
        return [event.kind for event in self._events]

    def of_kind(self, *kinds: str) -> list[TraceEvent]:
        """The kept events whose kind is one of ``kinds``, in order."""
        return [event for event in self._events if event.kind in kinds]

    def clear(self) -> None:
        """Forget every event and the drop count."""
        self._events.clear()
        self.dropped = 0

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the kept events as a trace file (see :class:`JsonlTraceWriter`)."""
        with JsonlTraceWriter(path) as writer:
            for event in self._events:
                writer.emit(event)
        return Path(path)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self._events)

    def __repr__(self) -> str:
        counts = Counter(event.kind for event in self._events)
        shown = ", ".join(f"{kind}={count}" for kind, count in sorted(counts.items()))
        return (
            f"<TraceRecorder {len(self._events)}/{self._max_events} events "
            f"dropped={self.dropped} {{{shown}}}>"
        )
