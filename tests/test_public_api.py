from __future__ import annotations

import ast
from pathlib import Path

import swaysim


def test_all_is_sorted_and_matches_the_module() -> None:
    assert swaysim.__all__ == sorted(swaysim.__all__)
    # `annotations` is the __future__ feature object, not an export.
    # pytest's assertion rewriting (swaysim ships a pytest11 plugin) adds "@py_..." names.
    public = {
        n
        for n in vars(swaysim)
        if n.isidentifier() and not n.startswith("_") and n != "annotations"
    }
    exported = set(swaysim.__all__) - {"__version__"}
    assert public == exported


def test_every_name_in_all_resolves() -> None:
    for name in swaysim.__all__:
        assert getattr(swaysim, name) is not None


def test_every_module_uses_future_annotations() -> None:
    roots = [Path(swaysim.__file__).parent, Path(__file__).parent]
    for root in roots:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            futures = [
                node
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module == "__future__"
            ]
            assert futures, f"{path} lacks 'from __future__ import annotations'"
