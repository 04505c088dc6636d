"""Trace events as JSON lines: the one place that turns a :class:`TraceEvent` into text.

:func:`encode_event` is on the hot path of every traced op, so the common
event is spelled out by hand (:func:`_encode_fast`); anything unusual falls
back to the standard encoder over :func:`event_record`, and a test checks
both give the same bytes. See :mod:`swaysim._trace.schema` for the format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Final

from swaysim._trace.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from swaysim._trace.events import TraceEvent

__all__ = ["encode_event", "event_record", "finite_or_name"]


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
    record: dict[str, object] = {
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
# ``c_make_encoder`` is undocumented (and untyped), hence the explicit signature.
_ChunkEncoder = Callable[[object, int], Iterable[str]]
_C_MAKE_ENCODER: Callable[..., _ChunkEncoder] | None = getattr(json.encoder, "c_make_encoder", None)
_DETAIL_ENCODER: Final = (
    None
    if _C_MAKE_ENCODER is None
    else _C_MAKE_ENCODER(
        None, _json_default, encode_basestring_ascii, None, ":", ",", *(False,) * 3
    )
)


_LINE_START: Final = f'{{"v":{SCHEMA_VERSION},"kind":'


def _encode_detail(detail: Mapping[str, object]) -> str:
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
