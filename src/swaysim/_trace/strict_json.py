"""JSON as swaysim writes it, and nothing else: what every trace and results reader decodes.

The standard decoder accepts more than JSON (``NaN``, ``Infinity``), turns
``1e999`` into infinity, builds integers of thousands of digits and recurses
as deep as the input nests. :func:`loads` refuses each of those with a
:class:`~swaysim.errors.TraceFormatError` saying what it found: numbers are
finite and within :data:`MAX_MAGNITUDE`, integers 64-bit, nesting at most
``SWAYSIM_MAX_NESTING`` levels. Non-finite numbers, which swaysim's own
writers spell ``"nan"``, ``"inf"`` and ``"-inf"``, are read by the callers
that allow them (:func:`number`).
"""

from __future__ import annotations

import json
import math
from typing import Final

from swaysim._limits import MAX_NESTING
from swaysim.errors import TraceFormatError

__all__ = ["MAX_INTEGER", "MAX_MAGNITUDE", "NON_FINITE_NAMES", "depth_problem", "loads", "number"]

MAX_MAGNITUDE: Final = 1e15
"""Largest number a trace or results file may hold: 31 million years of seconds, in
microseconds still exact enough for a timeline, and far from overflowing any sum."""
MAX_INTEGER: Final = 2**63 - 1
NON_FINITE_NAMES: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _constant(name: str) -> object:
    raise TraceFormatError(
        f'{name} is not JSON; swaysim writes non-finite numbers as "nan", "inf", "-inf"'
    )


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 19:
        raise TraceFormatError(f"an integer of {digits} digits is out of range (at most 64-bit)")
    value = int(text)
    if abs(value) > MAX_INTEGER:
        raise TraceFormatError(f"integer {text} is out of range (at most 64-bit)")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        shown = text if len(text) <= 30 else f"{text[:27]}..."
        raise TraceFormatError(f"number {shown} is out of range (at most {MAX_MAGNITUDE:g})")
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_constant, parse_int=_integer, parse_float=_float)


def depth_problem(value: object) -> str | None:
    """Why ``value`` nests too deeply (a message), or None; walked without recursion."""
    limit = MAX_NESTING.value()
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return f"nested more than {limit} levels deep {MAX_NESTING.hint}"
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return None


def loads(text: str) -> object:
    """Decode ``text`` strictly; a :class:`TraceFormatError` (no location) says what is wrong."""
    try:
        value: object = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        where = (
            f"line {exc.lineno}, column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        )
        raise TraceFormatError(f"not a JSON object ({exc.msg} at {where})") from None
    except RecursionError:
        raise TraceFormatError(
            f"nested more than {MAX_NESTING.value()} levels deep {MAX_NESTING.hint}"
        ) from None
    except ValueError as exc:  # a number the hooks let through but float() or int() refuse
        raise TraceFormatError(f"not a JSON object ({exc})") from None
    problem = depth_problem(value)
    if problem is not None:
        raise TraceFormatError(problem)
    return value


def number(value: object, *, non_finite: bool) -> float | None:
    """``value`` as a float if it is a JSON number (or, when allowed, a non-finite name)."""
    if isinstance(value, str) and non_finite:
        return NON_FINITE_NAMES.get(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
