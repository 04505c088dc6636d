"""Small HTML builders for the report: escaping, number cells, tables, verdict badges.

Every builder returns HTML; anything that came from a run (names, messages,
task names) goes through :func:`escape` first, so a run cannot inject markup.
"""

from __future__ import annotations

import html
import json
import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "DASH",
    "escape",
    "json_for_script",
    "number",
    "percent",
    "seconds",
    "status_badge",
    "table",
    "verdict_badge",
]

#: What an absent value shows as.
DASH: Final = "&ndash;"
_VERDICTS: Final = frozenset({"PASS", "FAIL", "WARN", "SKIP", "ERROR"})


def escape(value: object) -> str:
    """``str(value)`` as HTML text or attribute value."""
    return html.escape(str(value), quote=True)


def number(value: object) -> str:
    """A number cell: thousands separators for ints, four significant digits for floats."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return escape(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return escape(value)
        return f"{value:.4g}"
    return escape(value)


def seconds(value: object) -> str:
    """Seconds to four significant digits (``value`` from a results file may be any JSON)."""
    return DASH if value is None else f"{value:.4g}&nbsp;s"


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    return DASH if value is None else f"{100.0 * value:.1f}%"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: frozenset[int] = frozenset()
) -> str:
    """An HTML table; cells are already-escaped HTML; ``numeric`` columns align right."""
    head = "".join(
        f"<th{' class=num' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict_badge(verdict: object) -> str:
    """A coloured badge for PASS/FAIL/WARN/SKIP/ERROR (grey for anything else)."""
    text = str(verdict) if verdict is not None else "?"
    css = text.lower() if text in _VERDICTS else "other"
    return f'<span class="verdict {css}">{escape(text)}</span>'


_STATUS_CLASSES: Final = {"ok": "pass", "failed": "fail", "n/a": "fail", "skipped": "skip"}


def status_badge(status: object) -> str:
    """A badge for an expectation's status: ``ok`` (green); ``failed`` and ``n/a`` (not
    checked, which fails too) red; ``skipped`` (an optional one not checked)."""
    text = str(status)
    return f'<span class="verdict {_STATUS_CLASSES.get(text, "other")}">{escape(text)}</span>'


def json_for_script(data: object) -> str:
    """JSON safe inside a <script> element (no '<', '>' or '&' can close it)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
