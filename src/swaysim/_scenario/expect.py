"""Checking a scenario's ``[expect]`` keys against what a run recorded.

:func:`evaluate` turns each key into an :class:`Outcome`: what was expected,
what was observed, and whether it holds (``ok``), does not (``failed``) or
cannot be judged from this run (``n/a``). It only reads a
:class:`~swaysim._scenario.run.ScenarioRun`; it never runs anything.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from swaysim._chaos.faults import OUTPUT_KINDS
from swaysim._runner.results import ProbeResult, Verdict
from swaysim._runner.suite import PREFLIGHT_NAME
from swaysim._scenario.messages import join_key
from swaysim._scenario.schema import VerdictCounts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from swaysim._scenario.run import RequestKey, ScenarioRun
    from swaysim._scenario.schema import CountBounds, ExpectSpec, SecondsBounds

__all__ = ["Outcome", "Status", "evaluate"]

Status = Literal["ok", "failed", "n/a"]
_SECONDS_TOLERANCE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Outcome:
    """One expectation checked: what was expected, what was observed, and the status."""

    key: str
    expected: str
    observed: str
    status: Status

    @property
    def failed(self) -> bool:
        """Whether the expectation does not hold."""
        return self.status == "failed"

    def line(self) -> str:
        """``expect.retries: expected at least 1, observed 0``."""
        return f"{self.key}: expected {self.expected}, observed {self.observed}"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {
            "key": self.key,
            "expected": self.expected,
            "observed": self.observed,
            "status": self.status,
        }


def _ok(key: str, expected: str, observed: str, holds: bool) -> Outcome:
    return Outcome(key, expected, observed, "ok" if holds else "failed")


def _flag(
    key: str, wanted: bool, actual: bool, meanings: tuple[str, str], observed: str
) -> Outcome:
    """A true/false expectation; ``meanings`` say what true and false expect."""
    return _ok(key, meanings[0] if wanted else meanings[1], observed, actual == wanted)


def _number(value: float | None) -> str:
    if value is None:
        return "none"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


def _bounds_text(bounds: CountBounds | SecondsBounds, unit: str = "") -> str:
    low, high = bounds.at_least, bounds.at_most
    if low is not None and high is not None:
        if low == high:
            return f"{_number(low)}{unit}"
        return f"between {_number(low)} and {_number(high)}{unit}"
    if low is not None:
        return f"at least {_number(low)}{unit}"
    return f"at most {_number(high)}{unit}"


def _within(value: float, bounds: CountBounds | SecondsBounds, tolerance: float = 0.0) -> bool:
    slack = tolerance * max(1.0, abs(value))
    if bounds.at_least is not None and value < bounds.at_least - slack:
        return False
    return not (bounds.at_most is not None and value > bounds.at_most + slack)


def _count(key: str, value: int | None, bounds: CountBounds, why_missing: str = "") -> Outcome:
    expected = _bounds_text(bounds)
    if value is None:
        return Outcome(key, expected, f"not applicable: {why_missing}", "n/a")
    return _ok(key, expected, str(value), _within(value, bounds))


# -- verdicts ---------------------------------------------------------------------------


def _describe_result(result: ProbeResult | None) -> str:
    if result is None:
        return "no result"
    message = f" ({result.message})" if result.message else ""
    if len(message) > 160:
        message = message[:156] + "...)"
    return f"{result.verdict.value}{message}"


def _verdicts(run: ScenarioRun, pattern: str, allowed: Sequence[str]) -> Outcome:
    by_name = {r.name: r for r in run.results}
    candidates = run.scenario.probe_names
    if pattern.startswith("__"):
        candidates = (*candidates, PREFLIGHT_NAME)
    names = [n for n in candidates if fnmatch.fnmatchcase(n, pattern)]
    expected = " or ".join(allowed)
    if len(names) > 1:
        expected = f"{expected} for all {len(names)} probes"
    wrong = []
    for name in names:
        result = by_name.get(name)
        if result is None or result.verdict.value not in allowed:
            wrong.append(f"{name!r}: {_describe_result(result)}")
    key = join_key("expect.verdicts", pattern)
    if not wrong:
        observed = Counter(by_name[n].verdict.value for n in names)
        return Outcome(key, expected, ", ".join(f"{v} x{c}" for v, c in observed.items()), "ok")
    shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    if run.aborted and pattern != PREFLIGHT_NAME:
        shown += " [preflight aborted the suite]"
    elif run.cancelled:
        shown += " [the suite was cancelled]"
    return Outcome(key, expected, shown, "failed")


def _false_passes(run: ScenarioRun) -> list[str] | None:
    passes = [r for r in run.results if r.verdict is Verdict.PASS]
    if run.aborted:
        return [f"{r.name!r} passed although preflight aborted" for r in passes]
    if run.requests is None:
        return None
    corrupted: dict[RequestKey, str] = {}
    for firing in run.fault_log:
        if firing.kind in OUTPUT_KINDS:
            corrupted.setdefault((firing.view_id, firing.op, firing.prompt), firing.kind)
    offenders = []
    for result in passes:
        for key in run.requests.get(result.name, ()):
            kind = corrupted.get(key)
            if kind is not None:
                view, op, prompt = key
                offenders.append(f"{result.name!r} passed on a {kind} {op}({prompt!r}) on {view}")
                break
    return offenders


def _first_difference(run: ScenarioRun, other: ScenarioRun) -> str:
    mine = {r.name: r.to_dict(include_timing=False) for r in run.results}
    theirs = {r.name: r.to_dict(include_timing=False) for r in other.results}
    for name in sorted(set(mine) | set(theirs)):
        a, b = mine.get(name), theirs.get(name)
        if a != b:
            if a is None or b is None:
                return f"probe {name!r} has a result on only one loop"
            field = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            return (
                f"probe {name!r} {field}: {a.get(field)!r} on {run.loop}, "
                f"{b.get(field)!r} on {other.loop}"
            )
    return f"suite-level fields differ between {run.loop} and {other.loop}"


# -- one check per [expect] key, in the order the outcomes are listed -------------------


def _runner_completed(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if run.error is not None:
        observed = f"it was {run.error}" if run.stalled else f"it raised {run.error}"
        yield Outcome("runner", "to complete", observed, "failed")


def _verdict_expectations(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    for pattern, allowed in expect.verdicts.items():
        yield _verdicts(run, pattern, allowed)


def _verdict_counts(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if expect.verdict_counts is None:
        return
    counts = Counter(r.verdict.value for r in run.results)
    for verdict in VerdictCounts.model_fields:
        bounds = getattr(expect.verdict_counts, verdict)
        if bounds is not None:
            yield _count(f"expect.verdict_counts.{verdict}", counts[verdict], bounds)


def _no_false_pass(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if expect.no_false_pass is None:
        return
    key = "expect.no_false_pass"
    offenders = _false_passes(run)
    wanted = "no false PASS" if expect.no_false_pass else "a false PASS"
    if offenders is None:
        yield Outcome(key, wanted, "not applicable: no request map", "n/a")
    else:
        observed = "; ".join(offenders[:3]) if offenders else "none"
        yield _ok(key, wanted, observed, (not offenders) == expect.no_false_pass)


def _aborted_and_cancelled(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if expect.aborted is not None:
        reason = run.suite.preflight[1] if run.suite and run.suite.preflight else ""
        observed = f"aborted ({reason})" if run.aborted else "not aborted"
        meanings = ("aborted", "not aborted")
        yield _flag("expect.aborted", expect.aborted, run.aborted, meanings, observed)
    if expect.cancelled is not None:
        observed = f"cancelled at {run.makespan:.6g} s" if run.cancelled else "finished"
        meanings = ("cancelled", "to finish before cancel_after")
        yield _flag("expect.cancelled", expect.cancelled, run.cancelled, meanings, observed)


def _views(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if expect.peak_live_views is not None:
        peak = run.statistics.peak_live_views
        yield _count("expect.peak_live_views", peak, expect.peak_live_views)
    if expect.view_switches is not None:
        yield _count("expect.view_switches", run.view_switches, expect.view_switches)


def _makespan(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if expect.makespan is None:
        return
    # Schedule jitter adds tiny sleeps: the upper bound widens by exactly what they added.
    bounds, widened = expect.makespan, run.statistics.jitter_seconds
    expected = _bounds_text(bounds, " s")
    if widened and bounds.at_most is not None:
        bounds = bounds.model_copy(update={"at_most": bounds.at_most + widened})
        expected += f" (at most +{widened:.3g} s of schedule jitter)"
    holds = _within(run.makespan, bounds, _SECONDS_TOLERANCE)
    yield _ok("expect.makespan", expected, f"{run.makespan:.6g} s", holds)


def _faults_fired(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    for rule, bounds in expect.faults_fired.items():
        fired = run.statistics.faults_fired.get(rule, 0)
        yield _count(join_key("expect.faults_fired", rule), fired, bounds)


def _runner_counters(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    plain = "the custom runner returned plain results"
    if expect.retries is not None:
        yield _count("expect.retries", run.retries, expect.retries, plain)
    if expect.timeouts is not None:
        yield _count("expect.timeouts", run.timeouts, expect.timeouts, plain)


def _gate_free(run: ScenarioRun, expect: ExpectSpec) -> Iterator[Outcome]:
    if expect.gate_free is None:
        return
    stats = run.statistics
    observed = (
        "free"
        if run.gate_free
        else f"{stats.live_views} live ({dict(stats.holders)}), {stats.waiting} waiting"
    )
    meanings = ("free", "not free")
    yield _flag("expect.gate_free", expect.gate_free, run.gate_free, meanings, observed)


def _identical(run: ScenarioRun, reference: ScenarioRun | None, wanted: bool) -> Outcome:
    key = "expect.identical_across_loops"
    expected = "identical" if wanted else "different"
    if reference is None:
        return Outcome(key, expected, "not applicable: ran on one loop only", "n/a")
    same = run.fingerprint == reference.fingerprint
    observed = f"identical to {reference.loop}" if same else _first_difference(run, reference)
    return _ok(key, expected, observed, same == wanted)


_CHECKS: Final[tuple[Callable[[ScenarioRun, ExpectSpec], Iterator[Outcome]], ...]] = (
    _runner_completed,
    _verdict_expectations,
    _verdict_counts,
    _no_false_pass,
    _aborted_and_cancelled,
    _views,
    _makespan,
    _faults_fired,
    _runner_counters,
    _gate_free,
)


def evaluate(run: ScenarioRun, reference: ScenarioRun | None = None) -> list[Outcome]:
    """Check every ``[expect]`` key against ``run``.

    ``reference`` is the run on the other loop, needed by
    ``identical_across_loops`` (not applicable without it).
    """
    expect = run.scenario.spec.expect
    outcomes = [outcome for check in _CHECKS for outcome in check(run, expect)]
    if expect.identical_across_loops is not None:
        outcomes.append(_identical(run, reference, expect.identical_across_loops))
    return outcomes
