"""dlm-sway's own unit tests pass through swaysim's drop-in wherever they pass (``--swaysim-long``).

Runs ``tests/dlm_sway_suite/run_dlm_sway_suite.py``: dlm-sway 0.1.0's unit tests from
its sdist (fetched with pip into ``.cache/dlm-sway-suite/`` on first use), against
dlm-sway's dummy, then with ``pytest --swaysim-dlm-sway`` and with a copy whose imports
name ``swaysim.dlm_sway``, each on asyncio and trio. ``make dlm-sway-suite`` runs the same.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps import LONG_ENV, LONG_OPTION, is_long

DRIVER = Path(__file__).resolve().parents[1] / "dlm_sway_suite" / "run_dlm_sway_suite.py"
pytest.importorskip("dlm_sway", reason="dlm-sway (a dev dependency) is not installed")


@pytest.mark.timeout(900)
def test_dlm_sways_tests_that_pass_against_its_dummy_pass_through_the_drop_in(
    request: pytest.FixtureRequest,
) -> None:
    if not is_long(request.config):
        pytest.skip(
            f"fetches dlm-sway's sdist and runs its suite 5 times: {LONG_OPTION} or {LONG_ENV}=1"
        )
    completed = subprocess.run(
        [sys.executable, str(DRIVER)], capture_output=True, text=True, check=False
    )
    report = completed.stdout[-6000:] + completed.stderr[-3000:]
    assert completed.returncode == 0, report
    assert re.search(
        r"^\d{3,} pass against dlm-sway's dummy; 0 regressions$", completed.stdout, re.M
    ), report
    for way in ("switch-asyncio", "switch-trio", "import-asyncio", "import-trio"):
        assert re.search(rf"^{way} +\d{{3,}} passed +0 failed", completed.stdout, re.M), report
