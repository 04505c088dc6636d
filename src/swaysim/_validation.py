"""Argument checks: whether a value is acceptable, and how to say it is not.

Every check here raises :class:`~swaysim.errors.InvalidArgumentError` whose
message names the argument, the value given and what is allowed
(``FaultRule.probability=2 must be within [0, 1]``), and whose ``field`` and
``value`` carry the same as data, so a caller that built the arguments from
its own structure (a scenario file) maps the error back onto it without
parsing the message.

Numeric arguments share their bounds with the scenario schema (:data:`MAX_SEED`,
:data:`MAX_COUNT`, :data:`MAX_SECONDS`...): the schema imports them from here.

The ``field`` convention:

- ``field`` is the Python API name of the argument, relative to the call or
  object being checked, with no class prefix: ``"probability"`` for
  ``FaultRule(probability=2)``, ``"seconds"`` for ``Constant(-1)``,
  ``"cache_size"`` for the backend's constructor, ``"lam"`` for
  ``as_scaled_adapter``, ``"top_k"`` for ``next_token_dist``. The class name
  is in the message only.
- One item of a sequence argument is ``name[index]`` (``"ops[1]"``,
  ``"views[0]"``, ``"window[1]"``, ``"rules[2]"``); a field of an item is
  ``"rules[1].name"``. So a caller appends ``field`` to the path of the
  object's arguments: ``backend.faults.rules[0]`` + ``"views[1]"``.
- When two arguments disagree, ``field`` is the one the message asks to
  change (``"high"`` for ``Uniform(2, 1)``, ``"max_concurrent_views"`` when it
  needs ``safe_for_concurrent_views=True``).
- ``value`` is what was passed for ``field`` (the item, for an item), as given.
- Both are None when no single argument is to blame.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Final, TypeVar, cast

from swaysim._vocab import OPS, VIEW_KINDS, is_view_selector
from swaysim.errors import InvalidArgumentError

__all__ = [
    "MAX_COUNT",
    "MAX_MAGNITUDE",
    "MAX_RETRIES",
    "MAX_SCALE",
    "MAX_SECONDS",
    "MAX_SEED",
    "MAX_SIGMA",
    "invalid",
    "name_tuple",
    "require_bool",
    "require_count",
    "require_finite",
    "require_instance",
    "require_int",
    "require_number",
    "require_seconds",
    "require_seed",
    "require_sequence",
    "typed_tuple",
    "validate_op",
    "validate_ops",
    "validate_views",
]

_Item = TypeVar("_Item")

# The bounds every argument shares with the scenario schema (which imports them), so the
# Python API can never be handed what a scenario file may not say.
MAX_SEED: Final = 2**63 - 1
"""Seeds are 64-bit, as TOML integers are."""
MAX_COUNT: Final = 1_000_000
"""Counts: cache entries, live views, concurrency, top_k, max_new_tokens, nth, every..."""
MAX_SECONDS: Final = 1e9
"""About 31 years of loop time: beyond any run, and sums of such stay finite, so virtual
time never reaches infinity."""
MAX_MAGNITUDE: Final = 1e12
"""Thresholds, logprobs, adapter scales (lam) and tolerances."""
MAX_SIGMA: Final = 20.0
"""A lognormal's log-space deviation: ``exp(20 * 8.6)`` is still a finite float."""
MAX_SCALE: Final = 1e6
"""A null adapter's ``init_scale`` and ``rank_scale``."""
MAX_RETRIES: Final = 1000


def _label(field: str, owner: str | None, label: str | None) -> str:
    if label is not None:
        return label
    return f"{owner}.{field}" if owner else field


