"""Scenario files as pytest items, in fresh pytest sessions through ``pytester``."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from swaysim.scenario import parse_scenario, run_scenario

pytest_plugins = ["pytester"]

# Inner sessions load entry-point plugins like the outer one (swaysim's brings the
# scenario collection with it); these others are not needed.
PLUGIN_ARGS = (
    "-p",
    "no:looptime_plugin",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
)

GOOD = """\
description = "does it pass?"
seed = 3
[backend.latency]
default = { model = "constant", seconds = 0.5 }
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["a"]
[expect]
verdicts = { dkl = "PASS" }
makespan = 2.0    # (2 preflight + 2 probe) forward passes x 0.5 s
identical_across_loops = true
"""

BAD = GOOD.replace("makespan = 2.0", "makespan = 3.0")


def make(pytester: pytest.Pytester, files: dict[str, str], ini: str = "") -> None:
    pytester.makeini(f"[pytest]\nfilterwarnings = error\n{ini}")
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN_ARGS, *args)


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_one_item_per_scenario_and_loop_and_nothing_else(pytester: pytest.Pytester) -> None:
    make(
        pytester,
        {
            "scenarios/good.toml": GOOD,
            "scenarios/nested/also.toml": GOOD,
            "scenarios/pyproject.toml": "[project]\nname = 'x'\n",
            "pyproject.toml": "[project]\nname = 'x'\n",
            "other/unrelated.toml": "key = 1\n",
        },
    )
    result = run(pytester, "--collect-only", "-q")
    assert collected(result) == [
        "scenarios/good.toml::asyncio",
        "scenarios/good.toml::trio",
        "scenarios/nested/also.toml::asyncio",
        "scenarios/nested/also.toml::trio",
    ]


def test_passing_and_failing_scenarios(pytester: pytest.Pytester) -> None:
    make(pytester, {"scenarios/good.toml": GOOD, "scenarios/bad.toml": BAD})
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*scenario 'bad' (scenarios/bad.toml) failed on trio:",
            "*  expect.makespan: expected 3 s, observed 2 s",
            "*  seed: 3",
            "*  replay: swaysim run scenarios/bad.toml --backend trio --seed 3",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_an_invalid_file_is_a_one_line_collection_error(pytester: pytest.Pytester) -> None:
    make(
        pytester,
        {
            "scenarios/good.toml": GOOD,
            "scenarios/broken.toml": GOOD.replace("seed = 3", "seed = 'x'"),
            "scenarios/unparsable.toml": GOOD.replace("[expect]", "[expect"),
        },
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting scenarios/broken.toml*"])
    output = result.stdout.str()
    assert 'scenarios/broken.toml: seed: "x" is not allowed: must be an integer' in output
    assert "scenarios/unparsable.toml: line 9, column 8: invalid TOML:" in output
    assert "Traceback" not in output
    assert "_scenario/" not in output


def test_a_projects_own_toml_files_in_a_scenarios_folder_are_left_alone(
    pytester: pytest.Pytester,
) -> None:
    make(
        pytester,
        {
            "scenarios/good.toml": GOOD,
            "scenarios/load/locust.toml": "[load]\nusers = 10\nexpected_rps = 5\n",
            "scenarios/template.toml": "users = {{ users }}\n",
        },
    )
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = run(pytester, "-q")
    result.assert_outcomes(passed=3)
    assert run(pytester, "scenarios/template.toml").ret == pytest.ExitCode.INTERRUPTED


def test_a_file_named_on_the_command_line_is_collected(pytester: pytest.Pytester) -> None:
    make(pytester, {"elsewhere/good.toml": GOOD, "elsewhere/ignored.toml": BAD})
    assert collected(run(pytester, "--collect-only", "-q")) == []
    result = run(pytester, "elsewhere/good.toml")
    result.assert_outcomes(passed=2)


def test_the_ini_option_names_the_folders(pytester: pytest.Pytester) -> None:
    make(
        pytester,
        {"library/good.toml": GOOD, "scenarios/bad.toml": BAD},
        ini="swaysim_scenario_dirs =\n    library\n",
    )
    result = run(pytester, "--collect-only", "-q")
    assert collected(result) == ["library/good.toml::asyncio", "library/good.toml::trio"]


def test_the_seed_option_overrides_every_scenario(pytester: pytest.Pytester) -> None:
    make(pytester, {"scenarios/bad.toml": BAD})
    result = run(pytester, "--swaysim-seed", "41", "-k", "asyncio")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        ["*  seed: 41", "*  replay: swaysim run scenarios/bad.toml --backend asyncio --seed 41"]
    )


def test_the_marker_selects_scenario_items(pytester: pytest.Pytester) -> None:
    make(pytester, {"scenarios/good.toml": GOOD})
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = run(pytester, "-m", "not swaysim_scenario")
    result.assert_outcomes(passed=1, deselected=2)


def test_junit_properties_carry_seed_virtual_time_and_replay(pytester: pytest.Pytester) -> None:
    make(pytester, {"scenarios/good.toml": GOOD})
    result = run(pytester, "--junitxml=out.xml", "-o", "junit_family=xunit1")
    result.assert_outcomes(passed=2)
    case = ET.parse(pytester.path / "out.xml").getroot().iter("testcase").__next__()
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    results = run_scenario(parse_scenario(GOOD), "asyncio").fingerprint
    assert properties == {
        "seed": "3",
        "virtual_seconds": "2.0",
        "replay": "swaysim run scenarios/good.toml --backend asyncio --seed 3",
        "results": hashlib.sha256(results.encode()).hexdigest()[:16],
    }


def test_items_stand_alone_under_xdist(pytester: pytest.Pytester) -> None:
    make(pytester, {"scenarios/good.toml": GOOD, "scenarios/bad.toml": BAD})
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=2, failed=2)


def test_the_marker_configures_the_backend_fixture(pytester: pytest.Pytester) -> None:
    make(pytester, {})
    pytester.makepyfile(
        test_backend="""
        import anyio
        import pytest

        @pytest.mark.swaysim(
            backend={
                "exclusivity": "strict",
                "latency": {"default": {"model": "constant", "seconds": 1.5}},
                "faults": {"rules": [{"kind": "nan", "views": ("ft",)}]},
            }
        )
        async def test_configured(swaysim_backend):
            assert swaysim_backend.exclusivity == "strict"
            start = anyio.current_time()
            async with swaysim_backend.as_base() as base:
                await base.next_token_dist("p")
            assert anyio.current_time() - start == 1.5
            ok, reason = await swaysim_backend.preflight_finite_check()
            assert not ok and reason.startswith("ft view produced")

        def test_plain(swaysim_backend):
            assert swaysim_backend.latency is None and swaysim_backend.faults is None
        """
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*test_configured?asyncio? PASSED*", "*test_configured?trio? PASSED*"]
    )


def test_a_bad_backend_table_fails_with_one_line(pytester: pytest.Pytester) -> None:
    make(pytester, {})
    pytester.makepyfile(
        test_backend="""
        import pytest

        @pytest.mark.swaysim(backend={"latency": {"default": {"model": "lognormal", "median": 1}}})
        def test_bad(swaysim_backend):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.swaysim(backend=...): backend.latency.default.sigma: "
            "required key is missing"
        ]
    )
    assert "Traceback" not in result.stdout.str()
