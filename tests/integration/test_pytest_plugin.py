"""The ``swaysim`` pytest marker, exercised in fresh pytest sessions through ``pytester``."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# Inner sessions load plugins from entry points like the outer one. looptime's
# fails on async fixtures without pytest-asyncio; hypothesis's adds a second
# per session. Neither is needed here.
PLUGIN_ARGS = (
    "-p",
    "no:looptime_plugin",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
)


def run(
    pytester: pytest.Pytester, source: str, *args: str, mode: str = "strict"
) -> pytest.RunResult:
    pytester.makeini(f"[pytest]\nanyio_mode = {mode}\nfilterwarnings = error\n")
    pytester.makepyfile(source)
    return pytester.runpytest(*PLUGIN_ARGS, "-v", *args)


def test_a_marked_test_runs_on_both_loops_in_virtual_time(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import time
        import anyio
        import pytest

        @pytest.mark.swaysim
        async def test_a_day_passes(anyio_backend_name):
            wall = time.perf_counter()
            start = anyio.current_time()
            with anyio.fail_after(86_400 + 1):
                await anyio.sleep(86_400)
            assert anyio.current_time() - start == pytest.approx(86_400)
            assert time.perf_counter() - wall < 5
            print("ran on", anyio_backend_name)
        """,
        "-s",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_a_day_passes?asyncio? ran on asyncio*"])
    result.stdout.fnmatch_lines(["*test_a_day_passes?trio? ran on trio*"])


def test_loops_and_virtual_time_can_be_chosen(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import anyio
        import pytest

        @pytest.mark.swaysim(loops=("trio",))
        async def test_trio_only(anyio_backend_name, anyio_backend_options):
            assert anyio_backend_name == "trio"
            assert anyio_backend_options["clock"].autojump_threshold == 0

        @pytest.mark.swaysim(virtual_time=False)
        async def test_real_clock(anyio_backend_options):
            assert anyio_backend_options == {}
            start = anyio.current_time()
            await anyio.sleep(0.002)
            assert anyio.current_time() - start >= 0.002
        """,
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_trio_only?trio? PASSED*",
            "*test_real_clock?asyncio? PASSED*",
            "*test_real_clock?trio? PASSED*",
        ]
    )


def test_it_composes_with_parametrize_fixtures_and_classes(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import anyio
        import pytest

        @pytest.fixture
        async def warmed_up():
            await anyio.sleep(100)
            yield anyio.current_time()
            await anyio.sleep(100)

        @pytest.mark.swaysim
        class TestGroup:
            @pytest.mark.parametrize("seconds", [1, 2])
            async def test_fresh_clock_per_item(self, seconds, warmed_up):
                # Each item starts a fresh clock at zero, also on trio where
                # items share one parametrize value.
                assert warmed_up == pytest.approx(100)
                await anyio.sleep(seconds)
                assert anyio.current_time() == pytest.approx(100 + seconds)

            def test_sync_tests_are_left_alone(self):
                pass
        """,
    )
    result.assert_outcomes(passed=5)


def test_a_module_mark_applies_and_the_closest_mark_wins(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        pytestmark = pytest.mark.swaysim(loops=("asyncio",))

        async def test_module_default(anyio_backend_name):
            assert anyio_backend_name == "asyncio"

        @pytest.mark.swaysim(loops=("trio",))
        async def test_own_mark(anyio_backend_name):
            assert anyio_backend_name == "trio"
        """,
    )
    result.assert_outcomes(passed=2)


def test_it_overrides_a_conftest_anyio_backend_only_where_marked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(params=["asyncio"])
        def anyio_backend(request):
            return request.param
        """
    )
    result = run(
        pytester,
        """
        import pytest

        async def test_unmarked(anyio_backend):
            assert anyio_backend == "asyncio"

        @pytest.mark.swaysim
        async def test_marked(anyio_backend):
            assert isinstance(anyio_backend, tuple)
        """,
        mode="auto",
    )
    result.assert_outcomes(passed=3)


