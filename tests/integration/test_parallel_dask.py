"""Trials on a local Dask cluster of worker processes give what one process gives.

The cluster is real (``LocalCluster`` with ``processes=True``: two worker
processes, one thread each, talking to a scheduler over TCP), started once for
the module; trials reach it through its address, as ``--dask ADDRESS`` does.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from distributed import LocalCluster

from swaysim._explore.api import explore
from swaysim._explore.parallel import run_trials
from swaysim.errors import TrialCrashedError
from toy_trials import ToyConfig, failed, toy_trial

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT: Final = Path(__file__).resolve().parents[2]
SAFE: Final = str(ROOT / "scenarios" / "safe_backend_faults.toml")
FLAKY: Final = str(ROOT / "scenarios" / "flaky_ft_view.toml")


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert isinstance(address, str)
        yield address


def test_toy_trials_on_the_cluster_match_one_process(dask_address: str) -> None:
    config = ToyConfig(salt="dask", failing=frozenset({6, 9}), work=((6, 100_000),))
    here = list(run_trials(toy_trial, config, range(30), stop=failed))
    there = list(run_trials(toy_trial, config, range(30), dask_address=dask_address, stop=failed))
    assert there == here
    assert [seed for seed, _ in there] == list(range(7))


def test_a_crash_on_the_cluster_names_its_seed(dask_address: str) -> None:
    config = ToyConfig(crashing=frozenset({4}))
    stream = run_trials(toy_trial, config, itertools.count(), dask_address=dask_address)
    with pytest.raises(TrialCrashedError) as caught:
        list(stream)
    assert caught.value.seed == 4
    assert "toy trial broke on purpose at seed 4" in caught.value.detail


def test_a_short_exploration_shrinks_to_the_same_scenario_however_spread(
    dask_address: str, tmp_path: Path
) -> None:
    runner = "runners.mutants:unretried_transient"
    here = explore([SAFE, FLAKY], runner, trials=40, out=tmp_path / "here")
    spread: dict[str, dict[str, Any]] = {
        "cluster": {"dask_address": dask_address},
        "2 local workers": {"workers": 2},
    }
    assert here.found is not None
    assert here.shrunk is not None
    for name, how in spread.items():
        there = explore([SAFE, FLAKY], runner, trials=40, out=tmp_path / name, **how)
        assert there.found == here.found, name
        assert there.trials == here.trials, name
        assert there.shrunk is not None
        assert there.shrunk.document == here.shrunk.document, name
        assert there.written is not None
        assert here.written is not None
        assert there.written.path.read_bytes() == here.written.path.read_bytes(), name
