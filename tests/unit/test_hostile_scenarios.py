"""Class 1 of issue 13: tiny or strange scenario files cannot exhaust memory, time or the open.

Every limit is checked before the work it bounds, and a file past one is exit 2 with one
line naming the file, the key and the limit (and how to raise it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from swaysim._cli.main import cli
from swaysim._limits import LIMITS, MAX_PROBES, MAX_SCENARIO_BYTES
from swaysim._scenario.limits import MAX_REPORTED_PROBLEMS
from swaysim.scenario import ScenarioError, load_scenario, parse_scenario

HEAD = 'description = "hostile"\n'
EXPECT = "[expect]\ngate_free = true\n"


def probes(kind: str, repeat: int, field: str, items: str, copies: int = 1) -> str:
    table = (
        f'[[probes]]\nkind = "{kind}"\nname = "p{{n}}"\nrepeat = {repeat}\n{field} = [{items}]\n'
    )
    return "".join(table.replace("{n}", str(n)) for n in range(copies))


def problem(text: str) -> str:
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="h.toml")
    # Each is refused before the work: well under a second, whatever it asked for.
    assert time.perf_counter() - started < 5.0
    message = str(info.value)
    # Every problem of the file at once, one line each (a limit stops the stages after it).
    assert all(line.startswith("h.toml: ") for line in message.splitlines())
    return message


LONG_PROMPTS = ", ".join(f'"{"x" * 40} {{i}} {j}"' for j in range(100))

EXPANSIONS = [
    # A 5 KB file: repeat times a long prompt list (20 million requests).
    (
        "requests",
        HEAD + probes("delta_kl", 100_000, "prompts", LONG_PROMPTS) + EXPECT,
        "h.toml: probes[0].repeat: the suite would make 20,000,000 requests after repeat expansion",
        "SWAYSIM_MAX_REQUESTS=N",
    ),
    # A 2 KB file: thirty tables of 100,000 probes each.
    (
        "probes",
        HEAD + probes("perplexity_shift", 100_000, "texts", '"a"', copies=30) + EXPECT,
        "h.toml: probes[0].repeat: the suite would make 3,000,000 probes after repeat expansion "
        "(100,000 from this table); the limit is 100,000 probes",
        "SWAYSIM_MAX_PROBES=N",
    ),
    # Long texts repeated: few requests, a lot of memory.
    (
        "text",
        HEAD + probes("perplexity_shift", 2_000, "texts", f'"{"t" * 100_000}"') + EXPECT,
        "bytes of probe text after repeat expansion",
        "SWAYSIM_MAX_EXPANDED_TEXT_BYTES=N",
    ),
    # An ablation multiplies prompts by lams.
    (
        "ablation",
        HEAD
        + '[[probes]]\nkind = "adapter_ablation"\nname = "a"\nrepeat = 1000\n'
        + "prompts = ["
        + ", ".join(f'"p{j}"' for j in range(100))
        + "]\nlams = ["
        + ", ".join(f"{j / 100}" for j in range(101))
        + "]\n"
        + EXPECT,
        "requests after repeat expansion",
        "SWAYSIM_MAX_REQUESTS=N",
    ),
]


EXPANSIONS.append(
    (
        "verdict-patterns",
        # 37 KB: 2,000 patterns that match nothing, against 50,000 probes (each unmatched
        # pattern also searched the names for a "did you mean"): minutes, before the limit.
        HEAD
        + probes("perplexity_shift", 50_000, "texts", '"a"')
        + EXPECT
        + "verdicts = { "
        + ", ".join(f'"zq{n}*" = "PASS"' for n in range(2000))
        + " }\n",
        "h.toml: expect.verdicts: 2,000 patterns times 50,000 probes is 100,000,000 comparisons",
        "SWAYSIM_MAX_VERDICT_CHECKS=N",
    )
)


@pytest.mark.parametrize(
    ("text", "expected", "hint"), [e[1:] for e in EXPANSIONS], ids=[e[0] for e in EXPANSIONS]
)
def test_expansion_is_counted_before_it_happens(text: str, expected: str, hint: str) -> None:
    assert len(text.encode()) < 300_000
    message = problem(text)
    assert expected in message
    assert hint in message


def test_a_limit_is_raised_with_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + probes("perplexity_shift", 60_000, "texts", '"a"', copies=2) + EXPECT
    assert "120,000 probes" in problem(text)
    monkeypatch.setenv(MAX_PROBES.variable, "200000")
    assert len(parse_scenario(text).probe_plan) == 120_000
    monkeypatch.setenv(MAX_PROBES.variable, "lots")
    with pytest.raises(Exception, match="SWAYSIM_MAX_PROBES='lots' must be a positive integer"):
        parse_scenario(text)


def test_every_limit_has_a_distinct_variable_and_a_positive_default() -> None:
    assert len({limit.variable for limit in LIMITS}) == len(LIMITS)
    assert all(limit.default > 0 and limit.variable.startswith("SWAYSIM_MAX_") for limit in LIMITS)


def test_millions_of_values_are_refused_before_validation() -> None:
    # 4 MB of wrong types made two million error messages: 300 s and 3 GB.
    text = HEAD + '[[probes]]\nkind = "delta_kl"\nname = "d"\nprompts = [' + "1," * 150_000
    message = problem(text + "]\n" + EXPECT)
    assert "h.toml: more than 100,000 values; the limit is 100,000 values" in message


def test_a_problem_per_probe_is_cut_short_and_searches_no_huge_name_list() -> None:
    # 50,000 null adapters naming missing targets, next to 50,000 numeric probes: a "did you
    # mean" over 50,000 names for each of 50,000 problems would never finish.
    text = (
        HEAD
        + probes("perplexity_shift", 50_000, "texts", '"a"')
        + '[[probes]]\nkind = "null_adapter"\nname = "n"\nrepeat = 50000\ntarget = "x{i}"\n'
        + EXPECT
        + "faults_fired = { "
        + ", ".join(f"r{n} = 1" for n in range(20_000))
        + " }\n"
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="h.toml")
    assert len(info.value.problems) == MAX_REPORTED_PROBLEMS
    assert info.value.problems[0] == (
        'h.toml: probes[1].target: "x0" is not allowed: must name a delta_kl, preference_flip '
        "or perplexity_shift probe in the suite (line 11)"
    )


def test_only_the_first_problems_are_phrased() -> None:
    text = HEAD + '[[probes]]\nkind = "delta_kl"\nname = "d"\nprompts = [' + "1," * 5_000
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text + "]\n" + EXPECT, source="h.toml")
    problems = info.value.problems
    assert len(problems) == MAX_REPORTED_PROBLEMS + 1
    assert problems[-1] == "h.toml: 4,900 more problems of the same kinds are not listed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "seed = " + "9" * 5000 + "\n", "invalid TOML: Exceeds the limit (4300 digits)"),
        (
            HEAD
            + '[[probes]]\nkind = "delta_kl"\nname = "d"\nprompts = ["a"]\n'
            + '[runner]\nrunner = "r:run"\noptions = { n = 99999999999999999999 }\n'
            + EXPECT,
            "runner.options.n: 99999999999999999999 is not allowed: TOML integers are 64-bit",
        ),
        ("x = " + "[" * 40 + "]" * 40, "x[0][0]"),
    ],
    ids=["thousands-of-digits", "untyped-huge-integer", "nesting"],
)
def test_numbers_and_nesting_are_bounded(text: str, expected: str) -> None:
    assert expected in problem(text)


# -- the file itself --------------------------------------------------------------------


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    return result.exit_code, result.stderr


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.toml"
    os.mkfifo(fifo)
    code, stderr = validate(fifo)
    assert code == 2
    assert (
        stderr.splitlines()[0] == f"{fifo}: cannot read: is a named pipe (FIFO), not a regular file"
    )


def test_a_device_is_refused(tmp_path: Path) -> None:
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    code, stderr = validate(zero)
    assert code == 2
    assert "cannot read: is a character device, not a regular file" in stderr


def test_the_size_is_checked_before_reading(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.toml"
    with sparse.open("wb") as file:
        file.truncate(5 * 1024**3)  # 5 GB, no blocks: reading it would take minutes
    started = time.perf_counter()
    code, stderr = validate(sparse)
    assert time.perf_counter() - started < 5.0
    assert code == 2
    assert (
        f"{sparse}: cannot read: is 5,368,709,120 bytes; the limit is "
        f"{MAX_SCENARIO_BYTES.default:,} bytes in a scenario file "
        "(raise it with SWAYSIM_MAX_SCENARIO_BYTES=N)"
    ) in stderr


def test_bytes_handed_over_directly_obey_the_size_limit() -> None:
    text = HEAD + "# " + "x" * MAX_SCENARIO_BYTES.default + "\n"
    assert "the scenario is" in problem(text)


def test_load_scenario_of_a_hostile_file_is_one_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text(HEAD + probes("delta_kl", 100_000, "prompts", LONG_PROMPTS) + EXPECT)
    with pytest.raises(ScenarioError, match=r"h\.toml: probes\[0\]\.repeat: the suite would"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("written", "character"),
    [("\\u0085", "\x85"), ("\\u2028", "\u2028"), ("\\u001b[2J", "\x1b")],
)
def test_a_bad_array_or_table_value_is_shown_escaped_on_one_line(
    written: str, character: str
) -> None:
    for value in (f'["{written}"]', f'{{"{written}" = false}}'):
        with pytest.raises(ScenarioError) as raised:
            parse_scenario(HEAD + f"seed = {value}\n" + EXPECT, source="s.toml")
        (seed_problem,) = [p for p in raised.value.problems if p.startswith("s.toml: seed")]
        assert seed_problem.splitlines() == [seed_problem]
        assert character not in seed_problem


# -- class 7: runner options are checked at validate time -------------------------------

RUNNER = """\
from __future__ import annotations


