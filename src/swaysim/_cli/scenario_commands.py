"""``swaysim validate``, ``swaysim new`` and ``swaysim schema``: write and check scenario files."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import click

from swaysim._cli.common import (
    ALLOW_SYS_PATH_RUNNERS,
    EXIT_INVALID,
    count,
    fail,
    load_scenarios,
    say,
    write_output,
)
from swaysim._scenario.reference import scenario_json_schema, scenario_reference

__all__ = ["new", "schema", "schema_text", "starter_text", "validate"]


@click.command(short_help="Check scenario files without running them.")
@click.argument("paths", nargs=-1, required=True)
@ALLOW_SYS_PATH_RUNNERS
def validate(paths: tuple[str, ...], allow_sys_path_runners: bool) -> None:
    """Check scenario files without running them: every problem of a file at once, by line.

    Exit status 2 when any file is invalid. Never imports a scenario's runner:
    its module is located and its source read.
    """
    scenarios = load_scenarios(paths, allow_sys_path_runners=allow_sys_path_runners)
    for scenario in scenarios:
        probes = count(len(scenario.probe_plan), "probe")
        keys = count(len(scenario.spec.expect.model_fields_set), "expectation key")
        say(f"{scenario.source}: ok ({scenario.name}: {probes}, {keys})", err=False)


def starter_text(name: str, file: str) -> str:
    """The commented starting scenario ``swaysim new`` writes (it validates and passes)."""
    template = (
        resources.files("swaysim._scenario").joinpath("starter.toml").read_text(encoding="utf-8")
    )
    return template.replace("{{name}}", name).replace("{{file}}", file)


@click.command(short_help="Write a commented starting scenario, NAME.toml.")
@click.argument("name")
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def new(name: str, force: bool) -> None:
    """Write NAME.toml: a commented scenario that runs as is, to edit into your own."""
    path = Path(name if name.endswith(".toml") else f"{name}.toml")
    stem = path.stem
    if not stem or not stem.replace("-", "_").isidentifier():
        fail(f"new {name}: the name must be letters, digits, '_' or '-' (it names the scenario)")
    if path.exists() and not force:
        say(f"{path}: already exists; pick another name or pass --force")
        raise SystemExit(EXIT_INVALID)
    text = starter_text(stem, str(path))
    write_output("NAME", str(path), text.encode("utf-8"))
    click.echo(f"wrote {path}; run it with: swaysim run {path}")


def schema_text() -> str:
    """The scenario JSON Schema exactly as committed in schema/scenario.schema.json."""
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=False) + "\n"


@click.command(short_help="Print the scenario JSON Schema, or its Markdown reference.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option(
    "--reference",
    is_flag=True,
    help="Every key with its type, default, meaning and an example, as Markdown "
    "(docs/scenario-reference.md).",
)
def schema(output: str | None, reference: bool) -> None:
    """Print the scenario JSON Schema (for editor completion), or with --reference the
    Markdown reference of every key."""
    text = scenario_reference() if reference else schema_text()
    if output:
        write_output("--output", output, text.encode("utf-8"))
    else:
        click.echo(text, nl=False)
