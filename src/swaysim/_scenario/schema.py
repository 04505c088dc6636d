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
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from swaysim._chaos.faults import FaultKind  # noqa: TC001 - pydantic resolves annotations at runtime
from swaysim._scenario.expect_schema import (
    EXPECTATION_KEYS,
    CountBounds,
    ExpectKeys,
    ExpectSpec,
    SecondsBounds,
)
from swaysim._scenario.spec_base import (
    RUNNER_PATTERN,
    Count,
    Name,
    Number,
    PositiveCount,
    PositiveSeconds,
    Seconds,
    Seed,
    Spec,
)
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


class ConstantSpec(Spec):
    """Always ``seconds``, plus a uniform ``[0, jitter)``."""

    model: Literal["constant"]
    """Which latency model: ``"constant"``."""
    seconds: Seconds
    """Seconds of latency."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


class UniformSpec(Spec):
    """Uniform in ``[low, high)`` seconds, plus a uniform ``[0, jitter)``."""

    model: Literal["uniform"]
    """Which latency model: ``"uniform"``."""
    low: Seconds
    """Lowest latency, seconds."""
    high: Seconds
    """Highest latency, seconds (at least ``low``)."""
    jitter: Seconds = 0.0
    """Extra uniform ``[0, jitter)`` seconds."""


class LogNormalSpec(Spec):
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


class LatencyRuleSpec(Spec):
    """Latency for the ops and views it selects (empty selects everything)."""

    model: LatencyModelSpec
    """The latency model: ``{ model = "lognormal", median = 0.05, sigma = 0.5 }``."""
    ops: list[Op] = []
    """Ops this rule prices; empty: every op."""
    views: list[str] = []
    """View kinds (base, ft, scaled, null) or ids (scaled_0.50, null_42); empty: every view."""


class LatencyPlanSpec(Spec):
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


class FaultRuleSpec(Spec):
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


class FaultPlanSpec(Spec):
    """An ordered set of fault rules (``swaysim.FaultPlan``); the first match fires."""

    rules: list[FaultRuleSpec] = []
    """The rules, checked in order."""
    seed: Seed | None = None
    """Seed of the probability draws; defaults to the scenario seed."""


class LogprobSpec(Spec):
    """A canned ``logprob_of(prompt, completion)``."""

    prompt: str
    """The prompt, exactly as the probe sends it."""
    completion: str
    """The completion scored after it."""
    logprob: Number
    """Summed completion logprob, nats."""


class TokenDistSpec(Spec):
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


class RollingSpec(Spec):
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


class ResponsesSpec(Spec):
    """Canned answers for one mode (``swaysim.DummyResponses``)."""

    generations: dict[str, str] = {}
    """Prompt to canned completion."""
    logprobs: list[LogprobSpec] = []
    """Canned ``logprob_of`` values (anything else scores -10.0)."""
    rolling: dict[str, RollingSpec] = {}
    """Text to canned rolling logprob."""
    token_dists: dict[str, TokenDistSpec] = {}
    """Prompt to canned next-token distribution."""


class BackendSpec(Spec):
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


class ProbeSpecBase(Spec):
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
    function: Annotated[str, Field(pattern=RUNNER_PATTERN)]
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


class RunnerSpec(Spec):
    """``swaysim.run_suite`` keyword arguments, or a runner of your own."""

    runner: Annotated[str, Field(pattern=RUNNER_PATTERN)] | None = None
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


class ScenarioSpec(Spec):
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
