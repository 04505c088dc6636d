"""A corpus of malformed scenarios: each is exit 2 and one line naming the problem.

Every file in tests/malformed/ is listed here with the part of its message that names
what is wrong (the key path, the value, the rule); a file without an entry fails. Where
the Python API refuses a value the schema let through (``range_uniform_high_below_low``,
...), the key path comes from the field its error carries (``InvalidArgumentError.field``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from swaysim._cli.main import cli
from swaysim.scenario import ScenarioError, load_scenario

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.toml"))

EXPECTED: dict[str, str] = {
    # broken TOML: the parser's line and column
    "toml_unclosed_string": "line 1, column 28: invalid TOML: Illegal character '\\n'",
    "toml_missing_equals": "line 1, column 13: invalid TOML: Expected '=' after a key",
    "toml_duplicate_key": "line 3, column 9: invalid TOML: Cannot overwrite a value",
    "toml_unclosed_table_header": "line 9, column 9: invalid TOML: Expected ']' at the end",
    "toml_trailing_comma_inline_table": "line 8, column 48: invalid TOML: Invalid initial char",
    "toml_table_defined_twice": "line 9, column 8: invalid TOML: Cannot declare ('expect',) twice",
    "toml_nul_byte": "line 1, column 17: invalid TOML: Illegal character '\\x00'",
    "toml_invalid_escape": "line 1, column 22: invalid TOML: Unescaped '\\' in a string",
    "toml_impossible_date": "line 2, column 12: invalid TOML: Expected newline or end of document",
    "toml_array_then_array_of_tables": "line 3, column 9: invalid TOML: Cannot mutate immutable",
    # empty files and garbage
    "empty": "empty file: a scenario needs at least a description, [[probes]] and [expect]",
    "whitespace_only": "empty file: a scenario needs at least a description",
    "comments_only": "no keys: a scenario needs at least a description",
    "binary_png_header": "not UTF-8 text: byte 0x89 at offset 0 cannot be decoded",
    "binary_random": "not UTF-8 text: byte 0x99 at offset 1 cannot be decoded",
    "latin1_text": "not UTF-8 text: byte 0xe9 at offset 18 cannot be decoded",
    "utf16_text": "not UTF-8 text: byte 0xff at offset 0 cannot be decoded",
    # bad types
    "type_seed_string": 'seed: "7" is not allowed: must be an integer',
    "type_probes_string": 'probes: "dkl" is not allowed: must be an array',
    "type_prompts_string": 'probes[0].prompts: "a" is not allowed: must be an array',
    "type_concurrency_float": "runner.concurrency: 4.0 is not allowed: must be an integer",
    "type_bool_as_string": 'safe_for_concurrent_views: "yes" is not allowed: must be true or false',
    "type_latency_model_number": "backend.latency.default: 0.05 is not allowed: must be a table",
    "type_expect_boolean": "expect: true is not allowed: must be a table",
    "type_verdict_number": "expect.verdicts.dkl: 1 is not allowed: must be a verdict (PASS,",
    "type_window_strings": 'rules[0].window[0]: "soon" is not allowed: must be a number',
    "type_description_date": "description: 1979-05-27 is not allowed: must be a string",
    "type_count_string": 'expect.retries: "two" is not allowed: must be an integer or a table',
    # unknown keys and names
    "unknown_top_level_key": "sed: unknown key; did you mean 'seed'?",
    "unknown_backend_key": "backend.exclusive: unknown key; did you mean 'exclusivity'?",
    "unknown_fault_rule_key": "rules[0].probabilty: unknown key; did you mean 'probability'?",
    "unknown_probe_key": "probes[0].promts: unknown key; did you mean 'prompts'?",
    "unknown_expect_key": "expect.view_switchs: unknown key; did you mean 'view_switches'?",
    "unknown_runner_key": "runner.timeout: unknown key; did you mean 'op_timeout'?",
    "unknown_probe_kind": 'probes[0].kind: "kl_divergence" is not allowed: must be one of',
    "unknown_latency_model": 'default.model: "gaussian" is not allowed: must be one of',
    "unknown_fault_kind": 'rules[0].kind: "explode" is not allowed: must be one of',
    "unknown_view_in_rule": "rules[0].views[0]: FaultRule.views: unknown view 'finetuned'",
    # out of range
    "range_probability_above_one": "rules[0].probability: 1.5 is not allowed: must be <= 1.0",
    "range_negative_latency": "default.seconds: -0.1 is not allowed: must be >= 0.0",
    "range_zero_sigma": "default.sigma: 0.0 is not allowed: must be > 0.0",
    "range_zero_concurrency": "runner.concurrency: 0 is not allowed: must be >= 1",
    "range_negative_seed": "seed: -1 is not allowed: must be >= 0",
    "range_nth_zero": "rules[0].nth: 0 is not allowed: must be >= 1",
    "range_uniform_high_below_low": "default.high: Uniform.high=0.1 must be >= Uniform.low=0.5",
    "range_window_reversed": "rules[0].window: FaultRule.window=(5.0, 1.0) must have start < end",
    "range_lams_without_one": "probes[1].lams: lams=[0.0, 0.5] must include 1.0",
    "range_one_null_seed": "probes[1].seeds: [0] is not allowed: must have at least 2 item(s)",
    "range_max_views_on_exclusive": (
        "backend.max_concurrent_views: max_concurrent_views=4 needs safe_for_concurrent_views"
    ),
    # huge numbers
    "huge_seed": "seed: 100000000000... (81 digits) is not allowed: must be <= 922337203685",
    "huge_float_overflows_to_inf": "runner.op_timeout: inf is not allowed: must be finite",
    "huge_integer_for_a_float": "(401 digits) is not allowed: is too large for a number",
    "huge_repeat": "probes[0].repeat: 10000000 is not allowed: must be <= 100000",
    "huge_latency": "view_switch.seconds: 1e+300 is not allowed: must be <= 1000000000.0",
    # deep nesting
    "deep_arrays": "runner.options.x[0][0][0]",
    "deep_inline_tables": "x.a.a.a.a.a",
    "deep_table_headers": "t.t.t.t.t.t",
    "deeper_than_the_parser": "invalid TOML: nested too deeply to parse",
    # semantics
    "semantic_duplicate_probe_names": 'probes[1].name: "dkl" is not allowed: probe names must be',
    "semantic_null_names_a_numeric_probe": 'probes[0].null: "dkl" is not allowed: must name a nul',
    "semantic_null_target_missing": 'probes[1].target: "dlk" is not allowed',
    "semantic_verdict_glob_matches_nothing": 'expect.verdicts."ppl-*": matches no probe',
    "semantic_faults_fired_unknown_rule": "faults_fired.flakey: names no fault rule; did you mean",
    "semantic_no_expectations": "expect: no expectations",
    "semantic_no_probes": "probes: required key is missing",
    "semantic_cancelled_without_deadline": "expect.cancelled: needs runner.cancel_after",
    "semantic_options_without_runner": "runner.options: only a custom runner",
    "runner_expression_not_a_name": 'is not allowed: must look like "package.module:function"',
    "runner_module_missing": "cannot import 'no_such_runner_module': ModuleNotFoundError",
    "runner_function_missing": "has no attribute 'run_suit'; did you mean 'run_suite'?",
}


def test_the_corpus_has_forty_files_and_each_is_listed() -> None:
    assert len(FILES) >= 40
    assert sorted(p.stem for p in FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_malformed_file_gives_exit_2_and_one_line(path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert EXPECTED[path.stem] in message

    result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        message,
        "swaysim: 1 scenario is invalid; nothing was run",
    ]


def test_the_whole_corpus_in_one_process_is_exit_2_without_a_traceback() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "swaysim", "run", *map(str, FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == len(FILES) + 1
    assert lines[-1] == f"swaysim: {len(FILES)} scenarios are invalid; nothing was run"
    assert "Traceback" not in completed.stderr
