"""pytest plugin: run anyio's own test suite natively or on swaysim's virtual asyncio loop.

Loaded into a run of anyio's sdist tests by ``run_anyio_suite.py`` (beside this file)::

    pytest -p anyio_suite_plugin --swaysim-clock=virtual --swaysim-report=out.json

It keeps the tests whose own event loop is plain asyncio (ids ``[asyncio]`` and
``[asyncio-...]``; not uvloop, not eager tasks, not trio). With
``--swaysim-clock=virtual`` every plain asyncio loop anyio starts for them (the
test's own, and those of blocking portals started inside a test) is a
:class:`swaysim.VirtualClockEventLoop`, debug mode kept. Loops a test makes
itself with ``asyncio.new_event_loop()`` stay native. Outcomes and durations
go to ``--swaysim-report`` as JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

ASYNCIO_ID = re.compile(r"\[asyncio[\]-]")
_results: dict[str, dict[str, Any]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("swaysim-anyio-suite")
    group.addoption("--swaysim-clock", choices=("native", "virtual"), default="native")
    group.addoption("--swaysim-report", default=None, help="write outcomes here (JSON)")


def pytest_configure(config: pytest.Config) -> None:
    # Both runs import swaysim, so that they compare clocks, not heap sizes (every
    # gc.collect() in anyio's tests walks swaysim's modules too).
    import swaysim  # noqa: F401

    if config.getoption("--swaysim-clock") == "virtual":
        _run_asyncio_loops_on_the_virtual_clock()


def _run_asyncio_loops_on_the_virtual_clock() -> None:
    from anyio._backends._asyncio import AsyncIOBackend

    from swaysim import VirtualClockEventLoop

    def virtual(options: dict[str, Any]) -> dict[str, Any]:
        if options.get("loop_factory") is None and not options.get("use_uvloop"):
            return {**options, "loop_factory": VirtualClockEventLoop}
        return options

    create_test_runner = AsyncIOBackend.__dict__["create_test_runner"].__func__
    run = AsyncIOBackend.__dict__["run"].__func__

    def virtual_test_runner(cls: type, options: dict[str, Any]) -> Any:
        return create_test_runner(cls, virtual(options))

    def virtual_run(cls: type, func: Any, args: Any, kwargs: Any, options: dict[str, Any]) -> Any:
        return run(cls, func, args, kwargs, virtual(options))

    setattr(AsyncIOBackend, "create_test_runner", classmethod(virtual_test_runner))  # noqa: B010
    setattr(AsyncIOBackend, "run", classmethod(virtual_run))  # noqa: B010


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if ASYNCIO_ID.search(item.nodeid) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    result = _results.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
    result["seconds"] += report.duration
    if report.failed:
        if result["outcome"] != "failed":
            lines = report.longreprtext.strip().splitlines()
            result["reason"] = f"{report.when}: {lines[-1] if lines else '?'}"[:300]
        result["outcome"] = "failed"
    elif result["outcome"] == "passed" and hasattr(report, "wasxfail"):
        result["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif result["outcome"] == "passed" and report.skipped:
        result["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--swaysim-report")
    if path:
        Path(path).write_text(json.dumps(_results, indent=1, sort_keys=True))
