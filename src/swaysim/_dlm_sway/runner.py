"""dlm-sway's own suite runner as a runner under test for the scenario library.

``swaysim run scenarios/ --runner swaysim.dlm_sway:runner`` (or
``check_scenario(..., runner=swaysim.dlm_sway.runner)``): each scenario's
reference probes become dlm-sway probe specs (:mod:`swaysim._dlm_sway.probes`),
and ``dlm_sway.suite.runner.run`` runs them, unchanged, against the
scenario's backend. The runner is synchronous, so swaysim runs it on a
worker thread through the blocking bridge (op timeouts, cancellation and
virtual time as for any synchronous runner); the backend dlm-sway sees is
the drop-in over that bridge (:meth:`DummyDifferentialBackend.over`), so its
``_inst`` statistics, probe labels and attribution work as they do in
dlm-sway's own tests.

dlm-sway's runner has no concurrency, retries, backoff or timeouts: the
options for them are accepted and ignored, which is what the library then
measures. Its process-wide side effects (it seeds ``random`` and numpy's
global generator and sets ``CUBLAS_WORKSPACE_CONFIG``) are undone on return.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from dlm_sway.suite.runner import run as run_dlm_sway_suite

from swaysim._dlm_sway.backend import DummyDifferentialBackend
from swaysim._dlm_sway.probes import sway_spec, swaysim_result, unmapped
from swaysim._runner.results import ProbeResult, Verdict

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from swaysim._bridge.blocking import BlockingBackend
    from swaysim._runner.probes import FunctionProbe, Probe

__all__ = ["runner"]

_ENVIRONMENT: Final = ("CUBLAS_WORKSPACE_CONFIG",)


@contextmanager
def _global_state_kept() -> Iterator[None]:
    """Undo dlm-sway's process-wide seeding and environment changes on the way out."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    environment = {name: os.environ.get(name) for name in _ENVIRONMENT}
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def runner(
    sync_backend: BlockingBackend,
    probes: Sequence[Probe | FunctionProbe],
    *,
    seed: int = 0,
    preflight: bool = True,
    **ignored: Any,
) -> list[ProbeResult]:
    """Run ``probes`` with dlm-sway 0.1.0's suite runner; one result per probe.

    ``seed`` is dlm-sway's ``defaults.seed``; ``preflight=False`` is its
    ``skip_preflight``. ``concurrency``, ``op_timeout``, ``probe_timeout``,
    ``retries``, ``backoff``, ``backoff_max`` and ``retry_on`` have no
    counterpart in dlm-sway and are ignored (``ignored``). A probe with no
    dlm-sway counterpart (a function probe, a probe class of one's own) is a
    SKIP saying so; a preflight abort is dlm-sway's one ``__preflight__``
    ERROR and nothing else.
    """
    del ignored
    backend = DummyDifferentialBackend.over(sync_backend)
    kinds = {probe.name: probe.kind for probe in probes}
    with _global_state_kept():
        suite = run_dlm_sway_suite(
            sway_spec(probes, seed=seed), backend, skip_preflight=not preflight
        )
    results = [swaysim_result(result, kinds) for result in suite.probes]
    if len(results) == 1 and results[0].name == "__preflight__":
        return results
    for probe in unmapped(probes):
        message = f"dlm-sway has no probe for swaysim's {probe.kind!r} probes"
        results.append(ProbeResult(probe.name, probe.kind, Verdict.SKIP, message=message))
    return results


# A runner passed as an object is replayed by its importable name: the public one.
runner.__module__ = "swaysim.dlm_sway"
