"""Every reader of a file a user hands swaysim: trace lines, trace files, run directories.

A trace or a ``results.json`` may come from another machine, another
version or a hand edit, so each reader validates as it goes and names the
file, line and field that is wrong. :func:`read_trace` streams (constant
memory whatever the file's size); :func:`load_results` and
:class:`RunResults` turn ``results.json`` into typed fields the report
reads; :func:`find_trace` locates the trace in a run directory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from swaysim._trace.events import TraceEvent
from swaysim._trace.schema import (
    READABLE_VERSIONS,
    RESULTS_FILE,
    SCHEMA_VERSION,
    TRACE_FILE,
    open_trace_text,
)
from swaysim.errors import InvalidArgumentError, TraceFormatError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping

__all__ = ["RunResults", "decode_event", "find_trace", "load_results", "read_trace"]

_OPTIONAL_STRINGS: Final = ("view", "op", "prompt_hash")
_NON_FINITE_NAMES: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


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


def _record(line: str, where: str) -> dict[str, object]:
    """The line's JSON object, of a schema version this swaysim reads."""
    try:
        record: object = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(
            f"{where}: not a JSON object ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(record, dict):
        raise TraceFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    version = record.get("v")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(f"v={v}" for v in READABLE_VERSIONS)
        raise TraceFormatError(
            f"{where}: v={version!r} is not a trace schema version this swaysim reads "
            f"(it reads {readable}; v={SCHEMA_VERSION} is the newest)"
        )
    return record


def decode_event(line: str, *, where: str = "trace line") -> TraceEvent:
    """Parse one trace line, raising :class:`TraceFormatError` that names ``where``."""
    record = _record(line, where)
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
    with open_trace_text(source, write=False) as stream:
        for number, line in enumerate(stream, start=1):
            if not line or line.isspace():
                continue
            yield decode_event(line, where=f"{source}:{number}")


def find_trace(run_dir: Path) -> Path:
    """The trace of a run directory: ``trace.jsonl``, else ``trace.jsonl.gz``."""
    if not run_dir.is_dir():
        raise InvalidArgumentError(f"run_dir={str(run_dir)!r} must be an existing directory")
    trace_path = run_dir / TRACE_FILE
    if not trace_path.is_file() and (run_dir / f"{TRACE_FILE}.gz").is_file():
        trace_path = run_dir / f"{TRACE_FILE}.gz"
    if not trace_path.is_file():
        raise InvalidArgumentError(
            f"run_dir={str(run_dir)!r} has no {TRACE_FILE}; write one with "
            "'swaysim run --trace DIR'"
        )
    return trace_path


def load_results(path: Path) -> dict[str, object]:
    """Read ``results.json``, naming the file when it is not a JSON object."""
    try:
        results: object = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "expected the run's results object"
        ) from None
    if not isinstance(results, dict):
        raise InvalidArgumentError(
            f"{path} holds a {type(results).__name__}; expected a JSON object with "
            '"scenario", "probes", "statistics"...'
        )
    return results


def _objects(value: object) -> tuple[Mapping[str, object], ...]:
    """The JSON objects of a list (anything else: none)."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, dict))


@dataclass(frozen=True, slots=True)
class RunResults:
    """The fields of a run's ``results.json`` the report shows, typed.

    Scalars are kept as found (the report prints them escaped); ``probes``
    keeps the entries that are JSON objects; ``statistics`` is empty when
    absent or not an object.
    """

    scenario: object = None
    loop: object = None
    seed: object = None
    makespan: object = None
    probes: tuple[Mapping[str, object], ...] = ()
    statistics: Mapping[str, object] = field(default_factory=dict)
    version: int = 1
    """1 when the file has no ``version`` (the first format); 2 adds the keys below."""
    description: object = None
    replay: object = None
    expectations: tuple[Mapping[str, object], ...] = ()
    """Each expectation's ``key``, ``expected``, ``observed`` and ``status``."""

    @classmethod
    def from_document(cls, document: Mapping[str, object]) -> RunResults:
        """Pick the report's fields out of a decoded ``results.json`` object (any version)."""
        statistics = document.get("statistics")
        version = document.get("version", 1)
        return cls(
            scenario=document.get("scenario"),
            loop=document.get("loop"),
            seed=document.get("seed"),
            makespan=document.get("makespan"),
            probes=_objects(document.get("probes")),
            statistics=statistics if isinstance(statistics, dict) else {},
            version=version if type(version) is int else 1,
            description=document.get("description"),
            replay=document.get("replay"),
            expectations=_objects(document.get("expectations")),
        )

    @classmethod
    def of_run_dir(cls, run_dir: Path) -> RunResults | None:
        """The run directory's ``results.json``, or None when it has none."""
        path = run_dir / RESULTS_FILE
        return cls.from_document(load_results(path)) if path.is_file() else None
