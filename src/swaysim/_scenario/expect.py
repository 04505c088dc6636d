"""Running a scenario on an event loop, and checking its expectations.

:func:`run_scenario` builds a fresh backend and probe suite from a
:class:`~swaysim._scenario.Scenario`, runs the suite on a virtual clock and
records what a scenario can assert on: the results, the runner's counters,
the backend's statistics and fault log, whether the gate ended free.
:func:`evaluate` turns each ``[expect]`` key into an :class:`Outcome` (the
expectation, the observed value, ok / failed / not applicable), and
:func:`check_scenario` does both for one or both loops, running the other
loop as well when ``identical_across_loops`` needs it.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import math
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio

from swaysim._chaos.faults import OUTPUT_KINDS
from swaysim._runner.results import ProbeResult, Verdict
from swaysim._runner.suite import PREFLIGHT_NAME, SuiteResult, run_suite
from swaysim._scenario.load import MAX_SECONDS, toml_key
from swaysim._time.clock import LOOPS
from swaysim._time.clock import run as run_on_loop

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping, Sequence

    from swaysim._backend.statistics import BackendStatistics
    from swaysim._chaos.faults import FaultFiring
    from swaysim._scenario.load import CountBounds, Scenario, SecondsBounds
    from swaysim._trace.events import TraceSink

__all__ = [
    "LOOPS",
    "Outcome",
    "RunKey",
    "ScenarioCheck",
    "ScenarioRun",
    "check_scenario",
    "evaluate",
    "results_document",
    "run_scenario",
]

RequestKey = tuple[str, str, str]
RunKey = tuple[str, str, int | None, int | None]
"""A shared run: scenario source, loop, seed override and jitter override."""
Status = Literal["ok", "failed", "n/a"]
_SECONDS_TOLERANCE: Final = 1e-9
STALL_SECONDS: Final = 10 * MAX_SECONDS
"""A run still going after this many virtual seconds is stopped as stalled.

The clock jumps whenever every task waits, so only a wait that nothing ends
(a ``hang`` fault with no timeout to cut it off) gets this far, in a few wall
milliseconds, instead of hanging the process."""


def _other_loop(loop: str) -> str:
    return "trio" if loop == "asyncio" else "asyncio"


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """What one run of a scenario on one event loop produced and counted."""

    scenario: Scenario
    loop: str
    seed: int
    results: tuple[ProbeResult, ...]
    suite: SuiteResult | None
    statistics: BackendStatistics
    fault_log: tuple[FaultFiring, ...]
    gate_free: bool
    cancelled: bool
    makespan: float
    """Virtual seconds from start to finish (or to cancellation)."""
    wall_seconds: float
    view_switches: int
    """This run's switches, preflight included."""
    retries: int | None
    """None when a custom runner returned plain results (no counter to read)."""
    timeouts: int | None
    requests: Mapping[str, tuple[RequestKey, ...]] | None
    error: str | None
    """Why the runner did not complete (it raised, or it stalled), else None."""
    schedule_jitter: int | None = None
    """The backend's chaos-scheduling seed, if any (part of the replay command)."""
    stalled: bool = False
    """Whether the run was stopped after :data:`STALL_SECONDS` with every task waiting."""

    @property
    def aborted(self) -> bool:
        """Whether preflight aborted the suite."""
        return any(r.name == PREFLIGHT_NAME for r in self.results)

    @property
    def fingerprint(self) -> str:
        """Results without timing: what must be identical on every loop."""
        if self.suite is not None:
            document: Any = self.suite.to_dict(include_timing=False)
        else:
            document = {
                "results": sorted(
                    (r.to_dict(include_timing=False) for r in self.results),
                    key=lambda d: str(d["name"]),
                ),
                "cancelled": self.cancelled,
                "error": self.error,
            }
        return json.dumps(document, sort_keys=True, default=str)

    def __repr__(self) -> str:
        state = "error" if self.error else "done"
        if self.cancelled or self.stalled:
            state = "cancelled" if self.cancelled else "stalled"
        return (
            f"<ScenarioRun {self.scenario.name!r} on {self.loop}, seed {self.seed}: {state}, "
            f"{len(self.results)} results, {self.makespan:.3f} virtual s, "
            f"{self.wall_seconds:.3f} wall s>"
        )


