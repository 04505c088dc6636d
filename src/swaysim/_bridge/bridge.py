"""The blocking bridge: an async backend driven from synchronous code.

Two ways in, one mechanism:

- :func:`blocking_backend` starts an event loop in a portal thread and hands
  synchronous code a :class:`BlockingBackend` (dlm-sway's synchronous
  protocol: views are plain ``with`` blocks, ops are plain calls).
- :func:`run_sync_probe` runs a synchronous function in a worker thread of
  the *current* loop, with a :class:`BlockingBackend` that calls back into it;
  a runner uses it to schedule synchronous probes next to async ones.

How calls map to loop tasks. A thread's view entries and exits all run in one
loop task per thread, its *lane* (named after the thread), which lives while
the thread holds a view. The exclusivity gate therefore sees each thread as
one task: ``"wait"`` and ``"strict"`` behave as for async tasks, and a thread
that enters a second view while holding one gets :class:`NestedViewError`
instead of waiting for itself. Ops run in a fresh task each, so threads that
share a view run their ops concurrently, served by the backend's device
model like concurrent async ops.

Time. Injected latency sleeps on the loop's clock, so on a virtual clock it
costs no wall time. An autojumping clock cannot see a thread's work, so
:func:`run_sync_probe` holds virtual time (:func:`hold_virtual_time`) while
the worker thread runs synchronous code and releases it while the thread is
blocked on a call into the loop: latency still jumps, and a timeout around
the probe fires only after the probe really ran that long (in loop time).

Cancellation. Cancelling :func:`run_sync_probe` (a ``fail_after`` around it)
cancels whatever the thread is blocked on; the thread sees
:class:`BridgeCancelled`, a ``BaseException`` like the loops' own
cancellation, so ``except Exception`` in probe code does not swallow it, and
every later view entry or op raises it too. Once the thread has returned,
its views are released and the call raises the loop's cancellation
(``TimeoutError`` under ``fail_after``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import math
import threading
from collections import deque
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, TypeVarTuple

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.lowlevel import checkpoint, current_token

from swaysim._time.clock import LOOPS, hold_virtual_time, virtual_anyio_backend
from swaysim._time.outside import caller_accounts_for_threads
from swaysim.errors import (
    BridgeCancelled,
    BridgeError,
    InvalidArgumentError,
    StaleViewError,
    ViewError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from anyio.abc import TaskGroup, TaskStatus
    from anyio.lowlevel import EventLoopToken

    from swaysim._protocols import ScoringModel
    from swaysim._types import RollingLogprob, TokenDist

    ViewFactory = Callable[..., AbstractAsyncContextManager[ScoringModel]]

__all__ = [
    "BlockingBackend",
    "BlockingView",
    "BridgeCancelled",
    "BridgeError",
    "blocking_backend",
    "run_sync_probe",
]

T = TypeVar("T")
PosArgs = TypeVarTuple("PosArgs")

_OP, _ENTER, _EXIT, _CALL = range(4)
_OPTIONAL_CAPABILITIES: Final = ("as_scaled_adapter", "as_null_adapter", "preflight_finite_check")


class _Held:
    """A view entered by a lane: its async context manager and the view it yielded."""

    __slots__ = ("cm", "exited", "lane", "view", "view_id")

    def __init__(self, cm: AbstractAsyncContextManager[ScoringModel], view: ScoringModel) -> None:
        self.cm = cm
        self.view = view
        self.view_id = view.id
        self.lane: _Lane | None = None
        self.exited = False


class _Request:
    """One blocking call from a thread, answered through a thread-safe future."""

    __slots__ = (
        "accounted",
        "future",
        "kind",
        "payload",
        "released_hold",
        "thread_key",
        "thread_name",
    )

    def __init__(self, kind: int, payload: tuple[Any, ...], accounted: bool) -> None:
        self.kind = kind
        self.payload = payload
        self.accounted = accounted
        self.released_hold = False
        thread = threading.current_thread()
        self.thread_key = threading.get_ident()
        self.thread_name = f"sync {thread.name}#{thread.native_id}"
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class _Lane:
    """The loop task that enters and exits every view of one thread."""

    __slots__ = ("closed", "held", "key", "queue", "wakeup")

    def __init__(self, key: int) -> None:
        self.key = key
        self.held: list[_Held] = []
        self.queue: deque[_Request] = deque()
        self.wakeup: anyio.Event | None = None
        self.closed = False


class _Host:
    """The loop side of one bridge: its task group, lanes and virtual-time accounting.

    Loop-side state is touched only from the loop's thread; threads reach it
    through :meth:`_submit`, which hands a request to :meth:`_dispatch`.
    """

    __slots__ = (
        "_accounted_thread",
        "_close_event",
        "_closed",
        "_hold",
        "_holds",
        "_interrupted",
        "_lanes",
        "_loop_thread",
        "_op_timeout",
        "_tg",
        "_token",
        "backend",
    )

    def __init__(self, backend: Any, op_timeout: float | None) -> None:
        self.backend = backend
        self._op_timeout = op_timeout
        self._tg: TaskGroup | None = None
        self._token: EventLoopToken | None = None
        self._loop_thread: int | None = None
        self._close_event: anyio.Event | None = None
        self._lanes: dict[int, _Lane] = {}
        self._closed = False
        self._interrupted = False
        self._accounted_thread: int | None = None
        self._holds = 0
        self._hold: AbstractContextManager[None] | None = None

    # -- loop side: lifecycle ----------------------------------------------------

    def attach(self, tg: TaskGroup) -> None:
        self._tg = tg
        self._token = current_token()
        self._loop_thread = threading.get_ident()
        self._close_event = anyio.Event()
        tg.start_soon(self._watch, name="swaysim-bridge-watch")

    async def _watch(self) -> None:
        """Notice a cancellation from outside, and from then on refuse new work.

        anyio on asyncio does not deliver an earlier cancellation to a task
        spawned later into a scope nobody is waiting in (the runner's task
        sits shielded in ``to_thread``), so new work is refused up front
        instead of spawned.
        """
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            if not self._closed:
                self._interrupted = True
            raise

    async def serve(self, *, task_status: TaskStatus[None]) -> None:
        """Portal mode: keep a task group open until :meth:`request_close`."""
        async with anyio.create_task_group() as tg:
            self.attach(tg)
            task_status.started()
            assert self._close_event is not None
            await self._close_event.wait()
            self.close()

    def request_close(self) -> None:
        assert self._close_event is not None
        self._close_event.set()

    def close(self) -> None:
        """Refuse new calls and tear down every lane (releasing leaked views)."""
        self._closed = True
        assert self._tg is not None
        self._tg.cancel_scope.cancel()

    @property
    def interrupted(self) -> bool:
        """Whether a cancellation from outside reached work a thread was blocked on."""
        return self._interrupted

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def live_lanes(self) -> int:
        return len(self._lanes)

    # -- loop side: virtual time -------------------------------------------------

    def hold_inc(self) -> None:
        self._holds += 1
        if self._holds == 1:
            self._hold = hold_virtual_time()
            self._hold.__enter__()

    def hold_dec(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            assert self._hold is not None
            hold, self._hold = self._hold, None
            hold.__exit__(None, None, None)

    def _thread_blocked(self, request: _Request) -> None:
        if request.accounted and not request.released_hold:
            request.released_hold = True
            self.hold_dec()

    def _deliver(
        self, request: _Request, value: Any = None, error: BaseException | None = None
    ) -> None:
        if request.released_hold:
            request.released_hold = False
            self.hold_inc()
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(value)

    def _interruption(self) -> BaseException:
        if self._closed:
            return BridgeError(
                "the blocking bridge closed while this thread was still using it; "
                "finish every thread's work before leaving the bridge's block"
            )
        return BridgeCancelled("the loop-side caller cancelled this call (a timeout, say)")

    # -- loop side: serving requests -----------------------------------------------

    def _dispatch(self, request: _Request) -> None:
        if self._closed or self._interrupted:
            if request.kind == _EXIT:
                self._deliver(request)
            else:
                self._deliver(request, error=self._interruption())
            return
        assert self._tg is not None
        if request.kind == _OP:
            self._tg.start_soon(self._run_op, request, name=request.thread_name)
            return
        if request.kind == _EXIT:
            lane = request.payload[0].lane
            if lane.closed:
                # Torn down by a cancellation: the view is already released.
                self._deliver(request)
                return
        else:
            lane = self._lanes.get(request.thread_key)
            if lane is None:
                lane = self._lanes[request.thread_key] = _Lane(request.thread_key)
                self._tg.start_soon(self._run_lane, lane, name=request.thread_name)
        lane.queue.append(request)
        if lane.wakeup is not None:
            lane.wakeup.set()

    def _retire(self, lane: _Lane) -> None:
        lane.closed = True
        if self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]

    async def _run_lane(self, lane: _Lane) -> None:
        request: _Request | None = None
        try:
            while True:
                while not lane.queue:
                    lane.wakeup = anyio.Event()
                    await lane.wakeup.wait()
                lane.wakeup = None
                request = lane.queue.popleft()
                value, error = await self._perform(request, lane)
                done = not lane.held and not lane.queue
                if done:
                    self._retire(lane)
                self._deliver(request, value, error)
                request = None
                if done:
                    return
        except BaseException as exc:
            self._retire(lane)
            for held in reversed(lane.held):
                held.exited = True
                # Whatever the exit raises, the original exception propagates.
                with contextlib.suppress(BaseException):
                    await held.cm.__aexit__(type(exc), exc, exc.__traceback__)
            lane.held.clear()
            pending = [request] if request is not None else []
            pending.extend(lane.queue)
            lane.queue.clear()
            for waiting in pending:
                if waiting.kind == _EXIT:
                    self._deliver(waiting)
                else:
                    self._deliver(waiting, error=self._interruption())
            raise

    async def _perform(self, request: _Request, lane: _Lane) -> tuple[Any, Exception | None]:
        """Run a lane request; ``(value, error)``. Cancellation propagates."""
        self._thread_blocked(request)
        try:
            if request.kind == _ENTER:
                factory, args, kwargs = request.payload
                cm = factory(*args, **kwargs)
                held = _Held(cm, await cm.__aenter__())
                held.lane = lane
                lane.held.append(held)
                return held, None
            if request.kind == _EXIT:
                held, exc_type, exc, tb = request.payload
                if held.exited:
                    return None, None
                held.exited = True
                lane.held.remove(held)
                return await held.cm.__aexit__(exc_type, exc, tb), None
            func, args = request.payload
            return await func(*args), None
        except Exception as exc:
            return None, exc

    async def _run_op(self, request: _Request) -> None:
        self._thread_blocked(request)
        view, name, args, kwargs = request.payload
        try:
            method = getattr(view, name)
            if self._op_timeout is None:
                value = await method(*args, **kwargs)
            else:
                with anyio.fail_after(self._op_timeout):
                    value = await method(*args, **kwargs)
        except anyio.get_cancelled_exc_class():
            self._deliver(request, error=self._interruption())
            raise
        except BaseException as exc:
            self._deliver(request, error=exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._deliver(request, value)

    # -- thread side ----------------------------------------------------------

    def run_in_thread(self, func: Callable[..., T], sync_backend: BlockingBackend, args: Any) -> T:
        """Worker-thread body of :func:`run_sync_probe`."""
        self._accounted_thread = threading.get_ident()
        try:
            return func(sync_backend, *args)
        finally:
            self._accounted_thread = None

    def _check_thread(self) -> None:
        if self._closed:
            raise BridgeError(
                "this blocking backend is closed: its 'with blocking_backend(...)' block "
                "exited or its run_sync_probe() call returned"
            )
        if threading.get_ident() == self._loop_thread:
            raise BridgeError(
                "a blocking view was called from its own event loop's thread, which would "
                "deadlock; in async code use the async backend directly"
            )

    def _submit(self, kind: int, payload: tuple[Any, ...]) -> Any:
        self._check_thread()
        request = _Request(kind, payload, threading.get_ident() == self._accounted_thread)
        try:
            anyio.from_thread.run_sync(self._dispatch, request, token=self._token)
        except anyio.RunFinishedError:
            raise BridgeError("the blocking bridge's event loop has finished") from None
        return request.future.result()

    def run_sync(self, func: Callable[[], T]) -> T:
        self._check_thread()
        try:
            return anyio.from_thread.run_sync(func, token=self._token)
        except anyio.RunFinishedError:
            raise BridgeError("the blocking bridge's event loop has finished") from None

    def enter(self, factory: ViewFactory, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Held:
        held: _Held = self._submit(_ENTER, (factory, args, kwargs))
        return held

    def exit(
        self,
        held: _Held,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._submit(_EXIT, (held, exc_type, exc, tb))

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        result: T = self._submit(_CALL, (func, args))
        return result

    def op(self, held: _Held, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._submit(_OP, (held.view, name, args, kwargs))


class BlockingView:
    """A live view for synchronous code, as yielded by ``with sync_backend.as_...()``.

    The ops are the async view's, as plain calls that block until the loop
    answers; it matches dlm-sway's ``ScoringModel`` (``Model`` plus
    ``ScoringBackend``). Valid only inside its ``with`` block; any op
    afterwards raises :class:`StaleViewError`. Other threads may use it
    inside the block; their ops run concurrently.
    """

    __slots__ = ("_held", "_host", "_live")

    def __init__(self, host: _Host, held: _Held) -> None:
        self._host = host
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

    def _op(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self._live:
            raise StaleViewError(
                f"view {self.id!r} was used ({name}) after its 'with' block exited; "
                "enter the view again with 'with backend.as_...()'"
            )
        return self._host.op(self._held, name, args, kwargs)

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
        result: str = self._op(
            "generate",
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )
        return result

    def logprob_of(self, prompt: str, completion: str) -> float:
        """Sum of the completion's token logprobs given the prompt, in nats."""
        result: float = self._op("logprob_of", prompt, completion)
        return result

    def rolling_logprob(self, text: str) -> RollingLogprob:
        """Per-token logprobs over the whole of ``text``."""
        result: RollingLogprob = self._op("rolling_logprob", text)
        return result

    def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        """The (top-k truncated) next-token distribution after ``prompt``."""
        result: TokenDist = self._op("next_token_dist", prompt, top_k=top_k)
        return result

    def next_token_dist_batch(self, prompts: Sequence[str], *, top_k: int = 256) -> list[TokenDist]:
        """``next_token_dist`` for each prompt, in order, as one batched call."""
        result: list[TokenDist] = self._op("next_token_dist_batch", prompts, top_k=top_k)
        return result

    def close(self) -> None:
        """Nothing to release (dlm-sway's ``Model.close``); the ``with`` block owns the view."""


