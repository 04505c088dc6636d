"""Class 4 of issue 13: hostile trace and results files are one line each, never a traceback.

Every reader (``trace summary``, ``trace chrome``, ``report``) gets each input; each either
works or exits 2 with ``swaysim: cannot ...: FILE:LINE: problem``.
"""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from swaysim import TraceFormatError, read_trace
from swaysim._cli.main import cli
from swaysim._limits import MAX_TRACE_KEYS
from swaysim._trace.read import MAX_NAME_CHARS

if TYPE_CHECKING:
    from pathlib import Path

GOOD = (
    '{"v":1,"kind":"op_end","time":1.0,"task":"t#1","view":"base","op":"generate",'
    '"hit":true,"duration":0.5}\n'
)


def line(**fields: object) -> str:
    record = {"v": 1, "kind": "x", "time": 1, "task": "t#1", **fields}
    return json.dumps(record) + "\n"


HOSTILE: list[tuple[str, bytes, str]] = [
    (
        "deep-nesting",
        (
            '{"v":1,"kind":"x","time":1,"task":"t","detail":' + "[" * 100_000 + "]" * 100_000 + "}"
        ).encode(),
        ":1: nested more than 32 levels deep",
    ),
    (
        "deep-detail",
        line(detail={"a": json.loads("[" * 40 + "]" * 40)}).encode(),
        ":1: nested more than 32 levels deep",
    ),
    ("huge-float", b'{"v":1,"kind":"x","time":1e308,"task":"t"}\n', "number 1e308 is out of range"),
    ("overflow", b'{"v":1,"kind":"x","time":1e999,"task":"t"}\n', "number 1e999 is out of range"),
    ("huge-int", b'{"v":1,"kind":"x","time":' + b"9" * 5000 + b',"task":"t"}\n', "5000 digits"),
    ("big-int-time", line(time=2**62).encode(), f"time={2**62} is out of range"),
    ("nan", b'{"v":1,"kind":"x","time":NaN,"task":"t"}\n', "NaN is not JSON"),
    ("infinity", b'{"v":1,"kind":"x","time":1,"task":"t","duration":-Infinity}\n', "-Infinity"),
    ("negative-duration", line(duration=-1).encode(), "duration=-1.0 must be >= 0"),
    ("string-time", line(time="soon").encode(), "time='soon' must be a number"),
    ("list-task", line(task=["t"]).encode(), "task=['t'] must be a string"),
    ("long-name", line(view="v" * 10_000).encode(), f"at most {MAX_NAME_CHARS}"),
    ("detail-rule", (GOOD + line(kind="fault", detail={"rule": {}})).encode(), ":2: detail.rule"),
    ("detail-delay", line(kind="retry", detail={"delay": "later"}).encode(), "detail.delay="),
    ("detail-call", line(detail={"call": -3}).encode(), "detail.call=-3 must be an integer >= 0"),
    ("aborted", line(detail={"aborted": "yes"}).encode(), "detail.aborted='yes' must be true"),
    ("version", b'{"v":99,"kind":"x","time":1,"task":"t"}\n', "v=99 is not a trace schema"),
    ("not-object", b"[1, 2, 3]\n", "expected a JSON object, got list"),
    (
        "truncated-line",
        GOOD.encode() + b'{"v":1,"kind":',
        "(the file ends in the middle of this line)",
    ),
    ("bad-utf8", GOOD.encode() + b'{"v":1,"kind":"x\xff","time":1,"task":"t"}\n', "0xff"),
    ("long-line", b'{"v":1,"kind":"x","time":1,"task":"' + b"a" * 2_000_000 + b'"}\n', "longer"),
    ("binary", bytes(range(256)) * 4, ":1: not a JSON object"),
    ("binary-high", bytes(range(128, 256)) * 4, ":1: not UTF-8 text: byte 0x80 at column 1"),
]


