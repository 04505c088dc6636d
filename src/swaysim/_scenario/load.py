"""Declarative scenarios: the TOML schema, the loader, and the builder.

A scenario file sets up a backend (views, exclusivity, latency, faults,
seed), a probe suite, a runner configuration and the expectations that must
hold afterwards. Its keys are the Python API's own argument names, one to one
(a test introspects both so they cannot drift):

- ``[backend]``: :class:`~swaysim.AsyncDummyDifferentialBackend` keyword
  arguments; ``[backend.base]``/``[backend.ft]`` are
  :class:`~swaysim.DummyResponses`; ``[backend.latency]`` is a
  :class:`~swaysim.LatencyPlan` and ``[backend.faults]`` a
  :class:`~swaysim.FaultPlan` (``[[backend.faults.rules]]`` are
  :class:`~swaysim.FaultRule` fields).
- ``[[probes]]``: a reference probe's constructor arguments, ``kind``
  choosing the class.
- ``[runner]``: :func:`~swaysim.run_suite` keyword arguments, or
  ``runner = "package.module:function"`` for a runner of one's own.
- ``[expect]``: see :mod:`swaysim._scenario.expect`.

Validation is pydantic (strict types, unknown keys rejected); every problem
becomes one line naming the file, the key path, the bad value and what is
allowed. Nothing in a scenario is evaluated as code except the explicit
``runner = "module:function"`` import.
"""

from __future__ import annotations

import datetime
import difflib
import fnmatch
import importlib
import inspect
import json
import math
import re
import shlex
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar, Union

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from swaysim._backend.backend import AsyncDummyDifferentialBackend
from swaysim._chaos.faults import FaultKind, FaultPlan, FaultRule
from swaysim._chaos.latency import Constant, LatencyPlan, LatencyRule, LogNormal, Uniform
from swaysim._runner.calibration import NullAdapter
from swaysim._runner.reference_probes import (
    AdapterAblation,
    DeltaKL,
    PerplexityShift,
    PreferenceFlip,
)
from swaysim._types import DummyResponses, RollingLogprob, TokenDist
from swaysim._vocab import Op  # noqa: TC001 - pydantic resolves annotations at runtime
from swaysim.errors import InvalidArgumentError, ScenarioError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from swaysim._chaos.latency import LatencyModel
    from swaysim._runner.probes import Probe
    from swaysim._trace.events import TraceSink

__all__ = [
    "PROBE_CLASSES",
    "backend_from_table",
    "Scenario",
    "ScenarioError",
    "ScenarioSpec",
    "discover_scenarios",
    "load_scenario",
    "parse_scenario",
    "scenario_json_schema",
]

_T = TypeVar("_T")
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_NESTING: Final = 32
MAX_SEED: Final = 2**63 - 1
MAX_COUNT: Final = 1_000_000
MAX_SECONDS: Final = 1e9
"""About 31 years of virtual time: finite, far beyond any run, and safe to add to a clock."""
SCHEMA_ID: Final = "https://swaysim.dev/schema/scenario.schema.json"

# -- errors -------------------------------------------------------------------------


# -- schema -------------------------------------------------------------------------

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0.0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0.0, le=MAX_SECONDS)]
Number = Annotated[float, Field(ge=-1e12, le=1e12)]
VerdictName = Literal["PASS", "FAIL", "WARN", "SKIP", "ERROR"]
_RUNNER_PATTERN: Final = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        use_attribute_docstrings=True,
    )


class ConstantSpec(_Spec):
    """Always ``seconds``, plus a uniform ``[0, jitter)``."""

    model: Literal["constant"]
    seconds: Seconds
    """Seconds of latency."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


class UniformSpec(_Spec):
    """Uniform in ``[low, high)`` seconds, plus a uniform ``[0, jitter)``."""

    model: Literal["uniform"]
    low: Seconds
    """Lowest latency, seconds."""
    high: Seconds
    """Highest latency, seconds (at least ``low``)."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


class LogNormalSpec(_Spec):
    """``exp(N(log(median), sigma**2))`` seconds: a heavy right tail."""

    model: Literal["lognormal"]
    median: PositiveSeconds
    """Median latency, seconds (> 0)."""
    sigma: Annotated[float, Field(gt=0.0, le=20.0)]
    """Log-space standard deviation (> 0)."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


LatencyModelSpec = Annotated[
    Union[ConstantSpec, UniformSpec, LogNormalSpec],  # noqa: UP007
    Field(discriminator="model"),
]


class LatencyRuleSpec(_Spec):
    """Latency for the ops and views it selects (empty selects everything)."""

    model: LatencyModelSpec
    """The latency model: ``{ model = "lognormal", median = 0.05, sigma = 0.5 }``."""
    ops: list[Op] = []
    """Ops this rule prices; empty: every op."""
    views: list[str] = []
    """View kinds (base, ft, scaled, null) or ids (scaled_0.50, null_42); empty: every view."""


class LatencyPlanSpec(_Spec):
    """What each op, view switch, enter and exit costs (``swaysim.LatencyPlan``)."""

    seed: Seed | None = None
    """Seed of the latency draws; defaults to the scenario seed."""
    default: LatencyModelSpec | None = None
    """Service time of an op no rule selects."""
    rules: list[LatencyRuleSpec] = []
    """First matching rule prices an op."""
    generate_per_token: LatencyModelSpec | None = None
    """Added per ``max_new_tokens`` to ``generate``."""
    batch_per_item: LatencyModelSpec | None = None
    """Added per uncached prompt to ``next_token_dist_batch``."""
    view_switch: LatencyModelSpec | None = None
    """Paid when entering a view other than the last one entered (the first entry counts)."""
    view_enter: LatencyModelSpec | None = None
    """Paid on every view entry."""
    view_exit: LatencyModelSpec | None = None
    """Paid on every view exit."""


class FaultRuleSpec(_Spec):
    """One fault and the calls it targets (``swaysim.FaultRule``); every filter given must hold."""

    kind: FaultKind
    """What happens when the rule fires."""
    name: str = ""
    """Rule name for stats and ``expect.faults_fired``; default ``<kind>#<index>``."""
    ops: list[Op] = []
    """Ops it may fire on; empty: every op the kind applies to."""
    views: list[str] = []
    """View kinds or ids; empty: every view."""
    prompt: str | None = None
    """Case-sensitive glob on the prompt or text."""
    nth: PositiveCount | None = None
    """Only the n-th call of a key (op, view, prompt), 1-based."""
    after: Count | None = None
    """Only calls after the first n of a key."""
    every: PositiveCount | None = None
    """Calls n, 2n, 3n... of a key."""
    probability: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """Chance of firing, drawn per call from the plan seed."""
    max_fires: PositiveCount | None = None
    """Stop after this many firings in total."""
    window: Annotated[list[Seconds], Field(min_length=2, max_length=2)] | None = None
    """``[start, end)`` in loop seconds since the backend's first use."""


