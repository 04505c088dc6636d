"""Declarative fault injection: rules, the plan, the exceptions and the corruptions.

Rules are checked in order for every op call (every item of a batch, every
view enter and exit); **the first rule whose every condition holds fires**,
and no later rule is consulted for that call. A rule whose filters match but
whose probability draw says no does not match, so the next rule gets its
chance. Whether a rule matches depends only on the plan seed, the rule, the
op, the view, the prompt and the call's per-key index (the how-many-th call
of this op on this view with this prompt), so the same seed fires the same
faults on asyncio and trio, at any concurrency, in any process. Two forms are
timing-dependent by nature and documented as such: ``window`` (loop time) and
``max_fires`` (a global cap, consumed in arrival order).

What each kind does:

- ``transient`` / ``fatal`` (every op): the op raises
  :class:`InjectedTransientError` / :class:`InjectedFatalError` after the
  service time of its forward pass (right after a checkpoint on a cache hit);
  nothing is cached, so a retry of a transient failure recomputes. In a
  batch, the whole batch raises, ``item_index`` naming the first failing item.
- ``hang`` (every op): the op holds a device slot and sleeps until
  cancelled; one hanging item hangs its whole batch.
- ``nan`` / ``posinf`` / ``neginf`` (every op but ``generate``): every
  logprob of the result (and a rolling total or a ``logprob_of`` score)
  becomes NaN / +Inf / -Inf; ``tail_logprob`` is left as it was.
- ``corrupt_unsorted`` (next-token ops): the same (id, logprob) pairs, least
  probable first. A pure permutation: it breaks code that reads
  ``token_ids[0]`` as the argmax, and it cannot change a number computed
  without relying on order (on a nearly flat slice, such as the seed's ft,
  it may change nothing).
- ``corrupt_duplicate`` (next-token ops): the last id repeats the first (a
  one-token slice is doubled, an empty one gets two copies of id 0).
- ``corrupt_length`` (next-token ops, ``rolling_logprob``): one logprob more
  than there are ids (a ``TokenDist``) or than ``num_tokens - 1`` (a rolling
  result).
- ``corrupt_mass`` (next-token ops, ``logprob_of``): the slice's probability
  mass doubled, and at least 1.5 (an empty or all ``-inf`` slice gains one
  token of mass 1.5); a ``logprob_of`` score becomes ``|score| + 1`` > 0.
- ``enter_error`` / ``exit_error`` (view entries and exits, never ops):
  entering (after the switch and enter latency) or cleanly exiting a view
  raises; the gate is released first. An exit fault never replaces an
  exception or a cancellation leaving the block.

Output faults corrupt a copy, in a batch only their own item's: the cache
keeps the clean value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Final, Literal, TypeVar

import numpy as np

from swaysim._chaos.seeding import unit_draws
from swaysim._types import RollingLogprob, TokenDist
from swaysim._vocab import (
    OPS,
    name_tuple,
    require_finite,
    require_int,
    typed_tuple,
    validate_ops,
    validate_views,
    view_matches,
)
from swaysim.errors import (
    InjectedFatalError,
    InjectedFault,
    InjectedTransientError,
    InjectedViewEnterError,
    InjectedViewExitError,
    InvalidArgumentError,
)

if TYPE_CHECKING:
    from swaysim._vocab import Op

__all__ = [
    "FaultFiring",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "InjectedFatalError",
    "InjectedFault",
    "InjectedTransientError",
    "InjectedViewEnterError",
    "InjectedViewExitError",
]

FaultKind = Literal[
    "transient",
    "fatal",
    "hang",
    "nan",
    "posinf",
    "neginf",
    "corrupt_unsorted",
    "corrupt_duplicate",
    "corrupt_length",
    "corrupt_mass",
    "enter_error",
    "exit_error",
]

_SCORING: Final = ("logprob_of", "rolling_logprob", "next_token_dist", "next_token_dist_batch")
_DISTS: Final = ("next_token_dist", "next_token_dist_batch")
APPLICABLE_OPS: Final[dict[str, tuple[str, ...]]] = {
    "transient": OPS,
    "fatal": OPS,
    "hang": OPS,
    "nan": _SCORING,
    "posinf": _SCORING,
    "neginf": _SCORING,
    "corrupt_unsorted": _DISTS,
    "corrupt_duplicate": _DISTS,
    "corrupt_length": (*_DISTS, "rolling_logprob"),
    "corrupt_mass": (*_DISTS, "logprob_of"),
    "enter_error": (),
    "exit_error": (),
}
FAULT_KINDS: Final[tuple[str, ...]] = tuple(APPLICABLE_OPS)
ERROR_KINDS: Final = frozenset({"transient", "fatal"})
VIEW_EVENT_KINDS: Final = frozenset({"enter_error", "exit_error"})
OUTPUT_KINDS: Final = frozenset(FAULT_KINDS) - ERROR_KINDS - VIEW_EVENT_KINDS - {"hang"}
"""Kinds that let the op return and corrupt its value."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault and the calls it targets; every filter given must hold.

    - ``kind``: what happens (see the module docstring).
    - ``name``: how firings, statistics and exceptions name the rule;
      default ``"<kind>#<index>"``. Unique within a plan.
    - ``ops`` / ``views``: which ops and views (kinds or exact ids); empty
      means every op the kind applies to, and every view.
    - ``prompt``: a case-sensitive glob (``fnmatch``) on the prompt or text.
    - ``nth``: only the n-th call of a key (1-based); ``after``: only calls
      after the first n of a key; ``every``: calls n, 2n, 3n... of a key. A
      key is (op, view id, prompt), the completion included for
      ``logprob_of``; each batch item counts under (batch op, view id, its
      prompt). ``enter_error`` counts the entries of the view and
      ``exit_error`` its exits.
    - ``probability``: fire with this probability, drawn per call from
      (plan seed, rule name, op, view id, prompt, call index), so the same
      calls fire in every run.
    - ``max_fires``: stop after this many firings of this rule in total,
      counted in arrival order (timing-dependent under concurrency).
    - ``window``: only while the backend's loop time, in seconds since its
      first use in the current event loop, is in ``[start, end)``
      (timing-dependent by definition).

    Validated at construction: a bad value raises
    :class:`~swaysim.InvalidArgumentError` naming the field and the value.
    """

    kind: FaultKind
    name: str = ""
    ops: tuple[Op, ...] = ()
    views: tuple[str, ...] = ()
    prompt: str | None = None
    nth: int | None = None
    after: int | None = None
    every: int | None = None
    probability: float = 1.0
    max_fires: int | None = None
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in APPLICABLE_OPS:
            raise InvalidArgumentError(
                f"FaultRule.kind={self.kind!r} is unknown; expected one of {', '.join(FAULT_KINDS)}"
            )
        object.__setattr__(self, "ops", name_tuple("FaultRule.ops", self.ops))
        object.__setattr__(self, "views", name_tuple("FaultRule.views", self.views))
        if not isinstance(self.name, str):
            raise InvalidArgumentError(f"FaultRule.name={self.name!r} must be a string")
        validate_ops("FaultRule.ops", self.ops)
        validate_views("FaultRule.views", self.views)
        applicable = APPLICABLE_OPS[self.kind]
        if self.kind in VIEW_EVENT_KINDS:
            if self.ops:
                raise InvalidArgumentError(
                    f"FaultRule.ops={list(self.ops)!r} must be empty for kind {self.kind!r}: "
                    "it fires on view enter/exit, not on ops"
                )
            if self.prompt is not None:
                raise InvalidArgumentError(
                    f"FaultRule.prompt={self.prompt!r} must be unset for kind {self.kind!r}: "
                    "a view enter/exit has no prompt"
                )
        for op in self.ops:
            if op not in applicable:
                raise InvalidArgumentError(
                    f"FaultRule.ops contains {op!r}, which kind {self.kind!r} cannot target; "
                    f"it applies to {', '.join(applicable)}"
                )
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt):
            raise InvalidArgumentError(
                f"FaultRule.prompt={self.prompt!r} must be a non-empty glob such as 'q*'"
            )
        if self.nth is not None:
            require_int("FaultRule.nth", self.nth, minimum=1)
        if self.after is not None:
            require_int("FaultRule.after", self.after, minimum=0)
        if self.every is not None:
            require_int("FaultRule.every", self.every, minimum=1)
        if self.max_fires is not None:
            require_int("FaultRule.max_fires", self.max_fires, minimum=1)
        probability = require_finite("FaultRule.probability", self.probability)
        if not 0.0 <= probability <= 1.0:
            raise InvalidArgumentError(
                f"FaultRule.probability={self.probability!r} must be within [0, 1]"
            )
        if self.window is not None:
            window = tuple(self.window) if isinstance(self.window, tuple | list) else ()
            if len(window) != 2:
                raise InvalidArgumentError(
                    f"FaultRule.window={self.window!r} must be a (start, end) pair of seconds"
                )
            start = require_finite("FaultRule.window start", window[0], minimum=0.0)
            end = require_finite("FaultRule.window end", window[1], minimum=0.0)
            if end <= start:
                raise InvalidArgumentError(
                    f"FaultRule.window={self.window!r} must have start < end"
                )
            object.__setattr__(self, "window", (start, end))

    def applies_to(self, op: str) -> bool:
        """Whether this rule can fire on ``op`` at all (kind and op filter)."""
        if self.ops:
            return op in self.ops
        return op in APPLICABLE_OPS[self.kind]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """An ordered set of fault rules and the seed for their probability draws.

    For each call the rules are tried in order and **the first match fires**
    (at most one fault per call). Put narrow rules before broad ones.
    Immutable and validated at construction; each backend keeps its own
    counters, so one plan may serve many backends and runs.
    """

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        require_int("FaultPlan.seed", self.seed, minimum=0)
        object.__setattr__(self, "rules", typed_tuple("FaultPlan.rules", self.rules, FaultRule))
        names: set[str] = set()
        for index in range(len(self.rules)):
            name = self.rule_name(index)
            if name in names:
                raise InvalidArgumentError(
                    f"FaultPlan.rules[{index}].name={name!r} is used twice; "
                    "rule names must be unique"
                )
            names.add(name)

    def rule_name(self, index: int) -> str:
        """The rule's name, or ``"<kind>#<index>"`` when it has none."""
        rule = self.rules[index]
        return rule.name or f"{rule.kind}#{index}"


