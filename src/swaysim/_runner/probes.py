"""The probe model: what a probe asks of which view, and what it reports.

A *declarative* probe lists its requests per view (:meth:`Probe.requests`)
and turns the answers into a :class:`ProbeResult` (:meth:`Probe.finalize`).
Because the runner sees every request before any is sent, it can pool work
per view (one entry per distinct view on an exclusive backend), share
identical requests between probes, and parallelise on a concurrent-safe
backend, without the probe knowing. A :class:`FunctionProbe` wraps a plain
async function over the backend for users who want to drive views
themselves; the runner schedules both kinds.
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from swaysim._protocols import NullCalibratedBackend, ScalableDifferentialBackend
from swaysim._validation import name_tuple, require_finite, require_int, validate_ops
from swaysim.errors import (
    CalibrationUnavailableError,
    InvalidArgumentError,
    WorkFailedError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from swaysim._protocols import DifferentialBackend, ScoringModel
    from swaysim._vocab import Op

__all__ = [
    "BASE",
    "FT",
    "Answers",
    "Ask",
    "CalibrationUnavailableError",
    "FunctionProbe",
    "NullCalibration",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "Verdict",
    "ViewRef",
    "WorkFailedError",
    "null_view",
    "scaled_view",
]


class Verdict(enum.StrEnum):
    """A probe's outcome. ERROR means it could not measure, never a measured "no"."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"
    ERROR = "ERROR"


ViewKindName = Literal["base", "ft", "scaled", "null"]


@dataclass(frozen=True, slots=True)
class ViewRef:
    """Names a view without entering it: ``base``, ``ft``, ``scaled(lam)``, ``null(seed)``."""

    kind: ViewKindName
    lam: float | None = None
    seed: int | None = None
    init_scale: float = 0.02
    rank_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("base", "ft", "scaled", "null"):
            raise InvalidArgumentError(
                f"ViewRef.kind={self.kind!r} is unknown; expected base, ft, scaled or null"
            )
        if self.kind == "scaled":
            if self.lam is None:
                raise InvalidArgumentError("ViewRef.lam=None must be a number for kind='scaled'")
            object.__setattr__(self, "lam", require_finite("lam", self.lam))
        if self.kind == "null":
            if self.seed is None:
                raise InvalidArgumentError(
                    "ViewRef.seed=None must be an integer >= 0 for kind='null'"
                )
            require_int("seed", self.seed, minimum=0)
            require_finite("init_scale", self.init_scale, minimum=0.0)
            rank = require_finite("rank_scale", self.rank_scale)
            if rank <= 0:
                raise InvalidArgumentError(
                    f"rank_scale={self.rank_scale!r} must be positive and finite"
                )

    @property
    def view_id(self) -> str:
        """The id the dummy backend gives this view (``scaled_0.50``, ``null_3_rank2.00``)."""
        if self.kind == "scaled":
            return f"scaled_{self.lam:.2f}"
        if self.kind == "null":
            if self.rank_scale == 1.0:
                return f"null_{self.seed}"
            return f"null_{self.seed}_rank{self.rank_scale:.2f}"
        return self.kind

    @property
    def label(self) -> str:
        """A short, stable name: ``base``, ``ft``, ``scaled(0.5)``, ``null(3)``."""
        if self.kind == "scaled":
            return f"scaled({self.lam!r})"
        if self.kind == "null":
            extras = []
            if self.init_scale != 0.02:
                extras.append(f"init_scale={self.init_scale!r}")
            if self.rank_scale != 1.0:
                extras.append(f"rank_scale={self.rank_scale!r}")
            return f"null({', '.join([str(self.seed), *extras])})"
        return self.kind

    def sort_key(self) -> tuple[int, float, float, float]:
        """Canonical order: ft, base, scaled by lam, null by seed.

        ft first because a preflight check ends on ft: continuing there saves
        one adapter swap.
        """
        order = {"ft": 0, "base": 1, "scaled": 2, "null": 3}[self.kind]
        if self.kind == "scaled":
            return (order, float(self.lam or 0.0), 0.0, 0.0)
        if self.kind == "null":
            return (order, float(self.seed or 0), self.init_scale, self.rank_scale)
        return (order, 0.0, 0.0, 0.0)

    def supported_by(self, backend: object) -> str | None:
        """None when ``backend`` can open this view, else why not."""
        if self.kind == "scaled" and not isinstance(backend, ScalableDifferentialBackend):
            return "the backend is not scalable (no as_scaled_adapter)"
        if self.kind == "null" and not isinstance(backend, NullCalibratedBackend):
            return "the backend has no null adapter (no as_null_adapter)"
        return None

    def open(self, backend: Any) -> AbstractAsyncContextManager[ScoringModel]:
        """The backend's async context manager for this view."""
        if self.kind == "base":
            return backend.as_base()  # type: ignore[no-any-return]
        if self.kind == "ft":
            return backend.as_finetuned()  # type: ignore[no-any-return]
        if self.kind == "scaled":
            return backend.as_scaled_adapter(self.lam)  # type: ignore[no-any-return]
        return backend.as_null_adapter(  # type: ignore[no-any-return]
            self.seed, init_scale=self.init_scale, rank_scale=self.rank_scale
        )