class FaultPlanSpec(_Spec):
    """An ordered set of fault rules (``swaysim.FaultPlan``); the first match fires."""

    rules: list[FaultRuleSpec] = []
    """The rules, checked in order."""
    seed: Seed | None = None
    """Seed of the probability draws; defaults to the scenario seed."""


class LogprobSpec(_Spec):
    """A canned ``logprob_of(prompt, completion)``."""

    prompt: str
    completion: str
    logprob: Number
    """Summed completion logprob, nats."""


class TokenDistSpec(_Spec):
    """A canned next-token distribution (``swaysim.TokenDist``)."""

    token_ids: Annotated[list[Annotated[int, Field(ge=0, le=2**62)]], Field(min_length=1)]
    logprobs: Annotated[list[Number], Field(min_length=1)]
    vocab_size: Annotated[int, Field(ge=1, le=2**62)]
    tail_logprob: Number | None = None
    """Log of the mass outside the slice; unset: no measurable tail."""

    @model_validator(mode="after")
    def _lengths(self) -> TokenDistSpec:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(
                f"token_ids has {len(self.token_ids)} entries but logprobs has "
                f"{len(self.logprobs)}; they must match one to one"
            )
        return self


class RollingSpec(_Spec):
    """A canned rolling logprob (``swaysim.RollingLogprob``)."""

    token_ids: Annotated[list[Annotated[int, Field(ge=0, le=2**62)]], Field(min_length=1)]
    logprobs: list[Number]
    """N-1 per-token logprobs for N token ids."""
    num_tokens: PositiveCount | None = None
    """Defaults to the number of token ids."""
    total_logprob: Number | None = None
    """Defaults to the sum of ``logprobs``."""

    @model_validator(mode="after")
    def _lengths(self) -> RollingSpec:
        if len(self.logprobs) != len(self.token_ids) - 1:
            raise ValueError(
                f"logprobs has {len(self.logprobs)} entries; {len(self.token_ids)} token ids "
                f"need {len(self.token_ids) - 1}"
            )
        return self


class ResponsesSpec(_Spec):
    """Canned answers for one mode (``swaysim.DummyResponses``)."""

    generations: dict[str, str] = {}
    """Prompt to canned completion."""
    logprobs: list[LogprobSpec] = []
    """Canned ``logprob_of`` values (anything else scores -10.0)."""
    rolling: dict[str, RollingSpec] = {}
    """Text to canned rolling logprob."""
    token_dists: dict[str, TokenDistSpec] = {}
    """Prompt to canned next-token distribution."""


class BackendSpec(_Spec):
    """``swaysim.AsyncDummyDifferentialBackend`` keyword arguments."""

    base: ResponsesSpec | None = None
    """Canned answers of the base view."""
    ft: ResponsesSpec | None = None
    """Canned answers of the fine-tuned view."""
    safe_for_concurrent_views: bool = False
    """True: views may be live together (an API, two models)."""
    exclusivity: Literal["wait", "strict"] = "wait"
    """Exclusive backend: entering a busy view waits (FIFO) or fails at once."""
    max_concurrent_views: PositiveCount | None = None
    """Cap on live views (needs safe_for_concurrent_views)."""
    max_concurrent_ops: PositiveCount | None = None
    """Ops served at once (default 1 when exclusive, unbounded when safe)."""
    cache_size: PositiveCount = 256
    """Forward-cache entries."""
    latency: LatencyPlanSpec | None = None
    """Latency plan."""
    faults: FaultPlanSpec | None = None
    """Fault plan."""
    schedule_jitter: Seed | None = None
    """Chaos-scheduling seed: extra checkpoints and tiny sleeps at op boundaries."""


class _ProbeSpec(_Spec):
    name: str
    """Probe name, unique in the suite (with ``repeat``: ``<name>-<i>``)."""
    repeat: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """Expand into N probes named ``<name>-<i>`` (i from 0), ``{i}`` substituted in strings."""


class DeltaKLSpec(_ProbeSpec):
    """Mean JS (or KL) divergence between base and ft next-token distributions."""

    kind: Literal["delta_kl"]
    prompts: Annotated[list[str], Field(min_length=1)]
    divergence: Literal["js", "kl"] = "js"
    top_k: PositiveCount = 256
    threshold: Number = 0.01
    null: str | None = None
    """Name of a null_adapter probe to z-score against."""
    z_threshold: Number = 3.0


