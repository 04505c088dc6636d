"""pytest: dlm-sway's dummy replaced by swaysim's drop-in, for a session or for one test.

- ``--swaysim-dlm-sway`` (or ``swaysim_dlm_sway = true`` in the ini file):
  for the whole session, ``dlm_sway.backends.dummy.DummyDifferentialBackend``
  is :class:`swaysim.dlm_sway.DummyDifferentialBackend`, configured from the
  command line, before any test module is imported. So ``pytest
  --swaysim-dlm-sway`` in dlm-sway's own test folder runs its suite through
  swaysim, and so does any project's suite that builds dlm-sway's dummy.
- the ``swaysim_dlm_sway`` fixture: the configured drop-in class for one
  test, which also replaces dlm-sway's dummy while the test runs; the test
  runs once per loop (``[asyncio]``, ``[trio]``) unless
  ``--swaysim-dlm-sway-loop`` or ``@pytest.mark.swaysim(loops=...)`` narrows
  it, and ``@pytest.mark.swaysim(backend={...})`` configures it.

Configuration: ``--swaysim-dlm-sway-loop``, ``--swaysim-dlm-sway-backend``
(a scenario file, whose ``[backend]`` table and seed are used, or inline TOML
of ``[backend]`` keys), ``--swaysim-dlm-sway-op-timeout``, and the session's
``--swaysim-seed`` and ``--swaysim-jitter``. Every bridge still open is
closed when the session (or the fixture's test) ends.

Nothing here imports dlm-sway unless the switch is on or the fixture is used;
without dlm-sway installed either is a usage error saying how to install it.
"""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from swaysim._pytest.other_plugins import MARKER
from swaysim._pytest.plugin import (
    DLM_SWAY_BACKEND_OPTION,
    DLM_SWAY_LOOP_OPTION,
    DLM_SWAY_OP_TIMEOUT_OPTION,
    DLM_SWAY_OPTION,
    INI_DLM_SWAY,
    INI_DLM_SWAY_BACKEND,
    INI_DLM_SWAY_LOOP,
    JITTER_OPTION,
    SEED_OPTION,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

_SESSION: Final = pytest.StashKey[contextlib.ExitStack]()
_DESCRIPTION: Final = pytest.StashKey[str]()
_LOOPS: Final = ("asyncio", "trio")
FIXTURE: Final = "swaysim_dlm_sway"


def session_enabled(config: pytest.Config) -> bool:
    """Whether ``--swaysim-dlm-sway`` or the ini option asks for the session-wide swap."""
    return bool(config.getoption(DLM_SWAY_OPTION, default=None) or config.getini(INI_DLM_SWAY))


def _chosen_loop(config: pytest.Config) -> str | None:
    """The loop the command line or the ini file chose (None: not chosen)."""
    loop: str | None = config.getoption(DLM_SWAY_LOOP_OPTION, default=None)
    if loop is None:
        loop = str(config.getini(INI_DLM_SWAY_LOOP) or "").strip() or None
    if loop is not None and loop not in _LOOPS:
        raise pytest.UsageError(f"{INI_DLM_SWAY_LOOP}={loop!r}: expected asyncio or trio")
    return loop


def _table_from_text(text: str, where: str, base: Path) -> tuple[Mapping[str, object], int | None]:
    """The ``[backend]`` table (and a scenario's seed) a backend option names."""
    candidate = Path(text).expanduser()
    if text.endswith(".toml"):
        from swaysim._scenario.load import load_scenario
        from swaysim.errors import ScenarioError

        path = candidate if candidate.is_absolute() else base / candidate
        if not path.is_file():
            raise pytest.UsageError(f"{where}: no such scenario file: {path}")
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
        table = scenario.spec.backend.model_dump(exclude_unset=True, mode="json")
        return table, scenario.seed
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(
            f"{where}={text!r}: neither a scenario file (*.toml) nor inline TOML of "
            f"[backend] keys ({exc})"
        ) from None


def _command_line_table(config: pytest.Config) -> tuple[Mapping[str, object], int | None]:
    text = config.getoption(DLM_SWAY_BACKEND_OPTION, default=None)
    if text:
        return _table_from_text(text, DLM_SWAY_BACKEND_OPTION, Path.cwd())
    text = str(config.getini(INI_DLM_SWAY_BACKEND) or "").strip()
    if text:
        base = config.inipath.parent if config.inipath is not None else Path.cwd()
        return _table_from_text(text, f"ini option {INI_DLM_SWAY_BACKEND}", base)
    return {}, None


def drop_in_options(
    config: pytest.Config,
    *,
    loop: str,
    table: Mapping[str, object] | None = None,
    virtual_time: bool = True,
) -> dict[str, Any]:
    """The drop-in's keyword options from the command line, or from ``table`` when given.

    Plan seeds default to ``--swaysim-seed``, else the scenario's seed, else 0;
    ``--swaysim-jitter`` sets ``schedule_jitter``. A bad table is a usage error
    naming the key, as a scenario file's problems are named.
    """
    from swaysim._scenario.build import backend_options, backend_spec_from_table
    from swaysim.errors import ScenarioError

    where = f"@pytest.mark.{MARKER}(backend=...)" if table is not None else DLM_SWAY_BACKEND_OPTION
    scenario_seed = None
    if table is None:
        table, scenario_seed = _command_line_table(config)
    seed = config.getoption(SEED_OPTION, default=None)
    seed = seed if seed is not None else scenario_seed if scenario_seed is not None else 0
    try:
        spec = backend_spec_from_table(table, source=where)
        options = backend_options(
            spec, seed, source=where, schedule_jitter=config.getoption(JITTER_OPTION, default=None)
        )
    except ScenarioError as exc:
        raise pytest.UsageError(str(exc)) from None
    canned = sorted(key for key in ("base", "ft") if key in options)
    if canned:
        raise pytest.UsageError(
            f"{where}: backend.{canned[0]}: canned answers come from the code that builds the "
            "dummy (DummyResponses); remove them from the table"
        )
    options.update(loop=loop, virtual_time=virtual_time)
    op_timeout = config.getoption(DLM_SWAY_OP_TIMEOUT_OPTION, default=None)
    if op_timeout is not None:
        options["op_timeout"] = op_timeout
    return options


def _drop_in_class(options: Mapping[str, Any], where: str) -> type:
    try:
        from swaysim._dlm_sway.swap import configured_drop_in
    except ImportError as exc:
        raise pytest.UsageError(
            f"{where} needs dlm-sway, which is not installed ({exc}); pip install 'dlm-sway==0.1.0'"
        ) from None
    from swaysim.errors import InvalidArgumentError

    try:
        return configured_drop_in(**options)
    except InvalidArgumentError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def _describe(options: Mapping[str, Any]) -> str:
    parts = [f"loop={options['loop']}"]
    for key in ("latency", "faults", "schedule_jitter", "op_timeout", "exclusivity"):
        if options.get(key) is not None:
            parts.append(key)
    return ", ".join(parts)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """The session-wide swap, before any test module imports dlm-sway's dummy."""
    if not session_enabled(config):
        return
    options = drop_in_options(config, loop=_chosen_loop(config) or "asyncio")
    drop_in = _drop_in_class(options, DLM_SWAY_OPTION)
    from swaysim._dlm_sway.swap import replace_dummy

    stack = contextlib.ExitStack()
    stack.enter_context(replace_dummy(drop_in))
    config.stash[_SESSION] = stack
    config.stash[_DESCRIPTION] = _describe(options)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put dlm-sway's dummy back and close every drop-in bridge still open."""
    stack = config.stash.get(_SESSION, None)
    if stack is not None:
        del config.stash[_SESSION]
        stack.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say that dlm-sway's dummy is swaysim's drop-in in this session, and how it is set up."""
    description = config.stash.get(_DESCRIPTION, None)
    if description is None:
        return None
    return f"swaysim: dlm-sway's DummyDifferentialBackend is swaysim's drop-in ({description})"


def _marker_loops(metafunc: pytest.Metafunc) -> tuple[str, ...]:
    from swaysim._pytest.plugin import _loops_from

    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is not None and "loops" in marker.kwargs:
        return _loops_from(marker)[0]
    chosen = _chosen_loop(metafunc.config)
    return (chosen,) if chosen is not None else _LOOPS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test using the fixture runs once per loop of the drop-in's bridge."""
    if FIXTURE not in metafunc.fixturenames:
        return
    callspecs = getattr(metafunc, "_calls", [])
    if any(FIXTURE in callspec.params for callspec in callspecs):
        return
    loops = _marker_loops(metafunc)
    metafunc.parametrize(FIXTURE, loops, indirect=True, ids=list(loops))


@pytest.fixture
def swaysim_dlm_sway(request: pytest.FixtureRequest) -> Iterator[type]:
    """swaysim's drop-in for dlm-sway's dummy, configured for this test, on its loop.

    While the test runs, dlm-sway's ``DummyDifferentialBackend`` (looked up at
    call time, as dlm-sway's own code does) is this class too; afterwards
    dlm-sway's class is back and every bridge the test opened is closed.
    ``@pytest.mark.swaysim(backend={...})`` gives the ``[backend]`` keys
    (latency, faults...), else the command line's apply.
    """
    loop: str = getattr(request, "param", None) or _chosen_loop(request.config) or "asyncio"
    marker = request.node.get_closest_marker(MARKER)
    table = marker.kwargs.get("backend") if marker is not None else None
    virtual_time = marker.kwargs.get("virtual_time", True) if marker is not None else True
    try:
        options = drop_in_options(request.config, loop=loop, table=table, virtual_time=virtual_time)
        drop_in = _drop_in_class(options, f"the {FIXTURE} fixture")
    except pytest.UsageError as exc:
        pytest.fail(str(exc), pytrace=False)
    from swaysim._dlm_sway.swap import replace_dummy

    with replace_dummy(drop_in):
        yield drop_in
