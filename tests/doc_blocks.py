"""Every code block of README.md and docs/**/*.md, and how the doc tests run each one.

``make test`` runs every fenced block of the documentation as a reader would
paste it (tests/docs/test_doc_blocks.py), so an example that stops working
fails CI. How a block runs follows from its language, or from a marker: an HTML
comment right before the block, invisible on GitHub, plain in the source::

    <!-- doctest: skip: why this block cannot run -->      never run (a reason is required)
    <!-- doctest: pytest -->                               a test file: pytest must pass it
    <!-- doctest: conftest tests/docs/check_conftest.py -->  a conftest.py, with that test
    <!-- doctest: output-of swaysim run x.toml -->         a text block: what the command prints
    <!-- doctest: same-as scenarios/flaky_ft_view.toml -->  a copy of that file, then run as usual
    <!-- doctest: trace-events -->                         JSON lines: each a valid trace event

Without a marker: ``python`` runs as a script; ``toml`` is a scenario that
``swaysim run`` must pass; ``console`` runs each command by the rule for its
program (:data:`COMMAND_RULES`); any other language fails until it gets a
marker. Blocks run in a scratch folder holding copies of ``scenarios/``,
``schema/`` and ``docs/examples/``, so relative paths work as in a checkout
and nothing is written into the source tree; each block starts afresh (a
block that needs setup carries it, or names it in its marker).
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from markdown_it import MarkdownIt

ROOT: Final = Path(__file__).resolve().parent.parent
DOCUMENTS: Final = ("README.md", "docs")
COPIED: Final = ("scenarios", "schema", "docs/examples")
"""What a block's scratch folder holds: copies, so a block may write anywhere in it."""

_MARKER: Final = re.compile(
    r"<!--\s*doctest:\s*(?P<kind>[\w-]+)(?::|\s)?\s*(?P<arg>.*?)\s*-->", re.S
)
MARKERS: Final = ("skip", "pytest", "conftest", "output-of", "same-as", "trace-events")
DEFAULT_LANGUAGES: Final = ("python", "toml", "console")

COMMAND_RULES: Final = {
    "swaysim": "run for real in the scratch folder; must exit 0",
    "make": (
        "checked with `make -n TARGET` in the checkout (the target exists, its recipe expands): "
        "make targets run the whole gate or the benchmarks (minutes) or rewrite tracked files"
    ),
    "pytest": (
        "collected with `pytest --collect-only` in the checkout (the paths and options exist): "
        "a pytest session of its own takes minutes, and make test runs those tests anyway"
    ),
}
"""How a console command runs, by program (``.venv/bin/pytest`` is ``pytest``)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block and the marker before it, if any."""

    document: str
    line: int
    language: str
    text: str
    marker: str | None = None
    argument: str = ""

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}-{self.marker or self.language or 'plain'}"

    @property
    def handling(self) -> str:
        """How the block runs (the marker, else the language's default), or why it cannot."""
        if self.marker is not None:
            return self.marker
        if self.language in DEFAULT_LANGUAGES:
            return self.language
        return "unhandled"


def documents() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    found = [ROOT / "README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    return found


def blocks_of(path: Path) -> list[Block]:
    """Every fenced or indented code block of one document, with its marker."""
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    relative = path.relative_to(ROOT).as_posix()
    out = []
    for index, token in enumerate(tokens):
        if token.type not in ("fence", "code_block"):
            continue
        marker, argument = None, ""
        previous = tokens[index - 1] if index else None
        if previous is not None and previous.type == "html_block":
            match = _MARKER.search(previous.content)
            if match is not None:
                marker, argument = match.group("kind"), match.group("arg")
        assert token.map is not None
        language = token.info.split()[0] if token.info.strip() else ""
        out.append(Block(relative, token.map[0] + 1, language, token.content, marker, argument))
    return out


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks_of(path)]


def scratch_folder(into: Path) -> Path:
    """A folder holding copies of what the blocks refer to, laid out as in the checkout."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def commands(text: str) -> list[list[str]]:
    """The commands of a console block: one per line, comments and blank lines dropped."""
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def program(words: list[str]) -> tuple[dict[str, str], str, list[str]]:
    """A command's leading ``VAR=value`` settings, its program's rule name and its arguments."""
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words[0].partition("=")
        env[key] = value
        words = words[1:]
    if not words:
        return env, "", []
    name = Path(words[0]).name
    if words[:3] in (["python", "-m", "swaysim"], ["python3", "-m", "swaysim"]):
        return env, "swaysim", words[3:]
    return env, name, words[1:]