def write_trace(folder: Path, data: bytes, name: str = "trace.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def commands(trace: Path, tmp_path: Path) -> list[list[str]]:
    return [
        ["trace", "summary", str(trace)],
        ["trace", "chrome", str(trace), "-o", str(tmp_path / "c.json")],
        ["report", str(trace.parent), "-o", str(tmp_path / "r.html")],
    ]


def assert_one_line(args: list[str], expected: str) -> str:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("swaysim: cannot ")
    assert expected in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("data", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_each_hostile_trace_is_one_line_from_every_reader(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    trace = write_trace(tmp_path / "run", data)
    for args in commands(trace, tmp_path):
        message = assert_one_line(args, expected)
        assert f"{trace}:" in message
    assert not (tmp_path / "c.json").exists()  # nothing half-written
    assert not (tmp_path / "r.html").exists()


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (gz(GOOD.encode() * 1000)[:300], "the compressed file is truncated"),
        (b"not gzip at all" * 10, "the compressed file is not valid gzip"),
        (gz(b"0" * (8 << 20)), "the line is longer than that"),  # a bomb without newlines
        (gz(GOOD.encode()) + b"garbage", "not valid gzip"),
    ],
    ids=["truncated", "not-gzip", "bomb", "trailing-garbage"],
)
def test_hostile_gzip_is_one_line(tmp_path: Path, data: bytes, expected: str) -> None:
    trace = write_trace(tmp_path / "run", data, "trace.jsonl.gz")
    for args in commands(trace, tmp_path):
        assert_one_line(args, expected)


def test_distinct_names_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_TRACE_KEYS.variable, "1000")
    lines = "".join(line(task=f"task#{n}") for n in range(2000))
    trace = write_trace(tmp_path / "run", lines.encode())
    with pytest.raises(TraceFormatError, match=r"the limit is 1,000 distinct names") as info:
        list(read_trace(trace))
    assert f"{trace}:" in str(info.value)
    monkeypatch.setenv(MAX_TRACE_KEYS.variable, "10000")
    assert len(list(read_trace(trace))) == 2000


def test_open_intervals_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_TRACE_KEYS.variable, "500")
    lines = "".join(line(kind="view_enter", view="base") for _ in range(1000))
    trace = write_trace(tmp_path / "run", lines.encode())
    for args in commands(trace, tmp_path):
        assert_one_line(args, "the trace names or leaves open more than 500 things")


def test_a_fifo_trace_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    (tmp_path / "run").mkdir()
    os.mkfifo(tmp_path / "run" / "trace.jsonl")
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "run")], catch_exceptions=False)
    assert result.exit_code == 2
    assert "has no trace.jsonl" in result.stderr


def test_non_finite_durations_draw_as_nothing(tmp_path: Path) -> None:
    text = (
        line(kind="view_enter", view="base")
        + line(kind="op_end", view="base", op="generate", duration="inf", hit=False)
        + line(kind="view_wait", view="base", duration="nan")
        + line(kind="view_exit", view="base", duration="inf", time=2)
    )
    trace = write_trace(tmp_path / "run", text.encode())
    for args in commands(trace, tmp_path):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    chrome = json.loads((tmp_path / "c.json").read_text())
    assert all(isinstance(e.get("ts", 0), int | float) for e in chrome["traceEvents"])


RESULTS_HOSTILE: list[tuple[str, bytes, str]] = [
    ("not-json", b"{not json", "results.json: not a JSON object (Expecting property name"),
    ("nan", b'{"makespan": NaN}', "NaN is not JSON"),
    ("huge", b'{"makespan": 1e999}', "number 1e999 is out of range"),
    ("deep", b'{"statistics":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested more than 32"),
    ("array", b"[]", "results.json holds a list"),
    ("bad-utf8", b'{"scenario": "\xff"}', "not UTF-8 text"),
    ("duration", b'{"probes": [{"duration": "slow"}]}', "probes[0].duration='slow' must be"),
    ("score", b'{"probes": [{"score": {"a": 1}}]}', "probes[0].score={'a': 1} must be a number"),
    ("seed", b'{"seed": 1.5}', "seed=1.5 must be an integer"),
    ("loop", b'{"loop": 3}', "loop=3 must be a string"),
]


@pytest.mark.parametrize(
    ("data", "expected"), [h[1:] for h in RESULTS_HOSTILE], ids=[h[0] for h in RESULTS_HOSTILE]
)
def test_each_hostile_results_file_is_one_line(tmp_path: Path, data: bytes, expected: str) -> None:
    trace = write_trace(tmp_path / "run", GOOD.encode())
    (trace.parent / "results.json").write_bytes(data)
    message = assert_one_line(
        ["report", str(trace.parent), "-o", str(tmp_path / "r.html")], expected
    )
    assert "results.json" in message


def test_control_characters_and_markup_in_a_trace_reach_no_terminal(tmp_path: Path) -> None:
    hostile = "[/][bold red]x\x1b[2J\u202e\x9b"
    text = line(kind="view_enter", view="base", task=hostile) + line(
        kind="op_end", view="base", op=hostile, task=hostile, hit=True, duration=0.1
    )
    trace = write_trace(tmp_path / "run", text.encode())
    result = CliRunner().invoke(cli, ["trace", "summary", str(trace)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for raw in ("\x1b", "\u202e", "\x9b"):
        assert raw not in result.output
    assert "[/][bold red]x\\x1b[2J\\u202e\\x9b" in result.output
