"""The run directories ``swaysim run --trace DIR`` writes: trace and results per scenario, loop.

Shared by ``swaysim run`` and ``swaysim explore`` (which writes its shrunk
scenario's run the same way, so ``swaysim report`` reads either).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from swaysim._files import OutputDirectory, safe_component
from swaysim._trace.schema import RESULTS_FILE, TRACE_FILE
from swaysim._trace.sinks import JsonlTraceWriter
from swaysim.errors import OutputError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from swaysim._scenario.check import ScenarioCheck
    from swaysim._scenario.load import Scenario
    from swaysim._trace.events import TraceSink

__all__ = ["RunDirs"]


class RunDirs:
    """One RUN_DIR (trace.jsonl + results.json) per scenario and loop under ``root``.

    Every folder and file is created through :class:`OutputDirectory`: one
    sanitized name per scenario (``..`` or a separator cannot climb out),
    and a link planted in the tree is refused, never followed. A trace that
    cannot be opened or written, or a results file that cannot be written,
    becomes a line in :attr:`problems`, never an exception: the run goes on,
    its results still reach the summary, ``--json`` and ``--junit``.
    """

    def __init__(self, root: OutputDirectory) -> None:
        self.root = root
        self.used: set[str] = set()
        self.writers: dict[tuple[str, str], JsonlTraceWriter] = {}
        self.problems: list[str] = []

    def folder(self, scenario: Scenario) -> str:
        """A folder name for the scenario, numbered when two scenarios share a name.

        Names are compared without case, so two scenarios never share a folder on a
        case-insensitive file system either.
        """
        base = safe_component(scenario.name, fallback="scenario")
        name, counter = base, 1
        while name.lower() in self.used:
            counter += 1
            name = f"{base}-{counter}"
        self.used.add(name.lower())
        return name

    def _loop_dir(self, folder: str, loop: str) -> OutputDirectory:
        with self.root.subdirectory(folder) as scenario_dir:
            return scenario_dir.subdirectory(loop)

    def trace_for(self, folder: str) -> Callable[[str], TraceSink | None]:
        """The sink factory ``check_scenario`` calls once per loop (None: no trace)."""

        def make(loop: str) -> TraceSink | None:
            try:
                with self._loop_dir(folder, loop) as run_dir:
                    stream = run_dir.create(TRACE_FILE)
                    path = run_dir.path / TRACE_FILE
            except OutputError as exc:
                self.problems.append(f"no trace for {folder} on {loop}: {exc}")
                return None
            writer = JsonlTraceWriter(path, stream=stream)
            self.writers[folder, loop] = writer
            return writer

        return make

    def _close_trace(self, folder: str, loop: str) -> dict[str, object]:
        """Close the loop's trace; what ``results.json`` says about it."""
        writer = self.writers.pop((folder, loop), None)
        if writer is None:
            return {"file": TRACE_FILE, "complete": False, "error": "not written"}
        writer.close()
        error = writer.error
        if error is not None:
            self.problems.append(
                f"trace {writer.path} is incomplete: {error.strerror or error} "
                f"({writer.events_dropped:,} events not written)"
            )
        return {
            "file": TRACE_FILE,
            "complete": writer.complete,
            "events_written": writer.events_written,
            "events_dropped": writer.events_dropped,
            "error": None if error is None else str(error),
        }

    def close(self) -> None:
        """Close every trace still open (a run cut short): what was emitted is kept."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    def finish(self, folder: str, checks: Sequence[ScenarioCheck]) -> None:
        """Close each loop's trace and write its results next to it, noting what failed."""
        for check in checks:
            trace = self._close_trace(folder, check.loop)
            if check.ran is None:
                continue  # skipped for this runner: nothing ran, nothing to report
            document = {**check.results_document(), "trace": trace}
            data = json.dumps(document, indent=2, default=str).encode("utf-8")
            try:
                with self._loop_dir(folder, check.loop) as run_dir:
                    run_dir.write_bytes(RESULTS_FILE, data)
            except OSError as exc:
                self.problems.append(
                    f"no {RESULTS_FILE} for {folder} on {check.loop}: {exc.strerror or exc}"
                )
            except OutputError as exc:
                self.problems.append(f"no {RESULTS_FILE} for {folder} on {check.loop}: {exc}")
