"""Seeded latency models and the plan that assigns them to ops and views.

Latency is service time on the backend's device: an op that needs a forward
pass sleeps for its drawn latency on the event loop's clock (real or
virtual). Every draw is a pure function of the plan seed and the call's
identity (see :mod:`swaysim._draw`), so a run is reproducible whatever the
scheduling order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swaysim._draw import unit_draws
from swaysim._errors import InvalidArgumentError
from swaysim._vocab import require_finite, require_int, validate_ops, validate_views, view_matches

if TYPE_CHECKING:
    from swaysim._vocab import Op

__all__ = ["Constant", "LatencyModel", "LatencyPlan", "LatencyRule", "LogNormal", "Uniform"]


@dataclass(frozen=True, slots=True)
class Constant:
    """Always ``seconds`` (plus up to ``jitter`` seconds, uniformly)."""

    seconds: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        require_finite("Constant.seconds", self.seconds, minimum=0.0)
        require_finite("Constant.jitter", self.jitter, minimum=0.0)

    def sample(self, u1: float, u2: float, u3: float) -> float:
        """Map three uniforms to a latency in seconds."""
        return self.seconds + self.jitter * u3


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform between ``low`` and ``high`` seconds (plus jitter)."""

    low: float
    high: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        require_finite("Uniform.low", self.low, minimum=0.0)
        require_finite("Uniform.high", self.high, minimum=0.0)
        require_finite("Uniform.jitter", self.jitter, minimum=0.0)
        if self.high < self.low:
            raise InvalidArgumentError(
                f"Uniform.high={self.high!r} must be >= Uniform.low={self.low!r}"
            )

    def sample(self, u1: float, u2: float, u3: float) -> float:
        """Map three uniforms to a latency in seconds."""
        return self.low + (self.high - self.low) * u1 + self.jitter * u3


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal with the given ``median`` seconds and log-space ``sigma``.

    The heavy right tail is what makes timeouts and stragglers interesting.
    """

    median: float
    sigma: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        require_finite("LogNormal.median", self.median, minimum=0.0)
        require_finite("LogNormal.sigma", self.sigma)
        require_finite("LogNormal.jitter", self.jitter, minimum=0.0)
        if self.median <= 0.0:
            raise InvalidArgumentError(f"LogNormal.median={self.median!r} must be > 0")
        if self.sigma <= 0.0:
            raise InvalidArgumentError(f"LogNormal.sigma={self.sigma!r} must be > 0")

    def sample(self, u1: float, u2: float, u3: float) -> float:
        """Map three uniforms to a latency in seconds (Box-Muller for the normal)."""
        z = math.sqrt(-2.0 * math.log1p(-u1)) * math.cos(2.0 * math.pi * u2)
        return self.median * math.exp(self.sigma * z) + self.jitter * u3


LatencyModel = Constant | Uniform | LogNormal
_MODEL_TYPES = (Constant, Uniform, LogNormal)


def _check_model(owner: str, model: object, *, optional: bool) -> None:
    if model is None and optional:
        return
    if not isinstance(model, _MODEL_TYPES):
        raise InvalidArgumentError(
            f"{owner}={model!r} must be a latency model (Constant, Uniform or LogNormal)"
        )


@dataclass(frozen=True, slots=True)
class LatencyRule:
    """Latency for the ops and views it selects; empty selectors select everything.

    ``views`` lists view kinds (``"base"``, ``"ft"``, ``"scaled"``, ``"null"``)
    or exact view ids (``"scaled_0.50"``, ``"null_42"``).
    """

    model: LatencyModel
    ops: tuple[Op, ...] = ()
    views: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_model("LatencyRule.model", self.model, optional=False)
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "views", tuple(self.views))
        validate_ops("LatencyRule.ops", self.ops)
        validate_views("LatencyRule.views", self.views)


@dataclass(frozen=True, slots=True)
class LatencyPlan:
    """Which latency each op, view switch, enter and exit costs.

    An op's service time is the model of the first rule that selects it (the
    ``default`` when none does; zero when there is no default), plus
    ``generate_per_token`` times ``max_new_tokens`` for ``generate`` and
    ``batch_per_item`` per prompt that needs a forward pass for
    ``next_token_dist_batch``. Cache hits cost nothing: there is no forward
    pass. ``view_switch`` is paid on entering a view other than the one
    entered last (the first entry counts: the adapter state is loaded);
    ``view_enter`` and ``view_exit`` on every entry and exit.
    """

    seed: int = 0
    default: LatencyModel | None = None
    rules: tuple[LatencyRule, ...] = ()
    generate_per_token: LatencyModel | None = None
    batch_per_item: LatencyModel | None = None
    view_switch: LatencyModel | None = None
    view_enter: LatencyModel | None = None
    view_exit: LatencyModel | None = None

    def __post_init__(self) -> None:
        require_int("LatencyPlan.seed", self.seed, minimum=0)
        object.__setattr__(self, "rules", tuple(self.rules))
        for index, rule in enumerate(self.rules):
            if not isinstance(rule, LatencyRule):
                raise InvalidArgumentError(
                    f"LatencyPlan.rules[{index}]={rule!r} must be a LatencyRule"
                )
        for name in (
            "default",
            "generate_per_token",
            "batch_per_item",
            "view_switch",
            "view_enter",
            "view_exit",
        ):
            _check_model(f"LatencyPlan.{name}", getattr(self, name), optional=True)

    def op_model(self, op: str, kind: str, view_id: str) -> tuple[int, LatencyModel | None]:
        """The (rule index, model) that prices ``op`` on this view; index -1 is the default."""
        for index, rule in enumerate(self.rules):
            if (not rule.ops or op in rule.ops) and view_matches(rule.views, kind, view_id):
                return index, rule.model
        return -1, self.default

    def draw(self, model: LatencyModel, *identity: object) -> float:
        """One latency draw for the call named by ``identity``."""
        u1, u2, u3 = unit_draws(self.seed, "latency", *identity)
        return model.sample(u1, u2, u3)
