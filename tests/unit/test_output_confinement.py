"""Class 2 of issue 13: everything written under --trace, --json, --junit and -o stays where
it was asked to go, never follows a link planted in the output tree, and an unwritable
destination fails before anything runs, with one line."""

from __future__ import annotations

import errno
import json
import os
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from swaysim._cli.main import cli
from swaysim._files import OutputDirectory, safe_component, write_file_atomically
from swaysim.errors import OutputError

if TYPE_CHECKING:
    from pathlib import Path

SCENARIO = """\
name = "{name}"
description = "where do my files go?"
[[probes]]
kind = "delta_kl"
name = "d"
prompts = ["a"]
[expect]
gate_free = true
"""


def scenario(tmp_path: Path, name: str, file: str = "s.toml") -> Path:
    path = tmp_path / file
    path.write_text(SCENARIO.format(name=name))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("..", "scenario"),
        (".", "scenario"),
        ("../../escaped", "_.._escaped"),
        ("/etc/passwd", "_etc_passwd"),
        (".hidden", "hidden"),
        ("CON", "_CON"),
        ("a" * 150, "a" * 91 + "-"),
    ],
    ids=["dotdot", "dot", "climb", "absolute", "hidden", "reserved", "long"],
)
def test_a_scenario_name_is_one_harmless_folder(tmp_path: Path, name: str, folder: str) -> None:
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(scenario(tmp_path, name)), "--trace", str(out))
    assert code == 0, stderr
    written = files_under(out)
    assert len(written) == 4
    assert all(path.startswith(folder) for path in written), written
    assert files_under(tmp_path) == sorted(["s.toml", *(f"out/{p}" for p in written)])


def test_two_names_one_folder_apart_by_case_are_numbered(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = scenario(tmp_path, "Run", "a.toml")
    second = scenario(tmp_path, "run", "b.toml")
    assert invoke("run", str(first), str(second), "--trace", str(out))[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["Run", "run-2"]


def test_a_link_planted_in_the_tree_is_refused_not_followed(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out"
    (out / "evil").mkdir(parents=True)
    (out / "evil" / "asyncio").symlink_to(tmp_path)  # a folder link: would write next to s.toml
    (out / "evil" / "trio").mkdir()
    (out / "evil" / "trio" / "trace.jsonl").symlink_to(precious)  # a file link
    (out / "evil" / "trio" / "results.json").symlink_to(precious)
    code, stdout, stderr = invoke("run", str(scenario(tmp_path, "evil")), "--trace", str(out))
    assert precious.read_text() == "keep me"
    assert not (tmp_path / "trace.jsonl").exists()
    assert not (tmp_path / "results.json").exists()
    # The run still ran and reported; the refused folder is one line, a failure (exit 1).
    assert "all expectations hold" in stdout
    assert code == 1
    assert (
        f"swaysim: no trace for evil on asyncio: {out}/evil/asyncio: cannot create: it is a "
        "symbolic link, and swaysim never follows links inside its outputs"
    ) in stderr.splitlines()
    # The file links were replaced by the files swaysim wrote, not written through.
    trio = out / "evil" / "trio"
    assert not (trio / "trace.jsonl").is_symlink()
    assert not (trio / "results.json").is_symlink()
    assert json.loads((trio / "results.json").read_text())["trace"]["complete"] is True


def test_a_hard_link_planted_in_the_tree_is_not_written_through(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    trio = tmp_path / "out" / "evil" / "trio"
    trio.mkdir(parents=True)
    os.link(precious, trio / "trace.jsonl")
    code, _, _ = invoke(
        "run",
        str(scenario(tmp_path, "evil")),
        "--trace",
        str(tmp_path / "out"),
        "--backend",
        "trio",
    )
    assert code == 0
    assert precious.read_text() == "keep me"
    assert (trio / "trace.jsonl").read_text().startswith('{"v":2')


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_a_link_at_a_report_destination_is_replaced(tmp_path: Path, option: str) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    destination = tmp_path / "report.out"
    destination.symlink_to(precious)
    code, _, _ = invoke("run", str(scenario(tmp_path, "x")), option, str(destination))
    assert code == 0
    assert precious.read_text() == "keep me"
    assert not destination.is_symlink()
    assert destination.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_unwritable_destinations_fail_before_anything_runs(tmp_path: Path) -> None:
    path = scenario(tmp_path, "x")
    file = tmp_path / "a-file"
    file.write_text("")
    cases = [
        (("--trace", str(file / "sub")), f"swaysim: --trace {file}/sub: cannot create: "),
        (("--json", str(tmp_path / "no" / "r.json")), "cannot write: no such directory"),
        (("--junit", str(tmp_path)), "is a directory"),
    ]
    for args, expected in cases:
        code, stdout, stderr = invoke("run", str(path), *args)
        assert code == 2, args
        assert stdout == ""
        assert len(stderr.splitlines()) <= 4
        assert expected in stderr


def test_a_read_only_destination_fails_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only file system (simulated: root writes through file modes)."""
    real_open = os.open

    def read_only(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    for option, target in (("--trace", tmp_path / "out"), ("--json", tmp_path / "r.json")):
        code, stdout, stderr = invoke("run", str(scenario(tmp_path, "x")), option, str(target))
        assert (code, stdout) == (2, "")
        assert stderr == f"swaysim: {option} {target}: cannot write: Read-only file system\n"


def test_report_and_chrome_outputs_are_checked_and_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("run", str(scenario(tmp_path, "x")), "--trace", str(out))[0] == 0
    run_dir = out / "x" / "trio"
    code, _, stderr = invoke("report", str(run_dir), "-o", str(tmp_path / "no" / "r.html"))
    assert code == 2
    assert "cannot write: no such directory" in stderr
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (tmp_path / "t.json").symlink_to(precious)
    code, _, _ = invoke(
        "trace", "chrome", str(run_dir / "trace.jsonl"), "-o", str(tmp_path / "t.json")
    )
    assert code == 0
    assert precious.read_text() == "keep me"
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


def test_a_failed_atomic_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")

    def half_then_fail(stream: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        write_file_atomically(target, half_then_fail, option="--json")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_names_are_checked_by_the_directory_itself(tmp_path: Path) -> None:
    with OutputDirectory.open_root(tmp_path) as root:
        for bad in ("..", "a/b", ""):
            with pytest.raises(ValueError, match="not a safe path component"):
                root.subdirectory(bad)
    assert safe_component("ok-name_1.0") == "ok-name_1.0"
