"""pytest support: run async tests on both event loops, on a virtual clock.

Registered as the ``swaysim`` pytest11 entry point, so it loads with pytest.
It adds one marker, for a test function, a class or a module::

    @pytest.mark.swaysim                            # asyncio and trio, virtual time
    @pytest.mark.swaysim(loops=("trio",))           # trio only
    @pytest.mark.swaysim(virtual_time=False)        # both loops, real clock

A marked ``async def`` test runs once per loop through anyio's own pytest
plugin (in anyio's strict mode too), with ids ``[asyncio]`` and ``[trio]``.
With ``virtual_time=True`` each run gets a fresh virtual clock
(:func:`swaysim.virtual_anyio_backend`), so ``anyio.sleep``,
``anyio.fail_after`` and injected latency take no wall time, and async
fixtures run on the same loop and clock as the test.

It composes with anyio rather than replacing it: the marker becomes a
``parametrize`` of anyio's ``anyio_backend`` argument, which overrides any
``anyio_backend`` fixture (anyio's or a conftest's) for that test only.
Unmarked tests are untouched. Marker arguments are checked at collection.

anyio runs every test on one shared event loop while a module- or
session-scoped async fixture is alive, whatever ``anyio_backend`` says; a
marked test that would run on such a loop (another library, or a clock that
is not its own) fails with a message saying so instead of passing in real
time on the wrong loop.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator, Sequence

# Scenario files as test items, and the swaysim_backend fixture (marker's backend=...).
pytest_plugins = ["swaysim._pytest.scenarios"]

MARKER: Final = "swaysim"
_LOOPS: Final = ("asyncio", "trio")


class _LoopOptions(dict[str, Any]):
    """anyio backend options for one loop, given a fresh clock before each test.

    A parametrize value is shared by every item pytest derives from one test
    function; refreshing the options in place at setup keeps one clock from
    ever serving two runs.
    """

    def __init__(self, loop: str, *, virtual_time: bool) -> None:
        super().__init__()
        self.loop = loop
        self.virtual_time = virtual_time
        self.refresh()

    def refresh(self) -> None:
        """Replace the clock (trio) or loop factory (asyncio) with a fresh one."""
        from swaysim._time.clock import virtual_anyio_backend

        _, options = virtual_anyio_backend(self.loop, virtual_time=self.virtual_time)
        self.clear()
        self.update(options)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(virtual_time=True, loops=('asyncio', 'trio'), backend={{}}): run an async "
        "test through anyio once per event loop, on a fresh virtual clock unless "
        "virtual_time=False; backend= takes a scenario's [backend] keys for the "
        "swaysim_backend fixture.",
    )


def _own_or_closest(collector: pytest.Collector, obj: object) -> pytest.Mark | None:
    own: list[pytest.Mark] = [m for m in getattr(obj, "pytestmark", ()) if m.name == MARKER]
    if own:
        return own[0]
    return collector.get_closest_marker(MARKER)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Make marked coroutine tests request ``anyio_backend``, so anyio runs them."""
    if not isinstance(collector, pytest.Module | pytest.Class):
        return
    if not collector.istestfunction(obj, name):
        return
    hypothesis = getattr(obj, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", obj)
    if inspect.iscoroutinefunction(inner) and _own_or_closest(collector, obj) is not None:
        pytest.mark.usefixtures("anyio_backend")(obj)


def _loops_from(marker: pytest.Mark) -> tuple[tuple[str, ...], bool]:
    if marker.args:
        pytest.fail(
            f"@pytest.mark.{MARKER}{marker.args!r}: takes keyword arguments only "
            "(virtual_time=..., loops=...)",
            pytrace=False,
        )
    unknown = sorted(set(marker.kwargs) - {"virtual_time", "loops", "backend"})
    if unknown:
        pytest.fail(
            f"@pytest.mark.{MARKER}: unknown argument(s) {', '.join(unknown)}; "
            "expected virtual_time, loops and backend",
            pytrace=False,
        )
    virtual_time = marker.kwargs.get("virtual_time", True)
    if not isinstance(virtual_time, bool):
        pytest.fail(
            f"@pytest.mark.{MARKER}(virtual_time={virtual_time!r}): must be True or False",
            pytrace=False,
        )
    loops: Sequence[str] = marker.kwargs.get("loops", _LOOPS)
    if (
        isinstance(loops, str)
        or not isinstance(loops, tuple | list)
        or not loops
        or any(loop not in _LOOPS for loop in loops)
        or len(set(loops)) != len(loops)
    ):
        pytest.fail(
            f"@pytest.mark.{MARKER}(loops={loops!r}): must be a non-empty tuple of distinct "
            f"loop names from {_LOOPS!r}",
            pytrace=False,
        )
    return tuple(loops), virtual_time


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Turn the marker into a ``parametrize`` of ``anyio_backend``, one value per loop.

    A ``parametrize`` *marker* (not a direct ``metafunc.parametrize`` call)
    is what makes pytest skip the params of an ``anyio_backend`` fixture.
    """
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None or "anyio_backend" not in metafunc.fixturenames:
        return
    loops, virtual_time = _loops_from(marker)
    values = [(loop, _LoopOptions(loop, virtual_time=virtual_time)) for loop in loops]
    metafunc.definition.add_marker(
        pytest.mark.parametrize("anyio_backend", values, ids=list(loops))
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Give a marked test a fresh clock before any of its fixtures run."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    backend = callspec.params.get("anyio_backend")
    if isinstance(backend, tuple) and len(backend) == 2 and isinstance(backend[1], _LoopOptions):
        backend[1].refresh()


def _foreign_loop(loop: str, options: _LoopOptions) -> str | None:
    """What the running loop is, if it is not ``loop`` with ``options``' clock; else None."""
    import sniffio

    library = sniffio.current_async_library()
    if library == "asyncio":
        import asyncio

        running = asyncio.get_running_loop()
        factory = options.get("loop_factory")
        if loop == "asyncio" and (factory is None or isinstance(running, factory)):
            return None
        return f"an asyncio loop ({type(running).__name__})"
    if library == "trio":
        import trio

        clock = trio.lowlevel.current_clock()
        if loop == "trio" and options.get("clock", clock) is clock:
            return None
        return f"a trio loop with another clock ({type(clock).__name__})"
    return f"a {library} loop"


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Check that a marked test runs on its own loop and clock (see the module docstring)."""
    callspec = getattr(pyfuncitem, "callspec", None)
    backend = callspec.params.get("anyio_backend") if callspec is not None else None
    test = pyfuncitem.obj
    if not (
        isinstance(backend, tuple)
        and len(backend) == 2
        and isinstance(backend[1], _LoopOptions)
        and inspect.iscoroutinefunction(test)
    ):
        return (yield)
    loop, options = backend
    found: list[str] = []

    @functools.wraps(test)
    async def checked(*args: Any, **kwargs: Any) -> object:
        foreign = _foreign_loop(loop, options)
        if foreign is not None:
            found.append(foreign)
            return None
        return await test(*args, **kwargs)

    pyfuncitem.obj = checked
    try:
        outcome = yield
    finally:
        pyfuncitem.obj = test
    if found:
        clock = " on a fresh virtual clock" if options.virtual_time else ""
        pytest.fail(
            f"@pytest.mark.{MARKER}: {pyfuncitem.name} must run on {loop}{clock}, but anyio "
            f"ran it on {found[0]}: a module- or session-scoped async fixture keeps anyio's "
            "event loop alive for every test in its scope. Give such fixtures a narrower "
            "scope, or keep swaysim-marked tests out of theirs (e.g. in another module).",
            pytrace=False,
        )
    return outcome
