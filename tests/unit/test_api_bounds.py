"""Class 6 of issue 13: the Python API refuses what the scenario schema refuses.

Every numeric bound of the schema is read from its pydantic models and pushed one step past
on the API call its table maps onto; the API must raise InvalidArgumentError naming the same
argument. Then the misuses the issue found by hand, each a swaysim error naming the argument,
and the one guarantee the bounds buy: virtual time stays finite.
"""

from __future__ import annotations

import errno
import math
import types
import typing
from typing import TYPE_CHECKING, Any

import annotated_types
import anyio
import pytest

import swaysim
from swaysim import (
    AdapterAblation,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InvalidArgumentError,
    LatencyPlan,
    LogNormal,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    TraceEvent,
    Uniform,
    ViewError,
    run_suite,
)
from swaysim._runner.policy import RunPolicy
from swaysim._scenario import schema
from swaysim._validation import MAX_SECONDS

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

# spec model -> (the API call it maps onto, arguments that make that call valid)
API: list[tuple[type[BaseModel], Callable[..., object], dict[str, Any]]] = [
    (schema.ConstantSpec, Constant, {"seconds": 0.1}),
    (schema.UniformSpec, Uniform, {"low": 0.1, "high": 0.2}),
    (schema.LogNormalSpec, LogNormal, {"median": 0.1, "sigma": 0.5}),
    (schema.LatencyPlanSpec, LatencyPlan, {}),
    (schema.FaultRuleSpec, FaultRule, {"kind": "transient", "window": [0.0, 1.0]}),
    (schema.FaultPlanSpec, FaultPlan, {}),
    (schema.BackendSpec, AsyncDummyDifferentialBackend, {"safe_for_concurrent_views": True}),
    (schema.RunnerSpec, RunPolicy, {}),
    (schema.DeltaKLSpec, lambda **kw: DeltaKL("d", ["a"], **kw), {}),
    (schema.AdapterAblationSpec, lambda **kw: AdapterAblation("a", ["p"], **kw), {"lams": [1.0]}),
    (schema.NullAdapterSpec, lambda **kw: NullAdapter("n", target="d", **kw), {"seeds": [0, 1]}),
    (
        schema.PreferenceFlipSpec,
        lambda **kw: PreferenceFlip("f", [("p", " a", " b")], **kw),
        {},
    ),
    (schema.PerplexityShiftSpec, lambda **kw: PerplexityShift("s", ["t"], **kw), {}),
]
SCENARIO_ONLY = {"repeat", "cancel_after"}
"""Keys that have no API argument (the loader expands and cancels)."""


def constraints(annotation: object, metadata: list[object]) -> tuple[list[object], list[object]]:
    """(bounds on the value, bounds on each item of a list) from a field's type."""
    own = [m for m in metadata if isinstance(m, annotated_types.BaseMetadata)]
    items: list[object] = []
    pending = [annotation]
    while pending:
        current = pending.pop()
        origin = typing.get_origin(current)
        if origin is typing.Annotated:
            inner, *extra = typing.get_args(current)
            for info in extra:
                own += [m for m in getattr(info, "metadata", []) if _bound(m)]
            pending.append(inner)
        elif origin in (typing.Union, types.UnionType):
            pending.extend(typing.get_args(current))
        elif origin is list:
            (item,) = typing.get_args(current)
            items += constraints(item, [])[0]
    return [m for m in own if _bound(m)], items


def _bound(metadata: object) -> bool:
    return isinstance(metadata, annotated_types.Ge | annotated_types.Gt | annotated_types.Le)


def past(bound: object, integer: bool) -> object:
    """A value one step outside ``bound``."""
    if isinstance(bound, annotated_types.Le):
        limit = float(bound.le)  # type: ignore[arg-type]
        if integer:
            return int(limit) + 1
        return limit * 2 if limit > 0 else limit + 1.0
    if isinstance(bound, annotated_types.Ge):
        low = float(bound.ge)  # type: ignore[arg-type]
        return int(low) - 1 if integer else low - abs(low) - 1.0
    assert isinstance(bound, annotated_types.Gt)
    return bound.gt


