"""The HTML report in a real browser: it loads, draws and zooms with no error or request.

Headless Debian chromium, driven over the DevTools protocol on a pipe
(tests/browser/chromium.py). The tests skip when ``/usr/bin/chromium`` is
missing, and fail instead when ``SWAYSIM_REQUIRE_CHROMIUM`` is set (``.ci/run``
installs chromium and sets it). The report as text is tested in
tests/unit/test_report_render.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chromium import CHROMIUM, PAINTED, Page, open_page, png_size, show_report
from report_runs import make_run_dir, scenario_run_dir, synthetic_ops, trace_run_dir
from swaysim import write_report
from swaysim._trace.report.timeline import MAX_DETAIL_ROWS, ROW_INTERVAL_CAP

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).is_file():
        reason = (
            f"{CHROMIUM} is not installed: on Debian or Ubuntu, sudo apt-get install chromium; "
            "elsewhere set SWAYSIM_CHROMIUM to a Chromium or Chrome binary (README, Set up)"
        )
        if os.environ.get("SWAYSIM_REQUIRE_CHROMIUM"):
            pytest.fail(f"SWAYSIM_REQUIRE_CHROMIUM is set but {reason}")
        pytest.skip(reason)
    with open_page(CHROMIUM) as page:
        yield page


def test_the_harness_catches_console_errors_exceptions_and_requests(
    page: Page, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><title>bad</title><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('boom'); null.x;</script>",
        encoding="utf-8",
    )
    page.load(bad)
    found = page.problems(bad.resolve().as_uri())
    assert any(p.startswith("console.error: boom") for p in found), found
    assert any(p.startswith("exception:") for p in found), found
    assert any(p.startswith("request: http://127.0.0.1:9/x.png") for p in found), found


def load_report(page: Page, run_dir: Path, *, max_elements: int = 1_000) -> Path:
    """Write ``run_dir``'s report, load it, and check the timeline drew and the DOM is small.

    The DOM grows with the tables (per probe, view, op name and rule), never per event.
    """
    output = run_dir / "report.html"
    write_report(run_dir, output)
    show_report(page, output)
    assert page.evaluate(PAINTED) > 5_000
    assert page.evaluate("document.getElementsByTagName('*').length") < max_elements
    return output


def test_the_report_renders_in_chromium_without_errors(page: Page, tmp_path: Path) -> None:
    output = load_report(page, make_run_dir(tmp_path / "run"))
    assert page.evaluate("document.getElementById('range').textContent").endswith("(100.0%)")
    # What `make screenshot` saves as docs/report-screenshot.png; a test only checks it.
    shot = page.screenshot()
    assert page.problems(output.resolve().as_uri()) == []
    width, height = png_size(shot)
    assert width == Page.WIDTH
    assert height > Page.HEIGHT

    # Zooming and panning redraw without errors.
    page.evaluate("document.getElementById('zoom-in').click()")
    assert page.evaluate("document.getElementById('range').textContent").endswith("(50.0%)")
    page.evaluate("document.getElementById('pan-right').click()")
    page.evaluate("document.getElementById('zoom-out').click()")
    page.evaluate("document.getElementById('zoom-reset').click()")
    assert page.evaluate("document.getElementById('range').textContent").endswith("(100.0%)")
    assert page.problems(output.resolve().as_uri()) == []


def test_a_report_of_a_binned_run_renders_without_errors(page: Page, tmp_path: Path) -> None:
    events, _ = synthetic_ops(ROW_INTERVAL_CAP + 5_000)
    output = load_report(page, trace_run_dir(tmp_path / "run", events))
    for _ in range(12):
        page.evaluate("document.getElementById('zoom-in').click()")
    assert page.evaluate(PAINTED) > 1_000
    assert page.problems(output.resolve().as_uri()) == []


def test_a_report_with_aggregate_rows_renders_without_errors(page: Page, tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", workers=MAX_DETAIL_ROWS + 5, prompts=2)
    # Two tables of 45 probes: about 20 elements per probe.
    output = load_report(page, run_dir, max_elements=2_000)
    page.evaluate("document.getElementById('zoom-in').click()")
    assert page.problems(output.resolve().as_uri()) == []


def test_a_failing_scenarios_report_links_each_expectation_to_its_evidence(
    page: Page, tmp_path: Path
) -> None:
    output = load_report(page, scenario_run_dir(tmp_path / "runs"))
    links = page.evaluate("document.querySelectorAll('a.spot').length")
    assert links == 5
    page.evaluate("document.querySelector('a.spot').click()")
    # The failed verdict expectation points at the probe that ERRORed: its row, its time.
    assert page.evaluate("document.body.dataset.focused") == "dkl-0"
    assert not page.evaluate("document.getElementById('range').textContent").endswith("(100.0%)")
    page.evaluate("document.getElementById('zoom-reset').click()")
    assert page.problems(output.resolve().as_uri()) == []


@pytest.mark.parametrize("width", [Page.WIDTH, 720])
def test_the_report_fits_the_viewport_at_two_widths(page: Page, tmp_path: Path, width: int) -> None:
    # The screenshot at a second, narrow width: the page must not need sideways scrolling
    # (wide tables scroll inside themselves) and the timeline must still draw.
    run_dir = scenario_run_dir(tmp_path / "runs")
    output = run_dir / "report.html"
    write_report(run_dir, output)
    page.resize(width)
    try:
        show_report(page, output)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate(PAINTED) > 2_000
        shot = page.screenshot()
        assert png_size(shot)[0] == width
        assert page.problems(output.resolve().as_uri()) == []
    finally:
        page.resize(Page.WIDTH)
