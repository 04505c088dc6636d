"""The backend's time base and its trace stage: events stamped with loop time and task.

A backend with no sink builds no event: every caller holds a
``BackendTracer | None`` and pays one ``is None`` test. A single op, the
hottest thing a trace holds, is traced without a span object:
:meth:`BackendTracer.op_started` emits ``op_start`` and returns a plain tuple
the op ends with :meth:`BackendTracer.op_ended` (or :meth:`~BackendTracer.op_failed`),
from the pipeline or, for a cache hit on a backend that only traces, from the
view itself.
A batch, or an op a scenario ledger records, is a span:
:meth:`BackendTracer.start_op` emits ``op_start``; the op ends it with
:meth:`OpSpan.end` (knowing whether the cache hit) or, if it raises,
:meth:`OpSpan.fail`.

Events go to the sink as their nine fields, positionally: to the sink's
``emit_fields`` when it has one (:class:`~swaysim.JsonlTraceWriter` and
:class:`~swaysim.TraceRecorder` do), so nothing is built per event beyond
what the sink keeps; to ``emit(TraceEvent(...))`` otherwise. A single op's two
events go to a :class:`~swaysim.JsonlTraceWriter` through its op lane
(``emit_op_start``/``emit_op_end``), which encodes what the two share once.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import sys
import time
from asyncio import _get_running_loop
from typing import TYPE_CHECKING, Any, Final, cast

import anyio
import sniffio
from anyio.lowlevel import checkpoint, current_token

from swaysim._trace.events import TraceEvent
from swaysim._trace.prompts import PromptTable, prompt_detail
from swaysim._trace.sinks import JsonlTraceWriter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from swaysim._chaos.faults import FaultFiring
    from swaysim._trace.events import TraceSink

__all__ = ["BackendTracer", "LoopClock", "OpSpan", "OpStart", "current_task_name"]

_ASYNCIO_CHECKPOINT: Final = functools.partial(asyncio.sleep, 0)
"""What ``anyio.lowlevel.checkpoint()`` awaits on asyncio, without its two frames."""


def current_task_name() -> str:
    """The current task as ``"name#id"``, the name and id anyio's ``TaskInfo`` gives it.

    Read from the loop's own task: ``anyio.get_current_task()`` builds a
    ``TaskInfo`` (and looks up the parent) per call, a microsecond per trace
    event. Inside a backend, :meth:`LoopClock.task_name` skips the library
    lookup too.
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


_ASYNCIO_NAME_OF: Final = operator.methodcaller("get_name")
_TRIO_NAME_OF: Final = operator.attrgetter("name")


def _name_of(task: Any) -> str:
    """A native task's name (before a clock is bound to a loop)."""
    return cast("str", task.name if sniffio.current_async_library() == "trio" else task.get_name())


def _native_current_task() -> object:
    """The running loop's own task object (before a clock is bound to a loop)."""
    if sniffio.current_async_library() == "trio":
        return sys.modules["trio"].lowlevel.current_task()
    return asyncio.current_task()


def _asyncio_current_task(loop: asyncio.AbstractEventLoop) -> Callable[[], object]:
    """``asyncio.current_task`` for ``loop``, without the running-loop lookup (a getpid()).

    On Python 3.11 ``current_task`` is a Python function over the dictionary
    of current tasks by loop; that dictionary's own lookup is a third of it.
    """
    current_tasks = getattr(asyncio.tasks, "_current_tasks", None)
    if type(current_tasks) is dict:
        return functools.partial(current_tasks.get, loop)
    return functools.partial(asyncio.current_task, loop)  # pragma: no cover - Python 3.14+


def _task_namer(
    current_task: Callable[[], Any], name_of: Callable[[Any], str]
) -> Callable[[], str]:
    """``"name#id"`` of the loop's current task, formatted again only when task or name changes.

    ``current_task`` and ``name_of`` are the loop's own (:class:`LoopClock`
    binds them): asyncio's ``get_name()``, trio's ``name``.
    """
    last_id, last_name, last_label = 0, "", ""

    def task_name() -> str:
        nonlocal last_id, last_name, last_label
        task = current_task()
        if task is None:  # pragma: no cover - backend code always runs in a task
            return current_task_name()
        name = name_of(task)
        ident = id(task)
        if ident != last_id or name is not last_name:
            last_id, last_name, last_label = ident, name, f"{name}#{ident}"
        return last_label

    return task_name


