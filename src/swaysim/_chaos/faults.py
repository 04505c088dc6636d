"""Declarative fault injection: rules, the plan, and which rule fires on which call.

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

Output faults corrupt a copy (:mod:`swaysim._chaos.corrupt`), in a batch only
their own item's: the cache keeps the clean value.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Final, Literal

from swaysim._chaos.seeding import unit_draws
from swaysim._validation import (
    invalid,
    name_tuple,
    require_count,
    require_finite,
    require_seconds,
    require_seed,
    typed_tuple,
    validate_ops,
    validate_views,
)
from swaysim._vocab import OPS, OpKind, view_matches
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
    "APPLICABLE_OPS",
    "ERROR_KINDS",
    "EXCEPTION_FOR_KIND",
    "FAULT_KINDS",
    "OUTPUT_KINDS",
    "VIEW_EVENT_KINDS",
    "FaultFiring",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "FaultState",
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

_DISTS: Final = (OpKind.NEXT_TOKEN_DIST.op, OpKind.NEXT_TOKEN_DIST_BATCH.op)
_SCORING: Final = (OpKind.LOGPROB_OF.op, OpKind.ROLLING_LOGPROB.op, *_DISTS)
APPLICABLE_OPS: Final[dict[str, tuple[Op, ...]]] = {
    "transient": OPS,
    "fatal": OPS,
    "hang": OPS,
    "nan": _SCORING,
    "posinf": _SCORING,
    "neginf": _SCORING,
    "corrupt_unsorted": _DISTS,
    "corrupt_duplicate": _DISTS,
    "corrupt_length": (*_DISTS, OpKind.ROLLING_LOGPROB.op),
    "corrupt_mass": (*_DISTS, OpKind.LOGPROB_OF.op),
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
            raise invalid(
                "kind",
                self.kind,
                f"is unknown; expected one of {', '.join(FAULT_KINDS)}",
                owner="FaultRule",
            )
        object.__setattr__(self, "ops", name_tuple("ops", self.ops, owner="FaultRule"))
        object.__setattr__(self, "views", name_tuple("views", self.views, owner="FaultRule"))
        if not isinstance(self.name, str):
            raise invalid("name", self.name, "must be a string", owner="FaultRule")
        validate_ops("ops", self.ops, owner="FaultRule")
        validate_views("views", self.views, owner="FaultRule")
        self._check_targets()
        for counter, minimum in (("nth", 1), ("after", 0), ("every", 1), ("max_fires", 1)):
            value = getattr(self, counter)
            if value is not None:
                require_count(counter, value, minimum=minimum, owner="FaultRule")
        probability = require_finite("probability", self.probability, owner="FaultRule")
        if not 0.0 <= probability <= 1.0:
            raise invalid(
                "probability", self.probability, "must be within [0, 1]", owner="FaultRule"
            )
        if self.window is not None:
            object.__setattr__(self, "window", _checked_window(self.window))

    def _check_targets(self) -> None:
        """The ops and prompt filters must be ones the kind can fire on."""
        kind = self.kind
        if kind in VIEW_EVENT_KINDS:
            if self.ops:
                raise InvalidArgumentError(
                    f"FaultRule.ops={list(self.ops)!r} must be empty for kind {kind!r}: "
                    "it fires on view enter/exit, not on ops",
                    field="ops",
                    value=self.ops,
                )
            if self.prompt is not None:
                raise invalid(
                    "prompt",
                    self.prompt,
                    f"must be unset for kind {kind!r}: a view enter/exit has no prompt",
                    owner="FaultRule",
                )
        applicable = APPLICABLE_OPS[kind]
        for index, op in enumerate(self.ops):
            if op not in applicable:
                raise InvalidArgumentError(
                    f"FaultRule.ops contains {op!r}, which kind {kind!r} cannot target; "
                    f"it applies to {', '.join(applicable)}",
                    field=f"ops[{index}]",
                    value=op,
                )
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt):
            raise invalid(
                "prompt", self.prompt, "must be a non-empty glob such as 'q*'", owner="FaultRule"
            )

    def applies_to(self, op: str) -> bool:
        """Whether this rule can fire on ``op`` at all (kind and op filter)."""
        if self.ops:
            return op in self.ops
        return op in APPLICABLE_OPS[self.kind]

    def targets(
        self, op: str, view_kind: str, view_id: str, prompt: str, call_index: int, now: float
    ) -> bool:
        """Whether every filter holds for this call (``max_fires`` and ``probability`` aside).

        ``op`` is an op name, or ``"enter"`` / ``"exit"`` for a view event,
        which only ``enter_error`` / ``exit_error`` rules target.
        """
        if op in _VIEW_EVENTS:
            if self.kind != _VIEW_EVENTS[op]:
                return False
        elif not self.applies_to(op):
            return False
        if not view_matches(self.views, view_kind, view_id):
            return False
        if self.prompt is not None and not fnmatchcase(prompt, self.prompt):
            return False
        if self.nth is not None and call_index != self.nth:
            return False
        if self.after is not None and call_index <= self.after:
            return False
        if self.every is not None and call_index % self.every:
            return False
        return self.window is None or self.window[0] <= now < self.window[1]


_VIEW_EVENTS: Final = {"enter": "enter_error", "exit": "exit_error"}


def _checked_window(window: object) -> tuple[float, float]:
    """A ``(start, end)`` pair of loop seconds, 0 <= start < end."""
    pair = tuple(window) if isinstance(window, tuple | list) else ()
    if len(pair) != 2:
        raise invalid("window", window, "must be a (start, end) pair of seconds", owner="FaultRule")
    start = require_seconds("window[0]", pair[0], owner="FaultRule", label="FaultRule.window start")
    end = require_seconds("window[1]", pair[1], owner="FaultRule", label="FaultRule.window end")
    if end <= start:
        raise invalid("window", window, "must have start < end", owner="FaultRule")
    return start, end


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
        require_seed("seed", self.seed, owner="FaultPlan")
        rules = typed_tuple("rules", self.rules, FaultRule, owner="FaultPlan")
        object.__setattr__(self, "rules", rules)
        names: set[str] = set()
        for index in range(len(rules)):
            name = self.rule_name(index)
            if name in names:
                raise invalid(
                    f"rules[{index}].name",
                    name,
                    "is used twice; rule names must be unique",
                    owner="FaultPlan",
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

    __slots__ = ("_fired", "_names", "fired_per_rule", "log", "plan")

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._names = [plan.rule_name(index) for index in range(len(plan.rules))]
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
        draw_key = prompt if key is None else key
        for index, rule in enumerate(plan.rules):
            if not rule.targets(op, kind, view_id, prompt, call_index, now):
                continue
            if rule.max_fires is not None and self._fired[index] >= rule.max_fires:
                continue
            name = self._names[index]
            if rule.probability < 1.0:
                u, _, _ = unit_draws(plan.seed, "fault", name, op, view_id, draw_key, call_index)
                if u >= rule.probability:
                    continue
            self._fired[index] += 1
            self.fired_per_rule[name] = self.fired_per_rule.get(name, 0) + 1
            firing = FaultFiring(index, name, rule.kind, op, view_id, prompt, call_index, now)
            self.log.append(firing)
            return firing
        return None
