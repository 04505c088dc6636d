"""Replacing dlm-sway's dummy with the drop-in, for a block or a whole test session.

dlm-sway's code and tests reach the dummy as
``dlm_sway.backends.dummy.DummyDifferentialBackend``, mostly through ``from
... import`` at module import time. :func:`replace_dummy` rebinds that name,
and the same name in every ``dlm_sway`` module already imported, to a
drop-in class configured with the given options (:func:`configured_drop_in`);
modules imported afterwards (a test session's test files) import the drop-in.
Leaving the block restores dlm-sway's class and closes every drop-in bridge.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import dlm_sway.backends.dummy as sway_dummy

from swaysim._dlm_sway.backend import DummyDifferentialBackend
from swaysim._dlm_sway.bridge import close_all_bridges

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ORIGINAL_DUMMY", "configured_drop_in", "replace_dummy"]

_NAME: Final = "DummyDifferentialBackend"
ORIGINAL_DUMMY: Final[type] = getattr(sway_dummy, _NAME)
"""dlm-sway's own dummy class, as it was when swaysim first looked (before any swap)."""
if issubclass(ORIGINAL_DUMMY, DummyDifferentialBackend):  # pragma: no cover - a reload
    raise RuntimeError("dlm_sway.backends.dummy was already swapped when swaysim loaded")


def configured_drop_in(**options: Any) -> type[DummyDifferentialBackend]:
    """A subclass of the drop-in whose constructor defaults are ``options``.

    ``options`` are the drop-in's keyword options (``loop``, ``op_timeout``,
    ``latency``, ``faults``, ``schedule_jitter``...). The class keeps the
    drop-in's name, so reprs and dlm-sway's messages read as before.
    """
    DummyDifferentialBackend(**options).close()  # validate now, not at every construction
    namespace = {
        "swaysim_options": dict(options),
        "__module__": DummyDifferentialBackend.__module__,
        "__qualname__": _NAME,
        "__doc__": DummyDifferentialBackend.__doc__,
    }
    return type(_NAME, (DummyDifferentialBackend,), namespace)


def _holders(original: type) -> list[tuple[object, str]]:
    """Every (dlm_sway module, name) bound to ``original`` now."""
    found: list[tuple[object, str]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "dlm_sway" or name.startswith("dlm_sway.")):
            continue
        for attribute, value in list(vars(module).items()):
            if value is original:
                found.append((module, attribute))
    return found


@contextmanager
def replace_dummy(drop_in: type[DummyDifferentialBackend]) -> Iterator[type]:
    """Inside the block, dlm-sway's ``DummyDifferentialBackend`` is ``drop_in``.

    Yields dlm-sway's own class (for comparisons). On leaving, the names are
    bound to what they were, and every drop-in bridge still open is closed.
    """
    current = getattr(sway_dummy, _NAME)
    holders = _holders(current)
    for module, attribute in holders:
        setattr(module, attribute, drop_in)
    try:
        yield ORIGINAL_DUMMY
    finally:
        for module, attribute in holders:
            setattr(module, attribute, current)
        close_all_bridges()
