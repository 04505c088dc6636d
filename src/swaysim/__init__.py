"""swaysim: a deterministic, async-first test double for LLM differential backends.

The public API is exactly what ``__all__`` lists; everything else lives in
private ``_``-prefixed modules and may change without notice.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from swaysim import errors as errors
from swaysim import trace as trace
from swaysim._backend.attribution import attribute
from swaysim._backend.backend import AsyncDummyDifferentialBackend
from swaysim._backend.statistics import BackendStatistics
from swaysim._backend.views import DummyView
from swaysim._bridge.blocking import BlockingBackend, BlockingView
from swaysim._bridge.bridge import blocking_backend, run_sync_probe
from swaysim._chaos.faults import FaultFiring, FaultPlan, FaultRule
from swaysim._chaos.latency import Constant, LatencyPlan, LatencyRule, LogNormal, Uniform
from swaysim._protocols import (
    DifferentialBackend,
    NullCalibratedBackend,
    Observable,
    PreflightCheckable,
    ScalableDifferentialBackend,
    ScoringModel,
)
from swaysim._runner.calibration import NullAdapter, NumericProbe
from swaysim._runner.divergence import ZScore, divergence, z_score
from swaysim._runner.output_validation import (
    validate_logprob,
    validate_rolling,
    validate_token_dist,
)
from swaysim._runner.probes import FunctionProbe, Probe, ProbeContext
from swaysim._runner.reference_probes import (
    AdapterAblation,
    DeltaKL,
    PerplexityShift,
    PreferenceFlip,
)
from swaysim._runner.requests import BASE, FT, Answers, Ask, ViewRef, null_view, scaled_view
from swaysim._runner.results import NullCalibration, ProbeResult, Verdict
from swaysim._runner.suite import SuiteResult, run_suite
from swaysim._time.clock import VirtualClockEventLoop, hold_virtual_time, run, virtual_anyio_backend
from swaysim._trace.chrome import export_chrome
from swaysim._trace.events import TraceEvent, TraceSink
from swaysim._trace.read import read_trace
from swaysim._trace.sinks import JsonlTraceWriter, TraceRecorder
from swaysim._types import DummyResponses, RollingLogprob, TokenDist
from swaysim.errors import (
    BridgeCancelled,
    BridgeError,
    CalibrationUnavailableError,
    InjectedFatalError,
    InjectedFault,
    InjectedTransientError,
    InjectedViewEnterError,
    InjectedViewExitError,
    InvalidArgumentError,
    MissingDependencyError,
    MissingResponseError,
    NestedViewAlreadyActiveError,
    NestedViewError,
    OutputError,
    ProbeMathError,
    ScenarioError,
    ScenarioFailedError,
    StaleViewError,
    SwaysimError,
    TraceFormatError,
    ViewAlreadyActiveError,
    ViewConflictError,
    ViewError,
    WorkFailedError,
)

# The scenario, report and terminal-summary machinery (pydantic, rich) loads on
# first use: the pytest plugin imports this package in every pytest session.
_LAZY: _typing.Final = {
    "ExploreResult": "swaysim._explore.api",
    "explore": "swaysim._explore.api",
    "Scenario": "swaysim.scenario",
    "ScenarioCheck": "swaysim.scenario",
    "check_scenario": "swaysim.scenario",
    "load_scenario": "swaysim.scenario",
    "summarize_trace": "swaysim._trace.summary",
    "write_report": "swaysim._trace.report.render",
}
_LAZY_SUBMODULES: _typing.Final = frozenset({"scenario", "strategies"})
"""Public namespaces that load on first use (``swaysim.scenario``; ``swaysim.strategies``
needs Hypothesis)."""

if _typing.TYPE_CHECKING:
    from swaysim import scenario as scenario
    from swaysim import strategies as strategies
    from swaysim._explore.api import ExploreResult, explore
    from swaysim._trace.report.render import write_report
    from swaysim._trace.summary import summarize_trace
    from swaysim.scenario import Scenario, ScenarioCheck, check_scenario, load_scenario


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f"swaysim.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'swaysim' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_SUBMODULES})


__version__ = "0.1.0"

__all__ = [
    "AdapterAblation",
    "Answers",
    "Ask",
    "AsyncDummyDifferentialBackend",
    "BASE",
    "BackendStatistics",
    "BlockingBackend",
    "BlockingView",
    "BridgeCancelled",
    "BridgeError",
    "CalibrationUnavailableError",
    "Constant",
    "DeltaKL",
    "DifferentialBackend",
    "DummyResponses",
    "DummyView",
    "ExploreResult",
    "FT",
    "FaultFiring",
    "FaultPlan",
    "FaultRule",
    "FunctionProbe",
    "InjectedFatalError",
    "InjectedFault",
    "InjectedTransientError",
    "InjectedViewEnterError",
    "InjectedViewExitError",
    "InvalidArgumentError",
    "JsonlTraceWriter",
    "LatencyPlan",
    "LatencyRule",
    "LogNormal",
    "MissingDependencyError",
    "MissingResponseError",
    "NestedViewAlreadyActiveError",
    "NestedViewError",
    "NullAdapter",
    "NullCalibratedBackend",
    "NullCalibration",
    "NumericProbe",
    "Observable",
    "OutputError",
    "PerplexityShift",
    "PreferenceFlip",
    "PreflightCheckable",
    "Probe",
    "ProbeContext",
    "ProbeMathError",
    "ProbeResult",
    "RollingLogprob",
    "ScalableDifferentialBackend",
    "Scenario",
    "ScenarioCheck",
    "ScenarioError",
    "ScenarioFailedError",
    "ScoringModel",
    "StaleViewError",
    "SuiteResult",
    "SwaysimError",
    "TokenDist",
    "TraceEvent",
    "TraceFormatError",
    "TraceRecorder",
    "TraceSink",
    "Uniform",
    "Verdict",
    "ViewAlreadyActiveError",
    "ViewConflictError",
    "ViewError",
    "ViewRef",
    "VirtualClockEventLoop",
    "WorkFailedError",
    "ZScore",
    "__version__",
    "attribute",
    "blocking_backend",
    "check_scenario",
    "divergence",
    "explore",
    "export_chrome",
    "hold_virtual_time",
    "load_scenario",
    "null_view",
    "read_trace",
    "run",
    "run_suite",
    "run_sync_probe",
    "scaled_view",
    "summarize_trace",
    "validate_logprob",
    "validate_rolling",
    "validate_token_dist",
    "virtual_anyio_backend",
    "write_report",
    "z_score",
]
