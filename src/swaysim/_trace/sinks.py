"""The trace sinks swaysim ships: a streaming JSONL file writer and an in-memory recorder.

:class:`JsonlTraceWriter` streams events to a ``.jsonl`` (or ``.jsonl.gz``)
file, holding at most ``flush_every`` encoded lines in memory;
:class:`TraceRecorder` keeps the most recent events in memory (capped), for
tests. Every object with ``emit(event)`` is a sink too (:class:`TraceSink`).
"""

from __future__ import annotations

from collections import Counter, deque
from math import copysign
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from swaysim._trace.encode import (
    OP_END_HEAD,
    OP_START_HEAD,
    ZERO_TEXT,
    encode_event,
    encode_fields,
    encode_op_end,
    encode_op_start,
    kept_float_text,
    known_op_text,
    op_text,
)
from swaysim._trace.events import TraceEvent
from swaysim._trace.schema import open_trace_text
from swaysim._validation import require_int
from swaysim.errors import SwaysimError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping
    from types import TracebackType

__all__ = ["JsonlTraceWriter", "TraceRecorder"]


class JsonlTraceWriter:
    """A trace sink that streams events to a JSON-lines file.

    At most ``flush_every`` encoded lines are held in memory; then they are
    written and flushed to the operating system in one write, so a run of
    any length writes its trace in constant memory and a crash loses at most
    that many events. A backend hands its events over as fields
    (:meth:`emit_fields`): no event object is built for the writer. A path
    ending in ``.gz`` is gzip-compressed. Use it as a context manager, or
    call :meth:`close`.

    ``stream``: write to this binary stream (which the writer then owns and
    closes) instead of opening ``path``; ``path`` still names the file and
    decides compression. ``swaysim run --trace`` opens its files this way,
    without following links.

    A failing write (a full disk, a removed device) never reaches the code
    being traced: the writer records the error (:attr:`error`), stops
    writing, counts the events it could not write (:attr:`events_dropped`)
    and :attr:`complete` turns False. Neither :meth:`emit` nor :meth:`close`
    raises for it; check :attr:`complete` after the run.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_dropped",
        "_error",
        "_file",
        "_flush_every",
        "_path",
        "_raw",
        "_written",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_every: int = 1024,
        stream: IO[bytes] | None = None,
    ) -> None:
        require_int("flush_every", flush_every, minimum=1)
        self._path = Path(path)
        self._flush_every = flush_every
        self._buffer: list[str] = []
        self._written = 0
        self._dropped = 0
        self._error: OSError | None = None
        self._closed = False
        self._raw = stream
        self._file: IO[str] | None = open_trace_text(self._path, write=True, binary=stream)

    @property
    def path(self) -> Path:
        """Where the trace goes."""
        return self._path

    @property
    def events_written(self) -> int:
        """Events emitted so far and not dropped (written or still buffered)."""
        return self._written + len(self._buffer)

    @property
    def events_dropped(self) -> int:
        """Events lost to a write error (see :attr:`error`)."""
        return self._dropped

    @property
    def error(self) -> OSError | None:
        """The write error that stopped the trace, if one did."""
        return self._error

    @property
    def complete(self) -> bool:
        """Whether every event emitted so far reached the file (no write error)."""
        return self._error is None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def emit(self, event: TraceEvent) -> None:
        """Encode ``event`` into the buffer, writing the buffer out when it is full."""
        if self._file is None:
            self._refuse()
            return
        buffer = self._buffer
        buffer.append(encode_event(event))
        if len(buffer) >= self._flush_every:
            self.flush()

    def emit_fields(
        self,
        kind: str,
        time: float,
        task: str,
        view: str | None = None,
        op: str | None = None,
        prompt_hash: str | None = None,
        hit: bool | None = None,
        duration: float | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """``emit(TraceEvent(kind, time, ...))`` without building the event (see TraceSink).

        The line is encoded at once, like :meth:`emit`'s: holding the fields
        for a batch encoding was measured slower, and a held tuple per event
        makes the garbage collector run more often under thousands of tasks.
        """
        if self._file is None:
            self._refuse()
            return
        buffer = self._buffer
        buffer.append(encode_fields(kind, time, task, view, op, prompt_hash, hit, duration, detail))
        if len(buffer) >= self._flush_every:
            self.flush()

    def emit_op_start(self, time: float, task: str, view: str, op: str, prompt_hash: str) -> str:
        """``emit_fields("op_start", time, task, view, op, prompt_hash)``, the hottest event.

        Returns what :meth:`emit_op_end` takes for the same op in place of
        the four fields (their text, encoded once for both events). A time
        whose text is kept is spelled out here, :func:`encode_op_start`
        inline: a Python call costs as much as the rest.
        """
        shared = known_op_text((task, view, op, prompt_hash)) or op_text(
            task, view, op, prompt_hash
        )
        if self._file is None:
            self._refuse()
            return shared
        stamp = kept_float_text(time) if type(time) is float else None
        if stamp is None or (stamp is ZERO_TEXT and copysign(1.0, time) < 0):
            line = encode_op_start(time, shared) or encode_fields(
                "op_start", time, task, view, op, prompt_hash
            )
        else:
            line = f"{OP_START_HEAD}{stamp}{shared}}}"
        buffer = self._buffer
        buffer.append(line)
        if len(buffer) >= self._flush_every:
            self.flush()
        return shared

    def emit_op_end(
        self,
        time: float,
        task: str,
        view: str,
        op: str,
        prompt_hash: str,
        hit: bool,
        duration: float,
        call: int,
        shared: str,
    ) -> None:
        """``emit_fields("op_end", ..., hit, duration, {"call": call})`` for an op that returned.

        ``shared``: what :meth:`emit_op_start` returned for the op. Kept
        texts are spelled out here, as there.
        """
        if self._file is None:
            self._refuse()
            return
        stamp = kept_float_text(time) if type(time) is float else None
        span = kept_float_text(duration) if type(duration) is float else None
        if (
            stamp is None
            or span is None
            or (stamp is ZERO_TEXT and copysign(1.0, time) < 0)
            or (span is ZERO_TEXT and copysign(1.0, duration) < 0)
        ):
            line = encode_op_end(time, shared, hit, duration, call) or encode_fields(
                "op_end", time, task, view, op, prompt_hash, hit, duration, {"call": call}
            )
        else:
            line = (
                f'{OP_END_HEAD}{stamp}{shared},"hit":{"true" if hit else "false"}'
                f',"duration":{span},"detail":{{"call":{call}}}}}'
            )
        buffer = self._buffer
        buffer.append(line)
        if len(buffer) >= self._flush_every:
            self.flush()

    def _refuse(self) -> None:
        """An event after close() raises; after a write error it is counted as dropped."""
        if self._closed:
            raise self._closed_error()
        self._dropped += 1

    def flush(self) -> None:
        """Write buffered lines and flush them to the operating system."""
        stream = self._file
        if stream is None:
            if self._closed:
                raise self._closed_error()
            return
        buffer = self._buffer
        try:
            if buffer:
                stream.write("\n".join(buffer))
                stream.write("\n")
            stream.flush()
        except OSError as exc:
            self._fail(exc)  # the lines of this write count as lost: some may be on disk
            return
        self._written += len(buffer)
        buffer.clear()

    def _fail(self, error: OSError) -> None:
        """Stop writing after ``error``: what is buffered is lost, later events are counted."""
        self._error = error
        self._dropped += len(self._buffer)
        self._buffer.clear()
        self._release()

    def _release(self) -> None:
        """Close the file and the stream under it; errors on the way are recorded, not raised."""
        for closable in (self._file, self._raw):
            if closable is None:
                continue
            try:
                closable.close()
            except OSError as exc:
                if self._error is None:
                    self._error = exc
            except ValueError:  # a gzip stream that failed mid-write
                pass
        self._file = None
        self._raw = None

    def _closed_error(self) -> SwaysimError:
        return SwaysimError(
            f"the JsonlTraceWriter for {str(self._path)!r} is closed; "
            "events emitted after close() would be lost"
        )

    def close(self) -> None:
        """Write what is buffered and close the file; closing twice is harmless.

        A write error here is recorded (:attr:`error`), not raised.
        """
        if self._closed:
            return
        try:
            if self._file is not None:
                self.flush()
        finally:
            self._release()
            self._closed = True

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
        state = "closed" if self._closed else "open"
        if self._error is not None:
            state += f", incomplete ({self._error.strerror or self._error})"
        dropped = f" dropped={self._dropped}" if self._dropped else ""
        return (
            f"<JsonlTraceWriter {str(self._path)!r} {state} events={self.events_written}"
            f"{dropped} flush_every={self._flush_every}>"
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

    def emit_fields(
        self,
        kind: str,
        time: float,
        task: str,
        view: str | None = None,
        op: str | None = None,
        prompt_hash: str | None = None,
        hit: bool | None = None,
        duration: float | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """``emit(TraceEvent(kind, time, ...))``: the event is what a recorder keeps."""
        self.emit(TraceEvent(kind, time, task, view, op, prompt_hash, hit, duration, detail))

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