BASE = ViewRef("base")
FT = ViewRef("ft")


def scaled_view(lam: float) -> ViewRef:
    """The adapter scaled by ``lam``."""
    return ViewRef("scaled", lam=lam)


def null_view(seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0) -> ViewRef:
    """A seeded null adapter."""
    return ViewRef("null", seed=seed, init_scale=init_scale, rank_scale=rank_scale)


@dataclass(frozen=True, slots=True)
class Ask:
    """One op request; equal asks on the same view are sent once and shared."""

    op: Op
    prompt: str = ""
    completion: str = ""
    prompts: tuple[str, ...] = ()
    top_k: int = 256
    max_new_tokens: int = 0

    def __post_init__(self) -> None:
        validate_ops("Ask.op", (self.op,))

    @classmethod
    def next_token_dist(cls, prompt: str, *, top_k: int = 256) -> Ask:
        """``view.next_token_dist(prompt, top_k=top_k)``."""
        return cls("next_token_dist", prompt=prompt, top_k=top_k)

    @classmethod
    def next_token_dist_batch(cls, prompts: Sequence[str], *, top_k: int = 256) -> Ask:
        """``view.next_token_dist_batch(prompts, top_k=top_k)``."""
        return cls("next_token_dist_batch", prompts=tuple(prompts), top_k=top_k)

    @classmethod
    def logprob_of(cls, prompt: str, completion: str) -> Ask:
        """``view.logprob_of(prompt, completion)``."""
        return cls("logprob_of", prompt=prompt, completion=completion)

    @classmethod
    def rolling_logprob(cls, text: str) -> Ask:
        """``view.rolling_logprob(text)``."""
        return cls("rolling_logprob", prompt=text)

    @classmethod
    def generate(cls, prompt: str, *, max_new_tokens: int) -> Ask:
        """``view.generate(prompt, max_new_tokens=max_new_tokens)``."""
        return cls("generate", prompt=prompt, max_new_tokens=max_new_tokens)

    def send(self, view: ScoringModel) -> Awaitable[Any]:
        """The coroutine that performs this request on ``view``."""
        op = self.op
        if op == "next_token_dist":
            return view.next_token_dist(self.prompt, top_k=self.top_k)
        if op == "logprob_of":
            return view.logprob_of(self.prompt, self.completion)
        if op == "rolling_logprob":
            return view.rolling_logprob(self.prompt)
        if op == "next_token_dist_batch":
            return view.next_token_dist_batch(self.prompts, top_k=self.top_k)
        return view.generate(self.prompt, max_new_tokens=self.max_new_tokens)

    def describe(self) -> str:
        """``next_token_dist('q1')`` style, for messages."""
        if self.op == "logprob_of":
            return f"logprob_of({self.prompt!r}, {self.completion!r})"
        if self.op == "next_token_dist_batch":
            return f"next_token_dist_batch({len(self.prompts)} prompts)"
        return f"{self.op}({self.prompt!r})"


class Answers:
    """Read-only access to the answers of a probe's requests."""

    __slots__ = ("_failures", "_values")

    def __init__(
        self,
        values: Mapping[tuple[ViewRef, Ask], Any],
        failures: Mapping[tuple[ViewRef, Ask], WorkFailedError],
    ) -> None:
        self._values = values
        self._failures = failures

    def get(self, view: ViewRef, ask: Ask) -> Any:
        """The answer, or raise :class:`WorkFailedError` if the request failed."""
        key = (view, ask)
        failure = self._failures.get(key)
        if failure is not None:
            raise failure
        try:
            return self._values[key]
        except KeyError:
            raise InvalidArgumentError(
                f"{ask.describe()} on view {view.label} was not among the probe's requests"
            ) from None


@dataclass(frozen=True, slots=True)
class NullCalibration:
    """A null-adapter probe's statistic over K null views: the z-score denominator."""

    probe: str
    target: str
    values: tuple[float, ...]
    mean: float
    std: float
    std_floor: float

    @property
    def degenerate(self) -> bool:
        """Whether std is below the floor (z-scores would be absurd)."""
        return not self.std >= self.std_floor


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found. ``raw`` is the measured statistic; ``score`` a 0..1 strength.

    ``z`` is set when the probe was calibrated against a null adapter and the
    null was not degenerate. ``duration`` is loop seconds from the probe's
    first request to its last answer.
    """

    name: str
    kind: str
    verdict: Verdict
    score: float | None = None
    raw: float | None = None
    z: float | None = None
    base_value: float | None = None
    ft_value: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    duration: float = 0.0

    def to_dict(self, *, include_timing: bool = True) -> dict[str, Any]:
        """JSON-ready; without timing, identical across loops and concurrency."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict.value,
            "score": _json_float(self.score),
            "raw": _json_float(self.raw),
            "z": _json_float(self.z),
            "base_value": _json_float(self.base_value),
            "ft_value": _json_float(self.ft_value),
            "evidence": _json_ready(self.evidence),
            "message": self.message,
        }
        if include_timing:
            out["duration"] = self.duration
        return out


