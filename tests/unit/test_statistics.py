"""Instrumentation shared by every view: the forward cache, the statistics snapshot, the trace."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

import anyio
import pytest

from swaysim import (
    AsyncDummyDifferentialBackend,
    BackendStatistics,
    DummyResponses,
    TraceEvent,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager


def sha12(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


class ListSink:
    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        self.events.append(event)


def test_a_fresh_backend_has_counted_nothing() -> None:
    stats = AsyncDummyDifferentialBackend().statistics()
    assert isinstance(stats, BackendStatistics)
    assert (stats.cache_hits, stats.cache_misses, stats.forward_passes, stats.cache_entries) == (
        0,
        0,
        0,
        0,
    )
    assert dict(stats.calls_per_op) == {}
    assert dict(stats.calls_per_view) == {}
    assert dict(stats.entries_per_view) == {}
    assert (stats.entries, stats.exits, stats.switches, stats.waits) == (0, 0, 0, 0)
    assert stats.wait_time == 0.0
    assert stats.peak_live_views == 0
    assert stats.hit_rate == 0.0
    assert stats.total_calls == 0


async def test_the_cache_counts_hits_misses_and_forward_passes() -> None:
    backend = AsyncDummyDifferentialBackend(DummyResponses(generations={"a": "x"}))
    async with backend.as_base() as view:
        first = await view.next_token_dist("a")
        assert await view.next_token_dist("a") is first  # served from the cache
        await view.next_token_dist("a", top_k=8)  # another key
        await view.logprob_of("a", "c")
        await view.logprob_of("a", "c")
        await view.rolling_logprob("a")
        await view.rolling_logprob("a")
        await view.generate("a", max_new_tokens=1)
        await view.generate("a", max_new_tokens=1)  # never cached
    stats = backend.statistics()
    assert stats.cache_hits == 3
    assert stats.cache_misses == 4
    assert stats.forward_passes == 4
    assert stats.cache_entries == 4
    assert dict(stats.calls_per_op) == {
        "generate": 2,
        "logprob_of": 2,
        "next_token_dist": 3,
        "rolling_logprob": 2,
    }
    assert dict(stats.calls_per_view) == {"base": 9}
    assert stats.total_calls == 9
    assert stats.hit_rate == pytest.approx(3 / 7)


async def test_the_cache_is_shared_by_all_views_and_keyed_by_view() -> None:
    backend = AsyncDummyDifferentialBackend()
    for enter in (
        backend.as_base,
        backend.as_finetuned,
        lambda: backend.as_scaled_adapter(0.501),
        lambda: backend.as_scaled_adapter(0.502),  # the same id, scaled_0.50: not the same view
        lambda: backend.as_null_adapter(1),
        lambda: backend.as_null_adapter(1, rank_scale=2.0),
    ):
        async with enter() as view:
            await view.next_token_dist("p")
    assert backend.statistics().cache_misses == 6
    async with backend.as_scaled_adapter(0.501) as view:  # the cache outlives view blocks
        await view.next_token_dist("p")
    async with backend.as_base() as view:
        await view.next_token_dist("p")
    stats = backend.statistics()
    assert (stats.cache_hits, stats.cache_misses, stats.cache_entries) == (2, 6, 6)
    assert dict(stats.calls_per_view) == {
        "base": 2,
        "ft": 1,
        "null_1": 1,
        "null_1_rank2.00": 1,
        "scaled_0.50": 3,
    }


async def test_the_cache_is_a_bounded_lru() -> None:
    backend = AsyncDummyDifferentialBackend(cache_size=2)
    outcomes = []
    async with backend.as_finetuned() as view:
        for prompt in ["a", "b", "a", "c", "b", "a", "c"]:
            before = backend.statistics().cache_hits
            await view.next_token_dist(prompt)
            outcomes.append(backend.statistics().cache_hits > before)
            assert backend.statistics().cache_entries <= 2
    # a b | a hits (b is now oldest) | c evicts b | b evicts a | a evicts c | c evicts b
    assert outcomes == [False, False, True, False, False, False, False]
    assert backend.statistics().forward_passes == 6


async def test_a_batch_shares_the_per_prompt_cache() -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_null_adapter(4) as view:
        await view.next_token_dist_batch(["x", "y", "x"])
        await view.next_token_dist("y")
        await view.next_token_dist_batch([])
    stats = backend.statistics()
    assert (stats.cache_hits, stats.cache_misses, stats.forward_passes) == (2, 2, 2)
    assert dict(stats.calls_per_op) == {"next_token_dist": 1, "next_token_dist_batch": 2}


async def test_entries_per_view_and_switches() -> None:
    backend = AsyncDummyDifferentialBackend()
    sequence: list[Callable[[], AbstractAsyncContextManager[object]]] = [
        backend.as_base,
        backend.as_base,
        backend.as_finetuned,
        backend.as_base,
        lambda: backend.as_null_adapter(1),
        lambda: backend.as_null_adapter(1),
        lambda: backend.as_scaled_adapter(0.5),
    ]
    for enter in sequence:
        async with enter():
            pass
    stats = backend.statistics()
    assert dict(stats.entries_per_view) == {"base": 3, "ft": 1, "null_1": 2, "scaled_0.50": 1}
    # The first entry counts (the adapter state is loaded); re-entering the same view does not.
    assert stats.switches == 5
    assert stats.entries == stats.exits == 7


async def test_waits_and_wait_time_are_measured_on_the_loop_clock() -> None:
    backend = AsyncDummyDifferentialBackend()

    async def holder() -> None:
        async with backend.as_base():
            await anyio.sleep(1.0)

    async def waiter(delay: float) -> None:
        await anyio.sleep(delay)
        async with backend.as_finetuned():
            await anyio.sleep(0.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        tg.start_soon(waiter, 0.25)  # waits 0.75
        tg.start_soon(waiter, 0.5)  # waits until 1.5: 1.0
    stats = backend.statistics()
    assert stats.waits == 2
    assert stats.wait_time == pytest.approx(1.75)


async def test_peak_live_views_and_holders() -> None:
    backend = AsyncDummyDifferentialBackend(safe_for_concurrent_views=True)
    all_in = anyio.Event()
    seen: list[dict[str, str]] = []

    async def hold(kind: str) -> None:
        enter = backend.as_base if kind == "base" else backend.as_finetuned
        async with enter():
            if backend.statistics().live_views == 2 and not all_in.is_set():
                seen.append(dict(backend.statistics().holders))
                all_in.set()
            await all_in.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, "base", name="holds-base")
        tg.start_soon(hold, "ft", name="holds-ft")
    assert seen == [{"base": "holds-base", "ft": "holds-ft"}]
    stats = backend.statistics()
    assert stats.peak_live_views == 2
    assert stats.live_views == 0
    assert dict(stats.holders) == {}


async def test_a_snapshot_is_frozen_and_stays_as_it_was() -> None:
    backend = AsyncDummyDifferentialBackend()
    async with backend.as_base() as view:
        await view.next_token_dist("p")
    snapshot = backend.statistics()
    assert backend.statistics() == snapshot
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.cache_hits = 99  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.calls_per_op["next_token_dist"] = 99  # type: ignore[index]
    async with backend.as_base() as view:
        await view.next_token_dist("p")
        await view.logprob_of("p", "c")
    assert snapshot.calls_per_op == {"next_token_dist": 1}
    assert snapshot.cache_hits == 0
    assert backend.statistics() != snapshot
    decoded = json.loads(json.dumps(backend.statistics().to_dict()))
    assert decoded["calls_per_op"] == {"logprob_of": 1, "next_token_dist": 2}
    assert decoded["cache_hits"] == 1


async def test_the_trace_sink_gets_view_entries_exits_and_every_op() -> None:
    sink = ListSink()
    backend = AsyncDummyDifferentialBackend(ft=DummyResponses(generations={"g": "x"}), trace=sink)

    async def probe() -> None:
        async with backend.as_finetuned() as view:
            await view.next_token_dist("alpha")
            await anyio.sleep(0.25)
            await view.next_token_dist("alpha")
            await view.logprob_of("alpha", " beta")
            await view.generate("g", max_new_tokens=2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe, name="the-probe")
    events = sink.events
    assert all(isinstance(event, TraceEvent) for event in events)
    assert [e.kind for e in events if e.kind.startswith("view_")] == ["view_enter", "view_exit"]
    ops = [e for e in events if e.hit is not None]  # an op's outcome carries hit or miss
    assert [(e.op, e.hit) for e in ops] == [
        ("next_token_dist", False),
        ("next_token_dist", True),
        ("logprob_of", False),
        ("generate", False),
    ]
    assert [e.prompt_hash for e in ops[:2]] == [sha12("alpha"), sha12("alpha")]
    assert ops[2].prompt_hash == sha12("alpha\x00 beta")
    assert ops[1].time == pytest.approx(0.25)  # loop time since the backend's first use
    # Each distinct prompt's text is written once (trace schema 2), before its first op.
    prompts = [e for e in events if e.kind == "prompt"]
    assert [(e.prompt_hash, (e.detail or {})["text"]) for e in prompts] == [
        (sha12("alpha"), "alpha"),
        (sha12("alpha\x00 beta"), "alpha\x00 beta"),
        (sha12("g"), "g"),
    ]
    for event in events:
        assert event.view == ("ft" if event.kind != "prompt" else None)
        assert event.task.startswith("the-probe")
        assert event.time >= 0.0
    for event in ops:
        assert event.duration is not None
        assert event.duration >= 0.0
    exit_event = next(e for e in events if e.kind == "view_exit")
    assert exit_event.duration == pytest.approx(0.25)
