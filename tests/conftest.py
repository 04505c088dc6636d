"""Every async test runs on asyncio and trio, on a virtual clock.

Tests live in a folder per kind (``unit``, ``integration``, ``reliability``,
``browser``, ``docs``); each item is marked with its folder's kind, and the kinds
that take seconds per item (``reliability``, ``browser``, ``docs``) are also ``slow``, so
``pytest -m "not slow"`` is the quick loop while editing.

``--swaysim-long`` (or ``SWAYSIM_LONG=1``) runs the reliability tests at full size:
thousands of cancellation-fuzz runs, every jitter and scenario seed of the sweeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest

from swaysim import virtual_anyio_backend


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("swaysim").addoption(
        "--swaysim-long",
        action="store_true",
        default=False,
        help="run the reliability tests (fuzzing, chaos, soak) at full size; "
        "SWAYSIM_LONG=1 does the same",
    )


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A fresh virtual clock per test, on each event loop."""
    return virtual_anyio_backend(request.param)


_KINDS: Final = ("unit", "integration", "reliability", "browser", "docs")
_SLOW_KINDS: Final = frozenset({"reliability", "browser", "docs"})
_HERE: Final = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            kind = item.path.resolve().relative_to(_HERE).parts[0]
        except ValueError:
            continue
        if kind in _KINDS:
            item.add_marker(kind)
            if kind in _SLOW_KINDS:
                item.add_marker("slow")
