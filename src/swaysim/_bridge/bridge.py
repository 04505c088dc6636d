"""The blocking bridge: an async backend driven from synchronous code.

Two ways in, one mechanism:

- :func:`blocking_backend` starts an event loop in a portal thread and hands
  synchronous code a :class:`BlockingBackend` (dlm-sway's synchronous
  protocol: views are plain ``with`` blocks, ops are plain calls).
- :func:`run_sync_probe` runs a synchronous function in a worker thread of
  the *current* loop, with a :class:`BlockingBackend` that calls back into it;
  a runner uses it to schedule synchronous probes next to async ones.

Both are built from the same two halves: the loop side
(:class:`~swaysim._bridge.host.Host`, in :mod:`swaysim._bridge.host`) and the
thread side (:class:`BlockingBackend` and its views, in
:mod:`swaysim._bridge.blocking`).

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

from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import sniffio
from anyio.lowlevel import checkpoint

from swaysim._bridge.blocking import BlockingBackend, BlockingView, ThreadSide, make_blocking
from swaysim._bridge.host import Host
from swaysim._time.clock import LOOPS, virtual_anyio_backend
from swaysim._time.outside import caller_accounts_for_threads
from swaysim._validation import MAX_SECONDS
from swaysim.errors import BridgeCancelled, BridgeError, InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from swaysim._protocols import DifferentialBackend

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


def _check_backend(backend: object) -> None:
    required = ("as_base", "as_finetuned")
    if not all(callable(getattr(backend, name, None)) for name in required) or not hasattr(
        backend, "safe_for_concurrent_views"
    ):
        raise InvalidArgumentError(
            f"backend={backend!r} must be an async differential backend "
            "(as_base(), as_finetuned() and safe_for_concurrent_views)",
            field="backend",
            value=backend,
        )


def _check_op_timeout(op_timeout: float | None) -> float | None:
    if op_timeout is None:
        return None
    if (
        isinstance(op_timeout, bool)
        or not isinstance(op_timeout, int | float)
        or not 0 < op_timeout <= MAX_SECONDS
    ):
        raise InvalidArgumentError(
            f"op_timeout={op_timeout!r} must be a positive finite number of seconds, at "
            f"most {MAX_SECONDS:g}, or None",
            field="op_timeout",
            value=op_timeout,
        )
    return float(op_timeout)


def _refuse_inside_trio(loop: str) -> None:
    """A trio portal cannot be called from a thread that runs trio: refuse at once.

    trio's ``from_thread`` calls refuse to run in a trio thread, so every call
    through the portal, closing it included, would fail and the block would
    wait for its thread forever. From an asyncio loop the portal works (the
    loop is blocked meanwhile, as any blocking call blocks it).
    """
    if loop != "trio":
        return
    try:
        running = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return
    if running == "trio":
        raise BridgeError(
            "blocking_backend(loop='trio') was entered from code running in a trio event loop, "
            "where it can never return; in async code use the backend directly (async with "
            "backend.as_base() as view: await view...), or run the synchronous code in a "
            "worker thread (swaysim.run_sync_probe, anyio.to_thread.run_sync), or pass "
            "loop='asyncio'"
        )


@contextmanager
def blocking_backend(
    backend: DifferentialBackend,
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
    further call raise :class:`BridgeError`. Entered with ``loop="trio"``
    from code running in a trio loop, it raises :class:`BridgeError` at once
    (trio's portal cannot be called from a trio thread).
    """
    _check_backend(backend)
    if loop not in LOOPS:
        raise InvalidArgumentError(
            f"loop={loop!r} is not supported; expected asyncio or trio", field="loop", value=loop
        )
    if not isinstance(virtual_time, bool):
        raise InvalidArgumentError(
            f"virtual_time={virtual_time!r} must be True or False",
            field="virtual_time",
            value=virtual_time,
        )
    timeout = _check_op_timeout(op_timeout)
    _refuse_inside_trio(loop)
    name, options = virtual_anyio_backend(loop, virtual_time=virtual_time)
    host = Host(backend, timeout)
    with anyio.from_thread.start_blocking_portal(name, options, name="swaysim-bridge") as portal:
        served, _ = portal.start_task(host.serve, name="swaysim-bridge")
        try:
            yield make_blocking(ThreadSide(host))
        finally:
            portal.call(host.request_close)
            served.result()


async def run_sync_probe(
    backend: DifferentialBackend,
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
        raise InvalidArgumentError(
            f"func={func!r} must be callable as func(sync_backend, *args)", field="func", value=func
        )
    timeout = _check_op_timeout(op_timeout)
    host = Host(backend, timeout)
    calls = ThreadSide(host)
    sync_backend = make_blocking(calls)
    result: T | None = None
    # Raised outside the task group, so the caller sees it as is, not in a group.
    error: Exception | BridgeCancelled | None = None
    async with anyio.create_task_group() as tg:
        host.attach(tg)
        host.hold_inc()
        try:
            with caller_accounts_for_threads():  # the host holds while the thread runs
                result = await anyio.to_thread.run_sync(
                    calls.run_in_thread, func, sync_backend, args
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
    return cast("T", result)
