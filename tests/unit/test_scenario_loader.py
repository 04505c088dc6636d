"""The scenario loader: a valid file builds exactly the API objects its keys name; an
invalid one gives one line naming the file, the key path, the bad value and what is
allowed, never a traceback."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from swaysim import (
    AdapterAblation,
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    DummyResponses,
    FaultPlan,
    FaultRule,
    FunctionProbe,
    InvalidArgumentError,
    LatencyPlan,
    LatencyRule,
    LogNormal,
    NullAdapter,
    PerplexityShift,
    PreferenceFlip,
    SwaysimError,
    Uniform,
    run_suite,
)
from swaysim._scenario.build import PROBE_CLASSES, api_key_path
from swaysim._scenario.schema import (
    PROBE_SPECS,
    BackendSpec,
    ConstantSpec,
    FaultPlanSpec,
    FaultRuleSpec,
    LatencyPlanSpec,
    LatencyRuleSpec,
    LogNormalSpec,
    ResponsesSpec,
    RunnerSpec,
    UniformSpec,
)
from swaysim.scenario import ScenarioError, discover_scenarios, load_scenario, parse_scenario

if TYPE_CHECKING:
    from collections.abc import Callable

LIBRARY = sorted((Path(__file__).parents[2] / "scenarios").glob("*.toml"))

MINIMAL = """\
description = "a question?"
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["a"]
[expect]
gate_free = true
"""


def with_section(section: str) -> str:
    """MINIMAL plus a section that comes before [expect]."""
    return MINIMAL.replace("[expect]", section.rstrip("\n") + "\n[expect]")


def problem(text: str | bytes) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.toml")
    return str(info.value)


def unlocated(message: str) -> str:
    """``message`` without the trailing ``(line N)`` (tests of wording, not of lines)."""
    return re.sub(r" \(line \d+\)$", "", message)


# -- the library ------------------------------------------------------------------------


def test_library_has_fifteen_scenarios_that_each_ask_a_question() -> None:
    assert len(LIBRARY) >= 15
    for path in LIBRARY:
        scenario = load_scenario(path)
        assert scenario.description.endswith("?"), path.name
        assert scenario.name == path.stem


def test_library_includes_a_suite_of_a_thousand_probes() -> None:
    sizes = [len(load_scenario(path).probe_plan) for path in LIBRARY]
    assert max(sizes) >= 1000


# -- building ---------------------------------------------------------------------------


def test_repeat_expands_names_and_substitutes_the_index() -> None:
    scenario = parse_scenario(
        MINIMAL.replace('prompts = ["a"]', 'repeat = 3\nprompts = ["p {i}", "fixed"]')
    )
    assert scenario.probe_names == ("dkl-0", "dkl-1", "dkl-2")
    probes = scenario.build_probes()
    assert all(isinstance(p, DeltaKL) for p in probes)
    assert [p.prompts for p in probes if isinstance(p, DeltaKL)] == [
        ("p 0", "fixed"),
        ("p 1", "fixed"),
        ("p 2", "fixed"),
    ]


def test_backend_keys_build_the_same_objects_as_the_python_api() -> None:
    scenario = parse_scenario(
        with_section(
            """