def _trio_current_task(trio: Any) -> Callable[[], object]:
    """``trio.lowlevel.current_task`` without its Python frame: the run context's ``task``.

    That function reads one attribute of trio's thread-local run context
    (and turns its absence into a RuntimeError, which cannot happen inside a
    backend's ops). Checked where it is bound, inside a run: another trio may
    keep it elsewhere, and then the function is used.
    """
    context = getattr(sys.modules.get("trio._core._run"), "GLOBAL_RUN_CONTEXT", None)
    current_task: Callable[[], object] = trio.lowlevel.current_task
    if context is not None and getattr(context, "task", None) is current_task():
        return functools.partial(getattr, context, "task")
    return current_task


def _trio_time(clock: Any) -> Callable[[], float]:
    """``clock.current_time``; for trio's ``MockClock`` (virtual time), the same in one frame.

    ``MockClock.current_time`` is two Python calls and a ``perf_counter()``
    even at rate 0, where its answer is the virtual base: read twice per
    traced op. The shortcut reads the attributes that method reads (checked
    here: another trio may lay them out differently, then the method is used).
    """
    testing = sys.modules.get("trio.testing")
    mock = getattr(testing, "MockClock", None)
    attributes = ("_rate", "_virtual_base", "_real_base", "_real_clock")
    if type(clock) is not mock or not all(hasattr(clock, name) for name in attributes):
        return cast("Callable[[], float]", clock.current_time)

    def mock_time() -> float:
        rate: float = clock._rate
        base: float = clock._virtual_base
        if not rate:
            return base + 0.0  # no cast(): a function call, on every read
        return base + rate * (clock._real_clock() - clock._real_base)  # type: ignore[no-any-return]

    return mock_time


class LoopClock:
    """Loop seconds since the backend's first use in the current loop, and that loop's primitives.

    :meth:`refresh` (on every view entry) restarts the epoch when the backend
    is used in another event loop, so every run's trace starts near zero,
    and binds the loop's own functions: :attr:`time`, :attr:`checkpoint`,
    :attr:`sleep`, :attr:`current_task` (the native task object),
    :attr:`name_of` (a native task's name), :attr:`task_name`
    (``"name#id"``) and, on asyncio, :attr:`create_future`.
    They are what anyio's functions end up calling,
    without anyio's library lookup and extra frames on every call: together
    most of a view hand-off's overhead over a bare lock. Before the first
    refresh they are anyio's own.
    """

    __slots__ = (
        "_epoch",
        "_loop",
        "checkpoint",
        "create_future",
        "current_task",
        "name_of",
        "sleep",
        "task_name",
        "time",
    )

    def __init__(self) -> None:
        self._epoch = 0.0
        self._loop: object = None
        self.time: Callable[[], float] = anyio.current_time
        self.checkpoint: Callable[[], Awaitable[object]] = checkpoint
        self.sleep: Callable[[float], Awaitable[object]] = anyio.sleep
        self.current_task: Callable[[], object] = _native_current_task
        self.task_name: Callable[[], str] = current_task_name
        self.name_of: Callable[[Any], str] = _name_of
        self.create_future: Callable[[], asyncio.Future[None]] | None = None

    def refresh(self) -> None:
        """Rebind (and restart the epoch) if this is a different event loop than last time."""
        loop: object = _get_running_loop()
        if loop is None:  # not asyncio, so trio: anyio runs on nothing else
            trio = sys.modules.get("trio")
            loop = (
                trio.lowlevel.current_trio_token()
                if trio is not None
                else current_token().native_token  # raises the usual "no loop" error
            )
        if loop is not self._loop:
            self._bind(loop)

    def _bind(self, loop: object) -> None:
        if isinstance(loop, asyncio.AbstractEventLoop):
            # The base loop's time() is time.monotonic() behind a Python frame.
            plain = type(loop).time is asyncio.BaseEventLoop.time
            self.time = time.monotonic if plain else loop.time
            self.checkpoint = _ASYNCIO_CHECKPOINT
            self.sleep = asyncio.sleep
            self.current_task = _asyncio_current_task(loop)
            self.name_of = _ASYNCIO_NAME_OF
            self.task_name = _task_namer(self.current_task, self.name_of)
            self.create_future = loop.create_future
        else:
            trio = sys.modules["trio"]
            self.time = _trio_time(trio.lowlevel.current_clock())
            self.checkpoint = trio.lowlevel.checkpoint
            self.sleep = trio.sleep
            self.current_task = _trio_current_task(trio)
            self.name_of = _TRIO_NAME_OF
            self.task_name = _task_namer(self.current_task, self.name_of)
            self.create_future = None
        self._loop = loop
        self._epoch = self.time()

    def now(self) -> float:
        """Loop seconds since the epoch."""
        return self.time() - self._epoch

    def __repr__(self) -> str:
        bound = "unbound" if self._loop is None else f"bound to {type(self._loop).__name__}"
        return f"<LoopClock {bound} epoch={self._epoch:.6g}>"


