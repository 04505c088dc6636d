"""The reference runner, the probe model and the reference probes."""

from __future__ import annotations
