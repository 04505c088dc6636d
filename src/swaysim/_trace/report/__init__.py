"""The HTML report of one run (``swaysim report RUN_DIR``): page data, sections, assets."""

from __future__ import annotations
