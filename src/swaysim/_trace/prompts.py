"""Prompt text in traces: each distinct prompt written once, every event refers to its hash.

A traced op carries the hash of its key text (``prompt_hash``). Since trace
schema version 2, the first time a key text is traced a ``prompt`` event
writes the text itself (``detail.text``, at most :data:`PROMPT_TEXT_CAP`
characters; ``detail.chars`` gives the full length when it was cut), and
every later event refers to it by hash, so a report can show prompts as text
while a trace of a million ops on a thousand prompts holds each text once.

:class:`PromptTable` is what a traced backend asks for the hash of a key
text. After a text's first occurrence the answer is one dictionary lookup,
cheaper than the SHA-1 it replaces, and nothing is written: recording prompt
text costs a traced op nothing beyond the first occurrence of its prompt.
Memory is bounded: past :data:`PROMPT_TABLE_CAP` distinct texts the table
starts over, and a text seen again is written again (readers keep the first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from swaysim._chaos.seeding import stable_hash

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PROMPT_TABLE_CAP", "PROMPT_TEXT_CAP", "PromptTable", "prompt_detail"]

#: Characters of a prompt a ``prompt`` event writes (a display copy, not the key).
PROMPT_TEXT_CAP: Final = 2_000
#: Distinct key texts a table remembers before it starts over.
PROMPT_TABLE_CAP: Final = 100_000


def prompt_detail(text: str) -> dict[str, object]:
    """A ``prompt`` event's ``detail``: the text, cut to :data:`PROMPT_TEXT_CAP` characters."""
    if len(text) <= PROMPT_TEXT_CAP:
        return {"text": text}
    return {"text": text[:PROMPT_TEXT_CAP], "chars": len(text)}


class PromptTable:
    """The hash of each traced key text; ``emit(hash, text)`` runs on a text's first use."""

    __slots__ = ("_emit", "_hashes", "known")

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self._hashes: dict[str, str] = {}
        self._emit = emit
        self.known: Callable[[str], str | None] = self._hashes.get
        """The hash of a text already written, else None: a lookup, with nothing emitted."""

    def hash_of(self, text: str) -> str:
        """The prompt hash of ``text``; the first time, its ``prompt`` event is emitted too."""
        hashed = self._hashes.get(text)
        if hashed is None:
            hashed = self._first(text)
        return hashed

    def _first(self, text: str) -> str:
        if len(self._hashes) >= PROMPT_TABLE_CAP:
            self._hashes.clear()
        hashed = self._hashes[text] = stable_hash(text)
        self._emit(hashed, text)
        return hashed

    def __len__(self) -> int:
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"<PromptTable: {len(self._hashes):,} prompts written>"
