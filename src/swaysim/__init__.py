"""swaysim: a deterministic, async-first test double for LLM differential backends.

The public API is exactly what ``__all__`` lists; everything else lives in
private ``_``-prefixed modules and may change without notice.
"""

from __future__ import annotations

from swaysim._backend import AsyncDummyDifferentialBackend, DummyView
from swaysim._clock import VirtualClockEventLoop, hold_virtual_time, run, virtual_anyio_backend
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
from swaysim._protocols import (
    DifferentialBackend,
    NullCalibratedBackend,
    PreflightCheckable,
    ScalableDifferentialBackend,
    ScoringModel,
)
from swaysim._types import DummyResponses, RollingLogprob, TokenDist

__version__ = "0.1.0"

__all__ = [
    "AsyncDummyDifferentialBackend",
    "BackendStatistics",
    "Constant",
    "DifferentialBackend",
    "DummyResponses",
    "DummyView",
    "FaultFiring",
    "FaultPlan",
    "FaultRule",
    "InjectedFatalError",
    "InjectedFault",
    "InjectedTransientError",
    "InjectedViewEnterError",
    "InjectedViewExitError",
    "InvalidArgumentError",
    "LatencyPlan",
    "LatencyRule",
    "LogNormal",
    "MissingResponseError",
    "NestedViewError",
    "NullCalibratedBackend",
    "PreflightCheckable",
    "RollingLogprob",
    "ScalableDifferentialBackend",
    "ScoringModel",
    "StaleViewError",
    "SwaysimError",
    "TokenDist",
    "TraceEvent",
    "TraceSink",
    "Uniform",
    "ViewConflictError",
    "ViewError",
    "VirtualClockEventLoop",
    "__version__",
    "hold_virtual_time",
    "run",
    "virtual_anyio_backend",
]
