"""The ``[expect]`` table of a scenario: bounds, verdict counts and every expectation key.

What each key means when checked is :mod:`swaysim._scenario.expect`'s; this
module only describes and validates the table.
"""

from __future__ import annotations

from typing import Annotated, Final, Union

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from swaysim._scenario.spec_base import Count, Seconds, Spec, VerdictName
from swaysim._validation import MAX_COUNT, MAX_SECONDS

__all__ = [
    "EXPECTATION_KEYS",
    "CountBounds",
    "ExpectKeys",
    "ExpectSpec",
    "SecondsBounds",
    "VerdictCounts",
]


def _exact_count(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_COUNT:
            raise ValueError(f"must be within [0, {MAX_COUNT}]")
        return {"at_least": value, "at_most": value}
    return value


class CountBounds(Spec):
    """A count that must lie within bounds (a bare integer means exactly that)."""

    at_least: Count | None = None
    """Lowest allowed count."""
    at_most: Count | None = None
    """Highest allowed count."""

    @model_validator(mode="after")
    def _ordered(self) -> CountBounds:
        _check_bounds(self.at_least, self.at_most)
        return self


class SecondsBounds(Spec):
    """Virtual seconds that must lie within bounds (a bare number means exactly that)."""

    at_least: Seconds | None = None
    """Fewest allowed seconds."""
    at_most: Seconds | None = None
    """Most allowed seconds."""

    @model_validator(mode="after")
    def _ordered(self) -> SecondsBounds:
        _check_bounds(self.at_least, self.at_most)
        return self


def _check_bounds(low: float | None, high: float | None) -> None:
    if low is None and high is None:
        raise ValueError("set at_least, at_most or both")
    if low is not None and high is not None and high < low:
        raise ValueError(f"at_most={high!r} is below at_least={low!r}")


def _exact_seconds(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0.0 <= value <= MAX_SECONDS:
            raise ValueError(f"must be within [0, {MAX_SECONDS:g}] seconds")
        return {"at_least": value, "at_most": value}
    return value


def _one_verdict(value: object) -> object:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError("must be a verdict (PASS, FAIL, WARN, SKIP, ERROR) or an array of them")
    return value


CountExpectation = Annotated[
    CountBounds,
    BeforeValidator(_exact_count, json_schema_input_type=Union[Count, CountBounds]),  # noqa: UP007
]
SecondsExpectation = Annotated[
    SecondsBounds,
    BeforeValidator(_exact_seconds, json_schema_input_type=Union[Seconds, SecondsBounds]),  # noqa: UP007
]
VerdictExpectation = Annotated[
    Annotated[list[VerdictName], Field(min_length=1)],
    BeforeValidator(_one_verdict, json_schema_input_type=Union[VerdictName, list[VerdictName]]),  # noqa: UP007
]


class VerdictCounts(Spec):
    """How many probes end with each verdict."""

    PASS: CountExpectation | None = None
    """Probes that PASS."""
    FAIL: CountExpectation | None = None
    """Probes that FAIL."""
    WARN: CountExpectation | None = None
    """Probes that WARN."""
    SKIP: CountExpectation | None = None
    """Probes that SKIP."""
    ERROR: CountExpectation | None = None
    """Probes that end in ERROR (the preflight's included)."""


class ExpectKeys(Spec):
    """The expectations a scenario can state (in ``[expect]`` and ``[expect.reference]``)."""

    verdicts: dict[str, VerdictExpectation] = {}
    """Probe name or glob (``"dkl-*"``) to the allowed verdict(s); ``"__preflight__"`` names
    the ERROR a failed preflight leaves."""
    verdict_counts: VerdictCounts | None = None
    """Number of probes per verdict."""
    no_false_pass: bool | None = None
    """No PASS rests on an answer an output-corrupting fault changed (calls are attributed to
    probes: declared requests, or ``swaysim.attribute``); no PASS after preflight aborted."""
    matches_reference: bool | None = None
    """Each probe whose requests met no fault, or only retryable ones within the retry budget,
    and were never cut off, has the verdict and scores of the reference runner's fault-free
    run of this scenario (``run_suite``, no fault rules, no ``cancel_after``)."""
    aborted: bool | None = None
    """Whether preflight aborted the suite."""
    cancelled: bool | None = None
    """Whether ``runner.cancel_after`` cancelled the suite before it finished."""
    peak_live_views: CountExpectation | None = None
    """Most views live at once."""
    view_switches: CountExpectation | None = None
    """Adapter switches (preflight included): entries into a view other than the previous one
    on an exclusive backend, first entries of each view on a concurrent-safe one."""
    calls_per_view: dict[str, CountExpectation] = {}
    """View id (``ft``, ``scaled_0.50``, ``null_3``) to the op calls made on it, preflight's
    and cache hits included (a batch is one call)."""
    view_entries: CountExpectation | None = None
    """View entries the backend saw, every view's and preflight's included (an entry retried
    after an injected enter failure counts once more)."""
    peak_ops_in_flight: CountExpectation | None = None
    """Most op calls in flight at once, observed by the backend: from the call until its answer,
    waiting for the device included (a batch is one call); at most ``runner.concurrency`` for a
    runner that keeps to it."""
    duplicate_requests: CountExpectation | None = None
    """Requests sent again within one view entry after they had succeeded there (observed by
    the backend; a cache hit counts as sent)."""
    makespan: SecondsExpectation | None = None
    """Virtual seconds from start to finish (or to cancellation). The upper bound widens by
    the time schedule jitter added and the time a synchronous runner's own code took on its
    worker thread (the clock follows real time then)."""
    faults_fired: dict[str, CountExpectation] = {}
    """Firings per fault rule name."""
    retries: CountExpectation | None = None
    """Retries the backend saw: a request sent again on a view after it failed there (an
    injected error, or cut off), and a view entered again after an injected enter error."""
    retry_delay: SecondsExpectation | None = None
    """Loop seconds from a failed attempt (an injected error, or cut off; or a failed view
    entry) to its retry, for every retry the backend saw: the runner's backoff plus any wait of
    its own before the call. Holds when nothing was retried (``retries`` says whether)."""
    retry_backoff: bool | None = None
    """Every retry waited its backoff and no longer idled the device: the *k*-th retry in a
    row of a request or view entry comes at least ``min(backoff * 2**k, backoff_max)`` seconds
    after the failure, and, for an op retried while no view was entered or left, no op was in
    flight for at most that backoff plus 25 % jitter (a cap ignored, a backoff slept while
    holding the device). Holds when nothing was retried."""
    op_timeout_applied: bool | None = None
    """With ``runner.op_timeout``, no op call lasted longer, and every op the runner cut off
    had all of it (unless ``probe_timeout`` may cut sooner): a timeout around the retries, or
    started before waiting for the device, cuts attempts short. Preflight's calls (bounded by
    ``probe_timeout``) are not judged; holds when no ``op_timeout`` is set."""
    work_conserving: bool | None = None
    """The device never sat idle while a request of a live view was still to be sent and fewer
    than ``runner.concurrency`` requests were backing off: some op was in flight (on a
    concurrent-safe backend, ``concurrency`` less those backing off). Catches a backoff slept
    while holding the device, or workers that wait on each other. Views a function probe's
    calls are attributed to are not judged."""
    timeouts: CountExpectation | None = None
    """Ops the backend saw abandoned by a cancellation other than ``cancel_after``'s (an
    ``op_timeout``, a ``probe_timeout``, a runner cancelling its own work)."""
    cancelled_ops: CountExpectation | None = None
    """Ops the backend saw abandoned by ``runner.cancel_after``'s cancellation."""
    gate_free: bool | None = None
    """No view live and nobody waiting the moment the runner returned."""
    identical_across_loops: bool | None = None
    """Results (without timing) identical on asyncio and trio."""

    @model_validator(mode="after")
    def _something(self) -> ExpectKeys:
        stated = self.model_fields_set - {"optional"}
        if not stated - {"verdicts", "faults_fired", "calls_per_view"} and not (
            self.verdicts or self.faults_fired or self.calls_per_view
        ):
            raise ValueError("no expectations: a scenario must say what must hold afterwards")
        return self


EXPECTATION_KEYS: Final = tuple(ExpectKeys.model_fields)


class ExpectSpec(ExpectKeys):
    """What must hold after the run; every key is optional, at least one is required."""

    reference: ExpectKeys | None = None
    """Expectations that state the configured runner's own choices (``run_suite``'s exact
    switch count, say): checked only when that runner runs, not a runner under test."""
    optional: list[str] = []
    """Expectation keys that may be impossible to check for some runner: reported as
    skipped, not failed, when they cannot be checked (an unchecked key fails otherwise)."""
