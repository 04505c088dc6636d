"""Where trials run: here, one after another (process pools and Dask come in their own change).

:func:`run_trials` is the one door every caller goes through, so spreading
trials over processes or a cluster changes nothing else: it yields
``(seed, outcome)`` in seed order and stops after the first outcome ``stop``
accepts, whichever way trials were spread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["run_trials"]

_Config = TypeVar("_Config")
_Outcome = TypeVar("_Outcome")


def run_trials(
    trial: Callable[[_Config, int], _Outcome],
    config: _Config,
    seeds: Iterable[int],
    *,
    workers: int = 1,
    dask_address: str | None = None,
    stop: Callable[[_Outcome], bool] | None = None,
) -> Iterator[tuple[int, _Outcome]]:
    """``trial(config, seed)`` for each seed, in seed order, until ``stop(outcome)`` is true.

    This implementation runs every trial in this process; ``workers`` above 1 and
    ``dask_address`` are refused (:class:`InvalidArgumentError`) until the parallel
    version lands.
    """
    if workers != 1 or dask_address is not None:
        raise InvalidArgumentError(
            f"workers={workers}, dask_address={dask_address!r}: this build runs trials "
            "in one process only; leave --workers and --dask unset",
            field="workers" if workers != 1 else "dask_address",
            value=workers if workers != 1 else dask_address,
        )
    for seed in seeds:
        outcome = trial(config, seed)
        yield seed, outcome
        if stop is not None and stop(outcome):
            return