def _coerce_results(value: object) -> tuple[SuiteResult | None, tuple[ProbeResult, ...]]:
    if isinstance(value, SuiteResult):
        return value, value.results
    if isinstance(value, list | tuple) and all(isinstance(r, ProbeResult) for r in value):
        return None, tuple(value)
    raise TypeError(
        f"the runner returned {type(value).__name__}; it must return a SuiteResult "
        "or a sequence of ProbeResult"
    )


def run_scenario(
    scenario: Scenario,
    loop: str,
    *,
    seed: int | None = None,
    trace: TraceSink | None = None,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    schedule_jitter: int | None = None,
) -> ScenarioRun:
    """Run ``scenario`` once on ``loop`` ("asyncio" or "trio") on a virtual clock.

    ``schedule_jitter`` overrides the scenario's ``[backend] schedule_jitter``.
    """
    seed = scenario.seed if seed is None else seed
    backend = scenario.build_backend(seed, trace=trace, schedule_jitter=schedule_jitter)
    probes = scenario.build_probes()
    options = scenario.runner_options(seed)
    cancel_after = scenario.spec.runner.cancel_after
    collected: list[ProbeResult] = []

    def progress(result: ProbeResult, done: int, total: int) -> None:
        collected.append(result)
        if on_progress is not None:
            on_progress(result, done, total)

    async def session() -> tuple[
        SuiteResult | None, tuple[ProbeResult, ...], bool, bool, float, str | None
    ]:
        start = anyio.current_time()
        suite: SuiteResult | None = None
        results: tuple[ProbeResult, ...] = ()
        error: str | None = None
        scope = anyio.move_on_after(cancel_after) if cancel_after is not None else nullcontext()
        with anyio.move_on_after(STALL_SECONDS) as stall, scope:
            try:
                if scenario.runner_function is None:
                    suite = await run_suite(backend, probes, on_progress=progress, **options)
                    results = suite.results
                else:
                    outcome = scenario.runner_function(backend, probes, **options)
                    if inspect.isawaitable(outcome):
                        outcome = await outcome
                    suite, results = _coerce_results(outcome)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        cancelled = isinstance(scope, anyio.CancelScope) and scope.cancelled_caught
        stalled = stall.cancelled_caught
        if stalled:
            error = (
                f"still waiting after {STALL_SECONDS:g} virtual seconds, with nothing left "
                "to wake it (a hang that no op_timeout, probe_timeout or cancel_after cuts off?)"
            )
        if cancelled or stalled:
            results = tuple(collected)
        return suite, results, cancelled, stalled, anyio.current_time() - start, error

    wall = time.perf_counter()
    suite, results, cancelled, stalled, makespan, error = run_on_loop(session, backend=loop)
    wall_seconds = time.perf_counter() - wall
    statistics = backend.statistics()
    return ScenarioRun(
        scenario=scenario,
        loop=loop,
        seed=seed,
        results=results,
        suite=suite,
        statistics=statistics,
        fault_log=backend.fault_log,
        gate_free=backend.is_free() and statistics.live_views == 0 and statistics.waiting == 0,
        cancelled=cancelled,
        makespan=suite.makespan if suite is not None else makespan,
        wall_seconds=wall_seconds,
        view_switches=statistics.switches,
        retries=suite.retries if suite is not None else None,
        timeouts=suite.timeouts if suite is not None else None,
        requests=suite.requests if suite is not None and not cancelled else None,
        error=error,
        schedule_jitter=backend.schedule_jitter,
        stalled=stalled,
    )


# -- outcomes -------------------------------------------------------------------------


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


def _bounds_text(bounds: CountBounds | SecondsBounds, unit: str = "") -> str:
    low, high = bounds.at_least, bounds.at_most
    if low is not None and high is not None:
        if low == high:
            return f"{_number(low)}{unit}"
        return f"between {_number(low)} and {_number(high)}{unit}"
    if low is not None:
        return f"at least {_number(low)}{unit}"
    return f"at most {_number(high)}{unit}"


def _number(value: float | None) -> str:
    if value is None:
        return "none"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


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
    key = f"expect.verdicts.{toml_key(pattern)}"
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


