"""Shrinking a failing trial to a minimal scenario that still fails the same way.

Greedy, like Hypothesis's shrinker over a structured input: from the failing
document, try simpler candidates in a fixed order (fewer fault rules, fewer
probes, fewer prompts, no latency plan, no jitter, lower concurrency, smaller
seeds, narrower rule targets, fewer trigger keys) and keep the first that still
fails **the same way**: the runner under test breaks the same property (the
same oracle key) while the reference runner keeps every property the written
file checks. Then start again from it; stop at a fixpoint (no candidate is kept)
or when :attr:`~swaysim._explore.config.ExploreConfig.max_shrink_runs` candidate
runs are spent. A candidate is kept only when it is strictly smaller by
:func:`size`, so shrinking always ends. Candidates the schema refuses (a probe
whose null calibration was removed, say) are skipped without running.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import tomli_w

from swaysim._explore.bounds import VIEW_KIND_CHOICES, applicable_ops
from swaysim._explore.config import facts
from swaysim._explore.trial import expect_for, expectation, failures, scenario_of
from swaysim.errors import ScenarioError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from swaysim._explore.config import ExploreConfig
    from swaysim._explore.generate import Document
    from swaysim._explore.trial import Failure

__all__ = ["Shrunk", "shrink", "size"]

_LIST_FIELDS: Final = ("prompts", "texts", "triples", "seeds", "lams")
_TRIGGER_KEYS: Final = ("probability", "max_fires", "every", "after", "nth")
_ALL_OPS: Final = 5
_MAX_PROMPT_CANDIDATES: Final = 3
_MODES: Final = ("base", "ft")
_CANNED: Final = ("token_dists", "rolling", "generations", "logprobs")


@dataclass(frozen=True, slots=True)
class Shrunk:
    """The minimal failing document, how it fails, and what shrinking cost."""

    document: Document
    failure: Failure
    steps: int
    """Candidates kept (each a strictly smaller failing scenario)."""
    runs: int
    """Candidates run."""
    fixpoint: bool
    """False when the run budget stopped shrinking before a fixpoint."""
    source: str = "<shrunk>"
    """The base scenario's file (its folder holds the function probes' modules)."""

    @property
    def rules(self) -> int:
        """Fault rules left."""
        return len(_rules(self.document))

    @property
    def probes(self) -> int:
        """Probes left (after ``repeat`` expansion)."""
        return len(scenario_of(self.document, self.source).probe_names)

    def __repr__(self) -> str:
        where = "fixpoint" if self.fixpoint else "budget spent"
        return (
            f"<Shrunk {self.failure.key}: {self.rules} fault rule(s), {self.probes} probe(s) "
            f"after {self.steps} step(s), {self.runs} run(s), {where}>"
        )


def _rules(document: Document) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = document.get("backend", {}).get("faults", {}).get("rules", [])
    return rules


def _breadth(rule: dict[str, Any]) -> int:
    views = len(rule.get("views", ())) or len(VIEW_KIND_CHOICES)
    ops = len(rule.get("ops", ())) or _ALL_OPS
    prompt = rule.get("prompt")
    return views + ops + (2 if prompt is None else 1 if "*" in prompt else 0)


def size(document: Document) -> tuple[float, ...]:
    """How big a document is, most important first: what shrinking makes smaller."""
    probes = document.get("probes", [])
    items = sum(len(p.get(name, ())) for p in probes for name in _LIST_FIELDS)
    repeats = sum(int(p.get("repeat", 1)) for p in probes)
    backend = document.get("backend", {})
    runner = document.get("runner", {})
    rules = _rules(document)
    return (
        len(rules),
        len(probes),
        repeats,
        items,
        _canned(document),
        int("exclusivity" in backend),
        int("latency" in backend),
        int("schedule_jitter" in backend),
        int(runner.get("concurrency", 1)),
        sum(_breadth(rule) for rule in rules),
        sum(len(rule) for rule in rules),
        int(document.get("seed", 0)),
        int(backend.get("schedule_jitter", 0)),
        float(runner.get("cancel_after", 0.0)),
    )


def _edited(document: Document, edit: Callable[..., object], *args: object) -> Document:
    candidate = copy.deepcopy(document)
    edit(candidate, *args)
    return candidate


def _fewer_parts(document: Document) -> Iterator[Document]:
    """Without one fault rule; without one probe; one probe with one prompt fewer."""
    for index in range(len(_rules(document))):
        yield _edited(document, lambda d, i: _rules(d).pop(i), index)
    probes = document.get("probes", [])
    for index in range(len(probes)) if len(probes) > 1 else ():
        yield _edited(document, lambda d, i: d["probes"].pop(i), index)
        yield _edited(document, lambda d, i: _without_probe(d, d["probes"][i]["name"]), index)
    for index, probe in enumerate(probes):
        if int(probe.get("repeat", 1)) > 1:
            yield _edited(document, lambda d, i: d["probes"][i].pop("repeat"), index)
        for name in _LIST_FIELDS:
            for item in range(len(probe.get(name, ())) if len(probe.get(name, ())) > 1 else 0):
                yield _edited(
                    document, lambda d, i, n, k: d["probes"][i][n].pop(k), index, name, item
                )


def _pop_item(document: Document, probe: int, name: str, item: int) -> None:
    document["probes"][probe][name].pop(item)


def _without_probe(document: Document, name: str) -> None:
    """Remove probe ``name`` and the probes that name it (its null calibration, its target)."""
    gone = {name}
    probes = document["probes"]
    gone |= {p["name"] for p in probes if p.get("null") == name or p.get("target") == name}
    document["probes"] = [p for p in probes if p["name"] not in gone]
    for probe in document["probes"]:
        if probe.get("null") in gone:
            del probe["null"]


def _canned(document: Document) -> int:
    backend = document.get("backend", {})
    return sum(len(backend.get(mode, {}).get(table, ())) for mode in _MODES for table in _CANNED)


def _without_unused_answers(document: Document) -> None:
    """Drop canned answers for prompts no probe asks any more."""
    used = set(facts_of(document).prompts)
    for mode in _MODES:
        answers = document.get("backend", {}).get(mode)
        if not answers:
            continue
        for table in ("token_dists", "rolling", "generations"):
            if table in answers:
                answers[table] = {k: v for k, v in answers[table].items() if k in used}
        if "logprobs" in answers:
            answers["logprobs"] = [e for e in answers["logprobs"] if e.get("prompt") in used]
        for table in [t for t, v in answers.items() if not v]:
            del answers[table]
        if not answers:
            del document["backend"][mode]


def _calmer(document: Document) -> Iterator[Document]:
    """No unused canned answers, no latency plan, no jitter, concurrency 1, smaller seeds."""
    yield _edited(document, _without_unused_answers)
    backend = document.get("backend", {})
    for key in ("exclusivity", "latency", "schedule_jitter"):
        if key in backend:
            yield _edited(document, lambda d, k: d["backend"].pop(k), key)
    cancel_after = document.get("runner", {}).get("cancel_after")
    if cancel_after is not None and round(cancel_after / 2, 4) > 0:
        yield _edited(document, _halve_cancel_after)
    if int(document.get("runner", {}).get("concurrency", 1)) > 1:
        yield _edited(document, lambda d: d["runner"].pop("concurrency"))
    seeds = (
        ("seed", int(document.get("seed", 0))),
        ("jitter", int(backend.get("schedule_jitter", 0))),
    )
    for target, value in seeds:
        for smaller in dict.fromkeys((0, value // 2, value - 1)) if value > 0 else ():
            yield _edited(document, lambda d, t, v: _set_seed(d, t, v), target, smaller)


def _halve_cancel_after(document: Document) -> None:
    """An earlier cancellation: with fewer probes, the suite still runs when it comes."""
    document["runner"]["cancel_after"] = round(document["runner"]["cancel_after"] / 2, 4)


def _set_seed(document: Document, target: str, value: int) -> None:
    if target == "seed":
        document["seed"] = value
    else:
        document["backend"]["schedule_jitter"] = value


def _narrower(document: Document) -> Iterator[Document]:
    """Each rule aimed at one view, one op, one exact prompt; with fewer trigger keys."""
    found = facts_of(document)
    for index, rule in enumerate(_rules(document)):
        views = rule.get("views") or list(found.views)
        for view in views if len(views) > 1 or "views" not in rule else ():
            yield _edited(document, lambda d, i, v: _rules(d)[i].update(views=[v]), index, view)
        ops = rule.get("ops") or list(applicable_ops(rule["kind"], found.ops))
        for op in ops if len(ops) > 1 or ("views" in rule and "ops" not in rule and ops) else ():
            yield _edited(document, lambda d, i, o: _rules(d)[i].update(ops=[o]), index, op)
        prompt = rule.get("prompt")
        if prompt is None or "*" in prompt:
            matching = [p for p in found.prompts if prompt is None or p.startswith(prompt[:-1])]
            for exact in matching[:_MAX_PROMPT_CANDIDATES]:
                yield _edited(document, lambda d, i, p: _rules(d)[i].update(prompt=p), index, exact)
        for key in _TRIGGER_KEYS:
            if key in rule:
                yield _edited(document, lambda d, i, k: _rules(d)[i].pop(k), index, key)


def facts_of(document: Document) -> Any:
    """The prompts, views and ops of the document's probes (see :func:`config.facts`)."""
    probe_only = {"probes": document.get("probes", []), "expect": expect_for(None)}
    return facts(tomli_w.dumps(probe_only))


