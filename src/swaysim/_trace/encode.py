"""Trace events as JSON lines: the one place that turns a :class:`TraceEvent` into text.

:func:`encode_fields` (an event given as its nine fields) and
:func:`encode_event` are on the hot path of every traced op, so the common
event is spelled out by hand (in :func:`encode_fields`), with the quoted strings
and float texts that recur kept in bounded caches; anything unusual falls
back to the standard encoder over :func:`event_record`, and a test checks
both give the same bytes. See :mod:`swaysim._trace.schema` for the format.

Pure Python on purpose: orjson and msgspec were measured against it and
did not earn a compiled dependency. Both write some floats differently
(``1e-05`` as ``0.00001``, ``1e-07`` as ``1e-7``; msgspec ``1e+16`` as
``1e16``), non-finite ones as
``null`` and non-ASCII text unescaped, so keeping traces byte-identical
needs checks on every float and string, the record dict built, and the
standard encoder for what fails them. So checked, over the same events
(CPU time per event, median of 7 interleaved runs, 2 loaded CPUs):
on the writer workload of benchmarks/bench_trace.py (virtual-clock times
that recur) orjson 1.5 us, msgspec 1.6-1.8 us, this encoder 1.7-2.0 us, the
standard encoder 5.3-6.6 us: a tie within noise. On real-clock times a cache
hit lasts microseconds, a duration both write in their own form, so every
op_end takes the standard encoder: orjson 4.4-6.2 us, msgspec 4.4-6.1 us,
this encoder 3.1-4.4 us. (Counted in instructions earlier: about 11,600
for orjson checked, 7,200 unchecked, against 9,900 for this encoder.)
Two paths to keep identical, for no gain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, Final

from swaysim._trace.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from swaysim._trace.events import TraceEvent

__all__ = [
    "encode_event",
    "encode_fields",
    "encode_op_end",
    "encode_op_start",
    "event_fields",
    "event_record",
    "finite_or_name",
    "known_op_text",
    "op_text",
]


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


def finite_or_name(value: object) -> object:
    """``value`` with non-finite floats replaced by "nan", "inf" or "-inf", recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): finite_or_name(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_name(v) for v in value]
    return value


def event_record(event: TraceEvent) -> dict[str, object]:
    """The event as the JSON object of one trace line (absent fields left out)."""
    return _record(*event_fields(event))


def event_fields(event: TraceEvent) -> tuple[Any, ...]:
    """The nine fields of ``event``, in the order ``emit_fields`` and :func:`encode_fields` take."""
    return (
        event.kind,
        event.time,
        event.task,
        event.view,
        event.op,
        event.prompt_hash,
        event.hit,
        event.duration,
        event.detail,
    )


def _record(
    kind: object,
    time: object,
    task: object,
    view: object,
    op: object,
    prompt_hash: object,
    hit: object,
    duration: object,
    detail: Mapping[str, object] | None,
) -> dict[str, object]:
    record: dict[str, object] = {"v": SCHEMA_VERSION, "kind": kind, "time": time, "task": task}
    if view is not None:
        record["view"] = view
    if op is not None:
        record["op"] = op
    if prompt_hash is not None:
        record["prompt_hash"] = prompt_hash
    if hit is not None:
        record["hit"] = hit
    if duration is not None:
        record["duration"] = duration
    if detail is not None:
        record["detail"] = detail if type(detail) is dict else dict(detail)
    return record


_LINE_START: Final = f'{{"v":{SCHEMA_VERSION},"kind":'
_CACHE_CAP: Final = 4096
"""Entries each text cache below holds before it starts over (bounded memory)."""
_CACHED_CHARS: Final = 128
"""Longer strings are quoted every time rather than kept."""

# What recurs, kept as JSON text. Kinds, tasks, views, ops, prompt hashes and
# detail keys come from small sets; times repeat on a virtual clock (every
# event between two advances shares one) and durations whenever latency is
# fixed or nothing waited. Quoting a string or formatting a float costs more
# than a dictionary lookup by far, and a line has half a dozen of them. The
# lookups are spelled ``_quoted(text) or _quote(text)`` (a kept text is never
# empty): a call to a Python function only for what is not kept yet.
_QUOTED: dict[str, str] = {}
_FLOAT_TEXT: dict[float, str] = {}
_SHAPES: dict[tuple[object, ...], tuple[str, str, str]] = {}
_quoted: Final = _QUOTED.get
_float_text: Final = _FLOAT_TEXT.get
_shape: Final = _SHAPES.get


