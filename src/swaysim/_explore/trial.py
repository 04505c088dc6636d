"""One trial: a generated scenario run against the runner under test, judged by the oracles.

The oracles need no hand-written expectation, so they apply to any scenario and
any runner; each is a key of the harness's own evaluation
(:func:`~swaysim._scenario.expect.evaluate`), so a failure found here is a
failure ``swaysim run`` reports for the written file:

- the **invariants** checked the moment the runner returns (``invariant.<name>``),
  the runner completing (``runner``) and one result per probe (``results``);
- **no false PASS** (``expect.no_false_pass``);
- **fault isolation** (``expect.matches_reference``): a probe none of whose
  requests met a fault, or only retryable ones within the retry budget, has the
  verdict and scores of the reference runner's fault-free run;
- **invariance** (``expect.identical_across_loops``): every
  :attr:`~swaysim._explore.config.ExploreConfig.invariance_every`-th trial also
  runs on the other loop, and the results must be identical, unless either run
  had an op cut off by a timeout (timeouts depend on timing by nature); the other
  loop's run is skipped where that or an arrival-dependent plan waives it. Jitter,
  latency and concurrency are drawn per trial, so fault isolation compares
  results under all of them with the fault-free run.

A failure counts only when the reference runner passes the same scenario with
the same expectation: otherwise the generated scenario asks for something no
runner can do, and the trial is *discarded*.

:func:`run_trial` is module-level and its arguments picklable: what process
pools and Dask workers call.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import tomli_w

from swaysim._chaos.faults import VIEW_EVENT_KINDS
from swaysim._explore.generate import trial_document
from swaysim._runner.suite import PREFLIGHT_NAME
from swaysim._scenario.expect import evaluate
from swaysim._scenario.harness import INVARIANTS
from swaysim._scenario.load import parse_document, parse_scenario
from swaysim._scenario.messages import join_key
from swaysim._scenario.run import run_reference, run_scenario

if TYPE_CHECKING:
    from swaysim._explore.config import ExploreConfig
    from swaysim._explore.generate import Document
    from swaysim._scenario.load import Scenario
    from swaysim._scenario.run import ScenarioRun

__all__ = [
    "ORACLES",
    "Failure",
    "TrialOutcome",
    "expect_for",
    "failures",
    "document_scenario",
    "run_trial",
    "scenario_of",
]

IDENTICAL: Final = "expect.identical_across_loops"
SWITCHES: Final = "expect.view_switches"
VERDICTS: Final = "expect.verdicts"
PEAK: Final = "expect.peak_live_views"
ENTRIES: Final = "expect.view_entries"
IN_FLIGHT: Final = "expect.peak_ops_in_flight"
BACKOFF: Final = "expect.retry_backoff"
OP_TIMEOUT: Final = "expect.op_timeout_applied"
BUSY: Final = "expect.work_conserving"
_TIMING_WAIVED: Final = frozenset({IDENTICAL, SWITCHES, PEAK, ENTRIES})
_TIMED_KINDS: Final = frozenset({"hang", *VIEW_EVENT_KINDS})
_RETRY_POLICY: Final = ("retries", "backoff", "backoff_max")
"""The ``[runner]`` keys that matter only once a request fails."""
_PREFLIGHT_SWITCHES: Final = 2
"""Preflight enters base and ft before the probes' views: at most two switches of its own."""
ORACLES: Final[dict[str, str]] = {
    **{f"invariant.{name}": what for name, what in INVARIANTS.items()},
    "runner": "the runner to complete",
    "results": "one result per probe",
    "expect.no_false_pass": "no PASS resting on a corrupted answer",
    "expect.matches_reference": "fault isolation: unfaulted probes match the fault-free run",
    IDENTICAL: "invariance: the same results on the other loop (timeouts aside)",
    SWITCHES: "each distinct view entered once, preflight's two switches aside",
    VERDICTS: "the reference runner's verdicts under the same faults",
    PEAK: "views live together on a concurrent-safe backend",
    ENTRIES: "each distinct view entered once, preflight's two entries aside",
    IN_FLIGHT: "at most runner.concurrency ops in flight",
    BACKOFF: "each retry waits its backoff, the device never idle longer",
    OP_TIMEOUT: "no op outlives op_timeout, and none is cut off before it",
    BUSY: "the device never idle while a request waits to be sent",
}
"""Every property exploration checks, by the key outcomes name it with."""
_CARRIER: Final = {"no_false_pass": True}
"""The ``[expect]`` of a file whose violated property is always checked (an invariant):
a table needs one key, and this one holds for any correct runner."""


