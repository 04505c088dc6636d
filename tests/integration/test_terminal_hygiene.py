"""Class 9 of issue 13: what reaches the terminal is what the files say, visibly, and Ctrl-C
is one line on either loop."""

from __future__ import annotations

import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from swaysim._cli.main import cli
from swaysim._printable import printable

if TYPE_CHECKING:
    from pathlib import Path

RAW = ("\x1b", "\x9b", "\u202e", "\r", "\x07")
SCENARIO = """\
description = "what does the terminal show?"
[[probes]]
kind = "delta_kl"
name = "d"
prompts = ["a"]
[expect]
verdicts = {{ d = "{verdict}" }}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_clean(text: str) -> None:
    for raw in RAW:
        assert raw not in text, repr(raw)


def test_printable_escapes_every_control_and_format_character() -> None:
    assert printable("ok\x1b[2J\u202eevil\r\x00\ud800") == "ok\\x1b[2J\\u202eevil\\x0d\\x00\\ud800"
    assert printable("two\nlines\tand tab") == "two\\x0alines\\x09and tab"
    assert printable("two\nlines", multiline=True) == "two\nlines"
    assert printable("café — 東京") == "café — 東京"


@pytest.mark.parametrize(
    "name",
    ["\\u001b[2J", "\\u009b31m", "\\u202eevil", "bell\\u0007", "line\\nbreak"],
    ids=["csi", "c1", "bidi", "bell", "newline"],
)
def test_names_with_control_characters_are_invalid(tmp_path: Path, name: str) -> None:
    for key, text in (
        ("name", f'name = "{name}"\n' + SCENARIO.format(verdict="PASS")),
        (
            "probes[0].name",
            SCENARIO.format(verdict="PASS").replace('name = "d"', f'name = "{name}"'),
        ),
    ):
        path = tmp_path / "s.toml"
        path.write_text(text)
        code, stdout, stderr = invoke("validate", str(path))
        assert (code, stdout) == (2, "")
        assert f"{path}: {key}: " in stderr
        assert "must not contain control characters" in stderr
        assert_clean(stderr)


def test_a_hostile_file_name_is_shown_escaped_everywhere(tmp_path: Path) -> None:
    hostile = tmp_path / "evil\x1b]0;pwned\x07\u202e.toml"
    hostile.write_text(SCENARIO.format(verdict="FAIL"))
    code, stdout, stderr = invoke("validate", str(hostile))
    assert code == 0
    assert_clean(stdout + stderr)
    assert "evil\\x1b]0;pwned\\x07\\u202e.toml: ok" in stdout
    junit = tmp_path / "j.xml"
    code, stdout, stderr = invoke("run", str(hostile), "--junit", str(junit), "--progress")
    assert code == 1
    assert_clean(stdout + stderr)
    assert "evil\\x1b]0;pwned\\x07\\u202e.toml" in stdout  # the failure report and replay
    case = ET.parse(junit).getroot().find("testsuite/testcase")
    assert case is not None
    assert case.get("file", "").endswith("evil\\x1b]0;pwned\\x07\\u202e.toml")
    broken = tmp_path / "broken\x1b[2J.toml"
    broken.write_text("not toml")
    code, _, stderr = invoke("validate", str(broken))
    assert code == 2
    assert_clean(stderr)
    assert "broken\\x1b[2J.toml: line 1" in stderr


def test_rich_markup_in_a_name_is_text(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "[/][bold]loud"\n' + SCENARIO.format(verdict="PASS"))
    code, stdout, _ = invoke("run", str(path), "--progress")
    assert code == 0
    assert "[/][bold]loud" in stdout


def interrupt(loop: str, folder: Path) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "swaysim", "run", str(folder), "--backend", loop, "--progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the first scenario finished: the run is under way
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, first + stderr)


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_ctrl_c_is_one_line_on_either_loop(tmp_path: Path, loop: str) -> None:
    library = tmp_path / "many"
    library.mkdir()
    text = SCENARIO.format(verdict="PASS").replace('name = "d"', 'name = "d"\nrepeat = 2000')
    text = text.replace('prompts = ["a"]', 'prompts = ["a{i}", "b{i}"]').replace(
        'verdicts = { d = "PASS" }', "gate_free = true"
    )
    for index in range(30):
        (library / f"s{index:02}.toml").write_text(f'name = "s{index:02}"\n' + text)
    completed = interrupt(loop, library)
    lines = completed.stderr.splitlines()
    assert completed.returncode == 130, completed.stderr
    assert lines[0].startswith("[1/30] s00: ")
    assert lines[1:] == ["swaysim: interrupted; nothing more was run"]
    assert "Traceback" not in completed.stderr
