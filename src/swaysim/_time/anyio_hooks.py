"""Where anyio's outside work is reported to a virtual clock's account.

anyio's worker threads, its ``from_thread`` calls, its blocking portals and
its child processes are invisible to an event loop: the loop only sees a
future that some thread will complete. swaysim wraps the few anyio entry
points that start or wait for such work, once per process (on the first
virtual clock), so that each reports to the running clock's
:class:`~swaysim._time.outside.OutsideWork`:

- ``to_thread.run_sync``: counted while the loop waits for the thread;
- ``from_thread.run`` and ``BlockingPortal.call`` from such a worker thread:
  the worker waits on the loop meanwhile, so its count pauses;
- ``BlockingPortal.start_task_soon``: the task runs for a thread that goes
  on running, so it counts until it ends;
- an open ``BlockingPortal`` counts while its opener runs its own code: any
  thread may call in at any moment. Not while the opener only waits in
  ``sleep_until_stopped()``, as ``start_blocking_portal``'s does: there the
  thread that started the portal drives the loop, and while it waits in
  ``portal.call`` the clock may jump;
- ``BlockingPortal.call_async`` (another loop's portal): counted on the
  calling loop;
- ``open_process`` (so also ``run_process`` and ``to_process``): spawning
  the child, and waiting for its exit or output, or for room in its input.

On a loop that is not virtual every wrapper only looks up the account (a
few hundred nanoseconds) and calls through. Wrappers keep anyio's
signatures and results; an entry point missing from the installed anyio is
left alone.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any

from swaysim._time.outside import (
    LoopSideCall,
    OutsideWork,
    WorkerCall,
    asyncio_outside_work,
    caller_accounts,
    current_outside_work,
    trio_outside_work,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["install_anyio_hooks"]

_INSTALL_LOCK = threading.Lock()
_INSTALLED = threading.Event()


def install_anyio_hooks() -> None:
    """Wrap anyio's outside-work entry points (idempotent, thread-safe)."""
    if _INSTALLED.is_set():
        return
    with _INSTALL_LOCK:
        if _INSTALLED.is_set():
            return
        from anyio._backends._asyncio import AsyncIOBackend
        from anyio._backends._trio import TrioBackend

        backends = (
            (AsyncIOBackend, asyncio_outside_work),
            (TrioBackend, _automatic_trio_outside_work),
        )
        for backend, lookup in backends:
            _hook_worker_threads(backend, lookup)
            _hook_calls_from_threads(backend)
            _hook_processes(backend, lookup)
        _hook_portals()
        _INSTALLED.set()


def _automatic_trio_outside_work() -> OutsideWork | None:
    account = trio_outside_work()
    return account if account is not None and account.automatic else None


def _replace_classmethod(owner: type, name: str, function: Any, original: Any) -> None:
    functools.update_wrapper(function, original)
    setattr(owner, name, classmethod(function))


def _original(owner: type, name: str) -> Any:
    """The plain function behind ``owner.name`` (a method or classmethod), or None."""
    attribute = owner.__dict__.get(name)
    return getattr(attribute, "__func__", attribute)


# -- threads --------------------------------------------------------------------


def _hook_worker_threads(backend: type, lookup: Callable[[], OutsideWork | None]) -> None:
    original = _original(backend, "run_sync_in_worker_thread")
    if original is None:
        return

    async def run_sync_in_worker_thread(
        cls: type,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        abandon_on_cancel: bool = False,
        limiter: Any = None,
    ) -> Any:
        account = lookup()
        if account is None or caller_accounts():
            return await original(cls, func, args, abandon_on_cancel, limiter)
        call = WorkerCall(func, account)
        call.start()
        try:
            return await original(cls, call, args, abandon_on_cancel, limiter)
        finally:
            call.finish()

    _replace_classmethod(backend, "run_sync_in_worker_thread", run_sync_in_worker_thread, original)


def _hook_calls_from_threads(backend: type) -> None:
    original = _original(backend, "run_async_from_thread")
    if original is None:
        return

    def run_async_from_thread(
        cls: type, func: Callable[..., Any], args: tuple[Any, ...], token: object
    ) -> Any:
        return original(cls, LoopSideCall(func), args, token)

    _replace_classmethod(backend, "run_async_from_thread", run_async_from_thread, original)


# -- child processes ------------------------------------------------------------


