"""Issue 13: generated hostile traces and scenario files against every reader.

Each reader either works or raises a swaysim error of one line (per problem); never another
exception, a hang (each example is timed) or a memory blow-up (the big inputs run in a
subprocess whose peak memory is bounded). ``--swaysim-long`` runs ten times the examples.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import psutil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from hostile_inputs import big_inputs
from swaysim._trace.chrome import write_chrome
from swaysim._trace.report.render import render_report
from swaysim._trace.summary import summarize_trace
from swaysim.errors import SwaysimError
from swaysim.scenario import ScenarioError, load_scenario, parse_scenario
from swaysim.trace import EVENT_KINDS, digest_trace, read_trace
from sweeps import is_long

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

HERE: Final = Path(__file__).resolve().parent
EXAMPLE_SECONDS: Final = 10.0
"""No single input may keep a reader busier than this (a hang or a blow-up, not work)."""
MEMORY_HEADROOM: Final = 150 * 1024 * 1024
"""Peak memory a big hostile input may add over reading a small valid file."""


def examples(request: pytest.FixtureRequest, default: int) -> int:
    return default * 10 if is_long(request.config) else default


def clean(action: Callable[[], object]) -> str:
    """Run ``action``; "ok", or the swaysim error it raised. Anything else fails.

    A scenario error lists every problem of the file, one line each; any other
    error is one line.
    """
    started = time.perf_counter()
    problems: tuple[str, ...] = ()
    try:
        action()
        outcome = "ok"
    except ScenarioError as exc:
        outcome, problems = str(exc), exc.problems
    except SwaysimError as exc:
        outcome = str(exc)
    assert all("\n" not in problem for problem in problems), problems
    assert "\n" not in outcome or outcome.splitlines() == list(problems), outcome
    assert time.perf_counter() - started < EXAMPLE_SECONDS
    return outcome


# -- traces -----------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["nan", "inf", "-inf", "", "[/]", "\x1b[2J"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
DETAIL_KEYS: Final = (
    *("rule", "kind", "probe", "probe_kind", "verdict", "error", "call", "items"),
    *("computed", "attempt", "delay", "seconds", "aborted", "other"),
)
names = st.sampled_from(["t#1", "t#2", "base", "ft", "generate", "p1"]) | scalars
events = st.fixed_dictionaries(
    {
        "v": st.just(1) | scalars,
        "kind": st.sampled_from(EVENT_KINDS) | scalars,
        "time": st.floats(0, 100) | scalars,
        "task": names,
    },
    optional={
        "view": names,
        "op": names,
        "prompt_hash": names,
        "hit": st.booleans() | scalars,
        "duration": st.floats(0, 10) | scalars,
        "detail": st.dictionaries(st.sampled_from(DETAIL_KEYS), names | json_values, max_size=5)
        | json_values,
    },
)
SPECIAL_LINES: Final = (
    b'{"v":1,"kind":"x","time":1e999,"task":"t"}',
    b'{"v":1,"kind":"x","time":NaN,"task":"t"}',
    b'{"v":1,"kind":"x","time":' + b"9" * 400 + b',"task":"t"}',
    b'{"v":1,"kind":"view_enter","time":1,"task":"t","view":"base"}',
    b'{"v":1,"kind":"x","time":1,"task":"t","detail":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b"\xff\xfe\x00garbage",
)
lines = (
    events.map(lambda event: json.dumps(event, allow_nan=True).encode())
    | json_values.map(lambda value: json.dumps(value, allow_nan=True).encode())
    | st.binary(max_size=80)
    | st.integers(0, 2000).map(lambda n: b'{"v":1,"detail":' + b"[" * n + b"]" * n + b"}")
    | st.sampled_from(SPECIAL_LINES)
)
trace_files = st.tuples(
    st.lists(lines, max_size=25).map(b"\n".join),
    st.booleans(),  # gzip it
    st.none() | st.integers(0, 400),  # then cut it short here
)


def read_every_way(trace: Path) -> None:
    """Every reader of a trace, as the CLI calls them."""
    outcomes = [
        clean(lambda: list(read_trace(trace))),
        clean(lambda: digest_trace(trace)),
        clean(lambda: write_chrome(read_trace(trace), io.StringIO())),
        clean(lambda: summarize_trace(trace, Console(file=io.StringIO(), width=100))),
        clean(lambda: render_report(trace)),
    ]
    # The readers share one decoder: they agree on whether a file is readable.
    assert len({outcome == "ok" for outcome in outcomes}) == 1, outcomes


def test_generated_traces_are_read_or_refused_in_one_line(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    @settings(
        max_examples=examples(request, 150),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(trace_files)
    def check(case: tuple[bytes, bool, int | None]) -> None:
        data, packed, cut = case
        if packed:
            data = gzip.compress(data)
        if cut is not None:
            data = data[:cut]
        trace = tmp_path / ("trace.jsonl.gz" if packed else "trace.jsonl")
        for old in tmp_path.glob("trace.jsonl*"):
            old.unlink()
        trace.write_bytes(data)
        read_every_way(trace)

    check()


# -- scenario files ---------------------------------------------------------------------

BASE_SCENARIO: Final[dict[str, Any]] = {
    "description": "fuzzed",
    "seed": 3,
    "backend": {
        "exclusivity": "wait",
        "latency": {"default": {"model": "lognormal", "median": 0.05, "sigma": 0.5}},
        "faults": {"rules": [{"kind": "transient", "views": ["ft"], "probability": 0.3}]},
    },
    "probes": [
        {"kind": "delta_kl", "name": "dkl", "repeat": 3, "prompts": ["q{i}", "r"]},
        {"kind": "null_adapter", "name": "null", "target": "dkl-0", "seeds": [0, 1]},
    ],
    "runner": {"concurrency": 4, "retries": 2},
    "expect": {"verdicts": {"dkl-*": "PASS"}, "gate_free": True},
}
toml_scalars = (
    st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["{i}" * 50, "x" * 5000, "os:system", "..", "\x1b[2J"])
    | st.integers(0, 10**6)
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, min_size=1, max_size=4)
    ),
    max_leaves=15,
)


def toml(value: object) -> str:
    """A TOML inline value (tables inline, arrays on one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value > 1e308 else repr(value)).replace("-inf", "-inf")
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"


