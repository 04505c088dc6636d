"""swaysim's marker, fixtures and scenario items next to other async pytest plugins.

Each configuration runs one subprocess pytest session in a temporary project
with that plugin installed (see ``plugin_envs``): the marked test must run once
per loop, on that loop (``sniffio``), on a virtual clock (an hour of sleep in
well under a second), with its async fixtures on the same loop; the plugin's
own unmarked tests must still pass on its loop; the scenario items must give
the same results as anywhere else.

pytest-asyncio 0.26 (its previous major) requires pytest < 9, so it runs with
pytest 8.4.2, the newest it accepts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

import swaysim
from plugin_envs import plugin_dir
from swaysim._pytest.scenarios import results_digest

if TYPE_CHECKING:
    from pathlib import Path

pytest_plugins = ["pytester"]

PLUGIN_ARGS = ("-p", "no:looptime_plugin", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
ASYNCIO_1 = ("pytest-asyncio==1.5.0",)
ASYNCIO_0 = ("pytest-asyncio==0.26.0", "pytest==8.4.2")
TRIO = ("pytest-trio==0.8.0",)
# pytest-asyncio warns when this is unset; a project using it sets it.
LOOP_SCOPE = "asyncio_default_fixture_loop_scope = function\n"

PLAIN_FIXTURE = """
import anyio
import pytest
import sniffio

@pytest.fixture
async def shared():
    await anyio.sleep(0)
    return sniffio.current_async_library()
"""

ASYNCIO_STRICT_FIXTURE = PLAIN_FIXTURE.replace(
    "@pytest.fixture", "@pytest_asyncio.fixture"
).replace("import pytest", "import pytest_asyncio")
ASYNCIO_AUTO_TEST = """
import sniffio

async def test_unmarked(shared):
    assert sniffio.current_async_library() == shared == "asyncio"
"""
ASYNCIO_STRICT_TEST = """
import pytest
import sniffio

@pytest.mark.asyncio
async def test_unmarked(shared):
    assert sniffio.current_async_library() == shared == "asyncio"
"""

MARKED = """
import time

import anyio
import pytest
import sniffio


@pytest.fixture
async def warm():
    await anyio.sleep(60)
    yield anyio.current_time()
    await anyio.sleep(1)


def clock_kind():
    if sniffio.current_async_library() == "trio":
        import trio

        return type(trio.lowlevel.current_clock()).__name__
    import asyncio

    return type(asyncio.get_running_loop()).__name__


@pytest.mark.swaysim(
    backend={
        "exclusivity": "strict",
        "latency": {"default": {"model": "constant", "seconds": 30}},
    }
)
async def test_marked(swaysim_backend, warm, shared, anyio_backend_name):
    ran_on = sniffio.current_async_library()
    async with swaysim_backend.as_base() as base:
        await base.next_token_dist("hello")
    wall = time.perf_counter()
    await anyio.sleep(3600)
    wall = time.perf_counter() - wall
    print(
        f"MATRIX {anyio_backend_name}: ran_on={ran_on} fixture_on={shared} "
        f"clock={clock_kind()} virtual={anyio.current_time():g} wall={wall:.4f}"
    )
    assert ran_on == shared == anyio_backend_name
    assert warm == 60
    assert anyio.current_time() == 60 + 30 + 3600
    assert wall < 5
"""

SCENARIO = """\
description = "an hour of latency, in virtual time"
seed = 3
[backend.latency]
default = { model = "constant", seconds = 900 }
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["a"]
[expect]
verdicts = { dkl = "PASS" }
makespan = 3600.0
"""


@dataclass(frozen=True)
class Setup:
    """A project's other async plugin: what to install, its ini, its own tests."""

    requirements: tuple[str, ...]
    ini: str
    conftest: str
    unmarked: str
    unmarked_passed: int
    header: tuple[str, ...] = ()
    # (entry point, module): load the plugin after every installed one instead
    # (PYTEST_PLUGINS), so that hook order cannot be what makes swaysim win.
    registered_last: tuple[str, str] | None = None


