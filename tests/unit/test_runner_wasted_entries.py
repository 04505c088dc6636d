"""The reference runner never loads a view that no live probe waits for.

When every probe that wanted answers from a view has already timed out (its
``probe_timeout`` spent on an earlier view), entering that view would cost a switch
and answer nobody: the runner fails those requests with the timeout's reason instead.
"""

from __future__ import annotations

from swaysim import (
    AsyncDummyDifferentialBackend,
    Constant,
    DeltaKL,
    LatencyPlan,
    LatencyRule,
    NullAdapter,
    TraceRecorder,
    Verdict,
    run_suite,
)


def slow_nulls(trace: TraceRecorder) -> AsyncDummyDifferentialBackend:
    return AsyncDummyDifferentialBackend(
        latency=LatencyPlan(
            rules=(LatencyRule(Constant(10.0), views=("null",)),),
            view_switch=Constant(0.5),
        ),
        trace=trace,
    )


async def test_a_timed_out_null_probe_does_not_load_its_next_null_view() -> None:
    trace = TraceRecorder()
    backend = slow_nulls(trace)
    probes = [
        DeltaKL("dkl", ["q1"], top_k=4, null="null"),
        NullAdapter("null", target="dkl", seeds=(0, 1, 2)),
    ]
    suite = await run_suite(backend, probes, probe_timeout=5.0)
    assert suite.verdicts == {"dkl": Verdict.ERROR, "null": Verdict.ERROR}
    assert "timed out" in suite.results[1].message
    entered = {e.view for e in trace.of_kind("view_enter")}
    assert "null_0" in entered  # where the budget ran out
    assert not entered & {"null_1", "null_2"}  # nobody waited for these
    entries = backend.statistics().entries_per_view
    assert "null_1" not in entries
    assert "null_2" not in entries
    assert backend.is_free()
