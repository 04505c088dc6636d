"""The probe model: declarative probes, function probes, and what they can see.

A *declarative* probe lists its requests per view (:meth:`Probe.requests`)
and turns the answers into a :class:`ProbeResult` (:meth:`Probe.finalize`).
Because a runner sees every request before any is sent, it can pool work
per view (one entry per distinct view on an exclusive backend), share
identical requests between probes, and parallelise on a concurrent-safe
backend, without the probe knowing. A :class:`FunctionProbe` wraps a plain
function over the backend for users who want to drive views themselves;
the reference runner schedules both kinds.

A runner drives a declarative probe in four steps, none of which needs the
reference runner: :meth:`Probe.bind` (resolve names of other probes in the
suite), :meth:`Probe.skip_reason` and :meth:`Probe.requests` (plan),
:meth:`Probe.finalize` (answers in, result out; probes in ``requires``
first, so a null calibration is published before it is used).
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import (
    TYPE_CHECKING,
    ClassVar,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypedDict,
    TypeVar,
    Unpack,
)

from swaysim._runner.results import NullCalibration, ProbeResult, Verdict
from swaysim._validation import name_tuple
from swaysim.errors import CalibrationUnavailableError, InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from swaysim._bridge.blocking import BlockingBackend
    from swaysim._protocols import DifferentialBackend
    from swaysim._runner.requests import Answers, Ask, ViewRef

__all__ = [
    "AsyncProbeFunction",
    "FunctionProbe",
    "OpCall",
    "Probe",
    "ProbeContext",
    "ResultFields",
    "SyncProbeFunction",
    "is_async_callable",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class OpCall(Protocol):
    """``await ctx.call(view.op, *args, **kwargs)``: one op under a runner's policy.

    The reference runner applies its ``op_timeout`` to each attempt and
    retries retryable failures with its backoff; a runner that offers no
    policy leaves :attr:`ProbeContext.call` as None.
    """

    def __call__(
        self, func: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Awaitable[_T]:
        """Await ``func(*args, **kwargs)`` under the policy and return its result."""
        ...


@dataclass(slots=True)
class ProbeContext:
    """What a probe can see when it plans, finalizes or runs as a function.

    A runner makes one per suite run: ``backend`` and ``seed`` as given,
    ``results`` filled in as probes finish and ``calibrations`` as null
    adapters publish theirs, and optionally ``call`` (see :class:`OpCall`).
    """

    backend: DifferentialBackend
    seed: int
    calibrations: dict[str, NullCalibration] = field(default_factory=dict)
    results: dict[str, ProbeResult] = field(default_factory=dict)
    call: OpCall | None = None

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
            f"probe name={name!r} must be a non-empty string not starting with '__'",
            field="name",
            value=name,
        )
    return name


def _requirements(requires: Sequence[str]) -> tuple[str, ...]:
    names = name_tuple("requires", requires)
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"requires[{index}]={name!r} must be a probe name",
                field=f"requires[{index}]",
                value=name,
            )
    return names


class ResultFields(TypedDict, total=False):
    """The optional fields of a :class:`ProbeResult`, for :meth:`Probe.result`."""

    score: float | None
    raw: float | None
    z: float | None
    base_value: float | None
    ft_value: float | None
    evidence: Mapping[str, object]
    message: str
    duration: float


class Probe(ABC):
    """A declarative probe: requests per view in, one :class:`ProbeResult` out."""

    kind: ClassVar[str] = "probe"

    def __init__(self, name: str, *, requires: Sequence[str] = ()) -> None:
        self.name = _check_name(name)
        self.requires: tuple[str, ...] = _requirements(requires)

    def bind(self, probes: Mapping[str, Probe | FunctionProbe]) -> None:
        """Resolve references to other probes of the suite (by name) before planning.

        A runner calls it once per suite with every probe by name; raise
        :class:`~swaysim.errors.InvalidArgumentError` when a reference does
        not resolve. Nothing to resolve by default.
        """
        del probes

    def skip_reason(self, backend: object) -> str | None:
        """None to run, or why this probe must SKIP on ``backend``."""
        return None

    @abstractmethod
    def requests(self, ctx: ProbeContext) -> Mapping[ViewRef, Sequence[Ask]]:
        """Every request this probe needs, per view (called once, before any is sent)."""

    @abstractmethod
    def finalize(self, answers: Answers, ctx: ProbeContext) -> ProbeResult:
        """Turn the answers into a result (raise to make it an ERROR).

        ``answers`` holds every request of :meth:`requests`; reading one that
        failed raises its :class:`~swaysim.errors.WorkFailedError`.
        """

    def result(self, verdict: Verdict, **fields: Unpack[ResultFields]) -> ProbeResult:
        """A result carrying this probe's name and kind."""
        return ProbeResult(name=self.name, kind=self.kind, verdict=verdict, **fields)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


AsyncProbeFunction: TypeAlias = (
    "Callable[[DifferentialBackend, ProbeContext], Awaitable[ProbeResult]]"
)
"""An ``async def`` function probe: it gets the backend the runner was given."""
SyncProbeFunction: TypeAlias = "Callable[[BlockingBackend, ProbeContext], ProbeResult]"
"""A plain ``def`` function probe: it runs in a worker thread on a blocking backend."""


def is_async_callable(func: object) -> bool:
    """Whether calling ``func`` returns a coroutine: an ``async def`` (through partials) or an
    object whose ``__call__`` is one."""
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
        func: AsyncProbeFunction | SyncProbeFunction,
        *,
        requires: Sequence[str] = (),
    ) -> None:
        self.name = _check_name(name)
        if not callable(func):
            raise InvalidArgumentError(
                f"func={func!r} must be callable: an async or a plain function of (backend, ctx)",
                field="func",
                value=func,
            )
        self.func = func
        self.is_async = is_async_callable(func)
        self.requires: tuple[str, ...] = _requirements(requires)

    def bind(self, probes: Mapping[str, Probe | FunctionProbe]) -> None:
        """Nothing to resolve: a function finds what it needs in its context."""

    def finish(self, result: ProbeResult, duration: float) -> ProbeResult:
        """Stamp the runner's name and duration on what the function returned."""
        if not isinstance(result, ProbeResult):
            raise InvalidArgumentError(
                f"function probe {self.name!r} returned {result!r}; it must return a ProbeResult"
            )
        return replace(result, name=self.name, duration=duration)

    def __repr__(self) -> str:
        return f"<FunctionProbe {self.name!r}>"