def cases() -> list[tuple[str, Callable[..., object], dict[str, Any], str]]:
    out = []
    for spec, api, base in API:
        for name, info in spec.model_fields.items():
            if name in SCENARIO_ONLY:
                continue
            integer = "int" in str(info.annotation) and "float" not in str(info.annotation)
            value_bounds, item_bounds = constraints(info.annotation, list(info.metadata))
            for bound in value_bounds:
                kwargs = {**base, name: past(bound, integer)}
                out.append((f"{spec.__name__}.{name}:{bound}", api, kwargs, name))
            for bound in item_bounds:
                items = list(base.get(name, []))
                bad = past(bound, integer)
                kwargs = {**base, name: [*items[:-1], bad] if name == "window" else [*items, bad]}
                index = len(kwargs[name]) - 1
                out.append((f"{spec.__name__}.{name}[]:{bound}", api, kwargs, f"{name}[{index}]"))
    return out


CASES = cases()


def test_every_bound_of_the_schema_is_exercised() -> None:
    assert len(CASES) >= 45
    fields = {case[0].split(":")[0] for case in CASES}
    for expected in ("ConstantSpec.seconds", "LogNormalSpec.sigma", "RunnerSpec.retries"):
        assert expected in fields


@pytest.mark.parametrize(
    ("api", "kwargs", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_api_refuses_what_the_schema_refuses(
    api: Callable[..., object], kwargs: dict[str, Any], field: str
) -> None:
    kwargs = {k: tuple(v) if k in ("window", "seeds", "lams") else v for k, v in kwargs.items()}
    with pytest.raises(InvalidArgumentError) as info:
        api(**kwargs)
    assert info.value.field == field, str(info.value)
    assert "\n" not in str(info.value)


# -- the misuses the issue found --------------------------------------------------------


async def on_a_view(call: Callable[[Any], Any]) -> object:
    backend = AsyncDummyDifferentialBackend(base=DummyResponses(generations={"a": "b"}))
    async with backend.as_base() as view:
        return await call(view)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda v: v.next_token_dist(None), "prompt"),
        (lambda v: v.next_token_dist(b"bytes"), "prompt"),
        (lambda v: v.logprob_of("a", 3), "completion"),
        (lambda v: v.rolling_logprob(["t"]), "text"),
        (lambda v: v.next_token_dist_batch(["a", None]), "prompts[1]"),
        (lambda v: v.next_token_dist("a", top_k=10**30), "top_k"),
        (lambda v: v.generate("a", max_new_tokens=10**308), "max_new_tokens"),
        (lambda v: v.generate("a", max_new_tokens=10**400), "max_new_tokens"),
        (lambda v: v.generate(None, max_new_tokens=1), "prompt"),
    ],
    ids=[
        "dist-none",
        "dist-bytes",
        "completion",
        "rolling",
        "batch-item",
        "top_k",
        "tokens",
        "tokens-overflow",
        "generate-none",
    ],
)
async def test_op_arguments_of_the_wrong_kind_name_the_argument(
    call: Callable[[Any], Any], field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await on_a_view(call)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Constant(1e308), "seconds"),
        (lambda: LogNormal(median=0.1, sigma=1e6), "sigma"),
        (lambda: DummyResponses(generations=[1, 2]), "generations"),  # type: ignore[arg-type]
        (lambda: DummyResponses(logprobs={"a": -1.0}), "logprobs"),  # type: ignore[dict-item]
        (lambda: DummyResponses(logprobs={("a", "b"): math.nan}), "logprobs[('a', 'b')]"),
        (lambda: AsyncDummyDifferentialBackend().as_scaled_adapter(1e308), "lam"),
        (lambda: AsyncDummyDifferentialBackend().as_null_adapter(2**64), "seed"),
        (
            lambda: AsyncDummyDifferentialBackend().as_null_adapter(1, rank_scale=1e300),
            "rank_scale",
        ),
        (lambda: AsyncDummyDifferentialBackend(trace=object()), "trace"),  # type: ignore[arg-type]
    ],
    ids=[
        "constant",
        "sigma",
        "generations",
        "logprob-key",
        "logprob-nan",
        "lam",
        "null-seed",
        "rank",
        "backend-trace",
    ],
)
def test_construction_misuse_names_the_argument(make: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        make()
    assert info.value.field == field
    assert len(str(info.value)) < 200


async def test_run_suite_checks_its_trace_argument() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await run_suite(AsyncDummyDifferentialBackend(), [DeltaKL("d", ["a"])], trace=object())  # type: ignore[arg-type]
    assert info.value.field == "trace"


async def test_exiting_a_view_never_entered_is_a_view_error() -> None:
    context = AsyncDummyDifferentialBackend().as_base()
    with pytest.raises(ViewError, match="exited without being entered"):
        await context.__aexit__(None, None, None)


# -- what the bounds buy ----------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_the_longest_latency_the_api_accepts_keeps_virtual_time_finite(loop: str) -> None:
    longest = Constant(MAX_SECONDS, jitter=MAX_SECONDS)
    backend = AsyncDummyDifferentialBackend(
        base=DummyResponses(generations={"a": "b"}),
        latency=LatencyPlan(
            default=longest, generate_per_token=longest, view_switch=longest, view_enter=longest
        ),
    )

    async def main() -> float:
        for _ in range(3):
            async with backend.as_base() as view:
                await view.generate("a", max_new_tokens=1_000_000)
        return anyio.current_time()

    finished = swaysim.run(main, backend=loop)
    assert math.isfinite(finished)
    assert finished > 1e15


def test_a_lognormal_draw_is_capped_at_the_longest_duration() -> None:
    tail = LogNormal(median=MAX_SECONDS, sigma=20.0)
    assert tail.sample(1.0 - 2**-53, 0.0, 0.0) == MAX_SECONDS
    assert tail.sample(0.5, 0.25, 0.0) == pytest.approx(MAX_SECONDS)


# -- a failing trace sink never fails the run -------------------------------------------


class Exploding:
    """A sink of one's own that raises after ``after`` events (a full disk)."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        if len(self.events) >= self.after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.events.append(event)


@pytest.mark.parametrize("after", [0, 5, 15])
async def test_run_suite_returns_its_results_when_the_sink_fails(after: int) -> None:
    sink = Exploding(after)
    backend = AsyncDummyDifferentialBackend(trace=sink)
    probes = [DeltaKL("d", ["a", "b"]), PerplexityShift("p", ["t"])]
    suite = await run_suite(backend, probes, concurrency=4)
    reference = await run_suite(AsyncDummyDifferentialBackend(), probes, concurrency=4)
    assert suite.to_dict(include_timing=False) == reference.to_dict(include_timing=False)
    assert suite.trace_error == "OSError: [Errno 28] No space left on device"
    assert backend.trace_error is not None
    assert len(sink.events) == after


async def test_run_suite_reports_a_writer_that_kept_its_error(tmp_path: Any) -> None:
    import io

    from test_full_disk import FullDisk

    writer = swaysim.JsonlTraceWriter(
        "t.jsonl", flush_every=2, stream=io.BufferedWriter(FullDisk(100))
    )
    suite = await run_suite(AsyncDummyDifferentialBackend(trace=writer), [DeltaKL("d", ["a", "b"])])
    writer.close()
    assert [r.verdict.value for r in suite.results] == ["PASS"]
    assert suite.trace_error == "OSError: [Errno 28] No space left on device"
    assert suite.to_dict()["trace_error"] == suite.trace_error