def _json_float(value: float | None) -> float | str | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else repr(number)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return _json_float(value)
    if hasattr(value, "item"):
        return _json_ready(value.item())
    return str(value)


@dataclass(slots=True)
class ProbeContext:
    """What a probe can see when it plans, finalizes or runs as a function."""

    backend: DifferentialBackend
    seed: int
    calibrations: dict[str, NullCalibration] = field(default_factory=dict)
    results: dict[str, ProbeResult] = field(default_factory=dict)
    call: Callable[..., Awaitable[Any]] | None = None

    def calibration(self, name: str) -> NullCalibration:
        """The calibration published by the null-adapter probe ``name``.

        Raises :class:`CalibrationUnavailableError` naming that probe's
        verdict and message when it published none.
        """
        found = self.calibrations.get(name)
        if found is not None:
            return found
        upstream = self.results.get(name)
        if upstream is None:
            why = "no result yet"
        else:
            why = upstream.verdict.value + (f": {upstream.message}" if upstream.message else "")
        raise CalibrationUnavailableError(f"null calibration {name!r} is unavailable ({why})")


def _check_name(name: object) -> str:
    # "__" is reserved for the runner's own results, such as "__preflight__".
    if not isinstance(name, str) or not name or name.startswith("__"):
        raise InvalidArgumentError(
            f"probe name={name!r} must be a non-empty string not starting with '__'"
        )
    return name


def _requirements(requires: Sequence[str]) -> tuple[str, ...]:
    names = name_tuple("requires", requires)
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise InvalidArgumentError(f"requires[{index}]={name!r} must be a probe name")
    return names


class Probe(ABC):
    """A declarative probe: requests per view in, one :class:`ProbeResult` out."""

    kind: ClassVar[str] = "probe"

    def __init__(self, name: str, *, requires: Sequence[str] = ()) -> None:
        self.name = _check_name(name)
        self.requires: tuple[str, ...] = _requirements(requires)

    def skip_reason(self, backend: object) -> str | None:
        """None to run, or why this probe must SKIP on ``backend``."""
        return None

    @abstractmethod
    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        """Every request this probe needs, per view."""

    @abstractmethod
    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        """Turn the answers into a result (raise to make it an ERROR)."""

    def result(self, verdict: Verdict, **fields: Any) -> ProbeResult:
        """A result carrying this probe's name and kind."""
        return ProbeResult(name=self.name, kind=self.kind, verdict=verdict, **fields)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _is_async_callable(func: object) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class FunctionProbe:
    """A probe written as a function of the backend: ``probe(backend, ctx) -> ProbeResult``.

    The function enters views itself; on an exclusive backend the runner runs
    function probes one at a time so they can never collide.

    - An ``async def`` function gets the async backend; ``await
      ctx.call(view.op, *args)`` applies the runner's op timeout and retry
      policy to one op.
    - A plain ``def`` function (dlm-sway style synchronous probe code) runs in
      a worker thread and gets a :class:`~swaysim.BlockingBackend` whose views
      are ordinary context managers; the runner's ``op_timeout`` bounds each
      of its ops, and ``probe_timeout`` the whole function. Exclusivity,
      latency and faults behave exactly as for async callers.
    """

    kind: ClassVar[str] = "function"

    def __init__(
        self,
        name: str,
        func: Callable[[Any, ProbeContext], Awaitable[ProbeResult] | ProbeResult],
        *,
        requires: Sequence[str] = (),
    ) -> None:
        self.name = _check_name(name)
        if not callable(func):
            raise InvalidArgumentError(
                f"func={func!r} must be callable: an async or a plain function of (backend, ctx)"
            )
        self.func = func
        self.is_async = _is_async_callable(func)
        self.requires: tuple[str, ...] = _requirements(requires)

    def finish(self, result: ProbeResult, duration: float) -> ProbeResult:
        """Stamp the runner's name and duration on what the function returned."""
        if not isinstance(result, ProbeResult):
            raise InvalidArgumentError(
                f"function probe {self.name!r} returned {result!r}; it must return a ProbeResult"
            )
        return replace(result, name=self.name, duration=duration)

    def __repr__(self) -> str:
        return f"<FunctionProbe {self.name!r}>"
