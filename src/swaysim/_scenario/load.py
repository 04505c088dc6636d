"""Reading a scenario: bytes to TOML to a validated, cross-checked :class:`Scenario`.

Loading goes in stages, each reporting :class:`~swaysim._scenario.messages.Problem`
objects (key path, line when known, message) gathered into one
:class:`~swaysim.errors.ScenarioError`: decoding (size, UTF-8, TOML, nesting),
the schema (:mod:`~swaysim._scenario.schema`), cross-references (probe names,
``null``/``target``, expectations naming probes and fault rules), the custom
runner import, and a first build of every object, so that what the Python API
refuses surfaces at load time too. Nothing in a scenario is evaluated as code
except the explicit ``runner = "module:function"`` import.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from swaysim._scenario.build import ExpandedProbe, build_backend, build_probe, expand_probes
from swaysim._scenario.messages import (
    Problem,
    did_you_mean,
    join_key,
    scenario_error,
    show_value,
    validation_problems,
)
from swaysim._scenario.schema import (
    EXPECTATION_KEYS,
    NUMERIC_KINDS,
    ExpectKeys,
    RunnerSpec,
    ScenarioSpec,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._runner.probes import Probe
    from swaysim._trace.events import TraceSink

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_NESTING",
    "Scenario",
    "discover_scenarios",
    "load_scenario",
    "parse_scenario",
]

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_NESTING: Final = 32
_NEEDS: Final = "a scenario needs at least a description, [[probes]] and [expect]"
_TOML_POSITION: Final = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$", re.DOTALL)
"""tomllib states the position only in its message (attributes arrive in Python 3.14)."""

# -- decoding ---------------------------------------------------------------------------


def _text(data: bytes) -> str | Problem:
    if len(data) > MAX_FILE_BYTES:
        return Problem(
            None, f"file is {len(data):,} bytes; a scenario may be at most {MAX_FILE_BYTES:,} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        return Problem(None, f"{message} cannot be decoded")
    text = text.removeprefix("\ufeff")
    return text if text.strip() else Problem(None, f"empty file: {_NEEDS}")


def _toml(text: str) -> dict[str, object] | Problem:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match is None:
            return Problem(None, f"invalid TOML: {exc}")
        what, line, column = match.groups()
        return Problem(None, f"invalid TOML: {what}", line=int(line), column=int(column))
    except RecursionError:
        message = f"nested too deeply to parse (a scenario allows {MAX_NESTING} levels)"
        return Problem(None, f"invalid TOML: {message}")


def _too_deep(value: object, path: str = "", depth: int = 0) -> str | None:
    """The key path of the first value nested deeper than MAX_NESTING, if any."""
    if depth > MAX_NESTING:
        return path
    items: Iterable[tuple[str | int, object]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _too_deep(item, join_key(path, key), depth + 1)
        if found is not None:
            return found
    return None


def _decode(data: bytes) -> dict[str, object] | Problem:
    """The TOML document in ``data``, or the problem that stops it being one."""
    text = _text(data)
    if isinstance(text, Problem):
        return text
    document = _toml(text)
    if isinstance(document, Problem):
        return document
    if not document:
        return Problem(None, f"no keys: {_NEEDS}")
    deep = _too_deep(document)
    if deep is not None:
        return Problem(deep, f"nested more than {MAX_NESTING} levels deep")
    return document


# -- cross-references -------------------------------------------------------------------


def _probe_problems(probes: Sequence[ExpandedProbe]) -> list[Problem]:
    """Probe names are unique; ``null`` names a null adapter, ``target`` a numeric probe."""
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
    nulls = [name for name, kind in kinds.items() if kind == "null_adapter"]
    numeric = [name for name, kind in kinds.items() if kind in NUMERIC_KINDS]
    for probe in probes:
        null = probe.kwargs.get("null")
        if null is not None and kinds.get(null) != "null_adapter":
            problems.append(
                Problem(
                    f"{probe.path}.null",
                    f"{show_value(null)} is not allowed: must name a null_adapter probe "
                    f"in the suite{did_you_mean(null, nulls)}",
                )
            )
        target = probe.kwargs.get("target")
        if probe.kind == "null_adapter" and kinds.get(target or "") not in NUMERIC_KINDS:
            problems.append(
                Problem(
                    f"{probe.path}.target",
                    f"{show_value(target)} is not allowed: must name a delta_kl, "
                    "preference_flip or perplexity_shift probe in the suite"
                    f"{did_you_mean(str(target), numeric)}",
                )
            )
    return problems


def _table_problems(
    expect: ExpectKeys, table: str, spec: ScenarioSpec, names: Sequence[str]
) -> list[Problem]:
    """One expectation table (``[expect]`` or ``[expect.reference]``) names real things."""
    problems: list[Problem] = []
    for pattern in expect.verdicts:
        # The preflight result is matched only by a pattern that asks for it ("__...").
        candidates = [*names, "__preflight__"] if pattern.startswith("__") else names
        if not any(fnmatch.fnmatchcase(name, pattern) for name in candidates):
            problems.append(
                Problem(
                    join_key(f"{table}.verdicts", pattern),
                    f"matches no probe in the suite{did_you_mean(pattern, names)}",
                )
            )
    faults = spec.backend.faults
    rules = (
        [rule.name or f"{rule.kind}#{i}" for i, rule in enumerate(faults.rules)] if faults else []
    )
    known = f" (rules: {', '.join(rules)})" if rules else " (the scenario has no fault rules)"
    for rule_name in expect.faults_fired:
        if rule_name not in rules:
            problems.append(
                Problem(
                    join_key(f"{table}.faults_fired", rule_name),
                    f"names no fault rule{did_you_mean(rule_name, rules) or known}",
                )
            )
    if expect.cancelled is not None and spec.runner.cancel_after is None:
        message = "needs runner.cancel_after (when to cancel the suite)"
        problems.append(Problem(f"{table}.cancelled", message))
    return problems


def _expectation_problems(spec: ScenarioSpec, names: Sequence[str]) -> list[Problem]:
    """``[expect]`` names probes, fault rules and expectation keys the scenario has."""
    expect = spec.expect
    problems = _table_problems(expect, "expect", spec, names)
    if expect.reference is not None:
        problems += _table_problems(expect.reference, "expect.reference", spec, names)
    stated = {key for key in expect.model_fields_set if key in EXPECTATION_KEYS}
    if expect.reference is not None:
        stated |= {key for key in expect.reference.model_fields_set if key in EXPECTATION_KEYS}
    for index, key in enumerate(expect.optional):
        if key not in EXPECTATION_KEYS:
            reason = f"is not an expectation key{did_you_mean(key, EXPECTATION_KEYS)}"
            problems.append(Problem(f"expect.optional[{index}]", f"{show_value(key)} {reason}"))
        elif key not in stated:
            reason = "is not stated in [expect] or [expect.reference]: nothing to make optional"
            problems.append(Problem(f"expect.optional[{index}]", f"{show_value(key)} {reason}"))
    return problems


def _runner_problems(spec: ScenarioSpec) -> list[Problem]:
    """Runner options need a custom runner."""
    problems = []
    if spec.runner.options and spec.runner.runner is None:
        message = 'only a custom runner (runner = "module:function") takes options'
        problems.append(Problem("runner.options", message))
    return problems


def _reference_problems(spec: ScenarioSpec, probes: Sequence[ExpandedProbe]) -> list[Problem]:
    names = list(dict.fromkeys(probe.name for probe in probes))
    return [
        *_probe_problems(probes),
        *_expectation_problems(spec, names),
        *_runner_problems(spec),
    ]


def _import_runner(target: str, folder: Path | None) -> Callable[..., object] | Problem:
    """Import ``module:function``; the scenario's folder is searched after sys.path."""
    module_name, _, attribute = target.partition(":")
    added = False
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if folder is None or exc.name != module_name.partition(".")[0]:
                raise
            sys.path.append(str(folder))
            added = True
            module = importlib.import_module(module_name)
    except Exception as exc:
        reason = f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        return Problem("runner.runner", reason)
    finally:
        if added:
            sys.path.remove(str(folder))
    function = getattr(module, attribute, None)
    if function is None:
        public = [name for name in dir(module) if not name.startswith("_")]
        reason = f"module {module_name!r} has no attribute {attribute!r}"
        return Problem("runner.runner", f"{reason}{did_you_mean(attribute, public)}")
    if not callable(function):
        return Problem("runner.runner", f"{target!r} is not callable")
    return function  # type: ignore[no-any-return]