def invalid(
    field: str,
    value: object,
    requirement: str,
    *,
    owner: str | None = None,
    label: str | None = None,
) -> InvalidArgumentError:
    """The error ``{owner}.{field}={value!r} {requirement}``, carrying ``field`` and ``value``.

    ``label`` replaces ``{owner}.{field}`` in the message where the message
    should read differently from the field (``FaultRule.window start``).
    """
    shown = repr(value)
    if len(shown) > 80:  # a 400-digit integer, a long list: the message stays one short line
        shown = f"{shown[:60]}... ({len(shown):,} characters)"
    return InvalidArgumentError(
        f"{_label(field, owner, label)}={shown} {requirement}", field=field, value=value
    )


def require_bool(field: str, value: object, *, owner: str | None = None) -> bool:
    """``value`` if it is True or False (not merely truthy), else raise."""
    if not isinstance(value, bool):
        raise invalid(field, value, "must be True or False", owner=owner)
    return value


def require_instance(
    field: str,
    value: object,
    expected: type | tuple[type, ...],
    description: str,
    *,
    optional: bool = False,
    owner: str | None = None,
) -> None:
    """Raise ``... must be {description}`` unless ``value`` is an ``expected`` (or optional)."""
    if (value is None and optional) or isinstance(value, expected):
        return
    raise invalid(field, value, f"must be {description}", owner=owner)


def require_int(
    field: str,
    value: object,
    *,
    minimum: int,
    maximum: int | None = None,
    numpy_scalars: bool = False,
    must: str | None = None,
    owner: str | None = None,
    label: str | None = None,
) -> int:
    """``value`` as an ``int`` if it is an integer (never a bool) within [minimum, maximum].

    ``numpy_scalars`` also accepts numpy integers (returned as ``int``); the
    default refuses them, as a seed's ``repr`` feeds seeded draws.
    ``must`` states the whole requirement for every complaint ("an integer
    >= 0"); without it the message says what failed ("an integer", ">= 1").
    """
    if isinstance(value, bool) or not (
        isinstance(value, int) or (numpy_scalars and isinstance(value, numbers.Integral))
    ):
        raise invalid(field, value, f"must be {must or 'an integer'}", owner=owner, label=label)
    number = int(value)
    if number < minimum:
        raise invalid(field, value, f"must be {must or f'>= {minimum}'}", owner=owner, label=label)
    if maximum is not None and number > maximum:
        raise invalid(field, value, f"must be {must or f'<= {maximum}'}", owner=owner, label=label)
    return number


def require_count(
    field: str, value: object, *, minimum: int, owner: str | None = None, label: str | None = None
) -> int:
    """An integer count within [minimum, :data:`MAX_COUNT`] (the scenario schema's counts)."""
    return require_int(field, value, minimum=minimum, maximum=MAX_COUNT, owner=owner, label=label)


def require_seed(
    field: str, value: object, *, numpy_scalars: bool = False, owner: str | None = None
) -> int:
    """A seed: an integer within [0, :data:`MAX_SEED`] (64-bit, as the schema's)."""
    return require_int(
        field, value, minimum=0, maximum=MAX_SEED, numpy_scalars=numpy_scalars, owner=owner
    )


def require_finite(
    field: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    numpy_scalars: bool = False,
    must: str | None = None,
    owner: str | None = None,
    label: str | None = None,
) -> float:
    """``value`` as a finite ``float`` (never a bool), within [minimum, maximum], above 0
    if ``positive``.

    ``numpy_scalars`` also accepts numpy numbers; the default accepts
    ``int`` and ``float`` only. ``must`` states the requirement for every
    complaint ("positive and finite"); without it the message says what failed.
    """
    if isinstance(value, bool) or not (
        isinstance(value, int | float) or (numpy_scalars and isinstance(value, numbers.Real))
    ):
        problem = f"a number, {must}" if must else "a number"
        raise invalid(field, value, f"must be {problem}", owner=owner, label=label)
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number):
        problem = must or "finite"
    elif minimum is not None and number < minimum:
        problem = must or f">= {minimum:g}"
    elif maximum is not None and number > maximum:
        problem = must or f"<= {maximum:g}"
    elif positive and number <= 0.0:
        problem = must or "> 0"
    else:
        return number
    raise invalid(field, value, f"must be {problem}", owner=owner, label=label)


