"""Which probe a call is made for: a context variable any runner can set.

A scenario harness attributes every op call to the probes it serves, so that
``expect.no_false_pass`` can tell whether a PASS rests on a corrupted answer
whatever the runner. A declarative probe's calls need nothing: the harness
knows its requests from :meth:`~swaysim.Probe.requests`. A runner that calls
views directly on a probe's behalf (dlm-sway style) says so::

    with swaysim.attribute("dkl"):
        dist = await view.next_token_dist(prompt)

The value is a context variable, so it follows the code: tasks started inside
the block inherit it, and the blocking bridge carries it from a worker thread
to the loop task that serves the thread's op. Outside a harness it costs one
context-variable set and reset per block, and nothing per op.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final

from swaysim._validation import invalid

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ATTRIBUTION", "attribute", "current_attribution"]

ATTRIBUTION: Final[ContextVar[tuple[str, ...]]] = ContextVar("swaysim_attribution", default=())
"""The probe names the current code makes calls for (empty: unattributed)."""


@contextmanager
def attribute(*probe_names: str) -> Iterator[None]:
    """Attribute every op call made inside the block to ``probe_names``.

    ``with swaysim.attribute("dkl", "ppl"):``: the calls are made for both probes
    (a request two probes share). Nesting replaces the outer names for the
    inner block. Names must be non-empty strings.
    """
    for index, name in enumerate(probe_names):
        if not isinstance(name, str) or not name:
            raise invalid(f"probe_names[{index}]", name, "must be a probe name (a non-empty str)")
    token = ATTRIBUTION.set(tuple(probe_names))
    try:
        yield
    finally:
        ATTRIBUTION.reset(token)


def current_attribution() -> tuple[str, ...]:
    """The probe names calls made here are attributed to (empty: none)."""
    return ATTRIBUTION.get()
