"""A deliberately fragile runner, for the chaos-scheduling tests (``schedule_jitter``).

``assumes_completion_order`` sends each view's requests concurrently and pairs
the answers with the requests by the order in which the answers *arrive*: it
assumes that requests sent together complete in the order they were sent. On a
backend with equal latencies and no jitter that happens to hold, so the bug
hides; schedule jitter reorders completions and exposes it.

docs/examples/fragile.toml names it with ``runner =
"fragile_runners:assumes_completion_order"``: a scenario's own folder is searched for its
runner (and pytest puts docs/examples/ on ``sys.path`` for the tests that use it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from swaysim import Answers, Ask, Probe, ProbeContext, ProbeResult, ViewRef

if TYPE_CHECKING:
    from collections.abc import Sequence


async def assumes_completion_order(
    backend: Any, probes: Sequence[Probe], *, seed: int = 0, **_: Any
) -> list[ProbeResult]:
    """Every view's requests at once; answers matched to requests by arrival order (the bug)."""
    by_name = {probe.name: probe for probe in probes}
    for probe in probes:
        bind = getattr(probe, "bind", None)
        if callable(bind):
            bind(by_name)
    ctx = ProbeContext(backend=backend, seed=seed)
    plans = {probe.name: probe.requests(ctx) for probe in probes}
    per_view: dict[ViewRef, dict[Ask, None]] = {}
    for plan in plans.values():
        for view, asks in plan.items():
            per_view.setdefault(view, {}).update(dict.fromkeys(asks))
    values: dict[tuple[ViewRef, Ask], Any] = {}
    for view in sorted(per_view, key=ViewRef.sort_key):
        asks = list(per_view[view])
        arrived: list[Any] = []
        async with view.open(backend) as handle:

            async def send(ask: Ask, handle: Any = handle, arrived: list[Any] = arrived) -> None:
                arrived.append(await ask.send(handle))

            async with anyio.create_task_group() as group:
                for ask in asks:
                    group.start_soon(send, ask)
        values.update(((view, ask), value) for ask, value in zip(asks, arrived, strict=True))
    results = []
    for probe in probes:
        keys = [(view, ask) for view, asks in plans[probe.name].items() for ask in asks]
        result = probe.finalize(Answers({key: values[key] for key in keys}, {}), ctx)
        ctx.results[probe.name] = result
        results.append(result)
    return results