# -- the scenario -----------------------------------------------------------------------

_RUN_SUITE_KEYS: Final = tuple(
    key
    for key in RunnerSpec.model_fields
    if key not in {"runner", "cancel_after", "options", "reference_only"}
)
"""The ``[runner]`` keys that are ``run_suite`` keyword arguments."""


def _accepts(function: Callable[..., object], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, ready to build fresh backends and probes for each run."""

    spec: ScenarioSpec
    source: str
    """How messages name the file (the path as given)."""
    path: Path | None
    probe_plan: tuple[ExpandedProbe, ...]
    runner_function: Callable[..., object] | None

    @property
    def name(self) -> str:
        """The scenario's name (its file name without ``.toml`` unless set)."""
        if self.spec.name is not None:
            return self.spec.name
        if self.path is not None:
            return self.path.stem
        return Path(self.source).stem if self.source.endswith(".toml") else "scenario"

    @property
    def description(self) -> str:
        """The question the scenario answers."""
        return self.spec.description.strip()

    @property
    def seed(self) -> int:
        """The scenario seed."""
        return self.spec.seed

    @property
    def probe_names(self) -> tuple[str, ...]:
        """Every probe name after ``repeat`` expansion, in declaration order."""
        return tuple(p.name for p in self.probe_plan)

    def build_backend(
        self,
        seed: int | None = None,
        *,
        trace: TraceSink | None = None,
        schedule_jitter: int | None = None,
    ) -> AsyncDummyDifferentialBackend:
        """A fresh backend; plan seeds default to ``seed`` (the scenario seed when None).

        ``schedule_jitter`` overrides ``[backend] schedule_jitter`` (None keeps the file's).
        """
        seed = self.seed if seed is None else seed
        return build_backend(
            self.spec.backend,
            seed,
            source=self.source,
            trace=trace,
            schedule_jitter=schedule_jitter,
        )

    def schedule_jitter(self, override: int | None = None) -> int | None:
        """The jitter seed a run uses: ``override``, else ``[backend] schedule_jitter``."""
        return self.spec.backend.schedule_jitter if override is None else override

    def build_probes(self) -> list[Probe]:
        """Fresh probe objects (a null adapter binds to its target, so never reuse them)."""
        return [build_probe(item, source=self.source) for item in self.probe_plan]

    def runner_options(self, seed: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``run_suite`` (or for the custom runner)."""
        seed = self.seed if seed is None else seed
        spec = self.spec.runner
        if self.runner_function is None:
            options = {key: getattr(spec, key) for key in _RUN_SUITE_KEYS}
            if spec.seed is None:
                options["seed"] = seed
            return options
        options = {
            key: getattr(spec, key) for key in _RUN_SUITE_KEYS if key in spec.model_fields_set
        }
        options.update(spec.options)
        if "seed" not in options and _accepts(self.runner_function, "seed"):
            options["seed"] = seed
        return options

    def replay_command(
        self, loop: str, seed: int | None = None, *, schedule_jitter: int | None = None
    ) -> str:
        """The exact command that replays this scenario on ``loop`` (with its jitter seed)."""
        seed = self.seed if seed is None else seed
        command = f"swaysim run {shlex.quote(self.source)} --backend {loop} --seed {seed}"
        jitter = self.schedule_jitter(schedule_jitter)
        return command if jitter is None else f"{command} --jitter {jitter}"

    def __repr__(self) -> str:
        return (
            f"<Scenario {self.name!r} from {self.source!r}: {len(self.probe_plan)} probes, "
            f"seed {self.seed}>"
        )


def parse_scenario(
    data: bytes | str, *, source: str = "<scenario>", path: Path | None = None
) -> Scenario:
    """Validate a scenario document and build it once (so API errors surface now).

    Raises :class:`~swaysim.errors.ScenarioError` listing what is wrong, each
    problem on one line naming ``source``, the key path, the value and what is
    allowed.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    document = _decode(raw)
    if isinstance(document, Problem):
        raise scenario_error(source, [document])
    try:
        spec = ScenarioSpec.model_validate(document)
    except ValidationError as exc:
        raise scenario_error(source, validation_problems(exc.errors(include_url=False))) from None
    plan = tuple(expand_probes(spec.probes))
    problems = _reference_problems(spec, plan)
    if problems:
        raise scenario_error(source, problems)
    function: Callable[..., object] | None = None
    if spec.runner.runner is not None:
        folder = path.resolve().parent if path is not None else None
        imported = _import_runner(spec.runner.runner, folder)
        if isinstance(imported, Problem):
            raise scenario_error(source, [imported])
        function = imported
    scenario = Scenario(spec, source, path, plan, function)
    scenario.build_backend()
    scenario.build_probes()
    return scenario


def load_scenario(path: str | Path, *, source: str | None = None) -> Scenario:
    """Read and validate one scenario file; raises :class:`ScenarioError` (never a traceback).

    ``source`` is how messages and replay commands name the file (default: ``path``).
    """
    file = Path(path)
    source = str(path) if source is None else source
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise scenario_error(
            source, [Problem(None, f"cannot read: {exc.strerror or exc}")]
        ) from None
    return parse_scenario(data, source=source, path=file)


def _is_scenario_file(path: Path) -> bool:
    return path.suffix == ".toml" and path.name != "pyproject.toml" and path.is_file()


def discover_scenarios(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Scenario files among ``paths``: files as given, folders searched for ``*.toml``."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        found = (
            sorted(p for p in path.rglob("*.toml") if _is_scenario_file(p))
            if path.is_dir()
            else [path]
        )
        for item in found:
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                yield item