[backend]
exclusivity = "strict"
cache_size = 64
[backend.latency]
default = { model = "lognormal", median = 0.05, sigma = 0.5 }
view_switch = { model = "constant", seconds = 2.0, jitter = 0.1 }
[[backend.latency.rules]]
model = { model = "uniform", low = 0.1, high = 0.2 }
ops = ["generate"]
views = ["ft", "null_3"]
[[backend.faults.rules]]
name = "late"
kind = "transient"
views = ["ft"]
prompt = "q*"
probability = 0.25
window = [1.0, 2.5]
[[backend.faults.rules]]
kind = "hang"
nth = 3
[backend.ft]
generations = { hi = "hello" }
logprobs = [{ prompt = "Q", completion = " yes", logprob = -0.5 }]
[backend.ft.token_dists.p]
token_ids = [3, 1]
logprobs = [-0.1, -2.5]
vocab_size = 10
tail_logprob = -3.0
[backend.ft.rolling.t]
token_ids = [5, 6, 7]
logprobs = [-1.0, -2.0]
"""
        )
    )
    seed = scenario.seed
    backend = scenario.build_backend()
    assert backend.exclusivity == "strict"
    assert backend.latency == LatencyPlan(
        seed=seed,
        default=LogNormal(median=0.05, sigma=0.5),
        view_switch=Constant(2.0, jitter=0.1),
        rules=(LatencyRule(Uniform(0.1, 0.2), ops=("generate",), views=("ft", "null_3")),),
    )
    assert backend.faults == FaultPlan(
        (
            FaultRule(
                "transient",
                name="late",
                views=("ft",),
                prompt="q*",
                probability=0.25,
                window=(1.0, 2.5),
            ),
            FaultRule("hang", nth=3),
        ),
        seed=seed,
    )

    async def answers() -> tuple[str, float, Any, Any]:
        async with backend.as_finetuned() as ft:
            return (
                await ft.generate("hi", max_new_tokens=4),
                await ft.logprob_of("Q", " yes"),
                await ft.next_token_dist("p"),
                await ft.rolling_logprob("t"),
            )

    import swaysim

    text, logprob, dist, rolling = swaysim.run(answers)
    assert (text, logprob) == ("hello", -0.5)
    assert dist.token_ids.tolist() == [3, 1]
    assert dist.logprobs.dtype == np.float32
    assert dist.tail_logprob == -3.0
    assert rolling.num_tokens == 3
    assert rolling.total_logprob == pytest.approx(-3.0)


def test_probe_keys_build_the_same_probes_as_the_python_api() -> None:
    scenario = parse_scenario(
        """
description = "probes?"
[[probes]]
kind = "adapter_ablation"
name = "abl"
prompts = ["a"]
lams = [0.0, 1.0]
divergence = "kl"
[[probes]]
kind = "preference_flip"
name = "pf"
triples = [["p", "good", "bad"]]
threshold = 0.5
[[probes]]
kind = "perplexity_shift"
name = "ppl"
texts = ["t"]
null = "n"
[[probes]]
kind = "null_adapter"
name = "n"
target = "ppl"
seeds = [4, 5]
rank_scale = 2.0
[expect]
gate_free = true
"""
    )
    abl, pf, ppl, null = scenario.build_probes()
    assert isinstance(abl, AdapterAblation)
    assert (abl.lams, abl.divergence) == ((0.0, 1.0), "kl")
    assert isinstance(pf, PreferenceFlip)
    assert (pf.triples, pf.threshold) == ((("p", "good", "bad"),), 0.5)
    assert isinstance(ppl, PerplexityShift)
    assert (ppl.texts, ppl.null) == (("t",), "n")
    assert isinstance(null, NullAdapter)
    assert (null.target, null.seeds, null.rank_scale) == ("ppl", (4, 5), 2.0)


def test_plan_seeds_follow_the_scenario_seed_unless_set() -> None:
    text = with_section(
        """
