"""Every exception swaysim raises on purpose, in one tree.

A runner under test must be able to tell *swaysim's* complaints (a view
conflict, an injected fault, a bad argument) apart from its own bugs, so
everything raised on purpose derives from :class:`SwaysimError`::

    SwaysimError
    ├── InvalidArgumentError (also ValueError)     a bad argument, plan or option
    │   └── ScenarioError                          a bad scenario file (every problem listed)
    ├── ViewError                                  misuse of the view contract
    │   ├── ViewConflictError                      a second live view under "strict"
    │   │   ├── NestedViewError                    a task holding a view entered another
    │   │   │   └── NestedViewAlreadyActiveError   the same, raised by swaysim.dlm_sway (also
    │   │   │                                      ViewAlreadyActiveError)
    │   │   └── ViewAlreadyActiveError             a conflict raised by swaysim.dlm_sway (also
    │   │                                          RuntimeError, worded as dlm-sway's dummy)
    │   └── StaleViewError                         a view used after its block exited
    ├── MissingResponseError (also KeyError)       no canned response for the request
    ├── InjectedFault                              raised by a fault rule that fired
    │   ├── InjectedTransientError                 retryable
    │   ├── InjectedFatalError                     not retryable
    │   ├── InjectedViewEnterError                 the adapter did not load (retryable)
    │   └── InjectedViewExitError                  the adapter did not unload
    ├── ProbeMathError                             a number a probe may not report
    ├── WorkFailedError                            a request a probe needed failed
    ├── CalibrationUnavailableError                z-scoring against a missing null calibration
    ├── BridgeError                                the blocking bridge cannot serve a call
    ├── TraceFormatError                           a trace or results file that does not parse
    ├── OutputError                                an output that cannot be written safely
    ├── ScenarioFailedError                        a scenario's expectations did not all hold
    ├── TrialCrashedError                          an explore trial raised instead of judging
    └── MissingDependencyError (also ModuleNotFoundError)  an optional package is not installed

    BridgeCancelled (a BaseException, like trio.Cancelled: a signal, not an error)

Importing this module imports nothing else of swaysim's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swaysim._chaos.faults import FaultFiring
    from swaysim._runner.requests import Ask, ViewRef
    from swaysim._scenario.check import ScenarioCheck

__all__ = [
    "BridgeCancelled",
    "BridgeError",
    "CalibrationUnavailableError",
    "InjectedFatalError",
    "InjectedFault",
    "InjectedTransientError",
    "InjectedViewEnterError",
    "InjectedViewExitError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "MissingResponseError",
    "NestedViewAlreadyActiveError",
    "NestedViewError",
    "OutputError",
    "ProbeMathError",
    "ScenarioError",
    "ScenarioFailedError",
    "StaleViewError",
    "SwaysimError",
    "TraceFormatError",
    "TrialCrashedError",
    "ViewAlreadyActiveError",
    "ViewConflictError",
    "ViewError",
    "WorkFailedError",
]


class SwaysimError(Exception):
    """Base class of every error swaysim raises on purpose."""


# -- arguments ----------------------------------------------------------------------


class InvalidArgumentError(SwaysimError, ValueError):
    """An argument, plan or configuration value is invalid.

    Raised at construction or call time, before any view is entered, with a
    message naming the argument, its value and what is allowed. ``field``
    names the argument as data, relative to what was built or called
    (``"seconds"`` for ``Constant(-1)``, ``"rules[2].nth"``, ``"ops[1]"``; the
    convention is in ``swaysim._validation``), and ``value`` holds what was
    given, so callers that map errors onto their own structure (a scenario
    file's key path) need not parse the message; both are None where no
    single field is to blame.
    """

    _UNSET: ClassVar[Any] = object()

    def __init__(self, message: str, *, field: str | None = None, value: Any = _UNSET) -> None:
        super().__init__(message)
        self.field = field
        self.value = None if value is self._UNSET else value
        self.has_value = value is not self._UNSET


class ScenarioError(InvalidArgumentError):
    """A scenario file is unreadable, malformed or invalid.

    ``problems`` holds one line per problem, each naming the file, the key
    path (``backend.faults.rules[2].probability``), the bad value and what is
    allowed (and its line, when known); ``str()`` lists every one of them, one per
    line, so a file with several mistakes is fixed in one pass.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(f"{source}: {p}" for p in problems) or (f"{source}: invalid",)
        super().__init__("\n".join(self.problems))


# -- views --------------------------------------------------------------------------


class ViewError(SwaysimError):
    """Base class of misuse of the view contract."""


class ViewConflictError(ViewError):
    """Entering a view would break exclusivity.

    Raised at once under ``exclusivity="strict"`` when another view is live;
    the message names both views and both tasks.
    """


class NestedViewError(ViewConflictError):
    """A task that already holds a view tried to enter another one.

    On an exclusive backend that would deadlock (the task waits for itself),
    so it is an immediate error under every policy.
    """


class ViewAlreadyActiveError(ViewConflictError, RuntimeError):
    """A view was entered while another was active, as ``swaysim.dlm_sway`` reports it.

    dlm-sway's dummy raises a ``RuntimeError`` saying "DifferentialBackend view
    already active"; code written against it catches exactly that. The
    drop-in (:mod:`swaysim.dlm_sway`) raises this instead: a swaysim
    :class:`ViewConflictError` for swaysim-aware callers, a ``RuntimeError``
    with dlm-sway's wording (then swaysim's own account of both views and
    tasks) for everyone else.
    """


class NestedViewAlreadyActiveError(NestedViewError, ViewAlreadyActiveError):
    """The thread entering a view already holds one (``swaysim.dlm_sway``'s nested entry).

    Both a :class:`NestedViewError` and a :class:`ViewAlreadyActiveError`
    (so also a ``RuntimeError``), worded as dlm-sway's dummy words it.
    """


class StaleViewError(ViewError):
    """A view was used after its ``async with`` block exited."""


class MissingResponseError(SwaysimError, KeyError):
    """The dummy backend has no canned response for the request.

    Also a :class:`KeyError`, as the seed's dummy raised one, so code written
    against the synchronous dummy keeps catching it.
    """

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; this message is a sentence.
        return str(self.args[0]) if self.args else ""


# -- injected faults ----------------------------------------------------------------


class InjectedFault(SwaysimError):
    """Base class of the exceptions injected faults raise.

    Carries the firing (rule, op, view, call number) so a runner can tell an
    injected failure from its own bug. ``retryable`` says whether a retry of
    the same call can succeed. ``item_index`` is the failing item of a batch
    call (None otherwise). Picklable, for runners that cross processes.
    """

    retryable: ClassVar[bool] = False

    def __init__(self, firing: FaultFiring, *, item_index: int | None = None) -> None:
        self.firing = firing
        self.rule_name = firing.rule_name
        self.op = firing.op
        self.view_id = firing.view_id
        self.prompt = firing.prompt
        self.call_index = firing.call_index
        self.item_index = item_index
        where = f" (batch item {item_index})" if item_index is not None else ""
        target = f" for prompt {firing.prompt!r}" if firing.prompt else ""
        super().__init__(
            f"injected {firing.kind} fault from rule {firing.rule_name!r}: {firing.op} on view "
            f"{firing.view_id!r}{target}, call {firing.call_index}{where}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_fault, (type(self), self.firing, self.item_index))

    @property
    def kind(self) -> str:
        """The fault kind that fired (``"transient"``, ``"fatal"``, ...)."""
        return self.firing.kind


def _rebuild_fault(
    cls: type[InjectedFault], firing: FaultFiring, item_index: int | None
) -> InjectedFault:
    return cls(firing, item_index=item_index)


class InjectedTransientError(InjectedFault):
    """A failure a retry may get past (the next call of the key may not fire)."""

    retryable = True


class InjectedFatalError(InjectedFault):
    """A failure that retrying will not fix."""


class InjectedViewEnterError(InjectedFault):
    """Entering the view failed (the adapter did not load); the gate was released."""

    retryable = True


class InjectedViewExitError(InjectedFault):
    """Exiting the view failed (the adapter did not unload); the gate was released."""


# -- probes and runs ----------------------------------------------------------------


class ProbeMathError(SwaysimError):
    """A probe's input or result is not a number it may report.

    Raised for corrupt or non-finite backend outputs and for results outside
    their mathematical bounds. ``label`` names the side (``base``, ``ft``, a
    view id) or the quantity (``KL(ft || base)``), ``subject`` the value
    checked (``TokenDist``, ``RollingLogprob``, or empty); the message also
    says what is wrong and the offending value.
    """

    def __init__(self, label: str, problem: str, subject: str = "") -> None:
        super().__init__(f"{label} {subject}: {problem}" if subject else f"{label}: {problem}")
        self.label = label
        self.problem = problem
        self.subject = subject

    def __reduce__(self) -> tuple[type[ProbeMathError], tuple[str, str, str]]:
        return (type(self), (self.label, self.problem, self.subject))


class WorkFailedError(SwaysimError):
    """A request a probe needed failed (after retries) or timed out."""

    def __init__(self, view: ViewRef, ask: Ask, cause: BaseException | str) -> None:
        self.view = view
        self.ask = ask
        self.cause = cause
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"{ask.describe()} on view {view.label} failed: {reason}")


class CalibrationUnavailableError(SwaysimError):
    """A probe z-scores against a null calibration that was never published.

    Its null-adapter probe was skipped, failed, or is not in the suite; the
    message says which, and why.
    """


class ScenarioFailedError(SwaysimError):
    """A scenario's expectations did not all hold (raised by pytest scenario items)."""

    def __init__(self, check: ScenarioCheck) -> None:
        self.check = check
        super().__init__(check.failure_report())


class TrialCrashedError(SwaysimError):
    """An explore trial raised instead of returning its outcome: a bug in swaysim, not the runner.

    A trial judges the runner under test and reports what the runner did wrong
    as an outcome, so an exception escaping it is swaysim's own crash. ``seed``
    names the trial, so ``swaysim explore --seed SEED --trials 1`` replays it in
    one process wherever it first ran (a worker process, a Dask cluster);
    ``detail`` is the trial's traceback as text, as a worker sends it back.
    """

    def __init__(self, seed: int, detail: str) -> None:
        self.seed = seed
        self.detail = detail
        last = detail.strip().splitlines()[-1] if detail.strip() else "no detail"
        super().__init__(
            f"the trial for seed {seed} crashed ({last}); this is a bug in swaysim, not in "
            f"the runner: replay it with --seed {seed} --trials 1 and report it with the "
            "traceback below\n" + detail
        )


class MissingDependencyError(SwaysimError, ModuleNotFoundError):
    """An optional package a swaysim module needs is not installed.

    Raised on import (``import swaysim.dlm_sway`` without dlm-sway) and by
    options that need it; a ``ModuleNotFoundError`` too, so
    ``pytest.importorskip`` and ``except ImportError`` treat it as usual. The
    message names the package and the command that installs it.
    """


# -- bridge and files ---------------------------------------------------------------


class BridgeError(SwaysimError):
    """The blocking bridge cannot serve a call.

    Raised when a blocking backend or view is called after its bridge closed
    (the ``blocking_backend`` block exited, the ``run_sync_probe`` call
    returned), when the bridge closes while a thread is still blocked on a
    call, or when the call comes from the bridge's own event loop thread,
    which would deadlock.
    """


class BridgeCancelled(BaseException):
    """The loop-side caller cancelled the work this thread was blocked on.

    Raised in the thread by a blocking call when :func:`run_sync_probe` is
    cancelled (a timeout around it, say), and by every view entry or op the
    thread attempts after that. It is deliberately a ``BaseException``, like
    ``trio.Cancelled`` and ``asyncio.CancelledError``: probe code routinely
    catches ``Exception`` (to record an error, to retry), and if that caught
    it the probe would carry on working, and holding the caller up, after
    the caller gave up on it. Let it propagate.
    """


class TraceFormatError(SwaysimError):
    """A trace file line is not a valid event of a schema version this swaysim reads."""


class OutputError(SwaysimError):
    """An output file or directory cannot be created, or cannot be created safely.

    Raised before anything runs when a destination is unwritable (a missing
    folder, a read-only file system, a path that exists as the wrong kind of
    file), and when an output tree holds a symbolic link where swaysim would
    create a file or folder: swaysim never follows a link inside the tree it
    writes. The message is one line naming the path and the reason.
    """
