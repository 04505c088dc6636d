"""Where a key is written in a scenario's TOML text, so problems can name a line.

:mod:`tomllib` parses values but keeps no positions, so :func:`key_lines`
scans the text itself: table headers (``[backend.latency]``), array-of-tables
headers (``[[probes]]``, numbered as the parser numbers them) and ``key =``
lines, skipping the inside of multi-line strings and arrays. It only runs on a
file that already parsed (and has problems), and it never raises: a construct
it does not follow simply gets no line. :func:`line_of` looks a problem's key
path up, falling back to the nearest enclosing key that has a line (a bad
value inside an inline table is reported on its key's line).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Final

from swaysim._scenario.messages import join_key

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["key_lines", "line_of"]

_KEY_PART: Final = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|("(?:[^"\\]|\\.)*")|'([^']*)')\s*""")
_LAST_SEGMENT: Final = re.compile(r"""(?:\[\d+\]|\.?(?:"(?:[^"\\]|\\.)*"|[^."\[]+))$""")


def _parse_key(text: str, start: int) -> tuple[list[str], int] | None:
    """A dotted key at ``text[start:]``: its parts and where it ends; None if none is there."""
    parts: list[str] = []
    position = start
    while True:
        match = _KEY_PART.match(text, position)
        if match is None:
            return None
        bare, basic, literal = match.groups()
        if basic is not None:
            try:
                parts.append(str(json.loads(basic)))
            except ValueError:
                return None
        else:
            parts.append(bare if bare is not None else literal)
        position = match.end()
        if position < len(text) and text[position] == ".":
            position += 1
            continue
        return parts, position


class _Scanner:
    """Walks the text once, tracking the open table and multi-line values."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.array_tables: dict[str, int] = {}
        self.table = ""
        self.depth = 0
        self.string: str | None = None

    def resolve(self, parts: list[str], number: int) -> str:
        """A header's key path, with the index of every array of tables along it.

        Each table along the path is located here too, unless written earlier.
        """
        path = ""
        for part in parts:
            path = join_key(path, part)
            self.lines.setdefault(path, number)
            count = self.array_tables.get(path)
            if count is not None:
                path = f"{path}[{count - 1}]"
        return path

    def header(self, line: str, number: int) -> None:
        array = line.startswith("[[")
        parsed = _parse_key(line, 2 if array else 1)
        if parsed is None:
            return
        parts, _ = parsed
        if array:
            parent = self.resolve(parts[:-1], number)
            path = join_key(parent, parts[-1])
            count = self.array_tables.get(path, 0) + 1
            self.array_tables[path] = count
            self.lines.setdefault(path, number)
            path = f"{path}[{count - 1}]"
        else:
            path = self.resolve(parts, number)
        self.lines.setdefault(path, number)
        self.table = path

    def key_value(self, line: str, number: int) -> None:
        parsed = _parse_key(line, 0)
        if parsed is None:
            return
        parts, end = parsed
        if not line[end:].lstrip().startswith("="):
            return
        path = self.table
        for part in parts:
            path = join_key(path, part)
            self.lines.setdefault(path, number)
        self.value(line[line.index("=", end) + 1 :])

    def value(self, text: str) -> None:
        """Follow strings and brackets through ``text`` (a value, or its continuation)."""
        index = 0
        while index < len(text):
            if self.string is not None:
                close = text.find(self.string, index)
                if close < 0:
                    return
                index = close + len(self.string)
                self.string = None
                continue
            char = text[index]
            if char == "#":
                return
            if text.startswith(('"""', "'''"), index):
                self.string = text[index : index + 3]
                index += 3
                continue
            if char in "\"'":
                index = self._skip_string(text, index)
                continue
            if char in "[{":
                self.depth += 1
            elif char in "]}":
                self.depth = max(0, self.depth - 1)
            index += 1

    @staticmethod
    def _skip_string(text: str, index: int) -> int:
        quote = text[index]
        index += 1
        while index < len(text) and text[index] != quote:
            index += 2 if quote == '"' and text[index] == "\\" else 1
        return index + 1

    def scan(self, text: str) -> dict[str, int]:
        for number, raw in enumerate(text.splitlines(), start=1):
            if self.string is not None or self.depth > 0:
                self.value(raw)
                continue
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                self.header(line, number)
            else:
                self.key_value(line, number)
        return self.lines


def key_lines(text: str) -> dict[str, int]:
    """The 1-based line on which each key path (as problems spell it) is first written."""
    try:
        return _Scanner().scan(text)
    except (RecursionError, ValueError, IndexError):  # pragma: no cover - a safety net
        return {}


def line_of(key: str, lines: Mapping[str, int]) -> int | None:
    """The line of ``key``, else of the nearest enclosing key written in the file."""
    while key:
        line = lines.get(key)
        if line is not None:
            return line
        last = _LAST_SEGMENT.search(key)
        if last is None:
            return None
        key = key[: last.start()]
    return None
