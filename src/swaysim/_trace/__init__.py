"""Trace events, the JSONL writer and reader, summaries, Chrome export and the HTML report."""

from __future__ import annotations