@dataclass(frozen=True, slots=True)
class Failure:
    """The property a run broke (a key of :data:`ORACLES`) and what was observed."""

    key: str
    observed: str

    def __str__(self) -> str:
        return f"{self.key}: {self.observed}"


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What one trial found (picklable; equal for equal seeds in any process)."""

    seed: int
    scenario: str
    """The base scenario's source."""
    loop: str
    failure: Failure | None
    discarded: str | None = None
    """Why a failure does not count: the reference runner fails the scenario too."""
    rules: int = 0
    probes: int = 0
    twin: bool = False
    """Whether the invariance twin (the other loop) ran."""
    wall_seconds: float = field(default=0.0, compare=False)

    @property
    def failed(self) -> bool:
        """Whether the runner under test broke a property the reference runner keeps."""
        return self.failure is not None and self.discarded is None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "seed": self.seed,
            "scenario": self.scenario,
            "loop": self.loop,
            "failure": None if self.failure is None else str(self.failure),
            "discarded": self.discarded,
            "fault_rules": self.rules,
            "probes": self.probes,
        }

    def __repr__(self) -> str:
        state = "ok" if self.failure is None else str(self.failure)
        if self.discarded is not None:
            state = f"discarded ({self.discarded})"
        return f"<TrialOutcome seed {self.seed} on {self.loop} ({self.scenario}): {state}>"


def expect_for(key: str | None) -> dict[str, Any]:
    """The ``[expect]`` table that checks ``key`` (None: the oracles every trial checks).

    Keys whose expectation depends on the scenario (a switch bound, a verdict) are
    :func:`expectation`'s.
    """
    if key is None:
        return {"no_false_pass": True, "matches_reference": True}
    if key.startswith("expect."):
        return {key.removeprefix("expect."): True}
    return dict(_CARRIER)


def scenario_of(document: Document, source: str) -> Scenario:
    """The document as a validated scenario, through the file format (what a file holds).

    ``source`` is the base scenario's file: its folder is where function probes' modules are
    found, as for the file itself.
    """
    return parse_scenario(tomli_w.dumps(document), source=source, path=_file(source))


def document_scenario(document: Document, source: str) -> Scenario:
    """The document as a validated scenario without writing it out: what :func:`scenario_of`
    gives (the loader validates the document the same way), minus the TOML text's cost."""
    return parse_document(document, source=source, path=_file(source))


def _file(source: str) -> Path | None:
    path = Path(source)
    return path if not source.startswith("<") and path.is_file() else None


def _reference_key(document: Document, loop: str, source: str, *, faults: bool) -> str:
    """What the reference runner's results on ``document`` depend on (a cache key and the
    document it runs): fault-free (no fault rules, no ``cancel_after``), or under its faults.

    When nothing is timed (no op or probe timeout; under faults, no ``cancel_after``)
    neither the latency plan, the jitter nor the concurrency can change a result, so
    they go: fault-free, timing decides nothing but which timeout fires; under faults
    only plans whose firings depend on the request alone are run (``_order_dependent``),
    and not with function probes, whose own calls to a request may come before or
    after the suite's. Fault-free, the retry policy goes too, and the scenario seed
    unless a function probe reads it: with no fault there is no retry (whose backoff
    draws from the seed), and declarative probes never see it.
    ``tests/unit/test_explore_cost.py`` checks each of these claims.
    """
    kept = {**document, "expect": _CARRIER}
    backend = dict(kept.get("backend", {}))
    runner = dict(kept.get("runner", {}))
    if not faults:
        backend.pop("faults", None)
        runner.pop("cancel_after", None)
    functions = any(probe.get("kind") == "function" for probe in kept.get("probes", ()))
    timed = {"op_timeout", "probe_timeout", "cancel_after"} & runner.keys()
    if not timed and not (faults and functions):
        backend.pop("latency", None)
        backend.pop("schedule_jitter", None)
        runner.pop("concurrency", None)
        if not faults and not functions:
            kept.pop("seed", None)
        if not faults:
            for key in _RETRY_POLICY:
                runner.pop(key, None)
    kept["backend"], kept["runner"] = backend, runner
    return json.dumps([loop, source, kept], sort_keys=True, default=str)


def _fault_free_key(document: Document, loop: str, source: str) -> str:
    """What the reference runner's fault-free results depend on (timing only via timeouts)."""
    return _reference_key(document, loop, source, faults=False)


@functools.lru_cache(maxsize=256)
def _fault_free(key: str) -> ScenarioRun:
    loop, source, document = json.loads(key)
    return run_reference(document_scenario(document, source), loop)


@functools.lru_cache(maxsize=16)
def _under_faults(key: str) -> ScenarioRun:
    """The reference runner under the document's faults (a trial and its shrinking ask again)."""
    loop, source, document = json.loads(key)
    return run_scenario(document_scenario(document, source), loop)


def _other(loop: str) -> str:
    return "trio" if loop == "asyncio" else "asyncio"


