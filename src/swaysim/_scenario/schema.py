"""The scenario file format: one pydantic model per TOML table, and its JSON Schema.

A scenario sets up a backend (views, exclusivity, latency, faults, seed), a
probe suite, a runner configuration and the expectations that must hold
afterwards. Its keys are the Python API's own argument names, one to one (a
test introspects both so they cannot drift):

- ``[backend]``: :class:`~swaysim.AsyncDummyDifferentialBackend` keyword
  arguments; ``[backend.base]``/``[backend.ft]`` are
  :class:`~swaysim.DummyResponses`; ``[backend.latency]`` is a
  :class:`~swaysim.LatencyPlan` and ``[backend.faults]`` a
  :class:`~swaysim.FaultPlan` (``[[backend.faults.rules]]`` are
  :class:`~swaysim.FaultRule` fields).
- ``[[probes]]``: a reference probe's constructor arguments, ``kind``
  choosing the class; ``kind = "function"`` names a function probe of one's
  own (``function = "module:callable"``, imported like a runner).
- ``[runner]``: :func:`~swaysim.run_suite` keyword arguments, or
  ``runner = "package.module:function"`` for a runner of one's own.
- ``[expect]``: what must hold afterwards (checked by
  :mod:`swaysim._scenario.expect`).

The models only describe and validate (strict types, unknown keys rejected,
ranges); turning them into API objects is :mod:`swaysim._scenario.build`'s
job and turning their errors into messages :mod:`swaysim._scenario.messages`'.
The field docstrings are the schema's descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from swaysim._chaos.faults import FaultKind  # noqa: TC001 - pydantic resolves annotations at runtime
from swaysim._printable import printable
from swaysim._validation import (
    MAX_COUNT,
    MAX_MAGNITUDE,
    MAX_RETRIES,
    MAX_SCALE,
    MAX_SECONDS,
    MAX_SEED,
    MAX_SIGMA,
)
from swaysim._vocab import Op  # noqa: TC001 - pydantic resolves annotations at runtime

__all__ = [
    "BackendSpec",
    "ConstantSpec",
    "CountBounds",
    "EXPECTATION_KEYS",
    "ExpectKeys",
    "ExpectSpec",
    "FaultPlanSpec",
    "FaultRuleSpec",
    "FunctionProbeSpec",
    "LatencyPlanSpec",
    "LatencyRuleSpec",
    "LogNormalSpec",
    "MAX_COUNT",
    "MAX_SECONDS",
    "MAX_SEED",
    "NUMERIC_KINDS",
    "PROBE_SPECS",
    "ProbeSpecBase",
    "ResponsesSpec",
    "RunnerSpec",
    "SCHEMA_ID",
    "ScenarioSpec",
    "SecondsBounds",
    "UniformSpec",
]

SCHEMA_ID: Final = "https://swaysim.dev/schema/scenario.schema.json"

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0.0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0.0, le=MAX_SECONDS)]
Number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
VerdictName = Literal["PASS", "FAIL", "WARN", "SKIP", "ERROR"]


def _no_control_characters(value: str) -> str:
    """Names reach terminals, file names and XML: no control or format characters."""
    unsafe = printable(value)
    if unsafe != value:
        raise ValueError(f"must not contain control characters (it reads {unsafe})")
    return value


Name = Annotated[str, AfterValidator(_no_control_characters)]
"""A scenario, probe or fault rule name: printable text only."""
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
    """Which latency model: ``"constant"``."""
    seconds: Seconds
    """Seconds of latency."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


class UniformSpec(_Spec):
    """Uniform in ``[low, high)`` seconds, plus a uniform ``[0, jitter)``."""

    model: Literal["uniform"]
    """Which latency model: ``"uniform"``."""
    low: Seconds
    """Lowest latency, seconds."""
    high: Seconds
    """Highest latency, seconds (at least ``low``)."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


class LogNormalSpec(_Spec):
    """``exp(N(log(median), sigma**2))`` seconds: a heavy right tail."""

    model: Literal["lognormal"]
    """Which latency model: ``"lognormal"``."""
    median: PositiveSeconds
    """Median latency, seconds (> 0)."""
    sigma: Annotated[float, Field(gt=0.0, le=MAX_SIGMA)]
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
    name: Name = ""
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
    """The prompt, exactly as the probe sends it."""
    completion: str
    """The completion scored after it."""
    logprob: Number
    """Summed completion logprob, nats."""


class TokenDistSpec(_Spec):
    """A canned next-token distribution (``swaysim.TokenDist``)."""

    token_ids: Annotated[list[Annotated[int, Field(ge=0, le=2**62)]], Field(min_length=1)]
    """Token ids, most probable first."""
    logprobs: Annotated[list[Number], Field(min_length=1)]
    """One logprob per token id."""
    vocab_size: Annotated[int, Field(ge=1, le=2**62)]
    """Size of the vocabulary the slice comes from."""
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
    """The text's N token ids."""
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
    """Cap on live views (needs safe_for_concurrent_views); loaded views stay resident."""
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


