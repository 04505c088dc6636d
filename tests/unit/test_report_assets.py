"""The report's assets are real files that tools can read: the script, style sheet and markup.

- the script parses (``node --check``); the test skips when node is missing,
  and fails instead when ``SWAYSIM_REQUIRE_NODE`` is set (``.ci/run`` sets it);
- the style sheet parses (tinycss2: every rule and declaration well formed);
- the markup nests (every element closed in order, ids unique), both the
  template and a rendered page;
- all three ship inside the package and the template's placeholders are all filled.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from importlib import resources
from typing import TYPE_CHECKING

import pytest
import tinycss2

from report_runs import make_run_dir, report_of
from swaysim._trace.report.render import ASSETS, asset_text

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from tinycss2.ast import Node

NODE = os.environ.get("SWAYSIM_NODE") or shutil.which("node")
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


def node() -> str:
    if NODE is None:
        reason = (
            "node is not installed: on Debian or Ubuntu, sudo apt-get install nodejs; "
            "elsewhere set SWAYSIM_NODE to a node binary (README, Set up)"
        )
        if os.environ.get("SWAYSIM_REQUIRE_NODE"):
            pytest.fail(f"SWAYSIM_REQUIRE_NODE is set but {reason}")
        pytest.skip(reason)
    return NODE


def script_problems(path: Path) -> str:
    """What ``node --check`` says about the script at ``path`` ("" when it parses)."""
    completed = subprocess.run(
        [node(), "--check", str(path)], capture_output=True, text=True, check=False
    )
    return "" if completed.returncode == 0 else completed.stderr


def css_problems(text: str) -> list[str]:
    """Parse errors in a style sheet: in its rules, their selectors and their declarations.

    tinycss2 parses as browsers do, recovering silently where it can; a
    stray brace or semicolon in a selector and an empty value are what that
    recovery hides, so they are reported too.
    """
    rules = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    return _rule_problems(rules)


def _rule_problems(nodes: Iterable[Node]) -> list[str]:
    problems = []
    for item in nodes:
        where = f"line {item.source_line}"
        if item.type == "error":
            problems.append(f"{where}: {item.message}")
        elif item.type == "declaration" and not tinycss2.serialize(item.value).strip():
            problems.append(f"{where}: {item.name} has no value")
        elif item.type in ("qualified-rule", "at-rule"):
            prelude = tinycss2.serialize(item.prelude)
            if "}" in prelude or ";" in prelude:
                problems.append(f"{where}: stray brace or semicolon before {prelude.strip()!r}")
            if item.content is not None:
                content = tinycss2.parse_blocks_contents(
                    item.content, skip_comments=True, skip_whitespace=True
                )
                problems += _rule_problems(content)
    return problems


class _Nesting(HTMLParser):
    """Every start tag closed in order (void elements excepted), every id used once."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.ids: set[str] = set()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value is not None:
                if value in self.ids:
                    self.problems.append(f"id {value!r} used twice")
                self.ids.add(value)
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        line, _ = self.getpos()
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"line {line}: </{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()


def markup_problems(page: str) -> list[str]:
    checker = _Nesting()
    checker.feed(page)
    checker.close()
    return checker.problems + [f"<{tag}> never closed" for tag in checker.open]


def test_the_assets_ship_inside_the_package() -> None:
    folder = resources.files("swaysim._trace.report").joinpath("assets")
    assert sorted(item.name for item in folder.iterdir() if item.is_file()) == sorted(ASSETS)
    for name in ASSETS:
        assert asset_text(name).strip()


def test_the_report_script_parses() -> None:
    script = resources.files("swaysim._trace.report").joinpath("assets", "report.js")
    with resources.as_file(script) as path:
        assert script_problems(path) == ""


def test_node_check_catches_a_syntax_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.js"
    broken.write_text(asset_text("report.js").replace("function draw() {", "function draw( {"))
    assert "SyntaxError" in script_problems(broken)


def test_the_report_style_sheet_parses() -> None:
    assert css_problems(asset_text("report.css")) == []


def test_the_style_sheet_check_catches_broken_rules() -> None:
    broken = ["a { color red; }", "b { color: ; }", "} c { }", "d { e: f }}"]
    for sheet in broken:
        assert css_problems(sheet), sheet
    assert css_problems("@media print { a { color: red } }") == []


def test_the_template_and_a_rendered_page_nest(tmp_path: Path) -> None:
    assert markup_problems(asset_text("report.html")) == []
    page = report_of(make_run_dir(tmp_path / "run", workers=2, prompts=2))
    assert markup_problems(page) == []
    assert re.search(r"\{\{\w+\}\}", page) is None


def test_the_nesting_check_catches_misnested_markup() -> None:
    problems = markup_problems('<div id="a"><span id="a"></div><p>')
    assert problems == [
        "id 'a' used twice",
        "line 1: </div> closes ['span']",
        "<div> never closed",
        "<span> never closed",
        "<p> never closed",
    ]
