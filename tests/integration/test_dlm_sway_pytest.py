"""The dlm-sway switch and fixture in fresh pytest sessions; the drop-in's lifecycle in processes.

``pytest --swaysim-dlm-sway`` (or the ini option) replaces dlm-sway's dummy before test
modules import it, configured from the command line or a scenario's ``[backend]``; the
``swaysim_dlm_sway`` fixture does it for one test on each loop. Bad settings are usage
errors naming the key; without dlm-sway both say how to install it. A drop-in left open
never keeps the interpreter from exiting, even with a thread blocked on a hung op.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("dlm_sway", reason="dlm-sway (a dev dependency) is not installed")

import dlm_sway.backends.dummy as sway_dummy
from dlm_sway.backends.dummy import DummyResponses

import swaysim
from swaysim.dlm_sway import DummyDifferentialBackend, open_bridges

pytest_plugins = ["pytester"]

PLUGIN_ARGS = ("-p", "no:looptime_plugin", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
ORIGINAL = sway_dummy.DummyDifferentialBackend

USES_THE_DUMMY = """
    from dlm_sway.backends.dummy import DummyDifferentialBackend, DummyResponses

    def test_the_dummy_is_swaysims():
        backend = DummyDifferentialBackend(base=DummyResponses(), ft=DummyResponses())
        with backend.as_finetuned() as view:
            view.next_token_dist("q1")
        stats = backend.statistics()
        print("loop", backend.loop, "latency", stats.latency_seconds, "faults",
              dict(stats.faults_fired), "module", DummyDifferentialBackend.__module__)
"""


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(textwrap.dedent(source))
    return pytester.runpytest(*PLUGIN_ARGS, "-s", *args)


def test_the_switch_replaces_the_dummy_for_the_session(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        USES_THE_DUMMY,
        "--swaysim-dlm-sway",
        "--swaysim-dlm-sway-loop=trio",
        "--swaysim-dlm-sway-backend",
        'latency.default = {model = "constant", seconds = 2.5}',
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "swaysim: dlm-sway's DummyDifferentialBackend is swaysim's drop-in "
            "(loop=trio, latency)",
            "*loop trio latency 2.5 faults {} module swaysim._dlm_sway.backend*",
        ]
    )
    assert sway_dummy.DummyDifferentialBackend is ORIGINAL  # put back at the end
    assert open_bridges() == 0


def test_the_ini_option_takes_a_scenarios_backend_table_and_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".toml",
        chaos="""
        seed = 3
        [[backend.faults.rules]]
        name = "flaky"
        kind = "nan"
        views = ["ft"]
        [[probes]]
        kind = "delta_kl"
        name = "dkl"
        prompts = ["q1"]
        [expect]
        no_false_pass = true
        """,
    )
    pytester.makeini("[pytest]\nswaysim_dlm_sway = true\nswaysim_dlm_sway_backend = chaos.toml\n")
    result = _run(pytester, USES_THE_DUMMY)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*loop asyncio latency 0.0 faults {'flaky': 1} module*"])


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (
            'latency.default = {model = "constant", seconds = -1}',
            "*backend.latency.default.seconds*",
        ),
        ("faults.rules = [{kind = 'sometimes'}]", "*backend.faults.rules[[]0[]].kind*"),
        ("base.generations = {hi = 'hello'}", "*backend.base: canned answers come from the code*"),
        ("not toml at all", "*neither a scenario file (*.toml) nor inline TOML*"),
        ("missing.toml", "*no such scenario file*missing.toml"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, backend: str, message: str
) -> None:
    result = _run(
        pytester, USES_THE_DUMMY, "--swaysim-dlm-sway", "--swaysim-dlm-sway-backend", backend
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_fixture_runs_a_test_on_each_loop_and_restores_the_dummy(
    pytester: pytest.Pytester,
) -> None:
    result = _run(
        pytester,
        """
        import dlm_sway.backends.dummy as sway_dummy
        import pytest

        def test_each_loop(swaysim_dlm_sway):
            assert sway_dummy.DummyDifferentialBackend is swaysim_dlm_sway
            backend = swaysim_dlm_sway()
            with backend.as_base():
                pass
            print("ran on", backend.loop)

        @pytest.mark.swaysim(loops=("trio",), backend={"faults": {"rules": [{"kind": "fatal"}]}})
        def test_configured(swaysim_dlm_sway):
            backend = swaysim_dlm_sway()
            assert backend.loop == "trio"
            assert backend.preflight_finite_check()[1].startswith("preflight raised Injected")

        def test_restored():
            assert sway_dummy.DummyDifferentialBackend.__module__ == "dlm_sway.backends.dummy"
        """,
        "-v",
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*test_each_loop?asyncio? ran on asyncio*", "*test_each_loop?trio? ran on trio*"]
    )
    assert open_bridges() == 0


def test_without_dlm_sway_the_switch_and_the_module_say_how_to_install_it(
    pytester: pytest.Pytester,
) -> None:
    hide = "import sys\nsys.modules['dlm_sway'] = None\n"
    pytester.makeconftest(hide)
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--swaysim-dlm-sway")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--swaysim-dlm-sway needs dlm-sway*pip install 'dlm-sway==0.1.0'*"]
    )
    code = hide + (
        "try:\n    import swaysim.dlm_sway\n"
        "except ModuleNotFoundError as exc:\n    print(type(exc).__name__, exc.name, exc)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.startswith(
        "MissingDependencyError dlm_sway swaysim.dlm_sway needs dlm-sway"
    )


def test_a_garbage_collected_drop_in_closes_its_bridge() -> None:
    before = open_bridges()
    backend = DummyDifferentialBackend(base=DummyResponses(), ft=DummyResponses(), loop="trio")
    with backend.as_base() as view:
        view.logprob_of("q", "a")
    assert open_bridges() == before + 1
    del backend, view
    gc.collect()
    assert open_bridges() == before


EXITS_WITH_A_BLOCKED_THREAD = """
import threading
import swaysim
from swaysim.dlm_sway import DummyDifferentialBackend

faults = swaysim.FaultPlan((swaysim.FaultRule("hang", views=("ft",)),))
backend = DummyDifferentialBackend(loop="{loop}", faults=faults)
started = threading.Event()

def blocked():
    with backend.as_finetuned() as view:
        started.set()
        try:
            view.next_token_dist("hangs forever")
        except swaysim.BridgeError as exc:
            print("released:", type(exc).__name__, flush=True)

threading.Thread(target=blocked).start()   # not a daemon: exit waits for it
started.wait()
print("main thread done", flush=True)
"""


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_the_interpreter_exits_with_a_thread_blocked_on_a_hung_op(loop: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", EXITS_WITH_A_BLOCKED_THREAD.replace("{loop}", loop)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["main thread done", "released: BridgeError"]


def test_the_module_exports_what_it_documents() -> None:
    assert swaysim.dlm_sway.__all__ == sorted(swaysim.dlm_sway.__all__)
    for name in swaysim.dlm_sway.__all__:
        assert getattr(swaysim.dlm_sway, name) is not None
    assert swaysim.dlm_sway.DummyResponses is DummyResponses
    assert swaysim.dlm_sway._DummyView is sway_dummy._DummyView  # stands in for the module
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = swaysim.dlm_sway.nope
