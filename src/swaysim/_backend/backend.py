"""The async dummy differential backend: configuration, view entry and exit, statistics.

The pieces it puts together live next to it: the views and their fast path
(:mod:`~swaysim._backend.views`), the op path with latency, faults, jitter
and trace (:mod:`~swaysim._backend.pipeline`), the exclusivity gate and the
device's slots (:mod:`~swaysim._backend.gate`), the forward cache
(:mod:`~swaysim._backend.cache`) and the numbers (:mod:`~swaysim._backend.models`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, cast

import anyio
import numpy as np

from swaysim._backend.cache import ForwardCache, SingleFlight
from swaysim._backend.gate import ExclusivityGate, FifoSlots, Holding
from swaysim._backend.models import ModeModel, NullModel, ScaledModel, ViewModel
from swaysim._backend.pipeline import OpPipeline
from swaysim._backend.statistics import BackendStatistics, snapshot_mapping
from swaysim._backend.tracing import BackendTracer, LoopClock
from swaysim._backend.views import DummyView, ViewContext
from swaysim._chaos.faults import EXCEPTION_FOR_KIND, FaultFiring, FaultPlan, FaultState
from swaysim._chaos.jitter import ScheduleJitter
from swaysim._chaos.latency import LatencyPlan
from swaysim._trace.events import TraceSink
from swaysim._types import DummyResponses, TokenDist
from swaysim._validation import (
    MAX_MAGNITUDE,
    MAX_SCALE,
    MAX_SEED,
    invalid,
    require_bool,
    require_count,
    require_finite,
    require_instance,
    require_int,
    require_seed,
    require_sequence,
)
from swaysim._vocab import OPS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from swaysim._backend.gate import ExclusivityPolicy
    from swaysim._backend.ledger import CallLedger
    from swaysim._chaos.latency import LatencyModel

__all__ = ["PREFLIGHT_PROMPT", "AsyncDummyDifferentialBackend"]

PREFLIGHT_PROMPT: Final = "preflight"
"""The prompt preflight asks every view (its calls are bounded by probe_timeout, not op_timeout)."""
_PREFLIGHT_TOP_K: Final = 8
_RESPONSES: Final = "a DummyResponses or None"


def _non_finite_problem(dist: TokenDist) -> str:
    """``"3/8 non-finite logprob(s)"`` (plus a non-finite tail, if any), or ``""``."""
    logprobs = np.asarray(dist.logprobs, dtype=np.float64)
    bad = int((~np.isfinite(logprobs)).sum())
    tail = dist.tail_logprob
    bad_tail = tail is not None and not math.isfinite(tail)
    if not bad and not bad_tail:
        return ""
    problem = f"{bad}/{logprobs.size} non-finite logprob(s)"
    if bad_tail:
        problem += f" and a non-finite tail_logprob ({tail})"
    return problem


def _check_limits(safe: object, max_views: object, max_ops: object) -> None:
    """``safe_for_concurrent_views``, ``max_concurrent_views`` and ``max_concurrent_ops``."""
    require_bool("safe_for_concurrent_views", safe)
    if max_views is not None:
        require_count("max_concurrent_views", max_views, minimum=1)
        if not safe and max_views != 1:
            raise invalid(
                "max_concurrent_views",
                max_views,
                "needs safe_for_concurrent_views=True; an exclusive backend has one live view",
            )
    if max_ops is not None:
        require_count("max_concurrent_ops", max_ops, minimum=1)


def _check_chaos(latency: object, faults: object, trace: object, schedule_jitter: object) -> None:
    """The latency and fault plans, the trace sink and the jitter seed (each may be None)."""
    require_instance("latency", latency, LatencyPlan, "a LatencyPlan or None", optional=True)
    require_instance("faults", faults, FaultPlan, "a FaultPlan or None", optional=True)
    require_instance(
        "trace", trace, TraceSink, "a trace sink (with an emit(event) method)", optional=True
    )
    if schedule_jitter is not None:
        require_seed("schedule_jitter", schedule_jitter)


class AsyncDummyDifferentialBackend:
    """A deterministic, torchless, async differential backend for testing runners.

    Numbers are those of dlm-sway's ``DummyDifferentialBackend``; views are
    async context managers guarded by an exclusivity gate; optional latency
    and fault plans make it slow and nasty on a real or virtual clock.

    ``safe_for_concurrent_views=False`` (default) allows one live view at a
    time; ``exclusivity`` chooses whether other entries wait (``"wait"``,
    FIFO) or fail at once (``"strict"``). ``safe_for_concurrent_views=True``
    allows up to ``max_concurrent_views`` live views (None: unbounded).
    ``max_concurrent_ops`` is the device model: how many ops are served at
    once when they cost time (default 1 on an exclusive backend, unbounded
    on a concurrent-safe one). Nothing binds to an event loop before a task
    waits, so one backend object works under asyncio and trio.

    ``schedule_jitter`` (a seed, None: off) is chaos scheduling for the
    runner under test: before and after every op it inserts 0 to
    ``JITTER_MAX_CHECKPOINTS`` extra checkpoints and a virtual sleep of at
    most ``JITTER_MAX_SECONDS`` (:mod:`swaysim._chaos.jitter`), so concurrent
    ops interleave and complete in other orders. Both are drawn from the
    jitter seed and the call (op, view, prompt, per-key call index), so a
    seed replays the same perturbation; fault decisions and latency draws do
    not change, so a correct runner's results do not either.
    """

    def __init__(
        self,
        base: DummyResponses | None = None,
        ft: DummyResponses | None = None,
        *,
        safe_for_concurrent_views: bool = False,
        exclusivity: ExclusivityPolicy = "wait",
        max_concurrent_views: int | None = None,
        max_concurrent_ops: int | None = None,
        cache_size: int = 256,
        latency: LatencyPlan | None = None,
        faults: FaultPlan | None = None,
        trace: TraceSink | None = None,
        schedule_jitter: int | None = None,
    ) -> None:
        require_instance("base", base, DummyResponses, _RESPONSES, optional=True)
        require_instance("ft", ft, DummyResponses, _RESPONSES, optional=True)
        _check_limits(safe_for_concurrent_views, max_concurrent_views, max_concurrent_ops)
        require_count("cache_size", cache_size, minimum=1)
        _check_chaos(latency, faults, trace, schedule_jitter)

        self._safe = safe_for_concurrent_views
        self._exclusivity = exclusivity
        self._gate = ExclusivityGate(
            concurrent=safe_for_concurrent_views, policy=exclusivity, max_live=max_concurrent_views
        )
        if max_concurrent_ops is None and not safe_for_concurrent_views:
            max_concurrent_ops = 1
        self._base_model = ModeModel("base", base if base is not None else DummyResponses())
        self._ft_model = ModeModel("ft", ft if ft is not None else DummyResponses())
        self._models: dict[str, ViewModel] = {}
        self._latency = latency
        self._fault_plan = faults
        self._faults = FaultState(faults) if faults is not None and faults.rules else None
        self._jitter = ScheduleJitter(schedule_jitter) if schedule_jitter is not None else None
        self._clock = LoopClock()
        self._tracer = BackendTracer(trace, self._clock) if trace is not None else None
        self._cache = ForwardCache(cache_size)
        self._device = FifoSlots(max_concurrent_ops)
        # Forward passes in flight, shared by every view's ops and batches.
        self._inflight = SingleFlight()
        self._pipeline = OpPipeline(
            cache=self._cache,
            flights=self._inflight,
            device=self._device,
            clock=self._clock,
            latency=latency,
            faults=self._faults,
            jitter=self._jitter,
            tracer=self._tracer,
        )
        plain = latency is None and self._faults is None and trace is None and self._jitter is None
        # A plain backend's views take the fast path: no pipeline at all.
        self._view_pipeline = None if plain else self._pipeline
        self._entries_per_view: dict[str, int] = {}
        self._last_entered: str | None = None
        self._loaded: set[str] = set()
        self._switches = 0
        self._sleep: Callable[[float], Awaitable[object]] = anyio.sleep
        self._ledger: CallLedger | None = None

    def _observe(self, ledger: CallLedger) -> None:
        """Report every view entry and op to ``ledger`` (a scenario harness's observations).

        Before the first use: views entered from now on take the op pipeline,
        whatever is configured, so that every call is seen.
        """
        self._ledger = ledger
        self._pipeline.observe(ledger)
        self._view_pipeline = self._pipeline

    # -- public surface -------------------------------------------------------------

    @property
    def safe_for_concurrent_views(self) -> bool:
        """Whether views may be live together (a stateless API, two models)."""
        return self._safe

    @property
    def exclusivity(self) -> ExclusivityPolicy:
        """``"wait"`` or ``"strict"``: what entering a busy exclusive backend does."""
        return self._exclusivity

    @property
    def latency(self) -> LatencyPlan | None:
        """The latency plan, if any."""
        return self._latency

    @property
    def faults(self) -> FaultPlan | None:
        """The fault plan, if any."""
        return self._fault_plan

    @property
    def schedule_jitter(self) -> int | None:
        """The chaos-scheduling seed, if any (see the class docstring)."""
        return self._jitter.seed if self._jitter is not None else None

    @property
    def fault_log(self) -> tuple[FaultFiring, ...]:
        """Every firing so far, in the order they happened."""
        return tuple(self._faults.log) if self._faults is not None else ()

    @property
    def trace_sink(self) -> TraceSink | None:
        """Where trace events go (None: tracing off). Runners emit into it too."""
        return self._tracer.sink if self._tracer is not None else None

    @property
    def trace_error(self) -> Exception | None:
        """The exception the trace sink raised, if one did (tracing stopped there; ops went on)."""
        return self._tracer.error if self._tracer is not None else None

    def loop_time(self) -> float:
        """Loop seconds since this backend's first use in the current event loop.

        The time base of every trace event, so runner events line up with the
        backend's own.
        """
        self._clock.refresh()
        return self._clock.now()

    def is_free(self) -> bool:
        """True when no view is live and no task is waiting to enter one."""
        return self._gate.is_free()

    def as_base(self) -> ViewContext:
        """``async with backend.as_base() as view``: the base model (adapter off)."""
        return ViewContext(self, self._base_model)

    def as_finetuned(self) -> ViewContext:
        """``async with backend.as_finetuned() as view``: the fine-tuned model."""
        return ViewContext(self, self._ft_model)

    def as_scaled_adapter(self, lam: float) -> ViewContext:
        """The adapter's term times ``lam`` (0 = base, 1 = ft, 1.25 overshoots).

        ``lam`` may be any real number within ±1e12 (numpy scalars included); it
        is validated here, before any view is entered.
        """
        lam = require_finite(
            "lam",
            lam,
            minimum=-MAX_MAGNITUDE,
            maximum=MAX_MAGNITUDE,
            numpy_scalars=True,
            must=f"a finite number within ±{MAX_MAGNITUDE:g}",
        )
        key = f"scaled:{lam!r}"
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = ScaledModel(self._base_model, self._ft_model, lam)
        return ViewContext(self, model)

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> ViewContext:
        """A null adapter of seeded random weights: the noise floor for z-scores.

        The noise std is ``init_scale * sqrt(rank_scale)``. Arguments are
        validated here, before any view is entered: ``seed`` an integer >= 0
        (64-bit), ``init_scale`` within [0, 1e6], ``rank_scale`` within (0, 1e6]
        (numpy scalars included).
        """
        seed = require_int(
            "seed",
            seed,
            minimum=0,
            maximum=MAX_SEED,
            numpy_scalars=True,
            must=f"an integer >= 0 and <= {MAX_SEED}",
        )
        init_scale = require_finite(
            "init_scale",
            init_scale,
            minimum=0.0,
            maximum=MAX_SCALE,
            numpy_scalars=True,
            must=f"finite and >= 0, at most {MAX_SCALE:g}",
        )
        rank_scale = require_finite(
            "rank_scale",
            rank_scale,
            positive=True,
            maximum=MAX_SCALE,
            numpy_scalars=True,
            must=f"positive and finite, at most {MAX_SCALE:g}",
        )
        key = f"null:{seed}:{init_scale!r}:{rank_scale!r}"
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = NullModel(self._base_model, seed, init_scale, rank_scale)
        return ViewContext(self, model)

    async def preflight_finite_check(
        self, *, scaled: Sequence[float] = (), null_seeds: Sequence[int] = ()
    ) -> tuple[bool, str]:
        """One forward pass per view; ``(False, reason)`` on the first non-finite one.

        Checks base and ft, then the scaled view of each ``scaled`` lam and the
        null view of each of ``null_seeds``, one view at a time, on the prompt
        ``"preflight"`` with ``top_k=8`` (as dlm-sway does). The reason names
        the view, the count of non-finite values and the prompt. An exception
        while checking (an injected fault, say) becomes ``(False, "preflight
        raised ...")``, never a crash; invalid ``scaled`` or ``null_seeds``
        raise :class:`InvalidArgumentError` before any view is entered;
        cancellation propagates.
        """
        lams = cast("tuple[float, ...]", require_sequence("scaled", scaled, of="numbers"))
        seeds = cast("tuple[int, ...]", require_sequence("null_seeds", null_seeds, of="integers"))
        contexts = [
            self.as_base(),
            self.as_finetuned(),
            *(self.as_scaled_adapter(lam) for lam in lams),
            *(self.as_null_adapter(seed) for seed in seeds),
        ]
        for context in contexts:
            try:
                async with context as view:
                    dist = await view.next_token_dist(PREFLIGHT_PROMPT, top_k=_PREFLIGHT_TOP_K)
                problem = _non_finite_problem(dist)
            except Exception as exc:
                return (
                    False,
                    f"preflight raised {type(exc).__name__} on the {context.view_id} view: {exc}",
                )
            if problem:
                return (
                    False,
                    f"{context.view_id} view produced {problem} on prompt {PREFLIGHT_PROMPT!r}",
                )
        return True, ""

    def statistics(self) -> BackendStatistics:
        """A frozen snapshot of the counters (see :class:`BackendStatistics`)."""
        per_op: dict[str, int] = {}
        per_view: dict[str, int] = {}
        for model in (self._base_model, self._ft_model, *self._models.values()):
            for op, count in zip(OPS, model.calls, strict=True):
                if count:
                    per_op[op] = per_op.get(op, 0) + count
                    per_view[model.id] = per_view.get(model.id, 0) + count
        gate = self._gate
        faults = self._faults
        pipeline = self._pipeline
        jitter = self._jitter
        return BackendStatistics(
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            forward_passes=self._cache.forward_passes,
            cache_entries=len(self._cache),
            calls_per_op=snapshot_mapping(per_op),
            calls_per_view=snapshot_mapping(per_view),
            entries_per_view=snapshot_mapping(self._entries_per_view),
            entries=gate.entries,
            exits=gate.exits,
            switches=self._switches,
            waits=gate.waits,
            wait_time=gate.wait_time,
            peak_live_views=gate.peak_live,
            live_views=len(gate.live),
            waiting=gate.waiting,
            holders=snapshot_mapping({h.view_id: h.task_name for h in gate.live}),
            faults_fired=snapshot_mapping(faults.fired_per_rule if faults else {}),
            latency_draws=pipeline.latency_draws,
            latency_seconds=pipeline.latency_seconds,
            jitter_events=jitter.events if jitter is not None else 0,
            jitter_seconds=jitter.seconds if jitter is not None else 0.0,
        )

    def __repr__(self) -> str:
        live = self._gate.live
        if not live:
            active = "None"
        elif len(live) == 1:
            active = repr(live[0].view_id)
        else:
            active = repr([h.view_id for h in live])
        if self._safe:
            limit = self._gate.max_live
            policy = "concurrent" + (f" max_views={limit}" if limit is not None else "")
        else:
            policy = f"exclusivity={self._exclusivity!r}"
        parts = [policy, f"active={active}", f"waiting={self._gate.waiting}"]
        if self._faults is not None:
            parts.append(f"faults={self._faults.total_fired} armed")
        if self._latency is not None:
            parts.append("latency")
        if self._jitter is not None:
            jitter = self._jitter
            parts.append(
                f"schedule_jitter={jitter.seed} ({jitter.events} events, {jitter.seconds:.6g} s)"
            )
        return f"<{type(self).__name__} {' '.join(parts)}>"

    # -- entering and exiting ----------------------------------------------------

    def _count_entry(self, model: ViewModel) -> tuple[int, bool]:
        """Count an entry of ``model``'s view: its number (per view id), and whether it switched.

        On an exclusive backend a switch is an entry of a view other than the
        one entered last (the first entry counts): the adapter is swapped. On
        a concurrent-safe backend views are resident side by side, so only a
        view's first entry is a switch (it is loaded once); this also keeps
        the count independent of the order concurrent entries happen in.
        """
        entry = self._entries_per_view[model.id] = self._entries_per_view.get(model.id, 0) + 1
        cache_id = model.cache_id
        if self._safe:
            if cache_id in self._loaded:
                return entry, False
            self._loaded.add(cache_id)
        elif self._last_entered == cache_id:
            return entry, False
        else:
            self._last_entered = cache_id
        self._switches += 1
        return entry, True

    async def _enter(self, model: ViewModel) -> tuple[Holding, DummyView]:
        """Take the gate, then pay the switch and enter latency, then maybe fail.

        (A plain backend's entries take the fast path of
        :meth:`~swaysim._backend.views.ViewContext.__aenter__` instead.)
        A switch is as :meth:`_count_entry` says. An enter fault fires after
        those latencies and, like a cancellation during them, releases the
        gate before raising.
        Entries are counted per view (1-based) for ``nth``/``after``/``every``.
        """
        clock = self._clock
        clock.refresh()
        self._sleep = clock.sleep
        tracer = self._tracer
        started = clock.now() if tracer is not None else 0.0
        ledger = self._ledger
        if ledger is not None:
            ledger.entering(model.id)
        holding = await self._gate.enter(model.id, clock)
        try:
            if tracer is not None:
                holding.since = clock.time()
                waited = clock.now() - started
                if waited > 0:
                    tracer.emit("view_wait", model.id, duration=waited)
                tracer.emit("view_enter", model.id)
            entry, switched = self._count_entry(model)
            if self._latency is not None:
                await self._enter_latency(self._latency, model, entry, switched=switched)
            if self._faults is not None:
                firing = self._pipeline.select_fault("enter", model, "", entry, clock.now())
                if firing is not None:
                    raise EXCEPTION_FOR_KIND[firing.kind](firing)
        except BaseException as exc:
            self._gate.exit(holding)
            if tracer is not None:
                duration = clock.time() - holding.since
                tracer.emit("view_exit", model.id, duration=duration, detail={"aborted": True})
            if ledger is not None:
                ledger.enter_failed(model.id, exc)
            raise
        view = DummyView(model, self._cache, self._view_pipeline, clock)
        if ledger is not None:
            ledger.entered(view, model.id)
        return holding, view

    async def _enter_latency(
        self, latency: LatencyPlan, model: ViewModel, entry: int, *, switched: bool
    ) -> None:
        """The switch cost (when this entry is a switch), then the enter cost."""
        if switched and latency.view_switch is not None:
            switch = self._pipeline.next_index("switch", model.id, "")
            await self._sleep_drawn(latency.view_switch, "switch", model, switch)
        if latency.view_enter is not None:
            await self._sleep_drawn(latency.view_enter, "enter", model, entry)

    async def _exit(self, holding: Holding, view: DummyView, *, clean: bool) -> None:
        """Release the view; exit latency first, an exit fault only after a clean block.

        The gate is released in every case (cancellation, a failing exit)
        before anything can raise. An exit fault never replaces an exception
        or cancellation already propagating out of the block. Exits are
        counted per view (1-based) for ``nth``/``after``/``every``.
        """
        view._live = False
        model = view._model
        if self._ledger is not None:
            self._ledger.exited(view)
        latency, faults = self._latency, self._faults
        exit_index = 0
        if latency is not None or faults is not None:
            exit_index = self._pipeline.next_index("exit", model.id, "")
        try:
            if latency is not None and latency.view_exit is not None:
                await self._sleep_drawn(latency.view_exit, "exit", model, exit_index)
        finally:
            self._gate.exit(holding)
            if self._tracer is not None:
                duration = self._clock.time() - holding.since
                self._tracer.emit("view_exit", model.id, duration=duration)
        if clean and faults is not None:
            now = self._clock.now()
            firing = self._pipeline.select_fault("exit", model, "", exit_index, now)
            if firing is not None:
                raise EXCEPTION_FOR_KIND[firing.kind](firing)

    async def _sleep_drawn(
        self, model: LatencyModel, what: str, view: ViewModel, index: int
    ) -> None:
        """Sleep a view switch/enter/exit latency, drawn for the view's ``index``-th event."""
        assert self._latency is not None
        seconds = self._latency.draw(model, what, view.id, view.cache_id, index)
        self._pipeline.count_latency(seconds, what, view.id)
        if seconds > 0:
            await self._sleep(seconds)
