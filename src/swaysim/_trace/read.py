"""Every reader of a file a user hands swaysim: trace lines, trace files, run directories.

A trace or a ``results.json`` may come from another machine, another
version, a hand edit or an attacker, so each reader validates every field
as it goes and names the file, line (or key) and problem in one
:class:`~swaysim.errors.TraceFormatError`, never a traceback.

Memory is bounded however hostile the file: :func:`read_trace` streams,
reading at most ``SWAYSIM_MAX_TRACE_LINE_BYTES`` per line (a longer line, or
a gzip bomb without newlines, is an error as soon as the bound is passed);
JSON is decoded strictly (:mod:`~swaysim._trace.strict_json`: no NaN,
bounded numbers and nesting); names are at most :data:`MAX_NAME_CHARS`
characters; and the distinct names and open intervals the readers keep
state for (tasks, views, probes, fault rules...) are capped at
``SWAYSIM_MAX_TRACE_KEYS``. :func:`load_results` reads ``results.json``
with a bounded read and :class:`RunResults` validates its fields;
:func:`find_trace` locates the trace in a run directory.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from swaysim._files import open_regular_file, read_regular_file
from swaysim._limits import MAX_RESULTS_BYTES, MAX_TRACE_KEYS, MAX_TRACE_LINE_BYTES
from swaysim._trace import strict_json
from swaysim._trace.events import TraceEvent
from swaysim._trace.schema import READABLE_VERSIONS, RESULTS_FILE, SCHEMA_VERSION, TRACE_FILE
from swaysim.errors import InvalidArgumentError, TraceFormatError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping

__all__ = [
    "MAX_NAME_CHARS",
    "RunResults",
    "decode_event",
    "find_trace",
    "load_results",
    "read_trace",
]

MAX_NAME_CHARS: Final = 256
"""Longest kind, task, view, op, probe, rule or error name a trace may hold."""
_OPTIONAL_STRINGS: Final = ("view", "op", "prompt_hash")
_DETAIL_NAMES: Final = ("rule", "kind", "probe", "probe_kind", "verdict", "error")
_DETAIL_COUNTS: Final = ("call", "items", "computed", "attempt")
_DETAIL_SECONDS: Final = ("delay", "seconds")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _name(value: object, name: str, where: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TraceFormatError(f"{where}: {name}={_shown(value)} must be a string")
    if len(value) > MAX_NAME_CHARS:
        raise TraceFormatError(
            f"{where}: {name} is {len(value):,} characters; a name may have at most "
            f"{MAX_NAME_CHARS}"
        )
    return value


def _seconds(value: object, name: str, where: str, *, non_finite: bool) -> float:
    """A time or duration: a number within the format's range (non-finite names if allowed)."""
    number = strict_json.number(value, non_finite=non_finite)
    if number is None:
        raise TraceFormatError(f"{where}: {name}={_shown(value)} must be a number")
    if math.isfinite(number) and abs(number) > strict_json.MAX_MAGNITUDE:
        raise TraceFormatError(
            f"{where}: {name}={_shown(value)} is out of range (at most "
            f"{strict_json.MAX_MAGNITUDE:g})"
        )
    return number


def _record(line: str, where: str) -> dict[str, object]:
    """The line's JSON object, of a schema version this swaysim reads."""
    try:
        record = strict_json.loads(line)
    except TraceFormatError as exc:
        raise TraceFormatError(f"{where}: {exc}") from None
    if not isinstance(record, dict):
        raise TraceFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    version = record.get("v")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(f"v={v}" for v in READABLE_VERSIONS)
        raise TraceFormatError(
            f"{where}: v={_shown(version)} is not a trace schema version this swaysim reads "
            f"(it reads {readable}; v={SCHEMA_VERSION} is the newest)"
        )
    return record


