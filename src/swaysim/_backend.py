"""The async dummy differential backend, its views, and the op pipeline.

An op call on a plain backend (no latency, no faults, no trace) takes the fast
path: count, look up the cache, compute on a miss, one checkpoint. Anything
configured sends it through ``AsyncDummyDifferentialBackend._call``, which
adds, in order: the per-key call index, fault selection, a single-flight cache
lookup (concurrent identical calls share one forward pass), service time on
the device, the fault's effect, and trace events.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Final

import anyio
import numpy as np
from anyio.lowlevel import checkpoint, current_token

from swaysim._draw import stable_hash
from swaysim._dummy import ModeModel, NullModel, ScaledModel, ViewModel
from swaysim._errors import InvalidArgumentError, StaleViewError, ViewError
from swaysim._faults import (
    ERROR_KINDS,
    EXCEPTION_FOR_KIND,
    OUTPUT_KINDS,
    FaultFiring,
    FaultPlan,
    FaultState,
    corrupt,
)
from swaysim._gate import ExclusivityGate, FifoSlots, Holding
from swaysim._instrumentation import (
    MISSING,
    BackendStatistics,
    ForwardCache,
    TraceEvent,
    TraceSink,
    snapshot_mapping,
)
from swaysim._latency import LatencyPlan
from swaysim._types import DummyResponses, RollingLogprob, TokenDist
from swaysim._vocab import OPS, require_finite, require_int

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence
    from types import TracebackType

    from swaysim._gate import ExclusivityPolicy
    from swaysim._latency import LatencyModel

__all__ = ["AsyncDummyDifferentialBackend", "DummyView"]

_GENERATE, _LOGPROB_OF, _ROLLING, _NTD, _BATCH = range(5)
_PREFLIGHT_PROMPT: Final = "preflight"
_PREFLIGHT_TOP_K: Final = 8


def _check_top_k(top_k: int) -> None:
    if type(top_k) is not int or top_k < 1:
        raise InvalidArgumentError(f"top_k={top_k!r} must be an integer >= 1")


class DummyView:
    """A live view, as yielded by ``async with backend.as_...()``.

    Valid only inside its ``async with`` block; any op afterwards raises
    :class:`StaleViewError`. It may be shared with child tasks inside the
    block: ops from several tasks run concurrently, served by the backend's
    device model.
    """

    __slots__ = ("_backend", "_cache_id", "_live", "_model")

    def __init__(self, backend: AsyncDummyDifferentialBackend, model: ViewModel) -> None:
        self._backend = backend
        self._model = model
        self._cache_id = model.cache_id
        self._live = True

    @property
    def id(self) -> str:
        """``"base"``, ``"ft"``, ``"scaled_0.50"``, ``"null_42"``, ``"null_42_rank2.00"``."""
        return self._model.id

    @property
    def kind(self) -> str:
        """``"base"``, ``"ft"``, ``"scaled"`` or ``"null"``."""
        return self._model.kind

    @property
    def live(self) -> bool:
        """Whether the view's ``async with`` block is still open."""
        return self._live

    def __repr__(self) -> str:
        state = "live" if self._live else "stale"
        return f"<DummyView id={self._model.id!r} {state}>"

    def _stale(self, op: str) -> StaleViewError:
        return StaleViewError(
            f"view {self._model.id!r} was used ({op}) after its 'async with' block exited; "
            "enter the view again with 'async with backend.as_...()'"
        )

    async def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str:
        """The canned generation for ``prompt`` (decoding options are accepted and ignored)."""
        del temperature, top_p, seed
        if not self._live:
            raise self._stale("generate")
        if type(max_new_tokens) is not int or max_new_tokens < 0:
            raise InvalidArgumentError(f"max_new_tokens={max_new_tokens!r} must be an integer >= 0")
        backend = self._backend
        if backend._plain:
            self._model.calls[_GENERATE] += 1
            text = self._model.generate(prompt)
            await checkpoint()
            return text
        result: str = await backend._call(
            self, _GENERATE, prompt, prompt, 0, None, tokens=max_new_tokens
        )
        return result

    async def logprob_of(self, prompt: str, completion: str) -> float:
        """Summed completion logprob (``-10.0`` when not canned)."""
        if not self._live:
            raise self._stale("logprob_of")
        backend = self._backend
        if backend._plain:
            self._model.calls[_LOGPROB_OF] += 1
            key = ("logprob_of", self._cache_id, prompt, completion)
            cache = backend._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = self._model.logprob_of(prompt, completion)
                cache.store(key, value)
                backend._forward_passes += 1
            await checkpoint()
            return value  # type: ignore[no-any-return]
        result: float = await backend._call(
            self,
            _LOGPROB_OF,
            prompt,
            f"{prompt}\x00{completion}",
            0,
            ("logprob_of", self._cache_id, prompt, completion),
            completion=completion,
        )
        return result

    async def rolling_logprob(self, text: str) -> RollingLogprob:
        """Per-token logprobs over ``text`` (synthesized when not canned)."""
        if not self._live:
            raise self._stale("rolling_logprob")
        backend = self._backend
        if backend._plain:
            self._model.calls[_ROLLING] += 1
            key = ("rolling_logprob", self._cache_id, text)
            cache = backend._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = self._model.rolling_logprob(text)
                cache.store(key, value)
                backend._forward_passes += 1
            await checkpoint()
            return value  # type: ignore[no-any-return]
        result: RollingLogprob = await backend._call(
            self, _ROLLING, text, text, 0, ("rolling_logprob", self._cache_id, text)
        )
        return result

    async def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        """The next-token distribution after ``prompt``."""
        if not self._live:
            raise self._stale("next_token_dist")
        _check_top_k(top_k)
        backend = self._backend
        if backend._plain:
            self._model.calls[_NTD] += 1
            key = ("next_token_dist", self._cache_id, prompt, top_k)
            cache = backend._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = self._model.next_token_dist(prompt, top_k)
                cache.store(key, value)
                backend._forward_passes += 1
            await checkpoint()
            return value  # type: ignore[no-any-return]
        result: TokenDist = await backend._call(
            self, _NTD, prompt, prompt, top_k, ("next_token_dist", self._cache_id, prompt, top_k)
        )
        return result

    async def next_token_dist_batch(
        self, prompts: Sequence[str], *, top_k: int = 256
    ) -> list[TokenDist]:
        """``next_token_dist`` for every prompt, in order, identical to the per-prompt path.

        Shares the per-prompt cache. An empty batch returns ``[]``.
        """
        if not self._live:
            raise self._stale("next_token_dist_batch")
        if isinstance(prompts, str):
            raise InvalidArgumentError(
                f"prompts={prompts!r} must be a sequence of prompts, not one string"
            )
        _check_top_k(top_k)
        backend = self._backend
        items = list(prompts)
        if backend._plain:
            self._model.calls[_BATCH] += 1
            cache = backend._cache
            model = self._model
            out = []
            for prompt in items:
                key = ("next_token_dist", self._cache_id, prompt, top_k)
                value = cache.lookup(key)
                if value is MISSING:
                    value = model.next_token_dist(prompt, top_k)
                    cache.store(key, value)
                    backend._forward_passes += 1
                out.append(value)
            await checkpoint()
            return out
        return await backend._call_batch(self, items, top_k)