@dataclass(frozen=True, slots=True)
class FaultFiring:
    """One firing: which rule, on which call, at what loop time."""

    rule_index: int
    rule_name: str
    kind: str
    op: str
    view_id: str
    prompt: str
    call_index: int
    time: float


EXCEPTION_FOR_KIND: Final[dict[str, type[InjectedFault]]] = {
    "transient": InjectedTransientError,
    "fatal": InjectedFatalError,
    "enter_error": InjectedViewEnterError,
    "exit_error": InjectedViewExitError,
}


class FaultState:
    """The mutable side of a plan: firing counts and the firing log.

    Owned by one backend; the plan itself stays immutable and shareable.
    """

    __slots__ = ("_fired", "fired_per_rule", "log", "plan")

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._fired = [0] * len(plan.rules)
        self.fired_per_rule: dict[str, int] = {}
        self.log: list[FaultFiring] = []

    @property
    def total_fired(self) -> int:
        """Firings so far, over every rule."""
        return len(self.log)

    def select(
        self,
        op: str,
        kind: str,
        view_id: str,
        prompt: str,
        call_index: int,
        now: float,
        *,
        key: str | None = None,
    ) -> FaultFiring | None:
        """The firing for this call (first matching rule), or None.

        ``prompt`` is what ``FaultRule.prompt`` globs match; ``key`` (default:
        the prompt) names the call for the probability draw, so that, say,
        two completions scored against one prompt draw independently.
        """
        plan = self.plan
        for index, rule in enumerate(plan.rules):
            if op in ("enter", "exit"):
                if rule.kind != f"{op}_error":
                    continue
            elif not rule.applies_to(op):
                continue
            draw_key = prompt if key is None else key
            if not self._matches(index, rule, op, kind, view_id, prompt, draw_key, call_index, now):
                continue
            self._fired[index] += 1
            name = plan.rule_name(index)
            self.fired_per_rule[name] = self.fired_per_rule.get(name, 0) + 1
            firing = FaultFiring(index, name, rule.kind, op, view_id, prompt, call_index, now)
            self.log.append(firing)
            return firing
        return None

    def _matches(
        self,
        index: int,
        rule: FaultRule,
        op: str,
        kind: str,
        view_id: str,
        prompt: str,
        draw_key: str,
        call_index: int,
        now: float,
    ) -> bool:
        if not view_matches(rule.views, kind, view_id):
            return False
        if rule.prompt is not None and not fnmatchcase(prompt, rule.prompt):
            return False
        if rule.nth is not None and call_index != rule.nth:
            return False
        if rule.after is not None and call_index <= rule.after:
            return False
        if rule.every is not None and call_index % rule.every:
            return False
        if rule.window is not None and not rule.window[0] <= now < rule.window[1]:
            return False
        if rule.max_fires is not None and self._fired[index] >= rule.max_fires:
            return False
        if rule.probability < 1.0:
            name = self.plan.rule_name(index)
            u, _, _ = unit_draws(self.plan.seed, "fault", name, op, view_id, draw_key, call_index)
            if u >= rule.probability:
                return False
        return True


