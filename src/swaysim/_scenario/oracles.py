"""The oracles that judge any runner's results from what the backend observed.

- :func:`false_passes`: a PASS resting on an answer an output fault corrupted
  (``expect.no_false_pass``). A probe rests on the requests it declared
  (:meth:`~swaysim.Probe.requests`) and on every call attributed to it
  (:func:`swaysim.attribute`); a request is *tainted* when the last answer
  the backend gave for it was corrupted. After a preflight abort every PASS
  is false.
- :func:`reference_mismatches`: the differential check
  (``expect.matches_reference``). A probe is *comparable* when every request
  it and its dependencies declared met no fault, or only retryable ones no
  more often than the retry budget allows, and no call of it was cut off
  (abandoned by a cancellation); a comparable probe must have exactly the
  verdict and scores of the reference runner's fault-free run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from swaysim._backend.ledger import COMPLETION_SEPARATOR, describe_key
from swaysim._chaos.faults import EXCEPTION_FOR_KIND, VIEW_EVENT_KINDS
from swaysim._runner.results import Verdict
from swaysim._runner.suite import PREFLIGHT_NAME
from swaysim._vocab import NEXT_TOKEN_DIST_BATCH_OP, NEXT_TOKEN_DIST_OP

if TYPE_CHECKING:
    from swaysim._backend.ledger import CallKey, CallLedger
    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.run import ScenarioRun

__all__ = ["false_passes", "reference_mismatches"]

_SCORE_FIELDS: Final = ("score", "raw", "z")
_RELATIVE_TOLERANCE: Final = 1e-9
"""Scores are deterministic; this only forgives a different summation order."""


def _last_answers(ledger: CallLedger) -> tuple[dict[CallKey, str | None], dict[str, set[CallKey]]]:
    """Per request, the corruption of its last answer (None: clean); per probe, the requests
    calls attributed to it answered."""
    last: dict[CallKey, str | None] = {}
    attributed: dict[str, set[CallKey]] = {}
    for record in ledger.calls:
        if record.outcome != "ok":
            continue
        for key, kind in record.answer_keys():
            last[key] = kind
            for name in record.attribution:
                attributed.setdefault(name, set()).add(key)
    return last, attributed


def false_passes(run: ScenarioRun) -> list[str]:
    """Every PASS resting on a corrupted answer, as ``'name' passed on a nan ...``."""
    passes = [r for r in run.results if r.verdict is Verdict.PASS]
    if run.aborted:
        return [f"{r.name!r} passed although preflight aborted" for r in passes]
    if run.ledger is None or run.declared is None:
        return []
    last, attributed = _last_answers(run.ledger)
    offenders = []
    for result in passes:
        keys = run.declared.requests.get(result.name, frozenset()) | attributed.get(
            result.name, set()
        )
        for key in sorted(keys):
            kind = last.get(key)
            if kind is not None:
                offenders.append(f"{result.name!r} passed on a {kind} {describe_key(key)}")
                break
    return offenders


# -- the differential check -------------------------------------------------------------


class _Damage:
    """What the faults and cancellations of one run did to which requests."""

    def __init__(self, run: ScenarioRun) -> None:
        self.budget = int((run.options or {}).get("retries", 0))
        self.faults: dict[tuple[str, str, str], list[str]] = {}
        self.enter_faults: dict[str, list[str]] = {}
        for firing in run.fault_log:
            if firing.kind in VIEW_EVENT_KINDS:
                if firing.op == "enter":
                    self.enter_faults.setdefault(firing.view_id, []).append(firing.kind)
                continue
            op = NEXT_TOKEN_DIST_OP if firing.op == NEXT_TOKEN_DIST_BATCH_OP else firing.op
            self.faults.setdefault((firing.view_id, op, firing.prompt), []).append(firing.kind)
        self.cut: set[CallKey] = set()
        if run.ledger is not None:
            for record in run.ledger.calls:
                if record.outcome == "cancelled":
                    self.cut.update(key for key, _ in record.answer_keys())

    def _within_budget(self, kinds: list[str]) -> bool:
        retryable = all(EXCEPTION_FOR_KIND.get(kind) is not None for kind in kinds) and all(
            EXCEPTION_FOR_KIND[kind].retryable for kind in kinds
        )
        return retryable and len(kinds) <= self.budget

    def clean(self, key: CallKey) -> bool:
        """Whether the run met no fault on ``key`` that a correct runner could not get past."""
        view_id, op, text, _ = key
        prompt = text.partition(COMPLETION_SEPARATOR)[0]
        if key in self.cut:
            return False
        if not self._within_budget(self.faults.get((view_id, op, prompt), [])):
            return False
        return self._within_budget(self.enter_faults.get(view_id, []))


def _same(mine: float | None, theirs: float | None) -> bool:
    if mine is None or theirs is None:
        return mine is theirs
    if math.isnan(mine) or math.isnan(theirs):
        return math.isnan(mine) and math.isnan(theirs)
    return math.isclose(mine, theirs, rel_tol=_RELATIVE_TOLERANCE, abs_tol=1e-12)


def _difference(mine: ProbeResult, theirs: ProbeResult) -> str | None:
    if mine.verdict is not theirs.verdict:
        return f"{mine.verdict.value} here, {theirs.verdict.value} in the reference run"
    for name in _SCORE_FIELDS:
        a, b = getattr(mine, name), getattr(theirs, name)
        if not _same(a, b):
            return f"{name} {a!r} here, {b!r} in the reference run"
    return None


def reference_mismatches(run: ScenarioRun, reference: ScenarioRun) -> tuple[list[str], int]:
    """Each comparable probe whose result differs from ``reference``'s; and how many compared."""
    if run.aborted or run.declared is None:
        return [], 0
    declared = run.declared
    damage = _Damage(run)
    mine = {r.name: r for r in run.results}
    theirs = {r.name: r for r in reference.results if r.name != PREFLIGHT_NAME}
    mismatches: list[str] = []
    compared = 0
    for name in run.scenario.probe_names:
        if name not in declared.requests:
            continue
        keys = [k for dep in declared.closure(name) for k in declared.requests.get(dep, ())]
        if not all(damage.clean(key) for key in keys):
            continue
        result, expected = mine.get(name), theirs.get(name)
        if expected is None or (result is None and run.cancelled):
            continue
        compared += 1
        if result is None:
            mismatches.append(
                f"{name!r}: no result here, {expected.verdict.value} in the reference"
            )
            continue
        difference = _difference(result, expected)
        if difference is not None:
            mismatches.append(f"{name!r}: {difference}")
    return mismatches, compared
