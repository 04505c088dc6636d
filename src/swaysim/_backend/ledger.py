"""What a backend saw a runner do, call by call: the observations a scenario checks.

A :class:`CallLedger` is off unless a scenario harness attaches one
(``backend._observe(ledger)``); a plain backend then still keeps its fast
path, and a configured one its unobserved op path. Attached, every op goes
through :meth:`~swaysim._backend.pipeline.OpPipeline` and the ledger counts,
for any runner, whatever the runner itself reports:

- **retries**: a call of a request on a view that follows a failed call (an
  injected error, or an op abandoned by cancellation) of the same request on
  the same view; and an entry of a view whose last entry attempt failed with
  an injected ``enter_error``;
- **timeouts**: ops abandoned by a cancellation that is not the harness's own
  (an ``op_timeout``, a ``probe_timeout``, a runner cancelling its own work);
  **cancelled ops**: the ones the harness's ``cancel_after`` abandoned;
- **retry delays**: the loop seconds from a failed call (or entry) to its
  retry: the runner's backoff, plus whatever it waited for itself; each
  also kept as a :class:`RetryWait` (which retry in a row it was, and
  whether a view was entered or left meanwhile), which is what
  ``expect.retry_backoff`` reads;
- **duplicates**: a request sent again within one view entry after it had
  already succeeded there (a cache hit counts as sent);
- **late** ops and entries: anything after the harness marked the runner as
  returned; and the ops in flight now.

Every completed call is kept (:attr:`CallLedger.calls`) with the probes it was
attributed to (:mod:`swaysim._backend.attribution`) and whether an output fault
corrupted its answer, which is what ``expect.no_false_pass`` reads.

A request is a :data:`CallKey`: (view id, op, key text, size), the key text
being the prompt (``logprob_of``: prompt and completion joined by ``\\x00``; a
batch: its prompts joined by ``\\x1e``) and the size ``top_k`` for the
next-token ops, ``max_new_tokens`` for ``generate``, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import anyio

from swaysim._backend.attribution import ATTRIBUTION
from swaysim._backend.tracing import current_task_name
from swaysim._vocab import LOGPROB_OF_OP, NEXT_TOKEN_DIST_BATCH_OP, NEXT_TOKEN_DIST_OP
from swaysim.errors import InjectedFault

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from swaysim._backend.tracing import OpSpan

__all__ = [
    "BATCH_SEPARATOR",
    "COMPLETION_SEPARATOR",
    "CallKey",
    "CallLedger",
    "ObservedCall",
    "Outcome",
    "RetryWait",
    "Tally",
    "describe_key",
    "item_key",
]

CallKey = tuple[str, str, str, int]
"""(view id, op, key text, size): one distinct request on one view."""
Outcome = Literal["in flight", "ok", "failed", "cancelled", "error"]
COMPLETION_SEPARATOR: Final = "\x00"
BATCH_SEPARATOR: Final = "\x1e"
_EXAMPLES: Final = 3
"""How many examples of each observation a ledger keeps for messages."""


def item_key(view_id: str, prompt: str, top_k: int) -> CallKey:
    """The ``next_token_dist`` request a batch item answers (what a probe's ask names)."""
    return (view_id, NEXT_TOKEN_DIST_OP, prompt, top_k)


def describe_key(key: CallKey) -> str:
    """``next_token_dist('q1') on ft`` style, for messages."""
    view_id, op, text, _ = key
    if op == LOGPROB_OF_OP:
        prompt, _, completion = text.partition(COMPLETION_SEPARATOR)
        return f"{op}({prompt!r}, {completion!r}) on {view_id}"
    if op == NEXT_TOKEN_DIST_BATCH_OP:
        return f"{op}({len(text.split(BATCH_SEPARATOR))} prompts) on {view_id}"
    return f"{op}({text!r}) on {view_id}"


@dataclass(slots=True, eq=False)
class ObservedCall:
    """One op call as the ledger saw it; the op path ends it like a trace span."""

    ledger: CallLedger
    key: CallKey
    entry: int
    """The view entry it was made in (a serial number; -1: the entry was not seen)."""
    attribution: tuple[str, ...]
    started: float
    task: str
    span: OpSpan | None = None
    """The trace span it also ends, when the backend traces."""
    items: tuple[str, ...] = ()
    """A batch's prompts."""
    outcome: Outcome = "in flight"
    ended: float | None = None
    """Loop time the call ended (None: in flight)."""
    timed_out: bool = False
    """Abandoned by a cancellation that was not the harness's own (a timeout, the runner's)."""
    corrupt: str | None = None
    """The output fault kind that corrupted the answer (a batch: any of its items)."""
    corrupt_items: dict[int, str] = field(default_factory=dict)
    """A batch's corrupted items, by index."""

    def end(self, hit: bool, detail: Mapping[str, object]) -> None:
        """The op returned an answer."""
        if self.span is not None:
            self.span.end(hit, detail)
        self.ledger.finish(self, "ok")

    def fail(self, exc: BaseException) -> None:
        """The op raised, or was abandoned by a cancellation."""
        if self.span is not None:
            self.span.fail(exc)
        if isinstance(exc, InjectedFault):
            self.ledger.finish(self, "failed")
        elif isinstance(exc, anyio.get_cancelled_exc_class()):
            self.ledger.finish(self, "cancelled")
        else:
            self.ledger.finish(self, "error")

    def corrupted(self, kind: str, item: int | None = None) -> None:
        """An output fault changed the answer (of batch item ``item``)."""
        self.corrupt = kind
        if item is not None:
            self.corrupt_items[item] = kind

    def answer_keys(self) -> list[tuple[CallKey, str | None]]:
        """Each request this call answered and the fault that corrupted it, if any.

        A batch answers one ``next_token_dist`` request per prompt.
        """
        if not self.items:
            return [(self.key, self.corrupt)]
        view_id, _, _, top_k = self.key
        return [
            (item_key(view_id, prompt, top_k), self.corrupt_items.get(index))
            for index, prompt in enumerate(self.items)
        ]

    def describe(self) -> str:
        """The request, and the task that made it."""
        return f"{describe_key(self.key)} (task {self.task!r})"

    def __repr__(self) -> str:
        return f"<ObservedCall {describe_key(self.key)} {self.outcome}>"


@dataclass(frozen=True, slots=True)
class RetryWait:
    """One retry the ledger saw: what was retried, after which failure, and when."""

    what: str
    attempt: int
    """Retries of it in a row before this one: 0 for the first (the contract's backoff
    exponent)."""
    failed_at: float
    retried_at: float
    entry: bool
    """A view entry retried after a failed entry (not an op call)."""
    quiet: bool
    """No view was entered, left or failed to enter in between: every moment of the wait
    with no op in flight was the runner's own."""

    @property
    def delay(self) -> float:
        """Loop seconds from the failure to the retry."""
        return self.retried_at - self.failed_at


@dataclass(slots=True)
class Tally:
    """A count of one kind of observation, with its first few examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        """Count one more, keeping it as an example while there are few."""
        self.count += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(example)

    def describe(self) -> str:
        """``2 (next_token_dist('a') on ft; ...)``, or ``0``."""
        if not self.count:
            return "0"
        more = self.count - len(self.examples)
        return f"{self.count} ({'; '.join(self.examples)}{'; ...' if more else ''})"


class CallLedger:
    """One run's observations of one backend (see the module docstring).

    ``harness_cancelling`` tells whether the harness's own cancellation is
    under way (so an op it abandons is a cancelled op, not a timeout).
    """

    def __init__(self) -> None:
        self.harness_cancelling: Callable[[], bool] = lambda: False
        self.returned = False
        self.calls: list[ObservedCall] = []
        self.in_flight: dict[int, ObservedCall] = {}
        self.peak_in_flight = 0
        """Most op calls in flight at once (a call waiting for the device included)."""
        self.retries = Tally()
        self.timeouts = Tally()
        self.cancelled_ops = Tally()
        self.duplicates = Tally()
        self.late = Tally()
        self.retry_delays: list[tuple[float, str]] = []
        """Each retry's loop seconds since the failure it retries, and what it retried."""
        self.retry_waits: list[RetryWait] = []
        self._failures_in_a_row: dict[CallKey | str, int] = {}
        self._view_events = 0
        self._failed_events: dict[CallKey | str, int] = {}
        self.entry_windows: dict[int, tuple[float, float | None]] = {}
        """Each view entry's serial number: the loop time it went live, and left (None: live)."""
        self._failed: set[CallKey] = set()
        self._failed_at: dict[CallKey, float] = {}
        self._enter_failed_at: dict[str, float] = {}
        self._succeeded: dict[int, set[CallKey]] = {}
        self._entry_of: dict[int, int] = {}
        self._enter_failed: set[str] = set()
        self._entries = 0

    def __repr__(self) -> str:
        return (
            f"<CallLedger calls={len(self.calls)} in_flight={len(self.in_flight)} "
            f"retries={self.retries.count} timeouts={self.timeouts.count} "
            f"duplicates={self.duplicates.count} late={self.late.count}>"
        )

    # -- view entries ---------------------------------------------------------------

    def entering(self, view_id: str) -> None:
        """A task starts entering ``view_id`` (before the gate)."""
        if self.returned:
            task = current_task_name().rpartition("#")[0]
            self.late.add(f"an entry of view {view_id!r} (task {task!r})")
        if view_id in self._enter_failed:
            self.retries.add(f"entry of view {view_id!r} after an injected enter failure")
            failed_at = self._enter_failed_at.get(view_id)
            if failed_at is not None:
                self._retried(view_id, f"entry of view {view_id!r}", failed_at, entry=True)

    def entered(self, view: object, view_id: str) -> None:
        """``view`` (the object ops are called on) is live."""
        self._enter_failed.discard(view_id)
        self._failures_in_a_row.pop(view_id, None)
        self._view_events += 1
        self._entries += 1
        self._entry_of[id(view)] = self._entries
        self._succeeded[self._entries] = set()
        self.entry_windows[self._entries] = (anyio.current_time(), None)

    def enter_failed(self, view_id: str, exc: BaseException) -> None:
        """Entering ``view_id`` raised (or was cancelled) before the view was live."""
        self._view_events += 1
        if isinstance(exc, InjectedFault):
            self._enter_failed.add(view_id)
            self._enter_failed_at[view_id] = anyio.current_time()
            self._failed_once(view_id)

    def exited(self, view: object) -> None:
        """``view``'s block ended: its entry's bookkeeping goes."""
        self._view_events += 1
        entry = self._entry_of.pop(id(view), None)
        if entry is not None:
            self._succeeded.pop(entry, None)
            self.entry_windows[entry] = (self.entry_windows[entry][0], anyio.current_time())

    # -- op calls -------------------------------------------------------------------

    def start(
        self,
        view: object,
        key: CallKey,
        now: float,
        span: OpSpan | None = None,
        items: tuple[str, ...] = (),
    ) -> ObservedCall:
        """An op call starts on ``view``: count what it is, and follow it."""
        entry = self._entry_of.get(id(view), -1)
        task = current_task_name().rpartition("#")[0]
        record = ObservedCall(self, key, entry, ATTRIBUTION.get(), now, task, span, items)
        if self.returned:
            self.late.add(record.describe())
        if key in self._failed:
            self.retries.add(describe_key(key))
            self._retried(key, describe_key(key), self._failed_at.get(key, now), entry=False)
        succeeded = self._succeeded.get(entry)
        if succeeded is not None and key in succeeded:
            self.duplicates.add(f"{describe_key(key)} sent again in one entry")
        self.in_flight[id(record)] = record
        if len(self.in_flight) > self.peak_in_flight:
            self.peak_in_flight = len(self.in_flight)
        return record

    def finish(self, record: ObservedCall, outcome: Outcome) -> None:
        """``record`` ended with ``outcome``."""
        record.outcome = outcome
        record.ended = anyio.current_time()
        self.in_flight.pop(id(record), None)
        self.calls.append(record)
        key = record.key
        if outcome in ("failed", "cancelled"):
            self._failed.add(key)
            self._failed_at[key] = record.ended
            self._failed_once(key)
        else:
            self._failed.discard(key)
            self._failures_in_a_row.pop(key, None)
        if outcome == "ok":
            succeeded = self._succeeded.get(record.entry)
            if succeeded is not None:
                succeeded.add(key)
        elif outcome == "cancelled":
            if self.harness_cancelling():
                self.cancelled_ops.add(record.describe())
            else:
                record.timed_out = True
                self.timeouts.add(record.describe())

    def _failed_once(self, what: CallKey | str) -> None:
        self._failures_in_a_row[what] = self._failures_in_a_row.get(what, 0) + 1
        self._failed_events[what] = self._view_events

    def _retried(
        self, what: CallKey | str, described: str, failed_at: float, *, entry: bool
    ) -> None:
        retried_at = anyio.current_time()
        self.retry_delays.append((retried_at - failed_at, described))
        quiet = self._failed_events.get(what) == self._view_events
        attempt = max(self._failures_in_a_row.get(what, 1) - 1, 0)
        self.retry_waits.append(RetryWait(described, attempt, failed_at, retried_at, entry, quiet))