_V = TypeVar("_V", TokenDist, RollingLogprob, float)
_LN2: Final = math.log(2.0)
_CORRUPT_MASS: Final = 1.5


def corrupt(kind: str, value: _V) -> _V:
    """Return a corrupted copy of ``value``; cached values are never mutated."""
    if isinstance(value, TokenDist):
        return _corrupt_dist(kind, value)
    if isinstance(value, RollingLogprob):
        return _corrupt_rolling(kind, value)
    return _corrupt_float(kind, value)


def _non_finite(kind: str) -> float:
    return {"nan": math.nan, "posinf": math.inf, "neginf": -math.inf}[kind]


def _corrupt_dist(kind: str, dist: TokenDist) -> TokenDist:
    ids, lps = dist.token_ids, dist.logprobs
    if kind in ("nan", "posinf", "neginf"):
        lps = np.full(lps.shape, _non_finite(kind), dtype=np.float32)
    elif kind == "corrupt_unsorted":
        # The same (id, logprob) pairs, least probable first: code that takes
        # token_ids[0] as the argmax reads the wrong token. A pure permutation,
        # so a consumer that does not rely on the order is unaffected.
        order = np.argsort(lps, kind="stable")
        ids, lps = ids[order], lps[order]
    elif kind == "corrupt_duplicate":
        if ids.size >= 2:
            ids = ids.copy()
            ids[-1] = ids[0]
        elif ids.size:
            ids, lps = np.concatenate([ids, ids]), np.concatenate([lps, lps])
        else:
            ids, lps = np.zeros(2, dtype=np.int64), np.full(2, -1.0, dtype=np.float32)
    elif kind == "corrupt_length":
        lps = np.concatenate([lps, np.full(1, -20.0, dtype=np.float32)])
    elif kind == "corrupt_mass":
        # Double the slice's mass, or raise it to 1.5 if doubling gives less: a
        # slice of mass 0.5 doubled is 1.0, which any tolerant validator accepts.
        # The shape is kept. An empty (or all -inf) slice gets one token of mass 1.5.
        finite = lps[np.isfinite(lps)].astype(np.float64)
        mass = float(np.exp(finite).sum())
        if mass > 0.0:
            shift = _LN2 if 2.0 * mass >= _CORRUPT_MASS else math.log(_CORRUPT_MASS / mass)
            lps = (lps + np.float32(shift)).astype(np.float32)
        else:
            ids = np.append(ids, int(ids.max()) + 1 if ids.size else 0).astype(np.int64)
            lps = np.append(lps, math.log(_CORRUPT_MASS)).astype(np.float32)
    return TokenDist(ids, lps, dist.vocab_size, dist.tail_logprob)


def _corrupt_rolling(kind: str, rolling: RollingLogprob) -> RollingLogprob:
    if kind == "corrupt_length":
        lps = np.concatenate([rolling.logprobs, np.full(1, -20.0, dtype=np.float32)])
        return RollingLogprob(rolling.token_ids, lps, rolling.num_tokens, rolling.total_logprob)
    bad = _non_finite(kind)
    lps = np.full(rolling.logprobs.shape, bad, dtype=np.float32)
    return RollingLogprob(rolling.token_ids, lps, rolling.num_tokens, bad)


def _corrupt_float(kind: str, value: float) -> float:
    if kind == "corrupt_mass":
        return abs(value) + 1.0
    return _non_finite(kind)
