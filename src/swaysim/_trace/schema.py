"""The trace file format, schema version 2: one JSON object per line.

A backend (and the runner driving it) reports what happened as
:class:`~swaysim.TraceEvent` objects to a :class:`~swaysim.TraceSink`. This
module fixes how those events look on disk and where a run directory keeps
them; :mod:`swaysim._trace.encode` writes lines, :mod:`swaysim._trace.read`
reads them back (every reader of a file a user hands swaysim lives there),
and :mod:`swaysim._trace.sinks` holds the sinks that stream them.

Schema, version 2 (``docs/trace-format.md`` has the same text with examples).
Every line is a JSON object; keys that do not apply are absent (``null`` is
read as absent). Readers ignore keys they do not know: adding a key keeps
``v``; changing or removing one bumps it. Version 2 adds the ``prompt`` kind
(the text behind a ``prompt_hash``, written once); readers read version 1
files too (they have no prompt text).

``v`` (int, always)
    Schema version: ``2`` (``1`` in files of earlier swaysim versions).
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
    joined by RS for a batch). The text is written once, by the ``prompt``
    event that comes before the first event carrying its hash.
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
prompt         B   a key text is traced for the first time (v2); ``prompt_hash``,
                   ``detail.text`` (at most 2,000 characters) and, when the
                   text was cut, ``detail.chars`` (its full length).
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
                   ``detail.verdict``; ``duration`` (written by swaysim's
                   runner) is the probe's duration as its result reports it,
                   first request sent to last answer received: the probe ran
                   from its ``probe_start`` for that long. Without it, pair
                   the end with ``probe_start``.
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
import io
from typing import IO, TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BACKEND_KINDS",
    "EVENT_KINDS",
    "READABLE_VERSIONS",
    "RESULTS_FILE",
    "RUNNER_KINDS",
    "SCHEMA_VERSION",
    "TRACE_FILE",
    "open_trace_text",
]

SCHEMA_VERSION: Final = 2
#: The versions readers accept: version 1 files read as before, without prompt text.
READABLE_VERSIONS: Final = (1, 2)
BACKEND_KINDS: Final[tuple[str, ...]] = (
    "prompt",
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

#: A run directory (``swaysim run --trace DIR``) holds these two files per scenario and loop.
TRACE_FILE: Final = "trace.jsonl"
RESULTS_FILE: Final = "results.json"


def open_trace_text(path: Path, *, write: bool, binary: IO[bytes] | None = None) -> IO[str]:
    """A UTF-8 text stream on ``path``, gzip-compressed when it ends in ``.gz``.

    ``binary``: wrap this open binary stream instead of opening ``path`` (the
    caller closes ``binary`` after the text stream).
    """
    if binary is not None:
        if path.suffix == ".gz":
            compressed = gzip.GzipFile(fileobj=binary, mode="wb" if write else "rb")
            return io.TextIOWrapper(compressed, encoding="utf-8", newline="\n")
        return io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
    if path.suffix == ".gz":
        if write:
            return gzip.open(path, "wt", encoding="utf-8", newline="\n")
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, "w" if write else "r", encoding="utf-8", newline="\n")
