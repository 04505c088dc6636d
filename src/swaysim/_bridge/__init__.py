"""The blocking bridge: synchronous callers on worker threads, the loop on its own."""

from __future__ import annotations
