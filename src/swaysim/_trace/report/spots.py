"""Where on the timeline an expectation's evidence is: the report links each one there.

An expectation is a key of ``[expect]`` (``expect.retries``,
``expect.verdicts."dkl-*"``...) with what was observed. :func:`spot_of` maps it
to a stretch of loop time and, when one row carries the evidence, that row: the
probes a verdict expectation names, the first to last retry, the firings of a
fault rule. It reads only the trace's digest, so it works for any runner.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from swaysim._chaos.faults import OUTPUT_KINDS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from swaysim._trace.digest import ProbeSpan, TraceDigest

__all__ = ["Spot", "spot_of"]

_PROBE_IN_OBSERVED: Final = re.compile(r"'([^']+)': [A-Z]+")
_MARKS: Final = {
    "expect.retries": ("retry", None),
    "expect.timeouts": ("timeout", None),
    "expect.peak_live_views": ("peak_live", "views"),
}


@dataclass(frozen=True, slots=True)
class Spot:
    """A stretch of loop time to show, and the timeline row to point at (if one)."""

    start: float
    end: float
    row: str | None = None


def _covering(spans: Iterable[ProbeSpan], end: float) -> Spot | None:
    chosen = list(spans)
    if not chosen:
        return None
    start = min(span.start for span in chosen)
    stop = max(span.end if span.end is not None else end for span in chosen)
    return Spot(start, stop, chosen[0].name)


def _pattern(key: str, prefix: str) -> str:
    rest = key[len(prefix) :]
    return str(json.loads(rest)) if rest.startswith('"') else rest


def _verdict_spot(key: str, observed: str, digest: TraceDigest) -> Spot | None:
    named = set(_PROBE_IN_OBSERVED.findall(observed))
    if named:
        return _covering((p for p in digest.probes if p.name in named), digest.last_time)
    pattern = _pattern(key, "expect.verdicts.")
    matching = (p for p in digest.probes if fnmatch.fnmatchcase(p.name, pattern))
    return _covering(matching, digest.last_time)


def spot_of(key: str, observed: str, digest: TraceDigest) -> Spot | None:
    """Where the evidence for expectation ``key`` (observed as ``observed``) is, if anywhere."""
    whole = Spot(digest.first_time or 0.0, digest.last_time)
    if key.startswith("expect.verdicts."):
        return _verdict_spot(key, observed, digest)
    if key.startswith("expect.verdict_counts."):
        verdict = key.rpartition(".")[2]
        spot = _covering((p for p in digest.probes if p.verdict == verdict), digest.last_time)
        return spot or whole
    if key.startswith("expect.faults_fired."):
        mark = digest.marks.get(f"fault:{_pattern(key, 'expect.faults_fired.')}")
        return Spot(*mark, "fired") if mark is not None else whole
    if key in _MARKS:
        name, row = _MARKS[key]
        mark = digest.marks.get(name)
        return Spot(*mark, row) if mark is not None else whole
    if key == "expect.no_false_pass":
        return _corrupting_faults(digest) or whole
    if key in ("expect.gate_free", "expect.cancelled"):
        return Spot(max(whole.start, whole.end - (whole.end - whole.start) * 0.05), whole.end)
    if key in ("expect.makespan", "expect.view_switches", "expect.aborted"):
        return whole
    return None


def _corrupting_faults(digest: TraceDigest) -> Spot | None:
    """The first to last firing of a fault that corrupts an answer (nan, corrupt_*...)."""
    names = (f"fault_kind:{kind}" for kind in OUTPUT_KINDS)
    marks = [digest.marks[name] for name in names if name in digest.marks]
    if not marks:
        return None
    return Spot(min(m[0] for m in marks), max(m[1] for m in marks), "fired")
