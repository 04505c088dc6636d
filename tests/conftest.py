"""Every async test runs on asyncio and trio, on a virtual clock."""

from __future__ import annotations

from typing import Any

import pytest

from swaysim import virtual_anyio_backend


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A fresh virtual clock per test, on each event loop."""
    return virtual_anyio_backend(request.param)