class AdapterAblationSpec(_ProbeSpec):
    """Divergence from base as the adapter is scaled by each lam."""

    kind: Literal["adapter_ablation"]
    prompts: Annotated[list[str], Field(min_length=1)]
    lams: Annotated[list[Number], Field(min_length=1)] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    divergence: Literal["js", "kl"] = "js"
    top_k: PositiveCount = 256
    threshold: Number = 0.01
    tolerance: Annotated[float, Field(ge=0.0, le=1e12)] = 1e-6


class NullAdapterSpec(_ProbeSpec):
    """A target probe's statistic on K seeded null views: the z-score denominator."""

    kind: Literal["null_adapter"]
    target: str
    """Name of the numeric probe whose statistic is measured."""
    seeds: Annotated[list[Seed], Field(min_length=2)] = [0, 1, 2, 3]
    init_scale: Annotated[float, Field(ge=0.0, le=1e6)] = 0.02
    rank_scale: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    std_floor: Annotated[float, Field(ge=0.0, le=1e12)] = 1e-6


class PreferenceFlipSpec(_ProbeSpec):
    """How much more ft prefers the chosen completion than base does."""

    kind: Literal["preference_flip"]
    triples: Annotated[
        list[Annotated[list[str], Field(min_length=3, max_length=3)]], Field(min_length=1)
    ]
    """``[prompt, chosen, rejected]`` triples."""
    threshold: Number = 0.0
    null: str | None = None
    z_threshold: Number = 3.0


class PerplexityShiftSpec(_ProbeSpec):
    """Mean per-token logprob gain of ft over base on held-out texts."""

    kind: Literal["perplexity_shift"]
    texts: Annotated[list[str], Field(min_length=1)]
    threshold: Number = 0.0
    null: str | None = None
    z_threshold: Number = 3.0


ProbeSpec = Annotated[
    Union[  # noqa: UP007
        DeltaKLSpec, AdapterAblationSpec, NullAdapterSpec, PreferenceFlipSpec, PerplexityShiftSpec
    ],
    Field(discriminator="kind"),
]

PROBE_CLASSES: Final[dict[str, type[Probe]]] = {
    "delta_kl": DeltaKL,
    "adapter_ablation": AdapterAblation,
    "null_adapter": NullAdapter,
    "preference_flip": PreferenceFlip,
    "perplexity_shift": PerplexityShift,
}
PROBE_SPECS: Final[dict[str, type[_ProbeSpec]]] = {
    "delta_kl": DeltaKLSpec,
    "adapter_ablation": AdapterAblationSpec,
    "null_adapter": NullAdapterSpec,
    "preference_flip": PreferenceFlipSpec,
    "perplexity_shift": PerplexityShiftSpec,
}
NUMERIC_KINDS: Final = frozenset({"delta_kl", "preference_flip", "perplexity_shift"})


class RunnerSpec(_Spec):
    """``swaysim.run_suite`` keyword arguments, or a runner of your own."""

    runner: Annotated[str, Field(pattern=_RUNNER_PATTERN)] | None = None
    """``"package.module:function"``: awaited as ``function(backend, probes, **options)``."""
    concurrency: PositiveCount = 1
    op_timeout: PositiveSeconds | None = None
    probe_timeout: PositiveSeconds | None = None
    retries: Annotated[int, Field(ge=0, le=1000)] = 2
    backoff: Seconds = 0.1
    backoff_max: Seconds = 5.0
    preflight: bool = True
    seed: Seed | None = None
    """Seed of the retry jitter; defaults to the scenario seed."""
    mode: Literal["pooled", "naive"] = "pooled"
    cancel_after: PositiveSeconds | None = None
    """Cancel the suite after this many loop seconds (``anyio.move_on_after``)."""
    options: dict[str, Any] = {}
    """Extra keyword arguments for a custom ``runner`` (only with ``runner``)."""