class ProbeSpecBase(_Spec):
    """What every ``[[probes]]`` table has, whatever its ``kind``."""

    name: Name
    """Probe name, unique in the suite (with ``repeat``: ``<name>-<i>``)."""
    repeat: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """Expand into N probes named ``<name>-<i>`` (i from 0), ``{i}`` substituted in strings."""


class DeltaKLSpec(ProbeSpecBase):
    """Mean JS (or KL) divergence between base and ft next-token distributions."""

    kind: Literal["delta_kl"]
    """Which probe: ``"delta_kl"``."""
    prompts: Annotated[list[str], Field(min_length=1)]
    """Prompts whose next-token distributions are compared."""
    divergence: Literal["js", "kl"] = "js"
    """Jensen-Shannon (``"js"``) or Kullback-Leibler (``"kl"``) divergence."""
    top_k: PositiveCount = 256
    """Tokens per next-token distribution."""
    threshold: Number = 0.01
    """PASS when the mean divergence is above this (without ``null``)."""
    null: str | None = None
    """Name of a null_adapter probe to z-score against."""
    z_threshold: Number = 3.0
    """PASS when the z-score is at least this (with ``null``)."""


class AdapterAblationSpec(ProbeSpecBase):
    """Divergence from base as the adapter is scaled by each lam."""

    kind: Literal["adapter_ablation"]
    """Which probe: ``"adapter_ablation"``."""
    prompts: Annotated[list[str], Field(min_length=1)]
    """Prompts whose next-token distributions are compared."""
    lams: Annotated[list[Number], Field(min_length=1)] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    """Adapter scales to measure; must include 1.0."""
    divergence: Literal["js", "kl"] = "js"
    """Jensen-Shannon (``"js"``) or Kullback-Leibler (``"kl"``) divergence."""
    top_k: PositiveCount = 256
    """Tokens per next-token distribution."""
    threshold: Number = 0.01
    """PASS needs the divergence at lam = 1 above this."""
    tolerance: Annotated[float, Field(ge=0.0, le=MAX_MAGNITUDE)] = 1e-6
    """How far the curve may dip between lams in [0, 1] and still count as rising."""


class NullAdapterSpec(ProbeSpecBase):
    """A target probe's statistic on K seeded null views: the z-score denominator."""

    kind: Literal["null_adapter"]
    """Which probe: ``"null_adapter"``."""
    target: str
    """Name of the numeric probe whose statistic is measured."""
    seeds: Annotated[list[Seed], Field(min_length=2)] = [0, 1, 2, 3]
    """One null view per seed (at least two, for a spread)."""
    init_scale: Annotated[float, Field(ge=0.0, le=MAX_SCALE)] = 0.02
    """Scale of the null adapter's random weights."""
    rank_scale: Annotated[float, Field(gt=0.0, le=MAX_SCALE)] = 1.0
    """Rank factor: noise std is ``init_scale * sqrt(rank_scale)``."""
    std_floor: Annotated[float, Field(ge=0.0, le=MAX_MAGNITUDE)] = 1e-6
    """A null spread below this is degenerate: WARN, and no z-scores against it."""


class PreferenceFlipSpec(ProbeSpecBase):
    """How much more ft prefers the chosen completion than base does."""

    kind: Literal["preference_flip"]
    """Which probe: ``"preference_flip"``."""
    triples: Annotated[
        list[Annotated[list[str], Field(min_length=3, max_length=3)]], Field(min_length=1)
    ]
    """``[prompt, chosen, rejected]`` triples."""
    threshold: Number = 0.0
    """PASS when the mean preference gain is above this (without ``null``)."""
    null: str | None = None
    """Name of a null_adapter probe to z-score against."""
    z_threshold: Number = 3.0
    """PASS when the z-score is at least this (with ``null``)."""


class FunctionProbeSpec(ProbeSpecBase):
    """A probe of your own, a function of ``(backend, ctx)`` (``swaysim.FunctionProbe``)."""

    kind: Literal["function"]
    """Which probe: ``"function"``."""
    function: Annotated[str, Field(pattern=_RUNNER_PATTERN)]
    """``"module:callable"``: an ``async def`` (or a plain ``def``, run on a worker thread with
    a blocking backend) taking ``(backend, ctx)`` and returning a ``ProbeResult``. Found in the
    scenario's folder and imported only to run, as ``runner.runner`` is."""
    requires: list[Name] = []
    """Probes of the suite whose results it reads (``ctx.results``): they finish first."""
    options: dict[str, Any] = {}
    """Keyword arguments the function gets after ``(backend, ctx)``."""


