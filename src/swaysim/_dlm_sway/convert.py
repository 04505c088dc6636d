"""dlm-sway's values to swaysim's and back, so the drop-in takes and returns dlm-sway's types.

dlm-sway's ``TokenDist`` and ``RollingLogprob`` have swaysim's fields but are
other classes. The drop-in hands swaysim's backend its canned tables as live
read-only mappings that convert each value on read (a test that adds a canned
answer after construction, as dlm-sway's own tests do, is seen), and converts
every answer back: a canned answer comes back as the very object the caller
canned, anything synthesized as a new dlm-sway object over swaysim's arrays.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from swaysim._types import DummyResponses, RollingLogprob, TokenDist

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import DataclassInstance

__all__ = ["CannedOriginals", "LiveTable", "sway_answer", "swaysim_responses"]

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")
_Answer = TypeVar("_Answer", bound="DataclassInstance")


class CannedOriginals:
    """The caller's canned objects, by the swaysim object each was converted to.

    Lets an answer that came from a canned table return as the caller's own
    object (identity and class preserved), whatever swaysim did with it in
    between. Thread-safe: tables convert on read, in the loop's thread,
    while answers convert back in the caller's.
    """

    __slots__ = ("_by_id", "_lock")

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[object, object]] = {}
        self._lock = threading.Lock()

    def remember(self, converted: object, original: object) -> None:
        """``converted`` stands for ``original`` (both kept alive, so ids stay unique)."""
        with self._lock:
            self._by_id[id(converted)] = (converted, original)

    def original(self, value: object) -> object | None:
        """The canned object ``value`` was converted from, if it was."""
        found = self._by_id.get(id(value))
        if found is not None and found[0] is value:
            return found[1]
        return None

    def __repr__(self) -> str:
        return f"<CannedOriginals {len(self._by_id)} converted>"


class LiveTable(Mapping[_Key, _Value], Generic[_Key, _Value]):
    """A read-only view of a canned table whose values are converted as they are read.

    The source stays the caller's dict: entries added or replaced later are
    seen at the next read. A value is converted once per object (a memo
    keyed by the entry, checked by identity).
    """

    __slots__ = ("_convert", "_memo", "_source")

    def __init__(self, source: Mapping[_Key, object], convert: Callable[[object], _Value]) -> None:
        self._source = source
        self._convert = convert
        self._memo: dict[_Key, tuple[object, _Value]] = {}

    def __getitem__(self, key: _Key) -> _Value:
        value = self._source[key]
        memo = self._memo.get(key)
        if memo is not None and memo[0] is value:
            return memo[1]
        converted = self._convert(value)
        self._memo[key] = (value, converted)
        return converted

    def get(self, key: _Key, default: Any = None) -> Any:
        """The converted value, or ``default`` (what the backend's lookups call)."""
        if key not in self._source:
            return default
        return self[key]

    def __iter__(self) -> Iterator[_Key]:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)

    def __repr__(self) -> str:
        return f"<LiveTable of {len(self._source)} canned entries>"


def _converter(cls: type[_Answer], originals: CannedOriginals) -> Callable[[object], Any]:
    """Convert a canned dlm-sway value to swaysim's ``cls`` (same fields), remembering it."""
    names = tuple(field.name for field in dataclasses.fields(cls))

    def convert(value: object) -> object:
        if isinstance(value, cls) or not all(hasattr(value, name) for name in names):
            return value  # swaysim's own, or not one at all: the validator names it
        converted = cls(*(getattr(value, name) for name in names))
        originals.remember(converted, value)
        return converted

    return convert


def swaysim_responses(responses: object, originals: CannedOriginals) -> DummyResponses:
    """swaysim's ``DummyResponses`` reading dlm-sway's live (swaysim's own pass through).

    ``generations`` and ``logprobs`` are shared as they are; ``rolling`` and
    ``token_dists`` become :class:`LiveTable` views. swaysim's validation
    then checks every entry now, naming the table and key of a bad one.
    """
    if isinstance(responses, DummyResponses):
        return responses
    source = cast("Any", responses)
    # The backend only reads these tables, so a read-only mapping stands in for the dicts.
    return DummyResponses(
        generations=source.generations,
        logprobs=source.logprobs,
        rolling=cast(
            "dict[str, RollingLogprob]",
            LiveTable(source.rolling, _converter(RollingLogprob, originals)),
        ),
        token_dists=cast(
            "dict[str, TokenDist]",
            LiveTable(source.token_dists, _converter(TokenDist, originals)),
        ),
    )


def sway_answer(value: object, cls: type[_Answer], originals: CannedOriginals) -> _Answer:
    """An answer as dlm-sway's ``cls`` (the caller's canned object itself when it was one)."""
    original = originals.original(value)
    if isinstance(original, cls):
        return original
    return cls(*(getattr(value, field.name) for field in dataclasses.fields(cls)))
