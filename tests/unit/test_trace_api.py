"""The public ``swaysim.trace`` namespace: complete, sorted, cheap to import."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import swaysim
import swaysim.trace


def test_all_is_sorted_and_matches_the_module() -> None:
    assert swaysim.trace.__all__ == sorted(swaysim.trace.__all__)
    public = {
        name
        for name in dir(swaysim.trace)
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(getattr(swaysim.trace, name), types.ModuleType)
    }
    assert public == set(swaysim.trace.__all__)


def test_the_names_swaysim_exports_are_the_same_objects() -> None:
    shared = set(swaysim.__all__) & set(swaysim.trace.__all__)
    assert shared >= {"JsonlTraceWriter", "read_trace", "summarize_trace", "write_report"}
    for name in shared:
        assert getattr(swaysim.trace, name) is getattr(swaysim, name), name
    assert swaysim.trace is sys.modules["swaysim.trace"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"'swaysim\.trace' has no attribute 'nope'"):
        _ = swaysim.trace.nope


def test_importing_the_namespace_leaves_rich_pydantic_and_the_report_unloaded() -> None:
    code = (
        "import sys, swaysim.trace as t; "
        "heavy = ('pydantic', 'rich', 'swaysim._trace.report.render'); "
        "loaded = lambda: sorted(m for m in heavy if m in sys.modules); "
        "print(loaded()); t.digest_trace; t.write_report; print(loaded()); "
        "t.summarize_trace; print(loaded())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == [
        "[]",
        "['swaysim._trace.report.render']",
        "['rich', 'swaysim._trace.report.render']",
    ]
