"""The scenario loader's limits, each checked before the work it bounds.

A scenario file is small, but what it asks for need not be: ``repeat`` times
a long prompt list makes millions of probes from two kilobytes, a 4 MiB array
of wrong types makes two million error messages. Each stage here runs before
the stage it protects and reports one :class:`Problem` naming the key and the
limit (:mod:`swaysim._limits` holds the bounds and how to raise them):

1. :func:`read_scenario`: the file is a regular file (never a FIFO or a
   device) of at most ``SWAYSIM_MAX_SCENARIO_BYTES``, read with a bounded read.
2. :func:`document_problems`: before validation, the parsed TOML nests at
   most ``SWAYSIM_MAX_NESTING`` levels and holds at most
   ``SWAYSIM_MAX_SCENARIO_VALUES`` values; :func:`untyped_problems`: the
   integers of ``[runner.options]``, which no schema type bounds, are 64-bit
   (what TOML promises).
3. :func:`expansion_problems`: before ``repeat`` expansion, the probe count,
   request count and probe text it would make are computed from the tables
   and checked against ``SWAYSIM_MAX_PROBES``, ``SWAYSIM_MAX_REQUESTS`` and
   ``SWAYSIM_MAX_EXPANDED_TEXT_BYTES``.
4. :func:`verdict_problems`: ``[expect] verdicts`` patterns times probes stays
   within ``SWAYSIM_MAX_VERDICT_CHECKS`` (each pattern is matched against every
   probe, at load and after each run).
5. :func:`first_errors`: at most :data:`MAX_REPORTED_PROBLEMS` validation
   errors are phrased, the rest counted; cross-reference checks stop there
   too, and :func:`hint_choices` keeps "did you mean" searches small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from swaysim._files import read_regular_file
from swaysim._limits import (
    MAX_EXPANDED_TEXT_BYTES,
    MAX_NESTING,
    MAX_PROBES,
    MAX_REQUESTS,
    MAX_SCENARIO_BYTES,
    MAX_SCENARIO_VALUES,
    MAX_VERDICT_CHECKS,
)
from swaysim._scenario.messages import Problem, join_key, show_value
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from pydantic_core import ErrorDetails

    from swaysim._scenario.schema import ProbeSpecBase

__all__ = [
    "MAX_HINT_CHOICES",
    "MAX_REPORTED_PROBLEMS",
    "TOML_INTEGER",
    "document_problems",
    "expansion_problems",
    "first_errors",
    "hint_choices",
    "read_scenario",
    "size_problem",
    "untyped_problems",
    "verdict_problems",
]

MAX_HINT_CHOICES: Final = 10_000
"""Past this many names, a problem gets no "did you mean" (the search would dominate)."""
MAX_REPORTED_PROBLEMS: Final = 100
"""Validation errors phrased one by one; the rest are counted in one more line."""
TOML_INTEGER: Final = 2**63 - 1
"""TOML integers are 64-bit signed: larger ones are not TOML, whatever a parser accepts."""
_REQUEST_FIELDS: Final = {
    "delta_kl": ("prompts", 2),
    "perplexity_shift": ("texts", 2),
    "preference_flip": ("triples", 4),
}
"""Per probe kind: the list whose items become requests, and requests per item
(views times completions). Ablation multiplies by its lams, a null adapter by its
seeds (see :func:`_requests_per_copy`)."""


# -- 1. the file ------------------------------------------------------------------------


def read_scenario(path: Path) -> bytes | Problem:
    """The file's bytes, read with a bounded read; a problem if it is unreadable or too big."""
    try:
        return read_regular_file(path, MAX_SCENARIO_BYTES)
    except InvalidArgumentError as exc:
        return Problem(None, f"cannot read: {exc}")
    except OSError as exc:
        return Problem(None, f"cannot read: {exc.strerror or exc}")


def size_problem(data: bytes) -> Problem | None:
    """Bytes handed over directly (``parse_scenario``) obey the same size limit."""
    if len(data) <= MAX_SCENARIO_BYTES.value():
        return None
    return Problem(None, MAX_SCENARIO_BYTES.exceeded(f"the scenario is {len(data):,} bytes"))


# -- 2. the parsed document -------------------------------------------------------------


def _walk(root: object, path: str) -> Iterator[tuple[str, object, int]]:
    """Every value under ``root`` with its key path and depth, without recursion."""
    pending: list[tuple[str, object, int]] = [(path, root, 0)]
    while pending:
        where, value, depth = pending.pop()
        yield where, value, depth
        if isinstance(value, dict):
            items = reversed(value.items())
            pending.extend((join_key(where, k), v, depth + 1) for k, v in items)
        elif isinstance(value, list):
            items = reversed(list(enumerate(value)))
            pending.extend((join_key(where, i), v, depth + 1) for i, v in items)


def document_problems(document: dict[str, object]) -> list[Problem]:
    """Depth and size of a parsed TOML document, before any validation.

    Stops at the first value past either limit, so the walk is bounded too.
    """
    depth_limit, value_limit = MAX_NESTING.value(), MAX_SCENARIO_VALUES.value()
    for count, (path, _, depth) in enumerate(_walk(document, ""), start=1):
        if count > value_limit:
            return [
                Problem(None, MAX_SCENARIO_VALUES.exceeded(f"more than {value_limit:,} values"))
            ]
        if depth > depth_limit:
            return [Problem(path, f"nested more than {depth_limit} levels deep {MAX_NESTING.hint}")]
    return []


