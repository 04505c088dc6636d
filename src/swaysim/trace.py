"""swaysim.trace: write, read, summarise and view traces of a run.

Everything a trace user reaches for, in one namespace::

    from swaysim.trace import JsonlTraceWriter, read_trace, digest_trace, write_report

- write: :class:`JsonlTraceWriter` (a file, streaming), :class:`TraceRecorder`
  (memory, for tests), or any :class:`TraceSink`; :func:`encode_event` (and
  :func:`encode_fields`, for a sink with ``emit_fields``) is the line format
  for a sink of your own;
- read: :func:`read_trace` (streaming, validated), :func:`decode_event`;
- summarise: :func:`digest_trace` / :func:`digest_events` fold a trace into a
  :class:`TraceDigest`; :func:`summarize_trace` prints it as tables;
- view: :func:`export_chrome` / :func:`write_chrome` (Perfetto), and
  :func:`write_report` (one self-contained HTML file per run directory).

The format is documented in ``docs/trace-format.md``. Importing this module
loads neither rich nor pydantic: :func:`summarize_trace` (rich) and
:func:`write_report` load on first use.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from swaysim._trace.chrome import export_chrome, write_chrome
from swaysim._trace.digest import (
    OpRecord,
    OpUsage,
    ProbeSpan,
    TaskUsage,
    TraceDigest,
    ViewUsage,
    digest_events,
    digest_trace,
)
from swaysim._trace.encode import encode_event, encode_fields
from swaysim._trace.events import TraceEvent, TraceSink
from swaysim._trace.read import decode_event, read_trace
from swaysim._trace.schema import EVENT_KINDS, RESULTS_FILE, SCHEMA_VERSION, TRACE_FILE
from swaysim._trace.sinks import JsonlTraceWriter, TraceRecorder
from swaysim.errors import TraceFormatError

# The terminal summary (rich) and the HTML report load on first use.
_LAZY: _typing.Final = {
    "summarize_trace": "swaysim._trace.summary",
    "write_report": "swaysim._trace.report.render",
}

if _typing.TYPE_CHECKING:
    from swaysim._trace.report.render import write_report
    from swaysim._trace.summary import summarize_trace


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'swaysim.trace' has no attribute {name!r}")
    value: object = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "EVENT_KINDS",
    "JsonlTraceWriter",
    "OpRecord",
    "OpUsage",
    "ProbeSpan",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "TRACE_FILE",
    "TaskUsage",
    "TraceDigest",
    "TraceEvent",
    "TraceFormatError",
    "TraceRecorder",
    "TraceSink",
    "ViewUsage",
    "decode_event",
    "digest_events",
    "digest_trace",
    "encode_event",
    "encode_fields",
    "export_chrome",
    "read_trace",
    "summarize_trace",
    "write_chrome",
    "write_report",
]
