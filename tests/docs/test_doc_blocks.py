"""Every code block of README.md and docs/**/*.md runs as pasted (tests/doc_blocks.py).

One test per block, named ``<document>:<line>-<how it runs>``, so a broken
example names itself. A block no rule covers fails
(``test_every_block_is_accounted_for``): add a marker, or a rule to
tests/doc_blocks.py, never a silent exception.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Final

import pytest

from doc_blocks import (
    COMMAND_RULES,
    MARKERS,
    ROOT,
    Block,
    all_blocks,
    commands,
    program,
    scratch_folder,
)
from swaysim.trace import decode_event

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

BLOCKS: Final = all_blocks()
TIMEOUT: Final = 300


def run(
    argv: list[str], cwd: Path, *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def must_pass(completed: subprocess.CompletedProcess[str], what: str) -> str:
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{what} exited {completed.returncode}:\n{output[-4000:]}"
    return output


# -- how each kind of block runs --------------------------------------------------------


def run_python(block: Block, folder: Path) -> None:
    (folder / "block.py").write_text(block.text, encoding="utf-8")
    must_pass(run([sys.executable, "block.py"], folder), "the block, run as a script")


def run_toml(block: Block, folder: Path) -> None:
    (folder / "example.toml").write_text(block.text, encoding="utf-8")
    argv = [sys.executable, "-m", "swaysim", "run", "example.toml"]
    must_pass(run(argv, folder), "swaysim run on the block")


def run_command(words: list[str], folder: Path) -> None:
    env, name, args = program(words)
    if name == "swaysim":
        argv = [sys.executable, "-m", "swaysim", *args]
        must_pass(run(argv, folder, env=env), " ".join(words))
    elif name == "make":
        must_pass(run(["make", "-n", *args], ROOT, env=env), f"make -n {' '.join(args)}")
    elif name == "pytest":
        expanded = [
            match for arg in args for match in sorted(glob.glob(arg, root_dir=ROOT)) or [arg]
        ]
        argv = [*CHILD_PYTEST, "--collect-only", *expanded, "-n", "0"]
        output = must_pass(run(argv, ROOT, env=env), f"pytest --collect-only {' '.join(args)}")
        assert " collected" in output or "tests collected" in output, output[-2000:]
    else:
        pytest.fail(
            f"no rule for the command {' '.join(words)!r}: add one to COMMAND_RULES in "
            "tests/doc_blocks.py, or mark the block <!-- doctest: skip: REASON -->"
        )


CHILD_PYTEST: Final = (
    sys.executable,
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:looptime_plugin",
)
"""pytest in a block's folder. looptime (installed by ``make bench``) fails any async test in a
project without pytest-asyncio, so, as in this repository's own addopts, it is switched off."""


def run_console(block: Block, folder: Path) -> None:
    found = commands(block.text)
    assert found, "a console block with no command"
    for words in found:
        run_command(words, folder)


def run_pytest_file(block: Block, folder: Path) -> None:
    tests = folder / "block_tests"
    tests.mkdir()
    (tests / "test_block.py").write_text(block.text, encoding="utf-8")
    argv = [*CHILD_PYTEST, "."]
    output = must_pass(run(argv, tests), "pytest on the block")
    assert " passed" in output, output


def run_conftest(block: Block, folder: Path) -> None:
    tests = folder / "block_tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(block.text, encoding="utf-8")
    check = ROOT / block.argument
    (tests / f"test_{check.stem}.py").write_text(check.read_text(encoding="utf-8"))
    argv = [*CHILD_PYTEST, "."]
    output = must_pass(run(argv, tests), f"pytest with the block as conftest.py and {check}")
    assert " passed" in output, output


def check_output(block: Block, folder: Path) -> None:
    words = commands(block.argument)
    assert len(words) == 1, f"output-of needs one command, got {block.argument!r}"
    env, name, args = program(words[0])
    assert name == "swaysim", "output-of runs swaysim commands"
    completed = run([sys.executable, "-m", "swaysim", *args], folder, env=env)
    printed = [line.rstrip() for line in (completed.stdout + completed.stderr).splitlines()]
    position = 0
    for line in (line.rstrip() for line in block.text.splitlines() if line.strip()):
        assert line in printed[position:], (
            f"the block says {line!r}, but {block.argument!r} printed:\n" + "\n".join(printed)
        )
        position = printed.index(line, position) + 1


def check_same_as(block: Block, folder: Path) -> None:
    original = ROOT / block.argument
    assert block.text == original.read_text(encoding="utf-8"), (
        f"the block is not a copy of {block.argument}: paste the file again"
    )
    DEFAULTS[block.language](block, folder)


def check_trace_events(block: Block, folder: Path) -> None:
    lines = [line for line in block.text.splitlines() if line.strip()]
    assert lines
    for number, line in enumerate(lines, start=1):
        decode_event(line, where=f"{block.document} block line {number}")


def skip(block: Block, folder: Path) -> None:
    pytest.skip(f"marked in {block.document}: {block.argument}")


DEFAULTS: Final[dict[str, Callable[[Block, Path], None]]] = {
    "python": run_python,
    "toml": run_toml,
    "console": run_console,
}
HANDLERS: Final[dict[str, Callable[[Block, Path], None]]] = {
    **DEFAULTS,
    "skip": skip,
    "pytest": run_pytest_file,
    "conftest": run_conftest,
    "output-of": check_output,
    "same-as": check_same_as,
    "trace-events": check_trace_events,
}


# -- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_the_block_runs_as_pasted(block: Block, tmp_path: Path) -> None:
    handler = HANDLERS.get(block.handling)
    if handler is None:
        pytest.fail(
            f"{block.document} line {block.line}: a {block.language or 'plain'} block with no "
            "rule; add a marker (tests/doc_blocks.py lists them) before it"
        )
    handler(block, scratch_folder(tmp_path))


def test_every_block_is_accounted_for() -> None:
    assert set(MARKERS) <= set(HANDLERS)
    assert {"swaysim", "make", "pytest"} == set(COMMAND_RULES)
    unknown = [b.id for b in BLOCKS if b.marker is not None and b.marker not in MARKERS]
    assert not unknown, f"unknown markers: {unknown}"
    unhandled = [b.id for b in BLOCKS if b.handling not in HANDLERS]
    assert not unhandled, f"blocks no rule covers: {unhandled}"
    silent = [b.id for b in BLOCKS if b.marker == "skip" and not b.argument.strip()]
    assert not silent, f"skipped without a reason: {silent}"
    needs_argument = {"conftest", "output-of", "same-as"}
    missing = [b.id for b in BLOCKS if b.marker in needs_argument and not b.argument.strip()]
    assert not missing, f"markers without their argument: {missing}"
    for block in BLOCKS:
        if block.marker in {"conftest", "same-as"}:
            assert (ROOT / block.argument).is_file(), block.id
    kinds = Counter(block.handling for block in BLOCKS)
    assert sum(kinds.values()) == len(BLOCKS) >= 20, kinds
