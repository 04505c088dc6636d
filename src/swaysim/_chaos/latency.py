"""Seeded latency models and the plan that assigns them to ops and views.

Latency is service time on the backend's device: an op that needs a forward
pass sleeps for its drawn latency on the event loop's clock (real or
virtual); a cache hit has no forward pass and costs nothing. Every draw is a
pure function of the plan seed and the call's identity (op, rule, view id,
prompt, per-key call index; see :mod:`swaysim._chaos.seeding`), never of how many
draws came before, so a run is reproducible whatever the scheduling order,
event loop or process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from swaysim._chaos.seeding import unit_draws
from swaysim._validation import (
    MAX_SECONDS,
    MAX_SIGMA,
    invalid,
    name_tuple,
    require_finite,
    require_instance,
    require_seconds,
    require_seed,
    typed_tuple,
    validate_ops,
    validate_views,
)
from swaysim._vocab import GENERATE_OP, NEXT_TOKEN_DIST_BATCH_OP, view_matches

if TYPE_CHECKING:
    from swaysim._vocab import Op

__all__ = ["Constant", "LatencyModel", "LatencyPlan", "LatencyRule", "LogNormal", "Uniform"]


def _set_fixed(model: object, value: float | None) -> None:
    # Frozen dataclass: a model that needs no random draw records its value once.
    object.__setattr__(model, "_fixed", value)


@dataclass(frozen=True, slots=True)
class Constant:
    """Always ``seconds``, plus a uniform ``[0, jitter)`` when ``jitter`` > 0."""

    seconds: float
    jitter: float = 0.0
    _fixed: float | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        seconds = require_seconds("seconds", self.seconds, owner="Constant")
        jitter = require_seconds("jitter", self.jitter, owner="Constant")
        _set_fixed(self, seconds if jitter == 0.0 else None)

    def sample(self, u1: float, u2: float, u3: float) -> float:
        """Map three independent uniforms in [0, 1) to a latency in seconds."""
        return self.seconds + self.jitter * u3


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform in ``[low, high)`` seconds, plus a uniform ``[0, jitter)``."""

    low: float
    high: float
    jitter: float = 0.0
    _fixed: float | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        low = require_seconds("low", self.low, owner="Uniform")
        high = require_seconds("high", self.high, owner="Uniform")
        jitter = require_seconds("jitter", self.jitter, owner="Uniform")
        if high < low:
            raise invalid(
                "high", self.high, f"must be >= Uniform.low={self.low!r}", owner="Uniform"
            )
        _set_fixed(self, low if high == low and jitter == 0.0 else None)

    def sample(self, u1: float, u2: float, u3: float) -> float:
        """Map three independent uniforms in [0, 1) to a latency in seconds."""
        return self.low + (self.high - self.low) * u1 + self.jitter * u3


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal with the given ``median`` seconds and log-space ``sigma``, plus jitter.

    ``exp(N(log(median), sigma**2))``: the heavy right tail is what makes
    timeouts and stragglers interesting.
    """

    median: float
    sigma: float
    jitter: float = 0.0
    _fixed: float | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        require_seconds("median", self.median, positive=True, owner="LogNormal")
        require_finite("sigma", self.sigma, positive=True, maximum=MAX_SIGMA, owner="LogNormal")
        require_seconds("jitter", self.jitter, owner="LogNormal")

    def sample(self, u1: float, u2: float, u3: float) -> float:
        """Map three independent uniforms in [0, 1) to a latency (Box-Muller normal).

        The tail is cut at :data:`~swaysim._validation.MAX_SECONDS`: a draw, like
        every duration the API accepts, is at most about 31 years.
        """
        z = math.sqrt(-2.0 * math.log1p(-u1)) * math.cos(2.0 * math.pi * u2)
        return min(MAX_SECONDS, self.median * math.exp(self.sigma * z)) + self.jitter * u3


LatencyModel = Constant | Uniform | LogNormal
_MODEL_TYPES: Final = (Constant, Uniform, LogNormal)
_A_MODEL: Final = "a latency model (Constant, Uniform or LogNormal)"


@dataclass(frozen=True, slots=True)
class LatencyRule:
    """Latency for the ops and views it selects; an empty selector selects everything.

    ``views`` lists view kinds (``"base"``, ``"ft"``, ``"scaled"``, ``"null"``)
    or exact view ids (``"scaled_0.50"``, ``"null_42"``).
    """

    model: LatencyModel
    ops: tuple[Op, ...] = ()
    views: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require_instance("model", self.model, _MODEL_TYPES, _A_MODEL, owner="LatencyRule")
        object.__setattr__(self, "ops", name_tuple("ops", self.ops, owner="LatencyRule"))
        object.__setattr__(self, "views", name_tuple("views", self.views, owner="LatencyRule"))
        validate_ops("ops", self.ops, owner="LatencyRule")
        validate_views("views", self.views, owner="LatencyRule")


_SLOTS = (
    "default",
    "generate_per_token",
    "batch_per_item",
    "view_switch",
    "view_enter",
    "view_exit",
)


@dataclass(frozen=True, slots=True)
class LatencyPlan:
    """Which latency each op, view switch, view enter and view exit costs.

    An op's service time is the model of the **first** rule that selects it
    (``default`` when none does; no latency when there is no default), plus
    ``generate_per_token`` times ``max_new_tokens`` for ``generate`` and
    ``batch_per_item`` per prompt that needs a forward pass for
    ``next_token_dist_batch`` (so a batch costs base + per item). Cache hits
    cost nothing: there is no forward pass. ``view_switch`` is paid on every
    switch: on an exclusive backend, entering a view other than the one
    entered last (the first entry counts: the adapter state is loaded); on a
    concurrent-safe backend, a view's first entry (views stay resident).
    ``view_enter`` and ``view_exit`` are paid on every entry and exit.

    Immutable and validated at construction; one plan may serve many
    backends and runs.
    """

    seed: int = 0
    default: LatencyModel | None = None
    rules: tuple[LatencyRule, ...] = ()
    generate_per_token: LatencyModel | None = None
    batch_per_item: LatencyModel | None = None
    view_switch: LatencyModel | None = None
    view_enter: LatencyModel | None = None
    view_exit: LatencyModel | None = None
    # True when no model draws anything random: then no call needs an identity.
    _fixed_only: bool = field(init=False, repr=False, compare=False, default=False)
    # Memo of op_model(); a pure function of the plan, so sharing it is harmless.
    _selection: dict[tuple[str, str, str], tuple[int, LatencyModel | None]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        require_seed("seed", self.seed, owner="LatencyPlan")
        rules = typed_tuple("rules", self.rules, LatencyRule, owner="LatencyPlan")
        object.__setattr__(self, "rules", rules)
        for name in _SLOTS:
            model = getattr(self, name)
            require_instance(
                name, model, _MODEL_TYPES, _A_MODEL, optional=True, owner="LatencyPlan"
            )
        models = [getattr(self, name) for name in _SLOTS] + [rule.model for rule in self.rules]
        fixed_only = all(model is None or model._fixed is not None for model in models)
        object.__setattr__(self, "_fixed_only", fixed_only)

    def op_model(self, op: str, kind: str, view_id: str) -> tuple[int, LatencyModel | None]:
        """The (rule index, model) that prices ``op`` on this view; index -1 is the default."""
        key = (op, kind, view_id)
        found = self._selection.get(key)
        if found is None:
            found = (-1, self.default)
            for index, rule in enumerate(self.rules):
                if (not rule.ops or op in rule.ops) and view_matches(rule.views, kind, view_id):
                    found = (index, rule.model)
                    break
            self._selection[key] = found
        return found

    def service_time(
        self, op: str, kind: str, view_id: str, key_text: str, call_index: int, units: int
    ) -> float | None:
        """Seconds one forward pass of ``op`` costs on this view; None when nothing prices it.

        The op's model (first matching rule, else the default) plus
        ``generate_per_token * units`` for ``generate`` or ``batch_per_item *
        units`` for a batch (units: tokens asked for, prompts computed). Each
        draw is keyed by (op, rule, view id, key, call index).
        """
        rule_index, model = self.op_model(op, kind, view_id)
        per_unit: LatencyModel | None = None
        if units:
            if op == GENERATE_OP:
                per_unit = self.generate_per_token
            elif op == NEXT_TOKEN_DIST_BATCH_OP:
                per_unit = self.batch_per_item
        if model is None and per_unit is None:
            return None
        seconds = 0.0
        if model is not None:
            fixed = model._fixed  # the common case, without a call
            seconds = (
                fixed
                if fixed is not None
                else self.draw(model, op, rule_index, view_id, key_text, call_index)
            )
        if per_unit is not None:
            seconds += self.draw(per_unit, op, "per_unit", view_id, key_text, call_index) * units
        return seconds

    def draw(self, model: LatencyModel, *identity: str | int) -> float:
        """One latency draw for the event named by ``identity``.

        A model without randomness (a constant without jitter) returns its
        value without hashing anything.
        """
        fixed = model._fixed
        if fixed is not None:
            return fixed
        u1, u2, u3 = unit_draws(self.seed, "latency", *identity)
        return model.sample(u1, u2, u3)