def _exact_count(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_COUNT:
            raise ValueError(f"must be within [0, {MAX_COUNT}]")
        return {"at_least": value, "at_most": value}
    return value


class CountBounds(_Spec):
    """A count that must lie within bounds (a bare integer means exactly that)."""

    at_least: Count | None = None
    at_most: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> CountBounds:
        _check_bounds(self.at_least, self.at_most)
        return self


class SecondsBounds(_Spec):
    """Virtual seconds that must lie within bounds (a bare number means exactly that)."""

    at_least: Seconds | None = None
    at_most: Seconds | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SecondsBounds:
        _check_bounds(self.at_least, self.at_most)
        return self


def _check_bounds(low: float | None, high: float | None) -> None:
    if low is None and high is None:
        raise ValueError("set at_least, at_most or both")
    if low is not None and high is not None and high < low:
        raise ValueError(f"at_most={high!r} is below at_least={low!r}")


def _exact_seconds(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0.0 <= value <= MAX_SECONDS:
            raise ValueError(f"must be within [0, {MAX_SECONDS:g}] seconds")
        return {"at_least": value, "at_most": value}
    return value


def _one_verdict(value: object) -> object:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError("must be a verdict (PASS, FAIL, WARN, SKIP, ERROR) or an array of them")
    return value


CountExpectation = Annotated[
    CountBounds,
    BeforeValidator(_exact_count, json_schema_input_type=Union[Count, CountBounds]),  # noqa: UP007
]
SecondsExpectation = Annotated[
    SecondsBounds,
    BeforeValidator(_exact_seconds, json_schema_input_type=Union[Seconds, SecondsBounds]),  # noqa: UP007
]
VerdictExpectation = Annotated[
    Annotated[list[VerdictName], Field(min_length=1)],
    BeforeValidator(_one_verdict, json_schema_input_type=Union[VerdictName, list[VerdictName]]),  # noqa: UP007
]


class VerdictCounts(_Spec):
    """How many probes end with each verdict."""

    PASS: CountExpectation | None = None
    FAIL: CountExpectation | None = None
    WARN: CountExpectation | None = None
    SKIP: CountExpectation | None = None
    ERROR: CountExpectation | None = None


class ExpectSpec(_Spec):
    """What must hold after the run; every key is optional, at least one is required."""

    verdicts: dict[str, VerdictExpectation] = {}
    """Probe name or glob (``"dkl-*"``) to the allowed verdict(s); ``"__preflight__"`` names
    the ERROR a failed preflight leaves."""
    verdict_counts: VerdictCounts | None = None
    """Number of probes per verdict."""
    no_false_pass: bool | None = None
    """No PASS rests on an answer an output-corrupting fault changed; no PASS after abort."""
    aborted: bool | None = None
    """Whether preflight aborted the suite."""
    cancelled: bool | None = None
    """Whether ``runner.cancel_after`` cancelled the suite before it finished."""
    peak_live_views: CountExpectation | None = None
    """Most views live at once."""
    view_switches: CountExpectation | None = None
    """Adapter switches (preflight included): entries into a view other than the previous one
    on an exclusive backend, first entries of each view on a concurrent-safe one."""
    makespan: SecondsExpectation | None = None
    """Virtual seconds from start to finish (or to cancellation)."""
    faults_fired: dict[str, CountExpectation] = {}
    """Firings per fault rule name."""
    retries: CountExpectation | None = None
    """Retries the runner made."""
    timeouts: CountExpectation | None = None
    """Op and probe timeouts the runner counted."""
    gate_free: bool | None = None
    """No view live and nobody waiting at the end."""
    identical_across_loops: bool | None = None
    """Results (without timing) identical on asyncio and trio."""

    @model_validator(mode="after")
    def _something(self) -> ExpectSpec:
        if not self.model_fields_set - {"verdicts", "faults_fired"} and not (
            self.verdicts or self.faults_fired
        ):
            raise ValueError("no expectations: a scenario must say what must hold afterwards")
        return self


class ScenarioSpec(_Spec):
    """A swaysim scenario: a backend, a probe suite, a runner and what must hold afterwards."""

    model_config = ConfigDict(title="swaysim scenario")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Short name; defaults to the file name without ``.toml``."""
    description: Annotated[str, Field(min_length=1)]
    """The question this scenario answers."""
    seed: Seed = 0
    """Seed of every plan and the runner unless they set their own."""
    backend: BackendSpec = BackendSpec()
    probes: Annotated[list[ProbeSpec], Field(min_length=1)]
    runner: RunnerSpec = RunnerSpec()
    expect: ExpectSpec

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank: say what question the scenario answers")
        return value


def _without_null(node: Any) -> Any:
    """TOML has no null: an optional key is simply absent, so drop null from the schema."""
    if isinstance(node, list):
        return [_without_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _without_null(value) for key, value in node.items()}
    if out.get("default", 0) is None:
        del out["default"]
    elif isinstance(out.get("default"), dict):
        out["default"] = {k: v for k, v in out["default"].items() if v is not None}
    options = out.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            del out["anyOf"]
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    return out


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, for editor completion (``swaysim schema``)."""
    schema = _without_null(ScenarioSpec.model_json_schema())
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


# -- error messages -------------------------------------------------------------------


def _show(value: object) -> str:
    """A short, TOML-flavoured rendering of a bad value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        digits = str(value)
        return digits if abs(value) < 10**30 else f"{digits[:12]}... ({len(digits)} digits)"
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else {"nan": "nan", "inf": "inf"}.get(repr(value), repr(value))
        )
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, dict | list):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = ""
        if text and len(text) <= 60:
            return text
        return "a table" if isinstance(value, dict) else f"an array of {len(value)} items"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return type(value).__name__


def toml_key(key: str) -> str:
    """A key as written in a TOML key path: bare when it can be, quoted otherwise."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types behind Annotated/Optional/Union wrappers."""
    if typing.get_origin(tp) is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [tp]


def _tag_member(members: list[Any], segment: object) -> type[BaseModel] | None:
    if not isinstance(segment, str) or len(members) < 2:
        return None
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field in member.model_fields.values():
                if typing.get_origin(field.annotation) is Literal and segment in typing.get_args(
                    field.annotation
                ):
                    return member
    return None


def _walk(loc: Sequence[int | str]) -> tuple[str, Any]:
    """The TOML key path for a pydantic ``loc`` and the type found there."""
    tp: Any = ScenarioSpec
    path = ""
    for segment in loc:
        members = _unwrap(tp) if tp is not None else []
        tagged = _tag_member(members, segment)
        if tagged is not None:
            tp = tagged
            continue
        current = members[0] if len(members) == 1 else None
        if isinstance(segment, int):
            path += f"[{segment}]"
        else:
            key = toml_key(segment)
            path += f".{key}" if path else key
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(segment))
            tp = field.annotation if field is not None else None
        elif typing.get_origin(current) in (list, dict):
            tp = typing.get_args(current)[-1]
        else:
            tp = None
    return path, tp


def _length_bounds(tp: Any) -> tuple[int | None, int | None]:
    """The min/max length an Annotated list type declares, if any."""
    low = high = None
    pending = [tp]
    while pending:
        current = pending.pop()
        if typing.get_origin(current) is Annotated:
            inner, *metadata = typing.get_args(current)
            for item in metadata:
                for constraint in (item, *getattr(item, "metadata", ())):
                    low = getattr(constraint, "min_length", low)
                    high = getattr(constraint, "max_length", high)
            pending.append(inner)
        elif typing.get_origin(current) in (Union, types.UnionType):
            pending.extend(typing.get_args(current))
    return low, high


def _model_at(tp: Any) -> type[BaseModel] | None:
    members = [m for m in _unwrap(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
    return members[0] if len(members) == 1 else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'probability'?"`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


_REASONS: Final[dict[str, str]] = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "finite_number": "must be finite",
    "string_too_short": "must not be empty",
}


def _problem(error: Any) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        path, _ = _walk(loc)
        parent = _model_at(_walk(loc[:-1])[1]) if loc[:-1] else ScenarioSpec
        allowed = list(parent.model_fields) if parent is not None else []
        hint = did_you_mean(str(loc[-1]), allowed)
        if not hint and allowed:
            hint = f"; allowed keys: {', '.join(allowed)}"
        return f"{path}: unknown key{hint}"
    path, tp = _walk(loc)
    where = path or "(top level)"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "union_tag_not_found":
        tag = ctx.get("discriminator", "'kind'").strip("'")
        return f"{where}: required key {tag!r} is missing"
    if kind == "union_tag_invalid":
        tag_key = ctx.get("discriminator", "'kind'").strip("'")
        expected = ctx.get("expected_tags", "")
        tags = [t.strip().strip("'") for t in expected.split(",")]
        hint = did_you_mean(str(ctx.get("tag", "")), tags)
        # pydantic's ctx holds the tag as a string; show the value as written (5, not "5").
        tag = value.get(tag_key, ctx.get("tag")) if isinstance(value, dict) else ctx.get("tag")
        return f"{where}.{tag_key}: {_show(tag)} is not allowed: must be one of {expected}{hint}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        tags = re.findall(r"'([^']*)'", expected)
        hint = did_you_mean(value, tags) if isinstance(value, str) else ""
        return f"{where}: {_show(value)} is not allowed: must be one of {expected}{hint}"
    if kind in ("value_error", "assertion_error"):
        reason = str(ctx.get("error", error.get("msg", "")))
        if isinstance(value, dict):
            return f"{where}: {reason}"
        return f"{where}: {_show(value)} is not allowed: {reason}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        symbol = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        return f"{where}: {_show(value)} is not allowed: must be {symbol} {_show(bound)}"
    if kind in ("too_short", "too_long"):
        low, high = _length_bounds(tp)
        if low is not None and low == high:
            reason = f"must have exactly {low} items"
        elif kind == "too_short":
            reason = f"must have at least {ctx.get('min_length')} item(s)"
        else:
            reason = f"must have at most {ctx.get('max_length')} items"
        return f"{where}: {_show(value)} is not allowed: {reason}"
    if kind == "string_pattern_mismatch":
        return f'{where}: {_show(value)} is not allowed: must look like "package.module:function"'
    model = _model_at(tp)
    if kind in ("model_type", "model_attributes_type", "dict_type") and model in (
        CountBounds,
        SecondsBounds,
    ):
        number = "an integer" if model is CountBounds else "a number of seconds"
        reason = f"must be {number} or a table with at_least and/or at_most"
    elif kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        reason = "is too large for a number"
    else:
        reason = _REASONS.get(kind) or _lower_first(str(error.get("msg", kind)))
    return f"{where}: {_show(value)} is not allowed: {reason}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _problems(exc: ValidationError) -> list[str]:
    errors = exc.errors(include_url=False)
    # An unknown key is usually why a required one is "missing": report it first, and
    # drop the "missing" a misspelling explains.
    unknown: dict[tuple[int | str, ...], list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            unknown.setdefault(tuple(error["loc"][:-1]), []).append(str(error["loc"][-1]))

    def explained(error: Any) -> bool:
        loc = tuple(error["loc"])
        typos = unknown.get(loc[:-1], [])
        return bool(difflib.get_close_matches(str(loc[-1]), typos, n=1, cutoff=0.6))

    kept = [e for e in errors if not (e["type"] == "missing" and explained(e))]
    kept.sort(key=lambda e: 0 if e["type"] == "extra_forbidden" else 1)
    return [_problem(e) for e in kept]


# -- parsing --------------------------------------------------------------------------


def _nesting(value: object, path: str, depth: int = 0) -> str | None:
    """The key path of the first value nested deeper than MAX_NESTING, if any."""
    if depth > MAX_NESTING:
        return path or "(top level)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nesting(item, f"{path}.{toml_key(key)}" if path else toml_key(key), depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nesting(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
    return None


_API_FIELD: Final = re.compile(r"^(?:[A-Z]\w*\.)?([a-z_][a-z0-9_]*)(?=[=\s:\[])")
_API_ASSIGNMENT: Final = re.compile(r"\b([a-z_][a-z0-9_]*)=")
_TOML_POSITION: Final = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$", re.DOTALL)


def _decode(data: bytes, source: str) -> dict[str, Any]:
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(
            source,
            [f"file is {len(data):,} bytes; a scenario may be at most {MAX_FILE_BYTES:,} bytes"],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise ScenarioError(
            source, [f"not UTF-8 text: byte 0x{byte:02x} at offset {exc.start} cannot be decoded"]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise ScenarioError(
            source,
            ["empty file: a scenario needs at least a description, [[probes]] and [expect]"],
        )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.match(message)
        if match:
            what, line, column = match.groups()
            raise ScenarioError(
                source, [f"line {line}, column {column}: invalid TOML: {what}"]
            ) from None
        raise ScenarioError(source, [f"invalid TOML: {message}"]) from None
    except RecursionError:
        raise ScenarioError(
            source,
            [f"invalid TOML: nested too deeply to parse (a scenario allows {MAX_NESTING} levels)"],
        ) from None
    if not document:
        raise ScenarioError(
            source, ["no keys: a scenario needs at least a description, [[probes]] and [expect]"]
        )
    deep = _nesting(document, "")
    if deep is not None:
        raise ScenarioError(source, [f"{deep}: nested more than {MAX_NESTING} levels deep"])
    return document


def _spec(document: dict[str, Any], source: str) -> ScenarioSpec:
    try:
        return ScenarioSpec.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(source, _problems(exc)) from None


# -- building -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpandedProbe:
    """One probe after ``repeat`` expansion: where it came from and its constructor arguments."""

    path: str
    kind: str
    name: str
    kwargs: dict[str, Any]


def _substitute(value: Any, index: int) -> Any:
    if isinstance(value, str):
        return value.replace("{i}", str(index))
    if isinstance(value, list):
        return [_substitute(v, index) for v in value]
    return value


def _expand(specs: Sequence[_ProbeSpec]) -> list[ExpandedProbe]:
    out = []
    for index, spec in enumerate(specs):
        fields = spec.model_dump(exclude_unset=True, exclude={"kind", "name", "repeat"})
        kind = str(getattr(spec, "kind"))  # noqa: B009 - every concrete probe spec has one
        path = f"probes[{index}]"
        if spec.repeat is None:
            out.append(ExpandedProbe(path, kind, spec.name, fields))
            continue
        for item in range(spec.repeat):
            kwargs = {key: _substitute(value, item) for key, value in fields.items()}
            out.append(ExpandedProbe(path, kind, f"{spec.name}-{item}", kwargs))
    return out


def _latency_model(spec: ConstantSpec | UniformSpec | LogNormalSpec) -> LatencyModel:
    fields = spec.model_dump(exclude={"model"})
    if isinstance(spec, ConstantSpec):
        return Constant(**fields)
    if isinstance(spec, UniformSpec):
        return Uniform(**fields)
    return LogNormal(**fields)


_LATENCY_SLOTS: Final = tuple(k for k in LatencyPlanSpec.model_fields if k not in {"seed", "rules"})
"""The plan's latency models other than rules: ``default``, ``view_switch``..."""


class _Builder:
    """Builds API objects from specs, turning an InvalidArgumentError into a key-path problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def attempt(
        self,
        path: str,
        spec: type[BaseModel],
        build: Callable[..., _T],
        *args: Any,
        **kwargs: Any,
    ) -> _T:
        """``build(*args, **kwargs)``; an API complaint names the key it is about."""
        try:
            return build(*args, **kwargs)
        except InvalidArgumentError as exc:
            message = str(exc)
            # "Uniform.high=...", "FaultRule.ops contains...", "probe name=''...": the key.
            for found in (_API_FIELD.match(message), _API_ASSIGNMENT.search(message)):
                if found and found.group(1) in spec.model_fields:
                    path = f"{path}.{found.group(1)}"
                    break
            raise ScenarioError(self.source, [f"{path}: {message}"]) from None

    def latency(self, spec: LatencyPlanSpec, seed: int) -> LatencyPlan:
        path = "backend.latency"
        models: dict[str, LatencyModel | None] = {}
        for slot in _LATENCY_SLOTS:
            model = getattr(spec, slot)
            models[slot] = (
                None
                if model is None
                else self.attempt(f"{path}.{slot}", type(model), _latency_model, model)
            )
        rules = []
        for index, rule in enumerate(spec.rules):
            where = f"{path}.rules[{index}]"
            model = rule.model
            latency = self.attempt(f"{where}.model", type(model), _latency_model, model)
            rules.append(
                self.attempt(
                    where, LatencyRuleSpec, LatencyRule, latency, tuple(rule.ops), tuple(rule.views)
                )
            )
        plan_seed = spec.seed if spec.seed is not None else seed
        return self.attempt(
            path, LatencyPlanSpec, LatencyPlan, seed=plan_seed, rules=tuple(rules), **models
        )

    def faults(self, spec: FaultPlanSpec, seed: int) -> FaultPlan:
        path = "backend.faults"
        rules = []
        for index, rule in enumerate(spec.rules):
            fields = rule.model_dump(exclude_unset=True)
            for key in ("ops", "views", "window"):
                if key in fields:
                    fields[key] = tuple(fields[key])
            rules.append(self.attempt(f"{path}.rules[{index}]", FaultRuleSpec, FaultRule, **fields))
        plan_seed = spec.seed if spec.seed is not None else seed
        return self.attempt(path, FaultPlanSpec, FaultPlan, tuple(rules), seed=plan_seed)

    def responses(self, spec: ResponsesSpec, path: str) -> DummyResponses:
        rolling = {}
        for text, item in spec.rolling.items():
            logprobs = np.asarray(item.logprobs, dtype=np.float32)
            total = item.total_logprob
            rolling[text] = RollingLogprob(
                np.asarray(item.token_ids, dtype=np.int64),
                logprobs,
                item.num_tokens if item.num_tokens is not None else len(item.token_ids),
                float(logprobs.sum()) if total is None else total,
            )
        dists = {
            prompt: TokenDist(
                np.asarray(item.token_ids, dtype=np.int64),
                np.asarray(item.logprobs, dtype=np.float32),
                item.vocab_size,
                item.tail_logprob,
            )
            for prompt, item in spec.token_dists.items()
        }
        return self.attempt(
            path,
            ResponsesSpec,
            DummyResponses,
            generations=dict(spec.generations),
            logprobs={(e.prompt, e.completion): e.logprob for e in spec.logprobs},
            rolling=rolling,
            token_dists=dists,
        )

    def probe(self, item: ExpandedProbe) -> Probe:
        cls = PROBE_CLASSES[item.kind]
        kwargs = dict(item.kwargs)
        if "triples" in kwargs:
            kwargs["triples"] = [tuple(t) for t in kwargs["triples"]]
        return self.attempt(item.path, PROBE_SPECS[item.kind], cls, item.name, **kwargs)


def _check_references(spec: ScenarioSpec, probes: Sequence[ExpandedProbe], source: str) -> None:
    problems: list[str] = []
    first: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for probe in probes:
        if probe.name in first:
            problems.append(
                f"{probe.path}.name: {_show(probe.name)} is not allowed: probe names must be "
                f"unique ({first[probe.name]} already uses it)"
            )
        first.setdefault(probe.name, probe.path)
        kinds[probe.name] = probe.kind
    nulls = [name for name, kind in kinds.items() if kind == "null_adapter"]
    numeric = [name for name, kind in kinds.items() if kind in NUMERIC_KINDS]
    for probe in probes:
        null = probe.kwargs.get("null")
        if null is not None and kinds.get(null) != "null_adapter":
            problems.append(
                f"{probe.path}.null: {_show(null)} is not allowed: must name a null_adapter probe "
                f"in the suite{did_you_mean(null, nulls)}"
            )
        target = probe.kwargs.get("target")
        if probe.kind == "null_adapter" and kinds.get(target or "") not in NUMERIC_KINDS:
            problems.append(
                f"{probe.path}.target: {_show(target)} is not allowed: must name a delta_kl, "
                f"preference_flip or perplexity_shift probe in the suite"
                f"{did_you_mean(str(target), numeric)}"
            )
    names = list(first)
    for pattern in spec.expect.verdicts:
        # The preflight result is matched only by a pattern that asks for it ("__...").
        candidates = [*names, "__preflight__"] if pattern.startswith("__") else names
        if not any(fnmatch.fnmatchcase(name, pattern) for name in candidates):
            problems.append(
                f"expect.verdicts.{toml_key(pattern)}: matches no probe in the suite"
                f"{did_you_mean(pattern, names)}"
            )
    faults = spec.backend.faults
    rules = (
        [rule.name or f"{rule.kind}#{i}" for i, rule in enumerate(faults.rules)] if faults else []
    )
    for rule_name in spec.expect.faults_fired:
        if rule_name not in rules:
            known = (
                f" (rules: {', '.join(rules)})" if rules else " (the scenario has no fault rules)"
            )
            problems.append(
                f"expect.faults_fired.{toml_key(rule_name)}: names no fault rule"
                f"{did_you_mean(rule_name, rules) or known}"
            )
    runner = spec.runner
    if runner.options and runner.runner is None:
        problems.append(
            'runner.options: only a custom runner (runner = "module:function") takes options'
        )
    if spec.expect.cancelled is not None and runner.cancel_after is None:
        problems.append("expect.cancelled: needs runner.cancel_after (when to cancel the suite)")
    if problems:
        raise ScenarioError(source, problems)


def _import_runner(target: str, source: str, folder: Path | None) -> Callable[..., Any]:
    """Import ``module:function``; the scenario's folder is searched after sys.path."""
    module_name, _, attribute = target.partition(":")
    added = False
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if folder is None or exc.name != module_name.partition(".")[0]:
                raise
            sys.path.append(str(folder))
            added = True
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise ScenarioError(
            source,
            [f"runner.runner: cannot import {module_name!r}: {type(exc).__name__}: {exc}"],
        ) from None
    finally:
        if added:
            sys.path.remove(str(folder))
    function = getattr(module, attribute, None)
    if function is None:
        raise ScenarioError(
            source,
            [
                f"runner.runner: module {module_name!r} has no attribute {attribute!r}"
                f"{did_you_mean(attribute, [n for n in dir(module) if not n.startswith('_')])}"
            ],
        )
    if not callable(function):
        raise ScenarioError(source, [f"runner.runner: {target!r} is not callable"])
    return function  # type: ignore[no-any-return]


# -- the scenario ---------------------------------------------------------------------

_RUN_SUITE_KEYS: Final = tuple(
    key for key in RunnerSpec.model_fields if key not in {"runner", "cancel_after", "options"}
)
"""The ``[runner]`` keys that are ``run_suite`` keyword arguments."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, ready to build fresh backends and probes for each run."""

    spec: ScenarioSpec
    source: str
    """How messages name the file (the path as given)."""
    path: Path | None
    probe_plan: tuple[ExpandedProbe, ...]
    runner_function: Callable[..., Any] | None

    @property
    def name(self) -> str:
        """The scenario's name (its file name without ``.toml`` unless set)."""
        if self.spec.name is not None:
            return self.spec.name
        if self.path is not None:
            return self.path.stem
        return Path(self.source).stem if self.source.endswith(".toml") else "scenario"

    @property
    def description(self) -> str:
        """The question the scenario answers."""
        return self.spec.description.strip()

    @property
    def seed(self) -> int:
        """The scenario seed."""
        return self.spec.seed

    @property
    def probe_names(self) -> tuple[str, ...]:
        """Every probe name after ``repeat`` expansion, in declaration order."""
        return tuple(p.name for p in self.probe_plan)

    def build_backend(
        self,
        seed: int | None = None,
        *,
        trace: TraceSink | None = None,
        schedule_jitter: int | None = None,
    ) -> AsyncDummyDifferentialBackend:
        """A fresh backend; plan seeds default to ``seed`` (the scenario seed when None).

        ``schedule_jitter`` overrides ``[backend] schedule_jitter`` (None keeps the file's).
        """
        seed = self.seed if seed is None else seed
        return _build_backend(self.spec.backend, seed, self.source, trace, schedule_jitter)

    def schedule_jitter(self, override: int | None = None) -> int | None:
        """The jitter seed a run uses: ``override``, else ``[backend] schedule_jitter``."""
        return self.spec.backend.schedule_jitter if override is None else override

    def build_probes(self) -> list[Probe]:
        """Fresh probe objects (a null adapter binds to its target, so never reuse them)."""
        builder = _Builder(self.source)
        return [builder.probe(item) for item in self.probe_plan]

    def runner_options(self, seed: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``run_suite`` (or for the custom runner)."""
        seed = self.seed if seed is None else seed
        spec = self.spec.runner
        if self.runner_function is None:
            options = {key: getattr(spec, key) for key in _RUN_SUITE_KEYS}
            if spec.seed is None:
                options["seed"] = seed
            return options
        options = {
            key: getattr(spec, key) for key in _RUN_SUITE_KEYS if key in spec.model_fields_set
        }
        options.update(spec.options)
        if "seed" not in options and _accepts(self.runner_function, "seed"):
            options["seed"] = seed
        return options

    def replay_command(
        self, loop: str, seed: int | None = None, *, schedule_jitter: int | None = None
    ) -> str:
        """The exact command that replays this scenario on ``loop`` (with its jitter seed)."""
        seed = self.seed if seed is None else seed
        command = f"swaysim run {shlex.quote(self.source)} --backend {loop} --seed {seed}"
        jitter = self.schedule_jitter(schedule_jitter)
        return command if jitter is None else f"{command} --jitter {jitter}"

    def __repr__(self) -> str:
        return (
            f"<Scenario {self.name!r} from {self.source!r}: {len(self.probe_plan)} probes, "
            f"seed {self.seed}>"
        )


def _build_backend(
    spec: BackendSpec,
    seed: int,
    source: str,
    trace: TraceSink | None,
    schedule_jitter: int | None = None,
) -> AsyncDummyDifferentialBackend:
    builder = _Builder(source)
    kwargs: dict[str, Any] = spec.model_dump(
        exclude_unset=True, exclude={"base", "ft", "latency", "faults"}
    )
    if schedule_jitter is not None:
        kwargs["schedule_jitter"] = schedule_jitter
    if spec.base is not None:
        kwargs["base"] = builder.responses(spec.base, "backend.base")
    if spec.ft is not None:
        kwargs["ft"] = builder.responses(spec.ft, "backend.ft")
    if spec.latency is not None:
        kwargs["latency"] = builder.latency(spec.latency, seed)
    if spec.faults is not None:
        kwargs["faults"] = builder.faults(spec.faults, seed)
    return builder.attempt(
        "backend", BackendSpec, AsyncDummyDifferentialBackend, trace=trace, **kwargs
    )


def _as_toml_value(value: Any) -> Any:
    """Python tuples become arrays, as TOML would have them."""
    if isinstance(value, dict):
        return {key: _as_toml_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_toml_value(item) for item in value]
    return value


def backend_from_table(
    table: Mapping[str, Any],
    *,
    seed: int = 0,
    source: str = "backend table",
    trace: TraceSink | None = None,
) -> AsyncDummyDifferentialBackend:
    """A backend from the keys of a scenario's ``[backend]`` table, given as Python values.

    What the pytest marker ``@pytest.mark.swaysim(backend={...})`` uses; problems are
    reported like a scenario's (``backend.latency.default.sigma: ...``).
    """
    if not isinstance(table, Mapping):
        raise ScenarioError(source, [f"backend: {_show(table)} is not allowed: must be a table"])
    try:
        spec = BackendSpec.model_validate(_as_toml_value(dict(table)))
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            error["loc"] = ("backend", *error["loc"])
            problems.append(_problem(error))
        raise ScenarioError(source, problems) from None
    return _build_backend(spec, seed, source, trace)


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def parse_scenario(
    data: bytes | str, *, source: str = "<scenario>", path: Path | None = None
) -> Scenario:
    """Validate a scenario document and build it once (so API errors surface now)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    document = _decode(raw, source)
    spec = _spec(document, source)
    plan = tuple(_expand(spec.probes))
    _check_references(spec, plan, source)
    function = None
    if spec.runner.runner is not None:
        folder = path.resolve().parent if path is not None else None
        function = _import_runner(spec.runner.runner, source, folder)
    scenario = Scenario(spec, source, path, plan, function)
    scenario.build_backend()
    scenario.build_probes()
    return scenario


def load_scenario(path: str | Path, *, source: str | None = None) -> Scenario:
    """Read and validate one scenario file; raises :class:`ScenarioError` (never a traceback).

    ``source`` is how messages and replay commands name the file (default: ``path``).
    """
    file = Path(path)
    source = str(path) if source is None else source
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_scenario(data, source=source, path=file)


def _is_scenario_file(path: Path) -> bool:
    return path.suffix == ".toml" and path.name != "pyproject.toml" and path.is_file()


def discover_scenarios(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Scenario files among ``paths``: files as given, folders searched for ``*.toml``."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        found = (
            sorted(p for p in path.rglob("*.toml") if _is_scenario_file(p))
            if path.is_dir()
            else [path]
        )
        for item in found:
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                yield item
