"""The shared vocabulary: op names, view kinds and how a view is selected."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final, Literal, TypeVar

from swaysim.errors import InvalidArgumentError

_Item = TypeVar("_Item")

Op = Literal[
    "generate", "logprob_of", "rolling_logprob", "next_token_dist", "next_token_dist_batch"
]
ViewKind = Literal["base", "ft", "scaled", "null"]

OPS: Final[tuple[Op, ...]] = (
    "generate",
    "logprob_of",
    "rolling_logprob",
    "next_token_dist",
    "next_token_dist_batch",
)
VIEW_KINDS: Final[tuple[ViewKind, ...]] = ("base", "ft", "scaled", "null")

_VIEW_ID = re.compile(r"^(?:base|ft|scaled_-?\d+\.\d\d|null_\d+(?:_rank\d+\.\d\d)?)$")


def name_tuple(owner: str, names: object) -> tuple[str, ...]:
    """A sequence of names as a tuple; one bare string is an error, not a list of letters."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise InvalidArgumentError(
            f"{owner}={names!r} must be a sequence of names, not "
            + ("one string" if isinstance(names, str) else type(names).__name__)
        )
    return tuple(names)


def typed_tuple(owner: str, items: object, item_type: type[_Item]) -> tuple[_Item, ...]:
    """A sequence of ``item_type`` as a tuple, or raise naming the field and the bad item."""
    kind = item_type.__name__
    if isinstance(items, item_type | str) or not isinstance(items, Iterable):
        raise InvalidArgumentError(f"{owner}={items!r} must be a sequence of {kind}")
    values = tuple(items)
    for index, item in enumerate(values):
        if not isinstance(item, item_type):
            raise InvalidArgumentError(f"{owner}[{index}]={item!r} must be a {kind}")
    return values


def validate_ops(owner: str, ops: tuple[str, ...]) -> None:
    """Reject unknown op names, naming the field and listing the allowed ones."""
    for op in ops:
        if op not in OPS:
            raise InvalidArgumentError(
                f"{owner}: unknown op {op!r}; expected one of {', '.join(OPS)}"
            )


def validate_views(owner: str, views: tuple[str, ...]) -> None:
    """Reject selectors that are neither a view kind nor a well-formed view id."""
    for view in views:
        if not isinstance(view, str) or (not _VIEW_ID.match(view) and view not in VIEW_KINDS):
            raise InvalidArgumentError(
                f"{owner}: unknown view {view!r}; expected a kind ({', '.join(VIEW_KINDS)}) "
                "or a view id such as 'scaled_0.50', 'null_42' or 'null_42_rank2.00'"
            )


def view_matches(selectors: tuple[str, ...], kind: str, view_id: str) -> bool:
    """Empty selectors match every view; otherwise the kind or the exact id must be listed."""
    return not selectors or kind in selectors or view_id in selectors


def require_finite(owner: str, value: float, *, minimum: float | None = None) -> float:
    """Return ``value`` as a float, or raise naming the field and the value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{owner}={value!r} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{owner}={value!r} must be finite")
    if minimum is not None and number < minimum:
        raise InvalidArgumentError(f"{owner}={value!r} must be >= {minimum:g}")
    return number


def require_int(owner: str, value: int, *, minimum: int) -> int:
    """Return ``value``, or raise if it is not an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{owner}={value!r} must be an integer")
    if value < minimum:
        raise InvalidArgumentError(f"{owner}={value!r} must be >= {minimum}")
    return value
