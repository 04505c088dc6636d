"""swaysim.dlm_sway: dlm-sway's own code and tests, run against swaysim.

dlm-sway (https://pypi.org/project/dlm-sway/, tested with 0.1.0) is where
swaysim's backend comes from. This namespace makes swaysim a true drop-in
for it::

    from swaysim.dlm_sway import DummyDifferentialBackend   # not dlm_sway.backends.dummy's

    backend = DummyDifferentialBackend(base=DummyResponses(...), ft=DummyResponses(...),
                                       loop="trio", faults=swaysim.FaultPlan(...))

- :class:`DummyDifferentialBackend`: dlm-sway's dummy, served by swaysim's
  async backend through a blocking bridge of its own (latency, faults,
  jitter, exclusivity, statistics, virtual time), with dlm-sway's
  constructor, types, errors and instrumentation; subclass and monkeypatch
  it as you would dlm-sway's. :class:`BridgedDummyView` is what its views are.
- :func:`replace_dummy` / :func:`configured_drop_in`: replace dlm-sway's
  dummy everywhere for a block (what ``pytest --swaysim-dlm-sway`` and the
  ``swaysim_dlm_sway`` fixture do); :func:`close_all_bridges` closes every
  drop-in's bridge, :func:`open_bridges` counts them.
- :func:`runner`: dlm-sway's own suite runner as a runner under test for
  swaysim's scenario library (``swaysim run scenarios/ --runner
  swaysim.dlm_sway:runner``).

This module stands in for ``dlm_sway.backends.dummy`` in imports: every other
name that module defines (``DummyResponses``, even ``_DummyView``) is
dlm-sway's own, so replacing ``dlm_sway.backends.dummy`` with
``swaysim.dlm_sway`` in a test file's imports is enough to move it to swaysim.

Importing this module without dlm-sway installed raises
:class:`~swaysim.MissingDependencyError` (a ``ModuleNotFoundError``) saying how
to install it; the implementation (which imports dlm-sway) loads on first
use of a name, and ``import swaysim`` never loads either.
"""

from __future__ import annotations

import importlib as _importlib
import importlib.util as _importlib_util
import typing as _typing

from swaysim.errors import MissingDependencyError as _MissingDependencyError

if _importlib_util.find_spec("dlm_sway") is None:
    raise _MissingDependencyError(
        "swaysim.dlm_sway needs dlm-sway, which is not installed: "
        "pip install 'dlm-sway==0.1.0' (or pip install 'swaysim[dev]')",
        name="dlm_sway",
    )

_DLM_SWAY_DUMMY: _typing.Final = "dlm_sway.backends.dummy"
_MISSING: _typing.Final = object()
_LAZY: _typing.Final = {
    "BridgedDummyView": "swaysim._dlm_sway.backend",
    "DummyDifferentialBackend": "swaysim._dlm_sway.backend",
    "DummyResponses": _DLM_SWAY_DUMMY,
    "close_all_bridges": "swaysim._dlm_sway.bridge",
    "configured_drop_in": "swaysim._dlm_sway.swap",
    "open_bridges": "swaysim._dlm_sway.bridge",
    "replace_dummy": "swaysim._dlm_sway.swap",
    "runner": "swaysim._dlm_sway.runner",
}

if _typing.TYPE_CHECKING:
    from dlm_sway.backends.dummy import DummyResponses

    from swaysim._dlm_sway.backend import BridgedDummyView, DummyDifferentialBackend
    from swaysim._dlm_sway.bridge import close_all_bridges, open_bridges
    from swaysim._dlm_sway.runner import runner
    from swaysim._dlm_sway.swap import configured_drop_in, replace_dummy


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name, _DLM_SWAY_DUMMY)
    found = getattr(_importlib.import_module(module), name, _MISSING)
    if found is _MISSING or name.startswith("__"):
        raise AttributeError(f"module 'swaysim.dlm_sway' has no attribute {name!r}")
    if module != _DLM_SWAY_DUMMY:
        globals()[name] = found
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BridgedDummyView",
    "DummyDifferentialBackend",
    "DummyResponses",
    "close_all_bridges",
    "configured_drop_in",
    "open_bridges",
    "replace_dummy",
    "runner",
]