def candidates(document: Document) -> Iterator[Document]:
    """Every simpler variant of ``document``, biggest reductions first."""
    yield from _fewer_parts(document)
    yield from _calmer(document)
    yield from _narrower(document)


@dataclass(slots=True)
class _Judge:
    config: ExploreConfig
    key: str
    source: str
    runs: int = 0

    def same_failure(self, document: Document) -> Failure | None:
        """The failure with :attr:`key` the runner shows and the reference does not, if any."""
        try:
            scenario_of({**document, "expect": expect_for(None)}, self.source)
        except ScenarioError:
            return None
        self.runs += 1
        wanted = expectation(document, self.key, self.config.loop, self.source)
        if wanted is None:
            return None
        replay = {**document, "expect": wanted}
        loop, source = self.config.loop, self.source
        mine = [
            f
            for f in failures(replay, self.config.runner, loop, source=source)
            if f.key == self.key
        ]
        if not mine or failures(replay, None, loop, source=source):
            return None
        return mine[0]


def shrink(
    config: ExploreConfig,
    document: Document,
    failure: Failure,
    *,
    source: str,
    on_step: Callable[[int, int], None] | None = None,
) -> Shrunk:
    """``document`` shrunk to a fixpoint where it still fails with ``failure.key``."""
    judge = _Judge(config, failure.key, source)
    current = {key: value for key, value in document.items() if key != "expect"}
    steps = 0
    while True:
        kept = None
        for candidate in candidates(current):
            if size(candidate) >= size(current):
                continue
            if judge.runs >= config.max_shrink_runs:
                break
            found = judge.same_failure(candidate)
            if found is not None:
                kept, failure = candidate, found
                break
        if kept is None:
            fixpoint = judge.runs < config.max_shrink_runs
            wanted = expectation(current, failure.key, config.loop, source)
            final = {**current, "expect": wanted or expect_for(failure.key)}
            return Shrunk(final, failure, steps, judge.runs, fixpoint, source)
        current, steps = kept, steps + 1
        if on_step is not None:
            on_step(steps, judge.runs)
