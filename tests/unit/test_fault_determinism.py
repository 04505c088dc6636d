"""One seed, one firing set: on asyncio and trio, at concurrency 1, 8 and 64, in any process.

The workload sends the same requests (with repeats, so per-key call indices
matter) through worker tasks that share each view. Which task gets which
call differs between runs; which (rule, op, view, prompt, call index) fire
must not. ``python tests/test_fault_determinism.py LOOP CONCURRENCY`` prints
the firing set as JSON, for the cross-process check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import swaysim
from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DummyResponses,
    FaultPlan,
    FaultRule,
    InjectedFault,
    LatencyPlan,
    LogNormal,
    TraceEvent,
    Uniform,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim import DummyView

LOOPS = ("asyncio", "trio")
CONCURRENCY = (1, 8, 64)
PROMPTS = [f"q{i}" for i in range(15)]

FAULTS = FaultPlan(
    (
        FaultRule("transient", name="flaky", ops=("logprob_of",), probability=0.25),
        FaultRule("nan", name="poison", views=("ft",), prompt="q1*", every=2),
        FaultRule(
            "corrupt_unsorted", name="shuffle", ops=("next_token_dist_batch",), probability=0.2
        ),
        FaultRule("fatal", name="dead", views=("null",), nth=2),
        FaultRule("hang", name="stuck", ops=("generate",), prompt="q3", nth=2),
        FaultRule("posinf", name="spike", probability=0.1, after=1),
        FaultRule("enter_error", name="swap", views=("scaled",), nth=1),
    ),
    seed=20240611,
)
LATENCY = LatencyPlan(
    seed=99,
    default=LogNormal(0.02, 0.7),
    generate_per_token=Uniform(0.001, 0.002),
    batch_per_item=Constant(0.001, jitter=0.002),
    view_switch=Constant(0.5),
)


class ListSink:
    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, event: TraceEvent) -> None:
        self.events.append(event)


def requests() -> list[tuple[str, str]]:
    """(op, prompt) pairs; every key repeats, so nth/every/after have something to count."""
    ops = ["logprob_of", "next_token_dist", "rolling_logprob", "generate", "next_token_dist_batch"]
    return [(ops[i % len(ops)], PROMPTS[i % len(PROMPTS)]) for i in range(90)]


async def issue(view: DummyView, op: str, prompt: str) -> None:
    with anyio.move_on_after(2.0):
        try:
            if op == "generate":
                await view.generate(prompt, max_new_tokens=8)
            elif op == "logprob_of":
                await view.logprob_of(prompt, " yes")
            elif op == "rolling_logprob":
                await view.rolling_logprob(prompt + " text")
            elif op == "next_token_dist":
                await view.next_token_dist(prompt, top_k=8)
            else:
                await view.next_token_dist_batch([prompt, prompt + "b"], top_k=8)
        except InjectedFault:
            pass


async def run_workload(concurrency: int, faults: FaultPlan | None = FAULTS) -> dict[str, Any]:
    responses = DummyResponses(generations={p: f"answer to {p}" for p in PROMPTS})
    sink = ListSink()
    backend = AsyncDummyDifferentialBackend(
        responses, responses, latency=LATENCY, faults=faults, trace=sink
    )
    entries: list[Callable[[], Any]] = [
        backend.as_base,
        backend.as_finetuned,
        lambda: backend.as_scaled_adapter(0.5),
        lambda: backend.as_scaled_adapter(0.5),
        lambda: backend.as_null_adapter(3),
    ]
    for enter in entries:
        try:
            async with enter() as view:
                pending = iter(requests())

                async def worker(view: DummyView = view, pending: Any = pending) -> None:
                    for op, prompt in pending:
                        await issue(view, op, prompt)

                async with anyio.create_task_group() as tg:
                    for _ in range(concurrency):
                        tg.start_soon(worker)
        except InjectedFault:
            pass
    assert backend.is_free()
    firings = sorted(
        [f.rule_name, f.op, f.view_id, f.prompt, f.call_index] for f in backend.fault_log
    )
    latencies = sorted(
        [e.view or "", e.op or "", round(e.duration or 0.0, 12)]
        for e in sink.events
        if e.kind == "latency"
    )
    return {"firings": firings, "latencies": latencies}


def signature(loop: str, concurrency: int) -> dict[str, Any]:
    return swaysim.run(run_workload, concurrency, backend=loop)


def test_the_firing_set_is_the_same_on_both_loops_at_every_concurrency() -> None:
    reference = signature("asyncio", 1)["firings"]
    fired_rules = {name for name, *_ in reference}
    # The workload exercises every rule, so the comparison means something.
    assert fired_rules == {rule.name for rule in FAULTS.rules}
    for loop in LOOPS:
        for concurrency in CONCURRENCY:
            assert signature(loop, concurrency)["firings"] == reference, (loop, concurrency)


def test_latency_draws_are_the_same_on_both_loops_at_every_concurrency() -> None:
    # Without error faults every forward pass belongs to the first call of its key,
    # whatever the interleaving, so the multiset of draws is fixed too.
    def draws(loop: str, concurrency: int) -> list[list[Any]]:
        result: list[list[Any]] = swaysim.run(run_workload, concurrency, None, backend=loop)[
            "latencies"
        ]
        return result

    reference = draws("trio", 64)
    assert len(reference) > 100
    for loop in LOOPS:
        for concurrency in CONCURRENCY:
            assert draws(loop, concurrency) == reference, (loop, concurrency)


def test_the_firing_set_is_the_same_in_other_processes_and_hash_seeds() -> None:
    reference = signature("trio", 8)["firings"]
    script = str(Path(__file__).resolve())
    runs = [("asyncio", "64", "1"), ("trio", "1", "4242")]
    processes = [
        subprocess.Popen(
            [sys.executable, script, loop, concurrency],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for loop, concurrency, hash_seed in runs
    ]
    for process, run in zip(processes, runs, strict=True):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert json.loads(out) == reference, run


if __name__ == "__main__":
    print(json.dumps(signature(sys.argv[1], int(sys.argv[2]))["firings"]))
