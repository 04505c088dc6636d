"""What a probe asks of which view: the seam between probes and any runner.

A probe names views with :class:`ViewRef` (without entering them) and
requests with :class:`Ask`; a runner, swaysim's or a user's, opens each view
with :meth:`ViewRef.open`, sends each request with :meth:`Ask.send`, and
hands the probe its answers as :class:`Answers` (a failed request as the
:class:`~swaysim.errors.WorkFailedError` it raised). ``ViewRef`` and ``Ask``
are frozen and hashable: equal requests on the same view are the same
work, which a runner may send once and share between probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from swaysim._protocols import NullCalibratedBackend, ScalableDifferentialBackend
from swaysim._validation import require_finite, require_int, validate_op
from swaysim.errors import InvalidArgumentError, WorkFailedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from swaysim._protocols import DifferentialBackend, ScoringModel
    from swaysim._vocab import Op

__all__ = ["BASE", "FT", "Answers", "Ask", "ViewRef", "null_view", "scaled_view"]

ViewKindName = Literal["base", "ft", "scaled", "null"]


@dataclass(frozen=True, slots=True)
class ViewRef:
    """Names a view without entering it: ``base``, ``ft``, ``scaled(lam)``, ``null(seed)``."""

    kind: ViewKindName
    lam: float | None = None
    seed: int | None = None
    init_scale: float = 0.02
    rank_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("base", "ft", "scaled", "null"):
            raise InvalidArgumentError(
                f"ViewRef.kind={self.kind!r} is unknown; expected base, ft, scaled or null",
                field="kind",
                value=self.kind,
            )
        if self.kind == "scaled":
            if self.lam is None:
                raise InvalidArgumentError(
                    "ViewRef.lam=None must be a number for kind='scaled'", field="lam", value=None
                )
            object.__setattr__(self, "lam", require_finite("lam", self.lam))
        if self.kind == "null":
            if self.seed is None:
                raise InvalidArgumentError(
                    "ViewRef.seed=None must be an integer >= 0 for kind='null'",
                    field="seed",
                    value=None,
                )
            require_int("seed", self.seed, minimum=0)
            require_finite("init_scale", self.init_scale, minimum=0.0)
            rank = require_finite("rank_scale", self.rank_scale)
            if rank <= 0:
                raise InvalidArgumentError(
                    f"rank_scale={self.rank_scale!r} must be positive and finite",
                    field="rank_scale",
                    value=self.rank_scale,
                )

    @property
    def view_id(self) -> str:
        """The id the dummy backend gives this view (``scaled_0.50``, ``null_3_rank2.00``)."""
        if self.kind == "scaled":
            return f"scaled_{self.lam:.2f}"
        if self.kind == "null":
            if self.rank_scale == 1.0:
                return f"null_{self.seed}"
            return f"null_{self.seed}_rank{self.rank_scale:.2f}"
        return self.kind

    @property
    def label(self) -> str:
        """A short, stable name: ``base``, ``ft``, ``scaled(0.5)``, ``null(3)``."""
        if self.kind == "scaled":
            return f"scaled({self.lam!r})"
        if self.kind == "null":
            extras = []
            if self.init_scale != 0.02:
                extras.append(f"init_scale={self.init_scale!r}")
            if self.rank_scale != 1.0:
                extras.append(f"rank_scale={self.rank_scale!r}")
            return f"null({', '.join([str(self.seed), *extras])})"
        return self.kind

    def sort_key(self) -> tuple[int, float, float, float]:
        """Canonical order: ft, base, scaled by lam, null by seed.

        ft first because a preflight check ends on ft: continuing there saves
        one adapter swap.
        """
        order = {"ft": 0, "base": 1, "scaled": 2, "null": 3}[self.kind]
        if self.kind == "scaled":
            return (order, float(self.lam or 0.0), 0.0, 0.0)
        if self.kind == "null":
            return (order, float(self.seed or 0), self.init_scale, self.rank_scale)
        return (order, 0.0, 0.0, 0.0)

    def supported_by(self, backend: object) -> str | None:
        """None when ``backend`` can open this view, else why not."""
        if self.kind == "scaled" and not isinstance(backend, ScalableDifferentialBackend):
            return "the backend is not scalable (no as_scaled_adapter)"
        if self.kind == "null" and not isinstance(backend, NullCalibratedBackend):
            return "the backend has no null adapter (no as_null_adapter)"
        return None

    def open(self, backend: DifferentialBackend) -> AbstractAsyncContextManager[ScoringModel]:
        """The backend's async context manager for this view: ``async with ref.open(b) as view``.

        Raises :class:`~swaysim.errors.InvalidArgumentError` when the backend
        cannot open it (check :meth:`supported_by` first to skip instead).
        """
        if self.kind == "base":
            return backend.as_base()
        if self.kind == "ft":
            return backend.as_finetuned()
        if self.kind == "scaled" and isinstance(backend, ScalableDifferentialBackend):
            assert self.lam is not None  # __post_init__ requires it
            return backend.as_scaled_adapter(self.lam)
        if self.kind == "null" and isinstance(backend, NullCalibratedBackend):
            assert self.seed is not None  # __post_init__ requires it
            return backend.as_null_adapter(
                self.seed, init_scale=self.init_scale, rank_scale=self.rank_scale
            )
        raise InvalidArgumentError(
            f"cannot open view {self.label} on backend={backend!r}: {self.supported_by(backend)}",
            field="backend",
            value=backend,
        )


BASE = ViewRef("base")
FT = ViewRef("ft")


def scaled_view(lam: float) -> ViewRef:
    """The adapter scaled by ``lam``."""
    return ViewRef("scaled", lam=lam)


def null_view(seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0) -> ViewRef:
    """A seeded null adapter."""
    return ViewRef("null", seed=seed, init_scale=init_scale, rank_scale=rank_scale)


@dataclass(frozen=True, slots=True)
class Ask:
    """One op request: the op's name and arguments, without a view.

    Build one with the classmethod named after the op
    (``Ask.next_token_dist("q", top_k=8)``). Equal asks are equal values, so a
    runner may send one per view and share its answer.
    """

    op: Op
    prompt: str = ""
    completion: str = ""
    prompts: tuple[str, ...] = ()
    top_k: int = 256
    max_new_tokens: int = 0

    def __post_init__(self) -> None:
        validate_op("op", self.op, owner="Ask")

    @classmethod
    def next_token_dist(cls, prompt: str, *, top_k: int = 256) -> Ask:
        """``view.next_token_dist(prompt, top_k=top_k)``."""
        return cls("next_token_dist", prompt=prompt, top_k=top_k)

    @classmethod
    def next_token_dist_batch(cls, prompts: Sequence[str], *, top_k: int = 256) -> Ask:
        """``view.next_token_dist_batch(prompts, top_k=top_k)``."""
        return cls("next_token_dist_batch", prompts=tuple(prompts), top_k=top_k)

    @classmethod
    def logprob_of(cls, prompt: str, completion: str) -> Ask:
        """``view.logprob_of(prompt, completion)``."""
        return cls("logprob_of", prompt=prompt, completion=completion)

    @classmethod
    def rolling_logprob(cls, text: str) -> Ask:
        """``view.rolling_logprob(text)``."""
        return cls("rolling_logprob", prompt=text)

    @classmethod
    def generate(cls, prompt: str, *, max_new_tokens: int) -> Ask:
        """``view.generate(prompt, max_new_tokens=max_new_tokens)``."""
        return cls("generate", prompt=prompt, max_new_tokens=max_new_tokens)

    def send(self, view: ScoringModel) -> Awaitable[Any]:
        """The coroutine that performs this request on the live ``view``.

        Its result is the op's (``TokenDist``, ``float``, ``RollingLogprob``,
        ``list[TokenDist]`` or ``str``); whatever it raises is the op's error.
        """
        op = self.op
        if op == "next_token_dist":
            return view.next_token_dist(self.prompt, top_k=self.top_k)
        if op == "logprob_of":
            return view.logprob_of(self.prompt, self.completion)
        if op == "rolling_logprob":
            return view.rolling_logprob(self.prompt)
        if op == "next_token_dist_batch":
            return view.next_token_dist_batch(self.prompts, top_k=self.top_k)
        return view.generate(self.prompt, max_new_tokens=self.max_new_tokens)

    def describe(self) -> str:
        """``next_token_dist('q1')`` style, for messages."""
        if self.op == "logprob_of":
            return f"logprob_of({self.prompt!r}, {self.completion!r})"
        if self.op == "next_token_dist_batch":
            return f"next_token_dist_batch({len(self.prompts)} prompts)"
        return f"{self.op}({self.prompt!r})"


class Answers:
    """Read-only access to the answers of a probe's requests, keyed by ``(view, ask)``.

    A runner builds one per probe from the answers it got (``values``) and
    the requests that failed after its retries (``failures``); the probe's
    :meth:`~swaysim.Probe.finalize` reads it with :meth:`get`.
    """

    __slots__ = ("_failures", "_values")

    def __init__(
        self,
        values: Mapping[tuple[ViewRef, Ask], object],
        failures: Mapping[tuple[ViewRef, Ask], WorkFailedError],
    ) -> None:
        self._values = values
        self._failures = failures

    def get(self, view: ViewRef, ask: Ask) -> Any:
        """The answer (the type :meth:`Ask.send` returns), or raise the request's
        :class:`WorkFailedError` if it failed."""
        key = (view, ask)
        failure = self._failures.get(key)
        if failure is not None:
            raise failure
        try:
            return self._values[key]
        except KeyError:
            raise InvalidArgumentError(
                f"{ask.describe()} on view {view.label} was not among the probe's requests",
                field="ask",
                value=ask,
            ) from None