class _BlockingViewContext:
    """The sync context manager behind ``as_base()`` and friends (single use)."""

    __slots__ = ("_args", "_factory", "_host", "_kwargs", "_view")

    def __init__(self, host: _Host, factory: ViewFactory, *args: Any, **kwargs: Any) -> None:
        self._host = host
        self._factory = factory
        self._args = args
        self._kwargs = kwargs
        self._view: BlockingView | None = None

    def __enter__(self) -> BlockingView:
        if self._view is not None:
            raise ViewError(
                f"this as_...() context for view {self._view.id!r} was already entered; "
                "call the backend method again for a new entry"
            )
        self._view = BlockingView(
            self._host, self._host.enter(self._factory, self._args, self._kwargs)
        )
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
        self._host.exit(view._held, exc_type, exc, tb)


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

    __slots__ = ("_host",)

    def __init__(self, host: _Host) -> None:
        self._host = host

    @property
    def backend(self) -> Any:
        """The async backend behind the bridge."""
        return self._host.backend

    @property
    def safe_for_concurrent_views(self) -> bool:
        """The async backend's flag: whether views may be live together."""
        return bool(self._host.backend.safe_for_concurrent_views)

    @property
    def closed(self) -> bool:
        """Whether the bridge has closed; every call then raises :class:`BridgeError`."""
        return self._host.closed

    def __repr__(self) -> str:
        state = "closed" if self._host.closed else "open"
        return f"<BlockingBackend {state} lanes={self._host.live_lanes} backend={self.backend!r}>"

    def as_base(self) -> _BlockingViewContext:
        """``with sync_backend.as_base() as view``: the base model (adapter off)."""
        return _BlockingViewContext(self._host, self._host.backend.as_base)

    def as_finetuned(self) -> _BlockingViewContext:
        """``with sync_backend.as_finetuned() as view``: the fine-tuned model."""
        return _BlockingViewContext(self._host, self._host.backend.as_finetuned)

    def as_scaled_adapter(self, lam: float) -> _BlockingViewContext:
        """The adapter's term times ``lam`` (0 = base, 1 = ft, 1.25 overshoots)."""
        return _BlockingViewContext(self._host, self._host.backend.as_scaled_adapter, lam)

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> _BlockingViewContext:
        """A null adapter of seeded random weights: the noise floor for z-scores."""
        return _BlockingViewContext(
            self._host,
            self._host.backend.as_null_adapter,
            seed,
            init_scale=init_scale,
            rank_scale=rank_scale,
        )

    def preflight_finite_check(
        self, *, scaled: Sequence[float] = (), null_seeds: Sequence[int] = ()
    ) -> tuple[bool, str]:
        """The async backend's preflight: ``(True, "")`` or ``(False, reason)``.

        ``scaled`` and ``null_seeds`` are passed on only when given, so a
        backend whose preflight takes no arguments works too.
        """
        check = self._host.backend.preflight_finite_check
        options: dict[str, Any] = {}
        if scaled:
            options["scaled"] = tuple(scaled)
        if null_seeds:
            options["null_seeds"] = tuple(null_seeds)
        result: tuple[bool, str] = self._host.call(functools.partial(check, **options))
        return result

    def current_time(self) -> float:
        """The event loop's clock (``anyio.current_time()``): virtual under a virtual clock."""
        return self._host.run_sync(anyio.current_time)

    def run_sync(self, func: Callable[[*PosArgs], T], *args: *PosArgs) -> T:
        """Call ``func(*args)`` in the event loop's thread and return its result.

        For reading loop-side state consistently, e.g.
        ``sync_backend.run_sync(backend.statistics)``. ``func`` must not block.
        """
        return self._host.run_sync(functools.partial(func, *args))


