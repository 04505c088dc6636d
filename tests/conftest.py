"""Every async test runs on asyncio and trio, on a virtual clock.

``--swaysim-long`` (or ``SWAYSIM_LONG=1``) runs the reliability tests at full size:
thousands of cancellation-fuzz runs, every jitter and scenario seed of the sweeps.
"""

from __future__ import annotations

from typing import Any

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
