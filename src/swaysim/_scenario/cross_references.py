"""Cross-references a scenario's schema cannot check: each probe's names and references, and
every expectation naming a probe, a fault rule or a key.

Each returns :class:`~swaysim._scenario.messages.Problem` objects (key path, message), at
most :data:`~swaysim._scenario.limits.MAX_REPORTED_PROBLEMS` of a kind, which the loader
(:mod:`~swaysim._scenario.load`) locates by line and gathers with every other stage's.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Final

from swaysim._runner.suite import PREFLIGHT_NAME
from swaysim._scenario.limits import MAX_REPORTED_PROBLEMS, hint_choices
from swaysim._scenario.messages import Problem, did_you_mean, join_key, show_value
from swaysim._scenario.schema import EXPECTATION_KEYS, NUMERIC_KINDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swaysim._scenario.build import ExpandedProbe
    from swaysim._scenario.schema import ExpectKeys, ExpectSpec, RunnerSpec
    from swaysim._scenario.sections import Sections

__all__ = ["reference_problems"]

_GLOB: Final = re.compile(r"[*?\[]")


def _probe_problems(probes: Sequence[ExpandedProbe], *, complete: bool) -> list[Problem]:
    """Probe names are unique; ``null`` names a null adapter, ``target`` a numeric probe.

    References are checked only in a ``complete`` suite (a broken entry may be the
    probe a reference names).
    """
    problems: list[Problem] = []
    first: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for probe in probes:
        if probe.name in first:
            problems.append(
                Problem(
                    f"{probe.path}.name",
                    f"{show_value(probe.name)} is not allowed: probe names must be unique "
                    f"({first[probe.name]} already uses it)",
                )
            )
        first.setdefault(probe.name, probe.path)
        kinds[probe.name] = probe.kind
    if not complete:
        return problems
    nulls = [name for name, kind in kinds.items() if kind == "null_adapter"]
    numeric = [name for name, kind in kinds.items() if kind in NUMERIC_KINDS]
    for probe in probes:
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            break
        null = probe.kwargs.get("null")
        if null is not None and kinds.get(null) != "null_adapter":
            problems.append(
                Problem(
                    f"{probe.path}.null",
                    f"{show_value(null)} is not allowed: must name a null_adapter probe "
                    f"in the suite{did_you_mean(null, hint_choices(nulls))}",
                )
            )
        for position, required in enumerate(probe.kwargs.get("requires", ())):
            if required not in kinds or required == probe.name:
                problems.append(
                    Problem(
                        f"{probe.path}.requires[{position}]",
                        f"{show_value(required)} is not allowed: must name another probe in "
                        f"the suite{did_you_mean(required, hint_choices(list(kinds)))}",
                    )
                )
        target = probe.kwargs.get("target")
        if probe.kind == "null_adapter" and kinds.get(target or "") not in NUMERIC_KINDS:
            problems.append(
                Problem(
                    f"{probe.path}.target",
                    f"{show_value(target)} is not allowed: must name a delta_kl, "
                    "preference_flip or perplexity_shift probe in the suite"
                    f"{did_you_mean(str(target), hint_choices(numeric))}",
                )
            )
    return problems


def _matches_a_probe(pattern: str, names: Sequence[str], known: frozenset[str]) -> bool:
    # The preflight result is matched only by a pattern that asks for it ("__...").
    if pattern.startswith("__") and fnmatch.fnmatchcase(PREFLIGHT_NAME, pattern):
        return True
    if not _GLOB.search(pattern):
        return pattern in known
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


def _table_problems(
    expect: ExpectKeys, table: str, sections: Sections, names: Sequence[str]
) -> list[Problem]:
    """One expectation table (``[expect]`` or ``[expect.reference]``) names probes and fault
    rules the scenario has (of the tables that are valid)."""
    problems: list[Problem] = []
    known = frozenset(names)
    for pattern in expect.verdicts:
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            return problems
        if _matches_a_probe(pattern, names, known):
            continue
        if not sections.may_name_a_broken_probe(pattern):
            problems.append(
                Problem(
                    join_key(f"{table}.verdicts", pattern),
                    f"matches no probe in the suite{did_you_mean(pattern, hint_choices(names))}",
                )
            )
    runner = sections.runner
    if expect.cancelled is not None and runner is not None and runner.cancel_after is None:
        message = "needs runner.cancel_after (when to cancel the suite)"
        problems.append(Problem(f"{table}.cancelled", message))
    backend = sections.backend
    if backend is None:
        return problems
    faults = backend.faults
    rules = (
        [rule.name or f"{rule.kind}#{i}" for i, rule in enumerate(faults.rules)] if faults else []
    )
    rule_set = frozenset(rules)
    shown = ", ".join(rules[:20]) + (f", ... ({len(rules):,} rules)" if len(rules) > 20 else "")
    listed = f" (rules: {shown})" if rules else " (the scenario has no fault rules)"
    for rule_name in expect.faults_fired:
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            break
        if rule_name not in rule_set:
            problems.append(
                Problem(
                    join_key(f"{table}.faults_fired", rule_name),
                    f"names no fault rule{did_you_mean(rule_name, hint_choices(rules)) or listed}",
                )
            )
    return problems


def _expectation_problems(
    expect: ExpectSpec, sections: Sections, names: Sequence[str]
) -> list[Problem]:
    """``[expect]`` names probes, fault rules and expectation keys the scenario has."""
    problems = _table_problems(expect, "expect", sections, names)
    stated = {key for key in expect.model_fields_set if key in EXPECTATION_KEYS}
    if expect.reference is not None:
        problems += _table_problems(expect.reference, "expect.reference", sections, names)
        stated |= {key for key in expect.reference.model_fields_set if key in EXPECTATION_KEYS}
    for index, key in enumerate(expect.optional):
        if key not in EXPECTATION_KEYS:
            reason = f"is not an expectation key{did_you_mean(key, EXPECTATION_KEYS)}"
            problems.append(Problem(f"expect.optional[{index}]", f"{show_value(key)} {reason}"))
        elif key not in stated:
            reason = "is not stated in [expect] or [expect.reference]: nothing to make optional"
            problems.append(Problem(f"expect.optional[{index}]", f"{show_value(key)} {reason}"))
    return problems


def _runner_problems(runner: RunnerSpec) -> list[Problem]:
    """Runner options need a custom runner."""
    problems = []
    if runner.options and runner.runner is None:
        message = 'only a custom runner (runner = "module:function") takes options'
        problems.append(Problem("runner.options", message))
    return problems


def reference_problems(sections: Sections, probes: Sequence[ExpandedProbe]) -> list[Problem]:
    """Cross-references between the tables that are valid."""
    names = list(dict.fromkeys(probe.name for probe in probes))
    problems = _probe_problems(probes, complete=sections.every_probe_valid)
    if sections.expect is not None:
        problems += _expectation_problems(sections.expect, sections, names)
    if sections.runner is not None:
        problems += _runner_problems(sections.runner)
    return problems
