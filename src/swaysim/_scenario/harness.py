"""Driving the runner under test on the loop, and what must hold the moment it returns.

:class:`Harness` calls the runner in a task of its own, named after it (an
async runner awaited there, a synchronous one on a worker thread through the
blocking bridge), under the scenario's ``cancel_after`` and the stall guard,
with a :class:`~swaysim._backend.ledger.CallLedger` attached to the backend.
The moment the runner returns or raises, in that task and before any other
task runs, it checks the **invariants** every runner must keep, whatever the
scenario says; each broken one is a named :class:`Violation`:

- ``view_live``: a view is still live (the view and its holder are named);
- ``gate_waiter``: a task is still waiting at the gate to enter a view;
- ``op_in_flight``: an op is still being served;
- ``leaked_task``: a task the runner started is still running (asyncio: a
  task created since the runner started and not done; trio: a task in the
  task tree, system nursery included, that was not there before);
- ``swallowed_cancel``: ``cancel_after`` cancelled the runner and it returned
  normally, or raised something other than the cancellation;
- ``fault_crash``: the runner raised an injected fault (or an exception group
  or chain holding one): a fault meant for one request took the suite down;
- ``late_op``: after the runner returned, the harness keeps the loop running
  for :data:`GRACE_SECONDS` of *virtual* time (a few wall microseconds), and
  any op or view entry the backend sees then is a violation.

The harness's own task and tasks that existed before the runner started are
never counted as leaked.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import anyio
import sniffio

from swaysim._backend.ledger import COMPLETION_SEPARATOR, CallLedger, item_key
from swaysim._bridge.bridge import run_sync_probe
from swaysim._runner.probes import Probe, ProbeContext
from swaysim._runner.results import ProbeResult
from swaysim._runner.suite import SuiteResult
from swaysim._time.outside import current_outside_work
from swaysim._vocab import GENERATE_OP, LOGPROB_OF_OP, NEXT_TOKEN_DIST_BATCH_OP, NEXT_TOKEN_DIST_OP
from swaysim.errors import InjectedFault

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._backend.ledger import CallKey
    from swaysim._backend.statistics import BackendStatistics
    from swaysim._runner.planning import AnyProbe
    from swaysim._runner.requests import Ask, ViewRef
    from swaysim._scenario.under_test import RunnerUnderTest

__all__ = [
    "GRACE_SECONDS",
    "INVARIANTS",
    "STALL_SECONDS",
    "Declared",
    "Harness",
    "Session",
    "Violation",
    "ask_keys",
    "declared_requests",
]

STALL_SECONDS: Final = 1e10
"""A run still going after this many virtual seconds is stopped as stalled.