def _order_dependent(document: Document) -> bool:
    """Rules whose firings depend on timing or on how often a runner enters a view."""
    return any(
        "max_fires" in rule or "window" in rule or rule["kind"] in _TIMED_KINDS
        for rule in _rules(document)
    )


def _arrival_dependent(document: Document) -> bool:
    """Rules whose firings depend on the order calls arrive in (a global cap, a time window;
    any rule once function probes, which enter views and call at their own pace, share the
    backend): two correct schedules may see different firings, so results may differ between
    loops."""
    rules = _rules(document)
    if rules and any(p.get("kind") == "function" for p in document.get("probes", ())):
        return True
    return any("max_fires" in rule or "window" in rule for rule in rules)


def _rules(document: Document) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = document.get("backend", {}).get("faults", {}).get("rules", [])
    return rules


def switch_bound(document: Document, loop: str, source: str) -> int | None:
    """The most switches a correct runner makes here (None: view faults make re-entries fair).

    Every distinct view entered once, plus preflight's two: what the fault-free reference
    run entered (it enters each view once, after preflight's base and ft).
    """
    if any(rule["kind"] in VIEW_EVENT_KINDS for rule in _rules(document)):
        return None
    entries = _fault_free(_fault_free_key(document, loop, source)).statistics.entries
    preflight = document.get("runner", {}).get("preflight", True)
    return entries if preflight else entries + _PREFLIGHT_SWITCHES


def concurrency_bound(document: Document) -> int | None:
    """``runner.concurrency``: the most ops a correct runner has in flight (None: function
    probes drive views themselves, so the suite's own bound does not cover their ops)."""
    if any(probe.get("kind") == "function" for probe in document.get("probes", ())):
        return None
    return int(document.get("runner", {}).get("concurrency", 1))


def policy_expectations(document: Document, loop: str, source: str) -> dict[str, Any]:
    """The runner contract's observed counts and policy, as ``[expect]`` keys for this document:
    view entries; ops in flight, backoff and an idle device (without function probes, which
    enter views and send ops at their own pace); ``op_timeout`` when the scenario sets one."""
    expect: dict[str, Any] = {}
    bound = switch_bound(document, loop, source)
    if bound is not None:
        expect["view_switches"] = {"at_most": bound}
        expect["view_entries"] = {"at_most": bound}
    in_flight = concurrency_bound(document)
    if in_flight is not None:
        expect["peak_ops_in_flight"] = {"at_most": in_flight}
        expect["retry_backoff"] = True
        expect["work_conserving"] = True
    if document.get("runner", {}).get("op_timeout") is not None:
        expect["op_timeout_applied"] = True
    return expect


def parallel_expected(document: Document, loop: str, source: str) -> bool:
    """Whether a correct runner has two views live at once here (a concurrent-safe backend
    whose fault-free reference run did), view faults aside."""
    backend = document.get("backend", {})
    if (
        not backend.get("safe_for_concurrent_views")
        or int(backend.get("max_concurrent_views", 2)) < 2
    ):
        return False
    if any(rule["kind"] in VIEW_EVENT_KINDS for rule in _rules(document)):
        return False
    return _fault_free(_fault_free_key(document, loop, source)).statistics.peak_live_views >= 2


def _verdict_table(run: ScenarioRun) -> dict[str, str]:
    """The verdicts a runner must share with the reference one under the same faults: a
    function probe's are left out (whether its own calls are retried depends on the runner
    offering ``ctx.call``, which the contract leaves optional)."""
    if run.aborted:
        return {PREFLIGHT_NAME: "ERROR"}
    functions = {item.name for item in run.scenario.probe_plan if item.kind == "function"}
    return {r.name: r.verdict.value for r in run.results if r.name not in functions}


def _faulted_reference(document: Document, loop: str, source: str) -> ScenarioRun | None:
    """The reference runner on the same faults, when verdicts must agree with it."""
    if _order_dependent(document):
        return None
    reference = _under_faults(_reference_key(document, loop, source, faults=True))
    if reference.timeouts or reference.cancelled or reference.error or reference.stalled:
        return None
    return reference


def expectation(document: Document, key: str, loop: str, source: str) -> dict[str, Any] | None:
    """The ``[expect]`` table of a file that checks ``key`` on ``document`` (None: it cannot)."""
    if key == PEAK:
        return (
            {"peak_live_views": {"at_least": 2}}
            if parallel_expected(document, loop, source)
            else None
        )
    if key in (SWITCHES, ENTRIES, IN_FLIGHT):
        name = key.removeprefix("expect.")
        wanted = policy_expectations(document, loop, source).get(name)
        return None if wanted is None else {name: wanted}
    if key.startswith(f"{VERDICTS}."):
        reference = _faulted_reference(document, loop, source)
        table = {} if reference is None else _verdict_table(reference)
        wanted = {name: v for name, v in table.items() if join_key(VERDICTS, name) == key}
        return {"verdicts": wanted} if wanted else None
    return expect_for(key)


