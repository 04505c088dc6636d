"""The thread side of the blocking bridge: dlm-sway's synchronous contract over an async backend.

:class:`BlockingBackend` and :class:`BlockingView` are what synchronous code
sees: views are ``with`` blocks and ops are plain calls. Each call becomes a
:class:`~swaysim._bridge.host.Request` that :class:`ThreadSide` hands to the
loop's :class:`~swaysim._bridge.host.Host` and then blocks on until the loop
answers. Everything here runs in worker threads, never in the loop's own.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar, TypeVarTuple, cast

import anyio
import anyio.from_thread

from swaysim._bridge.host import Await, Enter, Exit, HeldView, Host, Request, RequestKind
from swaysim.errors import BridgeError, StaleViewError, ViewError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from swaysim._bridge.host import Payload
    from swaysim._protocols import (
        DifferentialBackend,
        NullCalibratedBackend,
        PreflightCheckable,
        ScalableDifferentialBackend,
        ScoringModel,
    )
    from swaysim._types import RollingLogprob, TokenDist

__all__ = ["BlockingBackend", "BlockingView", "ThreadSide", "make_blocking"]

_T = TypeVar("_T")
_P = ParamSpec("_P")
_PosArgs = TypeVarTuple("_PosArgs")

OPTIONAL_CAPABILITIES: Final = ("as_scaled_adapter", "as_null_adapter", "preflight_finite_check")
"""Backend methods a :class:`BlockingBackend` mirrors only when the async backend has them."""


class ThreadSide:
    """A thread's way into a :class:`Host`: each blocking call a request, answered or raised.

    Only one thread's synchronous work holds virtual time: the one running
    :meth:`run_in_thread` (the probe function of :func:`run_sync_probe`).
    """

    __slots__ = ("_accounted_thread", "host")

    def __init__(self, host: Host) -> None:
        self.host = host
        self._accounted_thread: int | None = None

    def __repr__(self) -> str:
        return f"<ThreadSide of {self.host!r}>"

    def run_in_thread(
        self,
        func: Callable[[BlockingBackend, *_PosArgs], _T],
        sync_backend: BlockingBackend,
        args: tuple[*_PosArgs],
    ) -> _T:
        """Worker-thread body of :func:`run_sync_probe`: ``func(sync_backend, *args)``."""
        self._accounted_thread = threading.get_ident()
        try:
            return func(sync_backend, *args)
        finally:
            self._accounted_thread = None

    def _check_thread(self) -> None:
        if self.host.closed:
            raise BridgeError(
                "this blocking backend is closed: its 'with blocking_backend(...)' block "
                "exited or its run_sync_probe() call returned"
            )
        if threading.get_ident() == self.host.loop_thread:
            raise BridgeError(
                "a blocking view was called from its own event loop's thread, which would "
                "deadlock; in async code use the async backend directly"
            )

    def _submit(self, payload: Payload) -> object:
        self._check_thread()
        request = Request(payload, threading.get_ident() == self._accounted_thread)
        try:
            anyio.from_thread.run_sync(self.host.dispatch, request, token=self.host.token)
        except anyio.RunFinishedError:
            raise BridgeError("the blocking bridge's event loop has finished") from None
        return request.future.result()

    def run_sync(self, func: Callable[[], _T]) -> _T:
        """``func()`` in the loop's thread (it must not block)."""
        self._check_thread()
        try:
            return anyio.from_thread.run_sync(func, token=self.host.token)
        except anyio.RunFinishedError:
            raise BridgeError("the blocking bridge's event loop has finished") from None

    def enter(self, open_view: Callable[[], AbstractAsyncContextManager[ScoringModel]]) -> HeldView:
        """Enter the view in this thread's lane; the held view."""
        return cast("HeldView", self._submit(Enter(open_view)))

    def exit(
        self,
        held: HeldView,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Exit ``held`` in this thread's lane."""
        self._submit(Exit(held, exc_type, exc, tb))

    def call(self, func: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``await func(*args, **kwargs)`` in this thread's lane; its result."""
        return cast(
            "_T", self._submit(Await(RequestKind.CALL, functools.partial(func, *args, **kwargs)))
        )

    def op(self, func: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``await func(*args, **kwargs)`` in a task of its own, under the op timeout."""
        return cast(
            "_T", self._submit(Await(RequestKind.OP, functools.partial(func, *args, **kwargs)))
        )


class BlockingView:
    """A live view for synchronous code, as yielded by ``with sync_backend.as_...()``.

    The ops are the async view's, as plain calls that block until the loop
    answers; it matches dlm-sway's ``ScoringModel`` (``Model`` plus
    ``ScoringBackend``). Valid only inside its ``with`` block; any op
    afterwards raises :class:`StaleViewError`. Other threads may use it
    inside the block; their ops run concurrently.
    """

    __slots__ = ("_calls", "_held", "_live")

    def __init__(self, calls: ThreadSide, held: HeldView) -> None:
        self._calls = calls
        self._held = held
        self._live = True

    @property
    def id(self) -> str:
        """``"base"``, ``"ft"``, ``"scaled_0.50"``, ``"null_42"``, ``"null_42_rank2.00"``."""
        return self._held.view_id

    @property
    def live(self) -> bool:
        """Whether the view's ``with`` block is still open."""
        return self._live

    def __repr__(self) -> str:
        return f"<BlockingView id={self.id!r} {'live' if self._live else 'stale'}>"

    def _view(self, op: str) -> ScoringModel:
        """The async view, for one ``op``; raise when the ``with`` block has exited."""
        if not self._live:
            raise StaleViewError(
                f"view {self.id!r} was used ({op}) after its 'with' block exited; "
                "enter the view again with 'with backend.as_...()'"
            )
        return self._held.view

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str:
        """The view's generation for ``prompt``."""
        return self._calls.op(
            self._view("generate").generate,
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )

    def logprob_of(self, prompt: str, completion: str) -> float:
        """Sum of the completion's token logprobs given the prompt, in nats."""
        return self._calls.op(self._view("logprob_of").logprob_of, prompt, completion)

    def rolling_logprob(self, text: str) -> RollingLogprob:
        """Per-token logprobs over the whole of ``text``."""
        return self._calls.op(self._view("rolling_logprob").rolling_logprob, text)

    def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        """The (top-k truncated) next-token distribution after ``prompt``."""
        return self._calls.op(self._view("next_token_dist").next_token_dist, prompt, top_k=top_k)

    def next_token_dist_batch(self, prompts: Sequence[str], *, top_k: int = 256) -> list[TokenDist]:
        """``next_token_dist`` for each prompt, in order, as one batched call."""
        batch = self._view("next_token_dist_batch").next_token_dist_batch
        return self._calls.op(batch, prompts, top_k=top_k)

    def run_op(self, op: str, func: Callable[[ScoringModel], Awaitable[_T]]) -> _T:
        """``await func(async_view)`` in the loop, served as one op; its result.

        For wrappers that do more around an op than call it (measure it, say):
        ``func`` runs in a task of its own under the op timeout, as the ops
        above do. ``op`` names the op in the error a stale view raises.
        """
        return self._calls.op(func, self._view(op))

    def close(self) -> None:
        """Nothing to release (dlm-sway's ``Model.close``); the ``with`` block owns the view."""


class _BlockingViewContext:
    """The sync context manager behind ``as_base()`` and friends (single use)."""

    __slots__ = ("_calls", "_open", "_view")

    def __init__(
        self, calls: ThreadSide, open_view: Callable[[], AbstractAsyncContextManager[ScoringModel]]
    ) -> None:
        self._calls = calls
        self._open = open_view
        self._view: BlockingView | None = None

    def __enter__(self) -> BlockingView:
        if self._view is not None:
            raise ViewError(
                f"this as_...() context for view {self._view.id!r} was already entered; "
                "call the backend method again for a new entry"
            )
        self._view = BlockingView(self._calls, self._calls.enter(self._open))
        return self._view

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A view block never swallows an exception: the async exit's return value is dropped.
        view = self._view
        assert view is not None
        view._live = False
        self._calls.exit(view._held, exc_type, exc, tb)


class BlockingBackend:
    """A synchronous face of an async differential backend, for synchronous probe code.

    Structurally dlm-sway's synchronous ``DifferentialBackend`` (and, when
    the async backend has them, ``ScalableDifferentialBackend``,
    ``NullCalibratedBackend`` and ``PreflightCheckable``): ``with
    sync_backend.as_base() as view`` and plain op calls. A capability the
    async backend lacks is set to ``None`` on the blocking backend, which is
    how a runtime-checkable protocol is told "not implemented", so a probe
    that checks ``isinstance`` skips exactly as it would on the async side.

    Made by :func:`blocking_backend` or :func:`run_sync_probe`; never
    constructed directly. Usable from any thread but the loop's own.
    Argument errors of ``as_scaled_adapter`` / ``as_null_adapter`` surface
    when the ``with`` block is entered, as with dlm-sway's own backends.
    """

    __slots__ = ("_calls",)

    def __init__(self, calls: ThreadSide) -> None:
        self._calls = calls

    @property
    def backend(self) -> DifferentialBackend:
        """The async backend behind the bridge."""
        return self._calls.host.backend

    @property
    def safe_for_concurrent_views(self) -> bool:
        """The async backend's flag: whether views may be live together."""
        return bool(self.backend.safe_for_concurrent_views)

    @property
    def closed(self) -> bool:
        """Whether the bridge has closed; every call then raises :class:`BridgeError`."""
        return self._calls.host.closed

    def __repr__(self) -> str:
        host = self._calls.host
        state = "closed" if host.closed else "open"
        return f"<BlockingBackend {state} lanes={host.live_lanes} backend={self.backend!r}>"

    def _context(
        self, open_view: Callable[[], AbstractAsyncContextManager[ScoringModel]]
    ) -> _BlockingViewContext:
        return _BlockingViewContext(self._calls, open_view)

    def as_base(self) -> _BlockingViewContext:
        """``with sync_backend.as_base() as view``: the base model (adapter off)."""
        return self._context(self.backend.as_base)

    def as_finetuned(self) -> _BlockingViewContext:
        """``with sync_backend.as_finetuned() as view``: the fine-tuned model."""
        return self._context(self.backend.as_finetuned)

    # The three below exist on this class only when the async backend has them
    # (see make_blocking), so the casts state what was checked.

    def as_scaled_adapter(self, lam: float) -> _BlockingViewContext:
        """The adapter's term times ``lam`` (0 = base, 1 = ft, 1.25 overshoots)."""
        backend = cast("ScalableDifferentialBackend", self.backend)
        return self._context(functools.partial(backend.as_scaled_adapter, lam))

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> _BlockingViewContext:
        """A null adapter of seeded random weights: the noise floor for z-scores."""
        backend = cast("NullCalibratedBackend", self.backend)
        return self._context(
            functools.partial(
                backend.as_null_adapter, seed, init_scale=init_scale, rank_scale=rank_scale
            )
        )

    def preflight_finite_check(
        self, *, scaled: Sequence[float] = (), null_seeds: Sequence[int] = ()
    ) -> tuple[bool, str]:
        """The async backend's preflight: ``(True, "")`` or ``(False, reason)``.

        ``scaled`` and ``null_seeds`` are passed on only when given, so a
        backend whose preflight takes no arguments works too.
        """
        check: Callable[..., Awaitable[tuple[bool, str]]] = cast(
            "PreflightCheckable", self.backend
        ).preflight_finite_check
        options: dict[str, tuple[float, ...] | tuple[int, ...]] = {}
        if scaled:
            options["scaled"] = tuple(scaled)
        if null_seeds:
            options["null_seeds"] = tuple(null_seeds)
        return self._calls.call(check, **options)

    def current_time(self) -> float:
        """The event loop's clock (``anyio.current_time()``): virtual under a virtual clock."""
        return self._calls.run_sync(anyio.current_time)

    def run_sync(self, func: Callable[[*_PosArgs], _T], *args: *_PosArgs) -> _T:
        """Call ``func(*args)`` in the event loop's thread and return its result.

        For reading loop-side state consistently, e.g.
        ``sync_backend.run_sync(backend.statistics)``. ``func`` must not block.
        """
        return self._calls.run_sync(functools.partial(func, *args))


@functools.cache
def _class_without(missing: frozenset[str]) -> type[BlockingBackend]:
    name = "BlockingBackend"
    return type(name, (BlockingBackend,), {"__slots__": (), **dict.fromkeys(missing)})


def make_blocking(calls: ThreadSide) -> BlockingBackend:
    """The blocking face of a host's backend, without the capabilities the backend lacks."""
    backend = calls.host.backend
    missing = frozenset(
        name for name in OPTIONAL_CAPABILITIES if not callable(getattr(backend, name, None))
    )
    cls = _class_without(missing) if missing else BlockingBackend
    return cls(calls)
