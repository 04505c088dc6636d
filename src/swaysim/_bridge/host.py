"""The loop side of the blocking bridge: requests from threads served by loop tasks.

A :class:`Host` lives in one event loop. Threads hand it :class:`Request`
objects (see :mod:`swaysim._bridge.blocking` for the thread side); it
answers each through a thread-safe future. View entries and exits of one
thread run in that thread's *lane*, a loop task that lives while the thread
holds a view, so the exclusivity gate sees each thread as one task. Ops run
in a fresh task each, under the bridge's op timeout. Loop-side state is
touched only from the loop's thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeAlias

import anyio
from anyio.lowlevel import current_token

from swaysim._backend.attribution import ATTRIBUTION
from swaysim._time.clock import hold_virtual_time
from swaysim.errors import BridgeCancelled, BridgeError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager, AbstractContextManager
    from types import TracebackType

    from anyio.abc import TaskGroup, TaskStatus
    from anyio.lowlevel import EventLoopToken

    from swaysim._protocols import DifferentialBackend, ScoringModel

__all__ = ["Await", "Enter", "Exit", "HeldView", "Host", "Payload", "Request", "RequestKind"]


class RequestKind(enum.Enum):
    """What a thread asks of the loop; decides which loop task serves it."""

    OP = "op"
    """A scoring op on a live view: a fresh task, under the op timeout."""
    ENTER = "enter"
    """Enter a view: in the thread's lane."""
    EXIT = "exit"
    """Exit a view the thread entered: in the thread's lane."""
    CALL = "call"
    """Another awaitable (preflight, say): in the thread's lane."""


class HeldView:
    """A view entered by a lane: its async context manager and the view it yielded."""

    __slots__ = ("cm", "exited", "lane", "view", "view_id")

    def __init__(self, cm: AbstractAsyncContextManager[ScoringModel], view: ScoringModel) -> None:
        self.cm = cm
        self.view = view
        self.view_id = view.id
        self.lane: Lane | None = None
        self.exited = False

    def __repr__(self) -> str:
        return f"<HeldView {self.view_id!r} {'exited' if self.exited else 'held'}>"


@dataclass(frozen=True, slots=True)
class Enter:
    """Enter the view ``open()`` returns the context manager of."""

    kind: ClassVar[RequestKind] = RequestKind.ENTER
    open: Callable[[], AbstractAsyncContextManager[ScoringModel]]


@dataclass(frozen=True, slots=True)
class Exit:
    """Exit ``held`` with the exception (if any) its ``with`` block raised."""

    kind: ClassVar[RequestKind] = RequestKind.EXIT
    held: HeldView
    exc_type: type[BaseException] | None
    exc: BaseException | None
    tb: TracebackType | None


@dataclass(frozen=True, slots=True)
class Await:
    """Await ``call()``: an op of a live view (``OP``) or any other awaitable (``CALL``)."""

    kind: RequestKind
    call: Callable[[], Awaitable[object]]


Payload: TypeAlias = Enter | Exit | Await


class Request:
    """One blocking call from a thread, answered through a thread-safe future.

    Made on the calling thread: it records which thread asks, whether that
    thread's synchronous work holds virtual time (``accounted``), and which
    probes the thread's calls are attributed to (``swaysim.attribute``), so the
    loop task that serves an op carries the same attribution.
    """

    __slots__ = (
        "accounted",
        "attribution",
        "future",
        "payload",
        "released_hold",
        "thread_key",
        "thread_name",
    )

    def __init__(self, payload: Payload, accounted: bool) -> None:
        self.payload = payload
        self.accounted = accounted
        self.released_hold = False
        thread = threading.current_thread()
        self.thread_key = threading.get_ident()
        self.thread_name = f"sync {thread.name}#{thread.native_id}"
        self.attribution = ATTRIBUTION.get()
        self.future: concurrent.futures.Future[object] = concurrent.futures.Future()

    @property
    def kind(self) -> RequestKind:
        """What is asked: an op, a view entry or exit, or another call."""
        return self.payload.kind

    def __repr__(self) -> str:
        return f"<Request {self.kind.value} from {self.thread_name!r}>"


class Lane:
    """The loop task that enters and exits every view of one thread."""

    __slots__ = ("closed", "held", "key", "queue", "wakeup")

    def __init__(self, key: int) -> None:
        self.key = key
        self.held: list[HeldView] = []
        self.queue: deque[Request] = deque()
        self.wakeup: anyio.Event | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<Lane {self.key} held={len(self.held)} queued={len(self.queue)}>"


