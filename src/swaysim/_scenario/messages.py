"""Problems with a scenario, as data, and how each reads as one line.

A :class:`Problem` says where (the TOML key path as the author wrote it, the
line when known) and what is wrong. :func:`validation_problems` turns
pydantic's errors into problems phrased for a TOML author (the key path, the
bad value, what is allowed, a near miss), locating each error in the schema's
types rather than in pydantic's message text. :func:`scenario_error` gathers
problems into the one exception a bad scenario raises.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final, Literal, Union

from pydantic import BaseModel

from swaysim._printable import printable
from swaysim._scenario.schema import CountBounds, ScenarioSpec, SecondsBounds
from swaysim.errors import ScenarioError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from pydantic_core import ErrorDetails

__all__ = [
    "Problem",
    "did_you_mean",
    "join_key",
    "scenario_error",
    "show_value",
    "toml_key",
    "validation_problems",
]

TOP_LEVEL: Final = "(top level)"
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario: where it is and what is wrong.

    ``key`` is the TOML key path (``backend.faults.rules[2].probability``,
    ``""`` for the document's top-level table), or None when the problem is
    about the file as a whole (unreadable, too large, not TOML); ``line`` and
    ``column`` are 1-based, when known.
    """

    key: str | None
    message: str
    line: int | None = None
    column: int | None = None
    tally: bool = False
    """A line counting problems left unlisted: always the last line, whatever the order."""

    def __str__(self) -> str:
        if self.key is not None:
            line = f" (line {self.line})" if self.line is not None else ""
            return f"{self.key or TOP_LEVEL}: {self.message}{line}"
        if self.line is not None:
            column = f", column {self.column}" if self.column is not None else ""
            return f"line {self.line}{column}: {self.message}"
        return self.message


def scenario_error(source: str, problems: Iterable[Problem]) -> ScenarioError:
    """The error a bad scenario raises: every problem, one line each, named by ``source``.

    Problems about the file as a whole (no line) come first, then the rest by
    line; problems on one line keep the order they were found in; a tally of
    problems left unlisted comes last.
    """
    ordered = sorted(problems, key=lambda problem: (problem.tally, problem.line or 0))
    return ScenarioError(source, [str(problem) for problem in ordered])


# -- key paths and values ---------------------------------------------------------------


def toml_key(key: str) -> str:
    """A key as written in a TOML key path: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def join_key(path: str, key: str | int) -> str:
    """``path`` extended by a table key or an array index, as TOML writes it."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{toml_key(key)}" if path else toml_key(key)


def show_value(value: object) -> str:
    """A short, TOML-flavoured rendering of a bad value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        digits = str(value)
        return digits if abs(value) < 10**30 else f"{digits[:12]}... ({len(digits)} digits)"
    if isinstance(value, float):
        return repr(value)  # nan, inf and -inf read as TOML writes them
    if isinstance(value, str):
        text = printable(json.dumps(value, ensure_ascii=False))
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, dict | list):
        try:
            text = printable(json.dumps(value, ensure_ascii=False, default=str))
        except (TypeError, ValueError, RecursionError):
            text = ""
        if text and len(text) <= 60:
            return text
        return "a table" if isinstance(value, dict) else f"an array of {len(value)} items"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'probability'?"`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- locating an error in the schema ----------------------------------------------------


def _members(annotation: object) -> list[object]:
    """The concrete types behind Annotated/Optional/Union wrappers."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        return [member for arg in args if arg is not type(None) for member in _members(arg)]
    return [annotation]


def _only_models(members: Iterable[object]) -> list[type[BaseModel]]:
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _models(annotation: object) -> list[type[BaseModel]]:
    return _only_models(_members(annotation))


def _model_at(annotation: object) -> type[BaseModel] | None:
    models = _models(annotation)
    return models[0] if len(models) == 1 else None


def _literal_values(annotation: object) -> list[str]:
    """The values a Literal (or a union of them) allows, as strings."""
    return [
        str(value)
        for member in _members(annotation)
        if typing.get_origin(member) is Literal
        for value in typing.get_args(member)
    ]


