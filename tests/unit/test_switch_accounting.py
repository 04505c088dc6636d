"""What counts as a view switch, and what it costs, with the view cap at one.

A switch is loading a view's weights. An exclusive backend has one set of weights, so
every entry of a view other than the last one entered is a switch. A concurrent-safe
backend keeps every view it has loaded resident, so only a view's first entry is a switch,
whatever ``max_concurrent_views`` says: the cap limits how many views are live at once
(like an API's limit on parallel sessions), not how many are loaded. So a safe backend
capped at one view re-enters views for free, and an exclusive backend, which models one
set of weights, pays for every swap (README, "Latency and faults").
"""

from __future__ import annotations

import anyio

from swaysim import AsyncDummyDifferentialBackend, Constant, LatencyPlan

SWITCH = 2.0
ORDER = ("base", "ft", "base", "ft", "base")


async def enter_in_turn(backend: AsyncDummyDifferentialBackend) -> float:
    start = anyio.current_time()
    for name in ORDER:
        enter = backend.as_base if name == "base" else backend.as_finetuned
        async with enter() as view:
            await view.next_token_dist("q", top_k=4)
    return anyio.current_time() - start


def latency() -> LatencyPlan:
    return LatencyPlan(view_switch=Constant(SWITCH))


async def test_a_safe_backend_capped_at_one_view_loads_each_view_once() -> None:
    backend = AsyncDummyDifferentialBackend(
        safe_for_concurrent_views=True, max_concurrent_views=1, latency=latency()
    )
    elapsed = await enter_in_turn(backend)
    statistics = backend.statistics()
    assert statistics.entries == len(ORDER)
    assert statistics.switches == 2  # base and ft, each loaded once
    assert elapsed == 2 * SWITCH
    assert statistics.peak_live_views == 1


async def test_an_exclusive_backend_pays_for_every_swap() -> None:
    backend = AsyncDummyDifferentialBackend(latency=latency())
    elapsed = await enter_in_turn(backend)
    assert backend.statistics().switches == len(ORDER)
    assert elapsed == len(ORDER) * SWITCH
