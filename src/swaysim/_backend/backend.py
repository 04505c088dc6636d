"""The async dummy differential backend, its views, and the op pipeline.

An op call on a plain backend (no latency, no faults, no trace) takes the fast
path: count, look up the cache, compute on a miss, one checkpoint. Anything
configured sends it through ``AsyncDummyDifferentialBackend._call``, which
adds, in order: the per-key call index, fault selection, a single-flight cache
lookup (concurrent identical calls share one forward pass), service time on
the device, the fault's effect, and trace events; with ``schedule_jitter``,
seeded extra checkpoints and tiny sleeps before and after the op.
"""

from __future__ import annotations

import asyncio
import functools
import math
import numbers
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import anyio
import numpy as np
import sniffio
from anyio.lowlevel import checkpoint, current_token

from swaysim._backend.cache import MISSING, ForwardCache
from swaysim._backend.gate import ExclusivityGate, FifoSlots, Holding
from swaysim._backend.models import ModeModel, NullModel, ScaledModel, ViewModel
from swaysim._backend.statistics import BackendStatistics, snapshot_mapping
from swaysim._chaos.faults import (
    ERROR_KINDS,
    EXCEPTION_FOR_KIND,
    OUTPUT_KINDS,
    FaultFiring,
    FaultPlan,
    FaultState,
    InjectedFault,
    corrupt,
)
from swaysim._chaos.latency import LatencyPlan
from swaysim._chaos.seeding import stable_hash, unit_draws
from swaysim._trace.events import TraceEvent, TraceSink
from swaysim._types import DummyResponses, RollingLogprob, TokenDist
from swaysim._vocab import OPS, require_int
from swaysim.errors import InvalidArgumentError, StaleViewError, ViewError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable, Sequence
    from types import TracebackType

    from swaysim._backend.gate import ExclusivityPolicy
    from swaysim._chaos.latency import LatencyModel

__all__ = ["AsyncDummyDifferentialBackend", "DummyView"]

_T = TypeVar("_T")

_GENERATE, _LOGPROB_OF, _ROLLING, _NTD, _BATCH = range(5)
_PREFLIGHT_PROMPT: Final = "preflight"
_PREFLIGHT_TOP_K: Final = 8
_ASYNCIO_CHECKPOINT: Final = functools.partial(asyncio.sleep, 0)
JITTER_MAX_CHECKPOINTS: Final = 3
"""Extra checkpoints ``schedule_jitter`` may insert at one op boundary."""
JITTER_MAX_SECONDS: Final = 5e-6
"""Longest virtual sleep ``schedule_jitter`` may insert at one op boundary."""


def _reject_top_k(top_k: object) -> NoReturn:
    raise InvalidArgumentError(f"top_k={top_k!r} must be an integer >= 1")


def _check_top_k(top_k: int) -> None:
    if type(top_k) is not int or top_k < 1:
        _reject_top_k(top_k)


def _loop_checkpoint() -> Callable[[], Awaitable[Any]]:
    """The running loop's own checkpoint, which ``anyio.lowlevel.checkpoint()`` ends up awaiting.

    anyio's checkpoint is ``asyncio.sleep(0)`` or ``trio.lowlevel.checkpoint()``
    behind two more coroutine frames and a library lookup per call; a view
    resolves it once, when entered (a view never outlives its event loop).
    """
    library = sniffio.current_async_library()
    if library == "trio":
        trio = sys.modules["trio"]
        return trio.lowlevel.checkpoint  # type: ignore[no-any-return]
    if library == "asyncio":
        return _ASYNCIO_CHECKPOINT
    return checkpoint  # pragma: no cover - anyio supports asyncio and trio only


