"""How much of a file swaysim will read, and how to raise it: one table for every reader.

A scenario, a trace or a results file may come from anyone, so every reader
checks these bounds *before* doing the work they bound: a file's size before
reading it, a scenario's expanded probe and request counts before expanding
it, a trace line's length before decoding it. Past a bound the reader stops
with one line naming the file, the key or line, the bound and the environment
variable that raises it (``SWAYSIM_MAX_PROBES=500000``). The README's
"Limits" table lists the same rows (a test keeps the two in step).

Bounds the formats themselves fix (TOML integers are 64-bit; a trace's times
are finite) are not in this table: they are not limits a user can need to
raise, just what the formats mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from swaysim.errors import InvalidArgumentError

__all__ = [
    "LIMITS",
    "MAX_EXPANDED_TEXT_BYTES",
    "MAX_NESTING",
    "MAX_PROBES",
    "MAX_REQUESTS",
    "MAX_RESULTS_BYTES",
    "MAX_SCENARIO_BYTES",
    "MAX_SCENARIO_VALUES",
    "MAX_TRACE_KEYS",
    "MAX_TRACE_LINE_BYTES",
    "MAX_VERDICT_CHECKS",
    "Limit",
]


@dataclass(frozen=True, slots=True)
class Limit:
    """One bound: its default, what it counts, and the variable that overrides it."""

    name: str
    default: int
    counts: str
    """What is counted, for messages and the README table ("bytes in a scenario file")."""

    @property
    def variable(self) -> str:
        """The environment variable that overrides the default."""
        return f"SWAYSIM_MAX_{self.name.upper()}"

    def value(self) -> int:
        """The bound in force: the variable's value when set, else the default.

        Read at each check (an environment lookup), so a test or a wrapper
        script may change it at any time. A value that is not a positive
        integer is an error naming the variable, never silently ignored.
        """
        raw = os.environ.get(self.variable)
        if raw is None or not raw.strip():
            return self.default
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidArgumentError(
                f"{self.variable}={raw!r} must be a positive integer (default {self.default:,})",
                field=self.variable,
                value=raw,
            )
        return value

    @property
    def hint(self) -> str:
        """``"(raise it with SWAYSIM_MAX_...=N)"``."""
        return f"(raise it with {self.variable}=N)"

    def exceeded(self, found: str) -> str:
        """``"<found>; the limit is N <counts> (raise it with SWAYSIM_MAX_...=N)"``."""
        return f"{found}; the limit is {self.value():,} {self.counts} {self.hint}"


MAX_SCENARIO_BYTES: Final = Limit("scenario_bytes", 1024 * 1024, "bytes in a scenario file")
MAX_SCENARIO_VALUES: Final = Limit(
    "scenario_values", 100_000, "values (keys and array items) in a scenario file"
)
MAX_NESTING: Final = Limit(
    "nesting", 32, "levels of nested tables and arrays in a scenario, trace line or results file"
)
MAX_PROBES: Final = Limit("probes", 100_000, "probes in a scenario, after repeat expansion")
MAX_REQUESTS: Final = Limit(
    "requests", 1_000_000, "requests (prompt and view pairs) in a scenario, after expansion"
)
MAX_EXPANDED_TEXT_BYTES: Final = Limit(
    "expanded_text_bytes",
    64 * 1024 * 1024,
    "bytes of probe text (prompts, texts, names) in a scenario, after expansion",
)
MAX_VERDICT_CHECKS: Final = Limit(
    "verdict_checks",
    5_000_000,
    "pattern and probe pairs [expect] verdicts compares (patterns times probes)",
)
MAX_TRACE_LINE_BYTES: Final = Limit("trace_line_bytes", 1024 * 1024, "bytes in a trace line")
MAX_TRACE_KEYS: Final = Limit(
    "trace_keys",
    500_000,
    "distinct names (tasks, views, ops, probes, fault rules) plus open intervals a trace "
    "reader keeps track of",
)
MAX_RESULTS_BYTES: Final = Limit("results_bytes", 32 * 1024 * 1024, "bytes in a results.json file")

LIMITS: Final[tuple[Limit, ...]] = (
    MAX_SCENARIO_BYTES,
    MAX_SCENARIO_VALUES,
    MAX_NESTING,
    MAX_PROBES,
    MAX_REQUESTS,
    MAX_EXPANDED_TEXT_BYTES,
    MAX_VERDICT_CHECKS,
    MAX_TRACE_LINE_BYTES,
    MAX_TRACE_KEYS,
    MAX_RESULTS_BYTES,
)
