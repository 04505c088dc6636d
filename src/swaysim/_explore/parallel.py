"""Where trials run: in this process, in local worker processes, or on a Dask cluster.

:func:`run_trials` is the one door every caller goes through, so spreading
trials changes nothing else: it yields ``(seed, outcome)`` in the order of
``seeds`` and stops after the first outcome ``stop`` accepts. Workers run
contiguous chunks of seeds ahead of the consumer, but outcomes are handed
over strictly in seed order, a chunk only once every lower chunk was, so the
first failure reported for a seed range is its lowest failing seed however the
trials were spread; chunks still in flight above it are cancelled or
abandoned. A trial is a pure function of ``(config, seed)``, so an outcome is
the same wherever it was computed.

Local workers are started with the ``spawn`` method: a fresh interpreter that
inherits nothing from the parent (no event loop, no anyio or trio state, no
threads or locks caught mid-operation, as ``fork`` would copy), and that
behaves the same on Linux, macOS and Windows. ``forkserver`` avoids the same
hazards with a cheaper start per worker, but a pool starts its workers once
per exploration, which chunking then amortizes, and ``forkserver`` is not
available everywhere.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import traceback
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

from swaysim._validation import invalid, require_int
from swaysim.errors import MissingDependencyError, TrialCrashedError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

__all__ = ["DEFAULT_CHUNK_SIZE", "MAX_WORKERS", "ChunkResult", "run_chunk", "run_trials"]

_Config = TypeVar("_Config")
_Outcome = TypeVar("_Outcome")

MAX_WORKERS: Final = 256
"""Local worker processes at most: beyond any machine this runs on, and a typo's guard."""
DEFAULT_CHUNK_SIZE: Final = 4
"""Seeds per task sent to a worker: a trial takes milliseconds, a hand-off about one."""
MAX_CHUNK_SIZE: Final = 10_000
_CHUNKS_PER_WORKER: Final = 4
"""Chunks in flight per worker: one running and three queued, so that a worker never waits
while outcomes are handed over in seed order behind a slower chunk."""
_START_METHOD: Final = "spawn"


@dataclass(frozen=True, slots=True)
class ChunkResult(Generic[_Outcome]):
    """What a worker sends back for a chunk: the outcomes in seed order, then maybe a crash.

    ``crashed_seed`` is the seed whose trial raised (the chunk stops there) and
    ``detail`` its traceback as text: an exception object may not pickle back.
    """

    outcomes: tuple[tuple[int, _Outcome], ...]
    crashed_seed: int | None = None
    detail: str = ""


def run_chunk(
    trial: Callable[[_Config, int], _Outcome], config: _Config, seeds: tuple[int, ...]
) -> ChunkResult[_Outcome]:
    """Run ``trial(config, seed)`` for each of ``seeds`` in order; what every worker calls."""
    outcomes: list[tuple[int, _Outcome]] = []
    for seed in seeds:
        try:
            outcome = trial(config, seed)
        except Exception:
            return ChunkResult(tuple(outcomes), seed, traceback.format_exc())
        outcomes.append((seed, outcome))
    return ChunkResult(tuple(outcomes))


class _Handle(Protocol):
    """A submitted chunk: a ``concurrent.futures.Future`` or a Dask future."""

    def result(self) -> Any: ...

    def cancel(self) -> Any: ...


def _check(workers: object, dask_address: object, chunk_size: object) -> tuple[int, int]:
    count = require_int("workers", workers, minimum=1, maximum=MAX_WORKERS)
    size = require_int("chunk_size", chunk_size, minimum=1, maximum=MAX_CHUNK_SIZE)
    if dask_address is not None:
        if not isinstance(dask_address, str) or not dask_address.strip():
            raise invalid(
                "dask_address",
                dask_address,
                "must be a Dask scheduler address such as 'tcp://10.0.0.5:8786'",
            )
        if count != 1:
            raise invalid(
                "workers",
                count,
                "cannot be combined with dask_address: the cluster's workers run the "
                "trials; leave workers at 1",
            )
    return count, size