SETUPS = {
    "no other plugin": Setup(
        (),
        "",
        PLAIN_FIXTURE,
        """
import pytest
import sniffio

def test_sync():
    pass

@pytest.mark.anyio
async def test_anyio_marked(shared, anyio_backend_name):
    assert sniffio.current_async_library() == shared == anyio_backend_name
""",
        unmarked_passed=3,
    ),
    "anyio plugin, auto mode": Setup(
        (),
        "anyio_mode = auto\n",
        PLAIN_FIXTURE,
        """
import sniffio

async def test_unmarked(shared, anyio_backend_name):
    assert sniffio.current_async_library() == shared == anyio_backend_name
""",
        unmarked_passed=2,
    ),
    "pytest-asyncio 1.5 auto": Setup(
        ASYNCIO_1,
        "asyncio_mode = auto\n" + LOOP_SCOPE,
        PLAIN_FIXTURE,
        """
import asyncio
import sniffio

async def test_unmarked(shared):
    assert sniffio.current_async_library() == shared == "asyncio"
    assert type(asyncio.get_running_loop()).__name__ != "VirtualClockEventLoop"
""",
        unmarked_passed=1,
        header=("plugins: *asyncio-1.5.0*", "*mode=Mode.AUTO*"),
    ),
    "pytest-asyncio 1.5 auto, registered last": Setup(
        ASYNCIO_1,
        "asyncio_mode = auto\n" + LOOP_SCOPE,
        PLAIN_FIXTURE,
        ASYNCIO_AUTO_TEST,
        unmarked_passed=1,
        header=("*mode=Mode.AUTO*",),
        registered_last=("asyncio", "pytest_asyncio.plugin"),
    ),
    "pytest-asyncio 1.5 strict": Setup(
        ASYNCIO_1,
        "asyncio_mode = strict\n" + LOOP_SCOPE,
        ASYNCIO_STRICT_FIXTURE,
        ASYNCIO_STRICT_TEST,
        unmarked_passed=1,
        header=("plugins: *asyncio-1.5.0*", "*mode=Mode.STRICT*"),
    ),
    "pytest-asyncio 0.26 auto": Setup(
        ASYNCIO_0,
        "asyncio_mode = auto\n" + LOOP_SCOPE,
        PLAIN_FIXTURE,
        ASYNCIO_AUTO_TEST,
        unmarked_passed=1,
        header=("*pytest-8.4.2*", "plugins: *asyncio-0.26.0*", "*mode=Mode.AUTO*"),
    ),
    "pytest-asyncio 0.26 strict": Setup(
        ASYNCIO_0,
        "asyncio_mode = strict\n" + LOOP_SCOPE,
        ASYNCIO_STRICT_FIXTURE,
        ASYNCIO_STRICT_TEST,
        unmarked_passed=1,
        header=("*pytest-8.4.2*", "plugins: *asyncio-0.26.0*", "*mode=Mode.STRICT*"),
    ),
    "pytest-trio 0.8 trio_mode": Setup(
        TRIO,
        "trio_mode = true\n",
        PLAIN_FIXTURE,
        """
import sniffio
import trio

async def test_unmarked(shared):
    assert sniffio.current_async_library() == shared == "trio"
    assert trio.lowlevel.current_root_task() is not None
""",
        unmarked_passed=1,
        header=("plugins: *trio-0.8.0*",),
    ),
}


@pytest.fixture(scope="session")
def plugin_envs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the plugin folders are kept: pytest's cache, or this session's temp dir."""
    cache: pytest.Cache | None = getattr(request.config, "cache", None)
    if cache is not None:
        return cache.mkdir("swaysim-plugin-envs")
    return tmp_path_factory.mktemp("swaysim-plugin-envs")


def run_with(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    envs: Path,
    requirements: tuple[str, ...],
    *args: str,
    registered_last: tuple[str, str] | None = None,
) -> pytest.RunResult:
    """A subprocess pytest session in ``pytester``'s project, with ``requirements`` installed."""
    if requirements:
        monkeypatch.setenv("PYTHONPATH", str(plugin_dir(requirements, envs)))
    else:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    if registered_last is not None:
        entry_point, module = registered_last
        monkeypatch.setenv("PYTEST_PLUGINS", module)
        args = ("-p", f"no:{entry_point}", *args)
    return pytester.runpytest_subprocess(*PLUGIN_ARGS, *args, timeout=120)


def make_project(pytester: pytest.Pytester, ini: str, conftest: str, **files: str) -> None:
    # Inner runs time out long before an hour of real sleep could pass.
    pytester.makeini(f"[pytest]\n{ini}filterwarnings = error\ntimeout = 60\n")
    pytester.makeconftest(conftest)
    pytester.makepyfile(**files)


def scenario_digest(path: Path) -> str:
    """The scenario's results digest, from a run in this process with no other plugin around."""
    (check,) = swaysim.check_scenario(swaysim.load_scenario(path), ("asyncio",))
    return results_digest(check.run)