def _loop_sleep() -> Callable[[float], Awaitable[Any]]:
    """The running loop's own sleep, which ``anyio.sleep`` ends up awaiting.

    ``asyncio.sleep`` or ``trio.sleep``, without anyio's two extra coroutine
    frames and library lookup: a third of the slow path's cost per latency
    event. Resolved on every view entry, for the entering loop.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        trio = sys.modules["trio"]
        return trio.sleep  # type: ignore[no-any-return]
    if library == "asyncio":
        return asyncio.sleep
    return anyio.sleep  # pragma: no cover - anyio supports asyncio and trio only


class DummyView:
    """A live view, as yielded by ``async with backend.as_...()``.

    Valid only inside its ``async with`` block; any op afterwards raises
    :class:`StaleViewError`. It may be shared with child tasks inside the
    block: ops from several tasks run concurrently, served by the backend's
    device model.
    """

    __slots__ = ("_backend", "_cache_id", "_checkpoint", "_live", "_model")

    def __init__(self, backend: AsyncDummyDifferentialBackend, model: ViewModel) -> None:
        self._backend = backend
        self._model = model
        self._cache_id = model.cache_id
        self._live = True
        self._checkpoint = _loop_checkpoint()

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

    # The fast path (no latency, faults or trace): count, look up the cache,
    # compute on a miss, one checkpoint. Kept inline: it is the hot loop of a
    # probe suite, and every op must stay within about a microsecond of a bare
    # checkpoint (benchmarks/bench_backend.py).

    async def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str:
        """The canned generation for ``prompt`` (decoding options are accepted and ignored).

        Never cached. A prompt with no canned generation raises
        :class:`MissingResponseError` (a ``KeyError``) naming the mode and prompt.
        """
        del temperature, top_p, seed
        if not self._live:
            raise self._stale("generate")
        if type(max_new_tokens) is not int or max_new_tokens < 0:
            raise InvalidArgumentError(f"max_new_tokens={max_new_tokens!r} must be an integer >= 0")
        backend = self._backend
        if backend._plain:
            model = self._model
            model.calls[_GENERATE] += 1
            text = model.generate(prompt)
            await self._checkpoint()
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
            model = self._model
            model.calls[_LOGPROB_OF] += 1
            key = ("logprob_of", self._cache_id, prompt, completion)
            cache = backend._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = model.logprob_of(prompt, completion)
                cache.insert(key, value)
                backend._forward_passes += 1
            await self._checkpoint()
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
            model = self._model
            model.calls[_ROLLING] += 1
            key = ("rolling_logprob", self._cache_id, text)
            cache = backend._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = model.rolling_logprob(text)
                cache.insert(key, value)
                backend._forward_passes += 1
            await self._checkpoint()
            return value  # type: ignore[no-any-return]
        result: RollingLogprob = await backend._call(
            self, _ROLLING, text, text, 0, ("rolling_logprob", self._cache_id, text)
        )
        return result

    async def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        """The next-token distribution after ``prompt``."""
        if not self._live:
            raise self._stale("next_token_dist")
        if type(top_k) is not int or top_k < 1:
            _reject_top_k(top_k)
        backend = self._backend
        if backend._plain:
            model = self._model
            model.calls[_NTD] += 1
            key = ("next_token_dist", self._cache_id, prompt, top_k)
            cache = backend._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = model.next_token_dist(prompt, top_k)
                cache.insert(key, value)
                backend._forward_passes += 1
            await self._checkpoint()
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
            model = self._model
            model.calls[_BATCH] += 1
            cache = backend._cache
            cache_id = self._cache_id
            out = []
            for prompt in items:
                key = ("next_token_dist", cache_id, prompt, top_k)
                value = cache.lookup(key)
                if value is MISSING:
                    value = model.next_token_dist(prompt, top_k)
                    cache.insert(key, value)
                    backend._forward_passes += 1
                out.append(value)
            await self._checkpoint()
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


def _finite_real(name: str, value: object, allowed: str) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"{name}={value!r} must be a number, {allowed}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{name}={value!r} must be {allowed}")
    return number


def _non_negative_int(name: str, value: object) -> int:
    """``value`` as an int if it is an integer (numpy's included, not a bool) >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgumentError(f"{name}={value!r} must be an integer >= 0")
    return int(value)


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


def _require_collection(name: str, values: object) -> None:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidArgumentError(f"{name}={values!r} must be a sequence, e.g. ({values!r},)")


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
    most ``JITTER_MAX_SECONDS``, so concurrent ops interleave and complete in
    other orders. Both are drawn from the jitter seed and the call (op, view,
    prompt, per-key call index), so a seed replays the same perturbation;
    fault decisions and latency draws do not change, so a correct runner's
    results do not either.
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
        if schedule_jitter is not None:
            require_int("schedule_jitter", schedule_jitter, minimum=0)

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
        self._jitter = schedule_jitter
        self._plain = (
            latency is None and self._faults is None and trace is None and schedule_jitter is None
        )

        self._forward_passes = 0
        self._key_calls: dict[Hashable, int] = {}
        # Forward passes in flight; the event is created only once a second call waits.
        self._inflight: dict[Hashable, anyio.Event | None] = {}
        self._entries_per_view: dict[str, int] = {}
        self._last_entered: str | None = None
        self._loaded: set[str] = set()
        self._switches = 0
        self._latency_draws = 0
        self._latency_seconds = 0.0
        self._jitter_events = 0
        self._jitter_seconds = 0.0
        self._epoch = 0.0
        self._epoch_loop: object = None
        self._sleep: Callable[[float], Awaitable[Any]] = anyio.sleep

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
        return self._jitter

    @property
    def fault_log(self) -> tuple[FaultFiring, ...]:
        """Every firing so far, in the order they happened."""
        return tuple(self._faults.log) if self._faults is not None else ()

    @property
    def trace_sink(self) -> TraceSink | None:
        """Where trace events go (None: tracing off). Runners emit into it too."""
        return self._trace

    def loop_time(self) -> float:
        """Loop seconds since this backend's first use in the current event loop.

        The time base of every trace event, so runner events line up with the
        backend's own.
        """
        self._refresh_epoch()
        return self._now()

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
        """The adapter's term times ``lam`` (0 = base, 1 = ft, 1.25 overshoots).

        ``lam`` may be any finite real number (numpy scalars included); it is
        validated here, before any view is entered.
        """
        lam = _finite_real("lam", lam, "a finite number")
        key = f"scaled:{lam!r}"
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = ScaledModel(self._base_model, self._ft_model, lam)
        return _ViewContext(self, model)

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> _ViewContext:
        """A null adapter of seeded random weights: the noise floor for z-scores.

        The noise std is ``init_scale * sqrt(rank_scale)``. Arguments are
        validated here, before any view is entered: ``seed`` an integer >= 0,
        ``init_scale`` finite and >= 0, ``rank_scale`` positive and finite.
        """
        seed = _non_negative_int("seed", seed)
        init_scale = _finite_real("init_scale", init_scale, "finite and >= 0")
        if init_scale < 0.0:
            raise InvalidArgumentError(f"init_scale={init_scale!r} must be finite and >= 0")
        rank_scale = _finite_real("rank_scale", rank_scale, "positive and finite")
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

        Checks base and ft, then the scaled view of each ``scaled`` lam and the
        null view of each of ``null_seeds``, one view at a time, on the prompt
        ``"preflight"`` with ``top_k=8`` (as dlm-sway does). The reason names
        the view, the count of non-finite values and the prompt. An exception
        while checking (an injected fault, say) becomes ``(False, "preflight
        raised ...")``, never a crash; invalid ``scaled`` or ``null_seeds``
        raise :class:`InvalidArgumentError` before any view is entered;
        cancellation propagates.
        """
        _require_collection("scaled", scaled)
        _require_collection("null_seeds", null_seeds)
        contexts = [
            self.as_base(),
            self.as_finetuned(),
            *(self.as_scaled_adapter(lam) for lam in scaled),
            *(self.as_null_adapter(seed) for seed in null_seeds),
        ]
        for context in contexts:
            view_id = context._model.id
            try:
                async with context as view:
                    dist = await view.next_token_dist(_PREFLIGHT_PROMPT, top_k=_PREFLIGHT_TOP_K)
                problem = _non_finite_problem(dist)
            except Exception as exc:
                return False, f"preflight raised {type(exc).__name__} on the {view_id} view: {exc}"
            if problem:
                return False, f"{view_id} view produced {problem} on prompt {_PREFLIGHT_PROMPT!r}"
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
            jitter_events=self._jitter_events,
            jitter_seconds=self._jitter_seconds,
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
            parts.append(
                f"schedule_jitter={self._jitter} ({self._jitter_events} events, "
                f"{self._jitter_seconds:.6g} s)"
            )
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
        """The current task as ``"name#id"``, the name and id anyio's ``TaskInfo`` gives it.

        Read from the loop's own task: ``anyio.get_current_task()`` builds a
        ``TaskInfo`` (and looks up the parent) per call, a microsecond per
        trace event. Not cached per task: the lookup would cost as much.
        """
        library = sniffio.current_async_library()
        if library == "asyncio":
            current = asyncio.current_task()
            if current is not None:
                return f"{current.get_name()}#{id(current)}"
        elif library == "trio":
            task = sys.modules["trio"].lowlevel.current_task()
            return f"{task.name}#{id(task)}"
        info = anyio.get_current_task()  # pragma: no cover - anyio supports asyncio and trio only
        return f"{info.name}#{info.id}"  # pragma: no cover

    def _is_switch(self, cache_id: str) -> bool:
        if self._safe:
            if cache_id in self._loaded:
                return False
            self._loaded.add(cache_id)
            return True
        if self._last_entered == cache_id:
            return False
        self._last_entered = cache_id
        return True

    async def _enter(self, model: ViewModel) -> tuple[Holding, DummyView]:
        """Take the gate, then pay the switch and enter latency, then maybe fail.

        On an exclusive backend a switch is an entry of a view other than the
        one entered last (the first entry counts): the adapter is swapped. On
        a concurrent-safe backend views are resident side by side, so only a
        view's first entry is a switch (it is loaded once); this also keeps
        the count independent of the order concurrent entries happen in.

        An enter fault fires after those latencies and, like a cancellation
        during them, releases the gate before raising.
        Entries are counted per view (1-based) for ``nth``/``after``/``every``.
        """
        self._refresh_epoch()
        self._sleep = _loop_sleep()
        trace = self._trace
        started = self._now() if trace is not None else 0.0
        holding = await self._gate.enter(model.id)
        try:
            if trace is not None:
                waited = self._now() - started
                if waited > 0:
                    self._emit("view_wait", model.id, duration=waited)
                self._emit("view_enter", model.id)
            self._entries_per_view[model.id] = self._entries_per_view.get(model.id, 0) + 1
            latency = self._latency
            entry = self._entries_per_view[model.id]
            if self._is_switch(model.cache_id):
                self._switches += 1
                if latency is not None and latency.view_switch is not None:
                    switch = self._next_index("switch", model.id, "")
                    await self._sleep_drawn(latency.view_switch, "switch", model, switch)
            if latency is not None and latency.view_enter is not None:
                await self._sleep_drawn(latency.view_enter, "enter", model, entry)
            if self._faults is not None:
                firing = self._faults.select("enter", model.kind, model.id, "", entry, self._now())
                if firing is not None:
                    self._record_firing(firing)
                    raise EXCEPTION_FOR_KIND[firing.kind](firing)
        except BaseException:
            self._gate.exit(holding)
            if trace is not None:
                self._emit(
                    "view_exit",
                    model.id,
                    duration=anyio.current_time() - holding.since,
                    detail={"aborted": True},
                )
            raise
        return holding, DummyView(self, model)

    async def _exit(self, holding: Holding, view: DummyView, *, clean: bool) -> None:
        """Release the view; exit latency first, an exit fault only after a clean block.

        The gate is released in every case (cancellation, a failing exit)
        before anything can raise. An exit fault never replaces an exception
        or cancellation already propagating out of the block. Exits are
        counted per view (1-based) for ``nth``/``after``/``every``.
        """
        view._live = False
        model = view._model
        exit_index = self._next_index("exit", model.id, "")
        try:
            latency = self._latency
            if latency is not None and latency.view_exit is not None:
                await self._sleep_drawn(latency.view_exit, "exit", model, exit_index)
        finally:
            self._gate.exit(holding)
            if self._trace is not None:
                self._emit("view_exit", model.id, duration=anyio.current_time() - holding.since)
        if clean and self._faults is not None:
            firing = self._faults.select("exit", model.kind, model.id, "", exit_index, self._now())
            if firing is not None:
                self._record_firing(firing)
                raise EXCEPTION_FOR_KIND[firing.kind](firing)

    async def _sleep_drawn(
        self, model: LatencyModel, what: str, view: ViewModel, index: int
    ) -> None:
        """Sleep a view switch/enter/exit latency, drawn for the view's ``index``-th event."""
        assert self._latency is not None
        seconds = self._latency.draw(model, what, view.id, view.cache_id, index)
        self._count_latency(seconds, what, view.id)
        if seconds > 0:
            await self._sleep(seconds)

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
        # Positional: a third cheaper than keywords, on a path taken three times per op.
        self._trace.emit(
            TraceEvent(
                kind,
                self._now() if time is None else time,
                self._task_name(),
                view,
                op,
                prompt_hash,
                hit,
                duration,
                detail,
            )
        )

    async def _traced_op(
        self,
        view: DummyView,
        op: str,
        key_text: str,
        detail: dict[str, Any] | None,
        call: Callable[[str], Awaitable[_T]],
    ) -> _T:
        """Bracket one traced op: ``op_start`` now, ``op_end`` with the error if it fails.

        The op itself, called with the prompt hash, emits ``op_end`` on success
        (it knows whether the cache hit).
        """
        view_id = view._model.id
        prompt_hash = stable_hash(key_text)
        started = self._now()
        self._emit("op_start", view_id, op=op, prompt_hash=prompt_hash, detail=detail)
        try:
            return await call(prompt_hash)
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            self._emit(
                "op_end",
                view_id,
                op=op,
                prompt_hash=prompt_hash,
                duration=self._now() - started,
                detail={
                    **(detail or {}),
                    "error": "cancelled" if cancelled else type(exc).__name__,
                },
            )
            raise

    def _service_time(
        self, op_index: int, model: ViewModel, key_text: str, call_index: int, units: int
    ) -> float:
        """Draw the service time of one forward pass and count it as one latency event.

        The op's model (first matching rule, else the default) plus
        ``generate_per_token * units`` for generate or ``batch_per_item *
        units`` for a batch; each draw is keyed by (op, rule, view id, key,
        call index).
        """
        plan = self._latency
        if plan is None:
            return 0.0
        op = OPS[op_index]
        view_id = model.id
        rule_index, base_model = plan.op_model(op, model.kind, view_id)
        per_unit: LatencyModel | None = None
        if units:
            if op_index == _GENERATE:
                per_unit = plan.generate_per_token
            elif op_index == _BATCH:
                per_unit = plan.batch_per_item
        if base_model is None and per_unit is None:
            return 0.0
        seconds = 0.0
        if base_model is not None:
            fixed = base_model._fixed
            if fixed is not None:
                seconds = fixed
            else:
                seconds = plan.draw(base_model, op, rule_index, view_id, key_text, call_index)
        if per_unit is not None:
            per = plan.draw(per_unit, op, "per_unit", view_id, key_text, call_index)
            seconds += per * units
        self._latency_draws += 1
        self._latency_seconds += seconds
        if self._trace is not None:
            self._emit("latency", view_id, op=op, duration=seconds)
        return seconds

    async def _serve(self, seconds: float) -> None:
        """Occupy a device slot for ``seconds`` of loop time; always a checkpoint.

        A free slot is taken without a scheduling round of its own (the sleep
        is the checkpoint), so a latency event costs about one bare sleep.
        """
        if seconds <= 0:
            await checkpoint()
            return
        device = self._device
        if not device.try_acquire():
            await device.acquire()
        try:
            await self._sleep(seconds)
        finally:
            device.release()

    async def _hang(self) -> None:
        """Hold a device slot until cancelled: a forward pass that never returns."""
        device = self._device
        if not device.try_acquire():
            await device.acquire()
        try:
            await anyio.sleep_forever()
        finally:
            device.release()

    async def _jitter_pause(
        self, view: DummyView, where: str, op: str, view_id: str, key_text: str, call_index: int
    ) -> None:
        """``schedule_jitter`` at one op boundary: extra checkpoints, then a tiny sleep.

        Both are a pure function of (jitter seed, boundary, op, view, key,
        per-key call index), so a seed perturbs the same calls the same way in
        every run. The sleep is never zero: no two boundaries resume at the
        same instant, so the order they resume in is the jitter's, not the
        scheduler's (trio deliberately shuffles tasks woken together).
        """
        u_count, u_seconds, _ = unit_draws(
            self._jitter or 0, "jitter", where, op, view_id, key_text, call_index
        )
        checkpoints = int(u_count * (JITTER_MAX_CHECKPOINTS + 1))
        seconds = JITTER_MAX_SECONDS * (1.0 - u_seconds)
        self._jitter_events += checkpoints + 1
        self._jitter_seconds += seconds
        for _ in range(checkpoints):
            await view._checkpoint()
        await self._sleep(seconds)

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
        prompt_hash: str | None = None,
    ) -> Any:
        """One op with latency, faults or tracing configured.

        The per-key call index and the fault decision are taken before the
        first await, so they depend on nothing but the plan, the call and
        how many calls of the same key came before. Then: a hang holds a
        device slot until cancelled; a cache miss runs (or joins, when an
        identical call is already in flight) one forward pass that costs its
        service time on the device; an error fault raises after that service
        time (right after a checkpoint on a cache hit) and nothing is cached;
        an output fault corrupts a copy of the value, never the cached one.
        """
        if self._trace is not None and prompt_hash is None:
            return await self._traced_op(
                view,
                OPS[op_index],
                key_text,
                None,
                lambda hashed: self._call(
                    view,
                    op_index,
                    prompt,
                    key_text,
                    top_k,
                    cache_key,
                    tokens=tokens,
                    completion=completion,
                    prompt_hash=hashed,
                ),
            )
        model = view._model
        op = OPS[op_index]
        model.calls[op_index] += 1
        trace = self._trace
        faults = self._faults
        plan = self._latency
        jitter = self._jitter
        if (
            faults is None
            and trace is None
            and jitter is None
            and plan is not None
            and plan._fixed_only
        ):
            # Nothing reads the call's identity: skip the per-key count (and its memory).
            started = 0.0
            call_index = 0
        else:
            started = self._now()
            key_calls = self._key_calls
            call_key = (op, model.id, key_text)
            call_index = key_calls[call_key] = key_calls.get(call_key, 0) + 1
        firing: FaultFiring | None = None
        if faults is not None:
            firing = faults.select(
                op, model.kind, model.id, prompt, call_index, started, key=key_text
            )
            if firing is not None:
                self._record_firing(firing)
                if firing.kind == "hang":
                    await self._hang()
        if jitter is not None:
            await self._jitter_pause(view, "before", op, model.id, key_text, call_index)
        fails = firing is not None and firing.kind in ERROR_KINDS

        value: Any = MISSING
        inflight = self._inflight
        if cache_key is not None:
            cache = self._cache
            while True:
                value = cache.lookup(cache_key)
                if value is not MISSING or cache_key not in inflight:
                    break
                # Join the identical forward pass in flight; undo the miss, as its
                # result (or, if it failed, this call's own retry) serves this call.
                landed = inflight[cache_key]
                if landed is None:
                    landed = inflight[cache_key] = anyio.Event()
                cache.misses -= 1
                await landed.wait()
        hit = value is not MISSING
        if hit:
            await view._checkpoint()
            if fails:
                if jitter is not None:
                    await self._jitter_pause(view, "after", op, model.id, key_text, call_index)
                raise self._injected(firing)
        else:
            if cache_key is not None:
                inflight[cache_key] = None
            try:
                # The forward pass: service time on the device, inlined from _serve().
                seconds = self._service_time(op_index, model, key_text, call_index, tokens)
                if seconds > 0:
                    device = self._device
                    if not device.try_acquire():
                        await device.acquire()
                    try:
                        await self._sleep(seconds)
                    finally:
                        device.release()
                else:
                    await view._checkpoint()
                if not view._live:
                    raise view._stale(op)
                if fails:
                    if jitter is not None:
                        await self._jitter_pause(view, "after", op, model.id, key_text, call_index)
                    raise self._injected(firing)
                value = self._compute(model, op_index, prompt, top_k, completion)
                if cache_key is not None:
                    self._cache.store(cache_key, value)
                    self._forward_passes += 1
            finally:
                if cache_key is not None:
                    landed = inflight.pop(cache_key)
                    if landed is not None:
                        landed.set()
        if firing is not None and firing.kind in OUTPUT_KINDS:
            value = corrupt(firing.kind, value)
        if jitter is not None:
            await self._jitter_pause(view, "after", op, model.id, key_text, call_index)
        if trace is not None:
            self._emit(
                "op_end",
                model.id,
                op=op,
                prompt_hash=prompt_hash,
                hit=hit,
                duration=self._now() - started,
                detail={"call": call_index},
            )
        return value

    @staticmethod
    def _injected(firing: FaultFiring | None, item_index: int | None = None) -> InjectedFault:
        assert firing is not None
        return EXCEPTION_FOR_KIND[firing.kind](firing, item_index=item_index)

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

    async def _call_batch(
        self, view: DummyView, prompts: list[str], top_k: int, *, prompt_hash: str | None = None
    ) -> list[TokenDist]:
        """``next_token_dist_batch`` with latency, faults or tracing configured.

        Fault rules are evaluated per item, with the item's prompt and the
        per-key index of (batch op, view, prompt). A hang on any item hangs
        the batch; an error fault on any item fails the whole batch, after
        its service time, with ``item_index`` set to the first failing item;
        an output fault corrupts only its item. Items share the per-prompt
        cache and its single-flight: an item whose forward pass is already
        in flight (in another batch or a ``next_token_dist``) waits for it.
        The batch then costs one service time, the op's model plus
        ``batch_per_item`` per distinct prompt it computes; nothing to
        compute, nothing to pay.
        """
        if self._trace is not None and prompt_hash is None:
            return await self._traced_op(
                view,
                "next_token_dist_batch",
                "\x1e".join(prompts),
                {"items": len(prompts)},
                lambda hashed: self._call_batch(view, prompts, top_k, prompt_hash=hashed),
            )
        model = view._model
        model.calls[_BATCH] += 1
        op = "next_token_dist_batch"
        faults = self._faults
        started = self._now() if self._trace is not None or faults is not None else 0.0
        firings: list[FaultFiring | None] = []
        for prompt in prompts:
            index = self._next_index(op, model.id, prompt)
            firing = None
            if faults is not None:
                firing = faults.select(op, model.kind, model.id, prompt, index, started)
                if firing is not None:
                    self._record_firing(firing)
            firings.append(firing)
        batch_key = "\x1e".join(prompts)
        batch_index = self._next_index(op, model.id, "\x1ebatch\x1e" + batch_key)
        if any(f is not None and f.kind == "hang" for f in firings):
            await self._hang()
        jitter = self._jitter
        if jitter is not None:
            await self._jitter_pause(view, "before", op, model.id, batch_key, batch_index)

        cache = self._cache
        inflight = self._inflight
        keys: list[Hashable] = [("next_token_dist", model.cache_id, p, top_k) for p in prompts]
        while True:
            busy = next((key for key in keys if key in inflight), None)
            if busy is None:
                break
            landed = inflight[busy]
            if landed is None:
                landed = inflight[busy] = anyio.Event()
            await landed.wait()
        values: list[Any] = [cache.lookup(key) for key in keys]
        missing: dict[Hashable, list[int]] = {}
        for item, value in enumerate(values):
            if value is MISSING:
                missing.setdefault(keys[item], []).append(item)
        for key in missing:
            inflight[key] = None
        try:
            seconds = 0.0
            if missing:
                seconds = self._service_time(_BATCH, model, batch_key, batch_index, len(missing))
            await self._serve(seconds)
            if not view._live:
                raise view._stale(op)
            for item, firing in enumerate(firings):
                if firing is not None and firing.kind in ERROR_KINDS:
                    if jitter is not None:
                        await self._jitter_pause(
                            view, "after", op, model.id, batch_key, batch_index
                        )
                    raise self._injected(firing, item)
            for key, items in missing.items():
                value = model.next_token_dist(prompts[items[0]], top_k)
                cache.store(key, value)
                self._forward_passes += 1
                for item in items:
                    values[item] = value
        finally:
            for key in missing:
                landed = inflight.pop(key)
                if landed is not None:
                    landed.set()
        for item, firing in enumerate(firings):
            if firing is not None and firing.kind in OUTPUT_KINDS:
                values[item] = corrupt(firing.kind, values[item])
        if jitter is not None:
            await self._jitter_pause(view, "after", op, model.id, batch_key, batch_index)
        if self._trace is not None:
            self._emit(
                "op_end",
                model.id,
                op=op,
                prompt_hash=prompt_hash,
                hit=not missing,
                duration=self._now() - started,
                detail={"items": len(prompts), "computed": len(missing), "call": batch_index},
            )
        return values