The clock jumps whenever every task waits, so only a wait that nothing ends
(a ``hang`` fault with no timeout to cut it off) gets this far, in a few wall
milliseconds, instead of hanging the process."""
GRACE_SECONDS: Final = 60.0
"""Virtual seconds the harness keeps the loop running after the runner returned, watching
for late ops: cheap on a virtual clock, and longer than any latency a library scenario sets."""
INVARIANTS: Final[dict[str, str]] = {
    "view_live": "no view live when the runner returns",
    "gate_waiter": "nobody waiting at the gate when the runner returns",
    "op_in_flight": "no op in flight when the runner returns",
    "leaked_task": "no task the runner started still running when it returns",
    "late_op": f"no op or view entry within {GRACE_SECONDS:g} virtual s after it returned",
    "swallowed_cancel": "a cancellation (cancel_after) to propagate out of the runner",
    "fault_crash": "an injected fault to fail the requests it hit, not the runner",
}
"""Every invariant, and what it expects (how a violation's message says it)."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: its name (a key of :data:`INVARIANTS`) and what was seen."""

    name: str
    observed: str

    @property
    def key(self) -> str:
        """``invariant.view_live`` style: how outcomes and reports name it."""
        return f"invariant.{self.name}"


@dataclass(slots=True)
class Session:
    """How the runner ended on the loop, and what held at that moment."""

    value: object = None
    error: BaseException | None = None
    cancelled: bool = False
    stalled: bool = False
    makespan: float = 0.0
    outside_seconds: float = 0.0
    """Of the makespan, how long the clock followed real time for work outside the loop
    (a synchronous runner's own Python on its worker thread)."""
    violations: list[Violation] = field(default_factory=list)
    statistics: BackendStatistics | None = None
    """The backend's counters the moment the runner returned."""


# -- what probes declare ----------------------------------------------------------------


def ask_keys(view: ViewRef, ask: Ask) -> list[CallKey]:
    """The requests ``ask`` on ``view`` makes, as the ledger names them (a batch: per prompt)."""
    view_id, op = view.view_id, ask.op
    if op == NEXT_TOKEN_DIST_BATCH_OP:
        return [item_key(view_id, prompt, ask.top_k) for prompt in ask.prompts]
    if op == LOGPROB_OF_OP:
        return [(view_id, op, f"{ask.prompt}{COMPLETION_SEPARATOR}{ask.completion}", 0)]
    size = ask.top_k if op == NEXT_TOKEN_DIST_OP else ask.max_new_tokens if op == GENERATE_OP else 0
    return [(view_id, op, ask.prompt, size)]


@dataclass(frozen=True, slots=True)
class Declared:
    """What a suite's probes say about themselves before anything runs."""

    requests: Mapping[str, frozenset[CallKey]]
    """Each declarative probe's requests."""
    requires: Mapping[str, tuple[str, ...]]
    """Each probe's dependencies (a null calibration it is z-scored against)."""

    def closure(self, name: str) -> set[str]:
        """``name`` and every probe it depends on, directly or not."""
        found: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current not in found:
                found.add(current)
                pending.extend(self.requires.get(current, ()))
        return found


def declared_requests(
    probes: Sequence[AnyProbe], backend: AsyncDummyDifferentialBackend, seed: int
) -> Declared:
    """Each declarative probe's requests, from its own :meth:`~swaysim.Probe.requests`.

    ``probes`` must be a fresh set (they are bound here), never the runner's.
    A probe that would SKIP, or whose planning raises, declares nothing.
    """
    by_name = {probe.name: probe for probe in probes}
    ctx = ProbeContext(backend=backend, seed=seed)
    requests: dict[str, frozenset[CallKey]] = {}
    for probe in probes:
        if not isinstance(probe, Probe):
            continue
        try:
            probe.bind(by_name)
            plan = probe.requests(ctx) if probe.skip_reason(backend) is None else {}
        except Exception:
            plan = {}
        requests[probe.name] = frozenset(
            key for view, asks in plan.items() for ask in asks for key in ask_keys(view, ask)
        )
    return Declared(requests, {probe.name: probe.requires for probe in probes})


# -- tasks ------------------------------------------------------------------------------


def _trio_tasks() -> Iterator[Any]:
    trio = sys.modules["trio"]
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        yield task
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)


def _asyncio_name(task: asyncio.Task[Any]) -> str:
    """The task's name, and what it runs when the name does not say (``Task-7``)."""
    name = task.get_name()
    what = getattr(task.get_coro(), "__qualname__", None)
    return name if not what or what in name else f"{name} running {what}"


def running_tasks() -> dict[int, tuple[object, str]]:
    """Every task of the current loop not yet finished, by id: the task and its name."""
    if sniffio.current_async_library() == "trio":
        return {id(task): (task, task.name) for task in _trio_tasks()}
    return {id(t): (t, _asyncio_name(t)) for t in asyncio.all_tasks() if not t.done()}


def _current_task() -> object:
    if sniffio.current_async_library() == "trio":
        return sys.modules["trio"].lowlevel.current_task()
    return asyncio.current_task()


# -- the harness ------------------------------------------------------------------------


def _injected(error: BaseException) -> InjectedFault | None:
    """An injected fault in ``error``, its exception group's leaves, or its cause chain."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, InjectedFault):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        pending.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
    return None


def coerce_results(value: object) -> tuple[SuiteResult | None, tuple[ProbeResult, ...]]:
    """A runner's return value as (the SuiteResult if it gave one, its results)."""
    if isinstance(value, SuiteResult):
        return value, value.results
    if isinstance(value, list | tuple) and all(isinstance(r, ProbeResult) for r in value):
        return None, tuple(value)
    raise TypeError(
        f"the runner returned {type(value).__name__}; it must return a SuiteResult "
        "or a sequence of ProbeResult"
    )