def evaluate(run: ScenarioRun, reference: ScenarioRun | None = None) -> list[Outcome]:
    """Check every ``[expect]`` key against ``run``.

    ``reference`` is the run on the other loop, needed by
    ``identical_across_loops`` (not applicable without it).
    """
    expect = run.scenario.spec.expect
    out: list[Outcome] = []
    if run.error is not None:
        observed = f"it was {run.error}" if run.stalled else f"it raised {run.error}"
        out.append(Outcome("runner", "to complete", observed, "failed"))
    for pattern, allowed in expect.verdicts.items():
        out.append(_verdicts(run, pattern, allowed))
    if expect.verdict_counts is not None:
        counts = Counter(r.verdict.value for r in run.results)
        for verdict in ("PASS", "FAIL", "WARN", "SKIP", "ERROR"):
            bounds = getattr(expect.verdict_counts, verdict)
            if bounds is not None:
                out.append(_count(f"expect.verdict_counts.{verdict}", counts[verdict], bounds))
    if expect.no_false_pass is not None:
        key = "expect.no_false_pass"
        offenders = _false_passes(run)
        wanted = "no false PASS" if expect.no_false_pass else "a false PASS"
        if offenders is None:
            out.append(Outcome(key, wanted, "not applicable: no request map", "n/a"))
        else:
            observed = "; ".join(offenders[:3]) if offenders else "none"
            out.append(_ok(key, wanted, observed, (not offenders) == expect.no_false_pass))
    if expect.aborted is not None:
        reason = run.suite.preflight[1] if run.suite and run.suite.preflight else ""
        observed = f"aborted ({reason})" if run.aborted else "not aborted"
        meanings = ("aborted", "not aborted")
        out.append(_flag("expect.aborted", expect.aborted, run.aborted, meanings, observed))
    if expect.cancelled is not None:
        observed = f"cancelled at {run.makespan:.6g} s" if run.cancelled else "finished"
        meanings = ("cancelled", "to finish before cancel_after")
        out.append(_flag("expect.cancelled", expect.cancelled, run.cancelled, meanings, observed))
    if expect.peak_live_views is not None:
        out.append(
            _count("expect.peak_live_views", run.statistics.peak_live_views, expect.peak_live_views)
        )
    if expect.view_switches is not None:
        out.append(_count("expect.view_switches", run.view_switches, expect.view_switches))
    if expect.makespan is not None:
        # Schedule jitter adds tiny sleeps: the upper bound widens by exactly what they added.
        bounds, widened = expect.makespan, run.statistics.jitter_seconds
        expected = _bounds_text(bounds, " s")
        if widened and bounds.at_most is not None:
            bounds = bounds.model_copy(update={"at_most": bounds.at_most + widened})
            expected += f" (at most +{widened:.3g} s of schedule jitter)"
        out.append(
            _ok(
                "expect.makespan",
                expected,
                f"{run.makespan:.6g} s",
                _within(run.makespan, bounds, _SECONDS_TOLERANCE),
            )
        )
    for rule, bounds in expect.faults_fired.items():
        fired = run.statistics.faults_fired.get(rule, 0)
        out.append(_count(f"expect.faults_fired.{toml_key(rule)}", fired, bounds))
    plain = "the custom runner returned plain results"
    if expect.retries is not None:
        out.append(_count("expect.retries", run.retries, expect.retries, plain))
    if expect.timeouts is not None:
        out.append(_count("expect.timeouts", run.timeouts, expect.timeouts, plain))
    if expect.gate_free is not None:
        stats = run.statistics
        observed = (
            "free"
            if run.gate_free
            else f"{stats.live_views} live ({dict(stats.holders)}), {stats.waiting} waiting"
        )
        meanings = ("free", "not free")
        out.append(_flag("expect.gate_free", expect.gate_free, run.gate_free, meanings, observed))
    if expect.identical_across_loops is not None:
        key = "expect.identical_across_loops"
        wanted = "identical" if expect.identical_across_loops else "different"
        if reference is None:
            out.append(Outcome(key, wanted, "not applicable: ran on one loop only", "n/a"))
        else:
            same = run.fingerprint == reference.fingerprint
            observed = (
                f"identical to {reference.loop}" if same else _first_difference(run, reference)
            )
            out.append(_ok(key, wanted, observed, same == expect.identical_across_loops))
    return out


