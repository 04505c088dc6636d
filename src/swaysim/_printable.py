"""Text from files, made safe to print: no escape sequences, no invisible reordering.

A scenario name, a file name, a task name in a trace: anything swaysim
prints may come from a file someone else wrote, and a terminal obeys the
control characters in it (``ESC [2J`` clears the screen, ``ESC ]`` sets the
window title, U+202E reverses what follows). :func:`printable` shows each
such character as its Python escape instead (``\\x1b``, ``\\u202e``), so
what reaches the terminal is exactly what the file says, visibly. Lone
surrogates (undecodable bytes in a file name) are shown the same way, so
printing never fails on them either.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["printable"]

_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
"""C0 (but tab and newline) and C1 controls, DEL, bidirectional and invisible format
characters, line and paragraph separators, and lone surrogates."""
_LINE_BREAKS: Final = re.compile("[\t\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False) -> str:
    """``str(text)`` with every control or format character shown as its escape.

    ``multiline`` keeps newlines and tabs (a failure report); otherwise they
    are escaped too, so one value always prints as one line.
    """
    value = str(text)
    value = _UNSAFE.sub(_escape, value)
    return value if multiline else _LINE_BREAKS.sub(_escape, value)
