"""The backend's time base and its trace stage: events stamped with loop time and task.

A backend with no sink builds no event: every caller holds a
``BackendTracer | None`` and pays one ``is None`` test. An op is traced as a
span: :meth:`BackendTracer.start_op` emits ``op_start``; the op ends it with
:meth:`OpSpan.end` (knowing whether the cache hit) or, if it raises,
:meth:`OpSpan.fail`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import anyio
import sniffio
from anyio.lowlevel import current_token

from swaysim._trace.events import TraceEvent
from swaysim._trace.prompts import PromptTable, prompt_detail

if TYPE_CHECKING:
    from collections.abc import Mapping

    from swaysim._chaos.faults import FaultFiring
    from swaysim._trace.events import TraceSink

__all__ = ["BackendTracer", "LoopClock", "OpSpan", "current_task_name"]


class LoopClock:
    """Loop seconds since the backend's first use in the current event loop.

    Restarted (by :meth:`refresh`, on every view entry) when the backend is
    used in another event loop, so every run's trace starts near zero.
    """

    __slots__ = ("_epoch", "_loop")

    def __init__(self) -> None:
        self._epoch = 0.0
        self._loop: object = None

    def refresh(self) -> None:
        """Restart the epoch if this is a different event loop than last time."""
        loop = current_token().native_token
        if loop is not self._loop:
            self._loop = loop
            self._epoch = anyio.current_time()

    def now(self) -> float:
        """Loop seconds since the epoch."""
        return anyio.current_time() - self._epoch


def current_task_name() -> str:
    """The current task as ``"name#id"``, the name and id anyio's ``TaskInfo`` gives it.

    Read from the loop's own task: ``anyio.get_current_task()`` builds a
    ``TaskInfo`` (and looks up the parent) per call, a microsecond per trace
    event. Not cached per task: the lookup would cost as much.
    """
    library = sniffio.current_async_library()
    if library == "asyncio":
        current = asyncio.current_task()
        if current is not None:
            return f"{current.get_name()}#{id(current)}"
    elif library == "trio":
        task = sys.modules["trio"].lowlevel.current_task()
        return f"{task.name}#{id(task)}"
    info = anyio.get_current_task()  # pragma: no cover - anyio supports asyncio and trio only
    return f"{info.name}#{info.id}"  # pragma: no cover


def _discard(event: TraceEvent) -> None:
    """Where events go once the sink has failed."""


class BackendTracer:
    """Builds the backend's trace events and hands them to its sink.

    Prompt hashes come from a :class:`~swaysim._trace.prompts.PromptTable`: a
    key text's first use writes a ``prompt`` event with the text, later uses
    cost one dictionary lookup (no hashing, nothing written).

    A sink that raises (a full disk under a sink of one's own) must not turn
    every op into an error: the first exception is kept in :attr:`error`
    and later events are dropped, so the run goes on and its results stand.
    """

    __slots__ = ("_emit", "clock", "error", "prompts", "sink")

    def __init__(self, sink: TraceSink, clock: LoopClock) -> None:
        self.sink = sink
        self.clock = clock
        self.error: Exception | None = None
        self._emit = sink.emit
        self.prompts = PromptTable(self._prompt)

    def _prompt(self, prompt_hash: str, text: str) -> None:
        self.emit("prompt", None, prompt_hash=prompt_hash, detail=prompt_detail(text))

    def emit(
        self,
        kind: str,
        view: str | None,
        *,
        op: str | None = None,
        prompt_hash: str | None = None,
        hit: bool | None = None,
        duration: float | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """One event, stamped now, in the current task."""
        # Positional: a third cheaper than keywords, on a path taken three times per op.
        try:
            self._emit(
                TraceEvent(
                    kind,
                    self.clock.now(),
                    current_task_name(),
                    view,
                    op,
                    prompt_hash,
                    hit,
                    duration,
                    detail,
                )
            )
        except Exception as exc:
            self.error = exc
            self._emit = _discard

    def latency(self, view_id: str, what: str, seconds: float) -> None:
        """A latency event: an op's service time, or a view switch, enter or exit."""
        self.emit("latency", view_id, op=what, duration=seconds)

    def fault(self, firing: FaultFiring) -> None:
        """A fault firing, with its rule, kind and call number."""
        self.emit(
            "fault",
            firing.view_id,
            op=firing.op,
            prompt_hash=self.prompts.hash_of(firing.prompt) if firing.prompt else None,
            detail={"rule": firing.rule_name, "kind": firing.kind, "call": firing.call_index},
        )

    def start_op(
        self, view_id: str, op: str, key_text: str, detail: Mapping[str, object] | None
    ) -> OpSpan:
        """Emit ``op_start`` for one op on ``view_id`` and return the span that ends it."""
        span = OpSpan(self, view_id, op, self.prompts.hash_of(key_text), self.clock.now(), detail)
        self.emit("op_start", view_id, op=op, prompt_hash=span.prompt_hash, detail=detail)
        return span


class OpSpan:
    """One traced op in progress: ends with ``op_end``, carrying a hit or an error."""

    __slots__ = ("_tracer", "detail", "op", "prompt_hash", "started", "view_id")

    def __init__(
        self,
        tracer: BackendTracer,
        view_id: str,
        op: str,
        prompt_hash: str,
        started: float,
        detail: Mapping[str, object] | None,
    ) -> None:
        self._tracer = tracer
        self.view_id = view_id
        self.op = op
        self.prompt_hash = prompt_hash
        self.started = started
        self.detail = detail

    def end(self, hit: bool, detail: Mapping[str, object]) -> None:
        """The op returned: whether the cache served it all, and what it did."""
        self._close(hit, detail)

    def corrupted(self, kind: str, item: int | None = None) -> None:
        """An output fault changed the answer: already traced as its firing."""

    def fail(self, exc: BaseException) -> None:
        """The op raised (or was cancelled): ``op_end`` names the error."""
        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
        error = "cancelled" if cancelled else type(exc).__name__
        self._close(None, {**(self.detail or {}), "error": error})

    def _close(self, hit: bool | None, detail: Mapping[str, object]) -> None:
        tracer = self._tracer
        tracer.emit(
            "op_end",
            self.view_id,
            op=self.op,
            prompt_hash=self.prompt_hash,
            hit=hit,
            duration=tracer.clock.now() - self.started,
            detail=detail,
        )

    def __repr__(self) -> str:
        return f"<OpSpan {self.op} on {self.view_id!r} since {self.started:.6g}>"
