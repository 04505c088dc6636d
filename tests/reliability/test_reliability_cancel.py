"""Cancellation fuzzing: cancel a suite at a seeded random point; nothing may stay behind.

Each case draws, from its index alone, a backend (exclusive or concurrent-safe,
latency, an armed fault plan, maybe schedule jitter), a small probe suite, a runner
configuration and a place to cancel it: inside preflight, while a task waits at the
gate for a view, right after a view or device slot was handed to a waiter, while a
view is being entered or is live, inside an op, inside a retry's backoff, while a
view is being exited, or at a random virtual time. The
suite runs inside a task group (with a second task squatting on views when the case
needs contention); a trace sink cancels the group at the chosen event. Afterwards:

- the task group exited and no task is left running on the loop;
- the gate is free: no live view, nobody waiting, no holder;
- the statistics are consistent: entries == exits, entries per view add up;
- no forward pass is left in flight and no device slot is held;
- every traced op start has its end and every view entry its exit.

About 1,000 cases per loop by default (a few seconds); ``--swaysim-long`` (or
``SWAYSIM_LONG=1``) runs 10,000 per loop. A failing case names its index: the case
is a pure function of it, so ``run_case(draw_case(index))`` replays it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import anyio
import numpy as np
import pytest
import sniffio

from swaysim import (
    AdapterAblation,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    FaultPlan,
    FaultRule,
    FunctionProbe,
    InjectedFault,
    LatencyPlan,
    LogNormal,
    NestedViewError,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    ProbeResult,
    TraceEvent,
    Uniform,
    Verdict,
    ViewConflictError,
    run_suite,
)
from swaysim._chaos.seeding import stable_hash
from sweeps import is_long

if TYPE_CHECKING:
    from swaysim import ProbeContext
    from swaysim._chaos.latency import LatencyModel

FUZZ_SEED: Final = 20_240_607
DEFAULT_CASES: Final = 1_000
LONG_CASES: Final = 10_000
PHASES: Final = (
    "preflight",
    "waiting",
    "handoff",
    "entering",
    "op",
    "backoff",
    "exiting",
    "deadline",
)
SAFETY_DEADLINE: Final = 60.0
"""Virtual seconds after which a case is cancelled anyway (a hang nobody times out)."""
GUARD: Final = 600.0
"""Virtual seconds the task group gets to exit once cancelled; more means something hangs."""
REENTRY_SECONDS: Final = 10.0
"""Far more than a view switch, enter and exit latency together."""
PREFLIGHT_HASH: Final = stable_hash("preflight")
PROMPTS: Final = ("alpha", "beta", "gamma", "h delta", "m epsilon", "shared")


@dataclass
class Case:
    """One fuzz case: everything drawn from its index."""

    index: int
    phase: str
    ordinal: int
    deadline: float
    backend: dict[str, Any]
    probes: list[str]
    runner: dict[str, Any]
    squatter: bool
    squatter_seed: int


@dataclass
class Outcome:
    """What happened to a case."""

    hit: str | None = None
    """The phase the cancellation landed in (None: the run finished first)."""
    finished: bool = False
    problems: list[str] = field(default_factory=list)


def _latency_model(rng: np.random.Generator) -> LatencyModel:
    choice = int(rng.integers(3))
    if choice == 0:
        return Constant(float(rng.choice([0.0, 0.005, 0.02])))
    if choice == 1:
        return Uniform(0.001, 0.05)
    return LogNormal(0.01, 0.8)


def _fault_rules(rng: np.random.Generator, phase: str) -> tuple[FaultRule, ...]:
    rules = []
    if phase == "backoff" or rng.random() < 0.5:
        probability = 0.6 if phase == "backoff" else float(rng.uniform(0.1, 0.5))
        views = ("ft", "base", "scaled", "null")[: int(rng.integers(1, 5))]
        # Not on preflight's prompt when aiming at a backoff: a failed preflight retries nothing.
        prompt = "[!p]*" if phase == "backoff" else None
        rules.append(FaultRule("transient", views=views, prompt=prompt, probability=probability))
    if rng.random() < 0.3:
        rules.append(FaultRule("hang", prompt="h*", nth=1))
    if rng.random() < 0.3:
        rules.append(FaultRule("fatal", prompt="gamma", views=("ft",)))
    if rng.random() < 0.3:
        rules.append(FaultRule(str(rng.choice(["nan", "corrupt_mass"])), prompt="m*"))  # type: ignore[arg-type]
    if rng.random() < 0.2:
        rules.append(FaultRule("nan", views=("null",), probability=0.5))
    if rng.random() < 0.25:
        rules.append(FaultRule("enter_error", views=("ft",), nth=int(rng.integers(1, 4))))
    if rng.random() < 0.25:
        rules.append(FaultRule("exit_error", views=("base",), nth=int(rng.integers(1, 4))))
    return tuple(rules)


def draw_case(index: int) -> Case:
    """The case of ``index``: a pure function of it (and FUZZ_SEED)."""
    rng = np.random.default_rng([FUZZ_SEED, index])
    phase = PHASES[index % len(PHASES)]
    handoff = phase == "handoff"
    contention = phase == "waiting" or (handoff and rng.random() < 0.5)
    safe = not contention and (handoff or rng.random() < 0.3)
    backend: dict[str, Any] = {
        "safe_for_concurrent_views": safe,
        "exclusivity": "strict" if not safe and not contention and rng.random() < 0.2 else "wait",
    }
    if safe and rng.random() < 0.5:
        backend["max_concurrent_views"] = int(rng.integers(1, 3))
    if safe and (handoff or rng.random() < 0.3):
        backend["max_concurrent_ops"] = int(rng.integers(1, 3))  # ops queue for the device
    traced = phase != "deadline" or rng.random() < 0.5
    latency: dict[str, Any] = {"seed": int(rng.integers(1000)), "default": _latency_model(rng)}
    if rng.random() < 0.5 or phase == "entering":
        latency["view_switch"] = Constant(float(rng.choice([0.01, 0.1])))
    if rng.random() < 0.3 or phase == "entering":
        latency["view_enter"] = Uniform(0.001, 0.01)
    if rng.random() < 0.3 or phase == "exiting":
        latency["view_exit"] = Uniform(0.001, 0.01)
    if rng.random() < 0.85:
        backend["latency"] = LatencyPlan(**latency)
    rules = _fault_rules(rng, phase)
    if rules:
        backend["faults"] = FaultPlan(rules, seed=int(rng.integers(1000)))
    if rng.random() < 0.5:
        backend["schedule_jitter"] = int(rng.integers(1000))
    backend["traced"] = traced
    kinds = ["dkl", "ppl", "pref", "ablation", "null", "function"]
    probes = sorted({str(k) for k in rng.choice(kinds, size=int(rng.integers(1, 5)))})
    runner = {
        "concurrency": int(rng.choice([2, 4, 8, 32] if handoff else [1, 2, 4, 8, 32])),
        "retries": int(rng.integers(1 if phase == "backoff" else 0, 4)),
        "backoff": float(rng.choice([0.01, 0.05, 0.2])),
        "op_timeout": None if rng.random() < 0.5 else float(rng.choice([0.05, 0.5, 2.0])),
        "probe_timeout": None if rng.random() < 0.7 else float(rng.choice([0.2, 1.0, 5.0])),
        "seed": int(rng.integers(1000)),
    }
    ordinal = {
        "preflight": int(rng.integers(1, 3)),
        "waiting": 1,
        "handoff": int(rng.integers(1, 7)),
        "entering": int(rng.integers(1, 5)),
        "op": int(rng.integers(1, 9)),
        "backoff": int(rng.integers(1, 4)),
        "exiting": int(rng.integers(1, 4)),
        "deadline": 0,
    }[phase]
    return Case(
        index=index,
        phase=phase,
        ordinal=ordinal,
        # Log-uniform from 0.1 ms to 1 s: early (preflight) as often as late in a run.
        deadline=float(np.exp(rng.uniform(np.log(1e-4), 0.0)))
        if phase == "deadline"
        else SAFETY_DEADLINE,
        backend=backend,
        probes=probes,
        runner=runner,
        squatter=contention or rng.random() < 0.15,
        squatter_seed=int(rng.integers(2**32)),
    )


async def _function_probe(backend: Any, ctx: ProbeContext) -> ProbeResult:
    async with backend.as_finetuned() as view:
        assert ctx.call is not None
        await ctx.call(view.next_token_dist, "beta")
        await anyio.sleep(0.01)
    return ProbeResult("function", "function", Verdict.PASS)


def _probes(names: list[str]) -> list[Any]:
    out: list[Any] = []
    for name in names:
        if name == "dkl":
            out.append(DeltaKL("dkl", list(PROMPTS[:4])))
        elif name == "ppl":
            out.append(PerplexityShift("ppl", ["m epsilon text", "held out"]))
        elif name == "pref":
            out.append(PreferenceFlip("pref", [("alpha", " yes", " no"), ("h delta", " a", " b")]))
        elif name == "ablation":
            out.append(AdapterAblation("ablation", ["shared", "gamma"], lams=(0.0, 0.5, 1.0)))
        elif name == "null":
            out.append(DeltaKL("calibrated", ["shared", "m epsilon"], null="null"))
            out.append(NullAdapter("null", "calibrated", seeds=(0, 1), init_scale=0.2))
        else:
            out.append(FunctionProbe("function", _function_probe))
    return out


class CancelAt:
    """A trace sink that cancels ``scope`` at the case's chosen event."""

    def __init__(self, case: Case, backend: AsyncDummyDifferentialBackend | None) -> None:
        self.case = case
        self.backend = backend
        self.scope: anyio.CancelScope | None = None
        self.count = 0
        self.hit: str | None = None
        self.starts: dict[str, int] = {}
        self.ends: dict[str, int] = {}

    def emit(self, event: TraceEvent) -> None:
        if event.kind in ("op_start", "view_enter"):
            self.starts[event.kind] = self.starts.get(event.kind, 0) + 1
        elif event.kind in ("op_end", "view_exit"):
            self.ends[event.kind] = self.ends.get(event.kind, 0) + 1
        if self.hit is None and self.scope is not None and self.matches(event):
            self.count += 1
            if self.count == self.case.ordinal:
                self.hit = self.case.phase
                self.scope.cancel()

    def matches(self, event: TraceEvent) -> bool:
        phase = self.case.phase
        if phase == "preflight":
            return event.kind == "op_start" and event.prompt_hash == PREFLIGHT_HASH
        if phase == "waiting":
            assert self.backend is not None
            return self.backend.statistics().waiting > 0
        if phase == "handoff":
            # Emitted just after a view or device slot was released, so handed to the
            # next waiter: cancelled now, that waiter holds a slot it never resumed with.
            return event.kind in ("view_exit", "op_end")
        if phase == "entering":
            return event.kind == "view_enter"
        if phase == "op":
            return event.kind == "op_start"
        if phase == "backoff":
            return event.kind == "retry"
        if phase == "exiting":
            return event.kind == "latency" and event.op == "exit"
        return False


