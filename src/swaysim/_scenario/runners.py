"""A runner a scenario file names: found without running it, imported only to run.

The trust model (README, "Trust model"): a scenario file is data, except
that ``runner = "module:function"`` makes it code. So:

- *Loading* (``swaysim validate``, :func:`~swaysim.load_scenario`, pytest
  collection) locates the module and reads its source, but never executes
  it: :func:`locate_runner` searches like the import system does, without
  importing, and :func:`static_problems` reads the function's parameters
  from the source (``ast``), so a misspelt function or a bad
  ``[runner.options]`` key is exit 2 before anything runs.
- *Running* (``swaysim run``, :func:`~swaysim.check_scenario`, a pytest
  item) imports it (:func:`import_runner`) and checks its real signature
  against the options (:func:`signature_problems`) before any suite starts.
- The import is *confined*: the module must be a file inside the scenario's
  folder (links resolved), and it is imported as a submodule of a private
  package whose name is derived from that folder, so a scenario can never
  import the standard library or site-packages, and two folders' modules of
  the same name never collide (each gets its own). Only the user's own
  opt-in (``--allow-sys-path-runners``, the ``swaysim_allow_sys_path_runners``
  ini option, ``allow_sys_path_runners=True``) adds ``sys.path`` after the
  folder. A runner the user names themselves (a command-line or pytest
  option) is the user's choice, trusted like any code they run.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from swaysim._files import read_regular_file
from swaysim._limits import MAX_SCENARIO_BYTES
from swaysim._scenario.messages import Problem, did_you_mean
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from importlib.machinery import ModuleSpec

__all__ = [
    "PACKAGE_PREFIX",
    "Parameters",
    "RunnerTarget",
    "import_runner",
    "locate_runner",
    "parameters_of",
    "signature_problems",
    "static_problems",
]

PACKAGE_PREFIX: Final = "_swaysim_scenario_runners_"
"""Runner modules from a scenario folder live under ``<prefix><folder hash>``."""
_OPT_IN: Final = "--allow-sys-path-runners"
_FIXED_ARGUMENTS: Final = ("backend", "probes")


@dataclass(frozen=True, slots=True)
class RunnerTarget:
    """Where a scenario's runner lives, found without executing anything."""

    text: str
    """As written: ``"package.module:function"``."""
    module: str
    attribute: str
    origin: Path | None
    """The module's file, when it has one (a built-in module has none)."""
    package: str | None
    """The private package it is imported under; None when it comes from ``sys.path``."""
    folder: Path | None = None
    """The scenario's folder (resolved) the module was found in."""
    key: str = "runner.runner"
    """The scenario key that names it (``probes[2].function`` for a function probe)."""

    @property
    def import_name(self) -> str:
        """The name it is imported under."""
        return f"{self.package}.{self.module}" if self.package else self.module


@dataclass(frozen=True, slots=True)
class Parameters:
    """What a runner accepts after ``(backend, probes)``, from its source or its signature."""

    keywords: frozenset[str]
    required: frozenset[str]
    any_keyword: bool
    fixed_ok: bool
    """Whether it takes the two positional arguments every runner gets."""
    names: tuple[str, ...] = field(default=())


# -- locating ---------------------------------------------------------------------------


def _package_name(folder: Path) -> str:
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{PACKAGE_PREFIX}{digest}"


def _find(module: str, search: list[str] | None) -> ModuleSpec | None:
    """The spec of ``module`` on ``search`` (None: sys.path), part by part, importing nothing."""
    spec: ModuleSpec | None = None
    locations = search
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        spec = importlib.machinery.PathFinder.find_spec(name, locations)
        if spec is None:
            return None
        if depth < len(parts):
            if spec.submodule_search_locations is None:
                return None
            locations = list(spec.submodule_search_locations)
    return spec


def _inside(spec: ModuleSpec, folder: Path) -> bool:
    places = [spec.origin] if spec.origin and spec.has_location else []
    places += list(spec.submodule_search_locations or [])
    return bool(places) and all(Path(p).resolve().is_relative_to(folder) for p in places)


