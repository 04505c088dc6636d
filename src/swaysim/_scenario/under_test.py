"""The runner under test: named by the user, found, and called with the options it takes.

A scenario tests a *runner under test*: the one the user names
(``swaysim run --runner SPEC``, pytest ``--swaysim-runner SPEC`` or the
``swaysim_runner`` ini option, ``check_scenario(..., runner=...)``), else the
reference runner :func:`~swaysim.run_suite`. A scenario's own ``[runner]
runner`` key wins over both (it tests that runner); importing *that* one is
the scenario loader's business, not this module's.

``SPEC`` is ``package.module:function`` (imported from ``sys.path``, the current
folder included) or ``path/to/file.py:function`` (the file imported under a
module name derived from its resolved path, so two files called ``runners.py``
never collide). A runner the user names is the user's own code, trusted like
any code they run; a bad one is an
:class:`~swaysim.errors.InvalidArgumentError` naming the spec and what is
wrong (exit 2 on the command line, a usage error in pytest).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from swaysim._runner.probes import is_async_callable
from swaysim._runner.suite import run_suite
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "REFERENCE",
    "RUNNER_OPTIONS",
    "RunnerUnderTest",
    "resolve_runner",
]

RUNNER_OPTIONS: Final = (
    "concurrency",
    "op_timeout",
    "probe_timeout",
    "retries",
    "backoff",
    "backoff_max",
    "retry_on",
    "preflight",
    "seed",
)
"""The keyword arguments every runner under test is offered: ``run_suite``'s, minus
its own ``mode``, ``on_progress`` and ``trace``."""
_MODULE_PREFIX: Final = "_swaysim_runner_under_test_"
_DOTTED: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class RunnerUnderTest:
    """A runner a scenario can drive: the function, how the user named it, how to call it."""

    function: Callable[..., object]
    spec: str | None
    """How the user named it (``pkg.mod:run``, ``path.py:run``), for replay commands;
    None for the reference runner, or a callable with no importable name."""
    reference: bool = False
    """Whether it is :func:`~swaysim.run_suite` itself."""

    @property
    def is_async(self) -> bool:
        """An ``async def`` (or an object with one as ``__call__``); else it runs in a thread."""
        return is_async_callable(self.function)

    @property
    def label(self) -> str:
        """How messages name it."""
        if self.reference:
            return "run_suite (the reference runner)"
        if self.spec is not None:
            return self.spec
        name = getattr(self.function, "__qualname__", None) or repr(self.function)
        return f"{getattr(self.function, '__module__', '?')}.{name}"

    def accepted(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The ``options`` its signature accepts (all of them with ``**kwargs``)."""
        try:
            parameters = inspect.signature(self.function).parameters.values()
        except (TypeError, ValueError):
            return dict(options)
        kinds = inspect.Parameter
        if any(p.kind is kinds.VAR_KEYWORD for p in parameters):
            return dict(options)
        names = {
            p.name
            for p in parameters
            if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        }
        return {key: value for key, value in options.items() if key in names}

    def __repr__(self) -> str:
        return f"<RunnerUnderTest {self.label}>"


REFERENCE: Final = RunnerUnderTest(run_suite, None, reference=True)


def _bad(spec: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"runner {spec!r}: {reason}", field="runner", value=spec)


def _import_dotted(spec: str, module_name: str) -> object:
    """``module_name`` from ``sys.path``, with the current folder searched too."""
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.append(here)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise _bad(spec, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(here)


def _import_file(spec: str, location: str) -> object:
    """The Python file at ``location``, imported under a name unique to its resolved path."""
    path = Path(location).expanduser()
    if not path.is_file():
        raise _bad(spec, f"no such file: {location}")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    stem = re.sub(r"\W", "_", resolved.stem)
    name = f"{_MODULE_PREFIX}{digest}_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise _bad(spec, f"{location} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _bad(spec, f"importing {location} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _from_spec(spec: str) -> RunnerUnderTest:
    location, colon, attribute = spec.strip().rpartition(":")
    if not colon or not location or not _NAME.match(attribute):
        raise _bad(spec, "must look like package.module:function or path/to/file.py:function")
    is_file = location.endswith(".py") or "/" in location or os.sep in location
    if not is_file and not _DOTTED.match(location):
        raise _bad(spec, f"{location!r} is neither a module name nor a .py file")
    module = _import_file(spec, location) if is_file else _import_dotted(spec, location)
    function: object = module
    for part in attribute.split("."):
        found = getattr(function, part, None)
        if found is None:
            public = sorted(n for n in dir(function) if not n.startswith("_"))
            where = location if is_file else f"module {location!r}"
            raise _bad(spec, f"{where} has no attribute {part!r} (it has: {', '.join(public)})")
        function = found
    if not callable(function):
        raise _bad(spec, f"{attribute} is a {type(function).__name__}, not a callable")
    return _wrap(function, spec)


def _wrap(function: Callable[..., object], spec: str | None) -> RunnerUnderTest:
    inner: object = function
    while isinstance(inner, functools.partial):
        inner = inner.func
    if inner is run_suite:
        return REFERENCE if function is run_suite else RunnerUnderTest(function, spec, True)
    return RunnerUnderTest(function, spec)


def _importable_name(function: Callable[..., object]) -> str | None:
    """``module:qualname`` when that names ``function`` again, else None."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    found: object = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qualname}" if found is function else None


def resolve_runner(runner: str | Callable[..., object] | RunnerUnderTest | None) -> RunnerUnderTest:
    """The runner under test for ``runner``: a spec, a callable, or None (the reference).

    Raises :class:`~swaysim.errors.InvalidArgumentError` (``field="runner"``)
    naming the spec and the reason when it cannot be imported or is not callable.
    """
    if runner is None:
        return REFERENCE
    if isinstance(runner, RunnerUnderTest):
        return runner
    if isinstance(runner, str):
        return _from_spec(runner)
    if not callable(runner):
        raise InvalidArgumentError(
            f"runner={runner!r} must be a callable runner(backend, probes, **options), "
            "a 'package.module:function' or 'path/to/file.py:function' spec, or None",
            field="runner",
            value=runner,
        )
    return _wrap(runner, _importable_name(runner))
