"""Writing what exploration found: the shrunk scenario file, its trace, its replay command.

The file is the shrunk document in the scenario format, loaded back through the
loader before anything else is written (so it is valid against the schema),
with ``[expect]`` set to the violated property and a header saying what broke
and how to replay it. The trace and ``results.json`` next to it are what
``swaysim run FILE --runner ... --trace DIR`` writes, so ``swaysim report``
reads them as it reads any run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import tomli_w

from swaysim._files import OutputDirectory, safe_component
from swaysim._scenario.check import check_scenario
from swaysim._scenario.load import load_scenario, parse_scenario
from swaysim._scenario.run_dirs import RunDirs

if TYPE_CHECKING:
    from swaysim._explore.generate import Document
    from swaysim._explore.shrink import Shrunk
    from swaysim._scenario.load import Scenario

__all__ = ["Written", "scenario_text", "write_found"]

_SCALAR_ARRAY: Final = re.compile(r"= \[\n((?:    [^\n\[\]{}]*,\n)+)\]")
"""A multi-line array of scalars as ``tomli_w`` writes it: shown on one line instead."""


@dataclass(frozen=True, slots=True)
class Written:
    """Where the shrunk scenario and its trace went, and the command that replays it."""

    path: Path
    trace_dir: Path | None
    replay: str

    def __repr__(self) -> str:
        return f"<Written {str(self.path)!r}: replay with {self.replay!r}>"


def _one_line(match: re.Match[str]) -> str:
    items = [line.strip().rstrip(",") for line in match.group(1).splitlines()]
    return "= [" + ", ".join(items) + "]"


def scenario_text(document: Document, header: list[str]) -> str:
    """The document as a scenario file, ``header`` lines as comments on top."""
    body = _SCALAR_ARRAY.sub(_one_line, tomli_w.dumps(document))
    comments = "".join(f"# {line}\n" for line in header)
    return f"{comments}{body}"


def write_found(
    shrunk: Shrunk, *, runner: str, loop: str, seed: int, source: str, out: Path
) -> Written:
    """Write the shrunk scenario to ``out`` (and its trace); what was written and the replay."""
    name = safe_component(f"{Path(source).stem}-{shrunk.failure.key}-seed{seed}", fallback="found")
    document = {**shrunk.document, "name": name}
    document["description"] = (
        f"Found by swaysim explore from {source} (trial seed {seed}): the runner under test "
        f"breaks {shrunk.failure.key} here; the reference runner does not."
    )
    header = [
        f"Found by `swaysim explore` against {runner} on {loop}, trial seed {seed}.",
        f"Violated: {shrunk.failure.key}: {shrunk.failure.observed}"[:300],
        f"Shrunk in {shrunk.steps} steps ({shrunk.runs} candidate runs).",
    ]
    text = scenario_text(document, header)
    base = Path(source)
    located = parse_scenario(text, source=name, path=base if base.is_file() else None)
    root = OutputDirectory.open_root(out, option="--out")
    with root:
        _copy_functions(located, root)
        root.write_bytes(f"{name}.toml", text.encode("utf-8"))
        path = out / f"{name}.toml"
        trace_dir = _trace(path, runner, loop, root, name)
    scenario = load_scenario(path)
    replay = scenario.replay_command(loop) + f" --runner {runner}"
    return Written(path, trace_dir, replay)


def _copy_functions(scenario: Scenario, root: OutputDirectory) -> None:
    """Copy the function probes' modules from the base scenario's folder next to the file,
    so that it finds them there as the base file did (a module from ``sys.path`` stays put)."""
    for target in scenario.function_targets.values():
        if target.folder is None or target.package is None:
            continue
        top = target.module.split(".")[0]
        module = target.folder / f"{top}.py"
        if module.is_file():
            root.write_bytes(module.name, module.read_bytes())
        elif (target.folder / top).is_dir():
            _copy_tree(target.folder / top, root)


def _copy_tree(folder: Path, root: OutputDirectory) -> None:
    with root.subdirectory(folder.name) as copy:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and entry.name != "__pycache__":
                _copy_tree(entry, copy)
            elif entry.is_file() and entry.suffix == ".py":
                copy.write_bytes(entry.name, entry.read_bytes())


def _trace(path: Path, runner: str, loop: str, root: OutputDirectory, name: str) -> Path | None:
    """The failing run traced into ``root/<name>/<loop>/`` (what ``swaysim report`` reads)."""

    run_dirs = RunDirs(root)
    scenario = load_scenario(path)
    folder = run_dirs.folder(scenario)
    try:
        checks = check_scenario(
            scenario, [loop], runner=runner, trace_for=run_dirs.trace_for(folder)
        )
        run_dirs.finish(folder, checks)
    finally:
        run_dirs.close()
    return None if run_dirs.problems else root.path / folder / loop