@functools.cache
def _class_without(missing: frozenset[str]) -> type[BlockingBackend]:
    name = "BlockingBackend"
    return type(name, (BlockingBackend,), {"__slots__": (), **dict.fromkeys(missing)})


def _make_blocking(host: _Host) -> BlockingBackend:
    backend = host.backend
    missing = frozenset(
        name for name in _OPTIONAL_CAPABILITIES if not callable(getattr(backend, name, None))
    )
    cls = _class_without(missing) if missing else BlockingBackend
    return cls(host)


def _check_backend(backend: Any) -> None:
    required = ("as_base", "as_finetuned")
    if not all(callable(getattr(backend, name, None)) for name in required) or not hasattr(
        backend, "safe_for_concurrent_views"
    ):
        raise InvalidArgumentError(
            f"backend={backend!r} must be an async differential backend "
            "(as_base(), as_finetuned() and safe_for_concurrent_views)"
        )


def _check_op_timeout(op_timeout: float | None) -> float | None:
    if op_timeout is None:
        return None
    if (
        isinstance(op_timeout, bool)
        or not isinstance(op_timeout, int | float)
        or not op_timeout > 0
        or op_timeout == math.inf
    ):
        raise InvalidArgumentError(
            f"op_timeout={op_timeout!r} must be a positive finite number of seconds, or None"
        )
    return float(op_timeout)


