"""The pytest plugin: the swaysim marker, fixtures and scenario items."""

from __future__ import annotations
