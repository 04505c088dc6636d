"""The scenario format for people and editors: the JSON Schema and a Markdown reference.

:func:`scenario_json_schema` is what ``swaysim schema`` prints (editor
completion); :func:`scenario_reference` is ``docs/scenario-reference.md``
(``swaysim schema --reference``): every table and key of a scenario with its
type, default, meaning and an example, generated from that same schema, so
the two cannot drift (a test compares the committed files with what these
functions produce). Meanings are the schema's field docstrings; examples come
from :data:`EXAMPLES`, or from the default when a key has a useful one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from swaysim._scenario.schema import SCHEMA_ID, ScenarioSpec

if TYPE_CHECKING:
    from pydantic import JsonValue

__all__ = ["EXAMPLES", "scenario_json_schema", "scenario_reference"]

Node = dict[str, "JsonValue"]


def _without_null(node: JsonValue) -> JsonValue:
    """TOML has no null: an optional key is simply absent, so drop null from the schema."""
    if isinstance(node, list):
        return [_without_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _without_null(value) for key, value in node.items()}
    default = out.get("default", 0)
    if default is None:
        del out["default"]
    elif isinstance(default, dict):
        out["default"] = {k: v for k, v in default.items() if v is not None}
    options = out.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            del out["anyOf"]
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    return out


def scenario_json_schema() -> dict[str, JsonValue]:
    """The JSON Schema of a scenario file, for editor completion (``swaysim schema``)."""
    schema = _without_null(ScenarioSpec.model_json_schema())
    assert isinstance(schema, dict)  # a model's schema is an object
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


# -- the Markdown reference -------------------------------------------------------------

EXAMPLES: Final[dict[str, str]] = {
    "ScenarioSpec.name": '"flaky_ft_view"',
    "ScenarioSpec.description": '"Does the retry policy get every probe through a flaky ft view?"',
    "ScenarioSpec.seed": "21",
    "BackendSpec.max_concurrent_views": "2",
    "BackendSpec.max_concurrent_ops": "4",
    "BackendSpec.schedule_jitter": "7",
    "BackendSpec.safe_for_concurrent_views": "true",
    "BackendSpec.exclusivity": '"strict"',
    "ResponsesSpec.generations": '{ "hi" = "hello" }',
    "LogprobSpec.prompt": '"Reply to the customer"',
    "LogprobSpec.completion": '" Certainly!"',
    "LogprobSpec.logprob": "-1.0",
    "TokenDistSpec.token_ids": "[5, 9, 2]",
    "TokenDistSpec.logprobs": "[-0.5, -1.5, -2.5]",
    "TokenDistSpec.vocab_size": "1000",
    "TokenDistSpec.tail_logprob": "-3.0",
    "RollingSpec.token_ids": "[1, 2, 3]",
    "RollingSpec.logprobs": "[-1.0, -2.0]",
    "RollingSpec.num_tokens": "3",
    "RollingSpec.total_logprob": "-3.0",
    "LatencyPlanSpec.seed": "7",
    "LatencyPlanSpec.default": '{ model = "lognormal", median = 0.05, sigma = 0.5 }',
    "LatencyPlanSpec.generate_per_token": '{ model = "constant", seconds = 0.01 }',
    "LatencyPlanSpec.batch_per_item": '{ model = "constant", seconds = 0.005 }',
    "LatencyPlanSpec.view_switch": '{ model = "constant", seconds = 2.0 }',
    "LatencyPlanSpec.view_enter": '{ model = "uniform", low = 0.01, high = 0.05 }',
    "LatencyPlanSpec.view_exit": '{ model = "constant", seconds = 0.01 }',
    "LatencyRuleSpec.model": '{ model = "uniform", low = 0.2, high = 0.4 }',
    "LatencyRuleSpec.ops": '["generate"]',
    "LatencyRuleSpec.views": '["ft", "scaled_0.50"]',
    "ConstantSpec.seconds": "0.25",
    "ConstantSpec.jitter": "0.01",
    "UniformSpec.low": "0.01",
    "UniformSpec.high": "0.05",
    "UniformSpec.jitter": "0.01",
    "LogNormalSpec.median": "0.05",
    "LogNormalSpec.sigma": "0.5",
    "LogNormalSpec.jitter": "0.01",
    "FaultPlanSpec.seed": "7",
    "FaultRuleSpec.kind": '"transient"',
    "FaultRuleSpec.name": '"flaky-ft"',
    "FaultRuleSpec.ops": '["next_token_dist"]',
    "FaultRuleSpec.views": '["ft"]',
    "FaultRuleSpec.prompt": '"q*"',
    "FaultRuleSpec.nth": "1",
    "FaultRuleSpec.after": "10",
    "FaultRuleSpec.every": "5",
    "FaultRuleSpec.probability": "0.3",
    "FaultRuleSpec.max_fires": "2",
    "FaultRuleSpec.window": "[1.0, 5.0]",
    "DeltaKLSpec.name": '"dkl"',
    "DeltaKLSpec.repeat": "3",
    "DeltaKLSpec.prompts": '["q{i} alpha", "q{i} beta"]',
    "DeltaKLSpec.null": '"null"',
    "AdapterAblationSpec.name": '"ablation"',
    "AdapterAblationSpec.repeat": "2",
    "AdapterAblationSpec.prompts": '["q1"]',
    "NullAdapterSpec.name": '"null"',
    "NullAdapterSpec.repeat": "2",
    "NullAdapterSpec.target": '"dkl"',
    "PreferenceFlipSpec.name": '"pref"',
    "PreferenceFlipSpec.repeat": "2",
    "PreferenceFlipSpec.triples": '[["Reply", " Certainly!", " No."]]',
    "PreferenceFlipSpec.null": '"null"',
    "PerplexityShiftSpec.name": '"ppl"',
    "PerplexityShiftSpec.repeat": "2",
    "PerplexityShiftSpec.texts": '["some held out text"]',
    "PerplexityShiftSpec.null": '"null"',
    "FunctionProbeSpec.name": '"sync-gain"',
    "FunctionProbeSpec.repeat": "2",
    "FunctionProbeSpec.function": '"my_probes:logprob_gain"',
    "FunctionProbeSpec.requires": '["dkl"]',
    "FunctionProbeSpec.options": '{ prompt = "q1", completion = " yes" }',
    "RunnerSpec.runner": '"my_pkg.runners:run"',
    "RunnerSpec.concurrency": "4",
    "RunnerSpec.op_timeout": "5.0",
    "RunnerSpec.probe_timeout": "60.0",
    "RunnerSpec.retries": "4",
    "RunnerSpec.seed": "3",
    "RunnerSpec.mode": '"naive"',
    "RunnerSpec.cancel_after": "3.0",
    "RunnerSpec.options": "{ batch_size = 8 }",
    "RunnerSpec.reference_only": '"it measures run_suite\'s naive mode"',
    "ExpectSpec.verdicts": '{ "dkl-*" = "PASS", pref = ["PASS", "WARN"] }',
    "ExpectSpec.verdict_counts": "{ PASS = 3, ERROR = 0 }",
    "ExpectSpec.no_false_pass": "true",
    "ExpectSpec.aborted": "true",
    "ExpectSpec.cancelled": "true",
    "ExpectSpec.peak_live_views": "1",
    "ExpectSpec.view_switches": "{ at_most = 3 }",
    "ExpectSpec.makespan": "{ at_most = 60.0 }",
    "ExpectSpec.faults_fired": "{ flaky-ft = { at_least = 1 } }",
    "ExpectSpec.retries": "{ at_least = 1 }",
    "ExpectSpec.timeouts": "0",
    "ExpectSpec.retry_delay": "{ at_least = 1.0, at_most = 2.0 }",
    "ExpectSpec.retry_backoff": "true",
    "ExpectSpec.op_timeout_applied": "true",
    "ExpectSpec.work_conserving": "true",
    "ExpectSpec.gate_free": "true",
    "ExpectSpec.identical_across_loops": "true",
    "ExpectSpec.matches_reference": "true",
    "ExpectSpec.calls_per_view": '{ ft = { at_most = 11 }, "scaled_0.50" = 4 }',
    "ExpectSpec.duplicate_requests": "0",
    "ExpectSpec.view_entries": "{ at_most = 6 }",
    "ExpectSpec.peak_ops_in_flight": "{ at_most = 32 }",
    "ExpectSpec.cancelled_ops": "{ at_least = 1 }",
    "ExpectSpec.reference": "{ view_switches = 3 }",
    "ExpectSpec.optional": '["identical_across_loops"]',
    "CountBounds.at_least": "1",
    "CountBounds.at_most": "15",
    "SecondsBounds.at_least": "2.0",
    "SecondsBounds.at_most": "60.0",
    "VerdictCounts.PASS": "3",
    "VerdictCounts.FAIL": "0",
    "VerdictCounts.WARN": "{ at_most = 1 }",
    "VerdictCounts.SKIP": "0",
    "VerdictCounts.ERROR": "1",
}
EXAMPLES.update(
    {
        f"ExpectKeys.{key}": value
        for entry, value in list(EXAMPLES.items())
        for model, _, key in [entry.partition(".")]
        if model == "ExpectSpec" and key not in ("reference", "optional")
    }
)
"""An example value (TOML) per ``Model.key``; a key not listed shows its default instead.
``[expect.reference]`` (``ExpectKeys``) takes ``[expect]``'s keys, with the same examples."""