def _quote(text: str) -> str:
    """``text`` as a JSON string, as the standard encoder writes it (kept when short)."""
    quoted = encode_basestring_ascii(text)  # raises TypeError for a non-str
    if len(text) <= _CACHED_CHARS:
        if len(_QUOTED) >= _CACHE_CAP:
            _QUOTED.clear()
        _QUOTED[text] = quoted
    return quoted


def _new_shape(
    kind: str, view: str | None, op: str | None, hit: bool | None
) -> tuple[str, str, str]:
    """The texts of an event's kind, view and op, and hit, which recur together: kept.

    Returned as the line's start up to its time, the view and op after the
    task, and the hit after the prompt hash. Tasks and prompt hashes, which
    can number in the thousands, are kept one by one instead.
    """
    head = f'{_LINE_START}{_quoted(kind) or _quote(kind)},"time":'
    middle = ""
    if view is not None:
        middle += f',"view":{_quoted(view) or _quote(view)}'
    if op is not None:
        middle += f',"op":{_quoted(op) or _quote(op)}'
    tail = "" if hit is None else ',"hit":true' if hit else ',"hit":false'
    if len(_SHAPES) >= _CACHE_CAP:
        _SHAPES.clear()
    shape = _SHAPES[(kind, view, op, hit)] = (head, middle, tail)
    return shape


def _format_float(value: float) -> str:
    """A finite float as JSON (its ``repr``), kept; raises ValueError if not finite.

    ``0.0`` and ``-0.0`` are one dictionary key: the kept text of zero is
    :data:`_ZERO`, which a caller that finds it checks the sign for.
    """
    if value - value != 0.0:  # inf or nan: the general path writes them by name
        raise ValueError(value)
    if not value and math.copysign(1.0, value) < 0:
        return "-0.0"
    text = _ZERO if not value else f"{value!r}"  # what json writes for a float
    if len(_FLOAT_TEXT) >= _CACHE_CAP:
        _FLOAT_TEXT.clear()
    _FLOAT_TEXT[value] = text
    return text


_ZERO: Final = "0.0"


def _float_json(value: float) -> str:
    """``value`` as JSON (see :func:`_format_float`), for the less frequent floats."""
    text = _float_text(value) or _format_float(value)
    if text is _ZERO and math.copysign(1.0, value) < 0:
        return "-0.0"
    return text


