"""A fixture for tests that run dlm-sway's suite runner: its process-wide side effects undone.

dlm-sway's runner seeds ``random`` and numpy's global generator and sets
``CUBLAS_WORKSPACE_CONFIG``; a test module that calls it imports this fixture
(``from dlm_sway_state import isolate_dlm_sway_global_state``) and uses it with
``pytestmark = pytest.mark.usefixtures("isolate_dlm_sway_global_state")``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def isolate_dlm_sway_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo dlm-sway's seeding of the global generators and its environment variable."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