_INTRO: Final = """\
# Scenario reference

Every table and key of a scenario file, generated from the scenario schema
(`swaysim schema --reference -o docs/scenario-reference.md`; a test keeps this
page, [`schema/scenario.schema.json`](../schema/scenario.schema.json) and the
loader in step). A key is optional unless marked **required**; an optional key
with no default is simply left out. `swaysim new NAME` writes a commented
starting scenario, and `swaysim validate FILE` lists every problem in a file
at once, by line.

The smallest scenario a file can be:

```toml
[[probes]]
kind = "delta_kl"
name = "dkl"
prompts = ["The capital of France is"]

[expect]
verdicts = { dkl = "PASS" }
```
"""


def _ref_name(node: Node) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _variants(node: Node) -> list[str]:
    """The definitions of a discriminated union (``oneOf`` with a mapping), in order."""
    options = node.get("oneOf")
    if not isinstance(options, list):
        return []
    return [name for option in options if isinstance(option, dict) and (name := _ref_name(option))]


def _markdown(text: str) -> str:
    """A docstring's reST literals as Markdown code, on one line, safe in a table cell."""
    text = " ".join(text.split()).replace("``", "`")
    return text.replace("|", "\\|")


def _number_range(node: Node, kind: str) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    above = node.get("exclusiveMinimum")
    big = isinstance(high, int | float) and high >= 2**62
    if above is not None:
        return f"{kind} > {above:g}" if isinstance(above, int | float) else kind
    bounded = isinstance(low, int | float) and isinstance(high, int | float) and not big
    if bounded and isinstance(high, int | float) and high <= 1000:
        return f"{kind}, {low:g} to {high:g}"
    if isinstance(low, int | float) and low >= 0:
        return f"{kind} ≥ {low:g}"
    return kind


