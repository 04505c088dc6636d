"""Virtual time on both event loops, and ``swaysim.run``.

Trio has :class:`trio.testing.MockClock`; with ``autojump_threshold=0`` it
jumps to the next deadline as soon as every task is blocked. asyncio has no
such clock, so :class:`~swaysim.VirtualClockEventLoop` provides one. Everything
anyio builds on the loop clock (``anyio.sleep``, ``fail_after``,
``move_on_after``) then runs in virtual time.

An autojumping clock must not jump past work that runs outside its loop and
could still wake a task: a worker thread, a child process, a thread calling
in through a blocking portal. swaysim counts the outside work anyio and
asyncio start (:mod:`swaysim._time.outside`, :mod:`swaysim._time.anyio_hooks`)
and holds the clock at the rate of real time while any runs.
:func:`hold_virtual_time` does the same for work swaysim cannot see.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, TypeVarTuple

import anyio

from swaysim._time.anyio_hooks import install_anyio_hooks
from swaysim._time.asyncio_loop import VirtualClockEventLoop
from swaysim._time.outside import current_outside_work
from swaysim._time.scheduling import seeded_trio_scheduler
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "VirtualClockEventLoop",
    "hold_virtual_time",
    "run",
    "virtual_anyio_backend",
]

T = TypeVar("T")
PosArgs = TypeVarTuple("PosArgs")
LOOPS: Final[tuple[str, ...]] = ("asyncio", "trio")


@contextmanager
def hold_virtual_time() -> Iterator[None]:
    """Let a virtual clock follow real time instead of jumping, inside the block.

    The escape hatch for outside work swaysim cannot see: a thread you
    started yourself, a server in another process, a socket whose peer takes
    real time to answer. Wrap the wait for it; while any task holds, the
    clock advances at the rate of real time and never jumps, and it resumes
    jumping when the last hold ends (and no other outside work runs). Work
    started through anyio (``to_thread``, portals, ``open_process``,
    ``to_process``) or ``loop.run_in_executor`` needs no hold. Under a real
    clock, or outside an event loop's thread, it does nothing. Holds nest
    and may overlap across tasks.
    """
    account = current_outside_work(explicit=True)
    if account is None:
        yield
        return
    with account.running():
        yield


def virtual_anyio_backend(name: str, *, virtual_time: bool = True) -> tuple[str, dict[str, Any]]:
    """``(backend, options)`` for ``anyio.run`` and anyio's pytest plugin.

    With ``virtual_time=True``: a fresh :class:`trio.testing.MockClock` with
    autojump on trio, :class:`VirtualClockEventLoop` on asyncio. Call it once
    per run: a clock must not be shared between runs.
    """
    if name not in LOOPS:
        raise InvalidArgumentError(f"backend={name!r} is not supported; expected asyncio or trio")
    if not virtual_time:
        return name, {}
    if name == "asyncio":
        return name, {"loop_factory": VirtualClockEventLoop}
    import trio.testing

    install_anyio_hooks()
    return name, {"clock": trio.testing.MockClock(autojump_threshold=0)}


def run(
    func: Callable[[*PosArgs], Awaitable[T]],
    *args: *PosArgs,
    backend: str = "asyncio",
    virtual_time: bool = True,
) -> T:
    """Run ``func(*args)`` on asyncio or trio, on a virtual clock by default.

    Like :func:`anyio.run`, plus the clock: with ``virtual_time=True`` every
    ``anyio.sleep``, ``fail_after`` and injected latency takes no wall time
    beyond the work itself, and trio's scheduler is seeded for the run
    (:mod:`swaysim._time.scheduling`), so a virtual run's schedule is the same
    on every run and in every process, on trio as on asyncio.
    """
    name, options = virtual_anyio_backend(backend, virtual_time=virtual_time)
    if name != "trio" or not virtual_time:
        return anyio.run(func, *args, backend=name, backend_options=options)
    with seeded_trio_scheduler():
        return anyio.run(func, *args, backend=name, backend_options=options)
