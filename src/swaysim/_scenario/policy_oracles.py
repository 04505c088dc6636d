"""The runner contract's retry and timeout policy, judged from the backend's call ledger.

Both read only what the backend saw (:class:`~swaysim._backend.ledger.CallLedger`)
and the options the scenario gives its runner, so they hold for any correct
runner whatever its visit order, and need no reference run:

- :func:`backoff_breaches` (``expect.retry_backoff``): the *k*-th retry in a
  row of a request (or of a view entry) waits at least ``min(backoff * 2**k,
  backoff_max)`` loop seconds; and, for an op retried while no view was entered
  or left, the device sits idle (no op in flight) for at most that backoff plus
  the contract's +25 % jitter. Idle beyond the backoff is time the runner made
  the device wait for nothing: a backoff without its cap, or slept while
  holding the device so that another request's retry waited too.
- :func:`op_timeout_breaches` (``expect.op_timeout_applied``): with an
  ``op_timeout``, no op call lasts longer than it, and an op the runner cut off
  had all of it (unless a ``probe_timeout`` may cut it sooner): a timeout
  wrapped around the retries, or started before waiting for the device, cuts
  an attempt short. Preflight's calls are bounded by ``probe_timeout`` and
  are not judged.
- :func:`idle_breaches` (``expect.work_conserving``): the device never sits idle
  while a request of a live view is still to be sent and fewer than
  ``concurrency`` requests are backing off: on an exclusive backend some op is
  then in flight; on a concurrent-safe one, ``concurrency`` less the requests
  backing off. A request is "still to be sent" from its view's entry until its
  first call there: pooled requests are all known when the view is entered.
  Entries a function probe's calls are attributed to are not judged (a
  function probe drives its view at its own pace).

Each returns one line per breach, most telling first.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from swaysim._backend.backend import PREFLIGHT_PROMPT
from swaysim._backend.ledger import describe_key

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from swaysim._backend.ledger import CallKey, CallLedger, ObservedCall, RetryWait

__all__ = ["JITTER_ALLOWANCE", "backoff_breaches", "idle_breaches", "op_timeout_breaches"]

JITTER_ALLOWANCE: Final = 1.25
"""The contract's retry jitter: a backoff may be up to 25 % longer."""
_TOLERANCE: Final = 1e-6
_DEFAULT_BACKOFF: Final = 0.1
_DEFAULT_BACKOFF_MAX: Final = 5.0


def _backoff(options: Mapping[str, object], attempt: int) -> float:
    backoff = float(options.get("backoff", _DEFAULT_BACKOFF))  # type: ignore[arg-type]
    cap = float(options.get("backoff_max", _DEFAULT_BACKOFF_MAX))  # type: ignore[arg-type]
    return float(min(backoff * 2.0 ** min(attempt, 64), cap))


class _BusyTimeline:
    """The union of the intervals some op call was in flight, for idle-time queries."""

    def __init__(self, calls: Sequence[ObservedCall], until: float) -> None:
        merged: list[list[float]] = []
        for start, end in sorted(
            (call.started, until if call.ended is None else call.ended) for call in calls
        ):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [start for start, _ in merged]
        self._intervals = merged

    def busy(self, low: float, high: float) -> float:
        """Seconds of ``[low, high]`` with some op call in flight."""
        total = 0.0
        index = max(bisect.bisect_right(self._starts, low) - 1, 0)
        for start, end in self._intervals[index:]:
            if start >= high:
                break
            total += max(0.0, min(end, high) - max(start, low))
        return total


def backoff_breaches(
    ledger: CallLedger, options: Mapping[str, object], *, slack: float = 0.0
) -> list[str]:
    """Retries that did not wait their backoff, or idled the device longer than it.

    ``slack`` widens the idle bound by time the runner may legitimately add
    (schedule jitter's sleeps, a synchronous runner's own thread time).
    """
    waits: list[RetryWait] = ledger.retry_waits
    if not waits:
        return []
    until = max((wait.retried_at for wait in waits), default=0.0)
    timeline = _BusyTimeline([*ledger.calls, *ledger.in_flight.values()], until)
    short, idle = [], []
    for wait in waits:
        backoff = _backoff(options, wait.attempt)
        ordinal = _ordinal(wait.attempt + 1)
        if wait.delay < backoff - _TOLERANCE:
            short.append(
                f"{wait.what}: {ordinal} retry after {wait.delay:.6g} s, "
                f"before its backoff of {backoff:.6g} s"
            )
        if wait.entry or not wait.quiet:
            continue
        idle_seconds = wait.delay - timeline.busy(wait.failed_at, wait.retried_at)
        allowed = backoff * JITTER_ALLOWANCE + slack
        if idle_seconds > allowed + _TOLERANCE:
            idle.append(
                f"{wait.what}: {ordinal} retry after {wait.delay:.6g} s, the device idle "
                f"{idle_seconds:.6g} s of it (its backoff: {backoff:.6g} s, at most "
                f"{allowed:.6g} s with jitter)"
            )
    return short + idle


