"""The ``swaysim`` command line: exit codes, the summary, JSON and JUnit output, run dirs."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from swaysim._cli.main import cli

ROOT = Path(__file__).parents[2]

PASSING = """\
description = "does it pass?"
seed = 4
[backend.latency]
default = { model = "constant", seconds = 0.25 }
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["a", "b"]
[expect]
verdicts = { dkl = "PASS" }
makespan = 1.5    # (2 preflight + 2 x 2 prompts) x 0.25 s
gate_free = true
"""

FAILING = PASSING.replace("makespan = 1.5", "makespan = 1.0").replace("seed = 4", "seed = 9")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (
        ("passing", PASSING),
        ("failing", FAILING),
        ("invalid", PASSING.replace("seed = 4", "seed = -1")),
    ):
        out[name] = tmp_path / f"{name}.toml"
        out[name].write_text(text)
    return out


def test_passing_scenario_exits_0_with_a_summary_row_per_loop(files: dict[str, Path]) -> None:
    result = invoke("run", str(files["passing"]))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("passing ")]
    # scenario, loop, verdicts ("PASS 1"), expectations held, virtual s, wall s, result
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[7]) for r in rows] == [
        ("passing", "asyncio", "PASS", "1", "3/3", "1.500", "ok"),
        ("passing", "trio", "PASS", "1", "3/3", "1.500", "ok"),
    ]
    assert "1 scenario x 2 loops: 2 passed, all expectations hold" in result.stdout


def test_failing_scenario_exits_1_and_prints_seed_and_a_working_replay(
    files: dict[str, Path],
) -> None:
    result = invoke("run", str(files["failing"]), "--backend", "trio")
    assert result.exit_code == 1
    assert "expect.makespan: expected 1 s, observed 1.5 s" in result.stdout
    assert "seed: 9" in result.stdout
    (replay,) = [
        line.split("replay: ", 1)[1] for line in result.stdout.splitlines() if "replay: " in line
    ]
    assert replay == f"swaysim run {files['failing']} --backend trio --seed 9"
    again = invoke(*shlex.split(replay)[1:])
    assert again.exit_code == 1
    assert "expect.makespan: expected 1 s, observed 1.5 s" in again.stdout


def test_one_invalid_file_exits_2_and_runs_nothing(files: dict[str, Path]) -> None:
    result = invoke("run", str(files["passing"]), str(files["invalid"]), "--json", "out.json")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{files['invalid']}: seed: -1 is not allowed: must be >= 0 (line 2)",
        "swaysim: 1 scenario is invalid; nothing was run",
    ]
    assert result.stdout == ""
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no/such/file.toml"], "no/such/file.toml: cannot read: no such file"),
        (["run", "--backend", "uvloop", "x.toml"], "Invalid value for '--backend'"),
        (["run", "--seed", "-3", "x.toml"], "Invalid value for '--seed'"),
        (["validate", "no/such/dir"], "no/such/dir: cannot read: no such file"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_folder_without_scenarios_exits_2(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    result = invoke("run", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == f"{tmp_path}: no scenario files (*.toml) found\n"


def test_json_output_shape(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = invoke("run", str(files["passing"]), str(files["failing"]), "--json", str(out))
    assert result.exit_code == 1
    document = json.loads(out.read_text())
    assert set(document) == {
        "swaysim",
        "ok",
        "exit_code",
        "loops",
        "runner",
        "seed",
        "schedule_jitter",
        "wall_seconds",
        "checks",
        "output_problems",
    }
    assert document["output_problems"] == []
    assert (document["ok"], document["exit_code"], document["loops"]) == (
        False,
        1,
        ["asyncio", "trio"],
    )
    checks = document["checks"]
    assert [(c["name"], c["loop"], c["ok"]) for c in checks] == [
        ("passing", "asyncio", True),
        ("passing", "trio", True),
        ("failing", "asyncio", False),
        ("failing", "trio", False),
    ]
    check = checks[2]
    assert set(check) == {
        "file",
        "name",
        "description",
        "loop",
        "runner",
        "status",
        "seed",
        "schedule_jitter",
        "ok",
        "virtual_seconds",
        "wall_seconds",
        "cancelled",
        "aborted",
        "error",
        "replay",
        "verdicts",
        "invariants",
        "expectations",
        "probes",
    }
    assert check["verdicts"] == {"PASS": 1}
    assert check["virtual_seconds"] == pytest.approx(1.5)
    assert {
        "key": "expect.makespan",
        "expected": "1 s",
        "observed": "1.5 s",
        "status": "failed",
    } in (check["expectations"])
    (probe,) = check["probes"]
    assert set(probe) == {"name", "kind", "verdict", "score", "raw", "z", "message", "duration"}


def test_junit_output_shape(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    result = invoke("run", str(files["passing"]), str(files["failing"]), "--junit", str(out))
    assert result.exit_code == 1
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("4", "2")
    (suite,) = root
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("scenarios.passing", "asyncio"),
        ("scenarios.passing", "trio"),
        ("scenarios.failing", "asyncio"),
        ("scenarios.failing", "trio"),
    ]
    assert [c.find("failure") is not None for c in cases] == [False, False, True, True]
    failure = cases[3].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "1 expectation failed: expect.makespan: expected 1 s, observed 1.5 s"
    )
    assert failure.text is not None
    assert f"replay: swaysim run {files['failing']} --backend trio --seed 9" in failure.text
    properties = {p.get("name"): p.get("value") for p in cases[3].iter("property")}
    assert properties["seed"] == "9"
    assert float(properties["virtual_seconds"] or "nan") == pytest.approx(1.5)


def test_one_backend_and_a_seed_override(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = invoke(
        "run", str(files["passing"]), "--backend", "asyncio", "--seed", "77", "--json", str(out)
    )
    assert result.exit_code == 0
    (check,) = json.loads(out.read_text())["checks"]
    assert (check["loop"], check["seed"]) == ("asyncio", 77)
    assert check["replay"].endswith("--backend asyncio --seed 77")


def test_trace_dirs_feed_report_and_trace_commands(files: dict[str, Path], tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    result = invoke("run", str(files["passing"]), "--trace", str(traces))
    assert result.exit_code == 0
    for loop in ("asyncio", "trio"):
        run_dir = traces / "passing" / loop
        lines = (run_dir / "trace.jsonl").read_text().splitlines()
        assert {json.loads(line)["kind"] for line in lines} >= {"view_enter", "probe_end"}
        document = json.loads((run_dir / "results.json").read_text())
        assert set(document) == {
            *("version", "scenario", "loop", "seed", "probes", "statistics", "makespan"),
            *("file", "description", "ok", "schedule_jitter", "replay", "expectations", "trace"),
        }
        assert (document["version"], document["ok"], document["description"]) == (
            2,
            True,
            "does it pass?",
        )
        assert [e["status"] for e in document["expectations"]] == ["ok"] * 3
        assert document["trace"]["complete"] is True
        assert document["trace"]["events_written"] == len(lines)
        assert (document["scenario"], document["loop"], document["seed"]) == ("passing", loop, 4)
        assert document["makespan"] == pytest.approx(1.5)
        assert document["statistics"]["switches"] == 3
        assert [p["verdict"] for p in document["probes"]] == ["PASS"]
    run_dir = traces / "passing" / "trio"
    report = tmp_path / "report.html"
    assert invoke("report", str(run_dir), "-o", str(report)).exit_code == 0
    assert report.read_text().lstrip().lower().startswith("<!doctype html")
    summary = invoke("trace", "summary", str(run_dir / "trace.jsonl"))
    assert summary.exit_code == 0
    assert "view_enter" in summary.stdout or "base" in summary.stdout
    chrome = tmp_path / "chrome.json"
    exported = invoke("trace", "chrome", str(run_dir / "trace.jsonl"), "-o", str(chrome))
    assert exported.exit_code == 0
    assert json.loads(chrome.read_text())["traceEvents"]


def test_validate_reports_each_file(files: dict[str, Path]) -> None:
    good = invoke("validate", str(files["passing"]))
    assert good.exit_code == 0
    assert good.stdout == f"{files['passing']}: ok (passing: 1 probe, 3 expectation keys)\n"
    bad = invoke("validate", str(files["passing"]), str(files["invalid"]))
    assert bad.exit_code == 2
    assert f"{files['invalid']}: seed: -1 is not allowed" in bad.stderr


def test_the_library_validates() -> None:
    result = invoke("validate", str(ROOT / "scenarios"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(": ok (") >= 15


def test_committed_schema_is_up_to_date() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    committed = (ROOT / "schema" / "scenario.schema.json").read_text()
    assert result.stdout == committed, (
        "regenerate with: swaysim schema -o schema/scenario.schema.json"
    )


def test_progress_off_a_terminal_is_a_line_per_scenario(files: dict[str, Path]) -> None:
    paths = [str(files["passing"]), str(files["failing"])]
    result = invoke("run", *paths, "--progress")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["[1/2] passing: ok", "[2/2] failing: FAILED"]
    assert invoke("run", *paths).stderr == ""


def test_a_file_named_twice_runs_once(tmp_path: Path) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.toml").write_text(PASSING)
    named = [str(folder / "b.toml"), str(folder), f"{folder}/./b.toml"]
    result = invoke("validate", *named)
    assert result.exit_code == 0
    assert [line.split(": ok")[0] for line in result.stdout.splitlines()] == [
        str(folder / "b.toml"),
        str(folder / "a.toml"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "{missing}/out.json"], "--json {missing}/out.json: cannot write: no such "),
        (["--junit", "{missing}/out.xml"], "--junit {missing}/out.xml: cannot write: no such "),
        (["--trace", "{file}/runs"], "--trace {file}/runs: cannot create: Not a directory"),
    ],
    ids=["json", "junit", "trace"],
)
def test_an_output_that_cannot_be_written_exits_2_before_running(
    files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    where = {"missing": str(tmp_path / "missing"), "file": str(files["passing"])}
    args = [arg.format(**where) for arg in args]
    result = invoke("run", str(files["passing"]), *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"swaysim: {message.format(**where)}")


def test_schema_to_a_missing_folder_exits_2(tmp_path: Path) -> None:
    result = invoke("schema", "-o", str(tmp_path / "missing" / "schema.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"swaysim: --output {tmp_path / 'missing'}/schema.json: ")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["validate"],
        ["new"],
        ["schema"],
        ["report"],
        ["trace"],
        ["trace", "summary"],
        ["trace", "chrome"],
        ["demo"],
    ],
    ids=lambda c: " ".join(c) or "swaysim",
)
def test_every_help_text_renders_without_markup(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    assert "``" not in result.stdout
    for line in result.stdout.splitlines():
        if line.lstrip().startswith("-") and not line.lstrip().startswith("-h, --help"):
            assert "  " in line.strip(), f"an option without help: {line!r}"


def test_python_dash_m_is_the_same_command_line(files: dict[str, Path]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "swaysim", "validate", str(files["invalid"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"{files['invalid']}: seed: -1 is not allowed")
    assert "Traceback" not in completed.stderr


def test_the_demo_says_what_happened_in_words() -> None:
    result = invoke("demo")
    assert result.exit_code == 0
    assert "<AsyncDummyDifferentialBackend" not in result.stdout  # no raw repr
    assert result.stdout.count("gate free: no view live, nobody waiting") == 2
    assert "Fault firings on asyncio and trio: identical" in result.stdout