def document(table: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(key)} = {toml(value)}\n" for key, value in table.items())


PATHS: Final = (
    ("seed",),
    ("backend", "exclusivity"),
    ("backend", "latency", "default", "sigma"),
    ("backend", "faults", "rules", 0, "probability"),
    ("backend", "cache_size"),
    ("probes", 0, "repeat"),
    ("probes", 0, "prompts"),
    ("probes", 1, "seeds"),
    ("probes", 0, "name"),
    ("runner", "concurrency"),
    ("runner", "runner"),
    ("runner", "options"),
    ("expect", "makespan"),
    ("expect", "verdicts"),
    ("name",),
    ("anything",),
)


def mutate(table: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(table))
    node: Any = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


scenario_texts = st.one_of(
    st.builds(
        lambda mutations: document(_apply(BASE_SCENARIO, mutations)),
        st.lists(st.tuples(st.sampled_from(PATHS), toml_values), max_size=4),
    ),
    st.builds(
        lambda cuts: _splice(document(BASE_SCENARIO).encode(), cuts).decode("utf-8", "replace"),
        st.lists(st.tuples(st.integers(0, 900), st.binary(max_size=6)), max_size=4),
    ),
)


def _apply(
    table: dict[str, Any], mutations: list[tuple[tuple[str | int, ...], object]]
) -> dict[str, Any]:
    for path, value in mutations:
        table = mutate(table, path, value)
    return table


def _splice(data: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    for at, insert in cuts:
        data = data[:at] + insert + data[at + 1 :]
    return data


def test_generated_scenarios_load_or_are_refused_in_one_line_each(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert "dkl-0" in json.dumps(BASE_SCENARIO)
    parse_scenario(document(BASE_SCENARIO))  # the base is valid: mutations make it hostile

    @settings(
        max_examples=examples(request, 200),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenario_texts)
    def check(text: str) -> None:
        path = tmp_path / "s.toml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        assert clean(lambda: parse_scenario(text, source="s.toml")) == clean(
            lambda: load_scenario(path, source="s.toml")
        )

    check()


# -- memory, measured from outside ------------------------------------------------------


def peak_memory(reader: str, path: Path) -> tuple[dict[str, Any], int]:
    """Run the worker on one input: its report, and its peak RSS as psutil saw it."""
    process = subprocess.Popen(
        [sys.executable, str(HERE.parent / "hostile_inputs.py"), reader, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watched = psutil.Process(process.pid)
    peak = 0
    started = time.perf_counter()
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            break
        assert time.perf_counter() - started < 60, f"{path.name}: still running after 60 s"
        time.sleep(0.01)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    report: dict[str, Any] = json.loads(stdout)
    return report, max(peak, int(report["peak_rss"]))


def test_big_hostile_inputs_stay_in_bounded_memory(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "trace.jsonl").write_text(
        '{"v":1,"kind":"view_enter","time":0,"task":"t#1","view":"base"}\n'
    )
    _, baseline = peak_memory("trace", small / "trace.jsonl")
    for name, (reader, path) in big_inputs(tmp_path / "big").items():
        report, peak = peak_memory(reader, path)
        assert report["outcome"] == "error", (name, report)
        # One line per problem, each naming the file (a scenario lists all of its problems).
        assert all(line.startswith(str(path)) for line in report["message"].splitlines())
        assert peak - baseline < MEMORY_HEADROOM, (
            f"{name}: {peak / 1e6:.0f} MB peak, {baseline / 1e6:.0f} MB for a small file"
        )
