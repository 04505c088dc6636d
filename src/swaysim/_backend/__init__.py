"""The async dummy differential backend: views, the exclusivity gate, the op pipeline."""

from __future__ import annotations
