"""Fault and latency plans, output corruption, schedule jitter, and the seeded draws behind them."""

from __future__ import annotations
