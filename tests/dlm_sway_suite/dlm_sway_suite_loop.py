"""pytest plugin for the direct-import run: the drop-in's default loop from the environment.

dlm-sway's tests, rewritten to import ``swaysim.dlm_sway.DummyDifferentialBackend``,
construct it without a ``loop``; ``SWAYSIM_DLM_SWAY_SUITE_LOOP`` sets the class
default (:attr:`~swaysim.dlm_sway.DummyDifferentialBackend.swaysim_options`) so
the same copy runs on asyncio and on trio.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_configure(config: pytest.Config) -> None:
    from swaysim.dlm_sway import DummyDifferentialBackend

    loop = os.environ.get("SWAYSIM_DLM_SWAY_SUITE_LOOP", "asyncio")
    DummyDifferentialBackend.swaysim_options = {"loop": loop}
