"""Virtual clocks for asyncio and trio, and `swaysim.run`."""

from __future__ import annotations