def _detail(value: object, where: str) -> dict[str, object] | None:
    """``detail``: an object whose documented keys have their documented types."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TraceFormatError(f"{where}: detail={_shown(value)} must be a JSON object")
    for key in _DETAIL_NAMES:
        if key in value:
            _name(value[key], f"detail.{key}", where)
    for key in _DETAIL_COUNTS:
        count = value.get(key)
        if count is not None and (type(count) is not int or count < 0):
            raise TraceFormatError(f"{where}: detail.{key}={_shown(count)} must be an integer >= 0")
    for key in _DETAIL_SECONDS:
        if value.get(key) is not None:
            _seconds(value[key], f"detail.{key}", where, non_finite=True)
    aborted = value.get("aborted")
    if aborted is not None and not isinstance(aborted, bool):
        raise TraceFormatError(f"{where}: detail.aborted={_shown(aborted)} must be true or false")
    return value


def decode_event(line: str, *, where: str = "trace line") -> TraceEvent:
    """Parse and validate one trace line, raising :class:`TraceFormatError` naming ``where``."""
    record = _record(line, where)
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        raise TraceFormatError(f"{where}: kind={_shown(kind)} must be a non-empty string")
    _name(kind, "kind", where)
    task = _name(record.get("task"), "task", where, optional=False)
    assert task is not None
    time = _seconds(record.get("time"), "time", where, non_finite=False)
    strings = {name: _name(record.get(name), name, where) for name in _OPTIONAL_STRINGS}
    hit = record.get("hit")
    if hit is not None and not isinstance(hit, bool):
        raise TraceFormatError(f"{where}: hit={_shown(hit)} must be true or false")
    duration = record.get("duration")
    if duration is not None:
        duration = _seconds(duration, "duration", where, non_finite=True)
        if duration < 0:
            raise TraceFormatError(f"{where}: duration={_shown(duration)} must be >= 0")
    return TraceEvent(
        kind=kind,
        time=time,
        task=task,
        view=strings["view"],
        op=strings["op"],
        prompt_hash=strings["prompt_hash"],
        hit=hit,
        duration=duration,
        detail=_detail(record.get("detail"), where),
    )


# -- streaming a trace file -------------------------------------------------------------


class _Tracked:
    """The state trace consumers keep, counted: distinct names and open intervals.

    The digest, the Chrome export and the report key their state on names
    (task, view, op, probe, fault rule) and on intervals still open (a view
    entered and not left, a probe started and not ended). Capping these here,
    once, bounds every consumer's memory whatever the file holds.
    """

    __slots__ = ("keys", "limit", "open_probes", "open_views", "spans", "views_open")

    def __init__(self) -> None:
        self.keys: set[tuple[str, ...]] = set()
        self.open_views: dict[tuple[str, str], int] = {}
        self.views_open = 0
        self.open_probes: dict[str, int] = {}
        self.spans = 0
        self.limit = MAX_TRACE_KEYS.value()

    def _key(self, *key: str) -> None:
        self.keys.add(key)

    def add(self, event: TraceEvent, where: str) -> None:
        """Count what ``event`` makes consumers keep; raise past the limit."""
        kind, detail = event.kind, event.detail or {}
        self._key("kind", kind)
        self._key("task", event.task)
        if event.view is not None:
            self._key("view", event.view)
            if kind.startswith("view_"):
                self._key("task-view", event.task, event.view)
                self._interval(kind, event.task, event.view)
        if event.op is not None:
            self._key("op", event.op)
        if kind in ("probe_start", "probe_end"):
            name = str(detail.get("probe", "?"))
            self._key("probe", name)
            self._probe(kind, name)
        elif kind == "fault":
            rule, fault = str(detail.get("rule", "?")), str(detail.get("kind", "?"))
            self._key("fault", rule, fault, event.op or "?")
        state = len(self.keys) + self.views_open + self.spans
        if state > self.limit:
            found = f"{where}: the trace names or leaves open more than {self.limit:,} things"
            raise TraceFormatError(MAX_TRACE_KEYS.exceeded(found))

    def _interval(self, kind: str, task: str, view: str) -> None:
        key = (task, view)
        if kind == "view_enter":
            self.open_views[key] = self.open_views.get(key, 0) + 1
            self.views_open += 1
        elif kind == "view_exit" and self.open_views.get(key):
            self.open_views[key] -= 1
            self.views_open -= 1
            if not self.open_views[key]:
                del self.open_views[key]

    def _probe(self, kind: str, name: str) -> None:
        opened = self.open_probes.get(name, 0)
        if kind == "probe_start":
            self.open_probes[name] = opened + 1
            self.spans += 1
        elif opened > 1:
            self.open_probes[name] = opened - 1
        elif opened:
            del self.open_probes[name]
        else:
            self.spans += 1  # an end without a start still makes a span


@contextlib.contextmanager
def _opened(source: Path) -> Iterator[IO[bytes] | gzip.GzipFile]:
    """The trace's bytes, decompressed when it ends in ``.gz``; regular files only."""
    try:
        raw = open_regular_file(source)
    except InvalidArgumentError as exc:
        raise TraceFormatError(f"{source}: {exc}") from None
    with raw:
        if source.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                yield unpacked
        else:
            yield raw