def failures(
    document: Document, runner: str | None, loop: str, *, source: str = "<explore>"
) -> list[Failure]:
    """Every property ``runner`` (None: the reference runner) breaks on ``document``.

    The document's ``[expect]`` says which of the expectation-based oracles apply;
    the invariants always do. Invariance and the switch bound are waived when either
    run cut an op off.
    """
    return _judged(document, runner, loop, source)[0]


def _cut_off(run: ScenarioRun) -> bool:
    """Whether an op was cut off (or preflight aborted): timing-dependent oracles are waived."""
    return run.timeouts > 0 or run.cancelled or run.aborted


def _twin_counts(document: Document, run: ScenarioRun) -> bool:
    """Whether the invariance twin could fail here: not when ``run`` cut an op off or the
    plan's firings depend on arrival order (either waives invariance), so it is not run."""
    return not _cut_off(run) and not _arrival_dependent(document)


def _judged(
    document: Document,
    runner: str | None,
    loop: str,
    source: str,
    scenario: Scenario | None = None,
) -> tuple[list[Failure], ScenarioRun]:
    if scenario is None:
        scenario = document_scenario(document, source)
    run = run_scenario(scenario, loop, runner=runner)
    expect = document.get("expect", {})
    twin = (
        run_scenario(scenario, _other(loop), runner=runner)
        if expect.get("identical_across_loops") and _twin_counts(document, run)
        else None
    )
    reference = (
        _fault_free(_fault_free_key(document, loop, source))
        if expect.get("matches_reference")
        else None
    )
    timed_out = _cut_off(run) or (twin is not None and twin.timeouts > 0)
    arrival = _arrival_dependent(document)
    found = []
    for outcome in evaluate(run, twin, reference):
        if outcome.status != "failed" or (outcome.key in _TIMING_WAIVED and timed_out):
            continue
        if outcome.key == IDENTICAL and arrival:
            continue
        found.append(Failure(outcome.key, outcome.observed))
    return found, run


def _agreement(document: Document, run: ScenarioRun, loop: str, source: str) -> list[Failure]:
    """Verdicts that differ from the reference runner's on the same faults."""
    if not run.fault_log or run.timeouts or run.cancelled:
        return []
    reference = _faulted_reference(document, loop, source)
    if reference is None:
        return []
    check = {**document, "expect": {"verdicts": _verdict_table(reference)}}
    mine = replace(run, scenario=document_scenario(check, source))
    return [
        Failure(o.key, o.observed)
        for o in evaluate(mine)
        if o.status == "failed" and o.key.startswith(f"{VERDICTS}.")
    ]


def first_failure(outcomes: list[Failure]) -> Failure | None:
    """The property to report: the first broken, in the order the harness checks them."""
    return outcomes[0] if outcomes else None


def _reference_breaks(document: Document, key: str, loop: str, source: str) -> str | None:
    """Why the reference runner breaks ``key`` (or an invariant) on this scenario, if it does."""
    wanted = expectation(document, key, loop, source)
    if wanted is None:
        return "no file can state it for this scenario"
    broken = failures({**document, "expect": wanted}, None, loop, source=source)
    return None if not broken else f"the reference runner breaks it too: {broken[0]}"


def run_trial(config: ExploreConfig, seed: int) -> TrialOutcome:
    """Trial ``seed``: its generated scenario run against ``config.runner`` and judged.

    A pure function of ``(config, seed)``: the same outcome in any process.
    """
    wall = time.perf_counter()
    index, document = trial_document(config, seed)
    twin = config.invariance_every > 0 and seed % config.invariance_every == 0
    base, loop = config.scenarios[index], config.loop
    expect = expect_for(None) | ({"identical_across_loops": True} if twin else {})
    expect |= policy_expectations(document, loop, base.source)
    if parallel_expected(document, loop, base.source):
        expect["peak_live_views"] = {"at_least": 2}
    document["expect"] = expect
    scenario = document_scenario(document, base.source)
    found, run = _judged(document, config.runner, loop, base.source, scenario)
    if not found:
        found = _agreement(document, run, loop, base.source)
    failure = first_failure(found)
    discarded = None
    if failure is not None:
        discarded = _reference_breaks(document, failure.key, loop, base.source)
    rules = len(document.get("backend", {}).get("faults", {}).get("rules", ()))
    return TrialOutcome(
        seed=seed,
        scenario=base.source,
        loop=config.loop,
        failure=failure,
        discarded=discarded,
        rules=rules,
        probes=len(scenario.probe_names),
        twin=twin and _twin_counts(document, run),
        wall_seconds=time.perf_counter() - wall,
    )
