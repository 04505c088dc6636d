"""The doc-block harness itself: markers, commands, and that a broken block fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from doc_blocks import Block, blocks_of, commands, program
from test_doc_blocks import check_output, run_command, run_python

if TYPE_CHECKING:
    from pathlib import Path

DOCUMENT = """\
# A page

<!-- doctest: skip: needs a GPU -->
```python
import torch
```

<!-- doctest: output-of swaysim validate x.toml -->

```text
x.toml: ok
```

```console
SWAYSIM_LONG=1 make test   # everything
.venv/bin/pytest tests/ -n auto
```

    indented code

```rust
fn main() {}
```
"""


def test_blocks_carry_the_marker_before_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("doc_blocks.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(DOCUMENT)
    found = blocks_of(page)
    assert [(b.line, b.language, b.marker, b.argument, b.handling) for b in found] == [
        (4, "python", "skip", "needs a GPU", "skip"),
        (10, "text", "output-of", "swaysim validate x.toml", "output-of"),
        (14, "console", None, "", "console"),
        (19, "", None, "", "unhandled"),
        (21, "rust", None, "", "unhandled"),
    ]
    assert found[0].id == "page.md:4-skip"


def test_commands_drop_comments_and_split_settings_from_the_program() -> None:
    found = commands("SWAYSIM_LONG=1 make test   # all\n\n.venv/bin/pytest a b -n auto\n")
    assert found == [
        ["SWAYSIM_LONG=1", "make", "test"],
        [".venv/bin/pytest", "a", "b", "-n", "auto"],
    ]
    assert program(found[0]) == ({"SWAYSIM_LONG": "1"}, "make", ["test"])
    assert program(found[1]) == ({}, "pytest", ["a", "b", "-n", "auto"])
    assert program(["python", "-m", "swaysim", "demo"]) == ({}, "swaysim", ["demo"])


def test_a_failing_script_fails(tmp_path: Path) -> None:
    block = Block("page.md", 1, "python", "import no_such_module_anywhere\n")
    with pytest.raises(AssertionError, match="ModuleNotFoundError"):
        run_python(block, tmp_path)


def test_an_unknown_program_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="no rule for the command 'rm -rf x'"):
        run_command(["rm", "-rf", "x"], tmp_path)


def test_output_that_the_command_does_not_print_fails(tmp_path: Path) -> None:
    block = Block("page.md", 1, "text", "swaysim, version 99\n", "output-of", "swaysim --version")
    with pytest.raises(AssertionError, match="the block says 'swaysim, version 99'"):
        check_output(block, tmp_path)
