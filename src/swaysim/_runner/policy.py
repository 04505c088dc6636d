"""The runner's options as one frozen value, validated once.

:func:`~swaysim.run_suite` turns its keyword arguments into a
:class:`RunPolicy` before it touches the backend, so a bad option fails the
call with nothing entered. Each complaint is an
:class:`~swaysim.errors.InvalidArgumentError` whose ``field`` is the
``run_suite`` argument to blame (``"op_timeout"``, ``"retry_on[1]"``), for
callers that map it onto their own structure (a scenario's
``runner.op_timeout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from swaysim._chaos.seeding import unit_draws
from swaysim._validation import (
    MAX_RETRIES,
    MAX_SECONDS,
    require_count,
    require_finite,
    require_int,
    require_seconds,
    require_seed,
)
from swaysim.errors import InjectedFault, InvalidArgumentError

__all__ = ["RunMode", "RunPolicy"]

RunMode = Literal["pooled", "naive"]
"""``"pooled"``: requests pooled per view and shared; ``"naive"``: dlm-sway 0.1.0's order."""


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """How a suite run schedules, times out and retries (see :func:`~swaysim.run_suite`).

    ``op_timeout`` and ``probe_timeout`` are loop seconds (None: no limit)
    and become floats; ``retry_on`` adds exception types to the retryable
    ones (injected transient faults and failed view entries always are).
    """

    concurrency: int = 1
    op_timeout: float | None = None
    probe_timeout: float | None = None
    retries: int = 2
    backoff: float = 0.1
    backoff_max: float = 5.0
    retry_on: tuple[type[BaseException], ...] = ()
    preflight: bool = True
    seed: int = 0
    mode: RunMode = "pooled"

    def __post_init__(self) -> None:
        require_count("concurrency", self.concurrency, minimum=1)
        object.__setattr__(self, "op_timeout", _positive_or_none("op_timeout", self.op_timeout))
        object.__setattr__(
            self, "probe_timeout", _positive_or_none("probe_timeout", self.probe_timeout)
        )
        require_int("retries", self.retries, minimum=0, maximum=MAX_RETRIES)
        require_seconds("backoff", self.backoff)
        require_seconds("backoff_max", self.backoff_max)
        require_seed("seed", self.seed)
        if self.mode not in ("pooled", "naive"):
            raise InvalidArgumentError(
                f"mode={self.mode!r} is not a runner mode; expected pooled or naive",
                field="mode",
                value=self.mode,
            )
        for index, kind in enumerate(self.retry_on):
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise InvalidArgumentError(
                    f"retry_on[{index}]={kind!r} must be an exception type",
                    field=f"retry_on[{index}]",
                    value=kind,
                )

    def retryable(self, exc: BaseException) -> bool:
        """Whether a failed attempt may be retried: an injected fault says so itself."""
        if isinstance(exc, InjectedFault):
            return exc.retryable
        return bool(self.retry_on) and isinstance(exc, self.retry_on)

    def backoff_delay(self, what: str, attempt: int) -> float:
        """Exponential backoff with seeded jitter (up to +25%), a function of the request."""
        u, _, _ = unit_draws(self.seed, "retry", what, attempt)
        return min(self.backoff_max, self.backoff * 2.0**attempt) * (1.0 + 0.25 * u)


def _positive_or_none(field: str, seconds: float | None) -> float | None:
    if seconds is None:
        return None
    number = require_finite(field, seconds)
    if not 0 < number <= MAX_SECONDS:
        raise InvalidArgumentError(
            f"{field}={number!r} must be > 0 and <= {MAX_SECONDS:g}, or None",
            field=field,
            value=seconds,
        )
    return number