def op_timeout_breaches(
    ledger: CallLedger, options: Mapping[str, object], *, slack: float = 0.0
) -> list[str]:
    """Op calls that outlived ``op_timeout``, or were cut off before it ran out.

    ``slack`` widens the upper bound (a synchronous runner's own thread time).
    """
    limit = options.get("op_timeout")
    if limit is None:
        return []
    op_timeout = float(limit)  # type: ignore[arg-type]
    may_cut_sooner = options.get("probe_timeout") is not None
    long, short = [], []
    for call in ledger.calls:
        if call.ended is None or call.key[2] == PREFLIGHT_PROMPT:
            continue
        lasted = call.ended - call.started
        if lasted > op_timeout + slack + _TOLERANCE:
            long.append(f"{call.describe()} lasted {lasted:.6g} s, past op_timeout")
        elif call.timed_out and not may_cut_sooner and lasted < op_timeout - _TOLERANCE:
            short.append(
                f"{call.describe()} cut off after {lasted:.6g} s, "
                f"before its op_timeout of {op_timeout:.6g} s"
            )
    return long + short


def _first_calls(calls: Sequence[ObservedCall]) -> dict[tuple[int, CallKey], ObservedCall]:
    """Each request's first call in each view entry it was sent in."""
    first: dict[tuple[int, CallKey], ObservedCall] = {}
    for call in sorted(calls, key=lambda call: call.started):
        if call.entry >= 0:
            first.setdefault((call.entry, call.key), call)
    return first


def _pending_windows(
    ledger: CallLedger, calls: Sequence[ObservedCall], functions: Collection[str]
) -> dict[int, tuple[float, ObservedCall]]:
    """Per view entry: when it went live, and the last request it sent for the first time."""
    skipped = {c.entry for c in calls if functions and any(n in functions for n in c.attribution)}
    last: dict[int, ObservedCall] = {}
    for (entry, _), call in _first_calls(calls).items():
        if entry not in skipped and (entry not in last or call.started > last[entry].started):
            last[entry] = call
    windows = {}
    for entry, call in last.items():
        opened = ledger.entry_windows.get(entry)
        if opened is not None and call.started > opened[0]:
            windows[entry] = (opened[0], call)
    return windows


@dataclass(slots=True)
class _Stretch:
    """A stretch with a request to send and fewer ops in flight than the runner should have."""

    start: float
    end: float
    in_flight: int
    """The fewest ops in flight during it."""
    wanted: int


def _idle_stretches(
    events: list[tuple[float, int, int, int]], concurrency: int, capacity: int
) -> list[_Stretch]:
    stretches: list[_Stretch] = []
    pending = in_flight = backing_off = 0
    previous = None
    for time, d_pending, d_flight, d_backoff in sorted(events):
        if previous is not None and time > previous:
            wanted = min(capacity, concurrency - backing_off)
            if pending > 0 and in_flight < wanted:
                last = stretches[-1] if stretches else None
                if last is not None and abs(last.end - previous) <= _TOLERANCE:
                    last.end, last.in_flight = time, min(last.in_flight, in_flight)
                else:
                    stretches.append(_Stretch(previous, time, in_flight, wanted))
        pending += d_pending
        in_flight += d_flight
        backing_off += d_backoff
        previous = time
    return stretches


def idle_breaches(
    ledger: CallLedger,
    options: Mapping[str, object],
    *,
    safe: bool,
    functions: Collection[str] = (),
    slack: float = 0.0,
) -> list[str]:
    """Stretches the device sat idle while a request waited to be sent (see the module doc).

    ``functions`` are the function probes' names; ``slack`` the longest idle
    stretch the runner may legitimately cause (schedule jitter's sleeps, a
    synchronous runner's own thread time).
    """
    concurrency = max(int(options.get("concurrency", 1)), 1)  # type: ignore[call-overload]
    calls = [*ledger.calls, *ledger.in_flight.values()]
    windows = _pending_windows(ledger, calls, functions)
    if not windows:
        return []
    until = max((c.ended or c.started for c in calls), default=0.0)
    events = [(opened, 1, 0, 0) for opened, _ in windows.values()]
    events += [(last.started, -1, 0, 0) for _, last in windows.values()]
    for call in calls:
        events += [(call.started, 0, 1, 0), (until if call.ended is None else call.ended, 0, -1, 0)]
    for wait in ledger.retry_waits:
        if not wait.entry:
            events += [(wait.failed_at, 0, 0, 1), (wait.retried_at, 0, 0, -1)]
    first = _first_calls(calls)
    found = []
    for stretch in _idle_stretches(events, concurrency, concurrency if safe else 1):
        start, end = stretch.start, stretch.end
        if end - start <= slack + _TOLERANCE:
            continue
        waiting = min(
            (
                c
                for (entry, _), c in first.items()
                if entry in windows and c.started >= end - _TOLERANCE
            ),
            key=lambda c: c.started,
            default=None,
        )
        what = "a request" if waiting is None else describe_key(waiting.key)
        kind = "concurrent-safe" if safe else "exclusive"
        found.append(
            f"{_in_flight(stretch)} from {start:.6g} s to {end:.6g} s while {what} waited to be "
            f"sent (concurrency {concurrency}, {kind} backend)"
        )
    return found


def _in_flight(stretch: _Stretch) -> str:
    if stretch.in_flight == 0:
        return "no op in flight"
    return f"{stretch.in_flight} op(s) in flight where {stretch.wanted} could be"


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"