def _detail_text(detail: Mapping[str, object]) -> str:
    """A flat detail (str keys; str, int, bool, None or finite float values) as JSON.

    Anything else raises TypeError or ValueError, for the general path. Most
    details are one int (an op's call index): that takes one f-string.
    """
    if type(detail) is not dict:
        raise TypeError(detail)
    if len(detail) == 1:
        [(key, value)] = detail.items()
        if type(value) is int:
            return f"{{{_quoted(key) or _quote(key)}:{value}}}"
    parts = []
    for key, value in detail.items():
        kind = type(value)
        if kind is int:
            text = f"{value}"
        elif kind is str:
            text = encode_basestring_ascii(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif kind is float:
            text = _float_json(value)
        else:
            raise TypeError(value)
        parts.append(f"{_quoted(key) or _quote(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def encode_fields(
    kind: str,
    time: float,
    task: str,
    view: str | None = None,
    op: str | None = None,
    prompt_hash: str | None = None,
    hit: bool | None = None,
    duration: float | None = None,
    detail: Mapping[str, object] | None = None,
) -> str:
    """One trace line, without the newline, for an event given as :class:`TraceEvent`'s fields.

    What :func:`encode_event` writes for ``TraceEvent(kind, time, ...)``,
    without the event object. The common event is spelled out here, a sixth
    of the standard encoder's cost and byte-identical to it (a test checks
    it): anything unusual (a non-float or non-finite number, a non-string
    field, a nested or odd detail) raises TypeError or ValueError on the
    way, and goes to the standard encoder over :func:`event_record`.
    """
    try:
        if type(time) is not float or (hit is not None and type(hit) is not bool):
            raise TypeError(time, hit)
        shape = _shape((kind, view, op, hit)) or _new_shape(kind, view, op, hit)
        stamp = _float_text(time) or _format_float(time)
        if stamp is _ZERO and math.copysign(1.0, time) < 0:
            stamp = "-0.0"
        line = f'{shape[0]}{stamp},"task":{_quoted(task) or _quote(task)}{shape[1]}'
        if prompt_hash is not None:
            line = f'{line},"prompt_hash":{_quoted(prompt_hash) or _quote(prompt_hash)}{shape[2]}'
        elif shape[2]:
            line += shape[2]
        if duration is not None:
            if type(duration) is not float:
                raise TypeError(duration)
            span = _float_text(duration) or _format_float(duration)
            if span is _ZERO and math.copysign(1.0, duration) < 0:
                span = "-0.0"
            line = f'{line},"duration":{span}'
        if detail is not None:
            return f'{line},"detail":{_detail_text(detail)}}}'
        return line + "}"
    except (TypeError, ValueError):
        pass
    record = _record(kind, time, task, view, op, prompt_hash, hit, duration, detail)
    try:
        return _ENCODER.encode(record)
    except ValueError:
        # Only non-finite floats get here; the common case pays nothing for them.
        return _ENCODER.encode(finite_or_name(record))


_OP_START_HEAD: Final = f'{_LINE_START}"op_start","time":'
_OP_END_HEAD: Final = f'{_LINE_START}"op_end","time":'
OP_START_HEAD: Final = _OP_START_HEAD
"""An ``op_start`` line up to its time: the line is this, the time, :func:`op_text`, ``}``."""
OP_END_HEAD: Final = _OP_END_HEAD
"""An ``op_end`` line up to its time (see :func:`encode_op_end` for the rest)."""
kept_float_text: Final = _float_text
"""The kept JSON text of a float, else None: one lookup (for :data:`ZERO_TEXT`, check the sign)."""
ZERO_TEXT: Final = _ZERO
_OP_TEXTS: dict[tuple[str, str, str, str], str] = {}
_op_text: Final = _OP_TEXTS.get
known_op_text: Final = _op_text
"""The kept :func:`op_text` of ``(task, view, op, prompt_hash)``, else None: one lookup."""
_copysign: Final = math.copysign


def op_text(task: str, view: str, op: str, prompt_hash: str) -> str:
    """``,"task":...,"view":...,"op":...,"prompt_hash":...``: what an op's two events share.

    Kept (a bounded cache): one op's start and end, and every call of one
    prompt from one task, share it. :func:`encode_op_start` and
    :func:`encode_op_end` take it in place of the four fields.
    """
    key = (task, view, op, prompt_hash)
    text = _op_text(key)
    if text is None:
        text = (
            f',"task":{_quoted(task) or _quote(task)},"view":{_quoted(view) or _quote(view)}'
            f',"op":{_quoted(op) or _quote(op)}'
            f',"prompt_hash":{_quoted(prompt_hash) or _quote(prompt_hash)}'
        )
        if len(_OP_TEXTS) >= _CACHE_CAP:
            _OP_TEXTS.clear()
        _OP_TEXTS[key] = text
    return text


def encode_op_start(time: float, shared: str) -> str | None:
    """The ``op_start`` line of an op whose :func:`op_text` is ``shared``.

    Byte-identical to :func:`encode_fields` over the same fields (a test
    checks); None for what it does not spell out (a time that is not a
    finite float), for :func:`encode_fields`.
    """
    if type(time) is float:
        try:
            stamp = _float_text(time) or _format_float(time)
        except ValueError:
            return None
        if stamp is not _ZERO or _copysign(1.0, time) > 0:
            return f"{_OP_START_HEAD}{stamp}{shared}}}"
    return None


def encode_op_end(time: float, shared: str, hit: bool, duration: float, call: int) -> str | None:
    """The ``op_end`` line of an op that returned: ``hit``, ``duration``, ``{"call": call}``.

    Like :func:`encode_op_start` (``hit`` a bool and ``call`` an int, as
    the op path passes them).
    """
    if type(time) is float and type(duration) is float:
        try:
            stamp = _float_text(time) or _format_float(time)
            span = _float_text(duration) or _format_float(duration)
        except ValueError:
            return None
        if (stamp is not _ZERO or _copysign(1.0, time) > 0) and (
            span is not _ZERO or _copysign(1.0, duration) > 0
        ):
            hit_text = ',"hit":true,"duration":' if hit else ',"hit":false,"duration":'
            return f'{_OP_END_HEAD}{stamp}{shared}{hit_text}{span},"detail":{{"call":{call}}}}}'
    return None


def encode_event(event: TraceEvent) -> str:
    """One trace line for ``event``, without the newline."""
    return encode_fields(*event_fields(event))