def require_seconds(
    field: str,
    value: object,
    *,
    positive: bool = False,
    owner: str | None = None,
    label: str | None = None,
) -> float:
    """Seconds within [0, :data:`MAX_SECONDS`] (above 0 if ``positive``): finite, and far
    enough from overflow that loop time stays finite however many are added up."""
    return require_finite(
        field, value, minimum=0.0, maximum=MAX_SECONDS, positive=positive, owner=owner, label=label
    )


def require_number(
    field: str, value: object, *, numpy_scalars: bool = False, owner: str | None = None
) -> float:
    """A finite number within ±:data:`MAX_MAGNITUDE` (thresholds, logprobs, lams)."""
    return require_finite(
        field,
        value,
        minimum=-MAX_MAGNITUDE,
        maximum=MAX_MAGNITUDE,
        numpy_scalars=numpy_scalars,
        owner=owner,
    )


def require_sequence(
    field: str, value: object, *, of: str, owner: str | None = None
) -> tuple[object, ...]:
    """``value`` as a tuple; one string (or one anything) is an error, not a sequence of one."""
    if not isinstance(value, str):
        try:
            return tuple(value)  # type: ignore[arg-type]
        except TypeError:
            if isinstance(value, Iterable):
                raise  # iterating failed: not this check's business
    if value is None:
        problem = f"must be a sequence of {of}, not None"
    else:
        one = "one string" if isinstance(value, str) else f"one {type(value).__name__}"
        problem = f"must be a sequence of {of}, not {one}; write ({value!r},)"
    raise invalid(field, value, problem, owner=owner)


def name_tuple(field: str, names: object, *, owner: str | None = None) -> tuple[str, ...]:
    """A sequence of names as a tuple; one bare string is an error, not a list of letters.

    The names themselves are checked by :func:`validate_ops` or :func:`validate_views`.
    """
    return cast("tuple[str, ...]", require_sequence(field, names, of="names", owner=owner))


def typed_tuple(
    field: str, items: object, item_type: type[_Item], *, owner: str | None = None
) -> tuple[_Item, ...]:
    """A sequence of ``item_type`` as a tuple, or raise naming the field and the bad item."""
    kind = item_type.__name__
    values = require_sequence(field, items, of=kind, owner=owner)
    for index, item in enumerate(values):
        if not isinstance(item, item_type):
            raise invalid(f"{field}[{index}]", item, f"must be a {kind}", owner=owner)
    return cast("tuple[_Item, ...]", values)


def validate_ops(field: str, ops: tuple[str, ...], *, owner: str | None = None) -> None:
    """Reject unknown op names, naming the field and listing the allowed ones."""
    for index, op in enumerate(ops):
        if op not in OPS:
            name = _label(field, owner, None)
            raise InvalidArgumentError(
                f"{name}: unknown op {op!r}; expected one of {', '.join(OPS)}",
                field=f"{field}[{index}]",
                value=op,
            )


def validate_op(field: str, op: str, *, owner: str | None = None) -> None:
    """Reject one unknown op name (a scalar field, so ``field`` has no index)."""
    if op not in OPS:
        raise InvalidArgumentError(
            f"{_label(field, owner, None)}: unknown op {op!r}; expected one of {', '.join(OPS)}",
            field=field,
            value=op,
        )


def validate_views(field: str, views: tuple[str, ...], *, owner: str | None = None) -> None:
    """Reject selectors that are neither a view kind nor a well-formed view id."""
    for index, view in enumerate(views):
        if not is_view_selector(view):
            raise InvalidArgumentError(
                f"{_label(field, owner, None)}: unknown view {view!r}; expected a kind "
                f"({', '.join(VIEW_KINDS)}) or a view id such as 'scaled_0.50', 'null_42' "
                "or 'null_42_rank2.00'",
                field=f"{field}[{index}]",
                value=view,
            )