@pytest.mark.parametrize("setup", SETUPS.values(), ids=SETUPS.keys())
def test_marked_tests_and_scenarios_run_on_swaysims_loops_next_to(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, plugin_envs: Path, setup: Setup
) -> None:
    make_project(
        pytester, setup.ini, setup.conftest, test_marked=MARKED, test_unmarked=setup.unmarked
    )
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "hour.toml").write_text(SCENARIO)
    result = run_with(
        pytester,
        monkeypatch,
        plugin_envs,
        setup.requirements,
        "-s",
        "-v",
        "--junitxml=out.xml",
        registered_last=setup.registered_last,
    )
    result.assert_outcomes(passed=2 + 2 + setup.unmarked_passed)
    result.stdout.fnmatch_lines(list(setup.header), consecutive=False)
    for loop, clock in (("asyncio", "VirtualClockEventLoop"), ("trio", "MockClock")):
        result.stdout.fnmatch_lines(
            [f"*MATRIX {loop}: ran_on={loop} fixture_on={loop} clock={clock} virtual=3690 *"]
        )
    scenario_cases = [
        case
        for case in ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
        if case.get("name") in ("asyncio", "trio")
    ]
    assert len(scenario_cases) == 2
    digest = scenario_digest(pytester.path / "scenarios" / "hour.toml")
    for case in scenario_cases:
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert properties["virtual_seconds"] == "3600.0"
        assert properties["results"] == digest
        assert float(case.get("time", "inf")) < 5


def test_the_closest_mark_wins_and_two_on_one_level_fail_at_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, plugin_envs: Path
) -> None:
    make_project(
        pytester,
        "asyncio_mode = strict\n" + LOOP_SCOPE,
        "",
        test_module_asyncio="""
        import anyio
        import pytest
        import sniffio

        pytestmark = pytest.mark.asyncio

        async def test_plain():
            assert sniffio.current_async_library() == "asyncio"

        @pytest.mark.swaysim
        async def test_swaysims(anyio_backend_name):
            await anyio.sleep(3600)
            assert sniffio.current_async_library() == anyio_backend_name
            assert anyio.current_time() == 3600
        """,
        test_module_swaysim="""
        import asyncio
        import pytest

        pytestmark = pytest.mark.swaysim

        @pytest.mark.asyncio
        async def test_pytest_asyncios():
            assert type(asyncio.get_running_loop()).__name__ != "VirtualClockEventLoop"
        """,
        test_both="""
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.swaysim
        async def test_claimed_twice():
            raise AssertionError("never runs")
        """,
    )
    result = run_with(pytester, monkeypatch, plugin_envs, ASYNCIO_1, "-v")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_module_asyncio.py::test_plain PASSED*",
            "*test_module_asyncio.py::test_swaysims?asyncio? PASSED*",
            "*test_module_asyncio.py::test_swaysims?trio? PASSED*",
            "*test_module_swaysim.py::test_pytest_asyncios PASSED*",
        ],
        consecutive=False,
    )
    for loop in ("asyncio", "trio"):
        result.stdout.fnmatch_lines(
            [
                f"*@pytest.mark.swaysim: test_claimed_twice[[]{loop}[]] is also marked "
                "@pytest.mark.asyncio on the test itself, so pytest-asyncio would run it on its "
                "own loop: keep one of the two marks*"
            ]
        )
    assert "never runs" not in result.stdout.str()


def test_pytest_trio_marks_and_fixtures_next_to_marked_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, plugin_envs: Path
) -> None:
    make_project(
        pytester,
        "trio_mode = true\n",
        "",
        test_trio="""
        import anyio
        import pytest
        import sniffio
        from pytest_trio import trio_fixture

        @trio_fixture
        async def trio_only():
            return "trio"

        @pytest.mark.trio
        class TestTrioClass:
            async def test_plain(self):
                assert sniffio.current_async_library() == "trio"

            @pytest.mark.swaysim
            async def test_swaysims(self, anyio_backend_name):
                await anyio.sleep(3600)
                assert sniffio.current_async_library() == anyio_backend_name
                assert anyio.current_time() == 3600

        @pytest.mark.swaysim(loops=("trio",))
        async def test_with_a_trio_fixture(trio_only):
            raise AssertionError("never runs")

        @pytest.mark.swaysim(loops=("trio",))
        async def test_with_pytest_trios_nursery(nursery):
            raise AssertionError("never runs")
        """,
    )
    result = run_with(pytester, monkeypatch, plugin_envs, TRIO, "-v")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*fixture 'nursery' is a pytest-trio trio_fixture*"])
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.swaysim: fixture 'trio_only' is a pytest-trio trio_fixture, which "
            "only pytest-trio's own trio.run can set up; give test_with_a_trio_fixture[[]trio[]] "
            "a plain async @pytest.fixture instead*"
        ]
    )
    assert "never runs" not in result.stdout.str()
