"""Regenerate the report screenshot in the docs: ``make screenshot``.

Renders the report of a failing scenario, docs/examples/tight_retry_budget.toml
on trio (tests/report_runs.py, the same run the browser tests load), in
headless chromium, with its first failed expectation shown on the timeline
(as a click on "show on timeline" does), and writes the full page as a PNG, by
default to ``docs/report-screenshot.png``. Tests never write into the source
tree; this script is the one way the picture changes, on purpose. Run from the
repository root with ``PYTHONPATH=tests`` (the make target does).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from chromium import CHROMIUM, open_page, show_report
from report_runs import scenario_run_dir
from swaysim import write_report

#: What the screenshot shows: the first failed expectation, on the timeline.
FOCUS_FIRST_FAILURE = "document.querySelector('a.spot').click(); window.scrollTo(0, 0)"

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"


def capture(output: Path, *, executable: str = CHROMIUM) -> bool:
    """Write the screenshot to ``output``; returns whether its bytes changed."""
    with tempfile.TemporaryDirectory(prefix="swaysim-screenshot-") as folder:
        run_dir = scenario_run_dir(Path(folder) / "runs")
        report = Path(folder) / "report.html"
        write_report(run_dir, report)
        with open_page(executable) as page:
            show_report(page, report)
            page.evaluate(FOCUS_FIRST_FAILURE)
            problems = page.problems(report.resolve().as_uri())
            if problems:
                raise SystemExit(f"the report logged problems: {problems}")
            shot = page.screenshot()
    if output.is_file() and output.read_bytes() == shot:
        return False
    output.write_bytes(shot)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser executable")
    args = parser.parse_args()
    changed = capture(args.output, executable=args.chromium)
    print(f"{args.output}: {'written' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