@dataclass
class _Walk:
    """Collects where each definition is used while rendering types."""

    defs: dict[str, Node]
    uses: dict[str, list[str]] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)

    def use(self, name: str, where: str) -> str:
        if name not in self.uses:
            self.uses[name] = []
            self.queue.append(name)
        if where not in self.uses[name]:
            self.uses[name].append(where)
        return name

    def type_of(self, node: Node, where: str, *, inline: bool = False) -> str:
        """A key's type in words, noting every table definition it leads to."""
        ref = _ref_name(node)
        if ref is not None:
            if inline:
                keys = self.defs[ref].get("properties", {})
                assert isinstance(keys, dict)
                self.use(ref, where)
                return f"`{{ {', '.join(keys)} }}`"
            self.use(ref, f"[{where}]")
            return f"table `[{where}]`"
        variants = _variants(node)
        if variants:
            for name in variants:
                self.use(name, where)
            tag = node.get("discriminator", {})
            tag_key = tag.get("propertyName") if isinstance(tag, dict) else "?"
            return f"inline table, `{tag_key}` picks which (below)"
        options = node.get("anyOf")
        if isinstance(options, list):
            words = [self.type_of(o, where, inline=True) for o in options if isinstance(o, dict)]
            if len(words) == 2 and words[1] == f"array of {words[0]}":
                return f"{words[0]}, or an array of them"
            return " or ".join(dict.fromkeys(words))
        if "enum" in node or "const" in node:
            values = node.get("enum", [node.get("const")])
            assert isinstance(values, list)
            return " or ".join(f"`{json.dumps(v)}`" for v in values)
        return self._plain_type(node, where)

    def _plain_type(self, node: Node, where: str) -> str:
        kind = node.get("type")
        if kind == "array":
            items = node.get("items")
            assert isinstance(items, dict)
            tables = [_ref_name(items)] if _ref_name(items) else _variants(items)
            if tables:
                for name in tables:
                    self.use(str(name), f"[[{where}]]")
                return f"array of tables `[[{where}]]`"
            text = f"array of {self.type_of(items, where)}"
            low, high = node.get("minItems"), node.get("maxItems")
            if low is not None and low == high:
                return f"{text}, exactly {low}"
            return f"{text}, at least {low}" if low else text
        if kind == "object":
            values = node.get("additionalProperties")
            if isinstance(values, dict) and values:
                inner = self.type_of(values, where + '."<key>"')
                return f"table of {inner}"
            return "table (any keys)"
        if kind == "string":
            if "pattern" in node:
                return 'string `"module:function"`'
            return "non-empty string" if node.get("minLength") else "string"
        if kind in ("integer", "number"):
            return _number_range(node, str(kind))
        if kind == "boolean":
            return "`true` or `false`"
        return str(kind)


