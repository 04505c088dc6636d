"""The ``swaysim`` command line: run and validate scenarios, print the schema, read traces.

Each command group lives in its own module (:mod:`~swaysim._cli.run`,
:mod:`~swaysim._cli.scenario_commands`, :mod:`~swaysim._cli.trace_commands`);
this module assembles them. Exit codes: 0 when every expectation holds, 1
when any fails, 2 on invalid input (a malformed scenario, a missing path, a
bad option).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from swaysim._cli.common import EXIT_INTERRUPTED, fail, interrupted, say
from swaysim._cli.explore import explore
from swaysim._cli.run import run
from swaysim._cli.scenario_commands import new, schema, validate
from swaysim._cli.trace_commands import report, trace
from swaysim.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="swaysim", prog_name="swaysim")
def cli() -> None:
    """swaysim: a deterministic, async test double for LLM differential backends."""


@cli.command(short_help="Drive one backend on both event loops; say what happened.")
def demo() -> None:
    """Drive one backend concurrently on both event loops and say what happened."""
    from swaysim._cli.demo import main as demo_main

    demo_main()


for _command in (run, explore, new, validate, schema, report, trace):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``swaysim``) and ``python -m swaysim``.

    Ctrl-C is one line and exit 130 on either loop (click alone would show
    trio's exception group); a bad ``SWAYSIM_MAX_*`` limit is one line and exit 2.
    """
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="swaysim")
    except InvalidArgumentError as exc:
        fail(str(exc))
    except BaseException as exc:
        if not interrupted(exc):
            raise
        say("swaysim: interrupted")
        sys.exit(EXIT_INTERRUPTED)