def _tagged_member(members: Sequence[object], segment: int | str) -> type[BaseModel] | None:
    """The union member a discriminator value in pydantic's ``loc`` selects, if it is one."""
    if not isinstance(segment, str) or len(members) < 2:
        return None
    for model in _only_models(members):
        if any(segment in _literal_values(f.annotation) for f in model.model_fields.values()):
            return model
    return None


def _child(annotation: object, segment: int | str) -> object:
    """The type one ``loc`` segment below ``annotation`` (None when unknown)."""
    members = _members(annotation)
    current = members[0] if len(members) == 1 else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        field = current.model_fields.get(str(segment))
        return field.annotation if field is not None else None
    if typing.get_origin(current) in (list, dict):
        return typing.get_args(current)[-1]
    return None


def _walk(loc: Sequence[int | str]) -> tuple[str, object]:
    """The TOML key path for a pydantic ``loc``, and the schema type found there."""
    annotation: object = ScenarioSpec
    path = ""
    for segment in loc:
        tagged = _tagged_member(_members(annotation), segment)
        if tagged is not None:
            annotation = tagged
            continue
        path = join_key(path, segment)
        annotation = _child(annotation, segment)
    return path, annotation


def _length_bounds(annotation: object) -> tuple[int | None, int | None]:
    """The min/max length an Annotated list type declares, if any."""
    low = high = None
    pending = [annotation]
    while pending:
        current = pending.pop()
        if typing.get_origin(current) is Annotated:
            inner, *metadata = typing.get_args(current)
            for item in metadata:
                for constraint in (item, *getattr(item, "metadata", ())):
                    low = getattr(constraint, "min_length", low)
                    high = getattr(constraint, "max_length", high)
            pending.append(inner)
        elif typing.get_origin(current) in (Union, types.UnionType):
            pending.extend(typing.get_args(current))
    return low, high


# -- one pydantic error, phrased for a TOML author --------------------------------------


@dataclass(frozen=True, slots=True)
class _Failure:
    """One pydantic error, located: its key path and the schema type there."""

    error: ErrorDetails
    key: str
    annotation: object

    @property
    def kind(self) -> str:
        return self.error["type"]

    @property
    def value(self) -> object:
        return self.error["input"]

    def context(self, name: str, default: object = None) -> object:
        return self.error.get("ctx", {}).get(name, default)

    def rejected(self, reason: str) -> Problem:
        return Problem(self.key, f"{show_value(self.value)} is not allowed: {reason}")


def _unknown_key(failure: _Failure) -> Problem:
    loc = failure.error["loc"]
    parent = _model_at(_walk(loc[:-1])[1]) if loc[:-1] else ScenarioSpec
    allowed = list(parent.model_fields) if parent is not None else []
    hint = did_you_mean(str(loc[-1]), allowed)
    if not hint and allowed:
        hint = f"; allowed keys: {', '.join(allowed)}"
    return Problem(failure.key, f"unknown key{hint}")


def _missing(failure: _Failure) -> Problem:
    return Problem(failure.key, "required key is missing")


def _discriminator(failure: _Failure) -> str:
    return str(failure.context("discriminator", "'kind'")).strip("'")


def _tag_missing(failure: _Failure) -> Problem:
    return Problem(failure.key, f"required key {_discriminator(failure)!r} is missing")


def _tag_invalid(failure: _Failure) -> Problem:
    tag_key = _discriminator(failure)
    value = failure.value
    # pydantic's ctx holds the tag as a string; show the value as written (5, not "5").
    tag = failure.context("tag")
    if isinstance(value, dict):
        tag = value.get(tag_key, tag)
    tags = [
        allowed
        for model in _models(failure.annotation)
        if tag_key in model.model_fields
        for allowed in _literal_values(model.model_fields[tag_key].annotation)
    ]
    hint = did_you_mean(str(failure.context("tag", "")), tags)
    expected = failure.context("expected_tags", "")
    return Problem(
        join_key(failure.key, tag_key),
        f"{show_value(tag)} is not allowed: must be one of {expected}{hint}",
    )


