"""A toy pure trial for the parallel runner's tests: module-level, so worker processes import it.

``toy_trial(config, seed)`` is a pure function of its arguments: a digest of
the seed and the config's salt, failing for the seeds the config names and
raising for the ones it says crash. ``work`` gives some seeds more hashing to
do, so a lower failing seed can finish after a higher one in another worker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ToyConfig:
    salt: str = "toy"
    failing: frozenset[int] = frozenset()
    crashing: frozenset[int] = frozenset()
    work: tuple[tuple[int, int], ...] = field(default=())


@dataclass(frozen=True)
class ToyOutcome:
    seed: int
    digest: str
    failed: bool


def toy_trial(config: ToyConfig, seed: int) -> ToyOutcome:
    if seed in config.crashing:
        raise RuntimeError(f"toy trial broke on purpose at seed {seed}")
    digest = hashlib.sha256(f"{config.salt}:{seed}".encode()).digest()
    for _ in range(dict(config.work).get(seed, 0)):
        digest = hashlib.sha256(digest).digest()
    return ToyOutcome(seed, digest.hex()[:16], seed in config.failing)


def failed(outcome: ToyOutcome) -> bool:
    return outcome.failed
