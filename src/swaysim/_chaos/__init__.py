"""Fault and latency plans, schedule jitter, and the seeded draws behind them."""

from __future__ import annotations
