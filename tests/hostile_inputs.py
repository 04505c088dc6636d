"""Hostile inputs for the fuzz and memory tests of issue 13, and a worker that reads one.

``python tests/hostile_inputs.py READER FILE`` feeds FILE to one of swaysim's readers
(:data:`READERS`) and prints one JSON line: ``{"outcome": "ok" | "error", "message": ...,
"peak_rss": bytes}``. Anything but a clean swaysim error escapes as a traceback (exit 1),
which the tests treat as a failure; the parent measures time and memory from outside.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

GOOD_LINE: Final = (
    '{"v":1,"kind":"op_end","time":1.0,"task":"t#1","view":"base","op":"generate",'
    '"hit":true,"duration":0.5}\n'
)
SCENARIO_HEAD: Final = 'description = "hostile"\n'
SCENARIO_TAIL: Final = "[expect]\ngate_free = true\n"


def _probe_table(kind: str, repeat: int, field: str, items: str, name: str = "p") -> str:
    return f'[[probes]]\nkind = "{kind}"\nname = "{name}"\nrepeat = {repeat}\n{field} = [{items}]\n'


def big_inputs(folder: Path) -> dict[str, tuple[str, Path]]:
    """Each memory-test input: its reader and its file (written into ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[str, Path]] = {}

    def write(name: str, reader: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        files[name] = (reader, path)

    write("one_long_line.jsonl", "trace", b'{"v":1,"kind":"x","task":"' + b"a" * (64 << 20))
    with gzip.open(folder / "bomb.jsonl.gz", "wb", compresslevel=9) as bomb:
        chunk = b"0" * (1 << 20)
        for _ in range(1500):  # 1.5 GB of zeros, about 1.5 MB on disk
            bomb.write(chunk)
    files["bomb.jsonl.gz"] = ("trace", folder / "bomb.jsonl.gz")
    names = "".join(
        f'{{"v":1,"kind":"op_end","time":{n},"task":"task-{n:07}#{n}","op":"op-{n}"}}\n'
        for n in range(300_000)
    )
    write("many_names.jsonl", "trace", names.encode())
    write("deep.jsonl", "trace", b'{"v":1,"detail":' + b"[" * 500_000 + b"]" * 500_000 + b"}\n")
    prompts = ", ".join(f'"{"x" * 40} {{i}} {j}"' for j in range(100))
    write(
        "repeat_prompts.toml",
        "scenario",
        (
            SCENARIO_HEAD + _probe_table("delta_kl", 100_000, "prompts", prompts) + SCENARIO_TAIL
        ).encode(),
    )
    tables = "".join(
        _probe_table("perplexity_shift", 100_000, "texts", '"a"', f"p{n}") for n in range(30)
    )
    write("three_million.toml", "scenario", (SCENARIO_HEAD + tables + SCENARIO_TAIL).encode())
    values = SCENARIO_HEAD + '[[probes]]\nkind = "delta_kl"\nname = "d"\nprompts = ['
    write("many_values.toml", "scenario", (values + "1," * 500_000 + "]\n").encode())
    results = {"probes": [{"name": f"p{n}", "score": 1.0} for n in range(40_000)], "seed": "x"}
    run_dir = folder / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "trace.jsonl").write_text(GOOD_LINE * 1000)
    (run_dir / "results.json").write_text(json.dumps(results))
    files["results"] = ("report", run_dir)
    return files


# -- the worker -------------------------------------------------------------------------


def _read_trace(path: Path) -> None:
    from rich.console import Console

    from swaysim._trace.chrome import write_chrome
    from swaysim._trace.summary import summarize_trace
    from swaysim.trace import digest_trace, read_trace

    for _ in read_trace(path):
        pass
    digest_trace(path)
    write_chrome(read_trace(path), io.StringIO())
    summarize_trace(path, Console(file=io.StringIO(), width=120))


def _read_scenario(path: Path) -> None:
    from swaysim.scenario import load_scenario

    load_scenario(path)


def _read_report(path: Path) -> None:
    from swaysim.trace import write_report

    write_report(path, path / "report.html")


READERS: Final[dict[str, Callable[[Path], None]]] = {
    "trace": _read_trace,
    "scenario": _read_scenario,
    "report": _read_report,
}


def main(reader: str, file: str) -> None:
    import resource

    from swaysim.errors import SwaysimError

    outcome, message = "ok", ""
    try:
        READERS[reader](Path(file))
    except SwaysimError as exc:
        outcome, message = "error", str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"outcome": outcome, "message": message, "peak_rss": peak}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
