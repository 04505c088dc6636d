"""pytest support: run async tests on both event loops, on a virtual clock.

Registered as the ``swaysim`` pytest11 entry point, so it loads with pytest.
It adds one marker, for a test function, a class or a module::

    @pytest.mark.swaysim                            # asyncio and trio, virtual time
    @pytest.mark.swaysim(loops=("trio",))           # trio only
    @pytest.mark.swaysim(virtual_time=False)        # both loops, real clock
    @pytest.mark.swaysim(backend={...})             # configures swaysim_backend

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
pytest-asyncio and pytest-trio, in any mode, leave marked tests to swaysim
(:mod:`swaysim._pytest.other_plugins`).

anyio runs every test on one shared event loop while a module- or
session-scoped async fixture is alive, whatever ``anyio_backend`` says; a
marked test that would run on such a loop (another library, or a clock that
is not its own) fails with a message saying so instead of passing in real
time on the wrong loop.

The plugin's command-line and ini options are all declared here; scenario
files as test items live in :mod:`swaysim._pytest.scenarios`.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Final

import pytest

from swaysim._pytest.other_plugins import (
    MARKER,
    SwaysimFunction,
    async_fixture_on_anyio,
    claim,
    registered_anyio_plugin,
    take_over,
    taken_over,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._scenario.under_test import RunnerUnderTest

# Scenario files as test items; dlm-sway's dummy replaced by the drop-in.
pytest_plugins = ["swaysim._pytest.scenarios", "swaysim._pytest.dlm_sway"]

_LOOPS: Final = ("asyncio", "trio")
INI_DIRS: Final = "swaysim_scenario_dirs"
INI_RUNNER: Final = "swaysim_runner"
INI_SYS_PATH_RUNNERS: Final = "swaysim_allow_sys_path_runners"
SEED_OPTION: Final = "--swaysim-seed"
JITTER_OPTION: Final = "--swaysim-jitter"
RUNNER_OPTION: Final = "--swaysim-runner"
INI_DLM_SWAY: Final = "swaysim_dlm_sway"
INI_DLM_SWAY_LOOP: Final = "swaysim_dlm_sway_loop"
INI_DLM_SWAY_BACKEND: Final = "swaysim_dlm_sway_backend"
DLM_SWAY_OPTION: Final = "--swaysim-dlm-sway"
DLM_SWAY_LOOP_OPTION: Final = "--swaysim-dlm-sway-loop"
DLM_SWAY_BACKEND_OPTION: Final = "--swaysim-dlm-sway-backend"
DLM_SWAY_OP_TIMEOUT_OPTION: Final = "--swaysim-dlm-sway-op-timeout"
# The item whose run protocol is under way: its fixtures are set up inside it.
_RUNNING: Final = pytest.StashKey[pytest.Item]()
_RUNNER: Final = pytest.StashKey["RunnerUnderTest"]()


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


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every swaysim option: scenario folders, the runner under test and the runner opt-in
    (ini), seed and jitter-seed overrides, and the dlm-sway switch
    (:mod:`swaysim._pytest.dlm_sway`)."""
    parser.addini(
        INI_DIRS,
        type="linelist",
        default=["scenarios"],
        help="folders (relative to the ini file) whose *.toml files are swaysim scenarios; "
        "a file there that mentions neither probes nor expect is not collected",
    )
    parser.addini(
        INI_RUNNER,
        type="string",
        default="",
        help="the runner under test for swaysim scenarios: package.module:function or "
        "path/to/file.py:function (relative to the ini file); default: run_suite",
    )
    parser.addini(
        INI_SYS_PATH_RUNNERS,
        type="bool",
        default=False,
        help="let a scenario's runner = 'module:function' come from sys.path, not only from "
        "the scenario's own folder (only for scenario files you trust: their runner is code)",
    )
    group = parser.getgroup("swaysim")
    group.addoption(
        SEED_OPTION,
        type=int,
        default=None,
        metavar="SEED",
        help="run every collected swaysim scenario with this seed instead of its own",
    )
    group.addoption(
        JITTER_OPTION,
        type=int,
        default=None,
        metavar="SEED",
        help="chaos scheduling: run every collected swaysim scenario with this "
        "schedule_jitter seed (extra checkpoints and tiny sleeps at op boundaries)",
    )
    group.addoption(
        RUNNER_OPTION,
        default=None,
        metavar="SPEC",
        help="the runner under test for every collected swaysim scenario (and the "
        "swaysim_runner fixture): package.module:function or path/to/file.py:function; "
        "overrides the swaysim_runner ini option; default: the reference runner run_suite",
    )
    _add_dlm_sway_options(parser, group)