def _toml(value: JsonValue) -> str:
    """A JSON default written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _is_table(node: Node) -> bool:
    """A key whose value is a table (or array of tables) with a section of its own."""
    items, values = node.get("items"), node.get("additionalProperties")
    return _ref_name(node) is not None or any(
        isinstance(inner, dict) and (_ref_name(inner) is not None or bool(_variants(inner)))
        for inner in (items, values)
    )


def _example(model: str, key: str, node: Node) -> str:
    example = EXAMPLES.get(f"{model}.{key}")
    if example is None and _is_table(node):
        return "below"
    if example is None and "const" in node:
        example = json.dumps(node["const"])
    if example is None and node.get("default") not in (None, [], {}, ""):
        example = _toml(node.get("default"))
    if example is None:
        raise KeyError(f"no example for {model}.{key}: add one to EXAMPLES")
    return f"`{key} = {example}`".replace("|", "\\|")


def _default(key: str, node: Node, required: set[str]) -> str:
    if key in required:
        return "**required**"
    if _is_table(node) and "default" in node:
        return "its keys' defaults"
    if "default" not in node or node["default"] in ({}, []):
        return "unset"
    return f"`{_toml(node['default'])}`".replace("|", "\\|")


def _table(name: str, node: Node, walk: _Walk, prefix: str) -> str:
    properties = node.get("properties", {})
    assert isinstance(properties, dict)
    listed = node.get("required", [])
    required = {str(key) for key in listed} if isinstance(listed, list) else set()
    rows = ["| key | type | default | meaning | example |", "| --- | --- | --- | --- | --- |"]
    for key, child in properties.items():
        assert isinstance(child, dict)
        where = f"{prefix}.{key}" if prefix else key
        rows.append(
            f"| `{key}` | {walk.type_of(child, where)} | {_default(key, child, required)} | "
            f"{_markdown(str(child.get('description', '')))} | {_example(name, key, child)} |"
        )
    return "\n".join(rows)


def _prefix(name: str, walk: _Walk) -> str:
    """The key path a definition's own keys extend (its first use, without brackets)."""
    return _strip_brackets(walk.uses.get(name, [""])[0])


def _section(name: str, walk: _Walk) -> str:
    node = walk.defs[name]
    description = _markdown(str(node.get("description", "")))
    table = _table(name, node, walk, _prefix(name, walk))
    uses = walk.uses[name]
    where = ""
    if not all(use.startswith("[") for use in uses):
        where = "Written as an inline table at " + ", ".join(f"`{use}`" for use in uses) + ".\n\n"
    return f"## {_heading(name, walk)}\n\n{description}\n\n{where}{table}\n"


def scenario_reference() -> str:
    """``docs/scenario-reference.md``: every key of a scenario, from the JSON Schema."""
    schema = scenario_json_schema()
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    walk = _Walk({k: v for k, v in defs.items() if isinstance(v, dict)})
    root = {k: v for k, v in schema.items() if k != "$defs"}
    parts = [_INTRO, f"## Top level\n\n{_markdown(str(root.get('description', '')))}\n"]
    parts.append(_table("ScenarioSpec", root, walk, "") + "\n")
    # Each table is listed where it is first reached (the top level's keys, in order).
    for name in iter_queue(walk):
        parts.append(_section(name, walk))
    unreached = sorted(set(walk.defs) - set(walk.uses))
    assert not unreached, f"tables the reference never reaches: {unreached}"
    return "\n".join(parts)


def iter_queue(walk: _Walk) -> list[str]:
    """Definitions in the order they are first used (rendering one may reach more)."""
    done: list[str] = []
    while len(done) < len(walk.queue):
        name = walk.queue[len(done)]
        done.append(name)
        # Render at every table that uses it, to discover the definitions it leads to.
        for use in list(walk.uses[name]):
            _table(name, walk.defs[name], walk, _strip_brackets(use))
    return done


def _strip_brackets(use: str) -> str:
    return re.sub(r"^\[+|\]+$", "", use)


def _heading(name: str, walk: _Walk) -> str:
    node = walk.defs[name]
    properties = node.get("properties", {})
    assert isinstance(properties, dict)
    tags = [
        f'{key} = "{child["const"]}"'
        for key, child in properties.items()
        if isinstance(child, dict) and "const" in child
    ]
    uses = walk.uses[name]
    tables = ", ".join(f"`{use}`" for use in uses if use.startswith("["))
    if tags:
        return f"{tables} with `{tags[0]}`" if tables else f"{_words(name)}: `{tags[0]}`"
    return tables or _words(name)


def _words(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Spec")).lower().capitalize()