[backend.latency]
default = { model = "constant", seconds = 0.1 }
[backend.faults]
seed = 99
rules = [{ kind = "nan" }]
"""
    ).replace('description = "a question?"', 'description = "a question?"\nseed = 7')
    scenario = parse_scenario(text)
    backend = scenario.build_backend()
    assert backend.latency is not None
    assert backend.faults is not None
    assert (backend.latency.seed, backend.faults.seed) == (7, 99)
    assert scenario.runner_options()["seed"] == 7
    overridden = scenario.build_backend(seed=123)
    assert overridden.latency is not None
    assert overridden.faults is not None
    assert (overridden.latency.seed, overridden.faults.seed) == (123, 99)
    assert scenario.runner_options(123)["seed"] == 123
    assert scenario.replay_command("trio", 123).endswith("--backend trio --seed 123")


# -- one to one with the Python API ----------------------------------------------------


def _init_fields(cls: type) -> dict[str, Any]:
    """Constructor argument names and defaults of a dataclass or a class."""
    if dataclasses.is_dataclass(cls):
        out = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = inspect.Parameter.empty
        return out
    parameters = list(inspect.signature(cls).parameters.values())
    return {p.name: p.default for p in parameters}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if value == {}:
        # DummyResponses.logprobs is keyed by (prompt, completion); TOML keys cannot be
        # pairs, so the scenario lists {prompt, completion, logprob} tables instead.
        return []
    return value


# (spec, API class or function, spec-only keys, API-only arguments)
MAPPINGS: list[tuple[type[Any], Any, set[str], set[str]]] = [
    (BackendSpec, AsyncDummyDifferentialBackend, set(), {"trace"}),
    (ResponsesSpec, DummyResponses, set(), set()),
    (LatencyPlanSpec, LatencyPlan, set(), set()),
    (LatencyRuleSpec, LatencyRule, set(), set()),
    (ConstantSpec, Constant, {"model"}, set()),
    (UniformSpec, Uniform, {"model"}, set()),
    (LogNormalSpec, LogNormal, {"model"}, set()),
    (FaultPlanSpec, FaultPlan, set(), set()),
    (FaultRuleSpec, FaultRule, set(), set()),
    # retry_on takes exception types (code); on_progress and trace are the tool's.
    (
        RunnerSpec,
        run_suite,
        {"runner", "cancel_after", "options", "reference_only"},
        {"backend", "probes", "retry_on", "on_progress", "trace"},
    ),
    *[
        (PROBE_SPECS[kind], cls, {"kind", "repeat"}, set())
        for kind, cls in sorted(PROBE_CLASSES.items())
        if kind != "function"
    ],
    # A function probe names its callable ("module:callable"), and options go to it.
    (PROBE_SPECS["function"], FunctionProbe, {"kind", "repeat", "function", "options"}, {"func"}),
]


@pytest.mark.parametrize(
    ("spec", "api", "spec_only", "api_only"), MAPPINGS, ids=[m[0].__name__ for m in MAPPINGS]
)
def test_scenario_keys_are_the_api_argument_names(
    spec: Any, api: Any, spec_only: set[str], api_only: set[str]
) -> None:
    keys = set(spec.model_fields) - spec_only
    arguments = set(_init_fields(api)) - api_only
    assert keys == arguments


@pytest.mark.parametrize(
    ("spec", "api", "spec_only", "api_only"), MAPPINGS, ids=[m[0].__name__ for m in MAPPINGS]
)
def test_scenario_defaults_are_the_api_defaults(
    spec: Any, api: Any, spec_only: set[str], api_only: set[str]
) -> None:
    defaults = _init_fields(api)
    for name, field in spec.model_fields.items():
        if name in spec_only or field.is_required():
            continue
        if field.default is None and name == "seed":
            continue  # a plan or runner seed defaults to the scenario seed
        assert _plain(field.default) == _plain(defaults[name]), name


def test_every_probe_class_has_a_kind() -> None:
    assert set(PROBE_CLASSES) == set(PROBE_SPECS)
    assert all(PROBE_CLASSES[kind].kind == kind for kind in PROBE_CLASSES)


def test_every_run_suite_key_reaches_run_suite() -> None:
    keys = {
        "concurrency": 3,
        "op_timeout": 2.0,
        "probe_timeout": 9.0,
        "retries": 5,
        "backoff": 0.5,
        "backoff_max": 4.0,
        "preflight": False,
        "seed": 11,
        "mode": "naive",
    }
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    scenario = parse_scenario(with_section(f"[runner]\n{lines}\ncancel_after = 1.0"))
    assert set(keys) == set(RunnerSpec.model_fields) - {
        "runner",
        "cancel_after",
        "options",
        "reference_only",
    }
    assert scenario.runner_options() == keys


# -- errors -------------------------------------------------------------------------------

ERRORS: list[tuple[str, str | bytes, str]] = [
    ("toml-syntax", "description = \n", "s.toml: line 1, column 15: invalid TOML: Invalid value"),
    (
        "unknown-key-near-miss",
        with_section("[[backend.faults.rules]]\nkind = 'nan'\nprobabilty = 0.5"),
        "s.toml: backend.faults.rules[0].probabilty: unknown key; did you mean 'probability'?",
    ),
    (
        "unknown-key",
        with_section("[backend]\nzzz = 1"),
        "s.toml: backend.zzz: unknown key; allowed keys: base, ft, safe_for_concurrent_views,",
    ),
    (
        "out-of-range",
        with_section("[[backend.faults.rules]]\nkind = 'nan'\nprobability = 1.5"),
        "s.toml: backend.faults.rules[0].probability: 1.5 is not allowed: must be <= 1.0",
    ),
    (
        "wrong-type",
        with_section('[runner]\nconcurrency = "4"'),
        's.toml: runner.concurrency: "4" is not allowed: must be an integer',
    ),
    (
        "float-for-integer",
        with_section("[runner]\nconcurrency = 4.0"),
        "s.toml: runner.concurrency: 4.0 is not allowed: must be an integer",
    ),
    (
        "unknown-probe-kind",
        MINIMAL.replace('"delta_kl"', '"delta_k"'),
        "s.toml: probes[0].kind: \"delta_k\" is not allowed: must be one of 'delta_kl', "
        "'adapter_ablation', 'null_adapter', 'preference_flip', 'perplexity_shift', 'function'; "
        "did you mean 'delta_kl'?",
    ),
    (
        "probe-kind-not-a-string",
        MINIMAL.replace('"delta_kl"', "5"),
        "s.toml: probes[0].kind: 5 is not allowed: must be one of 'delta_kl',",
    ),
    (
        "missing-kind",
        MINIMAL.replace('kind = "delta_kl"\n', ""),
        "s.toml: probes[0]: required key 'kind' is missing",
    ),
    (
        "missing-key",
        MINIMAL.replace('prompts = ["a"]\n', ""),
        "s.toml: probes[0].prompts: required key is missing",
    ),
    (
        "latency-model-typo",
        with_section(
            "[backend.latency]\ndefault = { model = 'lognormal', medain = 2.0, sigma = 1 }"
        ),
        "s.toml: backend.latency.default.medain: unknown key; did you mean 'median'?",
    ),
    (
        "non-finite",
        with_section("[runner]\nop_timeout = nan"),
        "s.toml: runner.op_timeout: nan is not allowed: must be finite",
    ),
    (
        "duplicate-probe",
        MINIMAL + '[[probes]]\nkind = "delta_kl"\nname = "dkl"\nprompts = ["b"]\n',
        's.toml: probes[1].name: "dkl" is not allowed: probe names must be unique '
        "(probes[0] already uses it)",
    ),
    (
        "null-reference",
        MINIMAL.replace('prompts = ["a"]', 'prompts = ["a"]\nnull = "dkl"'),
        's.toml: probes[0].null: "dkl" is not allowed: must name a null_adapter probe',
    ),
    (
        "verdict-glob-matches-nothing",
        MINIMAL.replace("gate_free = true", 'verdicts = { "dlk*" = "PASS" }'),
        's.toml: expect.verdicts."dlk*": matches no probe in the suite',
    ),
    (
        "unknown-verdict",
        MINIMAL.replace("gate_free = true", 'verdicts = { dkl = "PSAS" }'),
        's.toml: expect.verdicts.dkl[0]: "PSAS" is not allowed: must be one of',
    ),
    (
        "unknown-fault-rule",
        with_section("[[backend.faults.rules]]\nname = 'flaky'\nkind = 'transient'").replace(
            "gate_free = true", "faults_fired = { flakey = 1 }"
        ),
        "s.toml: expect.faults_fired.flakey: names no fault rule; did you mean 'flaky'?",
    ),
    (
        "options-without-runner",
        with_section("[runner]\noptions = { a = 1 }"),
        's.toml: runner.options: only a custom runner (runner = "module:function") takes options',
    ),
    (
        "cancelled-without-deadline",
        MINIMAL.replace("gate_free = true", "cancelled = true"),
        "s.toml: expect.cancelled: needs runner.cancel_after",
    ),
    (
        "no-expectations",
        MINIMAL.replace("gate_free = true", ""),
        "s.toml: expect: no expectations: a scenario must say what must hold afterwards",
    ),
    (
        "bounds-reversed",
        MINIMAL.replace("gate_free = true", "retries = { at_least = 3, at_most = 1 }"),
        "s.toml: expect.retries: at_most=1 is below at_least=3",
    ),
    (
        "bounds-wrong-type",
        MINIMAL.replace("gate_free = true", 'retries = "x"'),
        's.toml: expect.retries: "x" is not allowed: must be an integer or a table with '
        "at_least and/or at_most",
    ),
    (
        "window-length",
        with_section("[[backend.faults.rules]]\nkind = 'nan'\nwindow = [1.0]"),
        "s.toml: backend.faults.rules[0].window: [1.0] is not allowed: must have exactly 2 items",
    ),
    ("empty-file", "  \n\n", "s.toml: empty file: a scenario needs at least [[probes]] and [e"),
    (
        "binary",
        b"\x89PNG\r\n\x1a\n\x00",
        "s.toml: not UTF-8 text: byte 0x89 at offset 0 cannot be decoded",
    ),
    (
        "huge-integer",
        MINIMAL.replace('"a question?"', '"a question?"\nseed = 1' + "0" * 60),
        "s.toml: seed: 100000000000... (61 digits) is not allowed: must be <= 9223372036854775807",
    ),
    (
        "huge-number",
        with_section("[runner]\nop_timeout = 1" + "0" * 400),
        "s.toml: runner.op_timeout: 100000000000... (401 digits) is not allowed: "
        "is too large for a number",
    ),
    (
        "deep-array",
        with_section("[runner]\noptions = " + "[" * 40 + "]" * 40),
        "nested more than 32 levels deep",
    ),
    (
        "deeper-than-the-parser",
        "x = " + "[" * 5000 + "]" * 5000,
        "s.toml: invalid TOML: nested too deeply to parse (a scenario allows 32 levels)",
    ),
    (
        "runner-expression",
        with_section("[runner]\nrunner = \"os:system('echo hi')\""),
        "s.toml: runner.runner: \"os:system('echo hi')\" is not allowed: must look like "
        '"package.module:function"',
    ),
    (
        "runner-missing-module",
        with_section('[runner]\nrunner = "no_such_module_here:run"'),
        "s.toml: runner.runner: no module named 'no_such_module_here' (the scenario has no "
        "folder); a scenario imports its runner from its own folder only, unless you allow "
        "sys.path with --allow-sys-path-runners",
    ),
    (
        "runner-from-the-standard-library",
        with_section('[runner]\nrunner = "shutil:rmtree"'),
        "s.toml: runner.runner: no module named 'shutil' (the scenario has no folder)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_each_error_is_one_line_naming_file_path_value_and_rule(
    text: str | bytes, expected: str
) -> None:
    message = problem(text)
    assert message.startswith("s.toml: ")
    assert "\n" not in message
    assert expected in message


# -- what the Python API refuses ----------------------------------------------------------

ABLATION = MINIMAL.replace('"delta_kl"', '"adapter_ablation"').replace(
    'prompts = ["a"]', 'prompts = ["a"]\nlams = [0.0, 0.5]'
)

# (scenario, the table that built the object, the key the error's field names, the same
# mistake made through the Python API)
API_COMPLAINTS: list[tuple[str, str, str, str, Callable[[], object]]] = [
    (
        "uniform-high-below-low",
        with_section("[backend.latency]\ndefault = { model = 'uniform', low = 2.0, high = 1.0 }"),
        "backend.latency.default",
        "backend.latency.default.high",
        lambda: Uniform(low=2.0, high=1.0),
    ),
    (
        "latency-rule-model",
        with_section(
            "[[backend.latency.rules]]\nmodel = { model = 'uniform', low = 2.0, high = 1.0 }"
        ),
        "backend.latency.rules[0].model",
        "backend.latency.rules[0].model.high",
        lambda: Uniform(low=2.0, high=1.0),
    ),
    (
        "fault-kind-cannot-target-op",
        with_section("[[backend.faults.rules]]\nkind = 'nan'\nops = ['generate']"),
        "backend.faults.rules[0]",
        "backend.faults.rules[0].ops",
        lambda: FaultRule("nan", ops=("generate",)),
    ),
    (
        "fault-window-reversed",
        with_section("[[backend.faults.rules]]\nkind = 'nan'\nwindow = [5.0, 1.0]"),
        "backend.faults.rules[0]",
        "backend.faults.rules[0].window",
        lambda: FaultRule("nan", window=(5.0, 1.0)),
    ),
    (
        "max-views-on-exclusive",
        with_section("[backend]\nmax_concurrent_views = 4"),
        "backend",
        "backend.max_concurrent_views",
        lambda: AsyncDummyDifferentialBackend(max_concurrent_views=4),
    ),
    (
        "probe-name-empty",
        MINIMAL.replace('name = "dkl"', 'name = ""'),
        "probes[0]",
        "probes[0].name",
        lambda: DeltaKL("", prompts=["a"]),
    ),
    (
        "lams-without-one",
        ABLATION,
        "probes[0]",
        "probes[0].lams",
        lambda: AdapterAblation("dkl", prompts=["a"], lams=[0.0, 0.5]),
    ),
]


@pytest.mark.parametrize(
    ("text", "table", "key", "mistake"),
    [c[1:] for c in API_COMPLAINTS],
    ids=[c[0] for c in API_COMPLAINTS],
)
def test_an_api_complaint_names_the_key_its_field_points_at(
    text: str, table: str, key: str, mistake: Callable[[], object]
) -> None:
    with pytest.raises(InvalidArgumentError) as api:
        mistake()
    message = unlocated(problem(text))
    assert message.endswith(f": {api.value}")
    where = message.removeprefix("s.toml: ").removesuffix(f": {api.value}")
    if api.value.field is None:
        assert where == table  # the table that built the object
    else:
        assert where == key or where.startswith((f"{key}.", f"{key}["))


class _Refusing(DeltaKL):
    """A probe class whose complaint carries a field, as every API complaint will."""

    complaint_field: str | None = None

    def __init__(self, name: str, **kwargs: Any) -> None:
        field = self.complaint_field
        raise InvalidArgumentError("no prompt is welcome", field=field, value=kwargs)


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("prompts", "probes[0].prompts"),
        ("prompts[0]", "probes[0].prompts[0]"),
        ("_Refusing.prompts[0]", "probes[0].prompts[0]"),
        (None, "probes[0]"),
        ("requires", "probes[0]"),
        ("DeltaKL.prompts", "probes[0]"),
        ("prompts[first]", "probes[0]"),
        ("", "probes[0]"),
    ],
)
def test_a_complaints_field_extends_the_key_path_of_the_table(
    monkeypatch: pytest.MonkeyPatch, field: str | None, where: str
) -> None:
    # An argument the table has no key for (requires), another class's field or
    # something that is not an argument path leaves the table's own path.
    monkeypatch.setattr(_Refusing, "complaint_field", field)
    monkeypatch.setitem(PROBE_CLASSES, "delta_kl", _Refusing)
    assert unlocated(problem(MINIMAL)) == f"s.toml: {where}: no prompt is welcome"


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("rules[2].probability", "backend.faults.rules[2].probability"),
        ("FaultPlan.rules[2]", "backend.faults.rules[2]"),
        ("seed", "backend.faults.seed"),
        (None, "backend.faults"),
        ("rules.2", "backend.faults"),
        ("rules[2", "backend.faults"),
    ],
)
def test_api_key_path_maps_a_field_onto_the_table(field: str | None, where: str) -> None:
    assert api_key_path("backend.faults", FaultPlanSpec, FaultPlan, field) == where


def test_scenario_error_is_an_invalid_argument_error() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("", source="s.toml")
    assert isinstance(info.value, InvalidArgumentError)
    assert isinstance(info.value, SwaysimError)


def test_every_problem_is_listed_with_its_line() -> None:
    text = with_section("[runner]\nconcurrency = 0\nretries = -1")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.toml")
    assert info.value.problems == (
        "s.toml: runner.concurrency: 0 is not allowed: must be >= 1 (line 7)",
        "s.toml: runner.retries: -1 is not allowed: must be >= 0 (line 8)",
    )
    assert str(info.value) == "\n".join(info.value.problems)


SEVERAL_MISTAKES = """description = "Every mistake at once?"
seed = 3

