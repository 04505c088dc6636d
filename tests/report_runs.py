"""Run directories for report tests: a backend driven directly, traced as ``swaysim run`` would.

Shared by the rendering tests (tests/unit/test_report_render.py), the
browser tests (tests/browser/test_report.py) and ``make screenshot``
(tests/browser/screenshot.py). Task names are renumbered, so the same call
writes the same trace, and so the same report, every time.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    FaultPlan,
    FaultRule,
    InjectedFault,
    JsonlTraceWriter,
    LatencyPlan,
    LogNormal,
    TraceEvent,
    run,
    write_report,
)

VERDICTS = ("PASS", "FAIL", "WARN", "PASS", "ERROR", "SKIP")


class RenumberedWriter:
    """A JSONL sink that renames tasks ``name#1``, ``name#2``... in order of appearance.

    anyio task ids are memory addresses; renumbering makes the report (and so
    the committed screenshot) identical from run to run.
    """

    def __init__(self, writer: JsonlTraceWriter) -> None:
        self.writer = writer
        self.names: dict[str, str] = {}

    def emit(self, event: TraceEvent) -> None:
        task = self.names.get(event.task)
        if task is None:
            name = event.task.rpartition("#")[0]
            task = self.names[event.task] = f"{name}#{len(self.names) + 1}"
        self.writer.emit(
            TraceEvent(
                event.kind,
                event.time,
                task,
                event.view,
                event.op,
                event.prompt_hash,
                event.hit,
                event.duration,
                event.detail,
            )
        )


def make_run_dir(
    run_dir: Path, *, workers: int = 6, prompts: int = 12, message: str = "", task_name: str = ""
) -> Path:
    """A run directory as ``swaysim run --trace`` writes it, from a backend driven directly.

    Each worker is one probe: it enters base or ft, scores ``prompts`` prompts
    (retrying transient faults) and reports a verdict; probe and retry events
    go through the same sink, stamped with the backend's clock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with JsonlTraceWriter(run_dir / "trace.jsonl") as writer:
        sink = RenumberedWriter(writer)
        backend = AsyncDummyDifferentialBackend(
            latency=LatencyPlan(
                seed=3, default=LogNormal(median=0.05, sigma=0.5), view_switch=Constant(0.5)
            ),
            faults=FaultPlan(
                (FaultRule("transient", name="flaky-ft", views=("ft",), probability=0.2),), seed=3
            ),
            trace=sink,
        )
        results: list[dict[str, Any]] = []

        def emit(kind: str, **fields: Any) -> None:
            task = anyio.get_current_task()
            sink.emit(TraceEvent(kind, backend.loop_time(), f"{task.name}#{task.id}", **fields))

        async def probe(index: int) -> None:
            name = f"probe-{index}"
            kind = "delta_kl" if index % 2 else "adapter_ablation"
            verdict = VERDICTS[index % len(VERDICTS)]
            emit("probe_start", detail={"probe": name, "probe_kind": kind})
            start = backend.loop_time()
            enter = backend.as_base if index % 2 else backend.as_finetuned
            async with enter() as view:
                for item in range(prompts):
                    for attempt in range(1, 4):
                        try:
                            await view.next_token_dist(f"{name} q{item % 5}", top_k=8)
                            break
                        except InjectedFault as exc:
                            error = type(exc).__name__
                            detail = {"probe": name, "attempt": attempt, "error": error}
                            emit("retry", view=view.id, op="next_token_dist", detail=detail)
            duration = backend.loop_time() - start
            detail = {"probe": name, "probe_kind": kind, "verdict": verdict}
            emit("probe_end", duration=duration, detail=detail)
            results.append(
                {
                    "name": name,
                    "kind": kind,
                    "verdict": verdict,
                    "score": 0.5 + index / 20,
                    "raw": 0.125 * index,
                    "z": 3.25 if verdict == "PASS" else None,
                    "message": message or f"{kind} measured on {prompts} prompts",
                    "duration": duration,
                }
            )

        async def main() -> float:
            async with anyio.create_task_group() as group:
                for index in range(workers):
                    group.start_soon(probe, index, name=task_name or f"worker-{index}")
            return backend.loop_time()

        makespan = run(main, backend="asyncio")
    results_doc = {
        "scenario": "report-demo",
        "loop": "asyncio",
        "seed": 3,
        "probes": sorted(results, key=lambda r: r["name"]),
        "statistics": backend.statistics().to_dict(),
        "makespan": makespan,
    }
    (run_dir / "results.json").write_text(json.dumps(results_doc), encoding="utf-8")
    return run_dir


def report_of(run_dir: Path) -> str:
    output = run_dir / "report.html"
    write_report(run_dir, output)
    return output.read_text(encoding="utf-8")


def trace_run_dir(run_dir: Path, events: list[TraceEvent]) -> Path:
    """A run directory holding only a trace of ``events`` (no results.json)."""
    run_dir.mkdir(parents=True)
    with JsonlTraceWriter(run_dir / "trace.jsonl") as writer:
        for trace_event in events:
            writer.emit(trace_event)
    return run_dir


def timeline_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def synthetic_ops(count: int, seed: int = 11) -> tuple[list[TraceEvent], float]:
    """One task doing ``count`` back-to-back ops of random length on one held view."""
    durations = np.random.default_rng(seed).exponential(0.01, size=count)
    events = [TraceEvent("view_enter", 0.0, "busy#1", view="base")]
    now = 0.0
    for index, duration in enumerate(durations.tolist()):
        events.append(TraceEvent("op_start", now, "busy#1", view="base", op="generate"))
        now += duration
        hit = index % 3 == 0
        events.append(
            TraceEvent(
                "op_end", now, "busy#1", view="base", op="generate", hit=hit, duration=duration
            )
        )
    events.append(TraceEvent("view_exit", now, "busy#1", view="base", duration=now))
    return events, float(durations.sum())


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
FAILING_EXAMPLE = EXAMPLES / "tight_retry_budget.toml"
"""The documentation's failing scenario: its report is docs/report-screenshot.png."""


def scenario_run_dir(root: Path, scenario: Path = FAILING_EXAMPLE, loop: str = "trio") -> Path:
    """The run directory ``swaysim run SCENARIO --trace ROOT --backend LOOP`` writes.

    Run from the repository root with the scenario's path relative to it, as the
    README does, so the report (and the screenshot of it) is the same in every checkout.
    """
    from click.testing import CliRunner

    from swaysim._cli.main import cli

    root = root.resolve()
    repository = EXAMPLES.parent.parent
    with contextlib.chdir(repository):
        source = str(scenario.resolve().relative_to(repository))
        argv = ["run", source, "--trace", str(root), "--backend", loop, "--no-progress"]
        result = CliRunner().invoke(cli, argv)
    assert result.exit_code in (0, 1), result.output
    (run_dir,) = root.glob(f"*/{loop}")
    return run_dir
