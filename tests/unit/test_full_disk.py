"""Class 5 of issue 13: a full disk costs the trace, never the results.

The disk fills up in a stream that raises ENOSPC past a capacity (no root needed); one
test also mounts a real 64 KiB tmpfs when the machine lets it, and skips otherwise.
"""

from __future__ import annotations

import errno
import io
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import IO, TYPE_CHECKING

import pytest
from click.testing import CliRunner

from swaysim import JsonlTraceWriter, TraceEvent
from swaysim._cli.main import cli
from swaysim._files import OutputDirectory

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SCENARIO = """\
name = "{name}"
description = "does a full disk lose my results?"
[[probes]]
kind = "delta_kl"
name = "d"
prompts = ["a", "b", "c"]
[expect]
gate_free = true
"""


class FullDisk(io.RawIOBase):
    """A file on a disk with ``capacity`` bytes left: writes past it raise ENOSPC."""

    def __init__(self, capacity: int, *, fail_on: str = "write") -> None:
        self.capacity = capacity
        self.fail_on = fail_on
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        if self.fail_on == "write" and len(self.data) + len(chunk) > self.capacity:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data += chunk
        return len(chunk)

    def close(self) -> None:
        if self.fail_on == "close" and not self.closed:
            super().close()
            raise OSError(errno.ENOSPC, "No space left on device")
        super().close()


def event(index: int) -> TraceEvent:
    return TraceEvent("op_end", float(index), "t#1", "base", "generate", duration=0.5)


@pytest.mark.parametrize(("capacity", "fail_on"), [(0, "write"), (500, "write"), (10**6, "close")])
def test_the_writer_records_a_full_disk_and_never_raises(capacity: int, fail_on: str) -> None:
    disk = FullDisk(capacity, fail_on=fail_on)
    writer = JsonlTraceWriter("t.jsonl", flush_every=4, stream=io.BufferedWriter(disk, 64))
    for index in range(40):
        writer.emit(event(index))
    writer.close()
    writer.close()
    assert not writer.complete
    assert writer.error is not None
    assert writer.error.errno == errno.ENOSPC
    assert writer.events_written + writer.events_dropped == 40
    # A failed write loses its lines; a failed close may have lost anything (not counted).
    assert (writer.events_dropped > 0) == (fail_on == "write")
    assert "incomplete (No space left on device)" in repr(writer)
    with pytest.raises(Exception, match="is closed"):
        writer.emit(event(41))


def test_a_gzipped_trace_on_a_full_disk_is_recorded_too() -> None:
    writer = JsonlTraceWriter("t.jsonl.gz", flush_every=1, stream=io.BufferedWriter(FullDisk(40)))
    for index in range(2000):
        writer.emit(event(index))
    writer.close()
    assert writer.error is not None
    assert writer.error.errno == errno.ENOSPC


@pytest.fixture
def full_disk_for_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trace file swaysim run creates fills up after 300 bytes."""
    real_create = OutputDirectory.create

    def create(self: OutputDirectory, name: str) -> IO[bytes]:
        real_create(self, name).close()
        return io.BufferedWriter(FullDisk(300), 64)

    monkeypatch.setattr(OutputDirectory, "create", create)


def scenarios(tmp_path: Path) -> list[str]:
    paths = []
    for name in ("first", "second"):
        path = tmp_path / f"{name}.toml"
        path.write_text(SCENARIO.format(name=name))
        paths.append(str(path))
    return paths


@pytest.mark.usefixtures("full_disk_for_traces")
def test_a_full_trace_disk_keeps_the_summary_results_and_reports(tmp_path: Path) -> None:
    out, results, junit = tmp_path / "out", tmp_path / "r.json", tmp_path / "j.xml"
    result = CliRunner().invoke(
        cli,
        [
            *("run", *scenarios(tmp_path), "--trace", str(out)),
            *("--json", str(results), "--junit", str(junit)),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert "2 scenarios x 2 loops: 4 passed, all expectations hold" in result.stdout
    problems = result.stderr.splitlines()
    assert len(problems) == 4
    assert all(
        line.startswith(f"swaysim: trace {out}/")
        and "is incomplete: No space left on device (" in line
        for line in problems
    )
    document = json.loads(results.read_text())
    assert [(c["name"], c["loop"], c["ok"]) for c in document["checks"]] == [
        ("first", "asyncio", True),
        ("first", "trio", True),
        ("second", "asyncio", True),
        ("second", "trio", True),
    ]
    assert [f"swaysim: {line}" for line in document["output_problems"]] == problems
    assert ET.parse(junit).getroot().get("tests") == "4"
    for name in ("first", "second"):
        for loop in ("asyncio", "trio"):
            trace = json.loads((out / name / loop / "results.json").read_text())["trace"]
            assert trace["complete"] is False
            assert trace["events_dropped"] > 0
            assert "No space left on device" in trace["error"]


def test_results_that_cannot_be_written_are_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: OutputDirectory, name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(OutputDirectory, "write_bytes", no_space)
    results = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli,
        ["run", *scenarios(tmp_path), "--trace", str(tmp_path / "out"), "--json", str(results)],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"swaysim: no results.json for {name} on {loop}: No space left on device"
        for name in ("first", "second")
        for loop in ("asyncio", "trio")
    ]
    assert len(json.loads(results.read_text())["checks"]) == 4


def test_a_report_that_cannot_be_written_leaves_the_other_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import swaysim._cli.run as run_module
    from swaysim._files import write_file_atomically as real

    def write(path: Path, *args: object, option: str = "", **kwargs: object) -> None:
        if option == "--json":
            from swaysim.errors import OutputError

            raise OutputError(f"{option} {path}: cannot write: No space left on device")
        real(path, *args, option=option, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "write_file_atomically", write)
    results, junit = tmp_path / "r.json", tmp_path / "j.xml"
    result = CliRunner().invoke(
        cli,
        ["run", *scenarios(tmp_path), "--json", str(results), "--junit", str(junit)],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert result.stderr == f"swaysim: --json {results}: cannot write: No space left on device\n"
    assert ET.parse(junit).getroot().get("tests") == "4"


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system, when this machine allows mounting one."""
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("needs Linux mount")
    target = tmp_path / "tiny"
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_a_real_full_file_system(tiny_tmpfs: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(
        SCENARIO.format(name="big")
        .replace('prompts = ["a", "b", "c"]', 'prompts = ["q{i}"]')
        .replace('name = "d"', 'name = "d"\nrepeat = 400')
    )
    results = tmp_path / "r.json"
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "swaysim", "run", str(big)),
            *("--trace", str(tiny_tmpfs / "runs"), "--json", str(results)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "is incomplete: No space left on device" in completed.stderr
    assert "1 scenario x 2 loops: 2 passed" in completed.stdout
    assert len(json.loads(results.read_text())["checks"]) == 2