OpStart = tuple[float, str, str, Any, str, str, int]
"""What :meth:`BackendTracer.op_started` returns: start time, task, prompt hash, the sink's note,
view id, op and per-key call index."""


def _discard(*fields: object) -> None:
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

    __slots__ = (
        "_known_hash",
        "_label",
        "_label_name",
        "_label_task",
        "_send",
        "_send_op_end",
        "_send_op_start",
        "clock",
        "error",
        "prompts",
        "sink",
    )

    def __init__(self, sink: TraceSink, clock: LoopClock) -> None:
        self.sink = sink
        self.clock = clock
        self.error: Exception | None = None
        emit_fields = getattr(sink, "emit_fields", None)
        self._send: Callable[..., None] = emit_fields if callable(emit_fields) else self._as_event
        self._send_op_start: Callable[..., object] = self._op_start_fields
        self._send_op_end: Callable[..., None] = self._op_end_fields
        if (
            isinstance(sink, JsonlTraceWriter)
            and type(sink).emit_fields is JsonlTraceWriter.emit_fields
        ):
            # Only a sink that encodes exactly as the writer does takes its op lane.
            self._send_op_start = sink.emit_op_start
            self._send_op_end = sink.emit_op_end
        self.prompts = PromptTable(self._prompt)
        self._known_hash = self.prompts.known
        # The last task op_started named, and its name when it did.
        self._label_task: object = None
        self._label_name: object = None
        self._label = ""

    def _as_event(self, *fields: Any) -> None:
        """For a sink without ``emit_fields``: one :class:`TraceEvent`, to its ``emit``."""
        self.sink.emit(TraceEvent(*fields))

    def _fields(
        self,
        kind: str,
        time: float,
        view: str | None,
        op: str | None,
        prompt_hash: str | None,
        hit: bool | None,
        duration: float | None,
        detail: Mapping[str, object] | None,
    ) -> None:
        """One event, stamped ``time``, in the current task (positional: a third cheaper)."""
        try:
            self._send(
                kind, time, self.clock.task_name(), view, op, prompt_hash, hit, duration, detail
            )
        except Exception as exc:
            self._failed(exc)

    def _op_start_fields(
        self, time: float, task: str, view: str, op: str, prompt_hash: str
    ) -> None:
        self._send("op_start", time, task, view, op, prompt_hash, None, None, None)
        return None

    def _op_end_fields(
        self,
        time: float,
        task: str,
        view: str,
        op: str,
        prompt_hash: str,
        hit: bool,
        duration: float,
        call: int,
        shared: object,
    ) -> None:
        self._send("op_end", time, task, view, op, prompt_hash, hit, duration, {"call": call})

    def _failed(self, exc: Exception) -> None:
        """The sink raised: keep the error, drop every later event."""
        self.error = exc
        self._send = self._send_op_start = self._send_op_end = _discard

    def _prompt(self, prompt_hash: str, text: str) -> None:
        self._fields(
            "prompt", self.clock.now(), None, None, prompt_hash, None, None, prompt_detail(text)
        )

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
        self._fields(kind, self.clock.now(), view, op, prompt_hash, hit, duration, detail)

    def latency(self, view_id: str, what: str, seconds: float) -> None:
        """A latency event: an op's service time, or a view switch, enter or exit."""
        self._fields("latency", self.clock.now(), view_id, what, None, None, seconds, None)

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
        """Emit ``op_start`` for one op on ``view_id`` and return the span that ends it.

        The two events of an op, the hottest of a trace, are sent without
        :meth:`emit`'s frames; the task is named once for both (an op runs
        in one task).
        """
        prompt_hash = self._known_hash(key_text) or self.prompts.hash_of(key_text)
        clock = self.clock
        started = clock.time() - clock._epoch
        task = clock.task_name()
        try:
            self._send("op_start", started, task, view_id, op, prompt_hash, None, None, detail)
        except Exception as exc:
            self._failed(exc)
        return OpSpan(self, view_id, op, prompt_hash, started, detail, task)

    def op_started(self, view_id: str, op: str, key_text: str, call: int) -> OpStart:
        """Emit ``op_start`` for one op (a single op, not a batch) and return what ends it.

        What :meth:`start_op` does without the span object: the op keeps the
        returned tuple (start, task, hash, what the sink returned, view, op
        and ``call``, its per-key call index) and ends with :meth:`op_ended`
        or :meth:`op_failed`.
        """
        prompt_hash = self._known_hash(key_text) or self.prompts.hash_of(key_text)
        clock = self.clock
        started = clock.time() - clock._epoch
        # clock.task_name(), inline: the task's "name#id" is formatted again
        # only when the task or its name changed since the last op.
        current = clock.current_task()
        name = clock.name_of(current) if current is not None else None
        if current is self._label_task and name is self._label_name and name is not None:
            task = self._label
        else:
            task = self._label = clock.task_name()
            self._label_task, self._label_name = current, name
        shared = None
        try:
            shared = self._send_op_start(started, task, view_id, op, prompt_hash)
        except Exception as exc:
            self._failed(exc)
        return started, task, prompt_hash, shared, view_id, op, call

    def op_ended(self, start: OpStart, hit: bool) -> None:
        """Emit ``op_end`` for an op :meth:`op_started` began, which returned."""
        clock = self.clock
        now = clock.time() - clock._epoch
        started, task, prompt_hash, shared, view_id, op, call = start
        try:
            self._send_op_end(now, task, view_id, op, prompt_hash, hit, now - started, call, shared)
        except Exception as exc:
            self._failed(exc)

    def op_failed(self, start: OpStart, exc: BaseException) -> None:
        """Emit ``op_end`` naming the error for an op :meth:`op_started` began."""
        started, task, prompt_hash, _, view_id, op, _ = start
        span = OpSpan(self, view_id, op, prompt_hash, started, None, task)
        span.fail(exc)


