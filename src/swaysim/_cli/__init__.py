"""The `swaysim` command line."""

from __future__ import annotations
