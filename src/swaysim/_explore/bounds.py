"""The documented bounds of what exploration generates (docs/explore.md, "Bounds").

One place for them, so that the seeded draws of :mod:`~swaysim._explore.generate`
and the Hypothesis strategies of :mod:`swaysim.strategies` generate the same space.
Every number here is written in docs/explore.md; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final

from swaysim._chaos.faults import APPLICABLE_OPS, FAULT_KINDS, VIEW_EVENT_KINDS
from swaysim._vocab import VIEW_KINDS

__all__ = [
    "CONCURRENCY_CHOICES",
    "FAULT_KIND_CHOICES",
    "JITTER_SEED_BOUND",
    "LATENCY_SECONDS",
    "MAX_EVERY",
    "MAX_FIRES",
    "MAX_NTH",
    "MAX_RETRIES",
    "MAX_RULES",
    "BACKOFF_CAP_FACTORS",
    "BACKOFF_SECONDS",
    "POLICY_CHANCE",
    "PROBABILITY_CHOICES",
    "SCENARIO_SEED_BOUND",
    "SIGMA_RANGE",
    "STRICT_CHANCE",
    "SWITCH_SECONDS",
    "TIMEOUT_KINDS",
    "VIEW_KIND_CHOICES",
    "applicable_ops",
]

MAX_RULES: Final = 3
"""Fault rules per generated plan: 1 to this many."""
FAULT_KIND_CHOICES: Final[tuple[str, ...]] = FAULT_KINDS
"""Every fault kind (``--faults`` narrows them)."""
TIMEOUT_KINDS: Final = frozenset({"hang"})
"""Kinds generated only when the scenario sets ``op_timeout`` or ``probe_timeout``: a hang
nothing cuts off stalls every runner, the reference one too."""
VIEW_KIND_CHOICES: Final[tuple[str, ...]] = VIEW_KINDS
"""View kinds a rule may target (``--views`` narrows them)."""
MAX_NTH: Final = 3
"""``nth`` and ``after`` are drawn from 1 (0 for ``after``) to this."""
MAX_EVERY: Final = 4
"""``every`` is drawn from 2 to this."""
PROBABILITY_CHOICES: Final = (0.1, 0.3, 0.5)
"""A probabilistic rule fires with one of these chances per call."""
MAX_FIRES: Final = 3
"""``max_fires``, when drawn, is 1 to this."""
LATENCY_SECONDS: Final = (0.001, 0.2)
"""Range of a generated op service time (constant, uniform bounds, log-normal median)."""
SIGMA_RANGE: Final = (0.1, 1.0)
"""Range of a generated log-normal sigma."""
SWITCH_SECONDS: Final = (0.0, 0.5)
"""Range of a generated view-switch cost."""
STRICT_CHANCE: Final = 0.3
"""Chance that a trial on an exclusive backend makes it ``exclusivity = "strict"``: entering
a busy view fails at once instead of waiting, so a runner that does not coordinate views
shows it in its results."""
CONCURRENCY_CHOICES: Final = (1, 2, 4, 8, 16)
"""``[runner] concurrency`` values a trial may use instead of the scenario's."""
JITTER_SEED_BOUND: Final = 1 << 16
"""Schedule-jitter seeds are drawn from ``[0, this)`` (or jitter is left off)."""
SCENARIO_SEED_BOUND: Final = 1 << 16
"""Scenario seeds (every plan's draws) are drawn from ``[0, this)`` (or the file's is kept)."""


POLICY_CHANCE: Final = 0.3
"""Chance that a trial draws its own retry policy instead of keeping the file's."""
MAX_RETRIES: Final = 4
"""A drawn ``retries`` is 1 to this."""
BACKOFF_SECONDS: Final = (0.01, 0.5)
"""Range of a drawn ``backoff``."""
BACKOFF_CAP_FACTORS: Final = (1.0, 1.5, 2.0, 3.0)
"""A drawn ``backoff_max`` is ``backoff`` times one of these: low enough that the cap binds
within the drawn retries."""


def applicable_ops(kind: str, used: tuple[str, ...]) -> tuple[str, ...]:
    """The ops of ``used`` a fault of ``kind`` can fire on (none for view-event kinds)."""
    if kind in VIEW_EVENT_KINDS:
        return ()
    return tuple(op for op in APPLICABLE_OPS[kind] if op in used)
