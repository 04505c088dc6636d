"""Class 8 of issue 13: the blocking bridge entered from inside a running event loop.

trio's portal cannot be called from a trio thread, so ``blocking_backend(loop="trio")``
entered from trio code refuses at once with a BridgeError instead of never returning;
from asyncio code, or from a worker thread of a trio loop, it works.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest
import trio

from swaysim import AsyncDummyDifferentialBackend, BridgeError, blocking_backend


def logprob_through_the_bridge(loop: str, *, virtual_time: bool = True) -> float:
    backend = AsyncDummyDifferentialBackend()
    with (
        blocking_backend(backend, loop=loop, virtual_time=virtual_time) as sync_backend,
        sync_backend.as_base() as view,
    ):
        return view.logprob_of("q", " a")


@pytest.mark.parametrize("virtual_time", [True, False])
def test_a_trio_bridge_from_trio_code_refuses_at_once(virtual_time: bool) -> None:
    async def main() -> None:
        # Before the fix this never returned: pytest-timeout is the hang guard.
        with pytest.raises(BridgeError, match="can never return"):
            logprob_through_the_bridge("trio", virtual_time=virtual_time)

    trio.run(main)


@pytest.mark.parametrize(("outer", "inner"), [("trio", "asyncio"), ("asyncio", "trio")])
def test_other_combinations_work(outer: str, inner: str) -> None:
    async def main() -> float:
        return logprob_through_the_bridge(inner)

    assert anyio.run(main, backend=outer) == -10.0


def test_from_a_worker_thread_of_a_trio_loop_it_works() -> None:
    async def main() -> float:
        return await anyio.to_thread.run_sync(logprob_through_the_bridge, "trio")

    assert anyio.run(main, backend="trio") == -10.0
