"""Each drop-in's blocking bridge: opened on first use, closed without ever waiting unboundedly.

dlm-sway's callers never open or close anything: they build a dummy and call
it. So the drop-in opens its bridge (:func:`swaysim.blocking_backend`: an
event loop in a portal thread) at its first view entry, and closes it on
``close()``, when it is garbage collected (a finalizer), or at interpreter
exit. Closing cancels whatever a thread is blocked on (it sees
:class:`~swaysim.BridgeError`) and waits for the portal thread at most
:data:`CLOSE_TIMEOUT` seconds: the portal thread is a daemon, so one that does
not stop in time is left behind rather than waited for.

Interpreter exit closes every open bridge *before* Python joins non-daemon
threads (``threading._register_atexit``, the hook ``concurrent.futures`` uses
for the same reason): a thread of the caller's blocked on a hung op is then
released, instead of the join waiting for it forever.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Final, TypeVar

from swaysim._bridge.bridge import blocking_backend
from swaysim.errors import BridgeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim._backend.backend import AsyncDummyDifferentialBackend
    from swaysim._bridge.blocking import BlockingBackend

__all__ = ["CLOSE_TIMEOUT", "Bridge", "BorrowedBridge", "OwnedBridge", "close_all_bridges"]

_T = TypeVar("_T")

CLOSE_TIMEOUT: Final = 5.0
"""Wall seconds a close waits for a portal thread to stop before leaving it (a daemon)."""

_OPEN: Final[set[OwnedBridge]] = set()
_OPEN_LOCK: Final = threading.Lock()
_EXIT_HOOK_INSTALLED: list[bool] = []


def _close_open_bridges_at_exit() -> None:
    close_all_bridges(timeout=CLOSE_TIMEOUT)


def _install_exit_hook() -> None:
    """Close open bridges at exit, before non-daemon threads are joined (see module docstring)."""
    if _EXIT_HOOK_INSTALLED:
        return
    _EXIT_HOOK_INSTALLED.append(True)
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_close_open_bridges_at_exit)
    else:  # pragma: no cover - every supported CPython has the hook
        import atexit

        atexit.register(_close_open_bridges_at_exit)


def close_all_bridges(timeout: float = CLOSE_TIMEOUT) -> int:
    """Close every drop-in bridge still open; how many were. Waits at most ``timeout`` in all."""
    with _OPEN_LOCK:
        bridges = list(_OPEN)
    deadline = time.monotonic() + timeout
    closers = [bridge.start_close() for bridge in bridges]
    for closer in closers:
        if closer is not None:
            closer.join(max(0.0, deadline - time.monotonic()))
    return len(bridges)


def open_bridges() -> int:
    """How many drop-in bridges are open now."""
    with _OPEN_LOCK:
        return len(_OPEN)


class Bridge(abc.ABC):
    """What a drop-in needs of its bridge: the async backend and a blocking face of it.

    Two kinds: :class:`OwnedBridge` (the drop-in opens and closes its own) and
    :class:`BorrowedBridge` (a bridge the caller opened and keeps).
    """

    backend: AsyncDummyDifferentialBackend

    @abc.abstractmethod
    def sync(self) -> BlockingBackend:
        """The blocking backend, opening the bridge if needed."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Whether calls are served now."""

    @abc.abstractmethod
    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Close the bridge if this object owns it; True when it is closed within ``timeout``."""

    def in_loop_or_closed(self, func: Callable[[], _T]) -> _T:
        """``func()`` in the loop's thread when the bridge is open, else right here.

        For reading loop-side state (statistics) consistently from any thread;
        called from the loop's own thread, or with the bridge closed (nothing
        runs then), ``func`` runs directly.
        """
        if self.is_open:
            with contextlib.suppress(BridgeError):
                return self.sync().run_sync(func)
        return func()


class OwnedBridge(Bridge):
    """A bridge the drop-in opens and closes itself; it may be opened again after a close."""

    def __init__(
        self,
        backend: AsyncDummyDifferentialBackend,
        *,
        loop: str,
        virtual_time: bool,
        op_timeout: float | None,
    ) -> None:
        self.backend = backend
        self.loop = loop
        self._virtual_time = virtual_time
        self._op_timeout = op_timeout
        self._lock = threading.RLock()
        self._stack: contextlib.ExitStack | None = None
        self._sync: BlockingBackend | None = None
        self._loop_thread: int | None = None

    def __repr__(self) -> str:
        state = "open" if self._sync is not None else "closed"
        return f"<OwnedBridge {self.loop} {state}>"

    @property
    def is_open(self) -> bool:
        return self._sync is not None

    def sync(self) -> BlockingBackend:
        sync = self._sync
        if sync is not None:
            return sync
        with self._lock:
            if self._sync is None:
                self._open()
            assert self._sync is not None
            return self._sync

    def _open(self) -> None:
        stack = contextlib.ExitStack()
        sync = stack.enter_context(
            blocking_backend(
                self.backend,
                loop=self.loop,
                virtual_time=self._virtual_time,
                op_timeout=self._op_timeout,
            )
        )
        self._loop_thread = sync.run_sync(threading.get_ident)
        self._stack, self._sync = stack, sync
        _install_exit_hook()
        with _OPEN_LOCK:
            _OPEN.add(self)

    def start_close(self) -> threading.Thread | None:
        """Begin closing in a daemon thread (None: nothing to close); join it to wait."""
        with self._lock:
            stack, self._stack, self._sync = self._stack, None, None
            in_loop = threading.get_ident() == self._loop_thread
            self._loop_thread = None
        with _OPEN_LOCK:
            _OPEN.discard(self)
        if stack is None:
            return None
        closer = threading.Thread(target=_exit_quietly, args=(stack,), daemon=True)
        closer.name = f"swaysim-dlm-sway-close-{self.loop}"
        closer.start()
        # From the loop's own thread (a finalizer run there) nothing may wait for the loop.
        return None if in_loop else closer

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        closer = self.start_close()
        if closer is None:
            return True
        closer.join(timeout)
        return not closer.is_alive()


def _exit_quietly(stack: contextlib.ExitStack) -> None:
    # Leaving blocking_backend's block: close the host (releasing held views and
    # blocked threads), stop the portal, join its thread. Nobody is left to
    # hear an error here; the bridge is gone either way.
    with contextlib.suppress(Exception):
        stack.close()


class BorrowedBridge(Bridge):
    """A bridge someone else opened and will close (a runner's ``sync_backend``)."""

    def __init__(self, sync: BlockingBackend, backend: AsyncDummyDifferentialBackend) -> None:
        self.backend = backend
        self._sync = sync

    def __repr__(self) -> str:
        return f"<BorrowedBridge {self._sync!r}>"

    @property
    def is_open(self) -> bool:
        return not self._sync.closed

    def sync(self) -> BlockingBackend:
        return self._sync

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        return True
