"""The runner the malformed corpus's runner_* scenarios name (never imported by the tests)."""

from __future__ import annotations

from typing import Any


async def run(backend: Any, probes: Any, *, batch: int = 8) -> list[Any]:
    raise AssertionError("a malformed scenario's runner is never run")