@dataclass(slots=True)
class Harness:
    """One run of ``runner`` over ``backend`` and ``probes``, observed by ``ledger``."""

    runner: RunnerUnderTest
    backend: AsyncDummyDifferentialBackend
    probes: list[AnyProbe]
    options: dict[str, Any]
    """Keyword arguments the runner gets (already filtered to what it accepts)."""
    cancel_after: float | None = None
    op_timeout: float | None = None
    """What the blocking bridge enforces per op for a synchronous runner."""
    progress: Callable[[ProbeResult, int, int], None] | None = None
    ledger: CallLedger = field(default_factory=CallLedger)

    def __post_init__(self) -> None:
        self.backend._observe(self.ledger)

    async def call(self) -> object:
        """The runner's call: awaited here, or on a worker thread for a plain ``def``."""
        function, options = self.runner.function, self.options
        if self.runner.reference:
            return await function(self.backend, self.probes, on_progress=self.progress, **options)  # type: ignore[misc]
        if self.runner.is_async:
            return await function(self.backend, self.probes, **options)  # type: ignore[misc]

        def call_sync(sync_backend: object, probes: list[AnyProbe]) -> object:
            return function(sync_backend, probes, **options)

        return await run_sync_probe(
            self.backend, call_sync, self.probes, op_timeout=self.op_timeout
        )

    @property
    def task_name(self) -> str:
        """What the runner's task is called (traces name it): ``runner``, or ``runner SPEC``."""
        runner = self.runner
        return "runner" if runner.reference else f"runner {runner.label}"

    async def _runner_task(
        self,
        session: Session,
        before: Mapping[int, tuple[object, str]],
        scope: anyio.CancelScope | None,
    ) -> None:
        """The runner in a task of its own; the invariants checked in it as the runner ends."""
        try:
            session.value = await self.call()
        except Exception as exc:
            session.error = exc
        except BaseExceptionGroup as group:
            if group.subgroup(anyio.get_cancelled_exc_class()) is not None:
                self._at_return(session, before, scope, propagated=True)
                raise
            session.error = group
        except BaseException:
            self._at_return(session, before, scope, propagated=True)
            raise
        self._at_return(session, before, scope, propagated=False)

    async def session(self) -> Session:
        """The runner under ``cancel_after`` and the stall guard, checked as it returns."""
        session = Session()
        account = current_outside_work(explicit=True)
        held_at_start = account.held_seconds if account is not None else 0.0
        start = anyio.current_time()
        before = running_tasks()
        scope = anyio.CancelScope(deadline=start + self.cancel_after) if self.cancel_after else None
        with anyio.move_on_after(STALL_SECONDS) as stall:
            self.ledger.harness_cancelling = lambda: (
                stall.cancel_called or bool(scope is not None and scope.cancel_called)
            )
            with scope if scope is not None else nullcontext():
                async with anyio.create_task_group() as group:
                    group.start_soon(self._runner_task, session, before, scope, name=self.task_name)
            session.cancelled = scope is not None and scope.cancelled_caught
        session.stalled = stall.cancelled_caught
        if session.stalled:
            session.violations.clear()  # what a stall guard's cancellation left is not the runner's
        session.makespan = anyio.current_time() - start
        if account is not None:
            session.outside_seconds = account.held_seconds - held_at_start
        if session.statistics is None:
            session.statistics = self.backend.statistics()
        self.ledger.returned = True
        await anyio.sleep(GRACE_SECONDS)
        if self.ledger.late.count:
            session.violations.append(Violation("late_op", self.ledger.late.describe()))
        return session

    def _at_return(
        self,
        session: Session,
        before: Mapping[int, tuple[object, str]],
        scope: anyio.CancelScope | None,
        *,
        propagated: bool,
    ) -> None:
        """The invariants, checked synchronously the moment the runner returned or raised.

        ``propagated``: the runner let a cancellation out (what it should do when cancelled).
        """
        stats = session.statistics = self.backend.statistics()
        found = session.violations
        if stats.live_views:
            held = ", ".join(f"{view!r} held by {task!r}" for view, task in stats.holders.items())
            found.append(Violation("view_live", held))
        if stats.waiting:
            found.append(Violation("gate_waiter", f"{stats.waiting} task(s) waiting to enter"))
        in_flight = list(self.ledger.in_flight.values())
        if in_flight:
            shown = "; ".join(r.describe() for r in in_flight[:3])
            more = f"; and {len(in_flight) - 3} more" if len(in_flight) > 3 else ""
            found.append(Violation("op_in_flight", f"{len(in_flight)}: {shown}{more}"))
        me = id(_current_task())
        leaked = [
            name for key, (_, name) in running_tasks().items() if key not in before and key != me
        ]
        if leaked:
            shown = ", ".join(repr(name) for name in sorted(leaked)[:5])
            found.append(Violation("leaked_task", f"{len(leaked)} still running: {shown}"))
        if scope is not None and scope.cancel_called and not propagated:
            what = (
                "returned normally"
                if session.error is None
                else f"raised {type(session.error).__name__}: {session.error}"
            )
            found.append(
                Violation("swallowed_cancel", f"cancelled at {self.cancel_after:g} s, it {what}")
            )
        injected = _injected(session.error) if session.error is not None else None
        if injected is not None:
            found.append(
                Violation("fault_crash", f"it raised {type(injected).__name__}: {injected}")
            )
