"""Scenario files: schema, loading, building a backend and suite, checking expectations."""

from __future__ import annotations