def locate_runner(
    text: str,
    folder: Path | None,
    *,
    allow_sys_path: bool = False,
    key: str = "runner.runner",
) -> RunnerTarget | Problem:
    """Find ``module:function``'s module in ``folder`` (then ``sys.path`` if allowed).

    Nothing is imported or executed. ``folder`` None (a scenario parsed from
    a string) has no folder to search. ``key`` is the scenario key that names
    it: a runner's, or a function probe's (``probes[2].function``), found by
    the same rules.
    """
    module, _, attribute = text.partition(":")
    what = "runner" if key == "runner.runner" else "function probes"
    if folder is not None:
        spec = _find(module, [str(folder)])
        if spec is not None and not _inside(spec, folder):
            return Problem(
                key,
                f"module {module!r} resolves outside the scenario's folder {folder} "
                f"(through a link); a scenario's {what} must live in its folder",
            )
        if spec is not None:
            origin = Path(spec.origin) if spec.origin and spec.has_location else None
            package = _package_name(folder)
            return RunnerTarget(text, module, attribute, origin, package, folder, key)
    if allow_sys_path:
        spec = _find(module, None)
        if spec is None and "." not in module:
            spec = importlib.util.find_spec(module)  # built-in and frozen modules
        if spec is not None:
            origin = Path(spec.origin) if spec.origin and spec.has_location else None
            return RunnerTarget(text, module, attribute, origin, None, key=key)
        where = f"in {folder} or on sys.path" if folder else "on sys.path"
        return Problem(key, f"no module named {module!r} {where}")
    where = f"in the scenario's folder {folder}" if folder else "(the scenario has no folder)"
    return Problem(
        key,
        f"no module named {module!r} {where}; a scenario imports its {what} from its own "
        f"folder only, unless you allow sys.path with {_OPT_IN}",
    )


# -- reading the source -----------------------------------------------------------------