def _not_one_of(failure: _Failure) -> Problem:
    value = failure.value
    allowed = _literal_values(failure.annotation)
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    return failure.rejected(f"must be one of {failure.context('expected', '')}{hint}")


def _invalid(failure: _Failure) -> Problem:
    reason = str(failure.context("error", failure.error["msg"]))
    if isinstance(failure.value, dict):
        return Problem(failure.key, reason)
    return failure.rejected(reason)


_COMPARISONS: Final = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _out_of_range(failure: _Failure) -> Problem:
    bound = next(iter(failure.error.get("ctx", {}).values()), "?")
    return failure.rejected(f"must be {_COMPARISONS[failure.kind]} {show_value(bound)}")


def _wrong_length(failure: _Failure) -> Problem:
    low, high = _length_bounds(failure.annotation)
    if low is not None and low == high:
        return failure.rejected(f"must have exactly {low} items")
    if failure.kind == "too_short":
        return failure.rejected(f"must have at least {failure.context('min_length')} item(s)")
    return failure.rejected(f"must have at most {failure.context('max_length')} items")


def _not_a_runner(failure: _Failure) -> Problem:
    return failure.rejected('must look like "package.module:function"')


_TYPE_REASONS: Final = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "finite_number": "must be finite",
    "string_too_short": "must not be empty",
}


def _wrong_type(failure: _Failure) -> Problem:
    kind, value = failure.kind, failure.value
    model = _model_at(failure.annotation)
    if kind in ("model_type", "model_attributes_type", "dict_type") and model in (
        CountBounds,
        SecondsBounds,
    ):
        number = "an integer" if model is CountBounds else "a number of seconds"
        return failure.rejected(f"must be {number} or a table with at_least and/or at_most")
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return failure.rejected("is too large for a number")
    text = failure.error["msg"]
    return failure.rejected(_TYPE_REASONS.get(kind) or text[:1].lower() + text[1:])


_PHRASINGS: Final[dict[str, Callable[[_Failure], Problem]]] = {
    "extra_forbidden": _unknown_key,
    "missing": _missing,
    "union_tag_not_found": _tag_missing,
    "union_tag_invalid": _tag_invalid,
    "literal_error": _not_one_of,
    "value_error": _invalid,
    "assertion_error": _invalid,
    **dict.fromkeys(_COMPARISONS, _out_of_range),
    "too_short": _wrong_length,
    "too_long": _wrong_length,
    "string_pattern_mismatch": _not_a_runner,
}


def _problem(error: ErrorDetails) -> Problem:
    key, annotation = _walk(error["loc"])
    return _PHRASINGS.get(error["type"], _wrong_type)(_Failure(error, key, annotation))


def validation_problems(
    errors: Sequence[ErrorDetails], prefix: tuple[int | str, ...] = ()
) -> list[Problem]:
    """Each pydantic error of validating a scenario (at ``prefix`` in it) as a problem.

    An unknown key is usually why a required one is "missing": unknown keys come
    first, and a "missing" that a misspelling explains is dropped.
    """
    located = []
    for error in errors:
        moved = error.copy()
        moved["loc"] = (*prefix, *error["loc"])
        located.append(moved)
    unknown: dict[tuple[int | str, ...], list[str]] = {}
    for error in located:
        if error["type"] == "extra_forbidden":
            unknown.setdefault(tuple(error["loc"][:-1]), []).append(str(error["loc"][-1]))

    def explained(error: ErrorDetails) -> bool:
        *parent, key = error["loc"]
        return bool(did_you_mean(str(key), unknown.get(tuple(parent), [])))

    kept = [e for e in located if not (e["type"] == "missing" and explained(e))]
    kept.sort(key=lambda e: 0 if e["type"] == "extra_forbidden" else 1)
    return [_problem(error) for error in kept]