@contextmanager
def blocking_backend(
    backend: Any,
    *,
    loop: str = "asyncio",
    virtual_time: bool = True,
    op_timeout: float | None = None,
) -> Iterator[BlockingBackend]:
    """Drive an async backend from synchronous code: ``with blocking_backend(b) as sb``.

    Starts an anyio blocking portal (an event loop in its own thread) on
    ``loop`` (``"asyncio"`` or ``"trio"``), on a virtual clock by default, and
    yields a :class:`BlockingBackend` whose views are ``with`` blocks with
    plain op calls. Exclusivity, latency and faults behave exactly as for
    async callers; see the module docstring for how threads map to tasks.

    ``op_timeout`` (seconds of loop time) bounds every op: a hung op raises
    ``TimeoutError`` in the calling thread instead of blocking forever.
    While the block is open the backend must not be used by another event
    loop. Leaving the block releases any view still held and makes every
    further call raise :class:`BridgeError`.
    """
    _check_backend(backend)
    if loop not in LOOPS:
        raise InvalidArgumentError(f"loop={loop!r} is not supported; expected asyncio or trio")
    if not isinstance(virtual_time, bool):
        raise InvalidArgumentError(f"virtual_time={virtual_time!r} must be True or False")
    timeout = _check_op_timeout(op_timeout)
    name, options = virtual_anyio_backend(loop, virtual_time=virtual_time)
    host = _Host(backend, timeout)
    with anyio.from_thread.start_blocking_portal(name, options, name="swaysim-bridge") as portal:
        served, _ = portal.start_task(host.serve, name="swaysim-bridge")
        try:
            yield _make_blocking(host)
        finally:
            portal.call(host.request_close)
            served.result()