def _parameters_of_def(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Parameters:
    arguments = node.args
    positional = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
    fixed_ok = len(positional) >= len(_FIXED_ARGUMENTS) or arguments.vararg is not None
    rest = positional[len(_FIXED_ARGUMENTS) :]
    named = [a.arg for a in arguments.args][
        max(0, len(_FIXED_ARGUMENTS) - len(arguments.posonlyargs)) :
    ]
    keywords = [*named, *(a.arg for a in arguments.kwonlyargs)]
    defaults = len(arguments.defaults)
    required = rest[: len(rest) - defaults] if defaults else rest
    required += [
        a.arg for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if d is None
    ]
    return Parameters(
        keywords=frozenset(keywords),
        required=frozenset(required),
        any_keyword=arguments.kwarg is not None,
        fixed_ok=fixed_ok,
        names=tuple(keywords),
    )


def _bindings(tree: ast.Module, name: str) -> tuple[ast.AST | None, bool, list[str]]:
    """The top-level ``def name`` (last one wins), whether anything else may bind ``name``,
    and every top-level name (for a "did you mean")."""
    found: ast.AST | None = None
    other = False
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
            if node.name == name:
                found = node
                other = isinstance(node, ast.ClassDef) or bool(getattr(node, "decorator_list", []))
            elif node.name == "__getattr__":
                other = True
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                names.append(inner.id)
                other = other or inner.id == name
            elif isinstance(inner, ast.alias):
                bound = inner.asname or inner.name.partition(".")[0]
                names.append(bound)
                other = other or bound in (name, "*")
            elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.append(inner.name)
                other = other or inner.name == name
    return found, other, names


def static_problems(
    target: RunnerTarget, passed: Mapping[str, str], *, fixed: str = "(backend, probes)"
) -> list[Problem]:
    """What the runner's source says is wrong with its options, without running it.

    ``passed`` maps each keyword the runner will get to the scenario key that
    sets it. A function the source does not define plainly (assigned, imported,
    decorated) cannot be read this way: nothing is reported, and the check
    happens on its real signature before the run.
    """
    if target.origin is None or target.origin.suffix != ".py":
        return []
    try:
        source = read_regular_file(target.origin, MAX_SCENARIO_BYTES)
        tree = ast.parse(source, filename=str(target.origin))
    except (OSError, InvalidArgumentError, SyntaxError, ValueError, RecursionError) as exc:
        return [Problem(target.key, f"cannot read {target.origin}: {exc}")]
    found, other, names = _bindings(tree, target.attribute)
    if found is None and not other:
        public = [n for n in dict.fromkeys(names) if not n.startswith("_")]
        reason = f"module {target.module!r} ({target.origin}) has no function {target.attribute!r}"
        return [Problem(target.key, f"{reason}{did_you_mean(target.attribute, public)}")]
    if isinstance(found, ast.FunctionDef | ast.AsyncFunctionDef) and not other:
        return signature_problems(
            target.text, _parameters_of_def(found), passed, key=target.key, fixed=fixed
        )
    return []


# -- importing --------------------------------------------------------------------------


def _private_package(name: str, folder: Path) -> None:
    """Register the package that holds one folder's runner modules (once)."""
    if name in sys.modules:
        return
    package = types.ModuleType(name, f"swaysim scenario runners from {folder}")
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    package.__spec__ = spec
    package.__path__ = [str(folder)]
    sys.modules[name] = package


def import_runner(target: RunnerTarget) -> Callable[..., object] | Problem:
    """Import the runner's module (executing it) and return the function."""
    if target.package is not None and target.folder is not None:
        _private_package(target.package, target.folder)
    try:
        module = importlib.import_module(target.import_name)
    except Exception as exc:
        where = f" from {target.folder}" if target.folder else ""
        reason = f"importing {target.module!r}{where} failed: {type(exc).__name__}: {exc}"
        return Problem(target.key, reason)
    function = getattr(module, target.attribute, None)
    if function is None:
        public = [name for name in dir(module) if not name.startswith("_")]
        reason = f"module {target.module!r} has no attribute {target.attribute!r}"
        return Problem(target.key, f"{reason}{did_you_mean(target.attribute, public)}")
    if not callable(function):
        return Problem(target.key, f"{target.text!r} is not callable")
    return function  # type: ignore[no-any-return]


def parameters_of(function: Callable[..., object]) -> Parameters | None:
    """What ``function`` accepts after ``(backend, probes)``; None if it has no signature."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    params = list(signature.parameters.values())
    positional = [
        p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
    ]
    has_varargs = any(p.kind is kinds.VAR_POSITIONAL for p in params)
    fixed_ok = len(positional) >= len(_FIXED_ARGUMENTS) or has_varargs
    rest = positional[len(_FIXED_ARGUMENTS) :] + [p for p in params if p.kind is kinds.KEYWORD_ONLY]
    keywords = [p.name for p in rest if p.kind is not kinds.POSITIONAL_ONLY]
    return Parameters(
        keywords=frozenset(keywords),
        required=frozenset(p.name for p in rest if p.default is p.empty),
        any_keyword=any(p.kind is kinds.VAR_KEYWORD for p in params),
        fixed_ok=fixed_ok,
        names=tuple(keywords),
    )


def signature_problems(
    text: str,
    parameters: Parameters,
    passed: Mapping[str, str],
    *,
    key: str = "runner.runner",
    fixed: str = "(backend, probes)",
) -> list[Problem]:
    """Each option the runner cannot take, and each required one nothing sets.

    ``passed`` maps keyword to scenario key (``{"bogus": "runner.options.bogus"}``);
    ``key`` names the function (a function probe's is ``probes[i].function`` and its
    ``fixed`` arguments ``(backend, ctx)``), its options table is ``key``'s sibling.
    """
    problems = []
    if not parameters.fixed_ok:
        problems.append(Problem(key, f"{text!r} must take the two positional arguments {fixed}"))
    takes = ", ".join(parameters.names) or "no options"
    for keyword, key in passed.items():
        if parameters.any_keyword or keyword in parameters.keywords:
            continue
        hint = did_you_mean(keyword, parameters.names) or f"; it takes {takes}"
        problems.append(Problem(key, f"{text!r} takes no option {keyword!r}{hint}"))
    for missing in sorted(parameters.required - set(passed)):
        table = key.rpartition(".")[0]
        unset = (
            "which neither [runner] nor [runner.options] sets"
            if table == "runner"
            else f"which {table}.options does not set"
        )
        problems.append(
            Problem(f"{table}.options", f"{text!r} requires option {missing!r}, {unset}")
        )
    return problems