[backend]
max_concurrent_views = 2                  # line 5: needs safe_for_concurrent_views

[[backend.faults.rules]]
kind = "transient"
probabilty = 0.3                          # line 9: a typo

[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["q1"]
null = "nul"                              # line 15: no such null_adapter

[[probes]]
kind = "preference_flip"
name = "pref"
triples = [["Q:", " yes"]]                # line 20: a pair, not a triple

[runner]
concurrency = 0                           # line 23

[expect]
verdicts = { dkl = "PASS", pref = "PASS", dlk = "PASS" }   # line 26: dlk matches nothing
faults_fired = { flaky = 1 }              # line 27: no such rule
"""


def test_every_problem_of_every_stage_is_reported_at_once_sorted_by_line() -> None:
    # Schema errors, cross-references and the API's refusals, in one error, by line.
    with pytest.raises(ScenarioError) as info:
        parse_scenario(SEVERAL_MISTAKES, source="s.toml")
    lines = [int(re.findall(r"\(line (\d+)\)$", p)[0]) for p in info.value.problems]
    assert lines == sorted(lines)
    assert [unlocated(p).removeprefix("s.toml: ").split(":")[0] for p in info.value.problems] == [
        "backend.max_concurrent_views",
        "backend.faults.rules[0].probabilty",
        "probes[1].triples[0]",
        "runner.concurrency",
        "expect.verdicts.dlk",
        "expect.faults_fired.flaky",
    ]
    assert lines == [5, 9, 20, 23, 26, 27]


def test_references_are_checked_only_when_every_probe_is_valid() -> None:
    # probes[1] is broken, so "dkl"'s null may name it: no guess about a reference.
    text = SEVERAL_MISTAKES.replace('null = "nul"', 'null = "pref"')
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.toml")
    assert not any("null" in p for p in info.value.problems)
    fixed = text.replace('[["Q:", " yes"]]', '[["Q:", " yes", " no"]]')
    with pytest.raises(ScenarioError) as info:
        parse_scenario(fixed, source="s.toml")
    assert any(
        'probes[0].null: "pref" is not allowed: must name a null_adapter probe' in p
        for p in info.value.problems
    )


def test_a_runner_is_imported_only_from_a_file_with_no_other_problem(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "noisy_runner.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "async def run(*a, **k): return []\n"
    )
    text = with_section('[runner]\nrunner = "noisy_runner:run"\nconcurrency = 0')
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ScenarioError):
        load_scenario(tmp_path / "s.toml")
    assert not marker.exists()


def test_description_is_optional() -> None:
    scenario = parse_scenario(MINIMAL.replace('description = "a question?"\n', ""))
    assert scenario.description == ""


def test_a_byte_order_mark_is_accepted() -> None:
    assert parse_scenario("\ufeff" + MINIMAL).probe_names == ("dkl",)


def test_strings_are_data_never_code(tmp_path: Path) -> None:
    marker = tmp_path / "evaluated"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    scenario = parse_scenario(MINIMAL.replace('prompts = ["a"]', f"prompts = [{payload!r}]"))
    (probe,) = scenario.build_probes()
    assert isinstance(probe, DeltaKL)
    assert probe.prompts == (payload,)
    assert not marker.exists()


def test_unreadable_path_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.toml: cannot read: No such file"):
        load_scenario(tmp_path / "missing.toml")


# -- runner import -----------------------------------------------------------------------


def test_custom_runner_is_found_next_to_the_scenario_and_imported_only_to_run(
    tmp_path: Path,
) -> None:
    module = "swaysim_scenario_neighbour_runner"
    (tmp_path / f"{module}.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('imported').touch()\n"
        "async def run(backend, probes, **options):\n    return []\n"
    )
    path = tmp_path / "s.toml"
    path.write_text(with_section(f'[runner]\nrunner = "{module}:run"'))
    before = list(sys.path)
    scenario = load_scenario(path)
    assert not (tmp_path / "imported").exists()
    assert scenario.runner_target is not None
    assert scenario.runner_target.origin == (tmp_path / f"{module}.py").resolve()
    function = scenario.load_runner()
    assert (tmp_path / "imported").exists()
    assert function is not None
    assert function.__name__ == "run"
    assert module not in sys.modules
    assert sys.path == before


def test_custom_runner_gets_only_the_keys_set_plus_options() -> None:
    scenario = parse_scenario(
        with_section(
            '[runner]\nrunner = "custom_runners:suite"\nconcurrency = 3\noptions = {x = 1}'
        ),
        allow_sys_path_runners=True,
    )
    # suite(**options) accepts any keyword, so it also receives the scenario seed.
    assert scenario.runner_options() == {"concurrency": 3, "x": 1, "seed": 0}
    synchronous = parse_scenario(
        with_section('[runner]\nrunner = "custom_runners:synchronous"'),
        allow_sys_path_runners=True,
    )
    assert synchronous.runner_options() == {}


# -- discovery ---------------------------------------------------------------------------


def test_discovery_recurses_and_skips_pyproject(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.toml", "a.toml", "sub/c.toml", "pyproject.toml", "notes.txt"):
        (tmp_path / name).write_text("")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_scenarios([tmp_path])]
    assert found == ["a.toml", "b.toml", "sub/c.toml"]
    explicit = list(discover_scenarios([tmp_path / "b.toml", tmp_path]))
    assert [p.name for p in explicit] == ["b.toml", "a.toml", "c.toml"]


def test_schema_file_requires_the_top_level_keys_and_forbids_others() -> None:
    schema = json.loads((Path(__file__).parents[2] / "schema" / "scenario.schema.json").read_text())
    assert schema["title"] == "swaysim scenario"
    assert set(schema["required"]) == {"probes", "expect"}
    assert schema["additionalProperties"] is False


def test_a_probes_table_instead_of_an_array_is_one_problem_not_one_per_expectation() -> None:
    text = MINIMAL.replace("[[probes]]", "[probes]").replace(
        "gate_free = true", 'gate_free = true\nverdicts = { dkl = "PASS" }'
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.toml")
    assert [unlocated(p) for p in info.value.problems] == [
        's.toml: probes: {"kind": "delta_kl", "name": "dkl", "prompts": ["a"]} is not '
        "allowed: must be an array"
    ]