def _hook_processes(backend: type, lookup: Callable[[], OutsideWork | None]) -> None:
    original = _original(backend, "open_process")
    if original is None:
        return

    async def open_process(cls: type, command: Any, **kwargs: Any) -> Any:
        account = lookup()
        if account is None:
            return await original(cls, command, **kwargs)
        with account.running():  # trio spawns the child from a worker thread
            process = await original(cls, command, **kwargs)
        _watch_process(process, account)
        return process

    _replace_classmethod(backend, "open_process", open_process, original)


def _watch_process(process: Any, account: OutsideWork) -> None:
    """Count the waits only the child can end: its exit, its output, room in its input."""
    _count_while_awaited(process, "wait", account)
    for stream, method in ((process.stdout, "receive"), (process.stderr, "receive")):
        if stream is not None:
            _count_while_awaited(stream, method, account)
    if process.stdin is not None:
        _count_while_awaited(process.stdin, "send", account)


def _count_while_awaited(owner: Any, name: str, account: OutsideWork) -> None:
    method = getattr(owner, name)

    @functools.wraps(method)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        with account.running():
            return await method(*args, **kwargs)

    setattr(owner, name, counted)


# -- blocking portals -----------------------------------------------------------


class _PortalPresence:
    """Whether one open portal holds its loop's clock: while its opener runs its own code."""

    __slots__ = ("account", "holding", "opened", "sleepers")

    def __init__(self, account: OutsideWork) -> None:
        self.account = account
        self.opened = False
        self.holding = False
        self.sleepers = 0

    def update(self) -> None:
        holding = self.opened and self.sleepers == 0
        if holding is not self.holding:
            self.holding = holding
            if holding:
                self.account.begin()
            else:
                self.account.end()


_PRESENCE = "_swaysim_presence"


def _hook_portals() -> None:
    from anyio import from_thread

    portal = from_thread.BlockingPortal
    cm_runner = getattr(from_thread, "_BlockingAsyncContextManager", None)
    _hook_portal_lifetime(portal)
    _wrap(portal, "call", _call)
    _wrap(portal, "call_async", _call_async)

    def start_task_soon(
        original: Any, self: Any, func: Any, *args: Any, name: object = None
    ) -> Any:
        owner = getattr(func, "__self__", None)
        machinery = isinstance(func, LoopSideCall) or (
            cm_runner is not None and isinstance(owner, cm_runner)
        )
        if not machinery:
            func = LoopSideCall(func, detached=True)
        return original(self, func, *args, name=name)

    _wrap(portal, "start_task_soon", start_task_soon)


def _wrap(owner: type, name: str, wrapper: Callable[..., Any]) -> None:
    """Replace ``owner.name`` by a method calling ``wrapper(original, self, ...)``."""
    original = _original(owner, name)
    if original is None:
        return
    method: Callable[..., Any]
    if inspect.iscoroutinefunction(original):

        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await wrapper(original, self, *args, **kwargs)

    else:

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(original, self, *args, **kwargs)

    functools.update_wrapper(method, original)
    setattr(owner, name, method)


def _call(original: Any, self: Any, func: Any, *args: Any) -> Any:
    return original(self, LoopSideCall(func), *args)


async def _call_async(
    original: Any, self: Any, func: Any, *args: Any, abandon_on_cancel: bool = False
) -> Any:
    call = original(self, LoopSideCall(func), *args, abandon_on_cancel=abandon_on_cancel)
    account = current_outside_work()
    if account is None:
        return await call
    with account.running():
        return await call


def _hook_portal_lifetime(portal: type) -> None:
    async def aenter(original: Any, self: Any) -> Any:
        result = await original(self)
        account = current_outside_work()
        if account is not None:
            presence = _PortalPresence(account)
            setattr(self, _PRESENCE, presence)
            presence.opened = True
            presence.update()
        return result

    async def aexit(original: Any, self: Any, *exc_info: Any) -> Any:
        try:
            return await original(self, *exc_info)
        finally:
            presence: _PortalPresence | None = getattr(self, _PRESENCE, None)
            if presence is not None:
                presence.opened = False
                presence.update()

    async def sleep_until_stopped(original: Any, self: Any) -> None:
        presence: _PortalPresence | None = getattr(self, _PRESENCE, None)
        if presence is None:
            await original(self)
            return
        presence.sleepers += 1
        presence.update()
        try:
            await original(self)
        finally:
            presence.sleepers -= 1
            presence.update()

    _wrap(portal, "__aenter__", aenter)
    _wrap(portal, "__aexit__", aexit)
    _wrap(portal, "sleep_until_stopped", sleep_until_stopped)