async def run_sync_probe(
    backend: Any,
    func: Callable[[BlockingBackend, *PosArgs], T],
    *args: *PosArgs,
    op_timeout: float | None = None,
) -> T:
    """Run ``func(sync_backend, *args)`` in a worker thread; return what it returns.

    For runners scheduling synchronous probe functions: ``sync_backend`` is a
    :class:`BlockingBackend` over ``backend`` that calls back into the
    current event loop, so the probe shares the backend, its exclusivity
    gate and its clock with async tasks. Virtual time is held while the
    thread runs synchronous code and released while it waits on an op, so
    injected latency still jumps and timeouts measure the probe's real
    progress. Cancel the call (``fail_after`` around it) to stop the probe:
    the thread sees :class:`BridgeCancelled` at its current or next call, its
    views are released, and this call raises the cancellation once the
    thread has returned. ``op_timeout`` bounds every op as in
    :func:`blocking_backend`. Exceptions from ``func`` propagate.

    Only ``func``'s own thread is tracked for virtual time: threads it
    starts may use ``sync_backend`` too, but while ``func`` waits for them
    (``join``) the clock follows real time, so their latency costs real time.
    """
    _check_backend(backend)
    if not callable(func):
        raise InvalidArgumentError(f"func={func!r} must be callable as func(sync_backend, *args)")
    timeout = _check_op_timeout(op_timeout)
    host = _Host(backend, timeout)
    sync_backend = _make_blocking(host)
    result: Any = None
    # Raised outside the task group, so the caller sees it as is, not in a group.
    error: Exception | BridgeCancelled | None = None
    async with anyio.create_task_group() as tg:
        host.attach(tg)
        host.hold_inc()
        try:
            with caller_accounts_for_threads():  # the host holds while the thread runs
                result = await anyio.to_thread.run_sync(
                    host.run_in_thread, func, sync_backend, args
                )
        except (Exception, BridgeCancelled) as exc:
            error = exc
        finally:
            host.hold_dec()
            host.close()
    if host.interrupted:
        # A cancellation of this call interrupted the thread: deliver it here.
        await checkpoint()
    if error is not None:
        raise error
    value: T = result
    return value
