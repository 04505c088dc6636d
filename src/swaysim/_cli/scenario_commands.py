"""``swaysim validate`` and ``swaysim schema``: check scenario files, print their JSON Schema."""

from __future__ import annotations

import json

import click

from swaysim._cli.common import (
    ALLOW_SYS_PATH_RUNNERS,
    count,
    load_scenarios,
    say,
    write_output,
)
from swaysim._scenario.schema import scenario_json_schema

__all__ = ["schema", "schema_text", "validate"]


@click.command()
@click.argument("paths", nargs=-1, required=True)
@ALLOW_SYS_PATH_RUNNERS
def validate(paths: tuple[str, ...], allow_sys_path_runners: bool) -> None:
    """Check scenario files without running them (exit 2 when any is invalid).

    Never imports a scenario's runner: its module is located and its source read.
    """
    scenarios = load_scenarios(paths, allow_sys_path_runners=allow_sys_path_runners)
    for scenario in scenarios:
        probes = count(len(scenario.probe_plan), "probe")
        keys = count(len(scenario.spec.expect.model_fields_set), "expectation key")
        say(f"{scenario.source}: ok ({scenario.name}: {probes}, {keys})", err=False)


def schema_text() -> str:
    """The scenario JSON Schema exactly as committed in schema/scenario.schema.json."""
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=False) + "\n"


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
def schema(output: str | None) -> None:
    """Print the scenario JSON Schema (for editor completion)."""
    text = schema_text()
    if output:
        write_output("--output", output, text.encode("utf-8"))
    else:
        click.echo(text, nl=False)
