"""Prompt text in traces (schema version 2): each distinct key text written once, bounded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Console

from swaysim import AsyncDummyDifferentialBackend, JsonlTraceWriter, TraceRecorder, summarize_trace
from swaysim._chaos.seeding import stable_hash
from swaysim._trace import prompts as prompts_module
from swaysim._trace.chrome import export_chrome
from swaysim._trace.digest import digest_events
from swaysim._trace.prompts import PROMPT_TEXT_CAP, PromptTable

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_a_text_is_emitted_once_and_hashed_as_before() -> None:
    emitted: list[tuple[str, str]] = []
    table = PromptTable(lambda hashed, text: emitted.append((hashed, text)))
    assert [table.hash_of(t) for t in ("a", "b", "a", "a", "b")] == [
        stable_hash(t) for t in ("a", "b", "a", "a", "b")
    ]
    assert emitted == [(stable_hash("a"), "a"), (stable_hash("b"), "b")]


def test_the_table_is_bounded_and_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts_module, "PROMPT_TABLE_CAP", 3)
    emitted: list[str] = []
    table = PromptTable(lambda hashed, text: emitted.append(text))
    for text in ("a", "b", "c", "d", "a"):
        table.hash_of(text)
    assert len(table) <= 3
    assert emitted == ["a", "b", "c", "d", "a"]  # "a" written again after the table restarted


def test_long_prompts_are_cut_for_display() -> None:
    detail = prompts_module.prompt_detail("x" * (PROMPT_TEXT_CAP + 10))
    assert detail == {"text": "x" * PROMPT_TEXT_CAP, "chars": PROMPT_TEXT_CAP + 10}
    assert prompts_module.prompt_detail("short") == {"text": "short"}


async def test_a_traced_run_writes_each_key_text_once_before_its_first_use(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trace.jsonl"
    with JsonlTraceWriter(path) as writer:
        backend = AsyncDummyDifferentialBackend(trace=writer)
        async with backend.as_finetuned() as view:
            for _ in range(3):
                await view.next_token_dist("<b>Q</b> & more", top_k=4)
                await view.logprob_of("Q:", " yes")
            await view.next_token_dist_batch(["p1", "p2"], top_k=4)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["v"] for r in records} == {2}
    prompts = [r for r in records if r["kind"] == "prompt"]
    assert [p["detail"]["text"] for p in prompts] == ["<b>Q</b> & more", "Q:\x00 yes", "p1\x1ep2"]
    first_use = {
        r["prompt_hash"]: i
        for i, r in reversed(list(enumerate(records)))
        if "prompt_hash" in r and r["kind"] != "prompt"
    }
    for index, record in enumerate(records):
        if record["kind"] == "prompt":
            assert index < first_use[record["prompt_hash"]]
    # Readers turn hashes back into text, for people.
    recorder = TraceRecorder()
    async with AsyncDummyDifferentialBackend(trace=recorder).as_base() as view:
        await view.logprob_of("Q:", " yes")
    digest = digest_events(recorder)
    assert digest.prompt_text(stable_hash("Q:\x00 yes")) == "Q: \u2192  yes"
    console = Console(record=True, width=200, color_system=None)
    summarize_trace(path, console)
    assert "<b>Q</b> & more" in console.export_text()
    chrome = tmp_path / "chrome.json"
    export_chrome(path, chrome)
    ops = [e for e in json.loads(chrome.read_text())["traceEvents"] if e.get("cat") == "op"]
    assert {e["args"].get("prompt") for e in ops if e["ph"] == "B"} == {
        "<b>Q</b> & more",
        "Q: \u2192  yes",
        "p1 | p2",
    }