def test_a_loop_kept_alive_by_a_wider_scoped_fixture_fails_a_marked_test(
    pytester: pytest.Pytester,
) -> None:
    # anyio runs every test on the loop a module- or session-scoped async fixture holds;
    # without the check the [trio] item would pass on that asyncio loop in real time.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def anyio_backend():
            return "asyncio"

        @pytest.fixture(scope="module")
        async def pool():
            return "pool"
        """
    )
    pytester.makepyfile(
        test_zz_after="""
        import anyio
        import pytest

        @pytest.fixture
        async def warm():
            await anyio.sleep(5)

        @pytest.mark.swaysim
        async def test_marked_with_a_function_scoped_fixture(warm):
            assert anyio.current_time() == 5
        """
    )
    result = run(
        pytester,
        """
        import anyio
        import pytest

        async def test_unmarked(pool):
            assert pool == "pool"

        @pytest.mark.swaysim
        async def test_marked():
            await anyio.sleep(0.01)
        """,
        mode="auto",
    )
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_marked?asyncio? FAILED*",
            "*test_marked?trio? FAILED*",
            "*test_marked_with_a_function_scoped_fixture?asyncio? PASSED*",
            "*test_marked_with_a_function_scoped_fixture?trio? PASSED*",
            "*@pytest.mark.swaysim: test_marked?trio? must run on trio on a fresh virtual clock, "
            "but anyio ran it on an asyncio loop (_UnixSelectorEventLoop): a module- or "
            "session-scoped async fixture keeps anyio's event loop alive*",
        ]
    )


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("swaysim(loops=('curio',))", "*loops=('curio',)*must be a non-empty tuple*"),
        ("swaysim(loops='trio')", "*loops='trio'*"),
        ("swaysim(loops=())", "*loops=()*"),
        ("swaysim(virtual_time='yes')", "*virtual_time='yes'*True or False*"),
        ("swaysim(clock=1)", "*unknown argument(s) clock*"),
        ("swaysim('trio')", "*keyword arguments only*"),
    ],
)
def test_bad_marker_arguments_fail_collection_with_a_message(
    pytester: pytest.Pytester, mark: str, message: str
) -> None:
    result = run(
        pytester,
        f"""
        import pytest

        @pytest.mark.{mark}
        async def test_x():
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest(*PLUGIN_ARGS, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.swaysim(virtual_time=True, loops=*"])
    result.stdout.fnmatch_lines(["@pytest.mark.swaysim_scenario: a swaysim scenario file*"])


def test_a_plugin_that_takes_a_marked_test_for_its_own_runner_fails_it_with_one_line(
    pytester: pytest.Pytester,
) -> None:
    # What pytest-trio's trio_mode does to every coroutine test, by some other plugin.
    pytester.makeconftest(
        """
        import asyncio
        import inspect
        import pytest

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(item):
            test = item.obj
            if inspect.iscoroutinefunction(test):
                item.obj = lambda **kwargs: asyncio.run(test(**kwargs))
            yield
        """
    )
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.swaysim
        async def test_marked():
            raise AssertionError("never runs")
        """,
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.swaysim: conftest replaced test_marked?trio? with its own runner "
            "before swaysim could run it on its loop and clock*"
        ]
    )
    assert "never runs" not in result.stdout.str()


def test_without_anyios_plugin_a_marked_test_fails_with_one_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.swaysim(loops=("trio",))
        async def test_marked():
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN_ARGS, "-p", "no:anyio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.swaysim: test_marked[[]trio[]] runs through anyio's pytest plugin, "
            "which is disabled in this session (-p no:anyio): remove that option"
        ]
    )


def test_the_plugin_loads_nothing_heavy_for_a_project_that_does_not_use_it(
    pytester: pytest.Pytester,
) -> None:
    # Beyond ``import swaysim`` itself: the scenario loader and its pydantic
    # models, the CLI's rich and click, load only when a scenario or marked test does.
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish():
            heavy = ("pydantic", "rich", "click", "swaysim._scenario.load", "swaysim._cli")
            print("LOADED", [name for name in heavy if name in sys.modules])
        """
    )
    pytester.makepyfile(
        """
        async def helper():
            pass

        def test_plain():
            pass
        """
    )
    (pytester.path / "settings.toml").write_text("[tool]\nname = 'x'\n")
    # dlm-sway (a dev dependency) has a pytest plugin of its own that imports pydantic.
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:sway", "-s")
    result.assert_outcomes(passed=1)
    assert "LOADED []" in result.stdout.str()
