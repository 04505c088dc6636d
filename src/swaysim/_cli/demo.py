"""``make demo``: drive one backend concurrently on both event loops and say what happened."""

from __future__ import annotations

import time

import anyio

from swaysim._backend.backend import AsyncDummyDifferentialBackend
from swaysim._chaos.faults import FaultPlan, FaultRule
from swaysim._chaos.latency import Constant, LatencyPlan, LogNormal
from swaysim._time.clock import run
from swaysim.errors import InjectedFault

PROMPTS = tuple(f"question {i}" for i in range(12))


def _backend() -> AsyncDummyDifferentialBackend:
    return AsyncDummyDifferentialBackend(
        latency=LatencyPlan(
            seed=7,
            default=LogNormal(median=0.05, sigma=0.4),
            view_switch=Constant(2.0),
        ),
        faults=FaultPlan(
            (FaultRule("transient", name="flaky-ft", views=("ft",), probability=0.25),), seed=7
        ),
    )


async def _drive(backend: AsyncDummyDifferentialBackend) -> tuple[int, int]:
    """Eight tasks race for the views; each scores the prompts, retrying transient faults."""
    retried = 0
    failed = 0

    async def worker(index: int) -> None:
        nonlocal retried, failed
        enter = backend.as_base if index % 2 else backend.as_finetuned
        async with enter() as view:
            for prompt in PROMPTS:
                for _attempt in range(3):
                    try:
                        await view.next_token_dist(prompt, top_k=8)
                        break
                    except InjectedFault as fault:
                        if not fault.retryable:
                            raise
                        retried += 1
                else:
                    failed += 1

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(worker, index, name=f"worker-{index}")
    return retried, failed


def main() -> None:
    """Print one summary line per event loop, then the determinism check."""
    print("swaysim demo: 8 tasks share one exclusive backend (LogNormal latency, 2 s view")
    print("switches, a flaky ft view), on a virtual clock, once per event loop.\n")
    logs = []
    for loop in ("asyncio", "trio"):
        backend = _backend()

        async def session(
            backend: AsyncDummyDifferentialBackend = backend, loop: str = loop
        ) -> float:
            start = anyio.current_time()
            retried, failed = await _drive(backend)
            elapsed = anyio.current_time() - start
            stats = backend.statistics()
            print(
                f"  {loop:<8} virtual {elapsed:7.2f} s  waits {stats.waits:2d}  "
                f"switches {stats.switches}  peak live {stats.peak_live_views}  "
                f"cache {stats.cache_hits} hits / {stats.cache_misses} misses  "
                f"faults {stats.total_faults_fired}  retried {retried}  unrecovered {failed}"
            )
            return elapsed

        wall = time.perf_counter()
        run(session, backend=loop)
        print(f"  {'':<8} wall    {time.perf_counter() - wall:7.3f} s   {backend!r}")
        logs.append(sorted((f.view_id, f.prompt, f.call_index) for f in backend.fault_log))
    same = "identical" if logs[0] == logs[1] else "DIFFERENT"
    print(f"\nFault firings on asyncio and trio: {same} ({len(logs[0])} each).")
