"""run_trials: seed order, the lowest failing seed, crashes named by seed, however spread.

The trial is :func:`toy_trials.toy_trial`, a pure module-level function, so
worker processes (started with ``spawn``) import it as the parent does.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from typing import TYPE_CHECKING, Any

import pytest

from swaysim._explore.parallel import (
    _CHUNKS_PER_WORKER,
    MAX_WORKERS,
    ChunkResult,
    run_chunk,
    run_trials,
)
from swaysim.errors import InvalidArgumentError, MissingDependencyError, TrialCrashedError
from toy_trials import ToyConfig, ToyOutcome, failed, toy_trial

if TYPE_CHECKING:
    from collections.abc import Iterator

SPREADS = [
    pytest.param({"workers": 1}, id="here"),
    pytest.param({"workers": 2, "chunk_size": 1}, id="2-workers-chunk-1"),
    pytest.param({"workers": 2, "chunk_size": 3}, id="2-workers-chunk-3"),
]


def serial(config: ToyConfig, seeds: range) -> list[tuple[int, ToyOutcome]]:
    return [(seed, toy_trial(config, seed)) for seed in seeds]


@pytest.mark.parametrize("spread", SPREADS)
def test_every_seed_in_order_with_the_outcomes_of_a_plain_loop(spread: dict[str, Any]) -> None:
    config = ToyConfig(salt="order", work=((0, 3000), (5, 2000)))
    got = list(run_trials(toy_trial, config, range(11), **spread))
    assert got == serial(config, range(11))


@pytest.mark.parametrize("spread", SPREADS)
def test_the_first_failure_reported_is_the_lowest_failing_seed(spread: dict[str, Any]) -> None:
    # Seed 3 fails slowly, 4 and 9 fail at once: with two workers 4 finishes first.
    config = ToyConfig(salt="lowest", failing=frozenset({3, 4, 9}), work=((3, 200_000),))
    seen: list[int] = []

    def stop(outcome: ToyOutcome) -> bool:
        seen.append(outcome.seed)
        return failed(outcome)

    got = list(run_trials(toy_trial, config, range(20), stop=stop, **spread))
    assert [seed for seed, _ in got] == [0, 1, 2, 3]
    assert got[-1][1].failed
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("spread", SPREADS)
def test_a_crashing_trial_surfaces_with_its_seed_after_every_lower_seed(
    spread: dict[str, Any],
) -> None:
    config = ToyConfig(salt="crash", crashing=frozenset({5, 7}))
    got: list[int] = []
    stream = run_trials(toy_trial, config, range(10), **spread)
    with pytest.raises(TrialCrashedError) as caught:
        got.extend(seed for seed, _ in stream)
    assert caught.value.seed == 5
    assert got == [0, 1, 2, 3, 4]
    assert "seed 5" in str(caught.value)
    assert "toy trial broke on purpose at seed 5" in caught.value.detail


def test_a_failure_before_the_crash_stops_first() -> None:
    config = ToyConfig(failing=frozenset({2}), crashing=frozenset({3}))
    got = list(run_trials(toy_trial, config, range(6), workers=2, chunk_size=2, stop=failed))
    assert [seed for seed, _ in got] == [0, 1, 2]


def test_endless_seeds_are_drawn_lazily_until_stop() -> None:
    config = ToyConfig(failing=frozenset({13}))
    drawn: list[int] = []

    def counted() -> Iterator[int]:
        for seed in itertools.count(10):
            drawn.append(seed)
            yield seed

    got = list(run_trials(toy_trial, config, counted(), workers=2, chunk_size=2, stop=failed))
    assert [seed for seed, _ in got] == [10, 11, 12, 13]
    window = 2 * _CHUNKS_PER_WORKER * 2  # workers x chunks in flight each x chunk size
    assert max(drawn) < 13 + window + 2  # a window of chunks ahead, no more


def test_run_chunk_stops_at_the_crash_and_keeps_what_ran() -> None:
    result = run_chunk(toy_trial, ToyConfig(crashing=frozenset({2})), (0, 1, 2, 3))
    assert isinstance(result, ChunkResult)
    assert [seed for seed, _ in result.outcomes] == [0, 1]
    assert result.crashed_seed == 2
    assert "RuntimeError" in result.detail


@pytest.mark.parametrize("workers", [0, -1, MAX_WORKERS + 1, True, 2.0, "2"])
def test_invalid_workers_are_refused_before_anything_runs(workers: object) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        run_trials(toy_trial, ToyConfig(), range(3), workers=workers)  # type: ignore[arg-type]
    assert caught.value.field == "workers"
    assert caught.value.value == workers
    assert repr(workers) in str(caught.value)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"dask_address": ""}, "dask_address"),
        ({"dask_address": 8786}, "dask_address"),
        ({"dask_address": "tcp://127.0.0.1:8786", "workers": 2}, "workers"),
    ],
)
def test_invalid_spreads_are_refused(arguments: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        run_trials(toy_trial, ToyConfig(), range(3), **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_dask_without_distributed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r"swaysim\[dask\]"):
        next(run_trials(toy_trial, ToyConfig(), range(3), dask_address="tcp://127.0.0.1:1"))


def test_closing_the_stream_early_ends_the_workers() -> None:
    stream = run_trials(toy_trial, ToyConfig(), itertools.count(), workers=2, chunk_size=2)
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert [seed for seed, _ in first] == [0, 1, 2]
    assert multiprocessing.active_children() == []


def test_an_unreachable_cluster_names_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed

    def refuse(address: str, **_: object) -> None:
        raise OSError(f"Timed out trying to connect to {address}")

    monkeypatch.setattr(distributed, "Client", refuse)
    address = "tcp://127.0.0.1:1"
    with pytest.raises(InvalidArgumentError, match="cannot be reached") as caught:
        next(run_trials(toy_trial, ToyConfig(), range(3), dask_address=address))
    assert caught.value.field == "dask_address"
    assert caught.value.value == address


def test_what_workers_cannot_receive_is_refused_before_they_start() -> None:
    def local_trial(config: ToyConfig, seed: int) -> int:
        return seed

    with pytest.raises(InvalidArgumentError, match="module-level") as caught:
        run_trials(local_trial, ToyConfig(), range(3), workers=2)
    assert caught.value.field == "trial"
    assert multiprocessing.active_children() == []