def _lines(stream: IO[bytes] | gzip.GzipFile, source: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines, each read with a bounded read."""
    limit = MAX_TRACE_LINE_BYTES.value()
    number = 0
    while True:
        number += 1
        try:
            line = stream.readline(limit + 1)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            reason = "truncated" if isinstance(exc, EOFError) else "not valid gzip"
            message = f"{source}:{number}: the compressed file is {reason} ({exc})"
            raise TraceFormatError(message) from None
        if not line:
            return
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\n")):
            found = f"{source}:{number}: the line is longer than that"
            raise TraceFormatError(MAX_TRACE_LINE_BYTES.exceeded(found))
        yield number, line


def _events(source: Path) -> Iterator[TraceEvent]:
    tracked = _Tracked()
    with _opened(source) as stream:
        for number, raw in _lines(stream, source):
            where = f"{source}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = f"0x{raw[exc.start]:02x}"
                message = f"{where}: not UTF-8 text: byte {byte} at column {exc.start + 1}"
                raise TraceFormatError(message) from None
            if line.isspace():
                continue
            try:
                event = decode_event(line, where=where)
            except TraceFormatError as exc:
                if raw.endswith(b"\n"):
                    raise
                # The last line, cut off: a run stopped mid-write (a full disk, a kill).
                raise TraceFormatError(
                    f"{exc} (the file ends in the middle of this line)"
                ) from None
            tracked.add(event, where)
            yield event


def read_trace(path: str | os.PathLike[str]) -> Iterator[TraceEvent]:
    """Stream the events of a trace file (``.jsonl``, or gzipped ``.jsonl.gz``).

    Memory stays bounded whatever the file holds (see the module). Blank
    lines are skipped; a malformed line raises :class:`TraceFormatError`
    naming the file and line number when the iteration reaches it. A missing
    file is reported at once.
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidArgumentError(f"path={str(source)!r} must be an existing trace file")
    return _events(source)


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


# -- results.json -----------------------------------------------------------------------


def load_results(path: Path) -> dict[str, object]:
    """Read ``results.json`` (bounded, strict JSON), naming the file when it is not an object."""
    try:
        data = read_regular_file(path, MAX_RESULTS_BYTES)
        text = data.decode("utf-8")
        results = strict_json.loads(text)
    except (InvalidArgumentError, TraceFormatError) as exc:
        raise TraceFormatError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{path}: not UTF-8 text: byte at offset {exc.start}") from None
    if not isinstance(results, dict):
        raise TraceFormatError(
            f"{path} holds a {type(results).__name__}; expected a JSON object with "
            '"scenario", "probes", "statistics"...'
        )
    return results


_PROBE_STRINGS: Final = ("name", "kind", "verdict", "message")
_PROBE_NUMBERS: Final = ("score", "raw", "z")
_SCALARS: Final = (str, int, float, bool, type(None))


def _result_number(value: object, key: str, where: str, *, non_finite: bool) -> None:
    if value is not None and strict_json.number(value, non_finite=non_finite) is None:
        raise TraceFormatError(f"{where}: {key}={_shown(value)} must be a number")


def _probe_row(value: object, key: str, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise TraceFormatError(f"{where}: {key}={_shown(value)} must be an object")
    for name in _PROBE_STRINGS:
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise TraceFormatError(f"{where}: {key}.{name}={_shown(item)} must be a string")
    for name in _PROBE_NUMBERS:
        _result_number(value.get(name), f"{key}.{name}", where, non_finite=True)
    duration = value.get("duration")
    _result_number(duration, f"{key}.duration", where, non_finite=False)
    if isinstance(duration, int | float) and duration < 0:
        raise TraceFormatError(f"{where}: {key}.duration={_shown(duration)} must be >= 0")
    return value


def _statistics(value: object, where: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TraceFormatError(f"{where}: statistics={_shown(value)} must be an object")
    for key, item in value.items():
        inner = item.values() if isinstance(item, dict) else (item,)
        if not all(isinstance(part, _SCALARS) for part in inner):
            raise TraceFormatError(
                f"{where}: statistics.{key}={_shown(item)} must be a number, a string or an "
                "object of them"
            )
    return value


_EXPECTATION_STRINGS: Final = ("key", "expected", "observed", "status")


def _expectation_row(value: object, key: str, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise TraceFormatError(f"{where}: {key}={_shown(value)} must be an object")
    for name in _EXPECTATION_STRINGS:
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise TraceFormatError(f"{where}: {key}.{name}={_shown(item)} must be a string")
    return value


def _array(document: Mapping[str, object], key: str, where: str) -> list[object]:
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TraceFormatError(f"{where}: {key}={_shown(value)} must be an array")
    return value


@dataclass(frozen=True, slots=True)
class RunResults:
    """The fields of a run's ``results.json`` the report shows, validated.

    Scalars are kept as found (the report prints them escaped) once their
    types are checked: ``scenario`` and ``loop`` strings, ``seed`` an
    integer, ``makespan`` a number; every entry of ``probes`` is an object
    with string names and numeric scores; ``statistics`` maps names to
    numbers, strings or flat objects of them.
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
    def from_document(
        cls, document: Mapping[str, object], *, where: str = RESULTS_FILE
    ) -> RunResults:
        """Validate a decoded ``results.json`` object (any version); :class:`TraceFormatError`
        names ``where`` and the key at fault."""
        for key in ("scenario", "loop", "description", "replay"):
            value = document.get(key)
            if value is not None and not isinstance(value, str):
                raise TraceFormatError(f"{where}: {key}={_shown(value)} must be a string")
        seed = document.get("seed")
        if seed is not None and type(seed) is not int:
            raise TraceFormatError(f"{where}: seed={_shown(seed)} must be an integer")
        version = document.get("version", 1)
        if type(version) is not int:
            raise TraceFormatError(f"{where}: version={_shown(version)} must be an integer")
        _result_number(document.get("makespan"), "makespan", where, non_finite=False)
        probes = _array(document, "probes", where)
        expectations = _array(document, "expectations", where)
        return cls(
            scenario=document.get("scenario"),
            loop=document.get("loop"),
            seed=seed,
            makespan=document.get("makespan"),
            probes=tuple(_probe_row(p, f"probes[{i}]", where) for i, p in enumerate(probes)),
            statistics=_statistics(document.get("statistics"), where),
            version=version,
            description=document.get("description"),
            replay=document.get("replay"),
            expectations=tuple(
                _expectation_row(e, f"expectations[{i}]", where) for i, e in enumerate(expectations)
            ),
        )

    @classmethod
    def of_run_dir(cls, run_dir: Path) -> RunResults | None:
        """The run directory's ``results.json``, or None when it has none."""
        path = run_dir / RESULTS_FILE
        if not path.is_file():
            return None
        return cls.from_document(load_results(path), where=str(path))