class PerplexityShiftSpec(ProbeSpecBase):
    """Mean per-token logprob gain of ft over base on held-out texts."""

    kind: Literal["perplexity_shift"]
    """Which probe: ``"perplexity_shift"``."""
    texts: Annotated[list[str], Field(min_length=1)]
    """Held-out texts scored with ``rolling_logprob``."""
    threshold: Number = 0.0
    """PASS when the mean per-token logprob gain is above this (without ``null``)."""
    null: str | None = None
    """Name of a null_adapter probe to z-score against."""
    z_threshold: Number = 3.0
    """PASS when the z-score is at least this (with ``null``)."""


ProbeSpec = Annotated[
    Union[  # noqa: UP007
        DeltaKLSpec,
        AdapterAblationSpec,
        NullAdapterSpec,
        PreferenceFlipSpec,
        PerplexityShiftSpec,
        FunctionProbeSpec,
    ],
    Field(discriminator="kind"),
]

PROBE_SPECS: Final[dict[str, type[ProbeSpecBase]]] = {
    "delta_kl": DeltaKLSpec,
    "adapter_ablation": AdapterAblationSpec,
    "null_adapter": NullAdapterSpec,
    "preference_flip": PreferenceFlipSpec,
    "perplexity_shift": PerplexityShiftSpec,
    "function": FunctionProbeSpec,
}
NUMERIC_KINDS: Final = frozenset({"delta_kl", "preference_flip", "perplexity_shift"})


class RunnerSpec(_Spec):
    """``swaysim.run_suite`` keyword arguments, or a runner of your own."""

    runner: Annotated[str, Field(pattern=_RUNNER_PATTERN)] | None = None
    """``"package.module:function"``: awaited as ``function(backend, probes, **options)``."""
    concurrency: PositiveCount = 1
    """Requests in flight at once."""
    op_timeout: PositiveSeconds | None = None
    """Loop seconds one op attempt may take; unset: no limit."""
    probe_timeout: PositiveSeconds | None = None
    """Loop seconds a probe's requests may be in flight in all; unset: no limit."""
    retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 2
    """Extra attempts for a transient failure (fatal faults are never retried)."""
    backoff: Seconds = 0.1
    """First retry delay; doubles per attempt, plus up to 25 % seeded jitter."""
    backoff_max: Seconds = 5.0
    """Longest retry delay."""
    preflight: bool = True
    """Run ``preflight_finite_check()`` first; a failure aborts the suite."""
    seed: Seed | None = None
    """Seed of the retry jitter; defaults to the scenario seed."""
    mode: Literal["pooled", "naive"] = "pooled"
    """``"pooled"`` (each view entered once) or ``"naive"`` (one probe at a time)."""
    cancel_after: PositiveSeconds | None = None
    """Cancel the suite after this many loop seconds (``anyio.move_on_after``)."""
    options: dict[str, Any] = {}
    """Extra keyword arguments for a custom ``runner`` (only with ``runner``)."""
    reference_only: Annotated[str, Field(min_length=1)] | None = None
    """This scenario tests something only the runner it configures has (``run_suite``'s
    naive mode, its own ``runner``): the reason. With another runner under test it is
    reported as skipped for that runner, because of this reason."""