class Host:
    """The loop side of one bridge: its task group, lanes and virtual-time accounting.

    Threads reach it only through :meth:`dispatch`, run in the loop's thread
    (``anyio.from_thread.run_sync``).
    """

    __slots__ = (
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

    def __init__(self, backend: DifferentialBackend, op_timeout: float | None) -> None:
        self.backend = backend
        self._op_timeout = op_timeout
        self._tg: TaskGroup | None = None
        self._token: EventLoopToken | None = None
        self._loop_thread: int | None = None
        self._close_event: anyio.Event | None = None
        self._lanes: dict[int, Lane] = {}
        self._closed = False
        self._interrupted = False
        self._holds = 0
        self._hold: AbstractContextManager[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Host {state} lanes={len(self._lanes)} holds={self._holds}>"

    # -- lifecycle ----------------------------------------------------------------

    def attach(self, tg: TaskGroup) -> None:
        """Serve requests in ``tg`` (which belongs to the current loop)."""
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
        """Portal mode: let :meth:`serve` close the host."""
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
        """Whether the host refuses new calls."""
        return self._closed

    @property
    def live_lanes(self) -> int:
        """How many threads hold a view (or are entering one)."""
        return len(self._lanes)

    @property
    def loop_thread(self) -> int | None:
        """The ident of the loop's thread, once attached."""
        return self._loop_thread

    @property
    def token(self) -> EventLoopToken | None:
        """The loop's token, for ``anyio.from_thread`` calls into it."""
        return self._token

    # -- virtual time ---------------------------------------------------------------

    def hold_inc(self) -> None:
        """One more thread runs synchronous code: hold virtual time."""
        self._holds += 1
        if self._holds == 1:
            self._hold = hold_virtual_time()
            self._hold.__enter__()

    def hold_dec(self) -> None:
        """One thread fewer runs synchronous code: release virtual time after the last."""
        self._holds -= 1
        if self._holds == 0:
            assert self._hold is not None
            hold, self._hold = self._hold, None
            hold.__exit__(None, None, None)

    def _thread_blocked(self, request: Request) -> None:
        if request.accounted and not request.released_hold:
            request.released_hold = True
            self.hold_dec()

    def _deliver(
        self, request: Request, value: object = None, error: BaseException | None = None
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

    def _refuse(self, request: Request) -> None:
        """Answer a request that cannot be served: an exit is a no-op, the rest an error."""
        if request.kind is RequestKind.EXIT:
            self._deliver(request)
        else:
            self._deliver(request, error=self._interruption())

    # -- serving requests -------------------------------------------------------------

    def dispatch(self, request: Request) -> None:
        """Start serving ``request`` (called in the loop's thread)."""
        if self._closed or self._interrupted:
            self._refuse(request)
            return
        assert self._tg is not None
        payload = request.payload
        if isinstance(payload, Await) and payload.kind is RequestKind.OP:
            self._tg.start_soon(self._run_op, request, payload, name=request.thread_name)
            return
        if isinstance(payload, Exit):
            lane = payload.held.lane
            assert lane is not None
            if lane.closed:
                # Torn down by a cancellation: the view is already released.
                self._deliver(request)
                return
        else:
            lane = self._lanes.get(request.thread_key)
            if lane is None:
                lane = self._lanes[request.thread_key] = Lane(request.thread_key)
                self._tg.start_soon(self._run_lane, lane, name=request.thread_name)
        lane.queue.append(request)
        if lane.wakeup is not None:
            lane.wakeup.set()

    def _retire(self, lane: Lane) -> None:
        lane.closed = True
        if self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]

    async def _run_lane(self, lane: Lane) -> None:
        request: Request | None = None
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
                self._refuse(waiting)
            raise

    async def _perform(self, request: Request, lane: Lane) -> tuple[object, Exception | None]:
        """Run a lane request; ``(value, error)``. Cancellation propagates."""
        self._thread_blocked(request)
        payload = request.payload
        try:
            if isinstance(payload, Enter):
                cm = payload.open()
                held = HeldView(cm, await cm.__aenter__())
                held.lane = lane
                lane.held.append(held)
                return held, None
            if isinstance(payload, Exit):
                held = payload.held
                if held.exited:
                    return None, None
                held.exited = True
                lane.held.remove(held)
                return await held.cm.__aexit__(payload.exc_type, payload.exc, payload.tb), None
            assert isinstance(payload, Await)
            return await payload.call(), None
        except Exception as exc:
            return None, exc

    async def _run_op(self, request: Request, payload: Await) -> None:
        self._thread_blocked(request)
        if request.attribution:
            ATTRIBUTION.set(request.attribution)
        try:
            if self._op_timeout is None:
                value = await payload.call()
            else:
                with anyio.fail_after(self._op_timeout):
                    value = await payload.call()
        except anyio.get_cancelled_exc_class():
            self._deliver(request, error=self._interruption())
            raise
        except BaseException as exc:
            self._deliver(request, error=exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._deliver(request, value)
