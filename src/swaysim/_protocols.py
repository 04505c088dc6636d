"""Runtime-checkable capability protocols: dlm-sway's contract, made async.

A runner asks ``isinstance(backend, ScalableDifferentialBackend)`` before
scheduling work that needs a scaled view, exactly as dlm-sway's runner does
with the synchronous protocols, and ``isinstance(backend, Observable)``
before reporting against a backend's counters and trace (a backend that is
not swaysim's may have neither). As with every runtime-checkable protocol,
``isinstance`` checks that the members exist, not their signatures; mypy
checks the signatures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractAsyncContextManager

    from swaysim._backend.statistics import BackendStatistics
    from swaysim._trace.events import TraceSink
    from swaysim._types import RollingLogprob, TokenDist

__all__ = [
    "DifferentialBackend",
    "NullCalibratedBackend",
    "Observable",
    "PreflightCheckable",
    "ScalableDifferentialBackend",
    "ScoringModel",
]


@runtime_checkable
class ScoringModel(Protocol):
    """A live view of the model: the five scoring ops and the view's ``id``."""

    @property
    def id(self) -> str:
        """``"base"``, ``"ft"``, ``"scaled_0.50"``, ``"null_42"`` or ``"null_42_rank2.00"``."""
        ...

    async def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str:
        """Generate a completion for ``prompt``."""
        ...

    async def logprob_of(self, prompt: str, completion: str) -> float:
        """Sum of the completion's token logprobs given the prompt, in nats."""
        ...

    async def rolling_logprob(self, text: str) -> RollingLogprob:
        """Per-token logprobs over the whole of ``text``."""
        ...

    async def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        """The (top-k truncated) next-token distribution after ``prompt``."""
        ...

    async def next_token_dist_batch(
        self, prompts: Sequence[str], *, top_k: int = 256
    ) -> list[TokenDist]:
        """``next_token_dist`` for each prompt, in order, as one batched call."""
        ...


@runtime_checkable
class DifferentialBackend(Protocol):
    """One model, two views that must not be live together unless declared safe."""

    @property
    def safe_for_concurrent_views(self) -> bool:
        """Whether views may be live together; a runner reads it, never sets it."""
        ...

    def as_base(self) -> AbstractAsyncContextManager[ScoringModel]:
        """Enter the base view (adapter disabled)."""
        ...

    def as_finetuned(self) -> AbstractAsyncContextManager[ScoringModel]:
        """Enter the fine-tuned view (adapter enabled)."""
        ...


@runtime_checkable
class ScalableDifferentialBackend(DifferentialBackend, Protocol):
    """A backend that can scale the adapter's additive term by ``lam``."""

    def as_scaled_adapter(self, lam: float) -> AbstractAsyncContextManager[ScoringModel]:
        """Enter a view with the LoRA term times ``lam`` (0 = base, 1 = ft)."""
        ...


@runtime_checkable
class NullCalibratedBackend(DifferentialBackend, Protocol):
    """A backend that can produce seeded null-adapter views for z-scoring."""

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> AbstractAsyncContextManager[ScoringModel]:
        """Enter a view whose adapter weights are seeded random noise."""
        ...


@runtime_checkable
class PreflightCheckable(Protocol):
    """A backend that can check its own logits are finite before a suite runs."""

    async def preflight_finite_check(self) -> tuple[bool, str]:
        """Return ``(True, "")``, or ``(False, reason)`` naming the broken view."""
        ...


@runtime_checkable
class Observable(Protocol):
    """A backend that reports on itself: counters, a trace sink and the trace's clock.

    swaysim's backends are observable; a runner that also runs against other
    backends checks ``isinstance(backend, Observable)`` and otherwise does
    without statistics and without a trace of its own.
    """

    @property
    def trace_sink(self) -> TraceSink | None:
        """Where the backend's trace events go (None: tracing is off); a runner emits there too."""
        ...

    def loop_time(self) -> float:
        """The time base of the backend's trace events, so a runner's events line up with them."""
        ...

    def statistics(self) -> BackendStatistics:
        """A snapshot of the backend's counters (cumulative over its life)."""
        ...
