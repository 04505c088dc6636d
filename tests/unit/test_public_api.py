from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import pytest

import swaysim


def test_all_is_sorted_and_matches_the_module() -> None:
    assert swaysim.__all__ == sorted(swaysim.__all__)
    # `annotations` is the __future__ feature object, not an export.
    # pytest's assertion rewriting (swaysim ships a pytest11 plugin) adds "@py_..." names.
    # dir() includes the names loaded on first use.
    # Public submodules (swaysim.errors, ...) are namespaces, not exports.
    public = {
        n
        for n in dir(swaysim)
        if n.isidentifier()
        and not n.startswith("_")
        and n != "annotations"
        and not isinstance(getattr(swaysim, n), types.ModuleType)
    }
    exported = set(swaysim.__all__) - {"__version__"}
    assert public == exported


def test_every_name_in_all_resolves() -> None:
    for name in swaysim.__all__:
        assert getattr(swaysim, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = swaysim.nope


def test_importing_swaysim_leaves_the_scenario_machinery_unloaded() -> None:
    # The pytest plugin imports swaysim in every session; pydantic and rich load on first use.
    code = (
        "import sys, swaysim; "
        "heavy = ('pydantic', 'rich', 'swaysim._scenario.load'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = "import swaysim; swaysim.load_scenario; import sys; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_every_module_uses_future_annotations() -> None:
    roots = [Path(swaysim.__file__).parent, Path(__file__).parents[1]]
    for root in roots:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            futures = [
                node
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module == "__future__"
            ]
            assert futures, f"{path} lacks 'from __future__ import annotations'"
