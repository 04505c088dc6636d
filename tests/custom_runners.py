"""Runners of one's own, for scenario files that say ``runner = "custom_runners:<name>"``.

pytest puts tests/ on ``sys.path`` (rootdir-less "prepend" import mode), so scenario
files written anywhere by the tests can import this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swaysim import ProbeResult, SuiteResult, Verdict, run_suite

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swaysim import Probe

CALLS: list[dict[str, Any]] = []
"""The keyword arguments every runner here was called with, in call order."""


async def suite(backend: Any, probes: Sequence[Probe], **options: Any) -> SuiteResult:
    """The reference runner, recording its options: returns a full SuiteResult."""
    CALLS.append(dict(options))
    return await run_suite(backend, probes, **options)


async def plain(backend: Any, probes: Sequence[Probe], **options: Any) -> list[ProbeResult]:
    """Returns bare results, so runner counters (retries, timeouts) are unknown."""
    CALLS.append(dict(options))
    return list((await run_suite(backend, probes, **options)).results)


def synchronous(backend: Any, probes: Sequence[Probe]) -> tuple[ProbeResult, ...]:
    """Not async at all: every probe FAILs without touching the backend."""
    CALLS.append({})
    return tuple(ProbeResult(p.name, p.kind, Verdict.FAIL, message="synchronous") for p in probes)


async def crashes(backend: Any, probes: Sequence[Probe]) -> SuiteResult:
    """A runner with a bug."""
    raise ValueError("the runner fell over")


async def wrong_type(backend: Any, probes: Sequence[Probe]) -> object:
    """Returns something that is not a result."""
    return 42


NOT_CALLABLE = 3
