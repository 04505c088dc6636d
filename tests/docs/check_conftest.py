"""The README's conftest.py block, in use: a plain anyio test on each loop, in virtual time.

tests/docs/test_doc_blocks.py copies this file next to the block (written as
``conftest.py``) and runs pytest there: both loops must run, and an hour of
sleeping must pass on the virtual clock, not the wall clock.
"""

from __future__ import annotations

import time

import anyio
import pytest

LOOPS: list[str] = []


@pytest.mark.anyio
async def test_each_loop_runs_in_virtual_time(anyio_backend: object) -> None:
    wall = time.monotonic()
    start = anyio.current_time()
    await anyio.sleep(3600)
    assert anyio.current_time() - start >= 3600
    assert time.monotonic() - wall < 30
    LOOPS.append(str(anyio_backend))


def test_both_loops_ran() -> None:
    assert len(LOOPS) == 2
    assert any("asyncio" in loop for loop in LOOPS)
    assert any("trio" in loop for loop in LOOPS)
