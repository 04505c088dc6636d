"""A scenario document validated whole, and, when that fails, table by table.

Pydantic reports every schema error of a document at once, but the checks
after it (probe names, expectations naming probes and fault rules, the
runner import, the Python API's own refusals) need validated tables. So
that one run of ``swaysim validate`` lists every mistake in a file, a
document that fails the schema is validated again one table at a time
(``[backend]``, ``[runner]``, ``[expect]``, each ``[[probes]]`` entry): the
later checks then run on whatever is valid, and skip only what depends on a
broken table.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from swaysim._scenario.limits import first_errors
from swaysim._scenario.messages import validation_problems
from swaysim._scenario.schema import (
    MAX_SEED,
    BackendSpec,
    ExpectSpec,
    ProbeSpec,
    ProbeSpecBase,
    RunnerSpec,
    ScenarioSpec,
)

if TYPE_CHECKING:
    from swaysim._scenario.messages import Problem

__all__ = ["Sections", "validate_sections"]

_PROBE: Final[TypeAdapter[ProbeSpecBase]] = TypeAdapter(ProbeSpec)
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Sections:
    """What validated of a document: the whole spec, or the tables that are valid alone."""

    spec: ScenarioSpec | None
    """The whole document, when it is valid."""
    problems: tuple[Problem, ...]
    """The schema's problems (empty when ``spec`` is set)."""
    seed: int
    backend: BackendSpec | None
    runner: RunnerSpec | None
    expect: ExpectSpec | None
    probes: tuple[tuple[int, ProbeSpecBase], ...]
    """Each valid ``[[probes]]`` entry with its index in the file."""
    every_probe_valid: bool
    broken_probe_names: tuple[str, ...] = ()
    """The ``name`` of each invalid ``[[probes]]`` entry that has a string one."""
    unnamed_broken_probes: bool = False
    """Whether an invalid ``[[probes]]`` entry has no string ``name``."""
    probe_array: bool = True
    """Whether ``probes`` is an array (of tables, valid or not)."""

    def may_name_a_broken_probe(self, pattern: str) -> bool:
        """Whether ``pattern`` may mean a probe whose entry is invalid (or its repeats).

        Always, when ``probes`` is not an array at all (``[probes]`` for ``[[probes]]``)
        or an invalid entry has no string ``name`` (it may be any name).
        """
        if not self.probe_array or self.unnamed_broken_probes:
            return True
        return any(
            fnmatch.fnmatchcase(name, pattern) or pattern.startswith(f"{name}-")
            for name in self.broken_probe_names
        )

    @classmethod
    def of_spec(cls, spec: ScenarioSpec) -> Sections:
        return cls(
            spec=spec,
            problems=(),
            seed=spec.seed,
            backend=spec.backend,
            runner=spec.runner,
            expect=spec.expect,
            probes=tuple(enumerate(spec.probes)),
            every_probe_valid=True,
        )


def _table(model: type[_M], value: object, *, default: bool) -> _M | None:
    """``value`` as ``model``, else its valid remainder; an absent table is the default.

    The remainder drops the optional keys the errors are under (a broken
    ``[backend.faults]`` leaves the rest of ``[backend]`` to check); None when
    that is not enough, or when a required table is absent.
    """
    if value is None:
        return model() if default else None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        if not isinstance(value, dict):
            return None
        broken = {error["loc"][0] for error in exc.errors() if error["loc"]}
    optional = {name for name, field in model.model_fields.items() if not field.is_required()}
    if not broken <= optional:
        return None
    try:
        return model.model_validate({k: v for k, v in value.items() if k not in broken})
    except ValidationError:
        return None


def _probes(value: object) -> tuple[list[tuple[int, ProbeSpecBase]], list[str | None]]:
    """The valid ``[[probes]]`` entries (with their index) and the names of the broken ones
    (None for one without a string name)."""
    valid: list[tuple[int, ProbeSpecBase]] = []
    broken: list[str | None] = []
    for index, item in enumerate(value if isinstance(value, list) else ()):
        try:
            valid.append((index, _PROBE.validate_python(item)))
        except ValidationError:
            name = item.get("name") if isinstance(item, dict) else None
            broken.append(name if isinstance(name, str) else None)
    return valid, broken


def validate_sections(document: dict[str, object]) -> Sections:
    """Validate ``document``; when it fails, keep every table that is valid on its own."""
    try:
        return Sections.of_spec(ScenarioSpec.model_validate(document))
    except ValidationError as exc:
        errors, rest = first_errors(exc.errors(include_url=False))
        problems = (*validation_problems(errors), *([rest] if rest else []))
    seed = document.get("seed", 0)
    valid_seed = type(seed) is int and 0 <= seed <= MAX_SEED
    raw_probes = document.get("probes")
    probes, broken = _probes(raw_probes)
    return Sections(
        spec=None,
        problems=problems,
        seed=seed if valid_seed and isinstance(seed, int) else 0,
        backend=_table(BackendSpec, document.get("backend"), default=True),
        runner=_table(RunnerSpec, document.get("runner"), default=True),
        expect=_table(ExpectSpec, document.get("expect"), default=False),
        probes=tuple(probes),
        every_probe_valid=isinstance(raw_probes, list) and len(probes) == len(raw_probes),
        broken_probe_names=tuple(name for name in broken if name is not None),
        unnamed_broken_probes=None in broken,
        probe_array=isinstance(raw_probes, list),
    )
