"""From validated specs to API objects: backends, plans and probes.

Every object is built by the Python API itself, so a scenario can never mean
something the API would refuse. When the API refuses anyway (a rule the
schema cannot express, such as ``high >= low``), its
:class:`~swaysim.errors.InvalidArgumentError` carries the argument it is
about as data (``field``); :func:`api_key_path` maps that onto the scenario's
key path, so the problem names the key the author wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

import numpy as np
from pydantic import ValidationError

from swaysim._backend.backend import AsyncDummyDifferentialBackend
from swaysim._chaos.faults import FaultPlan, FaultRule
from swaysim._chaos.latency import Constant, LatencyPlan, LatencyRule, LogNormal, Uniform
from swaysim._runner.calibration import NullAdapter
from swaysim._runner.probes import FunctionProbe
from swaysim._runner.reference_probes import (
    AdapterAblation,
    DeltaKL,
    PerplexityShift,
    PreferenceFlip,
)
from swaysim._scenario.messages import (
    Problem,
    join_key,
    scenario_error,
    show_value,
    validation_problems,
)
from swaysim._scenario.schema import (
    PROBE_SPECS,
    BackendSpec,
    ConstantSpec,
    FaultPlanSpec,
    FaultRuleSpec,
    FunctionProbeSpec,
    LatencyPlanSpec,
    LatencyRuleSpec,
    LogNormalSpec,
    ProbeSpecBase,
    ResponsesSpec,
    UniformSpec,
)
from swaysim._types import DummyResponses, RollingLogprob, TokenDist
from swaysim.errors import InvalidArgumentError, SwaysimError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pydantic import BaseModel

    from swaysim._chaos.latency import LatencyModel
    from swaysim._runner.probes import Probe
    from swaysim._trace.events import TraceSink

__all__ = [
    "PROBE_CLASSES",
    "BuildRefused",
    "ExpandedProbe",
    "api_key_path",
    "backend_from_table",
    "backend_options",
    "backend_refusal",
    "backend_spec_from_table",
    "build_backend",
    "build_probe",
    "expand_probes",
    "probe_refusal",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

PROBE_CLASSES: Final[dict[str, type[Probe] | type[FunctionProbe]]] = {
    "delta_kl": DeltaKL,
    "adapter_ablation": AdapterAblation,
    "null_adapter": NullAdapter,
    "preference_flip": PreferenceFlip,
    "perplexity_shift": PerplexityShift,
    "function": FunctionProbe,
}
_LATENCY_MODELS: Final[dict[type[BaseModel], Callable[..., LatencyModel]]] = {
    ConstantSpec: Constant,
    UniformSpec: Uniform,
    LogNormalSpec: LogNormal,
}
_LATENCY_SLOTS: Final = tuple(k for k in LatencyPlanSpec.model_fields if k not in {"seed", "rules"})
"""The plan's latency models other than rules: ``default``, ``view_switch``..."""


# -- an API complaint, located --------------------------------------------------------


def _field_segments(field: str) -> list[str | int] | None:
    """``"rules[1].nth"`` as ``["rules", 1, "nth"]``; None if ``field`` is not such a path."""
    segments: list[str | int] = []
    for part in field.split("."):
        name, *indexes = part.split("[")
        if not name.isidentifier():
            return None
        segments.append(name)
        for index in indexes:
            digits = index.removesuffix("]")
            if digits == index or not digits.isdigit():
                return None
            segments.append(int(digits))
    return segments


def api_key_path(table: str, spec: type[BaseModel], api: object, field: str | None) -> str:
    """The scenario key an API complaint is about: ``table`` extended by its ``field``.

    ``field`` is the API's argument path (``"rules[1].nth"``), possibly qualified
    by the class that complained (``"FaultRule.window"``); since scenario keys are
    the API's argument names, it extends the key path of the table that built
    ``api``. The table's own path stands when there is no field, or when the
    field names no key of the table's ``spec`` (an argument a scenario cannot set).
    """
    segments = _field_segments(field) if field else None
    if segments and segments[0] == getattr(api, "__name__", None):
        segments = segments[1:]
    if not segments or segments[0] not in spec.model_fields:
        return table
    path = table
    for segment in segments:
        path = join_key(path, segment)
    return path


# -- probes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpandedProbe:
    """One probe after ``repeat`` expansion: where it came from and its constructor arguments."""

    path: str
    kind: str
    name: str
    kwargs: dict[str, Any]
    """Constructor keyword arguments, as validated (a probe class checks their types)."""


