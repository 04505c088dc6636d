"""The package's layers, as docs/architecture.md draws them: imports only point down.

Each top-level unit of ``src/swaysim`` (a subpackage or a module) sits on one
layer; a module may import, at run time, only from units on lower layers (or
its own unit). Imports under ``if TYPE_CHECKING:`` are annotations, not
dependencies, and are not counted. A new unit must be given a layer here and
in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

SOURCE: Final = Path(__file__).resolve().parents[2] / "src" / "swaysim"

LAYERS: Final[dict[str, int]] = {
    # foundation: the error tree, vocabulary, checks, value types, files and limits
    "errors": 0,
    "_vocab": 0,
    "_validation": 1,
    "_types": 2,
    "_files": 1,
    "_limits": 1,
    "_printable": 0,
    "_protocols": 0,
    # time and chaos: virtual clocks; seeded faults, latency and jitter
    "_time": 3,
    "_chaos": 3,
    # traces: events, sinks, readers, summaries, the report
    "_trace": 4,
    # the backend, then what drives it
    "_backend": 5,
    "_bridge": 6,
    "_runner": 7,
    # scenarios and clients of the whole stack
    "_scenario": 8,
    "_dlm_sway": 8,
    "_explore": 9,
    "_pytest": 10,
    "_cli": 10,
    # the public facades
    "scenario": 11,
    "trace": 11,
    "dlm_sway": 11,
    "strategies": 11,
    "__init__": 12,
    "__main__": 12,
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(inner) for inner in ast.walk(node))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "swaysim":
                imported.update(f"swaysim.{alias.name}" for alias in node.names)
            elif node.module.startswith("swaysim."):
                imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names if a.name.startswith("swaysim."))
    return imported


def _unit_of_file(path: Path) -> str:
    relative = path.relative_to(SOURCE)
    return relative.parts[0].removesuffix(".py")


def test_every_unit_of_the_package_has_a_layer() -> None:
    units = {_unit_of_file(path) for path in SOURCE.rglob("*.py")}
    missing = sorted(units - LAYERS.keys())
    assert not missing, f"give these a layer in {__file__} and docs/architecture.md: {missing}"


def test_imports_only_point_down() -> None:
    upward: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        here = _unit_of_file(path)
        for module in sorted(_runtime_imports(path)):
            there = _unit(module)
            if there == here or there not in LAYERS or here not in LAYERS:
                continue
            if there != "__version__" and LAYERS[there] >= LAYERS[here]:
                upward.append(
                    f"{path.relative_to(SOURCE)} (layer {LAYERS[here]}) imports {module} "
                    f"(layer {LAYERS[there]})"
                )
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "fake.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from swaysim._scenario.load import load_scenario\n"
        "if TYPE_CHECKING:\n"
        "    from swaysim._cli.main import main\n",
        encoding="utf-8",
    )
    assert _runtime_imports(module) == {"swaysim._scenario.load"}