def run_trials(
    trial: Callable[[_Config, int], _Outcome],
    config: _Config,
    seeds: Iterable[int],
    *,
    workers: int = 1,
    dask_address: str | None = None,
    stop: Callable[[_Outcome], bool] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Generator[tuple[int, _Outcome]]:
    """``trial(config, seed)`` for each seed, in seed order, until ``stop(outcome)`` is true.

    ``workers`` above 1 runs trials in that many local processes, ``dask_address``
    on the Dask cluster whose scheduler is there (``pip install 'swaysim[dask]'``);
    ``trial`` must then be a module-level function and ``config`` picklable.
    ``seeds`` may be endless (``itertools.count()``): only a few chunks per worker
    are drawn ahead. ``stop`` is called here, in seed order, once per outcome.
    A trial that raises surfaces as :class:`TrialCrashedError` naming its seed,
    once every lower seed was yielded. Bad arguments raise
    :class:`InvalidArgumentError` at once, not at the first iteration.
    """
    count, size = _check(workers, dask_address, chunk_size)
    if dask_address is not None:
        return _on_dask(trial, config, seeds, dask_address, stop, size)
    if count == 1:
        return _here(trial, config, seeds, stop)
    _check_picklable(trial, config)
    return _on_pool(trial, config, seeds, count, stop, size)


def _check_picklable(trial: object, config: object) -> None:
    """Refuse what worker processes cannot receive, before starting them."""
    for field, value in (("trial", trial), ("config", config)):
        try:
            pickle.dumps(value)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise invalid(
                field,
                value,
                f"cannot be sent to worker processes ({error}): use a module-level "
                "function and a picklable config, or workers=1",
            ) from error


def _here(
    trial: Callable[[_Config, int], _Outcome],
    config: _Config,
    seeds: Iterable[int],
    stop: Callable[[_Outcome], bool] | None,
) -> Generator[tuple[int, _Outcome]]:
    for seed in seeds:
        try:
            outcome = trial(config, seed)
        except Exception as error:
            raise TrialCrashedError(seed, traceback.format_exc()) from error
        yield seed, outcome
        if stop is not None and stop(outcome):
            return


def _chunks(seeds: Iterable[int], size: int) -> Iterator[tuple[int, ...]]:
    iterator = iter(seeds)
    while chunk := tuple(itertools.islice(iterator, size)):
        yield chunk


def _in_order(
    submit: Callable[[tuple[int, ...]], _Handle],
    chunks: Iterator[tuple[int, ...]],
    window: int,
    stop: Callable[[_Outcome], bool] | None,
    where: str,
) -> Generator[tuple[int, _Outcome]]:
    """Keep ``window`` chunks in flight; hand over their outcomes in seed order.

    The oldest chunk is always waited for first, so nothing is yielded for a
    seed before every lower seed was; after ``stop`` accepts an outcome (or a
    crash), the chunks still pending are cancelled.
    """
    pending: deque[tuple[tuple[int, ...], _Handle]] = deque()
    try:
        while True:
            while len(pending) < window and (chunk := next(chunks, None)) is not None:
                pending.append((chunk, submit(chunk)))
            if not pending:
                return
            chunk, handle = pending.popleft()
            try:
                result: ChunkResult[_Outcome] = handle.result()
            except Exception as error:
                detail = f"{where} running seeds {chunk[0]}..{chunk[-1]} failed: {error!r}\n"
                raise TrialCrashedError(chunk[0], detail) from error
            for seed, outcome in result.outcomes:
                yield seed, outcome
                if stop is not None and stop(outcome):
                    return
            if result.crashed_seed is not None:
                raise TrialCrashedError(result.crashed_seed, result.detail)
    finally:
        for _, handle in pending:
            handle.cancel()


def _on_pool(
    trial: Callable[[_Config, int], _Outcome],
    config: _Config,
    seeds: Iterable[int],
    workers: int,
    stop: Callable[[_Outcome], bool] | None,
    chunk_size: int,
) -> Generator[tuple[int, _Outcome]]:
    context = multiprocessing.get_context(_START_METHOD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:

        def submit(chunk: tuple[int, ...]) -> _Handle:
            return pool.submit(run_chunk, trial, config, chunk)

        window = workers * _CHUNKS_PER_WORKER
        # Leaving the block waits for the chunks already running (at most one per
        # worker, the rest are cancelled): the processes end rather than outlive the call.
        yield from _in_order(submit, _chunks(seeds, chunk_size), window, stop, "a worker process")


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError as error:
        raise MissingDependencyError(
            f"dask_address={address!r} needs the distributed package, which is not "
            "installed: pip install 'swaysim[dask]'",
            name="distributed",
        ) from error
    try:
        return Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
    except OSError as error:  # refused, timed out, unknown host: distributed raises OSError
        raise invalid(
            "dask_address",
            address,
            f"cannot be reached ({error}): start the cluster (`dask scheduler` and "
            "`dask worker ADDRESS`) or give its scheduler's address",
        ) from error


def _on_dask(
    trial: Callable[[_Config, int], _Outcome],
    config: _Config,
    seeds: Iterable[int],
    address: str,
    stop: Callable[[_Outcome], bool] | None,
    chunk_size: int,
) -> Generator[tuple[int, _Outcome]]:
    client = _dask_client(address)
    try:
        threads = sum(client.nthreads().values()) or 1
        shared = client.scatter(config, broadcast=True, hash=False)

        def submit(chunk: tuple[int, ...]) -> _Handle:
            handle: _Handle = client.submit(run_chunk, trial, shared, chunk, pure=False)
            return handle

        window = threads * _CHUNKS_PER_WORKER
        yield from _in_order(submit, _chunks(seeds, chunk_size), window, stop, "a Dask worker")
    finally:
        client.close()