class OpSpan:
    """One traced op in progress: ends with ``op_end``, carrying a hit or an error."""

    __slots__ = ("_tracer", "detail", "op", "prompt_hash", "started", "task", "view_id")

    def __init__(
        self,
        tracer: BackendTracer,
        view_id: str,
        op: str,
        prompt_hash: str,
        started: float,
        detail: Mapping[str, object] | None,
        task: str,
    ) -> None:
        self._tracer = tracer
        self.view_id = view_id
        self.op = op
        self.prompt_hash = prompt_hash
        self.started = started
        self.detail = detail
        self.task = task

    def end(self, hit: bool | None, detail: Mapping[str, object]) -> None:
        """The op returned (``hit``: whether the cache served it all) and what it did.

        ``hit`` None: it failed (see :meth:`fail`).
        """
        tracer = self._tracer
        clock = tracer.clock
        now = clock.time() - clock._epoch
        try:
            tracer._send(
                "op_end",
                now,
                self.task,
                self.view_id,
                self.op,
                self.prompt_hash,
                hit,
                now - self.started,
                detail,
            )
        except Exception as exc:
            tracer._failed(exc)

    def corrupted(self, kind: str, item: int | None = None) -> None:
        """An output fault changed the answer: already traced as its firing."""

    def fail(self, exc: BaseException) -> None:
        """The op raised (or was cancelled): ``op_end`` names the error."""
        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
        error = "cancelled" if cancelled else type(exc).__name__
        self.end(None, {**(self.detail or {}), "error": error})

    def __repr__(self) -> str:
        return f"<OpSpan {self.op} on {self.view_id!r} since {self.started:.6g}>"