def _exact_count(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_COUNT:
            raise ValueError(f"must be within [0, {MAX_COUNT}]")
        return {"at_least": value, "at_most": value}
    return value


class CountBounds(_Spec):
    """A count that must lie within bounds (a bare integer means exactly that)."""

    at_least: Count | None = None
    """Lowest allowed count."""
    at_most: Count | None = None
    """Highest allowed count."""

    @model_validator(mode="after")
    def _ordered(self) -> CountBounds:
        _check_bounds(self.at_least, self.at_most)
        return self


class SecondsBounds(_Spec):
    """Virtual seconds that must lie within bounds (a bare number means exactly that)."""

    at_least: Seconds | None = None
    """Fewest allowed seconds."""
    at_most: Seconds | None = None
    """Most allowed seconds."""

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
    """Probes that PASS."""
    FAIL: CountExpectation | None = None
    """Probes that FAIL."""
    WARN: CountExpectation | None = None
    """Probes that WARN."""
    SKIP: CountExpectation | None = None
    """Probes that SKIP."""
    ERROR: CountExpectation | None = None
    """Probes that end in ERROR (the preflight's included)."""


class ExpectKeys(_Spec):
    """The expectations a scenario can state (in ``[expect]`` and ``[expect.reference]``)."""

    verdicts: dict[str, VerdictExpectation] = {}
    """Probe name or glob (``"dkl-*"``) to the allowed verdict(s); ``"__preflight__"`` names
    the ERROR a failed preflight leaves."""
    verdict_counts: VerdictCounts | None = None
    """Number of probes per verdict."""
    no_false_pass: bool | None = None
    """No PASS rests on an answer an output-corrupting fault changed (calls are attributed to
    probes: declared requests, or ``swaysim.attribute``); no PASS after preflight aborted."""
    matches_reference: bool | None = None
    """Each probe whose requests met no fault, or only retryable ones within the retry budget,
    and were never cut off, has the verdict and scores of the reference runner's fault-free
    run of this scenario (``run_suite``, no fault rules, no ``cancel_after``)."""
    aborted: bool | None = None
    """Whether preflight aborted the suite."""
    cancelled: bool | None = None
    """Whether ``runner.cancel_after`` cancelled the suite before it finished."""
    peak_live_views: CountExpectation | None = None
    """Most views live at once."""
    view_switches: CountExpectation | None = None
    """Adapter switches (preflight included): entries into a view other than the previous one
    on an exclusive backend, first entries of each view on a concurrent-safe one."""
    calls_per_view: dict[str, CountExpectation] = {}
    """View id (``ft``, ``scaled_0.50``, ``null_3``) to the op calls made on it, preflight's
    and cache hits included (a batch is one call)."""
    view_entries: CountExpectation | None = None
    """View entries the backend saw, every view's and preflight's included (an entry retried
    after an injected enter failure counts once more)."""
    peak_ops_in_flight: CountExpectation | None = None
    """Most op calls in flight at once, observed by the backend: from the call until its answer,
    waiting for the device included (a batch is one call); at most ``runner.concurrency`` for a
    runner that keeps to it."""
    duplicate_requests: CountExpectation | None = None
    """Requests sent again within one view entry after they had succeeded there (observed by
    the backend; a cache hit counts as sent)."""
    makespan: SecondsExpectation | None = None
    """Virtual seconds from start to finish (or to cancellation). The upper bound widens by
    the time schedule jitter added and the time a synchronous runner's own code took on its
    worker thread (the clock follows real time then)."""
    faults_fired: dict[str, CountExpectation] = {}
    """Firings per fault rule name."""
    retries: CountExpectation | None = None
    """Retries the backend saw: a request sent again on a view after it failed there (an
    injected error, or cut off), and a view entered again after an injected enter error."""
    retry_delay: SecondsExpectation | None = None
    """Loop seconds from a failed attempt (an injected error, or cut off; or a failed view
    entry) to its retry, for every retry the backend saw: the runner's backoff plus any wait of
    its own before the call. Holds when nothing was retried (``retries`` says whether)."""
    timeouts: CountExpectation | None = None
    """Ops the backend saw abandoned by a cancellation other than ``cancel_after``'s (an
    ``op_timeout``, a ``probe_timeout``, a runner cancelling its own work)."""
    cancelled_ops: CountExpectation | None = None
    """Ops the backend saw abandoned by ``runner.cancel_after``'s cancellation."""
    gate_free: bool | None = None
    """No view live and nobody waiting the moment the runner returned."""
    identical_across_loops: bool | None = None
    """Results (without timing) identical on asyncio and trio."""

    @model_validator(mode="after")
    def _something(self) -> ExpectKeys:
        stated = self.model_fields_set - {"optional"}
        if not stated - {"verdicts", "faults_fired", "calls_per_view"} and not (
            self.verdicts or self.faults_fired or self.calls_per_view
        ):
            raise ValueError("no expectations: a scenario must say what must hold afterwards")
        return self


EXPECTATION_KEYS: Final = tuple(ExpectKeys.model_fields)


class ExpectSpec(ExpectKeys):
    """What must hold after the run; every key is optional, at least one is required."""

    reference: ExpectKeys | None = None
    """Expectations that state the configured runner's own choices (``run_suite``'s exact
    switch count, say): checked only when that runner runs, not a runner under test."""
    optional: list[str] = []
    """Expectation keys that may be impossible to check for some runner: reported as
    skipped, not failed, when they cannot be checked (an unchecked key fails otherwise)."""


class ScenarioSpec(_Spec):
    """A swaysim scenario: a backend, a probe suite, a runner and what must hold afterwards."""

    model_config = ConfigDict(title="swaysim scenario")

    name: Annotated[Name, Field(min_length=1, max_length=200)] | None = None
    """Short name; defaults to the file name without ``.toml``."""
    description: Annotated[str, Field(min_length=1)] | None = None
    """The question this scenario answers; shown in reports and failure messages."""
    seed: Seed = 0
    """Seed of every plan and the runner unless they set their own."""
    backend: BackendSpec = BackendSpec()
    """The backend: views, exclusivity, latency, faults."""
    probes: Annotated[list[ProbeSpec], Field(min_length=1)]
    """The probe suite, one ``[[probes]]`` table each."""
    runner: RunnerSpec = RunnerSpec()
    """How the suite runs."""
    expect: ExpectSpec
    """What must hold afterwards."""

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank: say what question the scenario answers")
        return value
