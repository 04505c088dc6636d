"""What one exploration searches: the runner, the base scenarios, the narrowing options.

:class:`ExploreConfig` is frozen and holds only strings, numbers and tuples, so it
pickles to another process or a Dask worker unchanged: a trial there is
``run_trial(config, seed)`` exactly as here. :func:`make_config` validates what
a user gave (exit 2 on the command line) before any trial runs.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import tomli_w

from swaysim._explore.bounds import FAULT_KIND_CHOICES, VIEW_KIND_CHOICES
from swaysim._scenario.load import load_scenario, parse_scenario
from swaysim._scenario.under_test import resolve_runner
from swaysim._time.clock import LOOPS
from swaysim._vocab import (
    LOGPROB_OF_OP,
    NEXT_TOKEN_DIST_BATCH_OP,
    NEXT_TOKEN_DIST_OP,
    ROLLING_LOGPROB_OP,
)
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from swaysim._scenario.load import Scenario

__all__ = ["BaseScenario", "ExploreConfig", "ScenarioFacts", "facts", "make_config"]

_OPS_OF_KIND: Final[dict[str, tuple[str, ...]]] = {
    "delta_kl": (NEXT_TOKEN_DIST_OP, NEXT_TOKEN_DIST_BATCH_OP),
    "adapter_ablation": (NEXT_TOKEN_DIST_OP, NEXT_TOKEN_DIST_BATCH_OP),
    "null_adapter": (NEXT_TOKEN_DIST_OP, NEXT_TOKEN_DIST_BATCH_OP, LOGPROB_OF_OP),
    "preference_flip": (LOGPROB_OF_OP,),
    "perplexity_shift": (ROLLING_LOGPROB_OP,),
}
_VIEWS_OF_KIND: Final[dict[str, tuple[str, ...]]] = {
    "adapter_ablation": ("base", "ft", "scaled"),
    "null_adapter": ("base", "ft", "null"),
}


@dataclass(frozen=True, slots=True)
class BaseScenario:
    """A scenario file exploration starts from: how messages name it, and its text."""

    source: str
    text: str

    def __repr__(self) -> str:
        return f"<BaseScenario {self.source!r}: {len(self.text)} characters>"


@dataclass(frozen=True, slots=True)
class ExploreConfig:
    """Everything a trial depends on besides its seed (picklable: strings and tuples)."""

    runner: str
    """The runner under test as an import spec (``pkg.mod:func``, ``path.py:func``)."""
    scenarios: tuple[BaseScenario, ...]
    loop: str = "asyncio"
    faults: tuple[str, ...] = FAULT_KIND_CHOICES
    """Fault kinds a plan may use (``--faults``)."""
    views: tuple[str, ...] = VIEW_KIND_CHOICES
    """View kinds a rule may target (``--views``)."""
    invariance_every: int = 4
    """Every n-th trial seed also runs on the other loop (the invariance twin)."""
    max_shrink_runs: int = 400
    """Candidate runs shrinking may spend before it stops where it is."""

    def __repr__(self) -> str:
        names = ", ".join(s.source for s in self.scenarios)
        return (
            f"<ExploreConfig runner {self.runner!r} on {self.loop} over [{names}]: "
            f"faults {','.join(self.faults)}; views {','.join(self.views)}>"
        )


@dataclass(frozen=True, slots=True)
class ScenarioFacts:
    """What a base scenario offers a fault plan to aim at."""

    prompts: tuple[str, ...]
    views: tuple[str, ...]
    ops: tuple[str, ...]
    timeouts: bool
    """Whether it sets ``op_timeout`` or ``probe_timeout`` (hangs are generated only then)."""


def _prompts(kind: str, kwargs: dict[str, Any]) -> list[str]:
    if kind == "preference_flip":
        return [str(triple[0]) for triple in kwargs.get("triples", ())]
    if kind == "perplexity_shift":
        return [str(text) for text in kwargs.get("texts", ())]
    return [str(prompt) for prompt in kwargs.get("prompts", ())]


@functools.lru_cache(maxsize=64)
def facts(text: str) -> ScenarioFacts:
    """The prompts, view kinds and ops a scenario's probes use, and whether it has timeouts.

    Function probes are left out: their calls are their own code's, so no prompt of theirs
    is known, and their modules need not be found to read the rest.
    """
    document = tomllib.loads(text)
    runner = document.get("runner", {})
    timed = runner.get("op_timeout") is not None or runner.get("probe_timeout") is not None
    declarative = [p for p in document.get("probes", ()) if p.get("kind") != "function"]
    if not declarative:
        return ScenarioFacts((), ("base", "ft"), (), timed)
    checked = {**document, "probes": declarative, "expect": {"no_false_pass": True}}
    scenario = parse_scenario(tomli_w.dumps(checked))
    prompts: dict[str, None] = {}
    views: dict[str, None] = {"base": None, "ft": None}
    ops: dict[str, None] = {}
    for item in scenario.probe_plan:
        prompts.update(dict.fromkeys(_prompts(item.kind, item.kwargs)))
        views.update(dict.fromkeys(_VIEWS_OF_KIND.get(item.kind, ())))
        ops.update(dict.fromkeys(_OPS_OF_KIND.get(item.kind, ())))
    return ScenarioFacts(tuple(prompts), tuple(views), tuple(ops), timed)


def _narrowed(field: str, given: Iterable[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if given is None:
        return allowed
    chosen = tuple(dict.fromkeys(part.strip() for part in given if part.strip()))
    unknown = [part for part in chosen if part not in allowed]
    if unknown or not chosen:
        raise InvalidArgumentError(
            f"{field}={','.join(chosen) or '(empty)'}: "
            f"{'unknown ' + ', '.join(unknown) if unknown else 'nothing chosen'}; "
            f"choose from {', '.join(allowed)}",
            field=field,
            value=",".join(chosen),
        )
    return chosen


def _checked_scenario(scenario: Scenario) -> BaseScenario:
    """The base scenario's text, refused when the runner under test would not run it."""
    runner = scenario.spec.runner
    why = None
    if runner.runner is not None:
        why = "it names its own [runner] runner, which would run instead of the runner under test"
    elif runner.reference_only is not None:
        why = f"it is reference_only ({runner.reference_only})"
    elif runner.mode != "pooled":
        why = f"it sets [runner] mode = {runner.mode!r}, which only the reference runner has"
    if why is not None:
        raise InvalidArgumentError(
            f"scenario {scenario.source!r} cannot be explored: {why}; explore a scenario "
            "that runs the runner under test",
            field="scenarios",
            value=scenario.source,
        )
    path = scenario.path
    text = path.read_text("utf-8") if path is not None else ""
    return BaseScenario(scenario.source, text)


