"""Checking what a run observed: the invariants, then each ``[expect]`` key.

:func:`evaluate` turns each into an :class:`Outcome`: what was expected, what
was observed, and a status: ``ok``, ``failed``, ``n/a`` (it could not be
checked on this run, which fails the scenario too) or ``skipped`` (an ``n/a``
the scenario lists under ``[expect] optional``). Broken invariants
(:mod:`swaysim._scenario.harness`) come first, named ``invariant.<name>``;
``[expect.reference]`` keys are checked only when the runner the scenario
configures ran. It only reads a
:class:`~swaysim._scenario.run.ScenarioRun`; it never runs anything.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Literal

from swaysim._runner.suite import PREFLIGHT_NAME
from swaysim._scenario.expect_schema import VerdictCounts
from swaysim._scenario.harness import INVARIANTS
from swaysim._scenario.messages import join_key
from swaysim._scenario.oracles import false_passes, reference_mismatches
from swaysim._scenario.policy_oracles import (
    backoff_breaches,
    idle_breaches,
    op_timeout_breaches,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from swaysim._backend.ledger import CallLedger, Tally
    from swaysim._runner.results import ProbeResult
    from swaysim._scenario.run import ScenarioRun
    from swaysim._scenario.schema import CountBounds, ExpectKeys, SecondsBounds

__all__ = ["Outcome", "Status", "evaluate"]

Status = Literal["ok", "failed", "n/a", "skipped"]
_SECONDS_TOLERANCE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Outcome:
    """One expectation (or invariant) checked: what was expected, what was observed, the status.

    ``n/a`` (could not be checked) counts as a failure: a check that did not
    happen never passes a scenario. ``skipped`` is an ``n/a`` the scenario
    marked optional.
    """

    key: str
    expected: str
    observed: str
    status: Status

    @property
    def failed(self) -> bool:
        """Whether the outcome fails the scenario: it does not hold, or it could not be checked."""
        return self.status in ("failed", "n/a")

    def line(self) -> str:
        """``expect.retries: expected at least 1, observed 0``."""
        if self.status == "n/a":
            return f"{self.key}: expected {self.expected}, could not be checked: {self.observed}"
        return f"{self.key}: expected {self.expected}, observed {self.observed}"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {
            "key": self.key,
            "expected": self.expected,
            "observed": self.observed,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class _Evidence:
    """A run, the runs it is compared with, and the key prefix its outcomes carry."""

    run: ScenarioRun
    other_loop: ScenarioRun | None
    reference: ScenarioRun | None
    prefix: str = "expect"

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"


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


def _count(key: str, value: int, bounds: CountBounds, shown: str | None = None) -> Outcome:
    observed = str(value) if shown is None else shown
    return _ok(key, _bounds_text(bounds), observed, _within(value, bounds))


def _tally(key: str, tally: Tally, bounds: CountBounds) -> Outcome:
    """A count the backend observed; a failure shows the first few of what it counted."""
    outcome = _count(key, tally.count, bounds)
    return replace(outcome, observed=tally.describe()) if outcome.failed else outcome


# -- verdicts ---------------------------------------------------------------------------


def _describe_result(result: ProbeResult | None) -> str:
    if result is None:
        return "no result"
    message = f" ({result.message})" if result.message else ""
    if len(message) > 160:
        message = message[:156] + "...)"
    return f"{result.verdict.value}{message}"


def _verdicts(ev: _Evidence, pattern: str, allowed: Sequence[str]) -> Outcome:
    run = ev.run
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
    key = join_key(ev.key("verdicts"), pattern)
    if not wrong:
        observed = Counter(by_name[n].verdict.value for n in names)
        return Outcome(key, expected, ", ".join(f"{v} x{c}" for v, c in observed.items()), "ok")
    shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    if run.aborted and pattern != PREFLIGHT_NAME:
        shown += " [preflight aborted the suite]"
    elif run.cancelled:
        shown += " [the suite was cancelled]"
    return Outcome(key, expected, shown, "failed")


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


# -- what every run must satisfy --------------------------------------------------------


def _invariants(run: ScenarioRun) -> Iterator[Outcome]:
    for violation in run.violations:
        yield Outcome(violation.key, INVARIANTS[violation.name], violation.observed, "failed")


def _runner_completed(run: ScenarioRun) -> Iterator[Outcome]:
    crashed = any(v.name == "fault_crash" for v in run.violations)
    if run.error is not None and not crashed:
        observed = f"it was {run.error}" if run.stalled else f"it raised {run.error}"
        yield Outcome("runner", "to complete", observed, "failed")


def _one_result_per_probe(run: ScenarioRun) -> Iterator[Outcome]:
    """A finished run has one result per probe (or preflight's one ERROR), nothing else."""
    if run.error is not None or run.cancelled or run.aborted:
        return
    counts = Counter(r.name for r in run.results)
    names = run.scenario.probe_names
    problems = [f"no result for {n!r}" for n in names if n not in counts]
    problems += [f"{c} results for {n!r}" for n, c in counts.items() if c > 1]
    problems += [f"a result for unknown probe {n!r}" for n in counts if n not in set(names)]
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        yield Outcome("results", "one result per probe", shown, "failed")


# -- one check per [expect] key, in the order the outcomes are listed -------------------


def _verdict_expectations(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    for pattern, allowed in expect.verdicts.items():
        yield _verdicts(ev, pattern, allowed)


def _verdict_counts(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    if expect.verdict_counts is None:
        return
    counts = Counter(r.verdict.value for r in ev.run.results)
    for verdict in VerdictCounts.model_fields:
        bounds = getattr(expect.verdict_counts, verdict)
        if bounds is not None:
            yield _count(ev.key(f"verdict_counts.{verdict}"), counts[verdict], bounds)


def _no_false_pass(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    if expect.no_false_pass is None:
        return
    offenders = false_passes(ev.run)
    wanted = "no false PASS" if expect.no_false_pass else "a false PASS"
    observed = "; ".join(offenders[:3]) if offenders else "none"
    yield _ok(ev.key("no_false_pass"), wanted, observed, (not offenders) == expect.no_false_pass)


def _matches_reference(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    if expect.matches_reference is None:
        return
    key = ev.key("matches_reference")
    wanted = expect.matches_reference
    expected = "the fault-free reference results" if wanted else "a difference from them"
    reference = ev.reference
    if reference is None or reference.error is not None:
        why = (
            "no reference run"
            if reference is None
            else f"the reference run failed: {reference.error}"
        )
        yield Outcome(key, expected, why, "n/a")
        return
    mismatches, compared = reference_mismatches(ev.run, reference)
    if mismatches:
        observed = "; ".join(mismatches[:3])
        if len(mismatches) > 3:
            observed += f"; and {len(mismatches) - 3} more"
    else:
        observed = f"{compared} comparable probe(s) identical"
    yield _ok(key, expected, observed, (not mismatches) == wanted)


def _aborted_and_cancelled(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    run = ev.run
    if expect.aborted is not None:
        reason = next((r.message for r in run.results if r.name == PREFLIGHT_NAME), "")
        reason = reason.partition("suite aborted before any probe ran. ")[2] or reason
        observed = f"aborted ({reason})" if run.aborted else "not aborted"
        meanings = ("aborted", "not aborted")
        yield _flag(ev.key("aborted"), expect.aborted, run.aborted, meanings, observed)
    if expect.cancelled is not None:
        observed = f"cancelled at {run.makespan:.6g} s" if run.cancelled else "finished"
        meanings = ("cancelled", "to finish before cancel_after")
        yield _flag(ev.key("cancelled"), expect.cancelled, run.cancelled, meanings, observed)


def _views(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    stats = ev.run.statistics
    if expect.peak_live_views is not None:
        yield _count(ev.key("peak_live_views"), stats.peak_live_views, expect.peak_live_views)
    if expect.view_switches is not None:
        yield _count(ev.key("view_switches"), ev.run.view_switches, expect.view_switches)
    for view_id, bounds in expect.calls_per_view.items():
        calls = stats.calls_per_view.get(view_id, 0)
        yield _count(join_key(ev.key("calls_per_view"), view_id), calls, bounds)
    if expect.view_entries is not None:
        entries = sum(stats.entries_per_view.values())
        yield _count(ev.key("view_entries"), entries, expect.view_entries)
    peak = expect.peak_ops_in_flight
    if peak is not None:
        ledger = ev.run.ledger
        key = ev.key("peak_ops_in_flight")
        if ledger is None:
            yield Outcome(key, _bounds_text(peak), "the backend was not observed", "n/a")
        else:
            yield _count(key, ledger.peak_in_flight, peak)


def _makespan(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    if expect.makespan is None:
        return
    run = ev.run
    # Schedule jitter adds tiny sleeps, and a synchronous runner's own Python on its worker
    # thread takes real time the clock follows: the upper bound widens by exactly those.
    bounds, expected = expect.makespan, _bounds_text(expect.makespan, " s")
    jitter, outside = run.statistics.jitter_seconds, run.outside_seconds
    if bounds.at_most is not None and (jitter or outside):
        bounds = bounds.model_copy(update={"at_most": bounds.at_most + jitter + outside})
        if jitter:
            expected += f" (at most +{jitter:.3g} s of schedule jitter)"
        if outside:
            expected += f" (at most +{outside:.3g} s of the runner's own work on a worker thread)"
    holds = _within(run.makespan, bounds, _SECONDS_TOLERANCE)
    yield _ok(ev.key("makespan"), expected, f"{run.makespan:.6g} s", holds)


def _faults_fired(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    for rule, bounds in expect.faults_fired.items():
        fired = ev.run.statistics.faults_fired.get(rule, 0)
        yield _count(join_key(ev.key("faults_fired"), rule), fired, bounds)


def _observed_counters(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    ledger = ev.run.ledger
    wanted = (
        ("duplicate_requests", expect.duplicate_requests),
        ("retries", expect.retries),
        ("timeouts", expect.timeouts),
        ("cancelled_ops", expect.cancelled_ops),
    )
    for name, bounds in wanted:
        if bounds is None:
            continue
        if ledger is None:
            yield Outcome(ev.key(name), _bounds_text(bounds), "the backend was not observed", "n/a")
            continue
        tally = ledger.duplicates if name == "duplicate_requests" else getattr(ledger, name)
        yield _tally(ev.key(name), tally, bounds)


def _retry_delay(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    bounds = expect.retry_delay
    if bounds is None:
        return
    key, expected, ledger = ev.key("retry_delay"), _bounds_text(bounds, " s"), ev.run.ledger
    if ledger is None:
        yield Outcome(key, expected, "the backend was not observed", "n/a")
        return
    delays = ledger.retry_delays
    if not delays:
        yield _ok(key, expected, "no retries", True)
        return
    outside = [(d, what) for d, what in delays if not _within(d, bounds, _SECONDS_TOLERANCE)]
    low, high = min(d for d, _ in delays), max(d for d, _ in delays)
    count = f"{len(delays)} {'retry' if len(delays) == 1 else 'retries'}"
    observed = f"{low:.6g} to {high:.6g} s over {count}"
    if outside:
        delay, what = outside[0]
        observed += f" ({what} after {delay:.6g} s)"
    yield _ok(key, expected, observed, not outside)


def _policy(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    """``retry_backoff``, ``op_timeout_applied`` and ``work_conserving``: the contract's
    policy, from the ledger."""
    run = ev.run
    functions = {item.name for item in run.scenario.probe_plan if item.kind == "function"}
    safe = run.scenario.spec.backend.safe_for_concurrent_views

    def idle(ledger: CallLedger, options: Mapping[str, object], *, slack: float) -> list[str]:
        return idle_breaches(ledger, options, safe=safe, functions=functions, slack=slack)

    checks: tuple[tuple[str, bool | None, Callable[..., list[str]], str], ...] = (
        ("retry_backoff", expect.retry_backoff, backoff_breaches, "every retry waited its backoff"),
        ("op_timeout_applied", expect.op_timeout_applied, op_timeout_breaches, "ops timed out"),
        ("work_conserving", expect.work_conserving, idle, "never idle with work to send"),
    )
    for name, wanted, breaches, held in checks:
        if wanted is None:
            continue
        meanings = ("kept", "broken")
        if run.ledger is None:
            yield Outcome(ev.key(name), meanings[0], "the backend was not observed", "n/a")
            continue
        slack = run.statistics.jitter_seconds + run.outside_seconds
        found = breaches(run.ledger, run.options or {}, slack=slack)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        observed = f"{found[0]}{more}" if found else held
        yield _flag(ev.key(name), wanted, not found, meanings, observed)


def _gate_free(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    if expect.gate_free is None:
        return
    run = ev.run
    stats = run.statistics
    observed = (
        "free"
        if run.gate_free
        else f"{stats.live_views} live ({dict(stats.holders)}), {stats.waiting} waiting"
    )
    meanings = ("free", "not free")
    yield _flag(ev.key("gate_free"), expect.gate_free, run.gate_free, meanings, observed)


def _identical(ev: _Evidence, expect: ExpectKeys) -> Iterator[Outcome]:
    wanted = expect.identical_across_loops
    if wanted is None:
        return
    key = ev.key("identical_across_loops")
    expected = "identical" if wanted else "different"
    other = ev.other_loop
    if other is None:
        yield Outcome(key, expected, "ran on one loop only", "n/a")
        return
    run = ev.run
    same = run.fingerprint == other.fingerprint
    observed = f"identical to {other.loop}" if same else _first_difference(run, other)
    yield _ok(key, expected, observed, same == wanted)


_CHECKS: Final[tuple[Callable[[_Evidence, ExpectKeys], Iterator[Outcome]], ...]] = (
    _verdict_expectations,
    _verdict_counts,
    _no_false_pass,
    _matches_reference,
    _aborted_and_cancelled,
    _views,
    _makespan,
    _faults_fired,
    _observed_counters,
    _retry_delay,
    _policy,
    _gate_free,
    _identical,
)


def _optional(outcome: Outcome, optional: frozenset[str]) -> Outcome:
    """An ``n/a`` on a key the scenario marked optional is ``skipped``."""
    if outcome.status != "n/a":
        return outcome
    # expect.<key>..., or expect.reference.<key>...
    parts = outcome.key.split(".")
    name = parts[2] if parts[1:2] == ["reference"] and len(parts) > 2 else "".join(parts[1:2])
    return replace(outcome, status="skipped") if name in optional else outcome


def evaluate(
    run: ScenarioRun,
    other_loop: ScenarioRun | None = None,
    reference: ScenarioRun | None = None,
) -> list[Outcome]:
    """Every broken invariant, then every ``[expect]`` key checked against ``run``.

    ``other_loop`` is the run on the other loop (``identical_across_loops``)
    and ``reference`` the reference runner's fault-free run
    (``matches_reference``); without them those keys are ``n/a``.
    ``[expect.reference]`` keys count only when ``run.configured``.
    """
    expect = run.scenario.spec.expect
    outcomes = [*_invariants(run), *_runner_completed(run), *_one_result_per_probe(run)]
    evidence = _Evidence(run, other_loop, reference)
    outcomes += [o for check in _CHECKS for o in check(evidence, expect)]
    if expect.reference is not None and run.configured:
        evidence = replace(evidence, prefix="expect.reference")
        outcomes += [o for check in _CHECKS for o in check(evidence, expect.reference)]
    optional = frozenset(expect.optional)
    return [_optional(outcome, optional) for outcome in outcomes]
