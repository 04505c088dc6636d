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
  had an op cut off by a timeout (timeouts depend on timing by nature). Jitter,
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import tomli_w

from swaysim._explore.generate import trial_document
from swaysim._scenario.expect import evaluate
from swaysim._scenario.harness import INVARIANTS
from swaysim._scenario.load import parse_scenario
from swaysim._scenario.run import run_reference, run_scenario

if TYPE_CHECKING:
    from swaysim._explore.config import ExploreConfig
    from swaysim._explore.generate import Document
    from swaysim._scenario.load import Scenario

__all__ = [
    "ORACLES",
    "Failure",
    "TrialOutcome",
    "expect_for",
    "failures",
    "run_trial",
    "scenario_of",
]

IDENTICAL: Final = "expect.identical_across_loops"
ORACLES: Final[dict[str, str]] = {
    **{f"invariant.{name}": what for name, what in INVARIANTS.items()},
    "runner": "the runner to complete",
    "results": "one result per probe",
    "expect.no_false_pass": "no PASS resting on a corrupted answer",
    "expect.matches_reference": "fault isolation: unfaulted probes match the fault-free run",
    IDENTICAL: "invariance: the same results on the other loop (timeouts aside)",
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
    """The ``[expect]`` table that checks ``key`` (None: every explore oracle)."""
    if key is None:
        return {"no_false_pass": True, "matches_reference": True}
    if key.startswith("expect."):
        return {key.removeprefix("expect."): True}
    return dict(_CARRIER)


def scenario_of(document: Document, source: str) -> Scenario:
    """The document as a validated scenario, through the file format (what a file holds)."""
    return parse_scenario(tomli_w.dumps(document), source=source)


def _fault_free_key(document: Document, loop: str) -> str:
    """What the reference runner's fault-free results depend on (timing only via timeouts)."""
    kept = {**document, "expect": _CARRIER}
    backend = dict(kept.get("backend", {}))
    backend.pop("faults", None)
    runner = dict(kept.get("runner", {}))
    runner.pop("cancel_after", None)
    if "op_timeout" not in runner and "probe_timeout" not in runner:
        backend.pop("latency", None)
        backend.pop("schedule_jitter", None)
        runner.pop("concurrency", None)
    kept["backend"], kept["runner"] = backend, runner
    return json.dumps([loop, kept], sort_keys=True, default=str)


@functools.lru_cache(maxsize=256)
def _fault_free(key: str) -> Any:
    loop, document = json.loads(key)
    return run_reference(scenario_of(document, "<fault-free>"), loop)


def _other(loop: str) -> str:
    return "trio" if loop == "asyncio" else "asyncio"


def failures(
    document: Document, runner: str | None, loop: str, *, source: str = "<explore>"
) -> list[Failure]:
    """Every property ``runner`` (None: the reference runner) breaks on ``document``.

    The document's ``[expect]`` says which of the expectation-based oracles apply;
    the invariants always do. Invariance is waived when either run cut an op off.
    """
    scenario = scenario_of(document, source)
    run = run_scenario(scenario, loop, runner=runner)
    expect = document.get("expect", {})
    twin = (
        run_scenario(scenario, _other(loop), runner=runner)
        if expect.get("identical_across_loops")
        else None
    )
    reference = (
        _fault_free(_fault_free_key(document, loop)) if expect.get("matches_reference") else None
    )
    timed_out = run.timeouts > 0 or (twin is not None and twin.timeouts > 0)
    found = []
    for outcome in evaluate(run, twin, reference):
        if outcome.status != "failed" or (outcome.key == IDENTICAL and timed_out):
            continue
        found.append(Failure(outcome.key, outcome.observed))
    return found


def first_failure(outcomes: list[Failure]) -> Failure | None:
    """The property to report: the first broken, in the order the harness checks them."""
    return outcomes[0] if outcomes else None


def _reference_breaks(document: Document, key: str, loop: str) -> str | None:
    """Why the reference runner breaks ``key`` (or an invariant) on this scenario, if it does."""
    replay = {**document, "expect": expect_for(key)}
    broken = failures(replay, None, loop)
    return None if not broken else f"the reference runner breaks it too: {broken[0]}"


def run_trial(config: ExploreConfig, seed: int) -> TrialOutcome:
    """Trial ``seed``: its generated scenario run against ``config.runner`` and judged.

    A pure function of ``(config, seed)``: the same outcome in any process.
    """
    wall = time.perf_counter()
    index, document = trial_document(config, seed)
    twin = config.invariance_every > 0 and seed % config.invariance_every == 0
    document["expect"] = expect_for(None) | ({"identical_across_loops": True} if twin else {})
    base = config.scenarios[index]
    failure = first_failure(failures(document, config.runner, config.loop, source=base.source))
    discarded = None
    if failure is not None:
        discarded = _reference_breaks(document, failure.key, config.loop)
    rules = len(document.get("backend", {}).get("faults", {}).get("rules", ()))
    return TrialOutcome(
        seed=seed,
        scenario=base.source,
        loop=config.loop,
        failure=failure,
        discarded=discarded,
        rules=rules,
        probes=len(scenario_of(document, base.source).probe_names),
        twin=twin,
        wall_seconds=time.perf_counter() - wall,
    )