def _add_dlm_sway_options(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    """The switch that replaces dlm-sway's dummy with swaysim's drop-in, and its settings."""
    parser.addini(
        INI_DLM_SWAY,
        type="bool",
        default=False,
        help="replace dlm-sway's DummyDifferentialBackend with swaysim's drop-in "
        "(swaysim.dlm_sway) for the whole session, as --swaysim-dlm-sway does",
    )
    parser.addini(
        INI_DLM_SWAY_LOOP,
        type="string",
        default="",
        help="the event loop the drop-in's bridge runs: asyncio (default) or trio",
    )
    parser.addini(
        INI_DLM_SWAY_BACKEND,
        type="string",
        default="",
        help="the drop-in's latency, faults and other [backend] keys: a scenario file "
        "(its [backend] table and seed) or inline TOML of [backend] keys",
    )
    group.addoption(
        DLM_SWAY_OPTION,
        action="store_true",
        default=None,
        help="replace dlm-sway's DummyDifferentialBackend with swaysim's drop-in for the "
        "whole session (run dlm-sway's own tests, or yours, through swaysim)",
    )
    group.addoption(
        DLM_SWAY_LOOP_OPTION,
        choices=("asyncio", "trio"),
        default=None,
        help="the event loop of the drop-in's bridge (default asyncio; the "
        "swaysim_dlm_sway fixture runs each test on both unless this is given)",
    )
    group.addoption(
        DLM_SWAY_BACKEND_OPTION,
        default=None,
        metavar="TOML",
        help="the drop-in's [backend] keys (latency, faults, exclusivity...): a scenario "
        "file, whose [backend] table and seed are used, or inline TOML such as "
        "'faults.rules = [{kind = \"transient\", probability = 0.1}]'; "
        "--swaysim-seed and --swaysim-jitter apply too",
    )
    group.addoption(
        DLM_SWAY_OP_TIMEOUT_OPTION,
        type=float,
        default=None,
        metavar="SECONDS",
        help="bound every op of the drop-in to this many loop seconds (a hung op then raises "
        "TimeoutError in the caller instead of blocking forever)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; a negative seed option is a usage error, reported once."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(virtual_time=True, loops=('asyncio', 'trio'), backend={{}}): run an async "
        "test through anyio once per event loop, on a fresh virtual clock unless "
        "virtual_time=False; backend= takes a scenario's [backend] keys for the "
        "swaysim_backend fixture.",
    )
    for option in (SEED_OPTION, JITTER_OPTION):
        value = config.getoption(option, default=None)
        if value is not None and value < 0:
            raise pytest.UsageError(f"{option}={value} must be an integer >= 0")


def runner_under_test(config: pytest.Config) -> RunnerUnderTest:
    """The runner under test this session names (``--swaysim-runner``, else the ini option).

    Resolved once per session, on first use (importing it runs the user's code, so a
    session that runs no scenario never does); a bad spec is a usage error.
    """
    found = config.stash.get(_RUNNER, None)
    if found is not None:
        return found
    from swaysim._scenario.under_test import resolve_runner
    from swaysim.errors import InvalidArgumentError

    spec: str | None = config.getoption(RUNNER_OPTION, default=None)
    where = RUNNER_OPTION
    if not spec:
        spec = str(config.getini(INI_RUNNER) or "").strip() or None
        where = f"ini option {INI_RUNNER}"
        if spec is not None and config.inipath is not None and ".py:" in spec:
            location, _, function = spec.rpartition(":")
            spec = f"{(config.inipath.parent / location)}:{function}"
    try:
        found = config.stash[_RUNNER] = resolve_runner(spec)
    except InvalidArgumentError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Make marked coroutine tests request ``anyio_backend``, so anyio runs them."""
    if not isinstance(collector, pytest.Module | pytest.Class):
        return
    if collector.istestfunction(obj, name) and claim(collector, obj) is not None:
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
    definition = metafunc.definition
    if "anyio_backend" not in metafunc.fixturenames or not isinstance(
        definition.parent, pytest.Collector
    ):
        return
    found = claim(definition.parent, definition.obj)
    if found is None:
        return
    loops, virtual_time = _loops_from(found.mark)
    values = [(loop, _LoopOptions(loop, virtual_time=virtual_time)) for loop in loops]
    definition.add_marker(pytest.mark.parametrize("anyio_backend", values, ids=list(loops)))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Take marked tests back from pytest-asyncio and pytest-trio once they have collected.

    Last, so that whatever their collection hooks did (pytest-trio's
    ``trio_mode`` marks tests here), swaysim has the final word.
    """
    for index, item in enumerate(items):
        if not isinstance(item, pytest.Function) or isinstance(item, SwaysimFunction):
            continue
        parent = item.parent
        found = claim(parent, item.function) if isinstance(parent, pytest.Collector) else None
        if found is not None:
            items[index] = take_over(item, found)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Remember whose fixtures are being set up, for :func:`pytest_fixture_setup`."""
    item.config.stash[_RUNNING] = item
    try:
        return (yield)
    finally:
        del item.config.stash[_RUNNING]


def _loop_options(item: pytest.Item) -> tuple[str, _LoopOptions] | None:
    """The loop and options swaysim chose for a marked test's run, if it is one."""
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("anyio_backend") if callspec is not None else None
    if isinstance(backend, tuple) and len(backend) == 2 and isinstance(backend[1], _LoopOptions):
        return backend[0], backend[1]
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a marked test that cannot run on its loop; else give it a fresh clock.

    Both before any of its fixtures runs.
    """
    if not isinstance(item, SwaysimFunction):
        return
    if item.conflict is not None:
        pytest.fail(item.conflict, pytrace=False)
    if registered_anyio_plugin(item.config) is None:
        pytest.fail(
            f"@pytest.mark.{MARKER}: {item.name} runs through anyio's pytest plugin, which "
            "is disabled in this session (-p no:anyio): remove that option",
            pytrace=False,
        )
    chosen = _loop_options(item)
    if chosen is not None:
        chosen[1].refresh()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """A marked test's async fixtures run on its loop, whatever other plugins would do."""
    if not isinstance(request.config.stash.get(_RUNNING, None), SwaysimFunction):
        return (yield)
    with async_fixture_on_anyio(fixturedef, request):
        return (yield)


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
    chosen = _loop_options(pyfuncitem)
    test = pyfuncitem.obj
    if chosen is None or not isinstance(pyfuncitem, SwaysimFunction):
        return (yield)
    if not inspect.iscoroutinefunction(test):
        if hasattr(test, "hypothesis"):
            return (yield)
        pytest.fail(taken_over(pyfuncitem, test), pytrace=False)
    loop, options = chosen
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


@pytest.fixture
def swaysim_backend(request: pytest.FixtureRequest) -> AsyncDummyDifferentialBackend:
    """A fresh backend for this test, from ``@pytest.mark.swaysim(backend={...})``.

    The table takes the keys of a scenario's ``[backend]`` as Python values
    (``exclusivity``, ``latency``, ``faults``, ``base``/``ft`` canned answers...);
    plan seeds default to 0. Without the marker (or the ``backend`` argument) it is
    a plain exclusive backend. A bad table fails the test with the loader's
    one-line message.
    """
    from swaysim._scenario.build import backend_from_table
    from swaysim.errors import ScenarioError

    marker = request.node.get_closest_marker(MARKER)
    table = marker.kwargs.get("backend", {}) if marker is not None else {}
    try:
        return backend_from_table(table, source=f"@pytest.mark.{MARKER}(backend=...)")
    except ScenarioError as exc:
        pytest.fail("\n".join(exc.problems), pytrace=False)


@pytest.fixture
def swaysim_runner(request: pytest.FixtureRequest) -> Callable[..., object]:
    """The runner under test: what ``--swaysim-runner`` (or the ``swaysim_runner`` ini
    option) names, else the reference runner :func:`~swaysim.run_suite`.

    For tests that drive the scenario library from Python::

        def test_library(swaysim_runner):
            for check in check_scenario(load_scenario("scenarios/x.toml"), runner=swaysim_runner):
                assert check.ok, check.failure_report()
    """
    return runner_under_test(request.config).function