class _ViewContext:
    """The async context manager behind ``as_base()`` and friends (single use)."""

    __slots__ = ("_backend", "_holding", "_model", "_view")

    def __init__(self, backend: AsyncDummyDifferentialBackend, model: ViewModel) -> None:
        self._backend = backend
        self._model = model
        self._holding: Holding | None = None
        self._view: DummyView | None = None

    async def __aenter__(self) -> DummyView:
        if self._holding is not None:
            raise ViewError(
                f"this as_...() context for view {self._model.id!r} was already entered; "
                "call the backend method again for a new entry"
            )
        self._holding, self._view = await self._backend._enter(self._model)
        return self._view

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._holding is not None
        assert self._view is not None
        await self._backend._exit(self._holding, self._view, clean=exc_type is None)


class _Flight:
    """A forward pass in progress, which concurrent identical calls wait for."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = anyio.Event()


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
    ) -> None:
        if base is not None and not isinstance(base, DummyResponses):
            raise InvalidArgumentError(f"base={base!r} must be a DummyResponses or None")
        if ft is not None and not isinstance(ft, DummyResponses):
            raise InvalidArgumentError(f"ft={ft!r} must be a DummyResponses or None")
        if not isinstance(safe_for_concurrent_views, bool):
            raise InvalidArgumentError(
                f"safe_for_concurrent_views={safe_for_concurrent_views!r} must be True or False"
            )
        if max_concurrent_views is not None:
            require_int("max_concurrent_views", max_concurrent_views, minimum=1)
            if not safe_for_concurrent_views and max_concurrent_views != 1:
                raise InvalidArgumentError(
                    f"max_concurrent_views={max_concurrent_views!r} needs "
                    "safe_for_concurrent_views=True; an exclusive backend has one live view"
                )
        if max_concurrent_ops is not None:
            require_int("max_concurrent_ops", max_concurrent_ops, minimum=1)
        require_int("cache_size", cache_size, minimum=1)
        if latency is not None and not isinstance(latency, LatencyPlan):
            raise InvalidArgumentError(f"latency={latency!r} must be a LatencyPlan or None")
        if faults is not None and not isinstance(faults, FaultPlan):
            raise InvalidArgumentError(f"faults={faults!r} must be a FaultPlan or None")
        if trace is not None and not isinstance(trace, TraceSink):
            raise InvalidArgumentError(f"trace={trace!r} must have an emit(event) method")

        self._safe = safe_for_concurrent_views
        self._gate = ExclusivityGate(
            concurrent=safe_for_concurrent_views,
            policy=exclusivity,
            max_live=max_concurrent_views,
        )
        self._exclusivity = exclusivity
        if max_concurrent_ops is None and not safe_for_concurrent_views:
            max_concurrent_ops = 1
        self._max_concurrent_ops = max_concurrent_ops
        self._device = FifoSlots(max_concurrent_ops)
        self._cache = ForwardCache(cache_size)
        self._base_model = ModeModel("base", base if base is not None else DummyResponses())
        self._ft_model = ModeModel("ft", ft if ft is not None else DummyResponses())
        self._models: dict[str, ViewModel] = {}
        self._latency = latency
        self._faults = FaultState(faults) if faults is not None and faults.rules else None
        self._fault_plan = faults
        self._trace = trace
        self._plain = latency is None and self._faults is None and trace is None

        self._forward_passes = 0
        self._key_calls: dict[Hashable, int] = {}
        self._inflight: dict[Hashable, _Flight] = {}
        self._entries_per_view: dict[str, int] = {}
        self._last_entered: str | None = None
        self._switches = 0
        self._latency_draws = 0
        self._latency_seconds = 0.0
        self._epoch = 0.0
        self._epoch_loop: object = None

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
    def fault_log(self) -> tuple[FaultFiring, ...]:
        """Every firing so far, in the order they happened."""
        return tuple(self._faults.log) if self._faults is not None else ()

    def is_free(self) -> bool:
        """True when no view is live and no task is waiting to enter one."""
        return self._gate.is_free()

    def as_base(self) -> _ViewContext:
        """``async with backend.as_base() as view``: the base model (adapter off)."""
        return _ViewContext(self, self._base_model)

    def as_finetuned(self) -> _ViewContext:
        """``async with backend.as_finetuned() as view``: the fine-tuned model."""
        return _ViewContext(self, self._ft_model)

    def as_scaled_adapter(self, lam: float) -> _ViewContext:
        """The adapter's term times ``lam`` (0 = base, 1 = ft, 1.25 overshoots)."""
        lam = require_finite("lam", lam)
        key = f"scaled:{lam!r}"
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = ScaledModel(self._base_model, self._ft_model, lam)
        return _ViewContext(self, model)

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> _ViewContext:
        """A null adapter of seeded random weights: the noise floor for z-scores.

        The noise std is ``init_scale * sqrt(rank_scale)``.
        """
        require_int("seed", seed, minimum=0)
        init_scale = require_finite("init_scale", init_scale, minimum=0.0)
        rank_scale = require_finite("rank_scale", rank_scale)
        if rank_scale <= 0.0:
            raise InvalidArgumentError(f"rank_scale={rank_scale!r} must be positive and finite")
        key = f"null:{seed}:{init_scale!r}:{rank_scale!r}"
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = NullModel(self._base_model, seed, init_scale, rank_scale)
        return _ViewContext(self, model)

    async def preflight_finite_check(
        self, *, scaled: Sequence[float] = (), null_seeds: Sequence[int] = ()
    ) -> tuple[bool, str]:
        """One forward pass per view; ``(False, reason)`` on the first non-finite one.

        Checks base and ft, then each ``scaled`` lam and each null seed. The
        reason names the view, the count of non-finite values and the prompt.
        An exception (an injected fault, say) becomes ``(False, "... raised
        ...")``; cancellation propagates.
        """
        checks: list[tuple[str, Callable[[], _ViewContext]]] = [
            ("base", self.as_base),
            ("ft", self.as_finetuned),
        ]
        for lam in scaled:
            checks.append((f"scaled({lam})", functools.partial(self.as_scaled_adapter, lam)))
        for seed in null_seeds:
            checks.append((f"null({seed})", functools.partial(self.as_null_adapter, seed)))
        for label, enter in checks:
            try:
                async with enter() as view:
                    dist = await view.next_token_dist(_PREFLIGHT_PROMPT, top_k=_PREFLIGHT_TOP_K)
            except Exception as exc:
                return False, f"preflight raised {type(exc).__name__} on the {label} view: {exc}"
            bad = int((~np.isfinite(dist.logprobs)).sum())
            tail = dist.tail_logprob
            bad_tail = tail is not None and not math.isfinite(tail)
            if bad or bad_tail:
                what = f"{bad}/{dist.logprobs.size} non-finite logprob(s)"
                if bad_tail:
                    what += f" and a non-finite tail_logprob ({tail})"
                return False, f"{view.id} view produced {what} on prompt {_PREFLIGHT_PROMPT!r}"
        return True, ""

    def statistics(self) -> BackendStatistics:
        """A frozen snapshot of the counters (see :class:`BackendStatistics`)."""
        models = [self._base_model, self._ft_model, *self._models.values()]
        per_op: dict[str, int] = {}
        per_view: dict[str, int] = {}
        for model in models:
            total = 0
            for index, count in enumerate(model.calls):
                if count:
                    per_op[OPS[index]] = per_op.get(OPS[index], 0) + count
                    total += count
            if total:
                per_view[model.id] = per_view.get(model.id, 0) + total
        gate = self._gate
        faults = self._faults
        return BackendStatistics(
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            forward_passes=self._forward_passes,
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
            latency_draws=self._latency_draws,
            latency_seconds=self._latency_seconds,
        )

    def __repr__(self) -> str:
        live = self._gate.live
        if not live:
            active = "None"
        elif len(live) == 1:
            active = repr(live[0].view_id)
        else:
            active = repr([h.view_id for h in live])
        parts = [f"active={active}", f"waiting={self._gate.waiting}"]
        if self._safe:
            parts.insert(0, "concurrent")
        if self._faults is not None:
            parts.append(f"faults={self._faults.total_fired} armed")
        if self._latency is not None:
            parts.append("latency")
        return f"<{type(self).__name__} {' '.join(parts)}>"

    # -- entering and exiting ----------------------------------------------------

    def _refresh_epoch(self) -> None:
        loop = current_token().native_token
        if loop is not self._epoch_loop:
            self._epoch_loop = loop
            self._epoch = anyio.current_time()

    def _now(self) -> float:
        return anyio.current_time() - self._epoch

    def _task_name(self) -> str:
        task = anyio.get_current_task()
        return f"{task.name}#{task.id}"

    async def _enter(self, model: ViewModel) -> tuple[Holding, DummyView]:
        self._refresh_epoch()
        trace = self._trace
        started = self._now() if trace is not None else 0.0
        holding = await self._gate.enter(model.id)
        try:
            if trace is not None:
                waited = self._now() - started
                if waited > 0:
                    self._emit("view_wait", model.id, time=started, duration=waited)
                self._emit("view_enter", model.id)
            self._entries_per_view[model.id] = self._entries_per_view.get(model.id, 0) + 1
            latency = self._latency
            if self._last_entered != model.cache_id:
                self._last_entered = model.cache_id
                self._switches += 1
                if latency is not None and latency.view_switch is not None:
                    await self._sleep_drawn(latency.view_switch, "switch", model, model.cache_id)
            if latency is not None and latency.view_enter is not None:
                await self._sleep_drawn(latency.view_enter, "enter", model, model.cache_id)
            if self._faults is not None:
                index = self._entries_per_view[model.id]
                firing = self._faults.select("enter", model.kind, model.id, "", index, self._now())
                if firing is not None:
                    self._record_firing(firing)
                    raise EXCEPTION_FOR_KIND[firing.kind](firing)
        except BaseException:
            self._gate.exit(holding)
            if trace is not None:
                self._emit("view_exit", model.id, detail={"aborted": True})
            raise
        return holding, DummyView(self, model)

    async def _exit(self, holding: Holding, view: DummyView, *, clean: bool) -> None:
        view._live = False
        model = view._model
        try:
            latency = self._latency
            if latency is not None and latency.view_exit is not None:
                await self._sleep_drawn(latency.view_exit, "exit", model, model.cache_id)
        finally:
            self._gate.exit(holding)
            if self._trace is not None:
                self._emit("view_exit", model.id, duration=anyio.current_time() - holding.since)
        if clean and self._faults is not None:
            index = self._gate.exits
            firing = self._faults.select("exit", model.kind, model.id, "", index, self._now())
            if firing is not None:
                self._record_firing(firing)
                raise EXCEPTION_FOR_KIND[firing.kind](firing)

    async def _sleep_drawn(
        self, model: LatencyModel, what: str, view: ViewModel, *identity: object
    ) -> None:
        assert self._latency is not None
        index = self._next_index(what, view.id, "")
        seconds = self._latency.draw(model, what, view.id, index, *identity)
        self._count_latency(seconds, what, view.id)
        if seconds > 0:
            await anyio.sleep(seconds)

    # -- the slow op path ----------------------------------------------------------

    def _next_index(self, op: str, view_id: str, key_text: str) -> int:
        key = (op, view_id, key_text)
        index = self._key_calls.get(key, 0) + 1
        self._key_calls[key] = index
        return index

    def _count_latency(self, seconds: float, what: str, view_id: str) -> None:
        self._latency_draws += 1
        self._latency_seconds += seconds
        if self._trace is not None:
            self._emit("latency", view_id, op=what, duration=seconds)

    def _record_firing(self, firing: FaultFiring) -> None:
        if self._trace is not None:
            self._emit(
                "fault",
                firing.view_id,
                op=firing.op,
                prompt_hash=stable_hash(firing.prompt) if firing.prompt else None,
                detail={"rule": firing.rule_name, "kind": firing.kind, "call": firing.call_index},
            )

    def _emit(
        self,
        kind: str,
        view: str | None,
        *,
        time: float | None = None,
        op: str | None = None,
        prompt_hash: str | None = None,
        hit: bool | None = None,
        duration: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        assert self._trace is not None
        self._trace.emit(
            TraceEvent(
                kind=kind,
                time=self._now() if time is None else time,
                task=self._task_name(),
                view=view,
                op=op,
                prompt_hash=prompt_hash,
                hit=hit,
                duration=duration,
                detail=detail,
            )
        )

    def _service_time(
        self, op_index: int, model: ViewModel, key_text: str, call_index: int, units: int
    ) -> float:
        plan = self._latency
        if plan is None:
            return 0.0
        op = OPS[op_index]
        rule_index, base_model = plan.op_model(op, model.kind, model.id)
        seconds = 0.0
        drew = False
        if base_model is not None:
            seconds += plan.draw(base_model, op, rule_index, model.id, key_text, call_index)
            drew = True
        if op_index == _GENERATE and plan.generate_per_token is not None and units:
            per = plan.draw(plan.generate_per_token, op, "token", model.id, key_text, call_index)
            seconds += per * units
            drew = True
        elif op_index == _BATCH and plan.batch_per_item is not None and units:
            per = plan.draw(plan.batch_per_item, op, "item", model.id, key_text, call_index)
            seconds += per * units
            drew = True
        if drew:
            self._count_latency(seconds, op, model.id)
        return seconds

    async def _serve(self, seconds: float) -> None:
        """Occupy the device for ``seconds`` of loop time (forever for a hang).

        Always a checkpoint, even when the op costs no time.
        """
        if seconds <= 0:
            await checkpoint()
            return
        device = self._device
        await device.acquire()
        try:
            await anyio.sleep(seconds)
        finally:
            device.release()

    def _check_live(self, view: DummyView, op: str) -> None:
        if not view._live:
            raise view._stale(op)

    async def _call(
        self,
        view: DummyView,
        op_index: int,
        prompt: str,
        key_text: str,
        top_k: int,
        cache_key: Hashable | None,
        *,
        tokens: int = 0,
        completion: str = "",
    ) -> Any:
        model = view._model
        op = OPS[op_index]
        model.calls[op_index] += 1
        trace = self._trace
        started = self._now()
        call_index = self._next_index(op, model.id, key_text)
        firing: FaultFiring | None = None
        if self._faults is not None:
            firing = self._faults.select(op, model.kind, model.id, prompt, call_index, started)
            if firing is not None:
                self._record_firing(firing)
        fault_kind = firing.kind if firing is not None else None
        if fault_kind == "hang":
            await self._serve(math.inf)

        hit = True
        if cache_key is None:
            seconds = self._service_time(op_index, model, key_text, call_index, tokens)
            await self._serve(seconds)
            self._check_live(view, op)
            if fault_kind in ERROR_KINDS:
                assert firing is not None
                raise EXCEPTION_FOR_KIND[firing.kind](firing)
            value: Any = self._compute(model, op_index, prompt, top_k, completion)
            hit = False
        else:
            cache = self._cache
            while True:
                value = cache.lookup(cache_key)
                if value is not MISSING:
                    if fault_kind in ERROR_KINDS:
                        assert firing is not None
                        raise EXCEPTION_FOR_KIND[firing.kind](firing)
                    await checkpoint()
                    break
                flight = self._inflight.get(cache_key)
                if flight is not None:
                    # Undo the miss: this call will be served by the flight or retry.
                    cache.misses -= 1
                    await flight.done.wait()
                    continue
                hit = False
                flight = self._inflight[cache_key] = _Flight()
                try:
                    seconds = self._service_time(op_index, model, key_text, call_index, 1)
                    await self._serve(seconds)
                    self._check_live(view, op)
                    if fault_kind in ERROR_KINDS:
                        assert firing is not None
                        raise EXCEPTION_FOR_KIND[firing.kind](firing)
                    value = self._compute(model, op_index, prompt, top_k, completion)
                    cache.store(cache_key, value)
                    self._forward_passes += 1
                finally:
                    del self._inflight[cache_key]
                    flight.done.set()
                break
        if fault_kind in OUTPUT_KINDS:
            value = corrupt(fault_kind, value)
        if trace is not None:
            self._emit(
                "op",
                model.id,
                time=started,
                op=op,
                prompt_hash=stable_hash(key_text),
                hit=hit,
                duration=self._now() - started,
                detail={"call": call_index},
            )
        return value

    def _compute(
        self, model: ViewModel, op_index: int, prompt: str, top_k: int, completion: str
    ) -> Any:
        if op_index == _NTD:
            return model.next_token_dist(prompt, top_k)
        if op_index == _LOGPROB_OF:
            return model.logprob_of(prompt, completion)
        if op_index == _ROLLING:
            return model.rolling_logprob(prompt)
        return model.generate(prompt)

    async def _call_batch(self, view: DummyView, prompts: list[str], top_k: int) -> list[TokenDist]:
        model = view._model
        model.calls[_BATCH] += 1
        op = "next_token_dist_batch"
        started = self._now()
        firings: list[FaultFiring | None] = []
        for prompt in prompts:
            index = self._next_index(op, model.id, prompt)
            firing = None
            if self._faults is not None:
                firing = self._faults.select(op, model.kind, model.id, prompt, index, started)
                if firing is not None:
                    self._record_firing(firing)
            firings.append(firing)
        if any(f is not None and f.kind == "hang" for f in firings):
            await self._serve(math.inf)

        cache = self._cache
        values: list[Any] = []
        missing: list[int] = []
        for item, prompt in enumerate(prompts):
            value = cache.lookup(("next_token_dist", model.cache_id, prompt, top_k))
            values.append(value)
            if value is MISSING:
                missing.append(item)
        batch_key = "\x1e".join(prompts)
        batch_index = self._next_index(op, model.id, "\x1ebatch\x1e" + batch_key)
        seconds = 0.0
        if missing:
            seconds = self._service_time(_BATCH, model, batch_key, batch_index, len(missing))
        await self._serve(seconds)
        self._check_live(view, op)
        for item, firing in enumerate(firings):
            if firing is not None and firing.kind in ERROR_KINDS:
                raise EXCEPTION_FOR_KIND[firing.kind](firing, item_index=item)
        for item in missing:
            prompt = prompts[item]
            value = model.next_token_dist(prompt, top_k)
            cache.store(("next_token_dist", model.cache_id, prompt, top_k), value)
            self._forward_passes += 1
            values[item] = value
        for item, firing in enumerate(firings):
            if firing is not None and firing.kind in OUTPUT_KINDS:
                values[item] = corrupt(firing.kind, values[item])
        if self._trace is not None:
            self._emit(
                "op",
                model.id,
                time=started,
                op=op,
                prompt_hash=stable_hash(batch_key),
                hit=not missing,
                duration=self._now() - started,
                detail={"items": len(prompts), "computed": len(missing), "call": batch_index},
            )
        return values
