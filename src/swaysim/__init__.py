"""swaysim: a deterministic, async-first test double for LLM differential backends.

The public API is exactly what ``__all__`` lists; everything else lives in
private ``_``-prefixed modules and may change without notice.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from swaysim._backend import AsyncDummyDifferentialBackend, DummyView
from swaysim._bridge import (
    BlockingBackend,
    BlockingView,
    BridgeCancelled,
    BridgeError,
    blocking_backend,
    run_sync_probe,
)
from swaysim._chrome import export_chrome
from swaysim._clock import VirtualClockEventLoop, hold_virtual_time, run, virtual_anyio_backend
from swaysim._divergence import (
    ProbeMathError,
    ZScore,
    divergence,
    validate_logprob,
    validate_rolling,
    validate_token_dist,
    z_score,
)
from swaysim._errors import (
    InvalidArgumentError,
    MissingResponseError,
    NestedViewError,
    StaleViewError,
    SwaysimError,
    ViewConflictError,
    ViewError,
)
from swaysim._faults import (
    FaultFiring,
    FaultPlan,
    FaultRule,
    InjectedFatalError,
    InjectedFault,
    InjectedTransientError,
    InjectedViewEnterError,
    InjectedViewExitError,
)
from swaysim._instrumentation import BackendStatistics, TraceEvent, TraceSink
from swaysim._latency import Constant, LatencyPlan, LatencyRule, LogNormal, Uniform
from swaysim._probes import (
    BASE,
    FT,
    Answers,
    Ask,
    CalibrationUnavailableError,
    FunctionProbe,
    NullCalibration,
    Probe,
    ProbeContext,
    ProbeResult,
    Verdict,
    ViewRef,
    WorkFailedError,
    null_view,
    scaled_view,
)
from swaysim._protocols import (
    DifferentialBackend,
    NullCalibratedBackend,
    PreflightCheckable,
    ScalableDifferentialBackend,
    ScoringModel,
)
from swaysim._reference_probes import (
    AdapterAblation,
    DeltaKL,
    NullAdapter,
    NumericProbe,
    PerplexityShift,
    PreferenceFlip,
)
from swaysim._runner import SuiteResult, run_suite
from swaysim._trace import JsonlTraceWriter, TraceFormatError, TraceRecorder, read_trace
from swaysim._types import DummyResponses, RollingLogprob, TokenDist

# The scenario, report and terminal-summary machinery (pydantic, rich) loads on
# first use: the pytest plugin imports this package in every pytest session.
_LAZY: _typing.Final = {
    "Scenario": "swaysim._scenario",
    "ScenarioCheck": "swaysim._expect",
    "ScenarioError": "swaysim._scenario",
    "check_scenario": "swaysim._expect",
    "load_scenario": "swaysim._scenario",
    "summarize_trace": "swaysim._trace_summary",
    "write_report": "swaysim._report",
}

if _typing.TYPE_CHECKING:
    from swaysim._expect import ScenarioCheck, check_scenario
    from swaysim._report import write_report
    from swaysim._scenario import Scenario, ScenarioError, load_scenario
    from swaysim._trace_summary import summarize_trace


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'swaysim' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
    "MissingResponseError",
    "NestedViewError",
    "NullAdapter",
    "NullCalibratedBackend",
    "NullCalibration",
    "NumericProbe",
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
    "ViewConflictError",
    "ViewError",
    "ViewRef",
    "VirtualClockEventLoop",
    "WorkFailedError",
    "ZScore",
    "__version__",
    "blocking_backend",
    "check_scenario",
    "divergence",
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