# -- checking -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioCheck:
    """A scenario run on one loop, and its expectations checked."""

    run: ScenarioRun
    outcomes: tuple[Outcome, ...]

    @property
    def scenario(self) -> Scenario:
        """The scenario."""
        return self.run.scenario

    @property
    def loop(self) -> str:
        """The event loop it ran on."""
        return self.run.loop

    @property
    def ok(self) -> bool:
        """Whether every expectation holds."""
        return not any(o.failed for o in self.outcomes)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        """The expectations that do not hold."""
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def replay(self) -> str:
        """The command that replays exactly this run (its seed and jitter seed)."""
        return self.scenario.replay_command(
            self.loop, self.run.seed, schedule_jitter=self.run.schedule_jitter
        )

    def failure_report(self) -> str:
        """Every failed expectation (expected vs observed), the seed and the replay command."""
        lines = [
            f"scenario {self.scenario.name!r} ({self.scenario.source}) failed on {self.loop}:",
            *(f"  {o.line()}" for o in self.failures),
            f"  seed: {self.run.seed}",
            *(
                [f"  schedule_jitter: {self.run.schedule_jitter}"]
                if self.run.schedule_jitter is not None
                else []
            ),
            f"  replay: {self.replay}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the run and every outcome."""
        run = self.run
        return {
            "file": self.scenario.source,
            "name": self.scenario.name,
            "description": self.scenario.description,
            "loop": self.loop,
            "seed": run.seed,
            "schedule_jitter": run.schedule_jitter,
            "ok": self.ok,
            "virtual_seconds": run.makespan,
            "wall_seconds": run.wall_seconds,
            "cancelled": run.cancelled,
            "aborted": run.aborted,
            "error": run.error,
            "replay": self.replay,
            "verdicts": dict(Counter(r.verdict.value for r in run.results)),
            "expectations": [o.to_dict() for o in self.outcomes],
            "probes": [_probe_row(r) for r in run.results],
        }


def _probe_row(result: ProbeResult) -> dict[str, Any]:
    def number(value: float | None) -> float | str | None:
        if value is None:
            return None
        return float(value) if math.isfinite(value) else repr(float(value))

    return {
        "name": result.name,
        "kind": result.kind,
        "verdict": result.verdict.value,
        "score": number(result.score),
        "raw": number(result.raw),
        "z": number(result.z),
        "message": result.message,
        "duration": result.duration,
    }


def results_document(run: ScenarioRun) -> dict[str, Any]:
    """``results.json`` of a run directory (what ``swaysim report`` reads)."""
    return {
        "scenario": run.scenario.name,
        "loop": run.loop,
        "seed": run.seed,
        "probes": [_probe_row(r) for r in run.results],
        "statistics": run.statistics.to_dict(),
        "makespan": run.makespan,
    }


def check_scenario(
    scenario: Scenario,
    loops: Sequence[str] = LOOPS,
    *,
    seed: int | None = None,
    trace_for: Callable[[str], TraceSink | None] | None = None,
    on_progress: Callable[[ProbeResult, int, int], object] | None = None,
    cache: MutableMapping[RunKey, ScenarioRun] | None = None,
    schedule_jitter: int | None = None,
) -> list[ScenarioCheck]:
    """Run ``scenario`` on each of ``loops`` and check its expectations.

    When ``identical_across_loops`` is expected and only one loop is asked
    for, the other loop runs too (untraced) as the reference, so every check
    stands on its own (one pytest item per loop works under xdist). With a
    ``cache`` (keyed by source, loop, seed and jitter seed), untraced runs
    are shared between calls: the pytest item for trio reuses the asyncio
    item's reference run instead of running it again. ``schedule_jitter``
    overrides the scenario's ``[backend] schedule_jitter``.
    """

    def obtain(
        loop: str,
        trace: TraceSink | None = None,
        progress: Callable[[ProbeResult, int, int], object] | None = None,
    ) -> ScenarioRun:
        key = (scenario.source, loop, seed, schedule_jitter)
        shareable = cache is not None and trace is None and progress is None
        if shareable and cache is not None and key in cache:
            return cache[key]
        found = run_scenario(
            scenario,
            loop,
            seed=seed,
            trace=trace,
            on_progress=progress,
            schedule_jitter=schedule_jitter,
        )
        if shareable and cache is not None:
            cache[key] = found
        return found

    runs: dict[str, ScenarioRun] = {}
    for loop in loops:
        trace = trace_for(loop) if trace_for is not None else None
        runs[loop] = obtain(loop, trace, on_progress)
    references = dict(runs)
    if scenario.spec.expect.identical_across_loops is not None:
        for loop in loops:
            other = _other_loop(loop)
            if other not in references:
                references[other] = obtain(other)
    return [
        ScenarioCheck(runs[loop], tuple(evaluate(runs[loop], references.get(_other_loop(loop)))))
        for loop in loops
    ]
