"""What ``async with backend.as_...()`` yields: the view, its ops, and the context manager.

An op call on a view of a plain backend (no latency, faults, trace or jitter)
takes the fast path right here: count, look up the cache, compute on a miss,
one checkpoint. Anything configured sends it down the backend's
:class:`~swaysim._backend.pipeline.OpPipeline` instead, except a cache hit
on a backend that only traces: the view serves it as the fast path does and
traces it inline (``OpPipeline.hit_tracer``), since tracing alone changes
nothing an op does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, cast

from swaysim._backend.cache import MISSING
from swaysim._validation import MAX_COUNT, invalid, require_sequence
from swaysim._vocab import (
    DEFAULT_TOP_K,
    GENERATE_OP,
    LOGPROB_OF_OP,
    NEXT_TOKEN_DIST_BATCH_OP,
    NEXT_TOKEN_DIST_OP,
    OP_SLOTS,
    ROLLING_LOGPROB_OP,
)
from swaysim.errors import InvalidArgumentError, StaleViewError, ViewError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._backend.cache import ForwardCache
    from swaysim._backend.gate import Holding
    from swaysim._backend.models import ViewModel
    from swaysim._backend.pipeline import OpPipeline
    from swaysim._backend.tracing import BackendTracer, LoopClock, OpStart
    from swaysim._types import RollingLogprob, TokenDist

__all__ = ["DummyView", "ViewContext"]

# Each op's counter in ViewModel.calls.
_GENERATE_SLOT: Final = OP_SLOTS[GENERATE_OP]
_LOGPROB_OF_SLOT: Final = OP_SLOTS[LOGPROB_OF_OP]
_ROLLING_SLOT: Final = OP_SLOTS[ROLLING_LOGPROB_OP]
_NTD_SLOT: Final = OP_SLOTS[NEXT_TOKEN_DIST_OP]
_BATCH_SLOT: Final = OP_SLOTS[NEXT_TOKEN_DIST_BATCH_OP]


def _bad_top_k(top_k: object) -> InvalidArgumentError:
    return invalid("top_k", top_k, f"must be an integer from 1 to {MAX_COUNT:,}")


def _not_text(field: str, value: object) -> InvalidArgumentError:
    return invalid(field, value, f"must be a str, not {type(value).__name__}")


class DummyView:
    """A live view, as yielded by ``async with backend.as_...()``.

    Valid only inside its ``async with`` block; any op afterwards raises
    :class:`StaleViewError`. It may be shared with child tasks inside the
    block: ops from several tasks run concurrently, served by the backend's
    device model.
    """

    __slots__ = (
        "_cache",
        "_cache_id",
        "_calls",
        "_checkpoint",
        "_live",
        "_model",
        "_pipeline",
        "_sleep",
    )

    def __init__(
        self,
        model: ViewModel,
        cache: ForwardCache,
        pipeline: OpPipeline | None,
        clock: LoopClock,
    ) -> None:
        """A view of ``model``, entered in the loop ``clock`` is bound to.

        ``pipeline`` None means nothing is configured: every op takes the fast path.
        The loop's own checkpoint and sleep are taken from ``clock`` (a view
        never outlives its event loop).
        """
        self._model = model
        self._cache = cache
        self._pipeline = pipeline
        self._cache_id = model.cache_id
        self._calls = model.calls
        self._live = True
        self._checkpoint = clock.checkpoint
        self._sleep = clock.sleep

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

    def _hit_started(self, tracer: BackendTracer, slot: int, op: str, key_text: str) -> OpStart:
        """A cache hit on a backend that only traces: counted, and its ``op_start`` emitted.

        The caller found the value (:meth:`ForwardCache.hit`), awaits its
        checkpoint and ends the op: a hit costs what it costs on a plain
        backend, plus its two events. A miss goes down the pipeline (which
        counts it).
        """
        self._calls[slot] += 1
        view_id = self._model.id
        counts = self._pipeline.key_calls  # type: ignore[union-attr]
        key = (op, view_id, key_text)
        call = counts[key] = counts.get(key, 0) + 1
        return tracer.op_started(view_id, op, key_text, call)

    # The fast path (no pipeline): count, look up the cache, compute on a miss,
    # one checkpoint. Kept inline: it is the hot loop of a probe suite, and
    # every op must stay within about a microsecond of a bare checkpoint
    # (benchmarks/bench_backend.py). So is a traced cache hit on a backend that
    # only traces, repeated per op rather than awaited: a shared coroutine would
    # cost each traced op a frame (benchmarks/bench_trace.py).

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
            raise self._stale(GENERATE_OP)
        if not isinstance(prompt, str):
            raise _not_text("prompt", prompt)
        if type(max_new_tokens) is not int or not 0 <= max_new_tokens <= MAX_COUNT:
            raise invalid(
                "max_new_tokens", max_new_tokens, f"must be an integer from 0 to {MAX_COUNT:,}"
            )
        pipeline = self._pipeline
        if pipeline is None:
            self._calls[_GENERATE_SLOT] += 1
            text = self._model.generate(prompt)
            await self._checkpoint()
            return text
        result: str = await pipeline.run(self, GENERATE_OP, prompt, None, (prompt,), max_new_tokens)
        return result

    async def logprob_of(self, prompt: str, completion: str) -> float:
        """Summed completion logprob (``-10.0`` when not canned)."""
        if not self._live:
            raise self._stale(LOGPROB_OF_OP)
        if not isinstance(prompt, str):
            raise _not_text("prompt", prompt)
        if not isinstance(completion, str):
            raise _not_text("completion", completion)
        key = (LOGPROB_OF_OP, self._cache_id, prompt, completion)
        pipeline = self._pipeline
        if pipeline is None:
            self._calls[_LOGPROB_OF_SLOT] += 1
            cache = self._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = self._model.logprob_of(prompt, completion)
                cache.insert(key, value)
            await self._checkpoint()
            return value  # type: ignore[no-any-return]
        key_text = f"{prompt}\x00{completion}"
        tracer = pipeline.hit_tracer
        if tracer is not None:
            value = self._cache.hit(key)
            if value is not MISSING:
                start = self._hit_started(tracer, _LOGPROB_OF_SLOT, LOGPROB_OF_OP, key_text)
                try:
                    await self._checkpoint()
                except BaseException as exc:
                    tracer.op_failed(start, exc)
                    raise
                tracer.op_ended(start, True)
                return value  # type: ignore[no-any-return]
        result: float = await pipeline.run(self, LOGPROB_OF_OP, key_text, key, (prompt, completion))
        return result

    async def rolling_logprob(self, text: str) -> RollingLogprob:
        """Per-token logprobs over ``text`` (synthesized when not canned)."""
        if not self._live:
            raise self._stale(ROLLING_LOGPROB_OP)
        if not isinstance(text, str):
            raise _not_text("text", text)
        key = (ROLLING_LOGPROB_OP, self._cache_id, text)
        pipeline = self._pipeline
        if pipeline is None:
            self._calls[_ROLLING_SLOT] += 1
            cache = self._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = self._model.rolling_logprob(text)
                cache.insert(key, value)
            await self._checkpoint()
            return value  # type: ignore[no-any-return]
        tracer = pipeline.hit_tracer
        if tracer is not None:
            value = self._cache.hit(key)
            if value is not MISSING:
                start = self._hit_started(tracer, _ROLLING_SLOT, ROLLING_LOGPROB_OP, text)
                try:
                    await self._checkpoint()
                except BaseException as exc:
                    tracer.op_failed(start, exc)
                    raise
                tracer.op_ended(start, True)
                return value  # type: ignore[no-any-return]
        result: RollingLogprob = await pipeline.run(self, ROLLING_LOGPROB_OP, text, key, (text,))
        return result

    async def next_token_dist(self, prompt: str, *, top_k: int = DEFAULT_TOP_K) -> TokenDist:
        """The next-token distribution after ``prompt``."""
        if not self._live:
            raise self._stale(NEXT_TOKEN_DIST_OP)
        if not isinstance(prompt, str):
            raise _not_text("prompt", prompt)
        if type(top_k) is not int or not 1 <= top_k <= MAX_COUNT:
            raise _bad_top_k(top_k)
        key = (NEXT_TOKEN_DIST_OP, self._cache_id, prompt, top_k)
        pipeline = self._pipeline
        if pipeline is None:
            self._calls[_NTD_SLOT] += 1
            cache = self._cache
            value = cache.lookup(key)
            if value is MISSING:
                value = self._model.next_token_dist(prompt, top_k)
                cache.insert(key, value)
            await self._checkpoint()
            return value  # type: ignore[no-any-return]
        tracer = pipeline.hit_tracer
        if tracer is not None:
            value = self._cache.hit(key)
            if value is not MISSING:
                start = self._hit_started(tracer, _NTD_SLOT, NEXT_TOKEN_DIST_OP, prompt)
                try:
                    await self._checkpoint()
                except BaseException as exc:
                    tracer.op_failed(start, exc)
                    raise
                tracer.op_ended(start, True)
                return value  # type: ignore[no-any-return]
        result: TokenDist = await pipeline.run(
            self, NEXT_TOKEN_DIST_OP, prompt, key, (prompt, top_k)
        )
        return result

    async def next_token_dist_batch(
        self, prompts: Sequence[str], *, top_k: int = DEFAULT_TOP_K
    ) -> list[TokenDist]:
        """``next_token_dist`` for every prompt, in order, identical to the per-prompt path.

        Shares the per-prompt cache. An empty batch returns ``[]``.
        """
        if not self._live:
            raise self._stale(NEXT_TOKEN_DIST_BATCH_OP)
        if type(prompts) is not list and type(prompts) is not tuple:
            prompts = cast("tuple[str, ...]", require_sequence("prompts", prompts, of="prompts"))
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise _not_text(f"prompts[{index}]", prompt)
        if type(top_k) is not int or not 1 <= top_k <= MAX_COUNT:
            raise _bad_top_k(top_k)
        pipeline = self._pipeline
        if pipeline is not None:
            # A copy: the batch awaits, and the caller's list must not change under it.
            return await pipeline.run_batch(self, tuple(prompts), top_k)
        self._calls[_BATCH_SLOT] += 1
        model = self._model
        cache = self._cache
        cache_id = self._cache_id
        out: list[TokenDist] = []
        for prompt in prompts:
            key = (NEXT_TOKEN_DIST_OP, cache_id, prompt, top_k)
            value = cache.lookup(key)
            if value is MISSING:
                value = model.next_token_dist(prompt, top_k)
                cache.insert(key, value)
            out.append(value)
        await self._checkpoint()
        return out


class ViewContext:
    """The async context manager behind ``as_base()`` and friends (single use)."""

    __slots__ = ("_backend", "_holding", "_model", "_view")

    def __init__(self, backend: AsyncDummyDifferentialBackend, model: ViewModel) -> None:
        self._backend = backend
        self._model = model
        self._holding: Holding | None = None
        self._view: DummyView | None = None

    @property
    def view_id(self) -> str:
        """The id of the view this context enters."""
        return self._model.id

    def __repr__(self) -> str:
        state = "unused" if self._holding is None else "entered"
        return f"<ViewContext {self._model.id!r} {state}>"

    async def __aenter__(self) -> DummyView:
        if self._holding is not None:
            raise ViewError(
                f"this as_...() context for view {self._model.id!r} was already entered; "
                "call the backend method again for a new entry"
            )
        backend = self._backend
        if backend._view_pipeline is not None:
            self._holding, self._view = await backend._enter(self._model)
            return self._view
        # A plain backend (nothing configured): taking the gate and counting the
        # entry is all there is, without the slow path's frame (bench_handoff.py).
        clock = backend._clock
        clock.refresh()
        model = self._model
        self._holding = await backend._gate.enter(model.id, clock)
        backend._count_entry(model)
        view = self._view = DummyView(model, backend._cache, None, clock)
        return view

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        holding, view = self._holding, self._view
        if holding is None or view is None:
            raise ViewError(
                f"this as_...() context for view {self._model.id!r} was exited without being "
                "entered; use it as 'async with backend.as_...() as view:'"
            )
        if view._pipeline is None:  # a plain backend: releasing the gate is all there is
            view._live = False
            self._backend._gate.exit(holding)
            return
        await self._backend._exit(holding, view, clean=exc_type is None)