def make_config(
    runner: str,
    scenarios: Sequence[str | Path],
    *,
    loop: str = "asyncio",
    faults: Iterable[str] | None = None,
    views: Iterable[str] | None = None,
) -> ExploreConfig:
    """A validated :class:`ExploreConfig`; :class:`InvalidArgumentError` names what is wrong.

    ``runner`` is imported once here, so a bad spec fails before any trial.
    """
    if not isinstance(runner, str):
        raise InvalidArgumentError(
            f"runner={runner!r}: exploration needs the runner as an import spec "
            "('package.module:function' or 'path/to/file.py:function'), so that every "
            "worker process can import it",
            field="runner",
            value=runner,
        )
    resolve_runner(runner)
    if loop not in LOOPS:
        raise InvalidArgumentError(
            f"loop={loop!r}: choose one of {', '.join(LOOPS)}", field="loop", value=loop
        )
    if not scenarios:
        raise InvalidArgumentError(
            "no scenario given: explore starts from at least one scenario file",
            field="scenarios",
            value=(),
        )
    bases = tuple(_checked_scenario(load_scenario(path)) for path in scenarios)
    return ExploreConfig(
        runner=runner,
        scenarios=bases,
        loop=loop,
        faults=_narrowed("faults", faults, FAULT_KIND_CHOICES),
        views=_narrowed("views", views, VIEW_KIND_CHOICES),
    )
