"""Exploration: generated fault schedules against a runner, failures shrunk to a scenario file."""

from __future__ import annotations