def untyped_problems(options: dict[str, object], path: str = "runner.options") -> list[Problem]:
    """Integers in a table the schema leaves untyped (``[runner.options]``) are 64-bit.

    Typed keys have their own ranges; these go to a runner as they are, so
    they keep to what TOML promises.
    """
    problems = []
    for where, value, _ in _walk(options, path):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > TOML_INTEGER:
            message = (
                f"{show_value(value)} is not allowed: TOML integers are 64-bit "
                f"(from -{TOML_INTEGER + 1} to {TOML_INTEGER})"
            )
            problems.append(Problem(where, message))
    return problems


# -- 3. what repeat expansion would make ------------------------------------------------


def _text_bytes(value: object) -> int:
    """UTF-8 bytes of every string in ``value`` (a validated table, so shallow)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, dict):
        return sum(_text_bytes(k) + _text_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_text_bytes(item) for item in value)
    return 0


def _placeholders(value: object) -> int:
    """How many ``{i}`` a table's strings hold (each becomes the copy's index)."""
    if isinstance(value, str):
        return value.count("{i}")
    if isinstance(value, list | tuple):
        return sum(_placeholders(item) for item in value)
    return 0


def _requests_per_copy(spec: ProbeSpecBase, numeric_most: int) -> int:
    kind = str(getattr(spec, "kind", ""))
    if kind == "adapter_ablation":
        return len(getattr(spec, "prompts", ())) * (len(getattr(spec, "lams", ())) + 1)
    if kind == "null_adapter":
        return len(getattr(spec, "seeds", ())) * numeric_most
    field, per_item = _REQUEST_FIELDS.get(kind, ("", 0))
    return len(getattr(spec, field, ())) * per_item if field else 0


def expansion_problems(specs: Sequence[ProbeSpecBase]) -> list[Problem]:
    """Probes, requests and probe text ``repeat`` would make, computed per table.

    A null adapter re-runs its target's requests on each seed's view; its
    count uses the largest numeric table, an upper bound that needs no
    cross-reference. Each problem names the table that contributes most.
    """
    numeric_most = max(
        (_requests_per_copy(s, 0) for s in specs if str(getattr(s, "kind", "")) in _REQUEST_FIELDS),
        default=0,
    )
    totals = {"probes": 0, "requests": 0, "text": 0}
    largest: dict[str, tuple[int, int]] = {}
    for index, spec in enumerate(specs):
        copies = spec.repeat or 1
        fields = spec.model_dump()
        index_digits = len(str(copies - 1))
        text = _text_bytes(fields) + _placeholders(fields) * max(0, index_digits - 3)
        shares = {
            "probes": copies,
            "requests": copies * _requests_per_copy(spec, numeric_most),
            "text": copies * (text + index_digits + 1),
        }
        for name, share in shares.items():
            totals[name] += share
            if share > largest.get(name, (-1, 0))[0]:
                largest[name] = (share, index)
    problems = []
    checks = (
        ("probes", MAX_PROBES, "probes after repeat expansion", "repeat"),
        ("requests", MAX_REQUESTS, "requests after repeat expansion", "repeat"),
        ("text", MAX_EXPANDED_TEXT_BYTES, "bytes of probe text after repeat expansion", "repeat"),
    )
    for name, limit, noun, key in checks:
        if totals[name] > limit.value():
            share, index = largest[name]
            where = join_key(f"probes[{index}]", key) if specs[index].repeat else f"probes[{index}]"
            found = f"the suite would make {totals[name]:,} {noun} ({share:,} from this table)"
            problems.append(Problem(where, limit.exceeded(found)))
    return problems


def verdict_problems(patterns: int, probes: int) -> list[Problem]:
    """``[expect] verdicts`` compares every pattern with every probe name, at load and after
    each run: patterns times probes is bounded."""
    if patterns * probes <= MAX_VERDICT_CHECKS.value():
        return []
    found = f"{patterns:,} patterns times {probes:,} probes is {patterns * probes:,} comparisons"
    return [Problem("expect.verdicts", MAX_VERDICT_CHECKS.exceeded(found))]


def hint_choices(choices: Sequence[str]) -> Sequence[str]:
    """The names a "did you mean" may search: none past :data:`MAX_HINT_CHOICES` (difflib
    compares the word with each, and a problem per probe would make that quadratic)."""
    return choices if len(choices) <= MAX_HINT_CHOICES else ()


# -- 4. how many errors are phrased -----------------------------------------------------


def first_errors(errors: Sequence[ErrorDetails]) -> tuple[list[ErrorDetails], Problem | None]:
    """The errors to phrase one by one, and a line counting the rest (if any)."""
    if len(errors) <= MAX_REPORTED_PROBLEMS:
        return list(errors), None
    rest = len(errors) - MAX_REPORTED_PROBLEMS
    return list(errors[:MAX_REPORTED_PROBLEMS]), Problem(
        None, f"{rest:,} more problems of the same kinds are not listed", tally=True
    )
