"""Regenerate the report screenshot in the docs: ``make screenshot``.

Renders the report of the six-probe demo run (tests/report_runs.py, the
same run the browser test loads) in headless chromium and writes the full
page as a PNG, by default to ``docs/report-screenshot.png``. Tests never
write into the source tree; this script is the one way the picture changes,
on purpose. Run from the repository root with ``PYTHONPATH=tests`` (the
make target does).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from chromium import CHROMIUM, open_page, show_report
from report_runs import make_run_dir
from swaysim import write_report

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"


def capture(output: Path, *, executable: str = CHROMIUM) -> bool:
    """Write the screenshot to ``output``; returns whether its bytes changed."""
    with tempfile.TemporaryDirectory(prefix="swaysim-screenshot-") as folder:
        run_dir = make_run_dir(Path(folder) / "run")
        report = run_dir / "report.html"
        write_report(run_dir, report)
        with open_page(executable) as page:
            show_report(page, report)
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
