"""anyio's own tests pass on the virtual loop wherever they pass natively (``--swaysim-long``).

Runs ``tests/anyio_suite/run_anyio_suite.py --subset``: the anyio 4.16.0 tests where
an autojumping clock used to outrun real work (worker processes, subprocesses,
worker threads, blocking portals, a TLS handshake with a client thread), natively
and then on :class:`swaysim.VirtualClockEventLoop`. The first run sets up
``.cache/anyio-suite/`` (a virtualenv with anyio's test dependencies and anyio's
sdist, fetched with pip: about a minute). ``make anyio-suite`` runs all of anyio's
asyncio tests the same way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweeps import LONG_ENV, LONG_OPTION, is_long

DRIVER = Path(__file__).resolve().parents[1] / "anyio_suite" / "run_anyio_suite.py"


@pytest.mark.timeout(900)
def test_anyio_tests_that_pass_natively_pass_on_the_virtual_loop(
    request: pytest.FixtureRequest,
) -> None:
    if not is_long(request.config):
        pytest.skip(
            f"sets up a virtualenv and fetches anyio's sdist: {LONG_OPTION} or {LONG_ENV}=1"
        )
    completed = subprocess.run(
        [sys.executable, str(DRIVER), "--subset"], capture_output=True, text=True, check=False
    )
    report = completed.stdout[-6000:] + completed.stderr[-3000:]
    assert completed.returncode == 0, report
    assert "0 regressions" in completed.stdout, report
