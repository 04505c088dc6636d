"""Reading a scenario: bytes to TOML to a validated, cross-checked :class:`Scenario`.

Loading goes in stages, each reporting :class:`~swaysim._scenario.messages.Problem`
objects (key path, line when known, message) gathered into one
:class:`~swaysim.errors.ScenarioError` that lists every problem of a file at
once, sorted by line: decoding (size, UTF-8, TOML, nesting), the schema
(:mod:`~swaysim._scenario.schema`, table by table when the whole fails:
:mod:`~swaysim._scenario.sections`), cross-references (probe names,
``null``/``target``, expectations naming probes and fault rules:
:mod:`~swaysim._scenario.cross_references`), the custom
runner's whereabouts and options (:mod:`~swaysim._scenario.runners`: read from
its source, never imported), and a first build of every object, so that what
the Python API refuses surfaces at load time too. Nothing in a scenario is
evaluated as code; ``runner = "module:function"`` is imported only to run
(:meth:`Scenario.load_runner`), from the scenario's own folder. The limits of
each stage are :mod:`~swaysim._scenario.limits`'.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from swaysim._limits import MAX_NESTING
from swaysim._scenario.build import (
    ExpandedProbe,
    backend_refusal,
    build_backend,
    build_probe,
    expand_probes,
    probe_refusal,
)
from swaysim._scenario.cross_references import reference_problems
from swaysim._scenario.functions import function_targets, import_functions
from swaysim._scenario.limits import (
    MAX_REPORTED_PROBLEMS,
    document_problems,
    expansion_problems,
    read_scenario,
    size_problem,
    untyped_problems,
    verdict_problems,
)
from swaysim._scenario.locate import key_lines, line_of
from swaysim._scenario.messages import (
    Problem,
    join_key,
    scenario_error,
)
from swaysim._scenario.runners import (
    RunnerTarget,
    import_runner,
    locate_runner,
    parameters_of,
    signature_problems,
    static_problems,
)
from swaysim._scenario.schema import RunnerSpec
from swaysim._scenario.sections import Sections, validate_sections

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._runner.probes import FunctionProbe, Probe
    from swaysim._scenario.schema import ScenarioSpec
    from swaysim._trace.events import TraceSink

__all__ = [
    "Scenario",
    "discover_scenarios",
    "load_scenario",
    "parse_document",
    "parse_scenario",
]

_NEEDS: Final = "a scenario needs at least [[probes]] and [expect]"
_TOML_POSITION: Final = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$", re.DOTALL)
"""tomllib states the position only in its message (attributes arrive in Python 3.14)."""

# -- decoding ---------------------------------------------------------------------------


def _text(data: bytes) -> str | Problem:
    too_big = size_problem(data)
    if too_big is not None:
        return too_big
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
        message = f"nested too deeply to parse (a scenario allows {MAX_NESTING.value()} levels)"
        return Problem(None, f"invalid TOML: {message}")
    except ValueError as exc:
        # An integer of thousands of digits: int() refuses it before TOML's own 64-bit rule.
        return Problem(None, f"invalid TOML: {str(exc).partition(';')[0]}")


def _decode(data: bytes) -> tuple[str, dict[str, object]] | list[Problem]:
    """The text and TOML document in ``data``, or the problems that stop it being a usable one."""
    text = _text(data)
    if isinstance(text, Problem):
        return [text]
    document = _toml(text)
    if isinstance(document, Problem):
        return [document]
    return _unusable(document) or (text, document)


def _unusable(document: dict[str, object]) -> list[Problem]:
    """An empty document, or one past the nesting or value limits."""
    return document_problems(document) if document else [Problem(None, f"no keys: {_NEEDS}")]


# -- cross-references -------------------------------------------------------------------


def _build_problems(sections: Sections, probes: Sequence[ExpandedProbe]) -> list[Problem]:
    """What the Python API refuses in the valid tables (each problem once, not per repeat)."""
    found = [probe_refusal(probe) for probe in probes]
    if sections.backend is not None:
        found.insert(0, backend_refusal(sections.backend, sections.seed))
    return list(dict.fromkeys(problem for problem in found if problem is not None))


def _plan(sections: Sections) -> tuple[ExpandedProbe, ...]:
    """The valid probes after ``repeat`` expansion, each keeping its index in the file."""
    if sections.spec is not None:
        return tuple(expand_probes(sections.spec.probes))
    return tuple(
        replace(item, path=f"probes[{index}]")
        for index, spec in sections.probes
        for item in expand_probes([spec])
    )


def _located(problems: Sequence[Problem], text: str) -> list[Problem]:
    """Each problem with the line its key is written on, when the scan finds it."""
    lines = key_lines(text)
    return [
        replace(p, line=line_of(p.key, lines)) if p.key and p.line is None else p for p in problems
    ]


_RUN_SUITE_KEYS: Final = tuple(
    key
    for key in RunnerSpec.model_fields
    if key not in {"runner", "cancel_after", "options", "reference_only"}
)
"""The ``[runner]`` keys that are ``run_suite`` keyword arguments."""


def _runner_keys(spec: ScenarioSpec) -> dict[str, str]:
    """The keywords a custom runner gets from the file, each mapped to the key that sets it."""
    keys = {key: f"runner.{key}" for key in _RUN_SUITE_KEYS if key in spec.runner.model_fields_set}
    keys.update({key: join_key("runner.options", key) for key in spec.runner.options})
    return keys


def _runner_target(
    spec: ScenarioSpec, path: Path | None, allow_sys_path: bool
) -> RunnerTarget | list[Problem] | None:
    """Locate the custom runner and check its options from its source; never executes it."""
    if spec.runner.runner is None:
        return None
    folder = path.resolve().parent if path is not None else None
    target = locate_runner(spec.runner.runner, folder, allow_sys_path=allow_sys_path)
    if isinstance(target, Problem):
        return [target]
    return static_problems(target, _runner_keys(spec)) or target


# -- the scenario -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, ready to build fresh backends and probes for each run."""

    spec: ScenarioSpec
    source: str
    """How messages name the file (the path as given)."""
    path: Path | None
    probe_plan: tuple[ExpandedProbe, ...]
    runner_target: RunnerTarget | None
    """Where the custom runner lives (found, not imported); None for ``run_suite``."""
    allow_sys_path_runners: bool = False
    """Whether the runner may come from ``sys.path`` (the user opted in), not only the folder."""
    function_targets: Mapping[str, RunnerTarget] = field(default_factory=dict)
    """Where each function probe's callable lives (found, not imported), by table path."""

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
        return (self.spec.description or "").strip()

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

    def build_probes(self) -> list[Probe | FunctionProbe]:
        """Fresh probe objects (a null adapter binds to its target, so never reuse them).

        Function probes' callables are imported here (this runs their modules'
        code), as :meth:`load_runner` imports the runner: only to run.
        """
        functions = self.load_functions() if self.function_targets else None
        return [
            build_probe(item, source=self.source, functions=functions) for item in self.probe_plan
        ]

    def runner_options(self, seed: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``run_suite`` (or for the custom runner)."""
        seed = self.seed if seed is None else seed
        spec = self.spec.runner
        if self.runner_target is None:
            options = {key: getattr(spec, key) for key in _RUN_SUITE_KEYS}
            if spec.seed is None:
                options["seed"] = seed
            return options
        options = {
            key: getattr(spec, key) for key in _RUN_SUITE_KEYS if key in spec.model_fields_set
        }
        options.update(spec.options)
        function = self.load_runner()
        if "seed" not in options and function is not None:
            parameters = parameters_of(function)
            if parameters is not None and (parameters.any_keyword or "seed" in parameters.keywords):
                options["seed"] = seed
        return options

    def load_functions(self) -> dict[str, Callable[..., object]]:
        """Import each function probe's callable (this runs its module's code), by table path.

        Raises :class:`ScenarioError` naming ``probes[i].function`` or the option
        at fault; like :meth:`load_runner`, called to run, never to validate.
        """
        return import_functions(self.function_targets, self.probe_plan, source=self.source)

    def load_runner(self) -> Callable[..., object] | None:
        """Import the custom runner (this runs its module's code) and check its options.

        None when the scenario uses ``run_suite``. Raises :class:`ScenarioError`
        naming ``runner.runner`` or the option at fault; called before a run
        starts, never by loading or validating.
        """
        target = self.runner_target
        if target is None:
            return None
        function = import_runner(target)
        if isinstance(function, Problem):
            raise scenario_error(self.source, [function])
        parameters = parameters_of(function)
        if parameters is not None:
            problems = signature_problems(target.text, parameters, _runner_keys(self.spec))
            if problems:
                raise scenario_error(self.source, problems)
        return function

    def replay_command(
        self, loop: str, seed: int | None = None, *, schedule_jitter: int | None = None
    ) -> str:
        """The exact command that replays this scenario on ``loop`` (with its jitter seed)."""
        seed = self.seed if seed is None else seed
        command = f"swaysim run {shlex.quote(self.source)} --backend {loop} --seed {seed}"
        if self.allow_sys_path_runners and self.runner_target is not None:
            command += " --allow-sys-path-runners"
        jitter = self.schedule_jitter(schedule_jitter)
        return command if jitter is None else f"{command} --jitter {jitter}"

    def __repr__(self) -> str:
        return (
            f"<Scenario {self.name!r} from {self.source!r}: {len(self.probe_plan)} probes, "
            f"seed {self.seed}>"
        )


def _limit_problems(sections: Sections) -> list[Problem]:
    """What the valid tables would cost to expand and check, before any of it is done."""
    problems = untyped_problems(sections.runner.options) if sections.runner is not None else []
    for index, spec in sections.probes:
        options = getattr(spec, "options", None)
        if isinstance(options, dict):  # a function probe's options go to it untyped too
            problems += untyped_problems(options, f"probes[{index}].options")
    specs = [spec for _, spec in sections.probes]
    for problem in expansion_problems(specs):
        # expansion_problems numbers the valid entries; name the entry as the file does.
        for position, (index, _) in enumerate(sections.probes):
            prefix = f"probes[{position}]"
            if problem.key is not None and problem.key.startswith(prefix):
                problem = replace(problem, key=f"probes[{index}]{problem.key[len(prefix) :]}")
                break
        problems.append(problem)
    return problems


def parse_scenario(
    data: bytes | str,
    *,
    source: str = "<scenario>",
    path: Path | None = None,
    allow_sys_path_runners: bool = False,
) -> Scenario:
    """Validate a scenario document and build it once (so API errors surface now).

    Raises :class:`~swaysim.errors.ScenarioError` listing everything that is
    wrong at once, sorted by line: each problem on one line naming ``source``,
    the line, the key path, the value and what is allowed. Stages whose work a
    limit bounds stop the file there (see :mod:`~swaysim._scenario.limits`). A
    custom runner is located and its options checked from its source, never
    imported (:meth:`Scenario.load_runner` does that, to run): it must be a
    module in the folder of ``path``, or, with ``allow_sys_path_runners``, on
    ``sys.path``; it is looked at only in a file with no other problem.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    decoded = _decode(raw)
    if isinstance(decoded, list):
        raise scenario_error(source, decoded)
    text, document = decoded
    return _validated(text, document, source, path, allow_sys_path_runners)


def parse_document(
    document: dict[str, object],
    *,
    source: str = "<scenario>",
    path: Path | None = None,
    allow_sys_path_runners: bool = False,
) -> Scenario:
    """Validate a scenario document already read from TOML, as :func:`parse_scenario`
    validates the file that holds it.

    ``document`` is what ``tomllib`` reads (tables as dicts, arrays as lists, TOML's
    scalars): the same stages run on it after decoding, so the same documents are
    refused, but a problem names its key without a line (there is no text). For
    programs that derive many scenarios from one file (exploration) and would
    otherwise write each to TOML only to read it back.
    """
    problems = _unusable(document)
    if problems:
        raise scenario_error(source, problems)
    return _validated("", document, source, path, allow_sys_path_runners)


def _validated(
    text: str,
    document: dict[str, object],
    source: str,
    path: Path | None,
    allow_sys_path_runners: bool,
) -> Scenario:
    """The stages after decoding: schema, limits, cross-references, builds, the runner."""
    sections = validate_sections(document)
    too_many = _limit_problems(sections)
    if too_many:
        raise scenario_error(source, _located([*sections.problems, *too_many], text))
    plan = _plan(sections)
    if sections.expect is not None:
        too_many = verdict_problems(len(sections.expect.verdicts), len(plan))
        if too_many:
            raise scenario_error(source, _located([*sections.problems, *too_many], text))
    problems = [
        *sections.problems,
        *reference_problems(sections, plan)[:MAX_REPORTED_PROBLEMS],
        *_build_problems(sections, plan),
    ]
    if problems or sections.spec is None:
        raise scenario_error(source, _located(problems, text))
    spec = sections.spec
    target = _runner_target(spec, path, allow_sys_path_runners)
    folder = path.resolve().parent if path is not None else None
    functions = function_targets(plan, folder, allow_sys_path=allow_sys_path_runners)
    if isinstance(target, list) or isinstance(functions, list):
        found = [
            *(target if isinstance(target, list) else ()),
            *(functions if isinstance(functions, list) else ()),
        ]
        raise scenario_error(source, _located(found, text))
    return Scenario(spec, source, path, plan, target, allow_sys_path_runners, functions)


def load_scenario(
    path: str | Path, *, source: str | None = None, allow_sys_path_runners: bool = False
) -> Scenario:
    """Read and validate one scenario file; raises :class:`ScenarioError` (never a traceback).

    ``source`` is how messages and replay commands name the file (default:
    ``path``). The file is read with a bounded read (regular files only); see
    :func:`parse_scenario` for ``allow_sys_path_runners``.
    """
    file = Path(path)
    source = str(path) if source is None else source
    data = read_scenario(file)
    if isinstance(data, Problem):
        raise scenario_error(source, [data])
    return parse_scenario(
        data, source=source, path=file, allow_sys_path_runners=allow_sys_path_runners
    )


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