def _substitute(value: object, index: int) -> object:
    if isinstance(value, str):
        return value.replace("{i}", str(index))
    if isinstance(value, list):
        return [_substitute(v, index) for v in value]
    return value


def expand_probes(specs: Sequence[ProbeSpecBase]) -> list[ExpandedProbe]:
    """Every ``[[probes]]`` table as probes: ``repeat = N`` makes N, ``{i}`` substituted."""
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


# -- building ---------------------------------------------------------------------------


class BuildRefused(Exception):
    """The Python API refused a value the schema let through; ``problem`` says where and why.

    Internal: the public builders turn it into a :class:`~swaysim.errors.ScenarioError`;
    the loader collects it with every other problem of the file.
    """

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Builder:
    """Builds API objects from specs, turning an InvalidArgumentError into a key-path problem."""

    def attempt(
        self,
        table: str,
        spec: type[BaseModel],
        build: Callable[_P, _T],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``build(*args, **kwargs)`` for the ``table`` that ``spec`` validated."""
        try:
            return build(*args, **kwargs)
        except InvalidArgumentError as exc:
            key = api_key_path(table, spec, build, exc.field)
            raise BuildRefused(Problem(key, str(exc))) from None

    def latency_model(self, table: str, spec: BaseModel) -> LatencyModel:
        api = _LATENCY_MODELS[type(spec)]
        return self.attempt(table, type(spec), api, **spec.model_dump(exclude={"model"}))

    def latency(self, spec: LatencyPlanSpec, seed: int) -> LatencyPlan:
        table = "backend.latency"
        models: dict[str, LatencyModel | None] = {}
        for slot in _LATENCY_SLOTS:
            model = getattr(spec, slot)
            models[slot] = None if model is None else self.latency_model(f"{table}.{slot}", model)
        rules = []
        for index, rule in enumerate(spec.rules):
            where = f"{table}.rules[{index}]"
            latency = self.latency_model(f"{where}.model", rule.model)
            ops, views = tuple(rule.ops), tuple(rule.views)
            rules.append(self.attempt(where, LatencyRuleSpec, LatencyRule, latency, ops, views))
        plan_seed = spec.seed if spec.seed is not None else seed
        return self.attempt(
            table, LatencyPlanSpec, LatencyPlan, seed=plan_seed, rules=tuple(rules), **models
        )

    def faults(self, spec: FaultPlanSpec, seed: int) -> FaultPlan:
        table = "backend.faults"
        rules = []
        for index, rule in enumerate(spec.rules):
            fields = rule.model_dump(exclude_unset=True)
            for key in ("ops", "views", "window"):
                if key in fields:
                    fields[key] = tuple(fields[key])
            rules.append(
                self.attempt(f"{table}.rules[{index}]", FaultRuleSpec, FaultRule, **fields)
            )
        plan_seed = spec.seed if spec.seed is not None else seed
        return self.attempt(table, FaultPlanSpec, FaultPlan, tuple(rules), seed=plan_seed)

    def responses(self, spec: ResponsesSpec, table: str) -> DummyResponses:
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
            table,
            ResponsesSpec,
            DummyResponses,
            generations=dict(spec.generations),
            logprobs={(e.prompt, e.completion): e.logprob for e in spec.logprobs},
            rolling=rolling,
            token_dists=dists,
        )

    def options(self, spec: BackendSpec, seed: int, schedule_jitter: int | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = spec.model_dump(
            exclude_unset=True, exclude={"base", "ft", "latency", "faults"}
        )
        if schedule_jitter is not None:
            kwargs["schedule_jitter"] = schedule_jitter
        if spec.base is not None:
            kwargs["base"] = self.responses(spec.base, "backend.base")
        if spec.ft is not None:
            kwargs["ft"] = self.responses(spec.ft, "backend.ft")
        if spec.latency is not None:
            kwargs["latency"] = self.latency(spec.latency, seed)
        if spec.faults is not None:
            kwargs["faults"] = self.faults(spec.faults, seed)
        return kwargs

    def backend(
        self,
        spec: BackendSpec,
        seed: int,
        trace: TraceSink | None,
        schedule_jitter: int | None,
    ) -> AsyncDummyDifferentialBackend:
        kwargs = self.options(spec, seed, schedule_jitter)
        return self.attempt(
            "backend", BackendSpec, AsyncDummyDifferentialBackend, trace=trace, **kwargs
        )

    def probe(
        self, item: ExpandedProbe, functions: Mapping[str, Callable[..., object]] | None
    ) -> Probe | FunctionProbe:
        kwargs = dict(item.kwargs)
        if item.kind == "function":
            text, options = kwargs.pop("function"), kwargs.pop("options", {})
            func: Any = functions[item.path] if functions is not None else _not_imported(text)
            if options:
                func = functools.partial(func, **options)
            return self.attempt(
                item.path, FunctionProbeSpec, FunctionProbe, item.name, func, **kwargs
            )
        if "triples" in kwargs:
            kwargs["triples"] = [tuple(t) for t in kwargs["triples"]]
        api = PROBE_CLASSES[item.kind]
        return cast(
            "Probe", self.attempt(item.path, PROBE_SPECS[item.kind], api, item.name, **kwargs)
        )


def build_backend(
    spec: BackendSpec,
    seed: int,
    *,
    source: str,
    trace: TraceSink | None = None,
    schedule_jitter: int | None = None,
) -> AsyncDummyDifferentialBackend:
    """A fresh backend from ``[backend]``; plan seeds default to ``seed``.

    ``schedule_jitter`` overrides the table's (None keeps it).
    """
    try:
        return _Builder().backend(spec, seed, trace, schedule_jitter)
    except BuildRefused as exc:
        raise scenario_error(source, [exc.problem]) from None


def backend_options(
    spec: BackendSpec, seed: int, *, source: str, schedule_jitter: int | None = None
) -> dict[str, Any]:
    """The keyword arguments ``AsyncDummyDifferentialBackend(...)`` takes for ``[backend]``.

    What :func:`build_backend` passes, for a caller that builds the backend
    itself (the dlm-sway drop-in); canned ``base`` and ``ft`` answers
    included when the table has them. The arguments are checked when the
    backend is built, not here.
    """
    try:
        return _Builder().options(spec, seed, schedule_jitter)
    except BuildRefused as exc:
        raise scenario_error(source, [exc.problem]) from None


def _not_imported(text: str) -> Callable[..., object]:
    """What a function probe holds until its callable is imported (validation builds it)."""

    def not_imported(*args: object, **kwargs: object) -> object:
        message = (
            f"function probe {text!r} was built for validation only; build the scenario's "
            "probes with Scenario.build_probes(), which imports it"
        )
        raise SwaysimError(message)

    return not_imported


def build_probe(
    item: ExpandedProbe,
    *,
    source: str,
    functions: Mapping[str, Callable[..., object]] | None = None,
) -> Probe | FunctionProbe:
    """A fresh probe object (a null adapter binds to its target, so never reuse one).

    ``functions`` holds each function probe's imported callable by table path
    (``probes[2]``); without it a function probe holds a stand-in that must never run.
    """
    try:
        return _Builder().probe(item, functions)
    except BuildRefused as exc:
        raise scenario_error(source, [exc.problem]) from None


def backend_refusal(spec: BackendSpec, seed: int) -> Problem | None:
    """What the Python API refuses in a valid ``[backend]`` table, if anything."""
    try:
        _Builder().backend(spec, seed, None, None)
    except BuildRefused as exc:
        return exc.problem
    return None


def probe_refusal(item: ExpandedProbe) -> Problem | None:
    """What the Python API refuses in a valid ``[[probes]]`` entry, if anything."""
    try:
        _Builder().probe(item, None)
    except BuildRefused as exc:
        return exc.problem
    return None


def _as_toml_value(value: object) -> object:
    """Python tuples become arrays, as TOML would have them."""
    if isinstance(value, Mapping):
        return {key: _as_toml_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_toml_value(item) for item in value]
    return value


def backend_from_table(
    table: object,
    *,
    seed: int = 0,
    source: str = "backend table",
    trace: TraceSink | None = None,
) -> AsyncDummyDifferentialBackend:
    """A backend from the keys of a scenario's ``[backend]`` table, given as Python values.

    What the pytest marker ``@pytest.mark.swaysim(backend={...})`` uses: ``table`` is
    whatever the test wrote, so anything but a mapping is a problem too. Problems are
    reported like a scenario's (``backend.latency.default.sigma: ...``).
    """
    spec = backend_spec_from_table(table, source=source)
    return build_backend(spec, seed, source=source, trace=trace)


def backend_spec_from_table(table: object, *, source: str) -> BackendSpec:
    """A ``[backend]`` table given as Python values, validated as a scenario's is."""
    if not isinstance(table, Mapping):
        message = f"{show_value(table)} is not allowed: must be a table"
        raise scenario_error(source, [Problem("backend", message)])
    try:
        return BackendSpec.model_validate(_as_toml_value(table))
    except ValidationError as exc:
        problems = validation_problems(exc.errors(include_url=False), prefix=("backend",))
        raise scenario_error(source, problems) from None
