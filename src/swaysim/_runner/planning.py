"""Planning a suite run: checking the probes, ordering them, pooling their requests per view.

Planning happens before any view is entered. Every declarative probe states
its requests (or why it skips); :func:`pool` then turns them into work
items per view, one item per distinct request when requests are shared, so
an exclusive backend enters each view once and answers each question once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import anyio

from swaysim._runner.probes import FunctionProbe, Probe
from swaysim._runner.results import ProbeResult, Verdict, error_evidence
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from swaysim._protocols import DifferentialBackend
    from swaysim._runner.probes import ProbeContext
    from swaysim._runner.requests import Ask, ViewRef
    from swaysim.errors import WorkFailedError

__all__ = [
    "AnyProbe",
    "ProbeState",
    "WorkItem",
    "check_probes",
    "dependency_order",
    "error_result",
    "plan_probes",
    "pool",
    "request_keys",
]

AnyProbe: TypeAlias = Probe | FunctionProbe


@dataclass(slots=True, eq=False)
class WorkItem:
    """One request on one view, and every probe waiting for its answer."""

    view: ViewRef
    ask: Ask
    needers: list[ProbeState] = field(default_factory=list, repr=False)
    value: object = field(default=None, repr=False)
    failure: WorkFailedError | None = None
    done: bool = False


@dataclass(slots=True, eq=False)
class ProbeState:
    """A probe during one run: its plan, its work, its budget and its result."""

    probe: AnyProbe
    index: int
    plan: dict[ViewRef, list[Ask]] = field(default_factory=dict, repr=False)
    works: dict[tuple[ViewRef, Ask], WorkItem] = field(default_factory=dict, repr=False)
    deps: list[ProbeState] = field(default_factory=list, repr=False)
    first_start: float | None = None
    last_end: float | None = None
    busy: float = 0.0
    active: int = 0
    busy_since: float = 0.0
    timed_out: bool = False
    early: ProbeResult | None = None
    result: ProbeResult | None = None
    done: anyio.Event | None = None

    def used(self, now: float) -> float:
        """Loop seconds this probe has had a request in flight (its probe_timeout budget)."""
        return self.busy + (now - self.busy_since if self.active else 0.0)


def error_result(probe: Probe, message: str, cause: BaseException | str) -> ProbeResult:
    """The ERROR result of a declarative probe that could not measure."""
    return probe.result(Verdict.ERROR, message=message, evidence=error_evidence(cause))


def check_probes(probes: Sequence[AnyProbe]) -> None:
    """Unique names, resolved references, known dependencies, no cycles; else raise."""
    by_name: dict[str, AnyProbe] = {}
    for index, probe in enumerate(probes):
        if not isinstance(probe, Probe | FunctionProbe):
            raise InvalidArgumentError(
                f"probes[{index}]={probe!r} must be a Probe or a FunctionProbe",
                field=f"probes[{index}]",
                value=probe,
            )
        if probe.name in by_name:
            raise InvalidArgumentError(
                f"probes[{index}].name={probe.name!r} is used twice; probe names must be unique",
                field=f"probes[{index}].name",
                value=probe.name,
            )
        by_name[probe.name] = probe
    for index, probe in enumerate(probes):
        probe.bind(by_name)
        for dep in probe.requires:
            if dep not in by_name:
                raise InvalidArgumentError(
                    f"probe {probe.name!r} requires {dep!r}, which is not in the suite",
                    field=f"probes[{index}].requires",
                    value=dep,
                )
    dependency_order(probes)


def dependency_order(probes: Sequence[AnyProbe]) -> list[AnyProbe]:
    """Dependencies first, declaration order otherwise; a cycle is an error."""
    by_name = {probe.name: probe for probe in probes}
    order: list[AnyProbe] = []
    state: dict[str, int] = {}

    def visit(probe: AnyProbe, path: tuple[str, ...]) -> None:
        mark = state.get(probe.name, 0)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join((*path, probe.name))
            raise InvalidArgumentError(f"probe dependencies form a cycle: {cycle}")
        state[probe.name] = 1
        for dep in probe.requires:
            visit(by_name[dep], (*path, probe.name))
        state[probe.name] = 2
        order.append(probe)

    for probe in probes:
        visit(probe, ())
    return order


def plan_probes(
    probes: Sequence[AnyProbe], backend: DifferentialBackend, ctx: ProbeContext
) -> list[ProbeState]:
    """A state per probe, each declarative one with its plan or its early SKIP/ERROR result."""
    states = [ProbeState(probe, index) for index, probe in enumerate(probes)]
    by_name = {state.probe.name: state for state in states}
    for state in states:
        state.deps = [by_name[name] for name in state.probe.requires]
        state.done = anyio.Event()
        if isinstance(state.probe, Probe):
            _plan(state, state.probe, backend, ctx)
    return states


def _plan(state: ProbeState, probe: Probe, backend: DifferentialBackend, ctx: ProbeContext) -> None:
    try:
        reason = probe.skip_reason(backend)
        if reason is None:
            plan = {view: list(asks) for view, asks in probe.requests(ctx).items()}
            unsupported = [view.supported_by(backend) for view in plan]
            reason = next((r for r in unsupported if r is not None), None)
            state.plan = plan
        if reason is not None:
            state.plan = {}
            state.early = probe.result(Verdict.SKIP, message=f"skipped: {reason}")
    except Exception as exc:
        state.plan = {}
        state.early = error_result(probe, f"planning raised {type(exc).__name__}: {exc}", exc)


def pool(states: Iterable[ProbeState], *, share: bool) -> dict[ViewRef, list[WorkItem]]:
    """Work per view, in plan order; with ``share``, equal requests become one work item."""
    per_view: dict[ViewRef, list[WorkItem]] = {}
    shared: dict[tuple[ViewRef, Ask], WorkItem] = {}
    for state in states:
        for view, asks in state.plan.items():
            for ask in asks:
                key = (view, ask)
                if key in state.works:
                    continue
                work = shared.get(key) if share else None
                if work is None:
                    work = WorkItem(view, ask)
                    per_view.setdefault(view, []).append(work)
                    if share:
                        shared[key] = work
                work.needers.append(state)
                state.works[key] = work
    return per_view


def request_keys(state: ProbeState) -> tuple[tuple[str, str, str], ...]:
    """The sorted ``(view id, op, prompt)`` keys a probe asked for (one per batch prompt)."""
    keys = set()
    for view, asks in state.plan.items():
        for ask in asks:
            for prompt in ask.prompts if ask.op == "next_token_dist_batch" else (ask.prompt,):
                keys.add((view.view_id, ask.op, prompt))
    return tuple(sorted(keys))
