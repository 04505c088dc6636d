"""Writing a scenario: the generated key reference, the starting scenario, the messages.

``docs/scenario-reference.md`` is generated from the schema; these tests keep the
committed page in step with it, check that it names every key of every table,
and that each example it shows is a value the loader accepts at that key.
"""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from swaysim._cli.main import cli
from swaysim._cli.scenario_commands import starter_text
from swaysim._scenario import expect_schema, spec_base
from swaysim._scenario import schema as schema_module
from swaysim._scenario.reference import EXAMPLES, scenario_reference
from swaysim.scenario import check_scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "scenario-reference.md"
SCHEMA_MODULES = (spec_base, expect_schema, schema_module)
MODELS = {
    name: model
    for module in SCHEMA_MODULES
    for name, model in vars(module).items()
    if isinstance(model, type) and issubclass(model, BaseModel) and name.endswith(("Spec", "s"))
    if model.__module__ == module.__name__ and model.model_fields
}


def test_the_committed_reference_is_what_the_schema_generates() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == scenario_reference(), (
        "regenerate with: swaysim schema --reference -o docs/scenario-reference.md"
    )


def test_every_key_of_every_table_has_a_meaning_and_a_row() -> None:
    text = scenario_reference()
    for name, model in MODELS.items():
        for key, info in model.model_fields.items():
            assert info.description, f"{name}.{key} has no docstring (its meaning)"
            assert f"| `{key}` |" in text, f"{name}.{key} missing from the reference"


def _example_value(example: str) -> object:
    return tomllib.loads(f"value = {example}")["value"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_tables_examples_together_are_a_valid_table(name: str) -> None:
    # Every key's example at once: each is a value the schema accepts there.
    model = MODELS[name]
    values: dict[str, object] = {}
    if name == "ScenarioSpec":  # its tables have sections (and examples) of their own
        values["probes"] = [{"kind": "delta_kl", "name": "dkl", "prompts": ["q"]}]
        values["expect"] = {"gate_free": True}
    for key, info in model.model_fields.items():
        example = EXAMPLES.get(f"{name}.{key}")
        tag = typing.get_args(info.annotation)
        if example is not None:
            values[key] = _example_value(example)
        elif typing.get_origin(info.annotation) is typing.Literal:
            values[key] = tag[0]  # the reference shows the one value a tag can take
        elif info.is_required() and key not in values:
            pytest.fail(f"{name}.{key} is required and has no example")
    model.model_validate(values)


def test_every_example_names_a_key_that_exists() -> None:
    for entry in EXAMPLES:
        model, key = entry.split(".")
        assert key in MODELS[model].model_fields, entry


def test_the_reference_lists_required_keys_and_defaults() -> None:
    text = scenario_reference()
    probes = re.search(r"\| `probes` \|[^\n]*", text)
    assert probes is not None
    assert "**required**" in probes.group()
    description = re.search(r"\| `description` \|[^\n]*", text)
    assert description is not None
    assert "unset" in description.group()
    assert "| `retries` | integer, 0 to 1000 | `2` |" in text


def test_new_writes_a_commented_scenario_that_validates_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    if True:
        result = runner.invoke(cli, ["new", "my_check"])
        assert result.exit_code == 0, result.output
        assert result.stdout == "wrote my_check.toml; run it with: swaysim run my_check.toml\n"
        text = Path("my_check.toml").read_text()
        assert text.count("#") > 20  # commented, key by key
        scenario = load_scenario("my_check.toml")
        assert scenario.name == "my_check"
        assert scenario.description.endswith("?")
        assert all(check.ok for check in check_scenario(scenario))
        again = runner.invoke(cli, ["new", "my_check"])
        assert again.exit_code == 2
        assert "already exists" in again.stderr
        assert runner.invoke(cli, ["new", "my_check.toml", "--force"]).exit_code == 0


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_the_starting_scenario_holds_for_other_seeds(seed: int) -> None:
    scenario = parse_scenario(starter_text("s", "s.toml").replace("seed = 1 ", f"seed = {seed} "))
    assert scenario.seed == seed
    assert all(check.ok for check in check_scenario(scenario))


def test_new_refuses_a_name_that_cannot_name_a_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "no such dir" / "x y")])
    assert result.exit_code == 2
    assert "must be letters, digits" in result.stderr


def test_help_summaries_are_whole_sentences() -> None:
    # click cuts a summary that does not fit at 80 columns with "..."; none may be cut.
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1]
    assert "..." not in commands, commands
    for group in (["trace"],):
        text = CliRunner().invoke(cli, [*group, "--help"], terminal_width=80).stdout
        assert "..." not in text.split("Commands:")[1], text