async def run(backend, probes, *, batch_size=8, seed=0):
    return []


async def needs(backend, probes, *, window):
    return []


run_later = run
"""


def runner_scenario(tmp_path: Path, runner: str, options: str = "") -> Path:
    (tmp_path / "my_runner.py").write_text(RUNNER)
    path = tmp_path / "s.toml"
    path.write_text(
        HEAD
        + '[[probes]]\nkind = "delta_kl"\nname = "d"\nprompts = ["a"]\n'
        + f'[runner]\nrunner = "my_runner:{runner}"\n{options}'
        + EXPECT
    )
    return path


@pytest.mark.parametrize(
    ("runner", "options", "expected"),
    [
        (
            "run",
            "options = { bogus = 1 }\n",
            "s.toml: runner.options.bogus: 'my_runner:run' takes no option 'bogus'; it takes "
            "batch_size, seed",
        ),
        (
            "run",
            "options = { batch_sise = 1 }\n",
            "runner.options.batch_sise: 'my_runner:run' takes no option 'batch_sise'; did you "
            "mean 'batch_size'?",
        ),
        ("run", "concurrency = 4\n", "runner.concurrency: 'my_runner:run' takes no option"),
        ("needs", "", "runner.options: 'my_runner:needs' requires option 'window'"),
        ("rnu", "", "module 'my_runner' ("),
    ],
    ids=["unknown", "misspelt", "run-suite-key", "required", "no-function"],
)
def test_runner_options_are_checked_at_validate_without_importing(
    tmp_path: Path, runner: str, options: str, expected: str
) -> None:
    path = runner_scenario(tmp_path, runner, options)
    code, stderr = validate(path)
    assert code == 2
    assert expected in stderr
    assert not [name for name in sys.modules if name.endswith("my_runner")]


def test_an_assigned_runner_is_checked_on_its_real_signature_before_the_run(
    tmp_path: Path,
) -> None:
    path = runner_scenario(tmp_path, "run_later", "options = { bogus = 1 }\n")
    code, _ = validate(path)
    assert code == 0  # the source does not say what run_later takes
    result = CliRunner().invoke(cli, ["run", str(path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: runner.options.bogus: 'my_runner:run_later' takes no option 'bogus'; it takes "
        "batch_size, seed",
        "swaysim: 1 scenario is invalid; nothing was run",
    ]


def test_the_readme_limits_table_is_the_limits_in_force() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`SWAYSIM_" in line]
    assert len(rows) == len(LIMITS)
    for row, limit in zip(rows, LIMITS, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1].split(" ")[0] == f"{limit.default:,}", row
        assert cells[2] == f"`{limit.variable}`", row