async def _squat(backend: AsyncDummyDifferentialBackend, seed: int) -> None:
    """Another user of the backend: enters views now and then and asks for things."""
    rng = np.random.default_rng(seed)
    while True:
        await anyio.sleep(float(rng.uniform(0.0, 0.03)))
        choice = int(rng.integers(4))
        context = (
            backend.as_base()
            if choice == 0
            else backend.as_finetuned()
            if choice == 1
            else backend.as_scaled_adapter(0.5)
            if choice == 2
            else backend.as_null_adapter(0)
        )
        try:
            async with context as view:
                for _ in range(int(rng.integers(1, 4))):
                    await view.next_token_dist(str(rng.choice(PROMPTS)))
                await anyio.sleep(float(rng.uniform(0.0, 0.05)))
        except (InjectedFault, ViewConflictError, NestedViewError):
            pass


def _live_tasks() -> set[Any]:
    """Every task on the running loop."""
    if sniffio.current_async_library() == "asyncio":
        return set(asyncio.all_tasks())
    import trio

    found: set[Any] = set()
    root = trio.lowlevel.current_root_task()
    assert root is not None
    pending = [root]
    while pending:
        task = pending.pop()
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


async def run_case(case: Case) -> Outcome:
    """Run one case and check every invariant; problems are collected, not raised."""
    options = dict(case.backend)
    traced = options.pop("traced")
    sink = CancelAt(case, None) if traced else None
    backend = AsyncDummyDifferentialBackend(trace=sink, **options)
    if sink is not None:
        sink.backend = backend
    probes = _probes(case.probes)
    outcome = Outcome()
    before = _live_tasks()

    async def suite(scope: anyio.CancelScope) -> None:
        await run_suite(backend, probes, **case.runner)
        outcome.finished = True
        scope.cancel()  # stop the squatter

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:
            group.cancel_scope.deadline = anyio.current_time() + case.deadline
            if sink is not None:
                sink.scope = group.cancel_scope
            group.start_soon(suite, group.cancel_scope)
            if case.squatter:
                group.start_soon(_squat, backend, case.squatter_seed)
    if not outcome.finished:
        if sink is not None and sink.hit is not None:
            outcome.hit = sink.hit
        elif case.phase == "deadline":
            outcome.hit = "deadline"

    problems = outcome.problems
    if _live_tasks() != before:
        problems.append(f"tasks left running: {_live_tasks() - before}")
    stats = backend.statistics()
    if not backend.is_free() or stats.live_views or stats.waiting or stats.holders:
        problems.append(
            f"gate not free: {stats.live_views} live {dict(stats.holders)}, {stats.waiting} waiting"
        )
    if stats.entries != stats.exits:
        problems.append(f"entries {stats.entries} != exits {stats.exits}")
    if sum(stats.entries_per_view.values()) != stats.entries:
        problems.append(f"entries per view {dict(stats.entries_per_view)} != {stats.entries}")
    # Internal state a leak would live in: a forward pass never landed, a device slot held.
    if backend._inflight:
        problems.append(f"forward passes left in flight: {list(backend._inflight)}")
    if backend._device.held or backend._device.waiting:
        problems.append(f"device slots: {backend._device.held} held")
    if sink is not None:
        if sink.starts.get("op_start", 0) != sink.ends.get("op_end", 0):
            problems.append(f"op starts {sink.starts} vs ends {sink.ends}")
        if sink.starts.get("view_enter", 0) != sink.ends.get("view_exit", 0):
            problems.append(f"view enters {sink.starts} vs exits {sink.ends}")
        sink.scope = None
    # And the backend still works: a view can be entered at once (no slot was leaked).
    with anyio.move_on_after(REENTRY_SECONDS) as reentry:
        try:
            async with backend.as_base():
                pass
        except InjectedFault:
            pass  # an armed enter_error or exit_error rule
        except ViewConflictError as exc:
            problems.append(f"re-entering after the run: {exc}")
    if reentry.cancelled_caught:
        problems.append("re-entering a view after the run waited forever")
    return outcome


@pytest.fixture
def case_count(request: pytest.FixtureRequest) -> int:
    return LONG_CASES if is_long(request.config) else DEFAULT_CASES


async def test_cancellation_anywhere_leaves_nothing_behind(case_count: int) -> None:
    hits: dict[str, int] = dict.fromkeys(PHASES, 0)
    finished = 0
    for index in range(case_count):
        case = draw_case(index)
        outcome = await run_case(case)
        assert not outcome.problems, (index, case, outcome.problems)
        if outcome.finished:
            finished += 1
        elif outcome.hit is not None:
            hits[outcome.hit] += 1
    # The fuzz must reach every place it aims at, not just finish or time out.
    per_phase = case_count // len(PHASES)
    for phase in PHASES:
        assert hits[phase] >= per_phase // 2, (phase, hits, finished)
